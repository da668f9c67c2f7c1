"""A full blob store (the volume or its quota): the server answers 503 + Retry-After, keeps no
half-written file, and an upload that met it ends with every file exactly once once there is room.

The server runs in its own mount namespace with a real 1 MiB tmpfs on its blob directory, so the
ENOSPC comes from the kernel; growing that tmpfs (``mount -o remount``) is "an operator made room".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ml_dash import Experiment
from ml_dash.api.client import ApiClient
from ml_dash.errors import ApiError
from tests.helpers.cli import ML_DASH, run_cli
from tests.helpers.server import live_server
from tests.helpers.trees import records_of

KIB = 1024


def _namespaced(blobs: Path) -> tuple[str, ...]:
    """Run the server in a private mount namespace with a 1 MiB tmpfs on ``blobs`` (exec keeps the pid)."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:  # pragma: no cover - util-linux
        pytest.fail("unshare and nsenter (util-linux) are needed: run scripts/setup.sh")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    assert probe.returncode == 0, f"a mount namespace is needed (root, CAP_SYS_ADMIN): {probe.stderr.strip()}"
    return ("unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o size=1m ml-dash-blobs "$0" && exec "$@"', str(blobs))


def _grow(pid: int, blobs: Path) -> None:
    subprocess.run(["nsenter", "-t", str(pid), "-m", "mount", "-o", "remount,size=64m", str(blobs)], check=True)


def _used(pid: int, blobs: Path) -> list[str]:
    """Every file in the server's view of its blob store (``/proc/PID/root`` enters its namespace)."""
    root = Path(f"/proc/{pid}/root{blobs}")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _tree(root: Path) -> Path:
    """Files that do not fit in 1 MiB together: 2 large (the one-file route) and 24 small (batched)."""
    with Experiment(name="big", project="p", local_path=root).run as exp:
        exp.metrics("loss").append_batch([{"value": i / 7, "step": i} for i in range(100)])
        for i in range(2):
            exp.files("weights").save(os.urandom(1200 * KIB), f"w{i}.bin")
        for i in range(24):
            exp.files("small").save(os.urandom(60 * KIB), f"s{i}.bin")
    return root


def _statuses(log: str) -> list[tuple[int, str]]:
    return [(r["status"], r["path"]) for r in (json.loads(x) for x in log.splitlines() if x.startswith("{"))]


def test_full_blob_store_503_then_every_file_exactly_once(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    tree = _tree(tmp_path / "tree")
    with live_server(tmp_path / "srv", "--blobs", f"file://{blobs}", prefix=_namespaced(blobs)) as server:
        pid, key = server.process.pid, server.token("k", "alice")

        # One file larger than the volume, one attempt: a 503 with Retry-After and what is full, not a 500.
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(1500 * KIB))
        with ApiClient(server.url, key) as client:
            exp = client.create_experiment("probe", {"name": "probe"})["id"]
            with pytest.raises(ApiError) as refused:
                client.upload_file(exp, big, prefix="/", filename="big.bin",
                                   checksum=hashlib.sha256(big.read_bytes()).hexdigest(), size=big.stat().st_size,
                                   content_type="application/octet-stream", attempts=1)
        assert refused.value.status == 503 and "the blob store is full" in refused.value.message, refused.value
        assert refused.value.hint and "free space" in refused.value.hint
        assert _used(pid, blobs) == []  # the partial upload was removed: its space is free again
        raw = httpx.post(f"{server.url}/experiments/{exp}/files", headers={"Authorization": f"Bearer {key}"},
                         files={"file": ("big.bin", big.read_bytes())},
                         data={"prefix": "/", "checksum": hashlib.sha256(big.read_bytes()).hexdigest(),
                               "sizeBytes": str(big.stat().st_size)})
        assert raw.status_code == 503 and raw.headers["retry-after"], raw.text
        assert "blob store is full" in server.log  # the operator's one line

        # An upload meets the full store, waits (the client retries 503 after Retry-After) and ends
        # complete once the operator makes room.
        before = len(_statuses(server.log))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
        up = subprocess.Popen([ML_DASH, "upload", str(tree), "--remote", server.url, "--api-key", key],
                              cwd=tmp_path, env={**env, "NO_COLOR": "1"}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not any(s == 503 and "/files" in p for s, p in _statuses(server.log)[before:]):
            assert up.poll() is None, f"the upload ended before the store was full: {up.communicate()[0]}"
            assert time.monotonic() < deadline, server.log[-2000:]
            time.sleep(0.1)
        _grow(pid, blobs)
        out, _ = up.communicate(timeout=300)
        assert up.returncode == 0, out
        answered = _statuses(server.log)[before:]
        assert not [a for a in answered if a[0] >= 500 and a[0] != 503], answered

        down = run_cli("download", str(tmp_path / "down"), "--remote", server.url, "--api-key", key, cwd=tmp_path)
        assert down.returncode == 0, down.stdout + down.stderr
        got = records_of(tmp_path / "down")
        assert got.pop("probe/probe")["files"] == []  # the refused file left no record
        assert got == records_of(tree)  # every file once, with its content
        again = run_cli("upload", str(tree), "--remote", server.url, "--api-key", key, "+profile=ci", cwd=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        report = json.loads((tmp_path / "ml-dash-report.json").read_text())
        assert report["experiments"][0]["sent"]["files"] == 0  # nothing was left to send
        # 26 blobs, nothing staged left behind
        assert len([u for u in _used(pid, blobs) if not u.startswith(".staging")]) == 26
        assert [u for u in _used(pid, blobs) if u.startswith(".staging")] == []
