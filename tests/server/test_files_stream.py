"""File uploads as they stream in: the 0.5.8 route in pieces, the batch route of many small files,
failures that must leave nothing behind, the same files at once, and kill -9 in the middle.

Real servers only: the app in-process on both storage backends (SQLite + files, PostgreSQL + S3
on moto), and ``ml-dash serve`` on 127.0.0.1 where the body must arrive in pieces over a socket.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.helpers.server import LiveServer, live_server
from tests.server.conftest import Api, make_state


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def batch_body(entries: list[dict[str, Any]], contents: list[bytes], manifest_first: bool = True,
               ) -> tuple[bytes, str]:
    """A batch request's multipart body, written by hand (as ``ApiClient.upload_files`` does)."""
    boundary = secrets.token_hex(8)
    manifest = (f'--{boundary}\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n'.encode()
                + json.dumps(entries).encode() + b"\r\n")
    parts = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{n}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
                     for n, data in enumerate(contents))
    body = (manifest + parts if manifest_first else parts + manifest) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def entry(name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"prefix": "/small", "filename": name, "checksum": sha(data), "sizeBytes": len(data), **extra}


def post_batch(client: Any, exp: str, entries: list[dict[str, Any]], contents: list[bytes],
               **kwargs: Any) -> Any:
    body, ctype = batch_body(entries, contents, **kwargs)
    return client.post(f"/experiments/{exp}/batch/files", content=body, headers={"Content-Type": ctype})


def staged(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".staging" in p.parts]


def blobs(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".staging" not in p.parts]


# --- the batch route, in-process on both backends ---------------------------------------------------------------
def test_a_batch_stores_each_file_and_answers_in_order(api_any: Api) -> None:
    exp = api_any.experiment()
    contents = [f"small file {i}\n".encode() * (i + 1) for i in range(5)]
    entries = [entry(f"f{i}.txt", c, description="d" if i == 0 else None, tags=["a", "b"] if i == 1 else [],
                     metadata={"epoch": i} if i == 2 else None, contentType="text/plain") for i, c in enumerate(contents)]
    r = post_batch(api_any.alice, exp, entries, contents)
    assert r.status_code == 200, r.text
    answers = r.json()["files"]
    assert [a["created"] for a in answers] == [True] * 5
    assert [a["file"]["filename"] for a in answers] == [f"f{i}.txt" for i in range(5)]
    first, second, third = (a["file"] for a in answers[:3])
    assert (first["description"], second["tags"], third["metadata"]) == ("d", ["a", "b"], {"epoch": 2})
    assert first["contentType"] == "text/plain" and first["path"] == "/small"
    for a, c in zip(answers, contents, strict=True):
        f = a["file"]
        assert (f["sizeBytes"], f["checksum"]) == (len(c), sha(c))
        assert api_any.alice.get(f"/experiments/{exp}/files/{f['id']}/download").content == c
    again = post_batch(api_any.alice, exp, entries, contents).json()["files"]  # a retry: nothing new
    assert [a["created"] for a in again] == [False] * 5
    assert [a["file"]["id"] for a in again] == [a["file"]["id"] for a in answers]
    assert api_any.alice.get(f"/experiments/{exp}/files").json()["total"] == 5


def test_an_empty_batch_stores_nothing_and_says_the_route_is_there(api_any: Api) -> None:
    exp = api_any.experiment()
    r = post_batch(api_any.alice, exp, [], [])
    assert r.status_code == 200 and r.json() == {"files": []}
    assert api_any.alice.get(f"/experiments/{exp}/files").json()["total"] == 0


def test_a_bad_file_in_a_batch_is_refused_alone(api: Api) -> None:
    exp = api.experiment()
    good, changed, misnamed, after = b"good\n", b"changed\n", b"misnamed\n", b"after\n"
    entries = [entry("good.txt", good), {**entry("changed.txt", changed), "checksum": sha(b"other")},
               entry("../escape.txt", misnamed), entry("after.txt", after), {**entry("short.txt", good), "sizeBytes": 99}]
    r = post_batch(api.alice, exp, entries, [good, changed, misnamed, after, good])
    assert r.status_code == 200, r.text
    answers = r.json()["files"]
    assert answers[0]["created"] and answers[3]["created"]
    assert answers[1]["status"] == 422 and answers[1]["error"]["code"] == "checksum_mismatch"
    assert answers[2]["status"] == 422 and "plain file name" in answers[2]["error"]["message"]
    assert answers[4]["status"] == 422 and "sizeBytes says 99" in answers[4]["error"]["message"]
    assert all(a["error"]["hint"] for a in (answers[1], answers[2], answers[4]))
    names = sorted(f["filename"] for f in api.alice.get(f"/experiments/{exp}/files").json()["files"])
    assert names == ["after.txt", "good.txt"]
    assert not staged(api.state.data_dir.parent / "blobs")


