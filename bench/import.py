"""``ml-dash import`` against each source's own reader, side by side, on the same source.

For each of TensorBoard, MLflow (SQLite store) and W&B offline: write a source of N scalars with
the real library (``bench/import_<source>.py``'s ``make_source``), then time, each in a fresh
process, (a) the source's own reader reading every scalar (``native_read``), (b) our reader alone
(nothing written), (c) ``ml-dash import`` into an empty tree, then (d) the same import again
(nothing new: what a re-run costs).
Prints seconds, scalars/s, peak RSS and the ratio import / native read.

    .venv/bin/python bench/import.py                # 1M scalars per source
    .venv/bin/python bench/import.py --scalars 100000 --sources tensorboard
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent
ML_DASH = str(Path(sys.executable).parent / "ml-dash")
SOURCES = ("tensorboard", "mlflow", "wandb")

# The process's own peak RSS: VmHWM belongs to its memory map, new at exec (ru_maxrss would carry
# over the size of the bench process that forked it).
_PEAK = """def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

# Runs in a fresh interpreter: the native read, timed, with its peak RSS.
_NATIVE = """
{peak}import json, sys, time
sys.path.insert(0, {bench!r})
import importlib.util
spec = importlib.util.spec_from_file_location("m", {module!r}); m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
import pathlib
t = time.perf_counter(); n = m.native_read(pathlib.Path({source!r})); s = time.perf_counter() - t
print(json.dumps({{"seconds": s, "count": n, "rss_mb": peak_mb()}}))
"""


# Runs in a fresh interpreter: our reader alone (runs() and records(), nothing written).
_OURS = """
{peak}import json, pathlib, time
from ml_dash.importers.run import SOURCES
from ml_dash.importers.source import Point, SourceRun
import importlib
runs = importlib.import_module(SOURCES[{name!r}][0]).runs
t = time.perf_counter()
n = sum(isinstance(r, Point) for run in runs(pathlib.Path({source!r})) if isinstance(run, SourceRun)
        for r in run.records())
s = time.perf_counter() - t
print(json.dumps({{"seconds": s, "count": n, "rss_mb": peak_mb()}}))
"""


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_import_{name}", BENCH / f"import_{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fresh(template: str, name: str, source: str) -> dict[str, float]:
    code = template.format(bench=str(BENCH), module=str(BENCH / f"import_{name}.py"), source=source, name=name,
                           peak=_PEAK)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{name}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _import(name: str, source: str, tree: Path) -> dict[str, float]:
    """``ml-dash import`` in a fresh process, wrapped to read its own peak RSS."""
    code = (_PEAK + "import json, sys, time\nfrom ml_dash.cli import main\nt = time.perf_counter()\n"
            f"rc = main(['import', {name!r}, {source!r}, '--to', {str(tree)!r}, '--progress', 'none'])\n"
            "s = time.perf_counter() - t\n"
            "print(json.dumps({'seconds': s, 'rc': rc, "
            "'rss_mb': peak_mb()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0 or '"rc": 0' not in out.stdout:
        raise SystemExit(f"ml-dash import {name} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _points_in(tree: Path) -> int:
    return sum(sum(1 for _ in p.open("rb")) for p in tree.rglob("data.jsonl"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scalars", type=int, default=1_000_000)
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--keep", type=Path, help="keep the sources here (and reuse them on the next run)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ml-dash-bench-import-"))
    rows = []
    try:
        for name in args.sources.split(","):
            home = (args.keep or work) / f"{name}-{args.scalars}"
            marker = home / "source.txt"
            t = time.perf_counter()
            if marker.exists():
                source, made = marker.read_text(), 0.0
            else:
                home.mkdir(parents=True, exist_ok=True)
                source = str(_module(name).make_source(home / "src", args.scalars))
                made = time.perf_counter() - t
                marker.write_text(source)
            native = _fresh(_NATIVE, name, source)
            reader = _fresh(_OURS, name, source)
            tree = work / f"tree-{name}"
            first = _import(name, source, tree)
            points = _points_in(tree)
            again = _import(name, source, tree)
            assert _points_in(tree) == points, "a re-import added points"
            rows.append((name, args.scalars, made, native, reader, first, again, points))
            shutil.rmtree(tree)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the trees (and the sources unless --keep put them elsewhere)
    print(f"\n{'source':<12} {'scalars':>9} {'make s':>7} {'native s':>9} {'read s':>7} {'import s':>9} "
          f"{'import/s':>10} {'ratio':>6} {'again s':>8} {'RSS MB native/import':>21}")
    for name, n, made, native, reader, first, again, points in rows:
        assert points == native["count"] == reader["count"] == n, (name, points, native["count"], n)
        print(f"{name:<12} {n:>9,} {made:>7.1f} {native['seconds']:>9.2f} {reader['seconds']:>7.2f} "
              f"{first['seconds']:>9.2f} {n / first['seconds']:>10,.0f} {first['seconds'] / native['seconds']:>5.2f}x "
              f"{again['seconds']:>8.2f} {native['rss_mb']:>10.0f}/{first['rss_mb']:.0f}")
    print("\nnative = the source's own library reading every scalar; read = our reader alone (nothing written); "
          "import = ml-dash import into an empty tree; ratio = import / native (same source, fresh processes); "
          "again = the same import re-run (adds nothing).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
