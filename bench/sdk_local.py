"""Local-mode SDK speed: ours vs the real ml-dash 0.5.8, side by side in one run.

    .venv/bin/python bench/sdk_local.py [--n 3000] [--rounds 3]

The same worker code runs under both interpreters (ours: .venv, theirs:
.venv-ml-dash-0.5.8), alternating, best of ``--rounds``; each worker gets a fresh root
holding only its own experiment (0.5.8 rglobs the whole root on every call, so this is
its best case). Prints rates and the ratio ours/0.5.8.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = REPO / ".venv" / "bin" / "python"
THEIRS = REPO / ".venv-ml-dash-0.5.8" / "bin" / "python"

WORKER = r"""
import json, sys, time
from ml_dash import Experiment
root, n = sys.argv[1], int(sys.argv[2])
exp = Experiment(name="bench", project="p", local_path=root)
exp.run.start()
m = exp.metrics("loss")
t0 = time.perf_counter()
for i in range(n):
    m.append(value=i * 0.5, step=i, epoch=i // 100)
t1 = time.perf_counter()
for i in range(n):
    exp.log("step done", level="info", step=i)
t2 = time.perf_counter()
batch = [{"value": i * 0.5, "step": i} for i in range(100)]
b = exp.metrics("batched")
for _ in range(max(1, n // 100)):
    b.append_batch(batch)
t3 = time.perf_counter()
exp.run.complete()
t4 = time.perf_counter()
print(json.dumps({"metric_appends_per_s": n / (t1 - t0), "log_lines_per_s": n / (t2 - t1),
                  "batched_points_per_s": max(1, n // 100) * 100 / (t3 - t2), "close_s": t4 - t3}))
"""


def run(python: Path, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ml-dash-bench-") as root:
        out = subprocess.run([str(python), "-c", WORKER, root, str(n)], check=True, capture_output=True, text=True,
                             cwd=root)  # not the repo: its ml_dash/ would shadow 0.5.8's
        return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="appends and log lines per worker")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not THEIRS.exists():
        print(f"the real ml-dash 0.5.8 is not installed at {THEIRS}: run scripts/setup.sh", file=sys.stderr)
        return 1
    best: dict[str, dict[str, float]] = {"ours": {}, "0.5.8": {}}
    for _ in range(args.rounds):
        for label, python in (("ours", OURS), ("0.5.8", THEIRS)):
            for key, value in run(python, args.n).items():
                if key.endswith("_per_s"):
                    best[label][key] = max(best[label].get(key, 0.0), value)
    print(f"local-mode SDK, n={args.n}, best of {args.rounds} rounds (higher is better)")
    print(f"{'':24}{'ours':>14}{'0.5.8':>14}{'ratio':>10}")
    for key in ("metric_appends_per_s", "log_lines_per_s", "batched_points_per_s"):
        ours, theirs = best["ours"][key], best["0.5.8"][key]
        print(f"{key:24}{ours:>14,.0f}{theirs:>14,.0f}{ours / theirs:>9.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
