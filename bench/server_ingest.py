"""Ingest over HTTP against inserting the same rows straight into the same SQLite database.

    .venv/bin/python bench/server_ingest.py [--points 200000] [--lines 100000] [--rounds 3]

Starts a real ``ml-dash serve`` (SQLite + files) on 127.0.0.1 and, for batches of 1,000 and of
10,000 records, measures side by side (the rounds alternate; the best of each is kept):

* **metrics, HTTP**: ``append-batch`` requests over one keep-alive connection, by position
  (``startIndex``) and as a writer (``writerId`` + ``writerSeq``). The points are
  ``{"value": float, "step": int, "epoch": int}`` as the SDK sends them (each point as
  ``json.dumps`` writes it, joined by commas). Request bodies are encoded before the clock starts:
  the client's encoding is the client's cost.
* **metrics, direct**: the rows the server stores for the same points (one ``metric_chunks`` row
  per batch holding the points' JSON text as the server stores it, the batch's
  ``metric_summaries`` rows as the server computes them, and the ``metrics`` row's counters),
  inserted with sqlite3 into the same database file, one transaction per batch, on a connection
  made by the server's own code (the same PRAGMAs). Everything is computed and encoded before
  the clock; the timed part is ``BEGIN IMMEDIATE``, the INSERT and UPSERTs, the UPDATE, ``COMMIT``.
* **logs**: the same for ``POST .../logs`` with typical lines (timestamp, level, a message of
  ~70 characters), by position (``sequenceNumber``) and as a writer (``writerSeq``), against
  ``executemany`` of the same ``logs`` rows plus the experiment's line counter, one transaction
  per batch.

Prints records/s, the ratio direct/HTTP and the server process's CPU time per record (what
the server spends, whatever else runs on the machine), with the goals of 10,000-record batches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml_dash.server.fastjson import dumps_array_finite, flat_points  # noqa: E402
from ml_dash.server.storage import summaries  # noqa: E402
from ml_dash.server.storage.sql import _SQLite, open_sqlite  # noqa: E402
from tests.helpers.server import live_server  # noqa: E402

BATCHES = (1000, 10_000)
GOAL_RATE, GOAL_RATIO = 2_000_000, 1.5
CREATED_AT = "2026-01-01T00:00:00.000Z"


def points(n: int, offset: int = 0) -> list[dict[str, float | int]]:
    return [{"value": (i * 0.001) % 7, "step": i, "epoch": i // 1000} for i in range(offset, offset + n)]


def log_lines(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [{"timestamp": f"2026-01-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
             "level": "warn" if i % 10 == 0 else "info",
             "message": f"step {i}: loss=0.{i % 9973:04d} lr=3e-4 grad_norm=1.{i % 97:02d} throughput={1000 + i % 500}/s"}
            for i in range(offset, offset + n)]


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process used so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Http:
    """One keep-alive client of the server; ``run`` posts pre-encoded bodies and times them."""

    def __init__(self, url: str, key: str, pid: int) -> None:
        self.client = httpx.Client(base_url=url, timeout=300, headers={"Authorization": f"Bearer {key}",
                                                                       "Content-Type": "application/json"})
        self.pid = pid

    def experiment(self) -> str:
        r = self.client.post("/projects/bench/experiments", json={"name": f"run-{uuid.uuid4().hex[:10]}"})
        r.raise_for_status()
        return str(r.json()["experiment"]["id"])

    def run(self, path: str, bodies: list[bytes], records: int) -> tuple[float, float]:
        """``(records/s, server CPU seconds per record)``."""
        cpu, start = server_cpu(self.pid), time.perf_counter()
        for body in bodies:
            self.client.post(path, content=body).raise_for_status()
        elapsed = time.perf_counter() - start
        return records / elapsed, (server_cpu(self.pid) - cpu) / records


# --- metrics -------------------------------------------------------------------------------------
def metric_bodies(total: int, batch: int, mode: str) -> list[bytes]:
    out = []
    for offset in range(0, total, batch):
        numbering = f'"writerId":"bench","writerSeq":{offset}' if mode == "writer" else f'"startIndex":{offset}'
        text = ",".join(json.dumps(p) for p in points(batch, offset))
        out.append(f'{{"dataPoints":[{text}],{numbering}}}'.encode())
    return out


class _Recorder:
    """A store cursor that keeps the rows ``summaries.append`` upserts (and lets them through)."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self.rows: list[tuple[Any, ...]] = []

    def all(self, sql: str, args: Any = ()) -> Any:
        return self.cur.all(sql, args)

    def executemany(self, sql: str, rows: Any) -> None:
        self.rows.extend(rows)
        self.cur.executemany(sql, rows)


