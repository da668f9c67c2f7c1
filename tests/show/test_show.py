"""``ml-dash show``: a real process on 127.0.0.1 over trees the SDK wrote in local mode."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_dash import Experiment
from tests.helpers.server import ML_DASH
from tests.show.helpers import LiveShow, live_show, snapshot, wait_for

PROJECT = "vision"


def log_run(root: Path, name: str, points: int, folder: str | None = None) -> Path:
    exp = Experiment(name=name, project=PROJECT, local_path=str(root), folder=folder, tags=["t"])
    with exp.run:
        exp.params.set(lr=0.1, seed=len(name))
        exp.log("started")
        exp.metrics("loss").append_batch([{"value": 1.0 / (i + 1), "step": i} for i in range(points)])
    assert exp.dir is not None
    return exp.dir


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree") / ".ml-dash"
    log_run(root, "run-a", 300)
    log_run(root, "run-b", 200, folder="/sweeps/lr")
    return root


@pytest.fixture(scope="module")
def show(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveShow]:
    home = tmp_path_factory.mktemp("home")
    with live_show(tree, home) as running:
        running.read_line(r"imported 2 experiment")
        yield running


def test_the_dashboard_needs_no_login_and_is_read_only(show: LiveShow) -> None:
    doc = show.get("/ui/session")  # no cookie, no token
    assert doc["namespace"] == "local" and doc["namespaces"] == ["local"]
    assert doc["readOnly"] is True and doc["owner"] is False and doc["csrf"]
    assert show.get("/ui/namespaces")["namespaces"][0]["slug"] == "local"
    status, body = show.call("PATCH", "/ui/experiments/1", {"description": "x"}, {"X-CSRF-Token": doc["csrf"]})
    assert status == 403 and "read-only" in body["error"]["message"] and body["error"]["hint"]


def test_experiments_and_series_are_in_namespace_local(show: LiveShow) -> None:
    ids = show.experiments(PROJECT)
    assert set(ids) == {"run-a", "run-b"}
    assert show.total(ids["run-a"], "loss") == 300 and show.total(ids["run-b"], "loss") == 200
    series = show.get(f"/experiments/{ids['run-a']}/metrics/loss/series?y=value&x=step&points=10")
    assert series["total"] == 300 if "total" in series else series
    params = show.get(f"/experiments/{ids['run-b']}/parameters")
    assert params["data"]["lr"] == 0.1


def test_writes_are_refused_with_a_hint_whatever_the_token(show: LiveShow) -> None:
    for headers in ({}, {"Authorization": "Bearer mld_not_a_key"}):
        status, body = show.call("POST", f"/projects/{PROJECT}/experiments", {"name": "x"}, headers)
        assert status == 403, body
        assert "read-only" in body["error"]["message"] and "ml-dash upload" in body["error"]["hint"]
    # the batch series read is a POST: allowed with the session's CSRF token, refused without it
    exp_id = show.experiments(PROJECT)["run-a"]
    item = {"experimentId": exp_id, "metric": "loss", "y": "value"}
    status, _ = show.call("POST", "/series", {"points": 10, "series": [item]})
    assert status == 403
    csrf = show.get("/ui/session")["csrf"]
    status, body = show.call("POST", "/series", {"points": 10, "series": [item]}, {"X-CSRF-Token": csrf})
    assert status == 200, body


def test_other_hosts_get_no_free_session(show: LiveShow) -> None:
    """DNS rebinding: a page of another name that resolves to 127.0.0.1 is not this machine's user."""
    status, body = show.call("GET", "/ui/session", headers={"Host": "attacker.example"})
    assert status == 401, body
    status, _ = show.call("GET", "/ui/projects", headers={"Host": "attacker.example:80"})
    assert status == 401


