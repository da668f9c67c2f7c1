"""W&B source for the import bench: write an offline run, read it natively.

wandb 0.31 has no maintained Python reader for ``.wandb`` files (``wandb sync`` and
``wandb leet inspect`` read them inside the Go ``wandb-core``), so :func:`native_read` is the
minimum decode in Python: our chunk framing, ``wandb_internal_pb2.Record.ParseFromString`` and
``json.loads`` of each history item.

    (loaded by bench/import.py)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
