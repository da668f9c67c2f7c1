"""Faults the real server would not produce, injected by a pytest-httpserver proxy in front of
it: 500s, 429 + Retry-After, connection resets, stalls past the timeout, 413. Every run
ends with the real server holding exactly one clean upload: nothing lost, nothing doubled."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import REAL_CLIENT_TREE
from tests.helpers.cli import run_cli
from tests.upload.conftest import Target, expected_content

Fault = Callable[[Request, Callable[[], Response]], Response]


class FaultProxy:
    """Forwards to the real server; ``faults`` may answer instead, before or after forwarding."""

    def __init__(self, server: HTTPServer, upstream: str) -> None:
        self.server = server
        self.upstream = httpx.Client(base_url=upstream, timeout=60)
        self.faults: list[tuple[re.Pattern[str], Fault, list[int]]] = []
        self.log: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def inject(self, path_pattern: str, fault: Fault, times: int = 1) -> None:
        """The next ``times`` requests whose path matches get ``fault``."""
        self.faults.append((re.compile(path_pattern), fault, [times]))

    def forward(self, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        r = self.upstream.request(request.method, request.full_path.rstrip("?"), content=request.get_data(),
                                  headers=headers)
        return Response(r.content, status=r.status_code, content_type=r.headers.get("content-type"))

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.log.append((time.monotonic(), request.method, request.path))
            chosen = None
            for pattern, fault, left in self.faults:
                if left[0] > 0 and pattern.search(request.path):
                    left[0] -= 1
                    chosen = fault
                    break
        if chosen is None:
            return self.forward(request)
        return chosen(request, lambda: self.forward(request))


def status(code: int, headers: dict[str, str] | None = None, after: bool = False) -> Fault:
    def fault(request: Request, forward: Callable[[], Response]) -> Response:
        if after:
            forward()  # the server did the work; the answer is lost
        return Response('{"error": {"code": "x", "message": "injected"}}', status=code, headers=headers,
                        content_type="application/json")
    return fault


def reset(after: bool) -> Fault:
    def fault(request: Request, forward: Callable[[], Response]) -> Response:
        if after:
            forward()
        sock = request.environ["werkzeug.socket"]
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        return Response("")
    return fault


def stall(seconds: float) -> Fault:
    def fault(request: Request, forward: Callable[[], Response]) -> Response:
        response = forward()
        time.sleep(seconds)  # longer than the client's timeout
        return response
    return fault


def too_large(limit: int) -> Fault:
    def fault(request: Request, forward: Callable[[], Response]) -> Response:
        if len(request.get_data()) > limit:
            return Response('{"error": {"code": "payload_too_large", "message": "too large"}}', status=413,
                            content_type="application/json")
        return forward()
    return fault


def _proxy_to(url: str) -> Iterator[FaultProxy]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    p = FaultProxy(server, url)
    yield p
    server.clear()
    server.stop()
    p.upstream.close()


@pytest.fixture
def proxy(target: Target) -> Iterator[FaultProxy]:
    yield from _proxy_to(target.url)


@pytest.fixture
def proxy_any(any_target: Target) -> Iterator[FaultProxy]:
    """In front of our server, and of one that speaks only the 0.5.8 routes."""
    yield from _proxy_to(any_target.url)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(REAL_CLIENT_TREE, dest)
    return dest


def upload(proxy: FaultProxy, target: Target, tree: Path, cwd: Path, *args: str):
    return run_cli("upload", str(tree), "--remote", proxy.url, "--api-key", target.key, "--batch-size", "20",
                   "retry.backoff=0.01", "retry.timeout=2", *args, cwd=cwd)


@pytest.mark.parametrize(("name", "fault", "times"), [
    ("500 before the server sees it", status(500), 3),
    ("500 after the server stored it", status(500, after=True), 3),
    ("503 on creating the experiment", status(503), 2),
    ("reset before", reset(after=False), 2),
    ("reset after the server stored it", reset(after=True), 3),
    ("stall past the timeout after storing", stall(3.0), 2),
])
def test_transient_faults_end_in_one_clean_upload(proxy_any: FaultProxy, any_target: Target, tree: Path,
                                                  tmp_path: Path, name: str, fault: Fault, times: int) -> None:
    where = r"/experiments$" if "creating" in name else r"/(append-batch|logs|files)$"
    proxy_any.inject(where, fault, times)
    r = upload(proxy_any, any_target, tree, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert any_target.content() == expected_content(tree)
    assert set(any_target.file_copies().values()) == {1}  # never a second copy, on either server
    again = upload(proxy_any, any_target, tree, tmp_path)  # a plain re-run adds nothing anywhere
    assert again.returncode == 0 and again.stdout.count("Already uploaded (nothing new;") == 3, again.stdout
    assert any_target.content() == expected_content(tree) and set(any_target.file_copies().values()) == {1}


def test_429_retry_after_is_honoured(proxy: FaultProxy, target: Target, tree: Path, tmp_path: Path) -> None:
    proxy.inject(r"/logs$", status(429, {"Retry-After": "1"}), 1)
    r = upload(proxy, target, tree, tmp_path, "--project", "nlp")
    assert r.returncode == 0, r.stdout
    times = [t for t, method, path in proxy.log if path.endswith("/logs")]
    assert len(times) == 2 and times[1] - times[0] >= 0.9
    assert target.content()["nlp/bert-finetune"] == expected_content(tree)["nlp/bert-finetune"]


def test_413_halves_the_batch(proxy: FaultProxy, target: Target, tree: Path, tmp_path: Path) -> None:
    proxy.inject(r"/append-batch$", too_large(800), times=10_000)
    r = upload(proxy, target, tree, tmp_path, "--batch-size", "50")
    assert r.returncode == 0, r.stdout
    sizes = [p for _, m, p in proxy.log if p.endswith("append-batch")]
    assert len(sizes) > 6 * 2  # 6 series of 50 points needed more, smaller requests
    assert target.content() == expected_content(tree)


def test_a_persistent_failure_is_isolated_reported_and_recovered(proxy: FaultProxy, target: Target, tree: Path,
                                                                 tmp_path: Path) -> None:
    proxy.inject(r"/metrics/train_loss/append-batch$", status(500), times=6)  # = retry.attempts: gives up once
    r = upload(proxy, target, tree, tmp_path, "retry.attempts=6", "--workers", "1")
    assert r.returncode == 1
    assert "metric train_loss: injected (gave up after 6 attempts)" in r.stdout
    assert r.stdout.count("  ✗ Failed") == 1 and r.stdout.count("  ✓ Uploaded") == 2
    again = upload(proxy, target, tree, tmp_path, "--resume")
    assert again.returncode == 0, again.stdout
    assert target.content() == expected_content(tree)
