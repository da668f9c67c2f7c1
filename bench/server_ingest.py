"""Metric ingest over HTTP vs straight into the same SQLite database, side by side.

    .venv/bin/python bench/server_ingest.py [--points 200000]

Starts a real ``ml-dash serve`` (SQLite + files) on 127.0.0.1, sends ``append-batch``
requests of 1,000 and of 10,000 points over one keep-alive connection, then inserts
the same rows (one chunk row per batch holding the points as a JSON array, encoded
with the server's own encoder, one transaction per batch, the series total updated)
into the same database file directly with sqlite3, and prints points/s and the ratio.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.server import live_server  # noqa: E402


def points(n: int, offset: int = 0) -> list[dict[str, float | int]]:
    return [{"value": (i * 0.001) % 7, "step": i, "epoch": i // 1000} for i in range(offset, offset + n)]


def http_rate(url: str, key: str, total: int, batch: int) -> float:
    """Server ingest: request bodies are encoded before the clock starts (the client's JSON
    encoding is the client's cost, not the server's)."""
    import json

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        r = client.post("/projects/bench/experiments", json={"name": f"http-{batch}"})
        experiment = r.json()["experiment"]["id"]
        bodies = [json.dumps({"dataPoints": points(batch, offset), "startIndex": offset}).encode()
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
                 (metric_id, batch))
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000, help="points per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ml-dash-ingest-") as tmp:
        data = Path(tmp)
        with live_server(data, "log_requests=false") as server:
            key = server.token("bench", "bench")
            results = []
            for batch in (1000, 10_000):
                http = http_rate(server.url, key, args.points, batch)
                direct = direct_rate(data / "ml-dash.db", args.points, batch)
                results.append((batch, http, direct))
    print(f"metric ingest into SQLite, {args.points:,} points per run (higher is better)")
    print(f"{'batch':>8}{'HTTP points/s':>16}{'direct points/s':>18}{'direct/HTTP':>14}")
    for batch, http, direct in results:
        print(f"{batch:>8,}{http:>16,.0f}{direct:>18,.0f}{direct / http:>13.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
