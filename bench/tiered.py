"""Tiered storage (storage/tiers.py) on one long metric: ingest, sizes and reads, sealed and not.

    .venv/bin/python bench/tiered.py [--points 10000000] [--chunk-size 10000] [--rounds 2] [--reads 21]
                                     [--full-reads 1] [--seal-interval 1] [--backend sqlite|postgres]
                                     [--quick] [--work-dir DIR]

One metric of ``--points`` flat points (``{"value": float, "step": int}``: a loss with noise, full
float precision), written in 10,000-point ``append-batch`` requests as a writer (``writerId`` +
``writerSeq``, as the SDK sends them). Each body is encoded before the clock starts (the client's
encoding is the client's cost) and never more than one is held: no list of every point.

**Ingest.** A real ``ml-dash serve`` on 127.0.0.1 per run, on a fresh store: sealing off
(``tiering.interval=0``) against sealing on (``tiering.interval=--seal-interval``: the server's own
background sealer running through the ingest), ``--rounds`` rounds in alternating order, the best
rate of each kept. Also the server process's CPU per point (the sealer's included: it runs in that
process), how many points the sealer had moved by the last answer, and the database's size then.

**Sizes.** The store of the last sealing-off run is *before*. *After* is a copy of it on which
``Tiering.seal_due()`` sealed every full chunk, then ``VACUUM`` (SQLite; ``VACUUM FULL`` on
PostgreSQL) gave the freed pages back: without it a database file never shrinks (freed pages are
reused by later appends instead). Database: the SQLite file plus its WAL after a checkpoint, or
the sum of ``pg_total_relation_size`` of the tables; blob store: the bytes of the segment objects.

**Reads.** Both stores open in this process, each behind the real app (FastAPI's TestClient: routing,
auth, the route and its JSON; no socket), first given a live tick of 50 more points (a running
experiment: an unsealed tail). Each figure is the median of ``--reads`` requests, *before* and
*after* alternating (which goes first alternates too), in wall time and in this process's CPU time
(the app's own work: on a shared machine the wall time also holds what other processes took):

* series (``GET .../series?y=value&x=step&points=1000``) cold: a freshly opened server state (no
  segment cached; a stats request first pays for the login), then warm: the same request again;
* a 1% zoom (``start``/``end`` on step) at a new place each time (the objects at its edges not read
  before: what a first zoom costs) and the same window again (warm);
* the live tick (``since`` = the points before the tick);
* a full read of every point: the data route paged by 10,000 as ``ml-dash download`` does it, both
  stores page by page in step (``--full-reads`` times; the pages before the tick must be the same
  bytes before and after).

Goals (the issue): the database >= 20x smaller, the series route not slower (after <= 1.1x before),
ingest with sealing on >= 0.9x off.
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.dashboard import TICK  # noqa: E402
from bench.load import AWS_ENV, Backends  # noqa: E402
from bench.server_ingest import server_cpu  # noqa: E402
from tests.helpers.server import live_server  # noqa: E402

METRIC = "loss"
BATCH = 10_000  # points per append request, and per page of the full read (ml-dash download's default)
GOAL_DB, GOAL_SERIES, GOAL_INGEST = 20.0, 1.1, 0.9


def body(first: int, count: int) -> bytes:
    """The append-batch request of points ``first .. first+count-1``: a decaying loss with noise, every
    value its own (a repeating pattern would make the sealed objects unrealistically small)."""
    noise, exp = random.Random(first).random, math.exp
    points = orjson.dumps([{"value": exp(-i / 3e6) * (0.98 + 0.04 * noise()), "step": i}
                           for i in range(first, first + count)])
    return b'{"dataPoints":' + points + b',"writerId":"bench","writerSeq":' + str(first).encode() + b"}"


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def rows(s: Sizes) -> str:
    return f"{s.tiers['database_rows'] + s.tiers['sealed_rows']:,} ({s.tiers['sealed_rows']:,})"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# --- where the stores live --------------------------------------------------------------------------------------
@dataclass
class Store:
    """One server's store pair: its data dir (its logs, key file) and the two URLs."""

    dir: Path
    db: str
    blobs: str

    def args(self) -> list[str]:
        return ["--db", self.db, "--blobs", self.blobs]


