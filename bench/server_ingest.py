"""Metric ingest over HTTP vs straight into the same SQLite database, and against the
server of an earlier commit, side by side.

    .venv/bin/python bench/server_ingest.py [--points 200000] [--baseline-ref 2f8c728] [--rounds 3]

Starts a real ``ml-dash serve`` (SQLite + files) on 127.0.0.1, sends ``append-batch``
requests of 1,000 and of 10,000 points over one keep-alive connection, by position
(``startIndex``) and as a writer (``writerId`` + ``writerSeq``), then inserts the same
rows (one chunk row per batch holding the points as a JSON array, encoded with the
server's own encoder, one transaction per batch, the series total updated) into the same
database file directly with sqlite3. The baseline is ``ml-dash serve`` of
``--baseline-ref`` (default: the last commit before writers and row locks), run from a
git worktree beside the current one; the rounds alternate between the servers and the
best of each is kept. Prints points/s and the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.server import live_server  # noqa: E402


def points(n: int, offset: int = 0) -> list[dict[str, float | int]]:
    return [{"value": (i * 0.001) % 7, "step": i, "epoch": i // 1000} for i in range(offset, offset + n)]


def http_rate(url: str, key: str, total: int, batch: int, mode: str = "position") -> float:
    """Server ingest: request bodies are encoded before the clock starts (the client's JSON
    encoding is the client's cost, not the server's)."""
    import json
    import uuid

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        r = client.post("/projects/bench/experiments", json={"name": f"http-{batch}-{uuid.uuid4().hex[:8]}"})
        experiment = r.json()["experiment"]["id"]
        where = ({"writerId": "bench-writer"} if mode == "writer" else {})
        bodies = [json.dumps({"dataPoints": points(batch, offset), **where,
                              ("writerSeq" if mode == "writer" else "startIndex"): offset}).encode()
                  for offset in range(0, total, batch)]
        start = time.perf_counter()
        for body in bodies:
            client.post(f"/experiments/{experiment}/metrics/loss/append-batch", content=body).raise_for_status()
        return total / (time.perf_counter() - start)


def direct_rate(db: Path, total: int, batch: int) -> float:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    metric_id = int(time.time() * 1000) * 1000 + batch  # its own series, no collisions with the HTTP ones
    conn.execute("INSERT INTO metrics (id, experiment_id, name, description, tags, metadata, total, created_at, "
                 "updated_at) SELECT ?, id, 'direct-' || ?, NULL, '[]', NULL, 0, 'now', 'now' FROM experiments LIMIT 1",
                 (metric_id, metric_id))
    from ml_dash.server.fastjson import dumps_array_finite

    start = time.perf_counter()
    for offset in range(0, total, batch):
        row = (metric_id, offset, offset + batch - 1, dumps_array_finite(points(batch, offset)),
               "2026-01-01T00:00:00.000Z")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO metric_chunks (metric_id, start_idx, end_idx, data, created_at) "
                     "VALUES (?, ?, ?, ?, ?)", row)
        conn.execute("UPDATE metrics SET total = ? WHERE id = ?", (offset + batch, metric_id))
        conn.execute("COMMIT")
    rate = total / (time.perf_counter() - start)
    conn.close()
    return rate


@contextmanager
def baseline_checkout(ref: str) -> Iterator[Path]:
    """The repository at ``ref`` in a temporary git worktree (removed afterwards)."""
    tmp = Path(tempfile.mkdtemp(prefix="ml-dash-baseline-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tmp), ref], check=True)
    try:
        yield tmp
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000, help="points per measurement")
    parser.add_argument("--baseline-ref", default="2f8c728", help="git ref of the baseline server")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    args = parser.parse_args()
    best: dict[tuple[str, int], float] = {}

    def keep(name: str, batch: int, rate: float) -> None:
        best[(name, batch)] = max(best.get((name, batch), 0.0), rate)

    with tempfile.TemporaryDirectory(prefix="ml-dash-ingest-") as tmp, baseline_checkout(args.baseline_ref) as old:
        data, old_data = Path(tmp) / "now", Path(tmp) / "base"
        old_env = {"PYTHONPATH": str(old)}
        with live_server(data, "log_requests=false") as server, \
                live_server(old_data, "log_requests=false", env=old_env) as base:
            key, old_key = server.token("bench", "bench"), base.token("bench", "bench")
            for _ in range(args.rounds):
                for batch in (1000, 10_000):
                    keep("baseline", batch, http_rate(base.url, old_key, args.points, batch))
                    keep("position", batch, http_rate(server.url, key, args.points, batch))
                    keep("writer", batch, http_rate(server.url, key, args.points, batch, "writer"))
                    keep("direct", batch, direct_rate(data / "ml-dash.db", args.points, batch))
    print(f"metric ingest into SQLite, {args.points:,} points per run, best of {args.rounds} (higher is better)")
    print(f"baseline: ml-dash serve at {args.baseline_ref}, by position")
    print(f"{'batch':>8}{'baseline/s':>13}{'position/s':>13}{'writer/s':>13}{'direct/s':>13}"
          f"{'position/base':>15}{'writer/base':>13}{'direct/writer':>15}")
    for batch in (1000, 10_000):
        b, p, w, d = (best[(k, batch)] for k in ("baseline", "position", "writer", "direct"))
        print(f"{batch:>8,}{b:>13,.0f}{p:>13,.0f}{w:>13,.0f}{d:>13,.0f}{p / b:>14.2f}x{w / b:>12.2f}x{d / w:>14.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