def test_malformed_batches_are_refused_with_a_hint(api: Api) -> None:
    exp = api.experiment()
    data = b"x\n"
    cases = {
        "files before the manifest": post_batch(api.alice, exp, [entry("a", data)], [data], manifest_first=False),
        "more parts than entries": post_batch(api.alice, exp, [entry("a", data)], [data, data]),
        "fewer parts than entries": post_batch(api.alice, exp, [entry("a", data), entry("b", data)], [data]),
        "not a list": post_batch(api.alice, exp, {"a": 1}, []),  # type: ignore[arg-type]
        "not multipart": api.alice.post(f"/experiments/{exp}/batch/files", json={"files": []}),
    }
    for name, r in cases.items():
        assert r.status_code == 422, (name, r.text)
        assert r.json()["error"]["hint"], name
    # what arrived whole before the request turned out wrong is a complete, verified file
    assert [f["filename"] for f in api.alice.get(f"/experiments/{exp}/files").json()["files"]] == ["a"]


def test_a_file_over_the_servers_limit_is_refused_alone(tmp_path: Path) -> None:
    api = Api(make_state(tmp_path, limits={"max_file_bytes": 1000}))
    try:
        exp = api.experiment()
        small, large = b"s" * 100, b"L" * 5000
        r = post_batch(api.alice, exp, [entry("small", small), entry("large", large), entry("next", small)],
                       [small, large, small])
        answers = r.json()["files"]
        assert answers[1]["status"] == 413 and answers[1]["error"]["hint"]
        assert answers[0]["created"] and answers[2]["created"]
        assert not staged(tmp_path / "blobs")
    finally:
        api.close()


def test_a_batch_for_another_namespace_is_forbidden(api: Api) -> None:
    exp = api.experiment()
    r = post_batch(api.bob, exp, [entry("a", b"a")], [b"a"])
    assert r.status_code == 403 and r.json()["error"]["hint"]
    assert api.alice.get(f"/experiments/{exp}/files").json()["total"] == 0


# --- the 0.5.8 route, over a socket ------------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "server", "log_requests=false") as s:
        yield s