class SqliteFiles:
    name = "SQLite + files"

    def __init__(self, work: Path) -> None:
        self.work = work

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def env(self) -> dict[str, str]:
        return {}

    def fresh(self, label: str) -> Store:
        d = self.work / label
        shutil.rmtree(d, ignore_errors=True)  # a kept --work-dir of an earlier run
        return Store(d, f"sqlite:///{d / 'ml-dash.db'}", f"file://{d / 'blobs'}")

    def _path(self, store: Store) -> Path:
        return Path(store.db[len("sqlite:///"):])

    def checkpoint(self, store: Store) -> None:
        """The WAL folded into the file (the size then is the database's, not a log's)."""
        conn = sqlite3.connect(self._path(store))
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def db_bytes(self, store: Store) -> int:
        path = self._path(store)
        return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())

    def blob_bytes(self, store: Store) -> int:
        root = store.dir / "blobs" / "segments"
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())

    def copy(self, store: Store, label: str) -> Store:
        self.checkpoint(store)
        out = self.fresh(label)
        shutil.copytree(store.dir, out.dir)
        return out

    def compact(self, store: Store) -> None:
        conn = sqlite3.connect(self._path(store))
        try:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def drop(self, store: Store) -> None:
        shutil.rmtree(store.dir, ignore_errors=True)


class PostgresS3(SqliteFiles):
    """pgserver PostgreSQL and a moto S3 server process (bench/load.py's), a database and a bucket per store."""

    name = "PostgreSQL + S3 (moto)"

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.backends = Backends(work)

    def start(self) -> None:
        os.environ.update(AWS_ENV)  # this process's boto3 (sizes, the in-process reads)
        self.backends.start()

    def stop(self) -> None:
        self.backends.stop()

    def env(self) -> dict[str, str]:
        return dict(AWS_ENV)

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.backends.pg_uri, autocommit=True)

    @staticmethod
    def _dbname(store: Store) -> str:
        return store.db.split("?", 1)[0].rsplit("/", 1)[1]

    def _bucket(self, name: str) -> str:
        import boto3

        bucket = name.replace("_", "-")
        boto3.client("s3", endpoint_url=self.backends.s3).create_bucket(Bucket=bucket)
        return f"s3://{bucket}/blobs?endpoint_url={self.backends.s3}"

    def fresh(self, label: str) -> Store:
        name = f"tiered_{label.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return Store(self.work / label, self.backends.pg_uri.replace("/postgres?", f"/{name}?", 1), self._bucket(name))

    def checkpoint(self, store: Store) -> None:
        pass

    def db_bytes(self, store: Store) -> int:
        import psycopg

        with psycopg.connect(store.db) as conn:
            row = conn.execute("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN "
                               "pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND "
                               "n.nspname = current_schema()").fetchone()
        return int(row[0]) if row else 0

    def blob_bytes(self, store: Store) -> int:
        import boto3

        bucket = store.blobs[len("s3://"):].split("/", 1)[0]
        pages = boto3.client("s3", endpoint_url=self.backends.s3).get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="blobs/segments/")
        return sum(int(item["Size"]) for page in pages for item in page.get("Contents", []))

    def copy(self, store: Store, label: str) -> Store:
        """A new database from the old one as its template; a new bucket (before sealing there are no
        segment objects to copy, and the metric has no files)."""
        name = f"tiered_{label.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._dbname(store)}"')
        return Store(self.work / label, self.backends.pg_uri.replace("/postgres?", f"/{name}?", 1), self._bucket(name))

    def compact(self, store: Store) -> None:
        import psycopg

        with psycopg.connect(store.db, autocommit=True) as conn:
            conn.execute("VACUUM FULL")

    def drop(self, store: Store) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self._dbname(store)}"')
        shutil.rmtree(store.dir, ignore_errors=True)