def metric_rows(total: int, batch: int, scratch: Path) -> list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Per batch: the chunk row and the summary rows the server writes for these points (computed
    by the server's own code on a scratch database), metric id 0 (set by the caller)."""
    store = open_sqlite(scratch / f"rows-{uuid.uuid4().hex[:8]}.db")
    try:
        ns = store.ensure_namespace("bench")
        exp, _ = store.upsert_experiment(ns["id"], "bench", {"name": "rows"})
        metric, _ = store.append_points(exp["id"], "m", [], None, None, None, None)
        out = []
        for offset in range(0, total, batch):
            text = ",".join(json.dumps(p) for p in points(batch, offset))
            parsed = flat_points(f"[{text}]".encode())
            data = parsed.text if parsed is not None else dumps_array_finite(points(batch, offset))
            with store._tx() as cur:
                recorder = _Recorder(cur)
                summaries.append(recorder, metric["id"], offset, parsed or points(batch, offset), CREATED_AT)
            out.append(((0, offset, offset + batch - 1, data, CREATED_AT), [(0, *r[1:]) for r in recorder.rows]))
        return out
    finally:
        store.close()


def metric_direct(db: Path, experiment: str, rows: list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]) -> float:
    conn = _SQLite(db).connect()
    try:
        metric_id = int.from_bytes(os.urandom(6), "big")  # its own series beside the HTTP ones
        conn.execute("INSERT INTO metrics (id, experiment_id, name, description, tags, metadata, total, created_at, "
                     "updated_at) VALUES (?, ?, ?, NULL, '[]', NULL, 0, ?, ?)",
                     (metric_id, int(experiment), f"direct-{metric_id}", CREATED_AT, CREATED_AT))
        batches = [((metric_id, *chunk[1:]), [(metric_id, *r[1:]) for r in summary]) for chunk, summary in rows]
        total = 0
        start = time.perf_counter()
        for chunk, summary in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO metric_chunks (metric_id, start_idx, end_idx, data, created_at) "
                         "VALUES (?, ?, ?, ?, ?)", chunk)
            conn.executemany(summaries.UPSERT, summary)
            total = chunk[2] + 1
            conn.execute("UPDATE metrics SET total = ?, summarized = ?, updated_at = ?, last_data_at = ? WHERE id = ?",
                         (total, total, CREATED_AT, CREATED_AT, metric_id))
            conn.execute("COMMIT")
        return total / (time.perf_counter() - start)
    finally:
        conn.close()


# --- logs ----------------------------------------------------------------------------------------
def log_bodies(total: int, batch: int, mode: str) -> list[bytes]:
    out = []
    for offset in range(0, total, batch):
        lines = log_lines(batch, offset)
        if mode == "writer":
            body: dict[str, Any] = {"logs": [{**line, "writerSeq": offset + i} for i, line in enumerate(lines)],
                                    "writerId": "bench"}
        else:
            body = {"logs": [{**line, "sequenceNumber": offset + i} for i, line in enumerate(lines)]}
        out.append(json.dumps(body).encode())
    return out


def log_direct(db: Path, experiment: str, total: int, batch: int) -> float:
    batches = [[(int(experiment), offset + i, line["timestamp"], line["level"], line["message"], None)
                for i, line in enumerate(log_lines(batch, offset))] for offset in range(0, total, batch)]
    conn = _SQLite(db).connect()
    try:
        start = time.perf_counter()
        for rows in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO logs (experiment_id, seq, timestamp, level, message, metadata) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.execute("UPDATE experiments SET log_count = ? WHERE id = ?", (rows[-1][1] + 1, int(experiment)))
            conn.execute("COMMIT")
        return total / (time.perf_counter() - start)
    finally:
        conn.close()