def test_ml_dash_list_and_download_read_it(show: LiveShow, tmp_path: Path) -> None:
    out = subprocess.run([ML_DASH, "list", "--remote", show.url, "--api-key", "anything", "--project", PROJECT,
                          "--json"], env=show.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {r["experiment"] for r in json.loads(out.stdout)} >= {"run-a", "sweeps/lr/run-b"}
    dest = tmp_path / "copy"
    out = subprocess.run([ML_DASH, "download", str(dest), "--remote", show.url, "--api-key", "anything",
                          "--project", PROJECT, "--experiment", "run-a"], env=show.env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = list(dest.rglob("metrics/loss/data.jsonl"))
    assert len(lines) == 1 and len(lines[0].read_text().splitlines()) == 300


def test_appended_points_and_new_experiments_arrive_live(tree: Path, show: LiveShow) -> None:
    exp_id = show.experiments(PROJECT)["run-a"]
    exp = Experiment(name="run-a", project=PROJECT, local_path=str(tree))
    with exp.run:  # the same experiment, re-opened: a training script appending while show runs
        started = time.monotonic()
        exp.metrics("loss").append_batch([{"value": 0.001, "step": 300 + i} for i in range(50)])
        wait_for(lambda: show.total(exp_id, "loss") == 350, 3, "the 50 new points in the series route")
        assert time.monotonic() - started < 2.5
    log_run(tree, "run-c", 10)
    ids = wait_for(lambda: show.experiments(PROJECT).get("run-c") and show.experiments(PROJECT), 3, "run-c listed")
    wait_for(lambda: show.total(ids["run-c"], "loss") == 10, 3, "run-c's points")


def test_a_torn_last_line_waits_for_its_end(tree: Path, show: LiveShow) -> None:
    exp_id = show.experiments(PROJECT)["run-b"]
    data = next(tree.rglob("run-b/metrics/loss/data.jsonl"))
    before = show.total(exp_id, "loss")
    line = json.dumps({"index": before, "data": {"value": 0.5, "step": before}, "createdAt": "2026-01-01T00:00:00Z"})
    with open(data, "a") as f:  # a writer mid-append
        f.write(line[:25])
    time.sleep(1.0)  # three passes
    assert show.total(exp_id, "loss") == before
    with open(data, "a") as f:
        f.write(line[25:] + "\n")
    wait_for(lambda: show.total(exp_id, "loss") == before + 1, 3, "the completed line")
    assert "invalid" not in show.log and "truncated" not in show.log


def test_restart_imports_nothing_again_and_the_tree_is_untouched(tmp_path: Path) -> None:
    root = tmp_path / ".ml-dash"
    log_run(root, "first", 1000)
    log_run(root, "second", 500, folder="/f")
    before = snapshot(root)
    home = tmp_path / "home"
    with live_show(root, home) as show:
        show.read_line(r"imported 2 experiment")
        ids = show.experiments(PROJECT)
        show.get("/ui/session")
        with __import__("urllib.request").request.urlopen(show.url + "/", timeout=10) as page:  # the page itself
            assert page.status in (200, 503)
        assert show.total(ids["first"], "loss") == 1000
        first = [r for r in show.requests() if r["method"] == "POST" and "append-batch" in r["path"]]
        assert len(first) == 2
    with live_show(root, home) as show:
        show.read_line(r"imported 2 experiment")
        assert show.experiments(PROJECT) == ids
        assert show.total(ids["first"], "loss") == 1000 and show.total(ids["second"], "loss") == 500
        sent = [r for r in show.requests() if r["method"] == "POST" and r["path"].endswith(("append-batch", "/logs",
                                                                                                "/files"))]
        assert sent == []
    assert snapshot(root) == before
    assert not list(root.rglob("*state*")) and not list(root.rglob("*.lock"))


def test_non_loopback_host_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    out = subprocess.run([ML_DASH, "show", str(tmp_path / "tree"), "--host", "0.0.0.0", "--no-browser"],
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "ML_DASH_CONFIG_DIR": str(tmp_path / "home")})
    assert out.returncode == 2
    assert "loopback" in out.stderr and "hint" in out.stderr.lower()


def test_a_missing_tree_is_one_line_with_a_hint(tmp_path: Path) -> None:
    out = subprocess.run([ML_DASH, "show", str(tmp_path / "nope"), "--no-browser"], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin", "ML_DASH_CONFIG_DIR": str(tmp_path / "home")})
    assert out.returncode == 2 and "no local tree" in out.stderr and out.stderr.count("\n") <= 2


def test_the_importer_is_a_child_that_never_outlives_show(tmp_path: Path) -> None:
    """SIGTERM stops both; a SIGKILLed show leaves no importer behind (its stdin closes)."""
    import os
    import signal

    root = tmp_path / ".ml-dash"
    log_run(root, "one", 100)

    def children(pid: int) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
        return found

    def gone(pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] == "Z"

    for sig in (signal.SIGTERM, signal.SIGKILL):
        with live_show(root, tmp_path / "home") as show:
            show.read_line(r"imported 1 experiment")
            kids = children(show.process.pid)
            assert len(kids) == 1
            os.kill(show.process.pid, sig)
            show.process.wait(timeout=30)
            wait_for(lambda kids=kids: gone(kids[0]), 10, f"the importer gone after {sig.name}")