Backend = SqliteFiles  # the interface (PostgresS3 overrides what differs)


# --- ingest ---------------------------------------------------------------------------------------------------
@dataclass
class Ingest:
    rate: float  # points/s over the requests' wall time
    cpu_ns: float  # server CPU per point (its sealer's included)
    sealed: int  # points in the blob store at the last answer
    db_bytes: int  # the database after the server stopped (sealing on: no VACUUM)
    experiment: str


def open_store(store: Store) -> Any:
    from ml_dash.server.storage.registry import open_metadata_store

    return open_metadata_store(store.db, 2)


def ingest(backend: Backend, store: Store, args: argparse.Namespace, interval: float) -> Ingest:
    settings = ["log_requests=false", f"tiering.interval={interval:g}", f"tiering.chunk_size={args.chunk_size}"]
    with live_server(store.dir, *settings, *store.args(), env=backend.env()) as server:
        key = server.token("bench", "bench")
        client = httpx.Client(base_url=server.url, timeout=300, headers={"Authorization": f"Bearer {key}"})
        exp = client.post("/projects/bench/experiments", json={"name": "tiered"})
        exp.raise_for_status()
        experiment = str(exp.json()["experiment"]["id"])
        path = f"/experiments/{experiment}/metrics/{METRIC}/append-batch"
        headers = {"Content-Type": "application/json"}
        spent, cpu = 0.0, server_cpu(server.process.pid)
        for first in range(0, args.points, BATCH):
            content = body(first, min(BATCH, args.points - first))
            start = time.perf_counter()
            client.post(path, content=content, headers=headers).raise_for_status()
            spent += time.perf_counter() - start
        cpu = server_cpu(server.process.pid) - cpu
        client.close()
        meta = open_store(store)
        try:
            sealed = meta.tier_sizes()["sealed_points"]
        finally:
            meta.close()
        if "Traceback" in server.log or "sealing chunks failed" in server.log:
            raise RuntimeError(f"the server reported an error:\n{server.log[-3000:]}")
    backend.checkpoint(store)
    return Ingest(args.points / spent, cpu / args.points * 1e9, sealed, backend.db_bytes(store), experiment)


def ingest_bench(backend: Backend, args: argparse.Namespace) -> tuple[dict[str, Ingest], Store, str]:
    """Best of ``--rounds`` per mode, alternating which goes first; the store of the last run with
    sealing off (kept for the rest) and its experiment id."""
    best: dict[str, Ingest] = {}
    kept: Store | None = None
    experiment = ""
    for r in range(args.rounds):
        for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
            print(f"ingest round {r + 1}/{args.rounds}, sealing {mode} ...", file=sys.stderr, flush=True)
            store = backend.fresh(f"ingest-{mode}-{r}")
            got = ingest(backend, store, args, 0.0 if mode == "off" else args.seal_interval)
            if mode not in best or got.rate > best[mode].rate:
                best[mode] = got
            if mode == "off":
                if kept is not None:
                    backend.drop(kept)
                kept, experiment = store, got.experiment
            else:
                backend.drop(store)
    assert kept is not None
    return best, kept, experiment


# --- sizes ----------------------------------------------------------------------------------------------------
@dataclass
class Sizes:
    db: int
    blobs: int
    tiers: dict[str, int]


def sizes(backend: Backend, store: Store) -> Sizes:
    backend.checkpoint(store)
    meta = open_store(store)
    try:
        tiers = meta.tier_sizes()
    finally:
        meta.close()
    return Sizes(backend.db_bytes(store), backend.blob_bytes(store), tiers)


def empty_db_bytes(backend: Backend) -> int:
    """The database of a store with nothing in it (its tables and indexes, migrated)."""
    store = backend.fresh("empty")
    open_store(store).close()
    try:
        backend.checkpoint(store)
        return backend.db_bytes(store)
    finally:
        backend.drop(store)


