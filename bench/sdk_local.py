"""Local-mode SDK speed: ours vs the real ml-dash 0.5.8, side by side in one run.

    .venv/bin/python bench/sdk_local.py [--n 3000] [--batches 300] [--blocks 10] [--rounds 3]

The same worker code runs under both interpreters (ours: .venv, theirs:
.venv-ml-dash-0.5.8), alternating, best of ``--rounds``; each worker gets a fresh root
holding only its own experiment (0.5.8 rglobs the whole root on every call, so this is
its best case). Each worker measures:

* ``metrics("loss").append(value=, step=, epoch=)`` and ``log("step done", step=)``: ``--n``
  calls each (the first call of each, which creates the series or the log file, is made
  before the clock starts);
* ``append_batch`` of 100 points ``{"value": float, "step": int}``, ``--batches`` times;
* the json.dumps floor: the records 0.5.8 writes for those same batches
  (``{"index", "data", "createdAt"}``, built beforehand), put through ``json.dumps`` one by
  one, joined with newlines and written to a file, one ``write`` per batch; nothing else.

The four take turns in ``--blocks`` blocks, so that a busy machine slows them alike; the best
block of each counts (the batched/floor ratio is of these bests, both from our worker).

Goals (issue 14, point 6): batched >= 2x the floor, <= 10 µs per single append and log line.
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
import json, os, sys, time
from ml_dash import Experiment
root, n, batches, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
clock = time.perf_counter
exp = Experiment(name="bench", project="p", local_path=root)
exp.run.start()
m, b = exp.metrics("loss"), exp.metrics("batched")
m.append(value=0.0, step=0, epoch=0)  # creates the series (and the log file, below): not timed
exp.log("start", level="info", step=0)
batch = [{"value": i * 0.5, "step": i} for i in range(100)]
stamp = "2026-11-22T16:57:37.635242Z"  # what 0.5.8 writes has this length
records = [[{"index": k * len(batch) + j, "data": p, "createdAt": stamp} for j, p in enumerate(batch)]
           for k in range(batches)]
fd = os.open(os.path.join(root, "floor.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
dumps = json.dumps
best = {"append_us": float("inf"), "log_us": float("inf"), "batched": 0.0, "floor": 0.0}
calls, per_block = n // blocks, batches // blocks
for k in range(blocks):  # the four measurements take turns, so that they share the machine's noise
    t0 = clock()
    for i in range(k * calls, (k + 1) * calls):
        m.append(value=i * 0.5, step=i, epoch=i // 100)
    t1 = clock()
    for i in range(k * calls, (k + 1) * calls):
        exp.log("step done", level="info", step=i)
    t2 = clock()
    for _ in range(per_block):
        b.append_batch(batch)
    t3 = clock()
    for lines in records[k * per_block:(k + 1) * per_block]:
        os.write(fd, "".join([dumps(r) + "\n" for r in lines]).encode())
    t4 = clock()
    best["append_us"] = min(best["append_us"], (t1 - t0) / calls * 1e6)
    best["log_us"] = min(best["log_us"], (t2 - t1) / calls * 1e6)
    best["batched"] = max(best["batched"], per_block * len(batch) / (t3 - t2))
    best["floor"] = max(best["floor"], per_block * len(batch) / (t4 - t3))
os.close(fd)
exp.run.complete()
print(json.dumps(best))
"""


def run(python: Path, n: int, batches: int, blocks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ml-dash-bench-") as root:
        out = subprocess.run([str(python), "-c", WORKER, root, str(n), str(batches), str(blocks)], check=True,
                             capture_output=True, text=True, cwd=root)  # not the repo: its ml_dash/ would shadow 0.5.8's
        return dict(json.loads(out.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="single appends, and log lines, per worker")
    parser.add_argument("--batches", type=int, default=300, help="append_batch calls (100 points each) per worker")
    parser.add_argument("--blocks", type=int, default=10, help="each worker's measurements are taken in turns, "
                                                                  "this many blocks each; the best block counts")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not THEIRS.exists():
        print(f"the real ml-dash 0.5.8 is not installed at {THEIRS}: run scripts/setup.sh", file=sys.stderr)
        return 1
    best: dict[str, dict[str, float]] = {"ours": {}, "0.5.8": {}}
    for _ in range(args.rounds):
        for label, python in (("ours", OURS), ("0.5.8", THEIRS)):
            for key, value in run(python, args.n, args.batches, args.blocks).items():
                pick = min if key.endswith("_us") else max
                best[label][key] = pick(best[label].get(key, value), value)
    ours, theirs = best["ours"], best["0.5.8"]
    print(f"local-mode SDK, best of {args.rounds} rounds ({args.n} single calls, {args.batches} batches of 100)")
    print(f"{'':26}{'ours':>12}{'0.5.8':>12}{'speed-up':>10}   goal")
    for key, what in (("append_us", "metric append, µs"), ("log_us", "log line, µs")):
        print(f"{what:26}{ours[key]:>12.1f}{theirs[key]:>12.1f}{theirs[key] / ours[key]:>9.0f}x   <= 10 µs")
    print(f"{'append_batch, points/s':26}{ours['batched']:>12,.0f}{theirs['batched']:>12,.0f}"
          f"{ours['batched'] / theirs['batched']:>9.1f}x")
    print(f"{'json.dumps floor, pts/s':26}{ours['floor']:>12,.0f}{theirs['floor']:>12,.0f}")
    print(f"{'batched / floor':26}{ours['batched'] / ours['floor']:>11.2f}x{theirs['batched'] / theirs['floor']:>11.2f}x"
          f"{'':10}   >= 2x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
