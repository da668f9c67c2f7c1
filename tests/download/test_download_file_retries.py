"""``ApiClient.download_file`` retries like every other request and translates httpx errors:
refused connections end in ServerUnreachable (with a hint) after the configured attempts, a
503 is retried (honouring Retry-After), and a stream that breaks mid-way continues cleanly."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ml_dash.api.client import ApiClient, RetryPolicy, ServerUnreachable
from ml_dash.errors import ApiError
from tests.conftest import REAL_CLIENT_TREE
from tests.helpers.cli import run_cli
from tests.helpers.trees import records_of
from tests.upload.conftest import Target, target  # noqa: F401 - fixture
from tests.upload.test_faults import FaultProxy, status

CONTENT = bytes(range(256)) * 12_000  # 3 MB: several chunks
ROUTE = "/experiments/1/files/2/download"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def httpserver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def client(url: str, sleeps: list[float], attempts: int = 3) -> ApiClient:
    return ApiClient(url, "key", retry=RetryPolicy(attempts=attempts, backoff=0.01, timeout=5), sleep=sleeps.append)


def test_connection_refused_is_server_unreachable_with_a_hint_after_the_configured_attempts() -> None:
    sleeps: list[float] = []
    with client(f"http://127.0.0.1:{free_port()}", sleeps, attempts=3) as c:
        with pytest.raises(ServerUnreachable) as info:
            list(c.download_file("1", "2"))
        assert c.requests == 3
    assert len(sleeps) == 2
    assert info.value.message.startswith(f"GET {ROUTE}: cannot reach http://127.0.0.1:")
    assert info.value.message.endswith("(gave up after 3 attempts)")
    assert info.value.hint == "is the server running? check the URL (--remote / ML_DASH_REMOTE)"


def test_a_503_then_success_delivers_the_file(httpserver: HTTPServer) -> None:
    answers = iter([Response('{"error": {"code": "unavailable", "message": "busy"}}', status=503,
                             headers={"Retry-After": "0"}, content_type="application/json"),
                    Response(CONTENT, content_type="application/octet-stream")])
    httpserver.expect_request(ROUTE).respond_with_handler(lambda request: next(answers))
    sleeps: list[float] = []
    with client(httpserver.url_for("/").rstrip("/"), sleeps) as c:
        assert b"".join(c.download_file("1", "2")) == CONTENT
        assert c.requests == 2
    assert len(sleeps) == 1 and 0.005 <= sleeps[0] <= 0.01  # Retry-After (0) is the least; the backoff still holds


def test_retry_after_is_the_least_wait_and_the_backoff_still_grows() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=30)
    assert policy.delay(0, retry_after=2.0) == 2.0  # the server's word over a shorter backoff
    assert 4.0 <= policy.delay(4, retry_after=2.0) <= 8.0  # a long outage: the backoff outgrows it
    assert policy.delay(0, retry_after=120.0) == 30.0  # never past max_backoff
    # A database restart of ~10 s outlasts attempts x Retry-After (5 x 2 s), not the default budget:
    assert sum(RetryPolicy().delay(a, retry_after=2.0) for a in range(5)) >= 2 + 2 + 2 + 2 + 4


def test_a_404_is_not_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_request(ROUTE).respond_with_json(
        {"error": {"code": "not_found", "message": "file 2 not found", "hint": "list the files"}}, status=404)
    sleeps: list[float] = []
    with client(httpserver.url_for("/").rstrip("/"), sleeps) as c:
        with pytest.raises(ApiError) as info:
            list(c.download_file("1", "2"))
        assert c.requests == 1
    assert (info.value.status, info.value.message, info.value.hint) == (404, "file 2 not found", "list the files")


def test_a_stream_broken_mid_way_continues_after_what_was_delivered(httpserver: HTTPServer) -> None:
    checksum = hashlib.sha256(CONTENT).hexdigest()
    headers = {"X-Checksum-Sha256": checksum, "Content-Length": str(len(CONTENT))}

    def broken() -> Iterator[bytes]:
        yield CONTENT[: len(CONTENT) // 2]  # then the connection closes before the announced length

    answers = iter([Response(broken(), headers=headers, direct_passthrough=True),
                    Response(CONTENT, headers={"X-Checksum-Sha256": checksum})])
    httpserver.expect_request(ROUTE).respond_with_handler(lambda request: next(answers))
    sleeps: list[float] = []
    with client(httpserver.url_for("/").rstrip("/"), sleeps) as c:
        stream = c.download_file("1", "2")
        chunks = [next(stream)]
        assert c.requests == 1  # a first part was delivered before the break
        chunks += list(stream)
        assert c.requests == 2
    assert b"".join(chunks) == CONTENT  # nothing doubled, nothing missing
    assert len(sleeps) == 1


def test_a_file_that_changed_after_part_was_delivered_is_an_error_not_a_mixed_file(httpserver: HTTPServer) -> None:
    def broken() -> Iterator[bytes]:
        yield CONTENT[: len(CONTENT) // 2]

    answers = iter([Response(broken(), headers={"X-Checksum-Sha256": "a" * 64, "Content-Length": str(len(CONTENT))},
                             direct_passthrough=True),
                    Response(CONTENT, headers={"X-Checksum-Sha256": "b" * 64})])
    httpserver.expect_request(ROUTE).respond_with_handler(lambda request: next(answers))
    with client(httpserver.url_for("/").rstrip("/"), []) as c:
        with pytest.raises(ApiError, match="the file changed on the server while it was downloaded") as info:
            list(c.download_file("1", "2"))
    assert info.value.hint == "download it again"


def test_ml_dash_download_gets_every_file_through_503s_and_resets(target: Target, tmp_path: Path) -> None:  # noqa: F811
    up = run_cli("upload", str(REAL_CLIENT_TREE), "--remote", target.url, "--api-key", target.key, cwd=tmp_path)
    assert up.returncode == 0, up.stdout + up.stderr
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    proxy = FaultProxy(server, target.url)
    try:
        proxy.inject(r"/download$", status(503, {"Retry-After": "0"}), times=3)

        def reset(request: Request, forward: object) -> Response:
            sock = request.environ["werkzeug.socket"]
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            return Response("")

        proxy.inject(r"/download$", reset, times=2)
        r = run_cli("download", str(tmp_path / "down"), "--remote", proxy.url, "--api-key", target.key,
                    "retry.backoff=0.01", cwd=tmp_path)
        downloads = [path for _, method, path in proxy.log if path.endswith("/download")]
    finally:
        server.clear()
        server.stop()
        proxy.upstream.close()
    assert r.returncode == 0, r.stdout + r.stderr
    assert records_of(tmp_path / "down") == records_of(REAL_CLIENT_TREE)
    assert len(downloads) == len(set(downloads)) + 5  # every fault was met and retried
