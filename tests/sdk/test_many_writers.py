"""Several SDK processes logging to one experiment at once (the ranks of a distributed job):
every line and point of every process reaches the server exactly once, in remote and hybrid
mode, and after a kill -9 `ml-dash upload` sends exactly the rest."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.server import LiveServer, live_server

STEPS = 150

# One rank: waits for a shared start time so that all ranks overlap, then logs STEPS lines and
# points to a shared metric and one of its own, in single calls and in batches.
RANK = textwrap.dedent("""
    import sys, time
    from ml_dash import Experiment
    rank, steps, start_at = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    kwargs = dict(name="ddp", project="p", remote=sys.argv[4], api_key=sys.argv[5])
    if len(sys.argv) > 6:
        kwargs["local_path"] = sys.argv[6]
    exp = Experiment(**kwargs).run.start()
    while time.time() < start_at:
        time.sleep(0.005)
    for i in range(steps):
        exp.log(f"rank {rank} step {i}")
        time.sleep(0.002)  # ranks interleave record by record, as real training steps do
        exp.metrics("loss").append(value=rank * 100000 + i, step=i)
        if i % 10 == 9:
            exp.metrics(f"rank{rank}").append_batch([{"v": rank, "i": i - 9 + k} for k in range(10)])
        if i == steps // 2:
            print("halfway", flush=True)
    exp.run.complete()
""")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "DREAMLAKE_"))}
    env.update(ML_DASH_FLUSH_INTERVAL="0.05", ML_DASH_LOG_BATCH_SIZE="7", ML_DASH_METRIC_BATCH_SIZE="11",
               ML_DASH_CONFIG_DIR=str(home))  # the remote-mode spool goes below it
    return env


def start_ranks(server: LiveServer, key: str, n: int, trees: list[Path | None]) -> list[subprocess.Popen[str]]:
    start_at = time.time() + 4.0  # every rank is up and connected before any of them logs
    procs = []
    for rank in range(n):
        tree = trees[rank]
        args = [sys.executable, "-c", RANK, str(rank), str(STEPS), str(start_at), server.url, key]
        procs.append(subprocess.Popen(args + ([str(tree)] if tree else []), env=_env(server.data_dir / "home"),
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def wait_all(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "did not reach" not in err, err  # the exit report: nothing unsent


def server_view(server: LiveServer, key: str) -> tuple[list[str], dict[str, list[dict]]]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers) as c:
        exp = c.post("/projects/p/experiments", json={"name": "ddp"}).json()["experiment"]["id"]
        logs = c.get(f"/experiments/{exp}/logs", params={"limit": 10000}).json()["logs"]
        assert [int(x["sequenceNumber"]) for x in logs] == list(range(len(logs)))  # no gaps, no doubles
        metrics = {}
        for m in c.get(f"/experiments/{exp}/metrics").json()["metrics"]:
            r = c.get(f"/experiments/{exp}/metrics/{m['name']}/data", params={"limit": 100000}).json()
            metrics[m["name"]] = [p["data"] for p in r["data"]]
    return [x["message"] for x in logs], metrics


def expected(n: int) -> tuple[collections.Counter[str], dict[str, collections.Counter[str]]]:
    logs = collections.Counter(f"rank {r} step {i}" for r in range(n) for i in range(STEPS))
    metrics = {"loss": collections.Counter(repr({"value": r * 100000 + i, "step": i})
                                           for r in range(n) for i in range(STEPS))}
    for r in range(n):
        metrics[f"rank{r}"] = collections.Counter(repr({"v": r, "i": i}) for i in range(STEPS // 10 * 10))
    return logs, metrics


def assert_exactly_once(server: LiveServer, key: str, n: int) -> None:
    logs, metrics = server_view(server, key)
    want_logs, want_metrics = expected(n)
    assert collections.Counter(logs) == want_logs
    assert set(metrics) == set(want_metrics)
    for name, points in metrics.items():
        assert collections.Counter(repr(p) for p in points) == want_metrics[name], name


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [2, 4])
def test_ranks_in_remote_mode_each_land_exactly_once(tmp_path: Path, ranks: int) -> None:
    with live_server(tmp_path / "server", "log_requests=false") as server:
        key = server.token("k", "alice")
        wait_all(start_ranks(server, key, ranks, [None] * ranks))
        assert_exactly_once(server, key, ranks)


@pytest.mark.slow
@pytest.mark.parametrize("shared_tree", [True, False], ids=["one-shared-tree", "a-tree-per-rank"])
def test_ranks_in_hybrid_mode_each_land_exactly_once_and_upload_adds_nothing(tmp_path: Path,
                                                                            shared_tree: bool) -> None:
    ranks = 4 if shared_tree else 2
    trees = [tmp_path / ("tree" if shared_tree else f"tree{r}") for r in range(ranks)]
    with live_server(tmp_path / "server", "log_requests=false") as server:
        key = server.token("k", "alice")
        wait_all(start_ranks(server, key, ranks, list(trees)))
        assert_exactly_once(server, key, ranks)
        for tree in sorted(set(trees)):  # the trees' records are all there already: nothing is sent twice
            r = run_cli("upload", str(tree), "--remote", server.url, "--api-key", key, cwd=tmp_path)
            assert r.returncode == 0, r.stdout + r.stderr
            assert "Already uploaded (nothing new;" in r.stdout, r.stdout
        assert_exactly_once(server, key, ranks)


@pytest.mark.slow
def test_hybrid_rank_killed_then_upload_sends_exactly_the_rest(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    with live_server(tmp_path / "server", "log_requests=false") as server:
        key = server.token("k", "alice")
        survivor, victim = start_ranks(server, key, 2, [tree, tree])
        assert victim.stdout is not None and victim.stdout.readline().strip() == "halfway"
        os.kill(victim.pid, signal.SIGKILL)  # mid-run: part of its records sent, part only local
        victim.communicate(timeout=30)
        wait_all([survivor])
        r = run_cli("upload", str(tree), "--remote", server.url, "--api-key", key, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        logs, metrics = server_view(server, key)
    local_logs = [line for line in (tree / "p" / "ddp" / "logs" / "logs.jsonl").read_text().splitlines() if line]
    assert len(logs) == len(local_logs) and len(set(logs)) == len(logs)  # every local line once
    assert collections.Counter(logs)[f"rank 0 step {STEPS - 1}"] == 1
    local_loss = (tree / "p" / "ddp" / "metrics" / "loss" / "data.jsonl").read_text().splitlines()
    assert len(metrics["loss"]) == len([x for x in local_loss if x.strip()])
    assert len({repr(p) for p in metrics["loss"]}) == len(metrics["loss"])
