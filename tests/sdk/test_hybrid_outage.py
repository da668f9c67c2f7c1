"""Hybrid mode while the server goes away: training goes on, and every record reaches the
server exactly once (when it comes back during the run, or through `ml-dash upload` after)."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml_dash import Experiment
from ml_dash.api.client import ApiClient, ServerUnreachable
from ml_dash.errors import ApiError, InvalidInputError, MLDashError
from ml_dash.sdk.backends.hybrid import _transient
from tests.helpers.cli import run_cli
from tests.helpers.server import LiveServer, live_server, start_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_points(url: str, key: str, exp_id: str, metric: str) -> list[dict]:
    r = httpx.get(f"{url}/experiments/{exp_id}/metrics/{metric}/data", params={"limit": 100000},
                  headers={"Authorization": f"Bearer {key}"})
    return [p["data"] for p in r.json()["data"]]


def server_logs(url: str, key: str, exp_id: str) -> list[str]:
    r = httpx.get(f"{url}/experiments/{exp_id}/logs", params={"limit": 10000},
                  headers={"Authorization": f"Bearer {key}"})
    return [x["message"] for x in r.json()["logs"]]


def phase(exp: Experiment, start: int, n: int) -> None:
    for i in range(start, start + n):
        exp.metrics("loss").append(value=i, step=i)
        exp.log(f"step {i}")


def test_server_down_mid_run_and_back_before_the_end(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "server"
    with live_server(data, port=port) as first:
        key = first.token("k", "alice")
        exp = Experiment(name="outage", project="p", local_path=tmp_path / "tree", remote=first.url, api_key=key,
                         ).run.start()
        phase(exp, 0, 300)
        exp.flush()
    phase(exp, 300, 300)  # the server is down: nothing raises, the local tree gets everything
    with live_server(data, port=port) as second:
        phase(exp, 600, 300)
        exp.run.complete()  # the queue catches up before the status is sent
        points = server_points(second.url, key, str(exp.id), "loss")
        logs = server_logs(second.url, key, str(exp.id))
    assert [p["step"] for p in points] == list(range(900))
    assert logs == [f"step {i}" for i in range(900)]


def test_server_down_until_the_end_then_upload_sends_the_rest_once(tmp_path: Path) -> None:
    port, data, tree = free_port(), tmp_path / "server", tmp_path / "tree"
    with live_server(data, port=port) as first:
        key = first.token("k", "alice")
        exp = Experiment(name="outage", project="p", local_path=tree, remote=first.url, api_key=key).run.start()
        phase(exp, 0, 200)
        exp.flush()
    phase(exp, 200, 200)
    exp.metrics("loss").append_batch([{"value": -1, "step": 400}])
    exp.run.complete()  # reports what could not be sent; nothing is lost
    with live_server(data, port=port) as second:
        r = run_cli("upload", str(tree), "--remote", second.url, "--api-key", key, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        points = server_points(second.url, key, str(exp.id), "loss")
        logs = server_logs(second.url, key, str(exp.id))
    assert [p["step"] for p in points] == list(range(401))
    assert logs == [f"step {i}" for i in range(400)]


def test_an_unexpected_exception_from_the_server_side_is_reported_once_and_training_goes_on(
        tmp_path: Path, monkeypatch, capsys) -> None:
    from ml_dash.api.client import ApiClient

    def odd_answer(self: ApiClient, *args: object, **kwargs: object) -> dict:
        raise KeyError("id")  # e.g. an answer without the field the client reads

    tree = tmp_path / "tree"
    with live_server(tmp_path / "server") as server:
        key = server.token("k", "alice")
        exp = Experiment(name="odd", project="p", local_path=tree, remote=server.url, api_key=key).run.start()
        phase(exp, 0, 10)
        monkeypatch.setattr(ApiClient, "upload_file", odd_answer)
        exp.files("models").save(b"weights", "model.pth")  # does not raise
        phase(exp, 10, 10)
        exp.files("models").save(b"weights 2", "model2.pth")
        exp.run.complete()
    err = capsys.readouterr().err
    assert err.count("ml-dash: the server side failed (KeyError: 'id'); logging locally only from now on; "
                     f"they are in the local tree; send them with: ml-dash upload {tree}") == 1, err
    base = tree / "p/odd"
    assert [json.loads(x)["data"]["step"] for x in (base / "metrics/loss/data.jsonl").read_text().splitlines()] == list(
        range(20))
    assert len((base / "logs/logs.jsonl").read_text().splitlines()) == 20
    assert sorted(f["filename"] for f in json.loads((base / "files/.files_metadata.json").read_text())["files"]) == [
        "model.pth", "model2.pth"]


# --- outages during the synchronous calls (file uploads, file changes): the server side stays ----------
def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Poll ``condition`` until it holds (a generous deadline: only a hang fails, never a slow machine)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def server_copy(url: str, key: str, exp_id: str) -> dict[str, Any]:
    """Everything the server has of the experiment, in the shape of :func:`local_copy`."""
    with ApiClient(url, key) as client:
        metrics = {m["name"]: [p["data"] for p in client.read_metric(exp_id, m["name"], 0, 100000)["data"]]
                   for m in client.list_metrics(exp_id)}
        logs = [x["message"] for x in client.query_logs(exp_id, limit=100000)["logs"]]
        files = sorted((f["path"], f["filename"], f["checksum"], f["description"],
                        hashlib.sha256(b"".join(client.download_file(exp_id, str(f["id"])))).hexdigest())
                       for f in client.list_files(exp_id))
        params = client.get_params(exp_id).get("data") or {}
    return {"metrics": metrics, "logs": logs, "files": files, "params": params}


def local_copy(exp_dir: Path) -> dict[str, Any]:
    metrics = {d.name: [json.loads(x)["data"] for x in (d / "data.jsonl").read_text().splitlines()]
               for d in (exp_dir / "metrics").iterdir()}
    logs = [json.loads(x)["message"] for x in (exp_dir / "logs/logs.jsonl").read_text().splitlines()]
    manifest = json.loads((exp_dir / "files/.files_metadata.json").read_text())["files"]
    files = sorted((f["path"], f["filename"], f["checksum"], f["description"],
                    hashlib.sha256((exp_dir / "files" / f["path"].strip("/") / f["id"] / f["filename"]).read_bytes())
                    .hexdigest()) for f in manifest if f["deletedAt"] is None)
    params = json.loads((exp_dir / "parameters.json").read_text())["data"]
    return {"metrics": metrics, "logs": logs, "files": files, "params": params}


def server_status(url: str, key: str, exp_id: str) -> str:
    q = "query E($p: String!) { experiments(projectSlug: $p) { id status } }"
    with ApiClient(url, key) as client:
        rows = client.graphql(q, {"p": "p"})["experiments"]
    return {r["id"]: r["status"] for r in rows}[exp_id]


def upload(tree: Path, url: str, key: str, cwd: Path) -> None:
    r = run_cli("upload", str(tree), "--remote", url, "--api-key", key, cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr


def hybrid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[LiveServer, str, Experiment]:
    """A live server and a started hybrid run on it (tree in ``tmp_path/tree``), flushing every 0.1 s."""
    monkeypatch.setenv("ML_DASH_FLUSH_INTERVAL", "0.1")
    server = start_server(tmp_path / "server")
    key = server.token("k", "alice")
    exp = Experiment(name=name, project="p", local_path=tmp_path / "tree", remote=server.url, api_key=key).run.start()
    return server, key, exp


def test_a_restart_during_save_file_keeps_the_server_side_and_sends_the_file_at_close(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "tree"
    server, key, exp = hybrid_run(tmp_path, monkeypatch, "restart")
    try:
        exp.params.set(lr=0.1)
        phase(exp, 0, 50)
        a = exp.files("models").save(b"weights a", "a.bin")
        server.kill()
        phase(exp, 50, 50)  # queued by the sender while the server is away
        exp.files("models").save(b"weights b", "b.bin")  # neither raises nor drops the server side
        exp.files("models").save(b"weights c", "c.bin")
        exp.files(file_id=a["id"], description="best so far").update()  # a change to a file the server has
        exp.params.set(lr=0.01)
        server = server.restart()
        phase(exp, 100, 50)
        exp_id = str(exp.id)
        # Logged after the restart and on the server without `ml-dash upload`: the server side went on.
        wait_for(lambda: len(server_copy(server.url, key, exp_id)["metrics"].get("loss", [])) == 150,
                 "the points logged after the restart")
        exp.run.complete()  # the files the server did not take are sent now (it is back)
        err = capsys.readouterr().err
        # One line per kind of failure, naming the first, the local tree and `ml-dash upload`.
        hint = f"they are in the local tree; send them with: ml-dash upload {tree}"
        assert err.count("ml-dash: could not send file models/b.bin to the server (") == 1, err
        assert err.count("ml-dash: could not send a change to file models/a.bin to the server (") == 1, err
        assert err.count(hint) == 2 and len(err.strip().splitlines()) == 2, err
        assert "c.bin" not in err and "logging locally only" not in err and "not sent" not in err, err
        exp_dir = tree / "p/restart"
        there = server_copy(server.url, key, exp_id)
        assert there == local_copy(exp_dir)
        assert [p["step"] for p in there["metrics"]["loss"]] == list(range(150))
        assert [(f[1], f[3]) for f in there["files"]] == [("a.bin", "best so far"), ("b.bin", None), ("c.bin", None)]
        assert there["params"] == {"lr": 0.01}
        assert server_status(server.url, key, exp_id) == "COMPLETED"
        upload(tree, server.url, key, tmp_path)  # nothing left to send: it adds nothing
        assert server_copy(server.url, key, exp_id) == there
    finally:
        server.stop()


def test_a_server_away_again_at_close_gets_the_rest_once_from_upload(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ML_DASH_CLOSE_TIMEOUT", "1")  # the server is away at close: do not wait long for it
    tree = tmp_path / "tree"
    server, key, exp = hybrid_run(tmp_path, monkeypatch, "twice")
    try:
        exp.params.set(epochs=3)
        phase(exp, 0, 40)
        exp.files("models").save(b"weights a", "a.bin")
        server.kill()
        phase(exp, 40, 40)
        exp.files("models").save(b"weights b", "b.bin")
        server = server.restart()
        phase(exp, 80, 40)
        exp_id = str(exp.id)
        def caught_up() -> bool:
            copy = server_copy(server.url, key, exp_id)
            return len(copy["logs"]) == 120 and len(copy["metrics"].get("loss", [])) == 120

        wait_for(caught_up, "the records logged after the restart")  # sent by the run itself, no upload
        assert [p["step"] for p in server_copy(server.url, key, exp_id)["metrics"]["loss"]] == list(range(120))
        server.kill()
        phase(exp, 120, 7)  # these never reach the server from the run
        exp.params.set(lr=0.5)
        exp.run.complete()
        err = capsys.readouterr().err
        hint = f"they are in the local tree; send them with: ml-dash upload {tree}"
        assert f"ml-dash: 1 file(s) not sent: models/b.bin; {hint}" in err.splitlines(), err
        # Exactly what the server did not acknowledge: what was logged since the second kill.
        report = next(x for x in err.splitlines() if "record(s) did not reach" in x)
        assert report.startswith(f"ml-dash: 15 record(s) did not reach {server.url} (")
        assert all(part in report for part in ("logs: 7", "metric 'loss': 7", "parameters: 1")), report
        assert report.endswith(hint), report
        assert "logging locally only" not in err, err
        server = server.restart()
        assert server_status(server.url, key, exp_id) == "RUNNING"  # the server's copy is not whole
        upload(tree, server.url, key, tmp_path)
        there = server_copy(server.url, key, exp_id)
        # Every record exactly once: the server kept what the run sent and took only the rest from upload.
        assert there == local_copy(tree / "p/twice")
        assert [p["step"] for p in there["metrics"]["loss"]] == list(range(127))
        assert there["logs"] == [f"step {i}" for i in range(127)]
        assert [f[1] for f in there["files"]] == ["a.bin", "b.bin"]
        assert there["params"] == {"epochs": 3, "lr": 0.5}
    finally:
        server.stop()


def test_a_permanent_refusal_still_drops_the_server_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "tree"
    with live_server(tmp_path / "server") as server:
        key = server.token("k", "alice")
        exp = Experiment(name="refused", project="p", local_path=tree, remote=server.url, api_key=key).run.start()
        phase(exp, 0, 10)
        a = exp.files("models").save(b"weights", "a.bin")
        exp_id = str(exp.id)
        with ApiClient(server.url, key) as client:  # another client removes the server's copy: 404 from now on
            client.delete_file(exp_id, next(str(f["id"]) for f in client.list_files(exp_id)))
        exp.files(file_id=a["id"], description="x").update()  # does not raise
        phase(exp, 10, 10)
        exp.run.complete()
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if "logging locally only from now on" in x]
        assert len(lines) == 1 and lines[0].startswith("ml-dash: server unreachable (") and lines[0].endswith(
            f"logging locally only from now on; they are in the local tree; send them with: ml-dash upload {tree}"), err
        there = server_copy(server.url, key, exp_id)
        # Records queued before the drop were still sent at close; nothing after it; no final status.
        assert [p["step"] for p in there["metrics"]["loss"]] == list(range(10))
        assert server_status(server.url, key, exp_id) == "RUNNING"
        assert exp.id == exp_id
        upload(tree, server.url, key, tmp_path)
        assert [p["step"] for p in server_copy(server.url, key, exp_id)["metrics"]["loss"]] == list(range(20))


@pytest.mark.parametrize(("error", "transient"), [
    (ServerUnreachable("cannot reach"), True),
    (ApiError("busy", status=503), True),
    (ApiError("slow down", status=429), True),
    (ApiError("timeout", status=408), True),
    (ApiError("bug", status=500), True),
    (ApiError("not found", status=404), False),
    (ApiError("conflict", status=409), False),
    (ApiError("forbidden", status=403), False),
    (InvalidInputError("bad"), False),
])
def test_which_failures_leave_the_server_side_on(error: MLDashError, transient: bool) -> None:
    assert _transient(error) is transient
