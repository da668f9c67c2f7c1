"""Concurrency: many clients, one or two ``ml-dash serve`` processes, one database.

Every test runs against real servers over HTTP on 127.0.0.1, on SQLite (one file shared by
the processes) and on PostgreSQL (pgserver, blobs on moto's S3), with one server process and
with two processes on the same ``--db``. Requests start together (a barrier), and each
test checks that the requests really were in flight at once. Afterwards every write is
stored exactly once: nothing lost, nothing doubled, no 5xx.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import queue
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml_dash.api.auth import hash_api_key, make_username_token
from ml_dash.api.errors import ServerError
from ml_dash.server.storage.migrations import MIGRATIONS
from ml_dash.server.storage.registry import open_metadata_store
from tests.helpers.backends import S3_BUCKET, fresh_postgres_db
from tests.helpers.server import ML_DASH, LiveServer, live_server

NAMESPACE = "racers"


# --- running things at once ------------------------------------------------------------------------------
class InFlight:
    """Counts requests in flight; ``peak`` proves they overlapped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self._now += 1
            self.peak = max(self.peak, self._now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._now -= 1


def together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(0..n-1)`` on n threads released at once by a barrier; results in order."""
    barrier = threading.Barrier(n, timeout=60)

    def run(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


@dataclass
class Cluster:
    """One database, one blob store, one or more server processes on them."""

    label: str
    db: str
    blobs: str
    servers: list[LiveServer]
    key: str
    inflight: InFlight = field(default_factory=InFlight)
    _clients: dict[tuple[int, str], httpx.Client] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, i: int, token: str | None = None) -> httpx.Client:
        """Thread ``i``'s client, of server ``i mod n``: consecutive threads talk to different processes."""
        token = token or self.key
        with self._lock:
            if (i, token) not in self._clients:
                self._clients[i, token] = _http(self.servers[i % len(self.servers)].url, token)
            return self._clients[i, token]

    def use(self, i: int, token: str | None = None) -> AbstractContextManager[httpx.Client]:
        """``with cluster.use(i) as c``: thread ``i``'s client, left open for the next test."""
        return nullcontext(self.client(i, token))

    def close(self) -> None:
        for c in self._clients.values():
            c.close()

    def call(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.inflight:
            return client.request(method, path, **kwargs)

    def experiment(self, prefix: str) -> str:
        r = self.client(0).post("/projects/race/experiments", json={"name": f"{prefix}-{uuid.uuid4().hex[:8]}"})
        assert r.status_code == 201, r.text
        return str(r.json()["experiment"]["id"])

    def assert_overlapped(self, at_least: int = 2) -> None:
        assert self.inflight.peak >= at_least, f"requests never overlapped (peak {self.inflight.peak} in flight)"


def _http(url: str, token: str) -> httpx.Client:
    # Plain HTTP on 127.0.0.1: no TLS context to build (it costs ~50 ms a client).
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120, verify=False)


def _store_urls(kind: str, root: Path, pg: str | None, s3: str | None) -> tuple[str, str]:
    if kind == "sqlite":
        return f"sqlite:///{root / 'meta.db'}", f"file://{root / 'blobs'}"
    assert pg is not None and s3 is not None
    return fresh_postgres_db(pg), f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:8]}?endpoint_url={s3}"


def _make_key(db: str, name: str, namespace: str) -> str:
    key = f"mld_{uuid.uuid4().hex}"
    store = open_metadata_store(db)
    try:
        store.create_api_key(name, namespace, hash_api_key(key))
    finally:
        store.close()
    return key


def start_servers(stack: ExitStack, dirs: list[Path], db: str, blobs: str) -> list[LiveServer]:
    """``ml-dash serve`` processes on one database, started at the same moment; stopped by ``stack``."""
    starting = [live_server(d, "--db", db, "--blobs", blobs) for d in dirs]

    def start(i: int) -> LiveServer | BaseException:
        try:
            return starting[i].__enter__()
        except BaseException as exc:  # noqa: BLE001 - raised below, once the others are registered for stopping
            return exc

    started = together(len(dirs), start)
    for cm, server in zip(starting, started, strict=True):
        if isinstance(server, LiveServer):
            stack.push(cm.__exit__)
    for server in started:
        if not isinstance(server, LiveServer):
            raise server
    return [s for s in started if isinstance(s, LiveServer)]