def state(store: Store, args: argparse.Namespace) -> Any:
    from ml_dash.config.models import ServeConfig
    from ml_dash.server.state import ServerState

    return ServerState(ServeConfig(data_dir=store.dir, db=store.db, blobs=store.blobs, log_requests=False,
                                   tiering={"chunk_size": args.chunk_size, "interval": 0}))


def seal_copy(backend: Backend, before: Store, args: argparse.Namespace) -> tuple[Store, int, float, float]:
    """The copy, sealed and compacted: ``(store, chunks sealed, seconds sealing, seconds of VACUUM)``."""
    after = backend.copy(before, "after")
    st = state(after, args)
    try:
        start = time.perf_counter()
        sealed = st.tiering.seal_due()
        sealing = time.perf_counter() - start
    finally:
        st.close()
    start = time.perf_counter()
    backend.compact(after)
    return after, sealed, sealing, time.perf_counter() - start


# --- reads ----------------------------------------------------------------------------------------------------
Time = tuple[float, float]  # (wall ms, CPU ms of this process: the app runs in it, so CPU is its own work)


def timed(fn: Callable[[], Any]) -> Time:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


@dataclass
class Figure:
    label: str
    before: Time  # medians
    after: Time
    counted: bool = True  # in the series goal (cold figures are shown, not judged)


class Side:
    """One store behind the in-process app."""

    def __init__(self, store: Store, experiment: str, args: argparse.Namespace) -> None:
        from ml_dash.api.auth import hash_api_key

        self.store, self.experiment, self.args = store, experiment, args
        self.key = f"mld_bench_tiered_{uuid.uuid4().hex}"  # a new one: the store may be a kept one (--work-dir)
        st = state(store, args)
        st.store.create_api_key(f"bench-{self.key[-8:]}", "bench", hash_api_key(self.key))
        st.close()
        self.st, self.client = self.open()
        self.base = f"/experiments/{experiment}/metrics/{METRIC}"

    def open(self) -> tuple[Any, Any]:
        from fastapi.testclient import TestClient

        from ml_dash.server.app import create_app

        st = state(self.store, self.args)
        # Not entered as a context manager: no lifespan, so no sealer in this process (interval 0 anyway).
        return st, TestClient(create_app(st), headers={"Authorization": f"Bearer {self.key}"})

    def close(self) -> None:
        self.client.close()
        self.st.close()

    def get(self, client: Any, route: str, **params: Any) -> Any:
        r = client.get(f"{self.base}/{route}", params=params)
        r.raise_for_status()
        return r

    def tick(self) -> None:
        """The live tick: TICK more points, an unsealed tail as a running experiment has."""
        n = self.args.points
        self.client.post(f"{self.base}/append-batch", content=body(n, TICK),
                         headers={"Content-Type": "application/json"}).raise_for_status()

    def series(self, client: Any | None = None, **params: Any) -> Any:
        return self.get(client or self.client, "series", y="value", x="step", points=1000, **params)

    def cold_series(self) -> Time:
        """The series on a freshly opened state: nothing cached in this process (a stats request
        first, so that the login's own first-time costs are not counted)."""
        st, client = self.open()
        try:
            self.get(client, "stats")
            return timed(lambda: self.series(client))
        finally:
            client.close()
            st.close()

    def page(self, start: int) -> tuple[Time, bytes, int, bool]:
        """One page of the full read: ``(time, body, points, more after it)``."""
        got: list[Any] = []
        spent = timed(lambda: got.append(self.get(self.client, "data", startIndex=start, limit=BATCH)))
        doc = orjson.loads(got[0].content)
        return spent, got[0].content, len(doc["data"]), bool(doc["hasMore"])


