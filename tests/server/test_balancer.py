"""Two ``ml-dash serve`` processes on PostgreSQL + S3 behind a real HAProxy (tests/helpers/balancer.py).

Requests through the balancer reach both servers; a ``kill -9`` of one is invisible to clients
(HAProxy sends a failed connection, and a request in flight on the dead server, to the other, and
marks the dead one DOWN); restarted on its port, it gets traffic again. Plus a smoke run of
``bench/load.py --quick``. Without haproxy these tests are skipped, except under CI=true, where
that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.backends import S3_BUCKET, fresh_postgres_db
from tests.helpers.balancer import haproxy, missing_haproxy, request_lines, start_servers, stop_servers
from tests.helpers.server import REPO, LiveServer


@pytest.fixture
def need_haproxy() -> None:
    why = missing_haproxy()
    if why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the load-balancer tests cannot run under CI=true: {why}", pytrace=False)
        pytest.skip(why)


@pytest.fixture
def servers(need_haproxy: None, tmp_path: Path, postgres_server: str, s3_server: str) -> Iterator[list[LiveServer]]:
    db = fresh_postgres_db(postgres_server)
    blobs = f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:8]}?endpoint_url={s3_server}"
    started = start_servers(2, db, blobs, tmp_path / "servers")
    try:
        yield started
    finally:
        stop_servers(started)  # the list as the test left it (a restarted server replaces its entry)


def _hits(server: LiveServer, path: str) -> int:
    return sum(1 for line in request_lines(server) if line["path"] == path)


def _settled_hits(servers: list[LiveServer], path: str, total: int) -> list[int]:
    """Each server's count of requests to ``path`` once ``total`` are logged (a request's log line
    is written just after its answer is sent)."""
    deadline = time.monotonic() + 5
    while True:
        hits = [_hits(s, path) for s in servers]
        if sum(hits) >= total or time.monotonic() > deadline:
            return hits
        time.sleep(0.02)


class Writers:
    """``n`` threads appending writer-numbered log batches through the balancer until stopped
    (bounded: at most ``limit`` requests each); every answer is kept."""

    def __init__(self, url: str, key: str, exp: str, n: int = 3, lines: int = 20, limit: int = 2000) -> None:
        self.url, self.key, self.path, self.lines, self.limit = url, key, f"/experiments/{exp}/logs", lines, limit
        self.stop = threading.Event()
        self.statuses: Counter[str] = Counter()
        self.sent = [0] * n
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30) as c:
            for _ in range(self.limit):
                if self.stop.is_set():
                    return
                seq = self.sent[i]
                body = {"writerId": f"writer-{i}", "logs": [
                    {"message": f"{i}:{seq + k}", "level": "info", "writerSeq": seq + k} for k in range(self.lines)]}
                try:
                    r = c.post(self.path, json=body)
                    self.statuses[str(r.status_code)] += 1
                    if r.status_code == 201:
                        self.sent[i] += self.lines
                except httpx.HTTPError as exc:  # counted (the test wants none), then sent again
                    self.statuses[type(exc).__name__] += 1

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def expected(self) -> list[str]:
        return sorted(f"{i}:{k}" for i, n in enumerate(self.sent) for k in range(n))


def _all_messages(client: httpx.Client, path: str) -> list[str]:
    out: list[str] = []
    while True:
        page = client.get(path, params={"limit": 10000, "offset": len(out)}).json()
        out += [x["message"] for x in page["logs"]]
        if not page["hasMore"]:
            return sorted(out)


def test_the_balancer_spreads_requests_and_hides_a_kill_9(servers: list[LiveServer], tmp_path: Path) -> None:
    key = servers[0].token("lb", "alice")  # on the shared PostgreSQL database: both servers know it
    with haproxy([("127.0.0.1", s.port) for s in servers], tmp_path / "lb") as lb, \
            httpx.Client(base_url=lb.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        r = client.post("/projects/lb/experiments", json={"name": "spread"})
        assert r.status_code == 201, r.text
        exp = r.json()["experiment"]["id"]
        path = f"/experiments/{exp}/metrics/m/append-batch"
        sent = 0

        def send(n: int) -> None:
            nonlocal sent
            for _ in range(n):
                r = client.post(path, json={"dataPoints": [{"step": sent}], "writerId": "seq", "writerSeq": sent})
                assert r.status_code == 200, r.text
                sent += 1

        send(10)
        assert _settled_hits(servers, path, 10) == [5, 5]  # round robin: every other request

        writers = Writers(lb.url, key, exp)  # requests in flight at the moment of the kill
        time.sleep(0.5)
        servers[0].kill()
        killed = time.monotonic()
        send(1)  # HAProxy's connection to the dead server fails and the request goes to the other
        assert time.monotonic() - killed < 1.0
        send(9)
        lb.wait_state(0, "DOWN", timeout=3)  # two failed checks 200 ms apart
        assert time.monotonic() - killed < 3.0
        time.sleep(0.3)
        writers.finish()
        assert set(writers.statuses) == {"201"}, writers.statuses  # in flight at the kill: replayed elsewhere

        servers[0] = servers[0].restart()  # the same port: HAProxy's backend line is still right
        lb.wait_state(0, "UP", timeout=10)
        before = _settled_hits(servers, path, sent)
        send(10)
        after = _settled_hits(servers, path, sent)
        assert after[0] - before[0] >= 4, (before, after)  # it gets traffic again (half, give or take)
        points = client.get(f"{path.rsplit('/', 1)[0]}/data", params={"limit": 1000}).json()["data"]
        messages = _all_messages(client, f"/experiments/{exp}/logs")
    assert sorted(p["data"]["step"] for p in points) == list(range(sent)) and sent == 30
    assert messages == writers.expected() and len(messages) > 0  # nothing lost, nothing doubled
    for server in servers:
        assert "Traceback" not in server.log, server.log


@pytest.mark.slow
def test_the_load_bench_runs_in_its_quick_mode(need_haproxy: None, tmp_path: Path) -> None:
    """``bench/load.py --quick --processes 2`` end to end (~20 s here): the table, nothing lost or doubled."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "DREAMLAKE_"))}
    out = subprocess.run([sys.executable, str(REPO / "bench" / "load.py"), "--quick", "--processes", "2",
                          "--work-dir", str(tmp_path)], capture_output=True, text=True, timeout=180, env=env, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "read back through the API: lost=0 doubled=0" in out.stdout, out.stdout
    assert "processes | points/s | requests/s" in out.stdout, out.stdout