@pytest.fixture(scope="module", params=[("sqlite", 1), ("sqlite", 2), ("postgres", 1), ("postgres", 2)],
                ids=["sqlite-1proc", "sqlite-2procs", "postgres-1proc", "postgres-2procs"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kind, processes = request.param
    root = tmp_path_factory.mktemp(f"{kind}-{processes}")
    pg = request.getfixturevalue("postgres_server") if kind == "postgres" else None
    s3 = request.getfixturevalue("s3_server") if kind == "postgres" else None
    db, blobs = _store_urls(kind, root, pg, s3)
    key = _make_key(db, "racer-key", NAMESPACE)  # creates the schema: a fresh start at once is test 8's business
    with ExitStack() as stack:
        servers = start_servers(stack, [root / f"srv{i}" for i in range(processes)], db, blobs)
        c = Cluster(f"{kind}-{processes}", db, blobs, servers, key)
        stack.callback(c.close)
        yield c
        for server in servers:  # no request may have crashed a worker or logged a traceback
            assert "Traceback" not in server.log, server.log


@pytest.fixture(autouse=True)
def _count_overlap_per_test(request: pytest.FixtureRequest) -> None:
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster").inflight = InFlight()


def _ok(r: httpx.Response, *codes: int) -> dict[str, Any]:
    assert r.status_code in (codes or (200, 201)), f"{r.status_code}: {r.text}"
    return dict(r.json())


def _all_logs(c: httpx.Client, exp: str) -> list[dict[str, Any]]:
    page = _ok(c.get(f"/experiments/{exp}/logs", params={"limit": 10000}))
    assert page["hasMore"] is False
    return list(page["logs"])


def _all_points(c: httpx.Client, exp: str, metric: str) -> list[tuple[int, dict[str, Any]]]:
    r = c.get(f"/experiments/{exp}/metrics/{metric}/data", params={"limit": 100000})
    return [(int(p["index"]), p["data"]) for p in _ok(r)["data"]]


# --- 1. creation -------------------------------------------------------------------------------------------
def test_the_same_namespace_project_and_experiment_created_at_once_is_one(cluster: Cluster) -> None:
    n = 8
    slug = f"new-{uuid.uuid4().hex[:8]}"  # a namespace nobody has used: each request creates it (0.5.x token)
    token = make_username_token(slug)
    name = f"same-{uuid.uuid4().hex[:6]}"

    def create(i: int) -> httpx.Response:
        with cluster.use(i, token) as c:
            return cluster.call(c, "POST", f"/projects/p-{slug}/experiments", json={"name": name, "tags": [f"t{i}"]})

    responses = together(n, create)
    bodies = [_ok(r, 201) for r in responses]
    assert len({b["experiment"]["id"] for b in bodies}) == 1
    assert len({b["project"]["id"] for b in bodies}) == 1
    assert len({b["namespace"]["id"] for b in bodies}) == 1
    cluster.assert_overlapped()
    store = open_metadata_store(cluster.db)
    try:
        ns = store.ensure_namespace(slug)
        assert str(ns["id"]) == bodies[0]["namespace"]["id"]
        assert [p["slug"] for p in store.list_projects(ns["id"])] == [f"p-{slug}"]
        assert [str(e["id"]) for e in store.list_experiments(ns["id"])] == [bodies[0]["experiment"]["id"]]
    finally:
        store.close()


# --- 2./3. appends without positions (the 0.5.8 client) --------------------------------------------------------
def test_log_lines_without_positions_are_each_stored_once_without_gaps(cluster: Cluster) -> None:
    threads, requests, lines = 8, 25, 4
    exp = cluster.experiment("logs")

    def send(i: int) -> int:
        created = 0
        with cluster.use(i) as c:
            for j in range(requests):
                body = {"logs": [{"message": f"{i}:{j}:{k}", "level": "info"} for k in range(lines)]}
                created += _ok(cluster.call(c, "POST", f"/experiments/{exp}/logs", json=body), 201)["created"]
        return created

    assert together(threads, send) == [requests * lines] * threads
    cluster.assert_overlapped()
    with cluster.use(0) as c:
        logs = _all_logs(c, exp)
    total = threads * requests * lines
    assert [x["sequenceNumber"] for x in logs] == list(range(total))
    messages = [x["message"] for x in logs]
    assert Counter(messages) == Counter(f"{i}:{j}:{k}" for i in range(threads) for j in range(requests)
                                        for k in range(lines))
    for i in range(threads):  # each thread's lines keep its order, each request's lines stay together
        mine = [m for m in messages if m.startswith(f"{i}:")]
        assert mine == [f"{i}:{j}:{k}" for j in range(requests) for k in range(lines)]
    for start in range(0, total, lines):
        assert len({m.rsplit(":", 1)[0] for m in messages[start:start + lines]}) == 1


def test_metric_batches_without_positions_are_each_stored_once(cluster: Cluster) -> None:
    threads, requests = 8, 12
    exp = cluster.experiment("metrics")

    def size(i: int, j: int) -> int:
        return 1 + (i + j) % 5

    def send(i: int) -> int:
        inserted = 0
        with cluster.use(i) as c:
            for j in range(requests):
                body = {"dataPoints": [{"t": i, "r": j, "k": k} for k in range(size(i, j))]}
                r = cluster.call(c, "POST", f"/experiments/{exp}/metrics/loss/append-batch", json=body)
                inserted += _ok(r, 200)["inserted"]
        return inserted

    sent = sum(size(i, j) for i in range(threads) for j in range(requests))
    assert sum(together(threads, send)) == sent
    cluster.assert_overlapped()
    with cluster.use(0) as c:
        points = _all_points(c, exp, "loss")
        stats = _ok(c.get(f"/experiments/{exp}/metrics/loss/stats"))
    assert int(stats["totalDataPoints"]) == sent
    assert [index for index, _ in points] == list(range(sent))
    assert Counter((p["t"], p["r"], p["k"]) for _, p in points) == Counter(
        (i, j, k) for i in range(threads) for j in range(requests) for k in range(size(i, j)))


# --- 4. appends by writer -------------------------------------------------------------------------------------
def test_writer_appends_replayed_and_out_of_order_are_each_stored_once(cluster: Cluster) -> None:
    writers, batches, lines, points = 6, 6, 5, 4
    exp = cluster.experiment("writers")

    def log_body(w: int, b: int) -> dict[str, Any]:
        return {"writerId": f"rank-{w}", "logs": [{"message": f"w{w}:{b * lines + k}", "writerSeq": b * lines + k}
                                                  for k in range(lines)]}

    def metric_body(w: int, b: int) -> dict[str, Any]:
        seqs = list(range(b * points, (b + 1) * points))
        body: dict[str, Any] = {"writerId": f"rank-{w}", "dataPoints": [{"w": w, "s": s} for s in seqs]}
        if b % 2:
            body["writerSeqs"] = seqs[::-1]  # one number per point, not following on
            body["dataPoints"] = body["dataPoints"][::-1]
        else:
            body["writerSeq"] = seqs[0]
        return body

    # Thread 2w is writer w (batch 2 before batch 1, then a replay of everything); thread 2w+1 is
    # the same writer's retries racing it (all batches, last first), on the other server process.
    def send(i: int) -> tuple[int, int, int, int]:
        w = i // 2
        order = [0, 2, 1, *range(3, batches), *range(batches)] if i % 2 == 0 else list(range(batches))[::-1]
        created = dup_logs = inserted = dup_points = 0
        with cluster.use(i) as c:
            for b in order:
                r = _ok(cluster.call(c, "POST", f"/experiments/{exp}/logs", json=log_body(w, b)), 201)
                created, dup_logs = created + r["created"], dup_logs + r["duplicates"]
                assert r["created"] + r["duplicates"] == lines
                r = _ok(cluster.call(c, "POST", f"/experiments/{exp}/metrics/m/append-batch",
                                     json=metric_body(w, b)), 200)
                inserted, dup_points = inserted + r["inserted"], dup_points + r["duplicates"]
                assert r["inserted"] + r["duplicates"] == points
        return created, dup_logs, inserted, dup_points

    results = together(2 * writers, send)
    cluster.assert_overlapped()
    for w in range(writers):  # each record of a writer was new exactly once, whichever thread got there first
        mine = results[2 * w], results[2 * w + 1]
        assert sum(x[0] for x in mine) == batches * lines
        assert sum(x[2] for x in mine) == batches * points
    with cluster.use(0) as c:
        logs = _all_logs(c, exp)
        metric = _all_points(c, exp, "m")
        streams = _ok(c.get(f"/experiments/{exp}/streams", params={"writer": "rank-3"}))
    assert [x["sequenceNumber"] for x in logs] == list(range(writers * batches * lines))
    assert Counter(x["message"] for x in logs) == Counter(f"w{w}:{s}" for w in range(writers)
                                                          for s in range(batches * lines))
    assert [index for index, _ in metric] == list(range(writers * batches * points))
    assert Counter((p["w"], p["s"]) for _, p in metric) == Counter((w, s) for w in range(writers)
                                                                   for s in range(batches * points))
    assert streams["logs"] == writers * batches * lines and streams["metrics"] == {"m": writers * batches * points}
    assert streams["marked"] == {"logs": writers * batches * lines, "metric:m": writers * batches * points}
    assert streams["writer"] == {"logs": [[0, batches * lines - 1]], "metric:m": [[0, batches * points - 1]]}


# --- 5. appends by position ---------------------------------------------------------------------------------
def test_two_writers_on_one_position_one_wins_the_other_gets_a_conflict(cluster: Cluster) -> None:
    rivals, rounds, width = 4, 6, 3
    exp = cluster.experiment("positions")
    winners: dict[str, list[int]] = {"logs": [], "metric": []}

    for r in range(rounds):
        def log_at(i: int, r: int = r) -> httpx.Response:
            body = {"logs": [{"message": f"rival {i} round {r}", "sequenceNumber": r}]}
            with cluster.use(i) as c:
                return cluster.call(c, "POST", f"/experiments/{exp}/logs", json=body)

        def points_at(i: int, r: int = r) -> httpx.Response:
            body = {"dataPoints": [{"rival": i, "k": k} for k in range(width)], "startIndex": r * width}
            with cluster.use(i) as c:
                return cluster.call(c, "POST", f"/experiments/{exp}/metrics/pos/append-batch", json=body)

        for stream, work, stored in (("logs", log_at, "created"), ("metric", points_at, "inserted")):
            responses = together(rivals, work)
            ok = [i for i, resp in enumerate(responses) if resp.is_success]
            assert len(ok) == 1, [(x.status_code, x.text) for x in responses]
            assert responses[ok[0]].json()[stored] == (1 if stream == "logs" else width)  # not a silent no-op
            for i, resp in enumerate(responses):
                if i != ok[0]:
                    assert resp.status_code == 409, resp.text
                    assert resp.json()["error"]["code"] == "conflict"
                    assert "already stored with other" in resp.json()["error"]["message"]
            winners[stream].append(ok[0])
    cluster.assert_overlapped()
    with cluster.use(0) as c:
        logs = _all_logs(c, exp)
        points = _all_points(c, exp, "pos")
    assert [(x["sequenceNumber"], x["message"]) for x in logs] == [
        (r, f"rival {w} round {r}") for r, w in enumerate(winners["logs"])]
    assert points == [(r * width + k, {"rival": w, "k": k}) for r, w in enumerate(winners["metric"])
                      for k in range(width)]


# --- 6. parameters ------------------------------------------------------------------------------------------
def test_concurrent_parameter_merges_keep_every_key(cluster: Cluster) -> None:
    n, rounds = 8, 3
    exp = cluster.experiment("params")

    def merge(i: int) -> None:
        with cluster.use(i) as c:
            for j in range(rounds):
                r = cluster.call(c, "POST", f"/experiments/{exp}/parameters", json={"data": {f"k{i}_{j}": i * j}})
                _ok(r, 200)

    together(n, merge)
    cluster.assert_overlapped()
    with cluster.use(0) as c:
        params = _ok(c.get(f"/experiments/{exp}/parameters"))
    assert params["data"] == {f"k{i}_{j}": i * j for i in range(n) for j in range(rounds)}
    assert params["version"] == n * rounds  # every merge added a key: one version each, none lost


# --- 7. files -----------------------------------------------------------------------------------------------
def _upload(cluster: Cluster, c: httpx.Client, exp: str, filename: str, content: bytes) -> httpx.Response:
    data = {"prefix": "/models", "checksum": hashlib.sha256(content).hexdigest(), "sizeBytes": str(len(content))}
    return cluster.call(c, "POST", f"/experiments/{exp}/files", data=data,
                        files={"file": (filename, content, "application/octet-stream")})


def test_concurrent_uploads_of_one_path_leave_one_live_record(cluster: Cluster) -> None:
    n = 8
    exp = cluster.experiment("files")
    same = b"identical weights " * 1000

    def upload_same(i: int) -> httpx.Response:
        with cluster.use(i) as c:
            return _upload(cluster, c, exp, "same.bin", same)

    def upload_other(i: int) -> httpx.Response:
        with cluster.use(i) as c:
            return _upload(cluster, c, exp, "other.bin", f"content {i} ".encode() * 1000)

    same_ids = {_ok(r, 201)["id"] for r in together(n, upload_same)}
    assert len(same_ids) == 1
    other = [_ok(r, 201) for r in together(n, upload_other)]
    cluster.assert_overlapped()
    with cluster.use(0) as c:
        live = _ok(c.get(f"/experiments/{exp}/files"))["files"]
        assert sorted(f["filename"] for f in live) == ["other.bin", "same.bin"]
        (kept,) = [f for f in live if f["filename"] == "other.bin"]
        assert kept["id"] in {f["id"] for f in other}
        body = c.get(f"/experiments/{exp}/files/{kept['id']}/download")
        assert body.status_code == 200 and hashlib.sha256(body.content).hexdigest() == kept["checksum"]
    store = open_metadata_store(cluster.db)
    try:
        every = [f for f in store.list_files(int(exp), include_deleted=True) if f["filename"] == "other.bin"]
    finally:
        store.close()
    assert sorted(str(f["id"]) for f in every) == sorted(f["id"] for f in other)  # one record per upload
    assert [str(f["id"]) for f in every if f["deleted_at"] is None] == [kept["id"]]  # the others soft-deleted
    assert {f["checksum"] for f in every} == {hashlib.sha256(f"content {i} ".encode() * 1000).hexdigest()
                                              for i in range(n)}


# --- everything at once on one experiment (a job's ranks) ---------------------------------------------------------
def test_mixed_traffic_on_one_experiment_neither_deadlocks_nor_loses_writes(cluster: Cluster) -> None:
    """Logs, metrics by writer, parameters, uploads, re-creates and status updates of one
    experiment interleaved: every transaction locks the same experiment row or beside it."""
    n, rounds = 8, 4
    name = f"mixed-{uuid.uuid4().hex[:8]}"
    exp = _ok(cluster.client(0).post("/projects/race/experiments", json={"name": name}), 201)["experiment"]["id"]

    def rank(i: int) -> None:
        c = cluster.client(i)
        for j in range(rounds):
            calls = [
                ("POST", f"/experiments/{exp}/logs", {"json": {"logs": [{"message": f"{i}:{j}:{k}"} for k in range(2)]}}),
                ("POST", f"/experiments/{exp}/metrics/m{i % 2}/append-batch",
                 {"json": {"writerId": f"mix-{i}", "writerSeq": 3 * j, "dataPoints": [{"i": i, "s": 3 * j + k}
                                                                                      for k in range(3)]}}),
                ("POST", f"/experiments/{exp}/parameters", {"json": {"data": {f"p{i}_{j}": j}}}),
                ("POST", "/projects/race/experiments", {"json": {"name": name, "tags": [f"rank{i}"]}}),
                ("PATCH", f"/experiments/{exp}/status", {"json": {"status": "RUNNING"}}),
                ("POST", f"/experiments/{exp}/files", {"data": {"prefix": "/ckpt"},
                                                       "files": {"file": (f"f{i % 2}.bin", f"{i}:{j}".encode())}}),
            ]
            for method, path, kwargs in calls[j % 2:] + calls[:j % 2]:  # rotate, so different calls collide
                r = cluster.call(c, method, path, **kwargs)
                assert r.is_success, f"{method} {path}: {r.status_code} {r.text}"

    together(n, rank)
    cluster.assert_overlapped(3)
    c = cluster.client(0)
    logs = _all_logs(c, exp)
    assert [x["sequenceNumber"] for x in logs] == list(range(n * rounds * 2))
    assert Counter(x["message"] for x in logs) == Counter(f"{i}:{j}:{k}" for i in range(n) for j in range(rounds)
                                                          for k in range(2))
    for m in (0, 1):
        points = _all_points(c, exp, f"m{m}")
        assert [index for index, _ in points] == list(range(n // 2 * rounds * 3))
        assert Counter((p["i"], p["s"]) for _, p in points) == Counter(
            (i, s) for i in range(m, n, 2) for s in range(rounds * 3))
    params = _ok(c.get(f"/experiments/{exp}/parameters"))
    assert params["data"] == {f"p{i}_{j}": j for i in range(n) for j in range(rounds)}
    assert params["version"] == n * rounds
    files = _ok(c.get(f"/experiments/{exp}/files"))["files"]
    assert sorted(f["filename"] for f in files) == ["f0.bin", "f1.bin"]


# --- 8. starting on an empty database at once ------------------------------------------------------------------
# SQLite answers PRAGMA journal_mode=WAL with an immediate "database is locked" (no busy timeout)
# while another process holds a lock on a fresh file: _SQLite.connect waits for it (found by this suite).
def test_opening_a_fresh_sqlite_file_waits_for_another_process_lock_instead_of_failing(tmp_path: Path) -> None:
    """Deterministic form of the start-up race: the other process's lock lasts 0.3 s, well
    within the 30 s busy timeout, so opening must wait for it and succeed."""
    import sqlite3

    path = tmp_path / "fresh.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # what a process switching the fresh file to WAL holds for an instant
    release = threading.Timer(0.3, holder.execute, ("COMMIT",))
    release.start()
    try:
        store = open_metadata_store(f"sqlite:///{path}")
        try:
            assert store.migrate() == len(MIGRATIONS)
        finally:
            store.close()
    finally:
        release.join()
        holder.close()


def _boot_child(url: str, barrier: Any, results: Any, number: int) -> None:
    """A separate process: open the (empty) store when all are ready, then mint ids."""
    try:
        from ml_dash.server.ids import new_id

        barrier.wait(60)
        store = open_metadata_store(url)  # migrates
        version = store.migrate()
        ns = store.ensure_namespace("boot")
        ids = [int(store.upsert_experiment(ns["id"], "p", {"name": f"c{number}-{j}"})[0]["id"]) for j in range(50)]
        ids += [new_id() for _ in range(2000)]
        store.close()
        results.put((number, version, ids, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        import traceback

        where = "".join(traceback.format_exception(exc.__cause__ or exc))
        at_wal = " [at PRAGMA journal_mode=WAL]" if "journal_mode=WAL" in where else ""
        results.put((number, None, [], f"{type(exc).__name__}: {exc}{at_wal}"))


def _boot_at_once(url: str, processes: int = 4) -> list[tuple[int, Any, list[int], str | None]]:
    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded pytest
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    children = [ctx.Process(target=_boot_child, args=(url, barrier, results, k)) for k in range(processes)]
    for p in children:
        p.start()
    out = []
    try:
        for _ in children:
            out.append(results.get(timeout=120))
    except queue.Empty:  # pragma: no cover - a child hung
        pytest.fail(f"only {len(out)} of {processes} processes reported: {out}")
    finally:
        for p in children:
            p.join(30)
            if p.is_alive():  # pragma: no cover
                p.terminate()
                p.join()
        results.close()
        results.join_thread()
    return out


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_processes_opening_an_empty_database_at_once_all_migrate_and_mint_distinct_ids(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pg = request.getfixturevalue("postgres_server") if kind == "postgres" else None
    url = f"sqlite:///{tmp_path / 'fresh.db'}" if kind == "sqlite" else fresh_postgres_db(pg or "")
    out = _boot_at_once(url)
    errors = [err for *_, err in out if err is not None]
    assert errors == []
    assert {version for _, version, _, _ in out} == {len(MIGRATIONS)}
    ids = [i for _, _, minted, _ in out for i in minted]
    assert len(ids) == len(set(ids)) == 4 * 2050
    store = open_metadata_store(url)
    try:
        assert store.migrate() == len(MIGRATIONS)
        assert len(store.list_experiments(store.ensure_namespace("boot")["id"])) == 4 * 50
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_four_servers_started_at_once_on_an_empty_database_serve_with_distinct_ids(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pg = request.getfixturevalue("postgres_server") if kind == "postgres" else None
    s3 = request.getfixturevalue("s3_server") if kind == "postgres" else None
    db, blobs = _store_urls(kind, tmp_path, pg, s3)
    with ExitStack() as stack:
        servers = start_servers(stack, [tmp_path / f"srv{i}" for i in range(4)], db, blobs)
        token = make_username_token("boot")

        def create(i: int) -> list[str]:
            with _http(servers[i].url, token) as c:
                return [_ok(c.post("/projects/p/experiments", json={"name": f"s{i}-{j}"}), 201)["experiment"]["id"]
                        for j in range(25)]

        ids = [x for chunk in together(4, create) for x in chunk]
        assert len(ids) == len(set(ids)) == 100
        store = open_metadata_store(db)
        try:
            assert store.migrate() == len(MIGRATIONS)
        finally:
            store.close()


# --- 9. API key names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_an_api_key_name_taken_at_once_is_a_clear_conflict(kind: str, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    pg = request.getfixturevalue("postgres_server") if kind == "postgres" else None
    url = f"sqlite:///{tmp_path / 'keys.db'}" if kind == "sqlite" else fresh_postgres_db(pg or "")
    open_metadata_store(url).close()
    n = 8
    stores = [open_metadata_store(url) for _ in range(n)]  # a connection each, as separate processes would

    def create(i: int) -> str | None:
        try:
            stores[i].create_api_key("shared-name", f"ns{i}", hash_api_key(f"key-{i}"))
        except ServerError as exc:
            return f"{exc.code}: {exc}"
        return None

    try:
        outcomes = together(n, create)
    finally:
        for s in stores:
            s.close()
    assert outcomes.count(None) == 1, outcomes
    for outcome in outcomes:
        if outcome is not None:
            assert outcome.startswith("conflict: ") and "an API key named 'shared-name' already exists" in outcome
            assert "conflicting write" not in outcome and "INSERT" not in outcome.upper(), outcome

    if kind == "sqlite":  # the CLI's words (the same store code on either database)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
        env["ML_DASH_CONFIG_DIR"] = str(tmp_path / "home")

        def cli(namespace: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([ML_DASH, "serve", "token", "create", "laptop", "--namespace", namespace, "--db", url,
                                   "--data-dir", str(tmp_path / "d")], env=env, capture_output=True, text=True,
                                  timeout=60)

        first = cli("alice")
        assert first.returncode == 0 and first.stdout.startswith("mld_"), first.stderr
        again = cli("bob")
        assert again.returncode != 0 and again.stdout == ""
        assert "an API key named 'laptop' already exists" in again.stderr
        assert "conflicting write" not in again.stderr and "Traceback" not in again.stderr
        assert "UNIQUE" not in again.stderr.upper() and "INSERT" not in again.stderr.upper()
    store = open_metadata_store(url)
    try:
        keys = store.list_api_keys()
    finally:
        store.close()
    assert [k["name"] for k in keys].count("shared-name") == 1
    assert [k["namespace"] for k in keys if k["name"] == "laptop"] == (["alice"] if kind == "sqlite" else [])


def test_together_really_releases_threads_at_once() -> None:
    """The harness itself: the barrier starts every worker before any finishes."""
    started: list[float] = []
    finished: list[float] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(time.monotonic())
        time.sleep(0.5)
        with lock:
            finished.append(time.monotonic())
        return i

    assert together(6, work) == list(range(6))
    assert max(started) < min(finished)
