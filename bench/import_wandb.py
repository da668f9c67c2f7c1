"""W&B source for the import bench: write an offline run, read it natively, read it with ours.

wandb 0.31 has no maintained Python reader for ``.wandb`` files (``wandb sync`` and
``wandb leet inspect`` read them inside the Go ``wandb-core``), so :func:`native_read` is the
minimum decode in Python: our chunk framing, ``wandb_internal_pb2.Record.ParseFromString`` and
``json.loads`` of each history item.

    python bench/import_wandb.py --scalars 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_KEYS = 10  # history values per run.log call

_WRITER = """
import os, sys
dest, steps, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import wandb
settings = wandb.Settings(x_disable_stats=True, x_disable_meta=True, x_disable_machine_info=True, console="off")
run = wandb.init(mode="offline", dir=dest, project="bench", name="bench", config={"lr": 0.1}, settings=settings)
names = [f"m{k}" for k in range(keys)]
for i in range(steps):
    run.log({n: i * 0.001 + k for k, n in enumerate(names)})
run.finish()
wandb.teardown()
"""


def _env(dest: Path) -> dict[str, str]:
    """Offline, quiet, and nothing written outside ``dest``."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(dest),
               WANDB_DISABLE_CODE="true", WANDB_DISABLE_GIT="true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        env[name] = str(dest / ".wandb-home" / name.lower())
    return env


def make_source(dest: Path, scalars: int) -> Path:
    """Write one offline run with ``scalars`` history values (10 per step); return its run dir."""
    dest.mkdir(parents=True, exist_ok=True)
    steps = max(1, scalars // _KEYS)
    subprocess.run([sys.executable, "-c", _WRITER, str(dest), str(steps), str(_KEYS)],
                   env=_env(dest), check=True)
    return next((dest / "wandb").glob("offline-run-*"))


def native_read(source: Path | str) -> int:
    """Every history value, decoded the minimum way wandb's own data allows; returns the count."""
    from wandb.proto import wandb_internal_pb2 as pb

    from ml_dash.importers.wandb_source import _log_records

    count = 0
    loads = json.loads
    for log in sorted(Path(source).rglob("*.wandb")):
        for item in _log_records(log):
            if isinstance(item, tuple):
                rec = pb.Record()
                rec.ParseFromString(item[2])
                if rec.WhichOneof("record_type") == "history":
                    for it in rec.history.item:
                        if not (it.nested_key or [it.key])[0].startswith("_"):
                            loads(it.value_json)
                            count += 1
    return count


def main() -> None:
    from ml_dash.importers.source import Point
    from ml_dash.importers.wandb_source import runs

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scalars", type=int, default=100_000)
    args = parser.parse_args()
    import wandb.proto.wandb_internal_pb2  # noqa: F401  (import wandb, ~1 s, outside the timings)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        source = make_source(Path(tmp), args.scalars)
        made = time.perf_counter() - t
        size = sum(p.stat().st_size for p in source.glob("*.wandb"))
        t = time.perf_counter()
        native = native_read(source)
        native_s = time.perf_counter() - t
        t = time.perf_counter()
        ours = sum(isinstance(r, Point) for run in runs(source) for r in run.records())
        ours_s = time.perf_counter() - t
    print(f"make_source   {made:8.2f} s  ({args.scalars} scalars, .wandb {size / 1e6:.1f} MB)")
    print(f"native_read   {native_s:8.2f} s  ({native} values, {native / native_s:,.0f}/s)")
    print(f"ours          {ours_s:8.2f} s  ({ours} points, {ours / ours_s:,.0f}/s)")
    print(f"ours/native   {ours_s / native_s:8.2f}")


if __name__ == "__main__":
    main()