# --- the report ----------------------------------------------------------------------------------
def table(title: str, unit: str, best: dict[tuple[str, int], float], cpu: dict[tuple[str, int], float],
          goal_rate: float | None) -> None:
    print(title)
    print(f"{'batch':>8}{'HTTP position':>16}{'HTTP writer':>14}{'direct':>14}{'direct/pos':>12}{'direct/wri':>12}"
          f"{'server CPU/' + unit:>20}")
    for batch in BATCHES:
        p, w, d = (best[(k, batch)] for k in ("position", "writer", "direct"))
        used = f"{cpu[('position', batch)] * 1e9:,.0f} / {cpu[('writer', batch)] * 1e9:,.0f} ns"
        print(f"{batch:>8,}{p:>16,.0f}{w:>14,.0f}{d:>14,.0f}{d / p:>11.2f}x{d / w:>11.2f}x{used:>20}")
    slowest = min(best[("position", 10_000)], best[("writer", 10_000)])
    ratio = best[("direct", 10_000)] / slowest
    rate = "" if goal_rate is None else \
        f" (goal >= {goal_rate:,.0f}: {'met' if slowest >= goal_rate else 'not met'})"
    print(f"10,000-{unit} batches, the slower of position/writer: {slowest:,.0f} {unit}s/s over HTTP{rate}, "
          f"direct/HTTP {ratio:.2f} (goal <= {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'not met'})\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000, help="metric points per measurement")
    parser.add_argument("--lines", type=int, default=100_000, help="log lines per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    args = parser.parse_args()
    metrics: dict[tuple[str, int], float] = {}
    logs: dict[tuple[str, int], float] = {}
    cpu: dict[str, dict[tuple[str, int], float]] = {"metrics": {}, "logs": {}}

    def keep(into: dict[tuple[str, int], float], kind: str, batch: int, measure: Callable[[], Any]) -> None:
        got = measure()
        rate, used = got if isinstance(got, tuple) else (got, None)
        if rate > into.get((kind, batch), 0.0):
            into[(kind, batch)] = rate
            if used is not None:
                cpu["metrics" if into is metrics else "logs"][(kind, batch)] = used

    with tempfile.TemporaryDirectory(prefix="ml-dash-ingest-") as tmp:
        data = Path(tmp) / "server"
        with live_server(data, "log_requests=false") as server:
            http = Http(server.url, server.token("bench", "bench"), server.process.pid)
            db = data / "ml-dash.db"
            inputs = {(kind, batch): metric_bodies(args.points, batch, kind)
                      for kind in ("position", "writer") for batch in BATCHES}
            log_inputs = {(kind, batch): log_bodies(args.lines, batch, kind)
                          for kind in ("position", "writer") for batch in BATCHES}
            rows = {batch: metric_rows(args.points, batch, Path(tmp)) for batch in BATCHES}
            for _ in range(args.rounds):
                for batch in BATCHES:
                    for kind in ("position", "writer"):
                        exp = http.experiment()
                        keep(metrics, kind, batch, lambda e=exp, k=kind, b=batch: http.run(
                            f"/experiments/{e}/metrics/loss/append-batch", inputs[(k, b)], args.points))
                    keep(metrics, "direct", batch, lambda b=batch: metric_direct(db, http.experiment(), rows[b]))
                    for kind in ("position", "writer"):
                        exp = http.experiment()
                        keep(logs, kind, batch, lambda e=exp, k=kind, b=batch: http.run(
                            f"/experiments/{e}/logs", log_inputs[(k, b)], args.lines))
                    keep(logs, "direct", batch, lambda b=batch: log_direct(db, http.experiment(), args.lines, b))
            http.client.close()
    print(f"ingest into SQLite (WAL, synchronous=NORMAL), best of {args.rounds} rounds (higher is better)\n")
    table(f"metric points/s, {args.points:,} points per run", "point", metrics, cpu["metrics"], GOAL_RATE)
    table(f"log lines/s, {args.lines:,} lines per run", "line", logs, cpu["logs"], None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