def median(times: list[Time]) -> Time:
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def alternate(label: str, before: Side, after: Side, rounds: int, measure: Callable[[Side, int], Time],
              counted: bool = True) -> Figure:
    """Medians of ``rounds`` measurements of each side, which goes first alternating by round."""
    times: dict[int, list[Time]] = {id(before): [], id(after): []}
    for r in range(rounds):
        for side in ((before, after) if r % 2 == 0 else (after, before)):
            times[id(side)].append(measure(side, r))
    return Figure(label, median(times[id(before)]), median(times[id(after)]), counted)


def read_bench(before: Side, after: Side, args: argparse.Namespace) -> list[Figure]:
    n, rounds = args.points, args.reads
    width = max(2, n // 100)
    print("reads: series ...", file=sys.stderr, flush=True)
    out = [alternate("series, cold (fresh state)", before, after, rounds, lambda s, r: s.cold_series(), False)]
    for side in (before, after):
        side.series()  # warm-up
    out.append(alternate("series, warm", before, after, rounds, lambda s, r: timed(s.series)))

    def new_window(side: Side, r: int) -> Time:
        # Spread over the series, never the same place twice: the objects at its edges are read for the first time.
        lo = int((r + 0.5) * (n - width) / rounds)
        return timed(lambda: side.series(start=lo, end=lo + width))

    out.append(alternate("zoom 1%, a new window each time", before, after, rounds, new_window, False))
    same = n // 3
    for side in (before, after):
        side.series(start=same, end=same + width)
    out.append(alternate("zoom 1%, the same window (warm)", before, after, rounds,
                         lambda s, r: timed(lambda: s.series(start=same, end=same + width))))
    for side in (before, after):
        side.series(since=n)
    out.append(alternate(f"live tick (since: the last {TICK} points)", before, after, rounds,
                         lambda s, r: timed(lambda: s.series(since=n))))
    return out


def client_floor(side: Side, rounds: int) -> float:
    """Median wall ms of a request that does nothing (GET /health): the in-process client's own cost."""
    side.client.get("/health").raise_for_status()
    return median([timed(lambda: side.client.get("/health").raise_for_status()) for _ in range(rounds)])[0]


def full_read_bench(before: Side, after: Side, args: argparse.Namespace) -> tuple[Figure, bool]:
    """Reading every point by pages of BATCH from each store (the median of ``--full-reads``), and
    whether every page before the tick was the same bytes in both. The two reads go page by page in
    step (which store first alternating by page): one long read each would put minutes of the
    machine's other load on one side only."""
    totals: dict[int, list[Time]] = {id(before): [], id(after): []}
    same = True
    for r in range(args.full_reads):
        print(f"reads: full read {r + 1}/{args.full_reads} ...", file=sys.stderr, flush=True)
        spent = {id(before): [0.0, 0.0], id(after): [0.0, 0.0]}
        start, k = 0, 0
        while True:
            got: dict[int, tuple[bytes, int, bool]] = {}
            for side in ((before, after) if (k + r) % 2 == 0 else (after, before)):
                (wall, cpu), content, n, more = side.page(start)
                spent[id(side)][0] += wall
                spent[id(side)][1] += cpu
                got[id(side)] = (content, n, more)
            (b_body, b_n, b_more), (a_body, a_n, a_more) = got[id(before)], got[id(after)]
            if start + BATCH <= args.points:  # a page of the points both stores hold alike (the ticks differ)
                same = same and b_body == a_body
            if (b_n, b_more) != (a_n, a_more):
                raise RuntimeError(f"page {start:,}: {b_n} points before, {a_n} after")
            start, k = start + b_n, k + 1
            if not b_more or not b_n:
                break
        if start != args.points + TICK:
            raise RuntimeError(f"the full read gave {start:,} points, not {args.points + TICK:,}")
        for key, (wall, cpu) in spent.items():
            totals[key].append((wall, cpu))
    label = f"full read, data route by {BATCH:,} (x{args.full_reads})"
    return Figure(label, median(totals[id(before)]), median(totals[id(after)]), False), same


# --- the report -----------------------------------------------------------------------------------------------
def report(args: argparse.Namespace, backend: Backend, ing: dict[str, Ingest], pre: Sizes, post: Sizes, empty: int,
           sealing: tuple[int, float, float], reads: list[Figure], full: Figure, same: bool,
           floor: float) -> list[str]:
    n = args.points
    lines = [f"tiered storage, {backend.name}: one metric of {n:,} points {{value, step}}, "
             f"tiering.chunk_size {args.chunk_size:,}, {os.cpu_count()} cores", ""]
    off, on = ing["off"], ing["on"]
    lines += [f"ingest: a live ml-dash serve on 127.0.0.1, {BATCH:,}-point append-batch requests as a writer, "
              f"best of {args.rounds} alternating rounds",
              f"  {'sealing':<26}{'points/s':>12}{'server CPU/point':>18}{'sealed at the end':>19}"
              f"{'database at the end':>21}"]
    for label, got in (("off (tiering.interval=0)", off), (f"on (every {args.seal_interval:g} s)", on)):
        lines.append(f"  {label:<26}{got.rate:>12,.0f}{got.cpu_ns:>15,.0f} ns{got.sealed:>19,}{mb(got.db_bytes):>21}")
    ratio = on.rate / off.rate
    lines += [f"  on/off {ratio:.2f}x (goal >= {GOAL_INGEST}x: {verdict(ratio >= GOAL_INGEST)}); server CPU "
              f"{on.cpu_ns / off.cpu_ns:.2f}x per point; the database at the end of the run with sealing on is "
              f"without VACUUM", ""]
    chunks, seal_s, vacuum_s = sealing
    compact = "VACUUM FULL" if isinstance(backend, PostgresS3) else "VACUUM"
    db_ratio = pre.db / max(post.db, 1)
    lines += [f"sizes: before = the store as ingested with sealing off; after = a copy, seal_due() ({chunks:,} chunks "
              f"in {seal_s:.1f} s, {n / max(seal_s, 1e-9):,.0f} points/s) then {compact} ({vacuum_s:.1f} s)",
              f"  {'':<28}{'before':>16}{'after':>16}{'before/after':>14}",
              f"  {'database':<28}{mb(pre.db):>16}{mb(post.db):>16}{db_ratio:>13.1f}x  "
              f"(goal >= {GOAL_DB:g}x: {verdict(db_ratio >= GOAL_DB)})",
              f"  {'blob store (segments)':<28}{mb(pre.blobs):>16}{mb(post.blobs):>16}",
              f"  {'database + blob store':<28}{mb(pre.db + pre.blobs):>16}{mb(post.db + post.blobs):>16}"
              f"{(pre.db + pre.blobs) / max(post.db + post.blobs, 1):>13.1f}x",
              f"  {'points in the database':<28}{pre.tiers['database_points']:>16,}{post.tiers['database_points']:>16,}",
              f"  {'chunk rows (of them sealed)':<28}{rows(pre):>16}{rows(post):>16}",
              f"  (the database of an empty store: {mb(empty)}; a floor the ratio cannot pass on small series)", ""]
    lines += [f"reads: in-process app (TestClient), after a live tick of {TICK} points on both, median of "
              f"{args.reads} (before/after alternating); CPU: this process's (the app's work, whatever else runs)",
              f"  {'':<44}{'before ms':>11}{'after ms':>11}{'after/before':>14}{'CPU after/before':>18}"]
    worst = 0.0
    for f in [*reads, full]:
        wall, cpu = f.after[0] / f.before[0], f.after[1] / max(f.before[1], 1e-9)
        mark = "" if f.counted else "  (not in the goal)"
        lines.append(f"  {f.label:<44}{f.before[0]:>11,.1f}{f.after[0]:>11,.1f}{wall:>13.2f}x{cpu:>17.2f}x{mark}")
        if f.counted:
            worst = max(worst, wall)
    lines.append(f"  full read: {(n + TICK) / full.before[0] * 1000:,.0f} points/s before, "
                 f"{(n + TICK) / full.after[0] * 1000:,.0f} after; every page {'identical' if same else 'DIFFERENT'} "
                 f"before and after")
    lines.append(f"  (the TestClient's own cost, GET /health: {floor:.1f} ms of every figure above)")
    lines += [f"  series route, warm, worst after/before {worst:.2f}x (goal <= {GOAL_SERIES}x: "
              f"{verdict(worst <= GOAL_SERIES)})", ""]
    met = [db_ratio >= GOAL_DB, worst <= GOAL_SERIES, ratio >= GOAL_INGEST]
    lines.append(f"goals: database >= {GOAL_DB:g}x smaller {verdict(met[0])}; series route not slower "
                 f"{verdict(met[1])}; ingest with sealing on within 10% {verdict(met[2])}; full read "
                 f"{'identical' if same else 'DIFFERENT'} after sealing")
    return lines


@contextmanager
def workspace(args: argparse.Namespace) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="ml-dash-tiered-")) if args.work_dir is None else args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    if args.work_dir is None:
        # Once more at exit: pgserver's own exit hook (registered later, so run before this one) writes a
        # lock file into the work dir after it was removed.
        atexit.register(shutil.rmtree, work, True)
    try:
        yield work
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, help="points of the metric (default 10,000,000; --quick 1,000,000)")
    parser.add_argument("--chunk-size", type=int, default=10_000, help="tiering.chunk_size (default 10,000)")
    parser.add_argument("--rounds", type=int, help="ingest rounds of each mode, alternating, the best kept (default 2; "
                                                    "--quick 3)")
    parser.add_argument("--reads", type=int, default=21, help="requests per read figure (the median is shown)")
    parser.add_argument("--full-reads", type=int, help="full reads of each store (the median is shown; default 1, "
                                                       "--quick 2: one read of 10M points takes minutes)")
    parser.add_argument("--seal-interval", type=float, default=1.0,
                        help="tiering.interval of the ingest with sealing on (default 1 s)")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite",
                        help="SQLite + files (default) or PostgreSQL (pgserver) + S3 (moto)")
    parser.add_argument("--quick", action="store_true", help="1,000,000 points (unless --points)")
    parser.add_argument("--work-dir", type=Path, help="keep the stores here (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    for name, quick, full in (("points", 1_000_000, 10_000_000), ("rounds", 3, 2), ("full_reads", 2, 1)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.points < BATCH:
        parser.error(f"--points: at least {BATCH:,}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    for name in [k for k in os.environ if k.startswith(("ML_DASH_", "DREAMLAKE_"))]:
        del os.environ[name]  # no ambient settings in the servers or in this process
    began = time.monotonic()
    with workspace(args) as work:
        os.environ["ML_DASH_CONFIG_DIR"] = str(work / "home")
        backend: Backend = PostgresS3(work) if args.backend == "postgres" else SqliteFiles(work)
        backend.start()
        try:
            ing, before, experiment = ingest_bench(backend, args)
            print("sealing a copy ...", file=sys.stderr, flush=True)
            pre = sizes(backend, before)
            after, chunks, seal_s, vacuum_s = seal_copy(backend, before, args)
            post = sizes(backend, after)
            empty = empty_db_bytes(backend)
            sides = [Side(before, experiment, args), Side(after, experiment, args)]
            try:
                for side in sides:
                    side.tick()
                reads = read_bench(*sides, args)
                full, same = full_read_bench(*sides, args)
                floor = client_floor(sides[0], args.reads)
            finally:
                for side in sides:
                    side.close()
        finally:
            backend.stop()
    lines = report(args, backend, ing, pre, post, empty, (chunks, seal_s, vacuum_s), reads, full, same, floor)
    lines.append(f"(bench wall time {time.monotonic() - began:,.0f} s)")
    print("\n".join(lines))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
