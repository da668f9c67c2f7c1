"""Several server processes on one database: `--workers N` on one host, separate `ml-dash serve`s sharing
`--db`, and the database going away under load. Nothing correctness-relevant lives in one process:
ids, API keys (a revoked key is refused by every process within KEY_CACHE_SECONDS), sessions and the
secret that signs them are the database's; while the database is away the API answers 503 with
Retry-After, health says which backend is away, and clients that retry lose and double nothing."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml_dash.server.state import KEY_CACHE_SECONDS
from tests.helpers.backends import S3_BUCKET, fresh_postgres_db, postgres_server, s3_server  # noqa: F401
from tests.helpers.server import ML_DASH, LiveServer, live_server
from tests.helpers.writers import exactly_once as _exactly_once
from tests.helpers.writers import read_points as _points
from tests.helpers.writers import write_concurrently as _write_concurrently


def _pids(server: LiveServer, path_part: str) -> set[int]:
    lines = [json.loads(x) for x in server.log.splitlines() if x.startswith("{")]
    return {line["pid"] for line in lines if path_part in line["path"]}


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "srv", "--workers", "2") as server:
        yield server


def test_workers_share_ids_writes_keys_and_logins(workers: LiveServer) -> None:
    key = workers.token("k", "alice")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=workers.url, headers=headers, timeout=60) as client:
        # Ids minted by both processes at once never collide (each has its own node number).
        made: list[str] = []

        def create(n: int) -> None:
            with httpx.Client(base_url=workers.url, headers=headers, timeout=60) as c:
                for i in range(10):
                    r = c.post("/projects/p/experiments", json={"name": f"e-{n}-{i}"})
                    assert r.status_code == 201, r.text
                    made.append(r.json()["experiment"]["id"])

        threads = [threading.Thread(target=create, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(made) == 40 and len(set(made)) == 40
        exp = made[0]
        _write_concurrently(workers.url, key, exp, writers=4, batches=25, size=200)
        _exactly_once(_points(client, exp, "m"), 4, 25 * 200)

        # One login, served by either worker: the owner token and the secret signing the cookie are shared.
        token = workers.dashboard_url.split("token=")[1] if workers.dashboard_url else ""
        login = client.post("/ui/login", json={"token": token})
        assert login.status_code == 200, login.text
        cookie = {"ml_dash_session": login.cookies.get("ml_dash_session") or ""}
        with httpx.Client(base_url=workers.url, cookies=cookie, timeout=60) as browser:
            for _ in range(30):
                with httpx.Client(base_url=workers.url, cookies=cookie, timeout=60) as fresh:  # new connection
                    assert fresh.get("/ui/session").status_code == 200
            assert browser.get("/ui/session").json()["owner"] is True
        # Which worker accepts a connection is the kernel's choice: new connections until both answered.
        for _ in range(300):
            if len(_pids(workers, "/")) == 2:
                break
            with httpx.Client(base_url=workers.url, cookies=cookie, timeout=60) as fresh:
                assert fresh.get("/ui/session").status_code == 200
    assert len(_pids(workers, "/")) == 2  # two processes answered: ids, writes and the session held across them


def test_separate_servers_on_one_database_share_secret_and_revocations(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    blobs = f"file://{tmp_path / 'blobs'}"
    with live_server(tmp_path / "a", "--db", db, "--blobs", blobs) as a, \
            live_server(tmp_path / "b", "--db", db, "--blobs", blobs) as b:
        key = a.token("laptop", "alice")
        auth = {"Authorization": f"Bearer {key}"}
        exp = httpx.post(f"{a.url}/projects/p/experiments", json={"name": "e"}, headers=auth).json()["experiment"]["id"]
        streams = f"/experiments/{exp}/streams"
        for server in (a, b):
            assert httpx.get(f"{server.url}{streams}", headers=auth).status_code == 200
        # A session made by one process is good on the other (the cookie's HMAC secret is the database's).
        login = httpx.post(f"{a.url}/ui/login", json={"apiKey": key})
        cookie = {"ml_dash_session": login.cookies.get("ml_dash_session") or ""}
        assert httpx.get(f"{b.url}/ui/session", cookies=cookie).status_code == 200
        # A revoked key is refused by every process within KEY_CACHE_SECONDS.
        out = subprocess.run([ML_DASH, "serve", "token", "revoke", "laptop", "--db", db,
                              "--data-dir", str(tmp_path / "cli")], capture_output=True, text=True, env=a.env)
        assert out.returncode == 0, out.stderr
        revoked = time.monotonic()
        time.sleep(KEY_CACHE_SECONDS + 0.2)
        for server in (a, b):
            r = httpx.get(f"{server.url}{streams}", headers=auth)
            assert r.status_code == 401, (server.url, r.text)
        assert time.monotonic() - revoked < KEY_CACHE_SECONDS + 2


@pytest.fixture
def pg_s3(postgres_server: str, s3_server: str) -> dict[str, str]:  # noqa: F811
    return {"db": fresh_postgres_db(postgres_server),
            "blobs": f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:8]}?endpoint_url={s3_server}"}


def _database_away(db_url: str, postgres_uri: str, seconds: float) -> None:
    """The server's database refuses connections and drops those it had, for ``seconds``."""
    from urllib.parse import urlsplit

    import psycopg

    name = urlsplit(db_url).path.lstrip("/")
    with psycopg.connect(postgres_uri, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        time.sleep(seconds)
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_database_away_under_load_503_then_nothing_lost_or_doubled(
        tmp_path: Path, pg_s3: dict[str, str], postgres_server: str) -> None:  # noqa: F811
    with live_server(tmp_path / "srv", "--db", pg_s3["db"], "--blobs", pg_s3["blobs"], "--workers", "2") as server:
        key = server.token("k", "alice")
        headers = {"Authorization": f"Bearer {key}"}
        exp = httpx.post(f"{server.url}/projects/p/experiments", json={"name": "e"}, headers=headers).json()[
            "experiment"]["id"]
        healthy = httpx.get(f"{server.url}/health").json()
        assert (healthy["status"], healthy["database"], healthy["blobs"]) == ("ok", "ok", "ok")
        seen_503: list[httpx.Response] = []

        def outage() -> None:
            time.sleep(1.0)  # the writers are under way
            away = threading.Thread(target=_database_away, args=(pg_s3["db"], postgres_server, 10.0))  # as long as a restart
            away.start()
            time.sleep(3.0)
            seen_503.append(httpx.get(f"{server.url}/health"))
            seen_503.append(httpx.get(f"{server.url}/experiments/{exp}/streams", headers=headers))
            away.join()

        fault = threading.Thread(target=outage)
        fault.start()
        _write_concurrently(server.url, key, exp, writers=4, batches=60, size=100, pace=0.1)  # from 0 s, through 1 s .. 11 s
        fault.join()
        health, api = seen_503
        assert health.status_code == 503 and health.headers["retry-after"]
        assert health.json()["database"].startswith("unavailable") and health.json()["blobs"] == "ok"
        assert api.status_code == 503 and api.headers["retry-after"] and api.json()["error"]["hint"]
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            _exactly_once(_points(client, exp, "m"), 4, 60 * 100)
            assert client.get("/health").json()["database"] == "ok"  # the processes reconnected by themselves
        assert "Traceback" not in server.log
        refused = [json.loads(x) for x in server.log.splitlines() if x.startswith("{")]
        assert any(r["status"] == 503 and r["path"].endswith("/append-batch") for r in refused)  # writes met it


def test_two_servers_behind_haproxy_one_killed_mid_way_everything_exactly_once(
        tmp_path: Path, pg_s3: dict[str, str]) -> None:
    """The issue's acceptance test: 2 processes on one PostgreSQL + S3 behind HAProxy; SDK runs in remote
    mode and an `ml-dash upload` (with files) through it; one process is killed -9 mid-way; every point,
    line and file arrived exactly once, with unique ids."""
    import os
    from types import SimpleNamespace

    from tests.helpers.balancer import haproxy, missing_haproxy, request_lines, start_servers, stop_servers
    from tests.helpers.build import build_tree
    from tests.helpers.cli import run_cli
    from tests.helpers.trees import records_of
    from tests.sdk.test_many_writers import assert_exactly_once, start_ranks, wait_all

    why = missing_haproxy()
    if why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the load-balancer tests cannot run under CI=true: {why}", pytrace=False)
        pytest.skip(why)
    servers = start_servers(2, pg_s3["db"], pg_s3["blobs"], tmp_path / "servers")
    try:
        key = servers[0].token("k", "alice")
        with haproxy([("127.0.0.1", s.port) for s in servers], tmp_path / "lb") as lb:
            front = SimpleNamespace(url=lb.url, data_dir=tmp_path / "clients")
            ranks = start_ranks(front, key, 3, [None] * 3)  # type: ignore[arg-type]
            tree = build_tree(tmp_path / "tree")
            upload = subprocess.Popen([ML_DASH, "upload", str(tree), "--remote", lb.url, "--api-key", key,
                                       "--progress", "none", "--batch-size", "2"], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env={**os.environ, "NO_COLOR": "1"})
            assert ranks[0].stdout is not None and ranks[0].stdout.readline().strip() == "halfway"
            servers[0].kill()  # kill -9 mid-way: the requests in flight on it break off
            took = [sum(r["method"] == "POST" for r in request_lines(s)) for s in servers]
            assert took[0] > 0 and took[1] > 0, took  # both had taken writes before the kill
            out, _ = upload.communicate(timeout=180)
            assert upload.returncode == 0, out
            wait_all(ranks)
            assert_exactly_once(front, key, 3)  # type: ignore[arg-type]
            # The uploaded tree, read back through the balancer by `ml-dash download`: record for record.
            down = run_cli("download", str(tmp_path / "down"), "--remote", lb.url, "--api-key", key, cwd=tmp_path)
            assert down.returncode == 0, down.stdout + down.stderr
            got, sent = records_of(tmp_path / "down"), records_of(tree)
            assert {k: v for k, v in got.items() if k != "p/ddp"} == sent and "p/ddp" in got
            again = run_cli("upload", str(tree), "--remote", lb.url, "--api-key", key, cwd=tmp_path)
            assert "Already uploaded (nothing new;" in again.stdout, again.stdout
            with httpx.Client(base_url=lb.url, headers={"Authorization": f"Bearer {key}"}) as c:
                ids = [c.post(f"/projects/{k.split('/')[0]}/experiments", json={"name": k.split("/")[-1]}).json()[
                    "experiment"]["id"] for k in got]  # (creating one that exists answers it)
            assert len(ids) == len(set(ids)) == len(sent) + 1  # the ranks' experiment and the tree's
    finally:
        stop_servers([s for s in servers if s.process.poll() is None])


class S3Outage:
    """A proxy in front of the S3 server (moto) that answers ``503 SlowDown`` to the next ``fail``
    requests, as S3 does when it throttles or is away; everything else is forwarded as it is."""

    def __init__(self, server: Any, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=60)
        self.fail = 0
        self.failed = 0
        self._lock = threading.Lock()
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    def handle(self, request: Any) -> Any:
        from werkzeug import Response

        with self._lock:
            refuse = self.fail > 0
            if refuse:
                self.fail -= 1
                self.failed += 1
        if refuse:
            return Response("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                            status=503, content_type="application/xml")
        skip = ("host", "content-length", "transfer-encoding", "connection")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        r = self.upstream.request(request.method, request.full_path.rstrip("?"), content=request.get_data(),
                                  headers=headers)
        out = {k: v for k, v in r.headers.items() if k.lower() not in skip + ("content-encoding",)}
        return Response(r.content, status=r.status_code, headers=out)


def test_object_store_away_503_then_every_file_exactly_once(tmp_path: Path, httpserver: Any,
                                                            s3_server: str) -> None:  # noqa: F811
    from tests.helpers.build import build_tree
    from tests.helpers.cli import run_cli
    from tests.helpers.trees import records_of

    outage = S3Outage(httpserver, s3_server)
    proxy = httpserver.url_for("").rstrip("/")
    blobs = f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:8]}?endpoint_url={proxy}"
    tree = build_tree(tmp_path / "tree")
    with live_server(tmp_path / "srv", "--blobs", blobs) as server:
        key = server.token("k", "alice")
        outage.fail = 25  # more than boto3's own retries of one call: the server must answer 503 itself
        up = run_cli("upload", str(tree), "--remote", server.url, "--api-key", key, cwd=tmp_path)
        assert up.returncode == 0, up.stdout + up.stderr
        assert outage.failed == 25
        answered = [json.loads(x) for x in server.log.splitlines() if x.startswith("{")]
        assert any(r["status"] == 503 and "/files" in r["path"] for r in answered)  # clients met the outage
        health = httpx.get(f"{server.url}/health").json()
        assert (health["database"], health["blobs"]) == ("ok", "ok")
        outage.fail = 10  # more than any retry mode of boto3 makes of one call
        away = httpx.get(f"{server.url}/health")
        assert away.status_code == 503 and away.json()["blobs"].startswith("unavailable") and \
            away.json()["database"] == "ok" and away.headers["retry-after"]
        outage.fail = 0
        down = run_cli("download", str(tmp_path / "down"), "--remote", server.url, "--api-key", key, cwd=tmp_path)
        assert down.returncode == 0, down.stdout + down.stderr
        assert records_of(tmp_path / "down") == records_of(tree)  # every file once, with its content


