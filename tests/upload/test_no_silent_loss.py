"""Upload never merges, never stores a corrupt file, never drops a diverged loss, never sends
part of a strict run, and stops once, clearly, when the server or the key is the problem."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ml_dash import Experiment
from tests.helpers.build import build_experiment
from tests.helpers.cli import run_cli
from tests.upload.conftest import Target


def upload(target: Target, tree: Path, cwd: Path, *extra: str):  # noqa: ANN201
    return run_cli("upload", str(tree), "--remote", target.url, "--api-key", target.key, *extra, cwd=cwd)


# --- folder clashes ------------------------------------------------------------------------------------
@pytest.fixture
def clash_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    build_experiment(tree, "vision", "run-1", folder="/teamA", logs=3)
    build_experiment(tree, "vision", "run-1", folder="/teamB", logs=4)
    build_experiment(tree, "vision", "run-2", logs=2)
    return tree


def test_a_folder_clash_is_reported_and_never_merged(any_target: Target, clash_tree: Path, tmp_path: Path) -> None:
    r = upload(any_target, clash_tree, tmp_path)
    assert r.returncode == 1
    a, b = clash_tree / "teamA" / "vision" / "run-1", clash_tree / "teamB" / "vision" / "run-1"
    assert (f"      clashes with {b}: both would be experiment vision/run-1 on the server, which keys experiments "
            "by project and name") in r.stdout, r.stdout
    assert f"      clashes with {a}: both" in r.stdout
    assert list(any_target.content()) == ["vision/run-2"]  # the others went up; the clashing pair did not


def test_a_folder_clash_in_strict_mode_sends_nothing(any_target: Target, clash_tree: Path, tmp_path: Path) -> None:
    r = upload(any_target, clash_tree, tmp_path, "--strict")
    assert r.returncode == 1 and "Error: Validation failed in --strict mode" in r.stderr
    assert any_target.content() == {}


# --- corrupt files -----------------------------------------------------------------------------------------
def test_a_corrupt_blob_is_never_stored_and_is_named(any_target: Target, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    build_experiment(tree, "p", "e", files=2)
    blob = next(tree.rglob("file1.txt"))
    blob.write_text("content X\n")  # the same size: only the hash can tell
    r = upload(any_target, tree, tmp_path)
    assert r.returncode == 1
    assert f"file /artifacts/file1.txt: {blob}: sha256 is " in r.stdout and ", the manifest says " in r.stdout
    assert [f[1] for f in any_target.content()["p/e"]["files"]] == ["file0.txt"]
    assert ("e", "/artifacts", "file1.txt") not in any_target.file_copies()  # not even a replaced record


def test_strict_mode_refuses_a_corrupt_blob_before_sending_anything(target: Target, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    build_experiment(tree, "p", "ok")
    build_experiment(tree, "p", "e", files=2)
    next(tree.rglob("file1.txt")).write_text("changed\n")
    r = upload(target, tree, tmp_path, "--strict")
    assert r.returncode == 1 and target.content() == {}


# --- non-finite values --------------------------------------------------------------------------------------
VALUES = [1.0, math.nan, math.inf, -math.inf, 0.5]


def same(a: list[float], b: list[float]) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


def test_nan_and_infinity_round_trip_local_upload_server_download(any_target: Target, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    with Experiment(name="diverged", project="p", local_path=tree).run as exp:
        exp.metrics("loss").append_batch([{"value": v, "step": i} for i, v in enumerate(VALUES)])
        assert same([p["data"]["value"] for p in exp.metrics("loss").read()["data"]], VALUES)
    lines = (tree / "p" / "diverged" / "metrics" / "loss" / "data.jsonl").read_text()
    assert '"value": NaN' in lines and '"value": Infinity' in lines and '"value": -Infinity' in lines  # as 0.5.8
    r = upload(any_target, tree, tmp_path, "--strict")
    assert r.returncode == 0, r.stdout + r.stderr
    exp_id = any_target.experiments()["p/diverged"]["id"]
    raw = any_target.http.get(f"/experiments/{exp_id}/metrics/loss/data").text
    assert '"value": NaN' in raw or '"value":NaN' in raw  # on the wire: the bare JSON tokens, as 0.5.8
    assert same([p["value"] for p in any_target.content()["p/diverged"]["metrics"]["loss"]], VALUES)
    back = tmp_path / "back"
    d = run_cli("download", str(back), "--remote", any_target.url, "--api-key", any_target.key, cwd=tmp_path)
    if d.returncode == 0:  # download needs the GraphQL route, which a plain 0.5.8 server may lack
        points = [json.loads(x)["data"]["value"] for x in
                  (back / "p" / "diverged" / "metrics" / "loss" / "data.jsonl").read_text().splitlines()]
        assert same(points, VALUES)


def test_nan_and_infinity_in_remote_mode_read_and_stats(target: Target, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_DASH_SPOOL_DIR", str(tmp_path / "spool"))
    with Experiment(name="diverged", project="p", remote=target.url, api_key=target.key).run as exp:
        for v in VALUES:
            exp.metrics("loss").append(value=v)
        assert same([p["data"]["value"] for p in exp.metrics("loss").read()["data"]], VALUES)
        assert int(exp.metrics("loss").stats()["totalDataPoints"]) == len(VALUES)
    assert same([p["value"] for p in target.content()["p/diverged"]["metrics"]["loss"]], VALUES)


# --- the server or the key is the problem: stop once -------------------------------------------------------
@pytest.fixture
def many(tmp_path: Path) -> Path:
    tree = tmp_path / "many"
    for i in range(12):
        build_experiment(tree, "p", f"run-{i}", logs=2, points=2, files=1)
    return tree


def test_a_wrong_key_stops_before_any_write_with_one_message(target: Target, many: Path, tmp_path: Path) -> None:
    r = run_cli("upload", str(many), "--remote", target.url, "--api-key", "mld_wrong", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.count(f"Error: {target.url} refused the credentials:") == 1, r.stderr
    assert "ml-dash serve token create NAME --namespace NS" in r.stderr
    assert "✗" not in r.stdout and target.content() == {}
    assert (tmp_path / ".ml-dash-upload-state.json").exists()


def test_a_dead_server_costs_one_retry_budget_for_the_whole_run(many: Path, tmp_path: Path) -> None:
    """Every request answered 503 (a server that is down behind its proxy): the run makes the
    attempts of one retry budget, not one per experiment and stream, and says so once."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    seen: list[str] = []

    def down(request: Request) -> Response:
        seen.append(request.path)
        return Response('{"error": {"code": "unavailable", "message": "down"}}', status=503,
                        content_type="application/json")

    server.expect_request(re.compile(".*")).respond_with_handler(down)
    try:
        url = server.url_for("").rstrip("/")
        r = run_cli("upload", str(many), "--remote", url, "--api-key", "k", "retry.attempts=3", "retry.backoff=0.01",
                    cwd=tmp_path)
    finally:
        server.clear()
        server.stop()
    assert r.returncode == 1
    assert len(seen) == 3, seen  # one budget: the preflight's three attempts, then nothing else
    assert r.stderr.count(f"Error: {url} cannot be reached:") == 1, r.stderr
    assert f"curl {url}/health" in r.stderr and "--resume" in r.stderr


