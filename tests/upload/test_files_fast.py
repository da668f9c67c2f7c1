"""``ml-dash upload`` of many small files: many to a request on our server (the batch route), one
to a request on a server without it, and in both cases each file stored exactly once, whatever
fails on the way (a lost answer, a reset, a 413, a changed file, kill -9, two uploads at once).

Real servers on 127.0.0.1; faults come from a proxy in front of them (``test_faults.FaultProxy``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug import Request, Response

from ml_dash.api.client import ApiClient
from ml_dash.upload.files import BATCH_FILES, SMALL_FILE
from tests.helpers.cli import ML_DASH, kill_then_resume, run_cli
from tests.helpers.server import live_server
from tests.upload.conftest import Target, expected_content, resume_ends_with_one_clean_upload
from tests.upload.test_faults import Fault, _proxy_to, reset, status, too_large

TS = "2026-11-23T00:00:00.000000Z"
BATCH = r"/batch/files$"


def make_tree(root: Path, experiments: int, files: int, size: int = 3000, big: int = 0, seed: int = 1) -> Path:
    """Experiments in the 0.5.8 format holding only files: ``files`` small ones (each different,
    some with a description, tags and metadata) and ``big`` larger than SMALL_FILE."""
    from ml_dash.records.clock import new_file_id

    rng = random.Random(seed)
    for e in range(experiments):
        d = root / "proj" / f"run-{e}"
        (d / "files").mkdir(parents=True)
        (d / "experiment.json").write_text(json.dumps({
            "name": d.name, "project": "proj", "description": None, "tags": [], "bindrs": [], "folder": None,
            "metadata": None, "created_at": TS, "write_protected": False}))
        entries = []
        for k in range(files + big):
            file_id = new_file_id()
            prefix = "/ckpt" if k % 3 else "/notes/deep"
            name = f"f{k:04d}.bin"
            blob = d / "files" / prefix.lstrip("/") / file_id / name
            blob.parent.mkdir(parents=True)
            data = rng.randbytes(size if k < files else SMALL_FILE + 1 + k)
            blob.write_bytes(data)
            entries.append({"id": file_id, "experimentId": f"proj/{d.name}", "path": prefix, "filename": name,
                            "description": "the best" if k % 5 == 0 else None,
                            "tags": ["a", "b,c"] if k % 4 == 0 else [], "contentType": "application/octet-stream",
                            "sizeBytes": len(data), "checksum": hashlib.sha256(data).hexdigest(),
                            "metadata": {"step": k} if k % 2 else None, "uploadedAt": TS, "updatedAt": TS,
                            "deletedAt": None})
        (d / "files/.files_metadata.json").write_text(json.dumps({"files": entries}, indent=2))
    return root


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[Target]:
    """Our server with its request log on (to count what was sent)."""
    with live_server(tmp_path / "server") as server:
        t = Target(server, server.token("uploader", "alice"))
        yield t
        t.close()


def requests(target: Target) -> list[tuple[str, str]]:
    time.sleep(0.2)  # the last line is written after the answer
    return [(r["method"], r["path"]) for r in map(json.loads, (line for line in target.server.log.splitlines()
                                                               if line.startswith("{")))]


def upload(url: str, target: Target, tree: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("upload", str(tree), "--remote", url, "--api-key", target.key, "--progress", "none",
                   "retry.backoff=0.01", "retry.timeout=5", *args, cwd=cwd, timeout=300)


def records(target: Target) -> dict[str, list[tuple[Any, ...]]]:
    """Every live file record as the dashboard shows it (ids and times left out)."""
    out = {}
    for key, e in target.experiments().items():
        files = target.http.get(f"/experiments/{e['id']}/files").json()["files"]
        out[key] = sorted((f["path"], f["filename"], f["description"], f["tags"], f["contentType"], f["sizeBytes"],
                           f["checksum"], json.dumps(f["metadata"])) for f in files)
    return out


def batches_only(fault: Fault, times: int) -> Fault:
    """``fault`` for the next ``times`` batches; the question (an empty batch) always passes."""
    left = [times]

    def wrapped(request: Request, forward: Any) -> Response:
        if left[0] <= 0 or b"\r\n\r\n[]\r\n" in request.get_data():
            return forward()
        left[0] -= 1
        return fault(request, forward)
    return wrapped


def no_batch_route(request: Request, forward: Any) -> Response:
    """What a server without the route answers (0.5.8's, an older ml-dash): a 404 without our hint."""
    return Response('{"detail": "Not Found"}', status=404, content_type="application/json")


# --- the batch route -------------------------------------------------------------------------------------------
def test_many_small_files_go_many_to_a_request_and_arrive_exactly(logged: Target, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", 2, BATCH_FILES + 20, big=1)
    r = upload(logged.url, logged, tree, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(f"✓ Uploaded ({BATCH_FILES + 21} files)") == 2, r.stdout
    assert logged.content() == expected_content(tree)
    assert set(logged.file_copies().values()) == {1}
    sent = requests(logged)
    batches = [p for m, p in sent if m == "POST" and p.endswith("/batch/files")]
    alone = [p for m, p in sent if m == "POST" and p.endswith("/files") and not p.endswith("/batch/files")]
    assert len(batches) == 1 + 2 * 2  # the question (once per run), then two batches per experiment
    assert len(alone) == 2  # the large file of each experiment, streamed on its own
    again = upload(logged.url, logged, tree, tmp_path)
    assert again.returncode == 0 and again.stdout.count("Already uploaded (nothing new;") == 2, again.stdout
    assert len(requests(logged)) - len(sent) == 1 + 2 * 2  # preflight, then create + "how far" per experiment


def test_either_route_stores_the_same_records(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", 1, 40)
    with live_server(tmp_path / "a", "log_requests=false") as a, live_server(tmp_path / "b", "log_requests=false") as b:
        batched, alone = Target(a, a.token("u", "alice")), Target(b, b.token("u", "alice"))
        try:
            assert upload(batched.url, batched, tree, tmp_path).returncode == 0
            for proxy in _proxy_to(alone.url):
                proxy.inject(BATCH, no_batch_route, times=10_000)
                r = upload(proxy.url, alone, tree, tmp_path)
                assert r.returncode == 0, r.stdout
                posts = [p for _, m, p in proxy.log if m == "POST" and p.endswith("/files")]
                assert len(posts) == 1 + 40  # asked once, then one request per file
            assert records(batched) == records(alone) and len(records(batched)["proj/run-0"]) == 40
            first = next(f for f in records(batched)["proj/run-0"] if f[1] == "f0000.bin")
            assert first[2:4] == ("the best", ["a", "b", "c"])  # tags as the 0.5.8 route splits them
        finally:
            batched.close()
            alone.close()


# --- faults ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "fault", "times"), [
    ("500 after the server stored the batch", status(500, after=True), 2),
    ("500 before", status(500), 2),
    ("reset after the server stored the batch", reset(after=True), 2),
])
def test_a_failed_batch_sends_only_what_the_server_lacks(target: Target, tmp_path: Path, name: str, fault: Any,
                                                         times: int) -> None:
    tree = make_tree(tmp_path / "tree", 2, 30)
    for proxy in _proxy_to(target.url):
        proxy.inject(BATCH, batches_only(fault, times), times=10_000)
        r = upload(proxy.url, target, tree, tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        listed = [p for _, m, p in proxy.log if m == "GET" and p.endswith("/files")]
        assert listed, "after a failed attempt the client must ask what the server has"
    assert target.content() == expected_content(tree)
    assert set(target.file_copies().values()) == {1}  # never a second copy


def test_a_413_on_a_batch_sends_each_file_alone(target: Target, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", 1, 20)
    for proxy in _proxy_to(target.url):
        proxy.inject(BATCH, too_large(10_000), times=10_000)  # the question passes, the batch does not
        r = upload(proxy.url, target, tree, tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert len([p for _, m, p in proxy.log if m == "POST" and p.endswith("/files")]) == 1 + 1 + 20
    assert target.content() == expected_content(tree)


def test_a_batch_that_keeps_failing_is_reported_for_each_file_and_resumed(target: Target, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", 1, 5)
    for proxy in _proxy_to(target.url):
        proxy.inject(BATCH, batches_only(status(500), 3), times=10_000)
        r = upload(proxy.url, target, tree, tmp_path, "retry.attempts=3")
        assert r.returncode == 1
        for k, prefix in enumerate(("/notes/deep", "/ckpt", "/ckpt", "/notes/deep", "/ckpt")):
            assert f"file {prefix}/f{k:04d}.bin: injected (gave up after 3 attempts)" in r.stdout, r.stdout
        again = upload(proxy.url, target, tree, tmp_path, "--resume")
        assert again.returncode == 0, again.stdout
    assert target.content() == expected_content(tree)


def test_a_changed_small_file_fails_alone_and_is_never_stored(target: Target, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", 1, 10)
    victim = next(tree.rglob("f0003.bin"))
    victim.write_bytes(bytes(len(victim.read_bytes())))  # the same size: only the hash can tell
    r = upload(target.url, target, tree, tmp_path)
    assert r.returncode == 1
    assert f"file /notes/deep/f0003.bin: {victim}: sha256 is " in r.stdout and ", the manifest says " in r.stdout
    names = [f[1] for f in target.content()["proj/run-0"]["files"]]
    assert len(names) == 9 and "f0003.bin" not in names
    assert ("run-0", "/notes/deep", "f0003.bin") not in target.file_copies()


def plan_of(tree: Path) -> Any:
    """The plan ``ml-dash upload`` makes of a files-only tree (built in-process)."""
    from ml_dash.upload.discover import discover
    from ml_dash.upload.plan import build_plan
    from ml_dash.upload.validate import ExperimentValidator

    validator = ExperimentValidator(strict=False, skip=frozenset(), verify_checksums=False, count_lines=False)
    checked = [validator.validate_experiment(e) for e in discover(tree).experiments]
    return build_plan(checked, log_batch=100, metric_batch=100, skip_params=True, skip_logs=True, skip_metrics=True)


def test_a_small_file_that_grows_after_planning_is_streamed_alone_and_refused(target: Target, tmp_path: Path) -> None:
    from ml_dash.upload.engine import Engine

    tree = make_tree(tmp_path / "tree", 1, 4)
    plan = plan_of(tree)
    victim = next(tree.rglob("f0001.bin"))
    victim.write_bytes(victim.read_bytes() + b"more")  # between the check and the upload
    with ApiClient(target.url, target.key) as client:
        run = Engine(client, workers=2).run(plan)
    (result,) = run.experiments
    errors = [s.error for s in result.streams if s.error]
    assert len(errors) == 1 and f"{victim}: sha256 is " in str(errors[0]), errors
    assert sorted(f[1] for f in target.content()["proj/run-0"]["files"]) == ["f0000.bin", "f0002.bin", "f0003.bin"]


# --- progress: once per file, by its size --------------------------------------------------------------------------
def test_progress_advances_once_per_file_by_its_size(target: Target, tmp_path: Path) -> None:
    from ml_dash.upload.engine import Engine

    plan = plan_of(make_tree(tmp_path / "tree", 2, 30, big=1))

    class Recorder:
        def __init__(self) -> None:
            self.steps: dict[str, list[int]] = {}

        def experiment_started(self, e: Any) -> None: ...
        def experiment_done(self, result: Any) -> None: ...

        def advance(self, e: Any, nbytes: int) -> None:
            self.steps.setdefault(e.key, []).append(nbytes)

    progress = Recorder()
    with ApiClient(target.url, target.key) as client:
        run = Engine(client, workers=4, progress=progress).run(plan)
    assert all(r.ok for r in run.experiments)
    for e in plan.experiments:
        sizes = sorted(s.file.sizeBytes for s in e.streams if s.file is not None)
        assert sorted(progress.steps[e.key]) == sizes and len(sizes) == 31
        result = next(r for r in run.experiments if r.plan.key == e.key)
        assert result.total("file") == 31 and result.total("file", "already") == 0


# --- kill -9 and two uploads at once --------------------------------------------------------------------------------
def test_kill_minus_9_mid_batches_then_resume_loses_and_doubles_nothing(any_target: Target, tmp_path: Path) -> None:
    target = any_target
    tree = make_tree(tmp_path / "tree", 6, 400, size=20_000)
    args = [ML_DASH, "upload", str(tree), "--remote", target.url, "--api-key", target.key, "--workers", "2",
            "--progress", "none"]
    kills = kill_then_resume(args, tmp_path, seed=20261124, window=(1.2, 2.5))
    assert kills >= 2, "the upload finished too fast to be interrupted; grow the tree"
    resume_ends_with_one_clean_upload(target, tree, tmp_path)


def test_two_uploads_of_the_same_files_at_once_store_each_file_once(target: Target, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", 3, 300)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
    procs = []
    for i in range(2):
        (tmp_path / f"cwd{i}").mkdir()
        procs.append(subprocess.Popen([ML_DASH, "upload", str(tree), "--remote", target.url, "--api-key", target.key,
                                       "--progress", "none"], cwd=tmp_path / f"cwd{i}", env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert target.content() == expected_content(tree)
    assert set(target.file_copies().values()) == {1}

