"""`ml-dash upload` into experiments that other writers also write: a remote-mode run of the
same name, an earlier upload by position (the previous ml-dash), a 0.5.8 client. Nothing is
doubled or dropped, and what cannot be applied is an error, never a silent skip."""

from __future__ import annotations

from pathlib import Path

from ml_dash import Experiment
from tests.helpers.cli import run_cli
from tests.upload.conftest import Target


def local_run(root: Path, lines: range, points: range) -> None:
    exp = Experiment(name="shared", project="p", local_path=root).run.start()
    for i in lines:
        exp.log(f"local {i}")
    for i in points:
        exp.metrics("loss").append(value=i)
    exp.run.complete()


def upload(target: Target, tree: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    r = run_cli("upload", str(tree), "--remote", target.url, "--api-key", target.key, *extra, cwd=tmp_path)
    return r.returncode, r.stdout + r.stderr


def server_logs(target: Target) -> list[str]:
    return [x[1] for x in target.content()["p/shared"]["logs"]]


def test_upload_beside_a_remote_run_of_the_same_experiment(target: Target, tmp_path: Path) -> None:
    remote = Experiment(name="shared", project="p", remote=target.url, api_key=target.key).run.start()
    for i in range(40):
        remote.log(f"remote {i}")
        remote.metrics("loss").append(value=1000 + i)
    remote.run.complete()
    tree = tmp_path / "tree"
    local_run(tree, range(30), range(25))
    code, out = upload(target, tree, tmp_path)
    assert code == 0, out
    logs = server_logs(target)
    assert sorted(logs) == sorted([f"remote {i}" for i in range(40)] + [f"local {i}" for i in range(30)])
    code, out = upload(target, tree, tmp_path)  # a re-run sends nothing
    assert code == 0 and "Already uploaded (nothing new;" in out, out
    local_run(tree, range(30, 35), range(25, 27))  # the tree grows: exactly the new records go
    code, out = upload(target, tree, tmp_path)
    assert code == 0 and "Uploaded (5 logs, 1 metrics)" in out, out
    content = target.content()["p/shared"]
    assert len(content["logs"]) == 75 and len({x[1] for x in content["logs"]}) == 75
    assert sorted(p["value"] for p in content["metrics"]["loss"]) == sorted(
        [1000 + i for i in range(40)] + list(range(27)))


def test_a_stream_uploaded_by_position_earlier_resumes_by_position(target: Target, tmp_path: Path) -> None:
    """What the previous ml-dash upload left (positions, no writer) is recognised, not re-sent."""
    tree = tmp_path / "tree"
    local_run(tree, range(20), range(0))
    exp = target.http.post("/projects/p/experiments", json={"name": "shared"}).json()["experiment"]["id"]
    lines = [{"timestamp": "2026-01-01T00:00:00Z", "level": "info", "message": f"local {i}", "sequenceNumber": i}
             for i in range(20)]
    import json

    local = [json.loads(x) for x in (tree / "p" / "shared" / "logs" / "logs.jsonl").read_text().splitlines()]
    for line, rec in zip(lines, local, strict=True):
        line["timestamp"] = rec["timestamp"]
    assert target.http.post(f"/experiments/{exp}/logs", json={"logs": lines}).status_code == 201
    code, out = upload(target, tree, tmp_path)
    assert code == 0 and "Already uploaded (nothing new;" in out, out
    local_run(tree, range(20, 23), range(0))
    code, out = upload(target, tree, tmp_path)
    assert code == 0, out
    assert server_logs(target) == [f"local {i}" for i in range(23)]


def test_a_stream_another_client_wrote_is_a_conflict_not_a_silent_skip(target: Target, tmp_path: Path) -> None:
    """A 0.5.8 client (positions unknown to it) logged to the same experiment first: our lines
    are not the ones stored, and the upload says so instead of skipping them as 'already there'."""
    exp = target.http.post("/projects/p/experiments", json={"name": "shared"}).json()["experiment"]["id"]
    other = [{"level": "info", "message": f"0.5.8 line {i}"} for i in range(10)]
    assert target.http.post(f"/experiments/{exp}/logs", json={"logs": other}).status_code == 201
    tree = tmp_path / "tree"
    local_run(tree, range(15), range(0))
    code, out = upload(target, tree, tmp_path)
    assert code == 1, out
    assert "logs: log line 9 is already stored with other content (hint: another writer used the same " \
           "sequenceNumber" in out, out
    assert server_logs(target) == [f"0.5.8 line {i}" for i in range(10)]  # nothing overwritten