def _client(server: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _experiment(c: httpx.Client, name: str = "e") -> str:
    r = c.post("/projects/p/experiments", json={"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["experiment"]["id"])


def _single_body(content: bytes, filename: str = "w.bin", checksum: str | None = None) -> tuple[bytes, str]:
    boundary = secrets.token_hex(8)
    fields = {"prefix": "/models", "checksum": checksum or sha(content), "sizeBytes": str(len(content))}
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
             "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _pieces(body: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i:i + size]


def test_a_large_upload_in_odd_pieces_is_stored_exactly(server: LiveServer) -> None:
    """The body arrives in pieces that split the boundary and the headers anywhere; the server
    hands it on in batches while the next piece arrives, and stores exactly the bytes sent."""
    with _client(server, server.token("t", "alice")) as c:
        exp = _experiment(c)
        content = os.urandom(3 * 1024 * 1024 + 12345)
        body, ctype = _single_body(content)
        r = c.post(f"/experiments/{exp}/files", content=_pieces(body, 7777),
                   headers={"Content-Type": ctype, "Content-Length": str(len(body))})
        assert r.status_code == 201, r.text
        assert (r.json()["sizeBytes"], r.json()["checksum"]) == (len(content), sha(content))
        assert c.get(f"/experiments/{exp}/files/{r.json()['id']}/download").content == content
    assert not staged(server.data_dir / "blobs")


def _wait_unstaged(root: Path) -> None:
    deadline = time.monotonic() + 10
    while staged(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not staged(root), staged(root)


def test_a_failed_or_abandoned_upload_leaves_nothing_staged(server: LiveServer) -> None:
    with _client(server, server.token("t", "alice")) as c:
        exp = _experiment(c)
        content = os.urandom(2 * 1024 * 1024)
        body, ctype = _single_body(content, checksum=sha(b"something else"))
        r = c.post(f"/experiments/{exp}/files", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 422 and r.json()["error"]["code"] == "checksum_mismatch"
        # a client that goes away half-way: its bytes are dropped, the server goes on serving
        body, ctype = _single_body(content)
        url = urlparse(server.url)
        with socket.create_connection((url.hostname, url.port)) as raw:
            raw.sendall(f"POST /experiments/{exp}/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                        f"{c.headers['authorization'].split()[1]}\r\nContent-Type: {ctype}\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
            time.sleep(0.3)
        _wait_unstaged(server.data_dir / "blobs")
        assert c.get(f"/experiments/{exp}/files").json()["total"] == 0
        assert c.get("/health").status_code == 200
    assert "Traceback" not in server.log


# --- the same files at once ---------------------------------------------------------------------------------------
def test_the_same_files_at_once_by_batch_and_alone_keep_one_record_and_one_blob(server: LiveServer) -> None:
    key = server.token("t", "alice")
    with _client(server, key) as c:
        exp = _experiment(c)
    contents = [f"shared {i}\n".encode() * 100 for i in range(20)]
    entries = [entry(f"f{i}.txt", data) for i, data in enumerate(contents)]
    barrier = threading.Barrier(8, timeout=60)
    results: list[Any] = [None] * 8

    def run(i: int) -> None:
        with _client(server, key) as c:
            barrier.wait()
            if i < 6:
                results[i] = post_batch(c, exp, entries, contents).json()["files"]
            else:  # the 0.5.8 route, one file after the other, at the same time
                for n, data in enumerate(contents):
                    body, ctype = _single_body(data, f"f{n}.txt")
                    r = c.post(f"/experiments/{exp}/files", content=body.replace(b"/models", b"/small"),
                               headers={"Content-Type": ctype})
                    assert r.status_code == 201, r.text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for answers in results[:6]:
        assert all("file" in a for a in answers), answers
    ids = {a["file"]["id"] for answers in results[:6] for a in answers}
    assert len(ids) == 20  # every sender got the one record of each file
    import sqlite3

    conn = sqlite3.connect(server.data_dir / "ml-dash.db")
    try:
        rows = conn.execute("SELECT filename, COUNT(*) FROM files GROUP BY filename").fetchall()
    finally:
        conn.close()
    assert sorted(rows) == sorted((f"f{i}.txt", 1) for i in range(20))  # never a second record
    assert len(blobs(server.data_dir / "blobs")) == 20 and not staged(server.data_dir / "blobs")


# --- kill -9 in the middle ---------------------------------------------------------------------------------------
def _slow(body: bytes, piece: int, pause: float, sent: threading.Event) -> Iterator[bytes]:
    for i, chunk in enumerate(_pieces(body, piece)):
        if i == 3:
            sent.set()
        yield chunk
        time.sleep(pause)


def _kill_mid_upload(server: LiveServer, send: Any) -> None:
    """``send()`` in a thread; kill -9 the server once part of the body is in."""
    sent = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            send(sent)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    assert sent.wait(30)
    time.sleep(0.2)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    t.join(60)
    assert errors, "the upload finished before the server was killed"


def test_kill_minus_9_mid_upload_leaves_no_record_and_no_half_blob(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    content = os.urandom(4 * 1024 * 1024)
    small = [f"small {i}\n".encode() * 500 for i in range(30)]
    with live_server(data_dir, "log_requests=false") as server:
        key = server.token("t", "alice")
        with _client(server, key) as c:
            exp = _experiment(c)
            body, ctype = _single_body(content)
            bbody, bctype = batch_body([entry(f"s{i}", s) for i, s in enumerate(small)], small)

            def send_both(sent: threading.Event) -> None:
                done = threading.Event()

                def batch() -> None:
                    with _client(server, key) as c2:
                        try:
                            c2.post(f"/experiments/{exp}/batch/files", content=_slow(bbody, 4096, 0.02, done),
                                    headers={"Content-Type": bctype, "Content-Length": str(len(bbody))})
                        except httpx.HTTPError:
                            pass

                other = threading.Thread(target=batch)
                other.start()
                try:
                    c.post(f"/experiments/{exp}/files", content=_slow(body, 256 * 1024, 0.05, sent),
                           headers={"Content-Type": ctype, "Content-Length": str(len(body))})
                finally:
                    other.join(60)

            _kill_mid_upload(server, send_both)
    with live_server(data_dir, "log_requests=false") as server:
        with _client(server, key) as c:
            listed = c.get(f"/experiments/{exp}/files").json()["files"]
            assert "w.bin" not in {f["filename"] for f in listed}  # the half-sent file: never recorded
            for f in listed:  # the small files that arrived whole before the kill: complete and verified
                got = c.get(f"/experiments/{exp}/files/{f['id']}/download").content
                assert sha(got) == f["checksum"] == sha(small[int(f["filename"][1:])])
            stored = {p.name for p in blobs(data_dir / "blobs")}
            assert sha(content) not in stored  # no blob under the hash of content that never arrived
            assert all(sha(p.read_bytes()) == p.name for p in blobs(data_dir / "blobs"))  # no half blob
            body, ctype = _single_body(content)  # sent again, it is stored whole
            r = c.post(f"/experiments/{exp}/files", content=body, headers={"Content-Type": ctype})
            assert r.status_code == 201 and r.json()["checksum"] == sha(content)
            r = post_batch(c, exp, [entry(f"s{i}", s) for i, s in enumerate(small)], small)
            assert all("file" in a for a in r.json()["files"])
            assert c.get(f"/experiments/{exp}/files").json()["total"] == 31