def test_a_server_dying_mid_run_stops_every_stream_with_one_message(target: Target, many: Path,
                                                                   tmp_path: Path) -> None:
    import httpx

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    upstream = httpx.Client(base_url=target.url, timeout=30)
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.path)
        if len(seen) > 12:  # the server goes away after a dozen requests
            return Response('{"error": {"code": "unavailable", "message": "down"}}', status=503,
                            content_type="application/json")
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        resp = upstream.request(request.method, request.full_path.rstrip("?"), content=request.get_data(),
                                headers=headers)
        return Response(resp.content, status=resp.status_code, content_type=resp.headers.get("content-type"))

    server.expect_request(re.compile(".*")).respond_with_handler(handler)
    try:
        url = server.url_for("").rstrip("/")
        r = run_cli("upload", str(many), "--remote", url, "--api-key", target.key, "retry.attempts=2",
                    "retry.backoff=0.01", "--workers", "2", cwd=tmp_path)
    finally:
        server.clear()
        server.stop()
        upstream.close()
    assert r.returncode == 1
    assert r.stderr.count(f"Error: {url} cannot be reached:") == 1, r.stderr
    # Past the failure: the requests in flight finish their budget, nothing new is started.
    assert len(seen) <= 12 + 2 * 2 * 2, len(seen)
    state = json.loads((tmp_path / ".ml-dash-upload-state.json").read_text())
    assert len(state["completed_experiments"]) < 12
