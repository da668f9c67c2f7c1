"""Remote mode writes ahead to a spool: a server down at the end of training or a kill -9 of
the training process loses nothing, and `ml-dash upload` of the spool sends exactly the rest."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from ml_dash import Experiment
from tests.helpers.cli import run_cli
from tests.helpers.server import live_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_records(url: str, key: str) -> tuple[list[str], list[int]]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
        exp = c.post("/projects/p/experiments", json={"name": "spooled"}).json()["experiment"]["id"]
        logs = [x["message"] for x in c.get(f"/experiments/{exp}/logs", params={"limit": 10000}).json()["logs"]]
        r = c.get(f"/experiments/{exp}/metrics/loss/data", params={"limit": 10000})
        steps = [p["data"]["step"] for p in r.json()["data"]] if r.status_code == 200 else []
    return logs, steps


def runs(spool: Path) -> list[Path]:
    return sorted(p for p in spool.glob("run-*") if p.is_dir()) if spool.exists() else []


def test_a_clean_run_leaves_no_spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = tmp_path / "spool"
    monkeypatch.setenv("ML_DASH_SPOOL_DIR", str(spool))
    with live_server(tmp_path / "server") as server:
        key = server.token("k", "alice")
        with Experiment(name="spooled", project="p", remote=server.url, api_key=key).run as exp:
            for i in range(50):
                exp.log(f"line {i}")
                exp.metrics("loss").append(value=i, step=i)
            assert len(runs(spool)) == 1  # written ahead while the run is open
        assert runs(spool) == []
        assert server_records(server.url, key) == ([f"line {i}" for i in range(50)], list(range(50)))


def test_server_down_at_the_end_then_upload_of_the_spool_sends_the_rest_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    spool, port, data = tmp_path / "spool", free_port(), tmp_path / "server"
    monkeypatch.setenv("ML_DASH_SPOOL_DIR", str(spool))
    monkeypatch.setenv("ML_DASH_CLOSE_TIMEOUT", "1")
    with live_server(data, port=port) as server:
        key, url = server.token("k", "alice"), server.url
        exp = Experiment(name="spooled", project="p", remote=url, api_key=key).run.start()
        for i in range(100):
            exp.log(f"line {i}")
            exp.metrics("loss").append(value=i, step=i)
        exp.flush()
    for i in range(100, 180):  # the server is gone: the spool takes everything
        exp.log(f"line {i}")
        exp.metrics("loss").append(value=i, step=i)
    exp.run.complete()
    err = capsys.readouterr().err
    (run,) = runs(spool)
    assert f"ml-dash: 160 record(s) did not reach {url} (logs: 80, metric 'loss': 80)" in err, err
    assert f"send them with: ml-dash upload {run} --remote {url}" in err
    with live_server(data, port=port) as again:
        r = run_cli("upload", str(spool), "--remote", again.url, "--api-key", key, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert server_records(again.url, key) == ([f"line {i}" for i in range(180)], list(range(180)))


TRAINING = textwrap.dedent("""
    import sys, time
    from ml_dash import Experiment
    exp = Experiment(name="spooled", project="p", remote=sys.argv[1], api_key=sys.argv[2]).run.start()
    for i in range(400):
        exp.log(f"line {i}")
        exp.metrics("loss").append(value=i, step=i)
        if i == 200:
            # The loop takes microseconds a step: give the sender its turn, so that some batches went
            # (full batches of 40 go at once) while the lines after them stay queued until the kill.
            time.sleep(2)
        if i == 250:
            print("step 250", flush=True)
            time.sleep(60)  # killed here, with records queued and not yet sent
""")


def test_kill_9_in_remote_mode_then_upload_of_the_spool_sends_exactly_the_rest(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
    env.update(ML_DASH_SPOOL_DIR=str(spool), ML_DASH_LOG_BATCH_SIZE="40", ML_DASH_METRIC_BATCH_SIZE="40",
               ML_DASH_FLUSH_INTERVAL="600", ML_DASH_CONFIG_DIR=str(tmp_path / "home"))
    with live_server(tmp_path / "server") as server:
        key = server.token("k", "alice")
        proc = subprocess.Popen([sys.executable, "-c", TRAINING, server.url, key], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "step 250"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        logs, steps = server_records(server.url, key)
        assert 0 < len(logs) < 251  # some went, some were only queued: a real loss without the spool
        r = run_cli("upload", str(spool), "--remote", server.url, "--api-key", key, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert server_records(server.url, key) == ([f"line {i}" for i in range(251)], list(range(251)))
