"""`ml-dash serve` as a process: start-up on a free port, health, request log, graceful shutdown."""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.helpers.server import live_server


def test_serve_starts_answers_and_logs_each_request_as_json(tmp_path: Path) -> None:
    with live_server(tmp_path / "srv") as server:
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
        key = server.token("k", "alice")
        r = httpx.post(f"{server.url}/projects/p/experiments", json={"name": "e"},
                       headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 201
        server.stop()
        lines = [json.loads(x) for x in server.log.splitlines() if x.startswith("{")]
    assert {"method": "POST", "path": "/projects/p/experiments", "status": 201, "namespace": "alice"}.items() <= \
        lines[-1].items()
    assert (tmp_path / "srv/ml-dash.db").exists() and (tmp_path / "srv/blobs").is_dir()  # created on first start


def test_sigterm_lets_an_in_flight_upload_finish(tmp_path: Path) -> None:
    chunk, chunks = b"x" * 65536, 160  # 10 MiB, sent slowly
    with live_server(tmp_path / "srv") as server:
        key = server.token("k", "alice")
        headers = {"Authorization": f"Bearer {key}"}
        exp = httpx.post(f"{server.url}/projects/p/experiments", json={"name": "e"}, headers=headers).json()[
            "experiment"]["id"]
        started = threading.Event()
        result: dict[str, object] = {}

        def body() -> Iterator[bytes]:
            boundary = "b0undary"
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"prefix\"\r\n\r\n/\r\n--{boundary}\r\n"
                   "Content-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
                   "Content-Type: application/octet-stream\r\n\r\n").encode()
            for i in range(chunks):
                if i == 10:
                    started.set()
                time.sleep(0.01)
                yield chunk
            yield f"\r\n--{boundary}--\r\n".encode()

        def send() -> None:
            r = httpx.post(f"{server.url}/experiments/{exp}/files", content=body(), headers={
                **headers, "Content-Type": "multipart/form-data; boundary=b0undary"}, timeout=60)
            result["status"] = r.status_code
            result["body"] = r.json()

        t = threading.Thread(target=send)
        t.start()
        assert started.wait(30)
        server.process.send_signal(signal.SIGTERM)  # shutdown begins while the upload is streaming
        t.join(60)
        # uvicorn finishes the in-flight request, then re-raises SIGTERM: the conventional exit by signal.
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert result["status"] == 201
    assert result["body"]["checksum"] == hashlib.sha256(chunk * chunks).hexdigest()  # type: ignore[index]
