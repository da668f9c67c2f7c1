"""Hybrid mode while the server goes away: training goes on, and every record reaches the
server exactly once (when it comes back during the run, or through `ml-dash upload` after)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx

from ml_dash import Experiment
from tests.helpers.cli import run_cli
from tests.helpers.server import live_server


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
