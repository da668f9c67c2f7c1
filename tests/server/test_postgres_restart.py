"""The database server really restarting under load (issue 15): the PostgreSQL server process of
``ml-dash serve --workers 2`` (on PostgreSQL + S3) is stopped for ~10 s and started again on the
same port and data directory while writers append. While it is away, ``/health`` answers 503 with
``database: unavailable`` (blobs ``ok``) and the API 503 with Retry-After, never 500; afterwards
both server processes reconnect by themselves and every point and log line the writers (retrying)
sent arrived exactly once. And the connections pooled before a restart (dead after it) are replaced
when taken out, not met by requests as 503s.

The PostgreSQL here is this test's own (the session's shared one is not stopped): the binaries
pgserver ships, listening on 127.0.0.1 over TCP as a production database is reached."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml_dash.api.client import ApiClient, RetryPolicy
from tests.helpers.backends import S3_BUCKET, s3_server  # noqa: F401 - fixture
from tests.helpers.server import LiveServer, descendants, start_server
from tests.helpers.writers import exactly_once, read_points, write_concurrently

OUTAGE_SECONDS = 10.0
WRITERS, BATCHES, SIZE, BEFORE_OUTAGE = 4, 20, 100, 5  # each writer: 5 batches, then the outage, then 15
LOG_BATCHES, LOG_SIZE = 20, 25
# Outlasts the outage however slow the machine: Retry-After (2 s) or the backoff, 60 attempts.
RETRY = RetryPolicy(attempts=60, backoff=0.2, max_backoff=3)
DEADLINE = 180.0  # for anything the test waits on (a noisy 2-core machine): generous, never the measure


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnPostgres:
    """A PostgreSQL server of one test alone on 127.0.0.1:``port``, from pgserver's binaries. ``stop``
    stops its postmaster (``pg_ctl stop -m fast``: the connections to it break off, new ones are
    refused); ``start`` starts it again, same port and data directory.

    PostgreSQL refuses to run as root: as root (here and in CI) it runs as the system user
    ``pgserver``, prepared as pgserver prepares it."""

    def __init__(self, pgdata: Path) -> None:
        import pgserver
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        self.bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self.pgdata = pgdata
        self.log = pgdata / "postgres.log"
        self.port = _free_port()
        self.user: str | None = None
        pgdata.chmod(0o700)
        if os.geteuid() == 0:
            self.user = "pgserver"
            entry = ensure_user_exists(self.user)
            assert entry is not None
            ensure_prefix_permissions(pgdata)
            ensure_prefix_permissions(self.bin)
            ensure_folder_permissions(self.bin, 0o055)  # g+rx, o+rx
            ensure_folder_permissions(self.bin.parent / "lib", 0o044)  # g+r, o+r
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync")
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database: its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        # TCP on 127.0.0.1 only, no unix socket; fsync off: a test's data, and a clean stop writes it anyway.
        self._run("pg_ctl", "-l", str(self.log), "-w", "-t", str(int(DEADLINE)), "-o",
                  f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-w", "-t", str(int(DEADLINE)), "-m", "fast", "stop")

    def running(self) -> bool:
        return self._run("pg_ctl", "status", check=False) == 0  # 3: not running

    def _run(self, program: str, *args: str, check: bool = True) -> int:
        # Output to a file, not a pipe: pg_ctl's postmaster would hold a pipe open (pgserver does the same).
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run([str(self.bin / program), "-D", str(self.pgdata), *args], user=self.user,
                                  cwd=self.pgdata, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  text=True, timeout=DEADLINE + 60)
            if check and done.returncode != 0:
                out.seek(0)
                log = self.log.read_text() if self.log.exists() else ""
                raise AssertionError(f"{program} {' '.join(args)} failed ({done.returncode}): {out.read()}\n{log}")
        return done.returncode


@pytest.fixture
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPostgres]:
    # pgserver reads it when imported; platformdirs warns without (as in tests/helpers/backends.py)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("xdg")))
    # Not under pytest's base temp: every pytest session starting on the machine makes its root 0700
    # again, and the PostgreSQL user (not root) must reach the data directory at every start.
    pgdata = Path(tempfile.mkdtemp(prefix="ml-dash-pg-"))
    try:
        pg = OwnPostgres(pgdata)
    except Exception as exc:  # noqa: BLE001 - any failure must be loud (as tests/helpers/backends.py)
        shutil.rmtree(pgdata, ignore_errors=True)
        pytest.fail(f"this test's own PostgreSQL could not be started ({type(exc).__name__}: {exc}); "
                    "the test did NOT run. Install the dev extra (scripts/setup.sh) or fix the environment.",
                    pytrace=False)
    try:
        yield pg
    finally:
        if pg.running():
            pg.stop()
        shutil.rmtree(pgdata, ignore_errors=True)


class Recorder(httpx.BaseTransport):
    """httpx's transport, noting what each response answered ``(method, path, status, Retry-After)``
    and each connection error: what the writers saw."""

    def __init__(self, seen: list[tuple[str, str, int, str | None]], errors: list[str]) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen = seen
        self.errors = errors

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self.inner.handle_request(request)
        except httpx.TransportError as exc:
            self.errors.append(f"{request.method} {request.url.path}: {type(exc).__name__}: {exc}")
            raise
        self.seen.append((request.method, request.url.path, response.status_code, response.headers.get("retry-after")))
        return response

    def close(self) -> None:
        self.inner.close()


def _wait_for(what: str, check: Callable[[], bool], deadline: float = DEADLINE, every: float = 0.2) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"waited {deadline:g} s for {what}")
        time.sleep(every)


def _request_lines(server: LiveServer) -> list[dict[str, Any]]:
    """The server's request lines (two processes print to one file: now and then two run together,
    and the last may be half written)."""
    decoder, out = json.JSONDecoder(), []
    for line in server.log.splitlines():
        at = 0
        while line.startswith("{", at):
            try:
                record, at = decoder.raw_decode(line, at)
            except json.JSONDecodeError:
                break
            out.append(record)
    return out


def _new_connections(server: LiveServer, headers: dict[str, str] | None = None) -> httpx.Client:
    """A client that opens a new connection for every request: the kernel hands each to either process."""
    return httpx.Client(base_url=server.url, headers=headers, timeout=60, verify=False,  # http: no certificates
                        limits=httpx.Limits(max_keepalive_connections=0))


def _in_thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    failed: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - raised in the test's thread
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failed


@pytest.mark.slow
def test_postgres_stopped_10s_and_started_again_under_load(tmp_path: Path, own_postgres: OwnPostgres,
                                                           s3_server: str) -> None:  # noqa: F811
    """Writers (4 appending points, 1 log lines) meet the outage mid-way, retry, and finish after it."""
    db = own_postgres.create_database()
    blobs = f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:8]}?endpoint_url={s3_server}"
    server = start_server(tmp_path / "srv", "--db", db, "--blobs", blobs, "--workers", "2")
    try:
        key = server.token("k", "alice")
        headers = {"Authorization": f"Bearer {key}"}
        exp = httpx.post(f"{server.url}/projects/p/experiments", json={"name": "e"}, headers=headers,
                         timeout=60).json()["experiment"]["id"]
        healthy = httpx.get(f"{server.url}/health", timeout=60).json()
        assert (healthy["status"], healthy["database"], healthy["blobs"]) == ("ok", "ok", "ok")
        processes = set(descendants(server.process.pid))

        # Every writer sends BEFORE_OUTAGE batches, then waits until the database is stopped: its next
        # batch meets the outage (retried until the database is back), the rest follow after it.
        seen: list[tuple[str, str, int, str | None]] = []
        errors: list[str] = []
        arrived = threading.Semaphore(0)
        stopped = threading.Event()

        def gate(_writer: int, batch: int) -> None:
            if batch == BEFORE_OUTAGE:
                arrived.release()
                assert stopped.wait(DEADLINE), "the database was never stopped"

        def write_points() -> None:
            write_concurrently(server.url, key, exp, WRITERS, BATCHES, SIZE, 0.05, retry=RETRY,
                               transport=lambda: Recorder(seen, errors), before=gate)

        def write_logs() -> None:
            with ApiClient(server.url, key, retry=RETRY, transport=Recorder(seen, errors)) as client:
                for b in range(LOG_BATCHES):
                    gate(-1, b)
                    lines = [{"message": f"line {b * LOG_SIZE + i}", "writerSeq": b * LOG_SIZE + i}
                             for i in range(LOG_SIZE)]
                    client.append_logs(exp, lines, writer_id="log-writer")
                    time.sleep(0.05)

        points_thread, points_failed = _in_thread(write_points)
        logs_thread, logs_failed = _in_thread(write_logs)
        for _ in range(WRITERS + 1):
            assert arrived.acquire(timeout=DEADLINE), (points_failed, logs_failed)

        # --- the outage: the postmaster really stops (its connections break off) ---------------------
        own_postgres.stop()
        down_since = time.monotonic()
        stopped.set()
        health: list[httpx.Response] = []

        def health_503() -> bool:
            health.append(httpx.get(f"{server.url}/health", timeout=60))
            return health[-1].status_code == 503

        _wait_for("/health to answer 503", health_503)
        away = health[-1]
        assert away.headers["retry-after"]
        assert away.json()["database"].startswith("unavailable") and away.json()["blobs"] == "ok", away.text
        api = httpx.get(f"{server.url}/experiments/{exp}/streams", headers=headers, timeout=60)
        assert api.status_code == 503 and api.headers["retry-after"] and api.json()["error"]["hint"], api.text
        _wait_for("the writers to meet the outage", lambda: any(s == 503 for _, _, s, _ in seen))
        time.sleep(max(0.0, down_since + OUTAGE_SECONDS - time.monotonic()))  # as long as a restart takes
        assert own_postgres.running() is False
        restart_line = len(_request_lines(server))
        own_postgres.start()  # same port, same data directory

        # --- after it: both processes reconnect by themselves (no restart of the server) ------------
        def both_workers_healthy() -> bool:
            with _new_connections(server) as fresh:
                for _ in range(5):
                    fresh.get("/health")
            answered = _request_lines(server)[restart_line:]
            return len({r["pid"] for r in answered if r["path"] == "/health" and r["status"] == 200}) == 2

        _wait_for("both server processes to answer /health 200 again", both_workers_healthy, every=0.05)
        points_thread.join(DEADLINE)
        logs_thread.join(DEADLINE)
        assert not points_thread.is_alive() and not logs_thread.is_alive()
        for failed in (points_failed, logs_failed):
            if failed:
                raise failed[0]
        assert server.process.poll() is None and set(descendants(server.process.pid)) == processes

        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            exactly_once(read_points(client, exp, "m"), WRITERS, BATCHES * SIZE)
            logs = client.get(f"/experiments/{exp}/logs", params={"limit": 10000}).json()["logs"]
            assert sorted(line["message"] for line in logs) == sorted(
                f"line {i}" for i in range(LOG_BATCHES * LOG_SIZE))  # each line once
            now = client.get("/health")
            assert now.status_code == 200 and (now.json()["database"], now.json()["blobs"]) == ("ok", "ok")

        # What the writers saw: 503 with Retry-After while the database was away, never a 500.
        statuses = Counter(s for _, _, s, _ in seen)
        refused = [x for x in seen if x[2] == 503]
        assert refused and all(retry_after for *_, retry_after in refused), refused
        assert all(s < 500 or s == 503 for s in statuses), statuses
        assert {path.rsplit("/", 1)[-1] for _, path, _, _ in refused} == {"append-batch", "logs"}  # both kinds
        answered = _request_lines(server)
        assert [r for r in answered if r["status"] >= 500 and r["status"] != 503] == []
        assert "Traceback" not in server.log
        print(f"\nwriters saw: {dict(sorted(statuses.items()))}; {len(errors)} connection errors {errors[:3]}")
    finally:
        server.stop()


@pytest.mark.slow
def test_after_a_postgres_restart_no_request_meets_a_dead_pooled_connection(
        tmp_path: Path, own_postgres: OwnPostgres) -> None:
    """The connections each process pooled before a restart are dead after it (PostgreSQL closed
    them); the pool notices that when it takes one out, and connects anew: the first requests after
    the database is back answer 200, not one 503 per connection pooled before."""
    server = start_server(tmp_path / "srv", "--db", own_postgres.create_database(), "--workers", "2")
    try:
        key = server.token("k", "alice")
        headers = {"Authorization": f"Bearer {key}"}
        exp = httpx.post(f"{server.url}/projects/p/experiments", json={"name": "e"}, headers=headers,
                         timeout=60).json()["experiment"]["id"]

        def answered(since: int, path: str) -> set[int]:
            return {r["pid"] for r in _request_lines(server)[since:] if r["path"].endswith(path)}

        def read() -> None:  # several at once, each on a new connection: either process, each pools several
            with _new_connections(server, headers) as fresh:
                for _ in range(10):
                    assert fresh.get(f"/experiments/{exp}/streams").status_code == 200

        def both_pooled() -> bool:
            readers = [_in_thread(read) for _ in range(8)]
            for thread, failed in readers:
                thread.join()
                if failed:
                    raise failed[0]
            return len(answered(0, "/streams")) == 2

        _wait_for("both processes to serve (and pool connections)", both_pooled, every=0)
        own_postgres.stop()
        own_postgres.start()  # nothing asked the server in between: its pools still hold the old connections

        after = len(_request_lines(server))
        with _new_connections(server, headers) as fresh:

            def both_answer_200() -> bool:
                for _ in range(40):
                    for r in (fresh.get("/health"), fresh.get(f"/experiments/{exp}/streams")):
                        assert r.status_code == 200, r.text
                return len(answered(after, "/streams")) == 2

            _wait_for("both processes to answer after the restart", both_answer_200, every=0)
        assert "Traceback" not in server.log
    finally:
        server.stop()
