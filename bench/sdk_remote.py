"""A training loop logging 100,000 metric points: remote mode vs local mode, side by side.

    .venv/bin/python bench/sdk_remote.py [--points 100000] [--rounds 3]

Remote mode talks to a real `ml-dash serve` on 127.0.0.1; the time includes the final
flush (leaving `with exp.run:`), and the server is checked to hold every point.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml_dash import Experiment  # noqa: E402
from tests.helpers.server import live_server  # noqa: E402


def loop(exp: Experiment, n: int) -> float:
    start = time.perf_counter()
    with exp.run:
        metric = exp.metrics("loss")
        for i in range(n):
            metric.append(value=1.0 / (i + 1), step=i)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best = {"local": float("inf"), "remote": float("inf")}
    with tempfile.TemporaryDirectory(prefix="ml-dash-sdk-remote-") as tmp:
        with live_server(Path(tmp) / "server", "log_requests=false") as server:
            key = server.token("bench", "bench")
            for r in range(args.rounds):
                best["local"] = min(best["local"], loop(Experiment(
                    name=f"local-{r}", project="bench", local_path=Path(tmp) / "tree"), args.points))
                exp = Experiment(name=f"remote-{r}", project="bench", remote=server.url, api_key=key)
                best["remote"] = min(best["remote"], loop(exp, args.points))
                stats = httpx.get(f"{server.url}/experiments/{exp.id}/metrics/loss/stats",
                                  headers={"Authorization": f"Bearer {key}"}).json()
                assert stats["totalDataPoints"] == str(args.points), stats
    print(f"{args.points:,} metric appends in a training loop, best of {args.rounds} (lower is better)")
    print(f"  local mode  {best['local']:.3f} s  ({args.points / best['local']:,.0f} points/s)")
    print(f"  remote mode {best['remote']:.3f} s  ({args.points / best['remote']:,.0f} points/s, incl. final flush)")
    print(f"  remote / local = {best['remote'] / best['local']:.2f}x; the server holds every point")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