def test_connections_to_the_database_stay_within_the_pool(tmp_path: Path, pg_s3: dict[str, str],
                                                          postgres_server: str) -> None:  # noqa: F811
    """limits.db_connections bounds each process's connections (here 2 workers x 3, plus the parent's),
    however many requests run at once; a request that finds them busy waits, it does not fail."""
    import psycopg

    name = pg_s3["db"].split("?")[0].rsplit("/", 1)[-1]
    with live_server(tmp_path / "srv", "--db", pg_s3["db"], "--blobs", pg_s3["blobs"], "--workers", "2",
                     "limits.db_connections=3") as server:
        key = server.token("k", "alice")
        exp = httpx.post(f"{server.url}/projects/p/experiments", json={"name": "e"},
                         headers={"Authorization": f"Bearer {key}"}).json()["experiment"]["id"]
        seen: list[int] = []
        done = threading.Event()

        def sample() -> None:
            with psycopg.connect(postgres_server, autocommit=True) as admin:
                while not done.is_set():
                    row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
                    seen.append(int(row[0]) if row else 0)
                    time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            _write_concurrently(server.url, key, exp, writers=12, batches=15, size=100)
        finally:
            done.set()
            sampler.join()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            _exactly_once(_points(client, exp, "m"), 12, 15 * 100)
        assert 2 <= max(seen) <= 3 * 3, max(seen)  # 3 processes (the parent and 2 workers) x 3
        assert "Traceback" not in server.log
