"""Scripts written for ml-dash 0.5.8 run unchanged with this package (issue 11, item 7).

Every name 0.5.8 exposes beyond the SDK is used here the way 0.5.8's own scripts and docs
use it: ``ml_dash.auto_start.dxp``, ``ml_dash.storage.LocalStorage``,
``ml_dash.client.RemoteClient`` and ``ml_dash.cli_commands.upload``'s ``ExperimentInfo``,
``ExperimentUploader``, ``UploadState``, ``generate_api_key_from_username`` and a
``Namespace``-driven ``cmd_upload``. Where the real 0.5.8 client can run the same script,
it does (tests marked ``compat``), and the results are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml_dash.errors import ApiError, InvalidInputError
from tests.compat.realclient import run_real
from tests.helpers.server import LiveServer, live_server
from tests.helpers.trees import normalise_tree
from tests.upload.conftest import Target, expected_content


def run_ours(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """Our package in a fresh interpreter (warnings are errors), like ``run_real`` for 0.5.8."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "DREAMLAKE_", "PYTHON"))}
    full.update(HOME=str(cwd), ML_DASH_CONFIG_DIR=str(cwd / ".config-home"), NO_COLOR="1", **(env or {}))
    out = subprocess.run([sys.executable, "-W", "error", "-c", script, *args], cwd=cwd, env=full, text=True,
                         capture_output=True, timeout=300)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def last_json(out: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "server", "log_requests=false") as s:
        yield s


@pytest.fixture
def target(server: LiveServer) -> Iterator[Target]:
    t = Target(server, server.token("uploader", "alice"))
    yield t
    t.close()


# --- ml_dash.auto_start.dxp ---------------------------------------------------------------------------
DXP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from ml_dash.auto_start import dxp
    info = {"name": dxp.name, "project": dxp.project, "open": dxp._is_open, "folder": dxp.folder,
            "description": dxp.description, "tags": dxp.tags, "metadata": dxp.metadata}
    dxp.log("Hello from dxp!")
    dxp.params.set(lr=0.001, model={"depth": 18})
    for step in range(3):
        dxp.metrics("loss").append(step=step, value=1.0 / (step + 1))
    dxp.files(prefix="/notes").save_json({"a": 1}, "cfg.json")
    if len(sys.argv) > 1:
        os.chdir(sys.argv[1])  # later writes still go to the tree below the first directory
        dxp.log("after chdir")
    print(json.dumps(info))
    """)


def test_dxp_is_started_writes_below_the_cwd_and_is_completed_at_exit(tmp_path: Path) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    # An explicit local_path is local mode: a server in the environment is not contacted.
    out = run_ours(DXP_SCRIPT, str(elsewhere), cwd=work,
                   env={"ML_DASH_REMOTE": "http://127.0.0.1:9", "ML_DASH_API_KEY": "unused"})
    assert last_json(out) == {"name": "dxp", "project": "scratch", "open": True, "folder": None,
                              "description": None, "tags": None, "metadata": None}
    assert out.stderr == ""
    root = work / ".ml-dash" / "scratch" / "dxp"
    assert json.loads((root / "experiment.json").read_text())["name"] == "dxp"
    logs = [json.loads(line)["message"] for line in (root / "logs/logs.jsonl").read_text().splitlines()]
    assert logs == ["Hello from dxp!", "after chdir"]
    assert (root / "logs/.log_sequence").read_text() == "2"  # side files exact after exit
    assert json.loads((root / "metrics/loss/metadata.json").read_text())["totalDataPoints"] == 3
    assert json.loads((root / "parameters.json").read_text())["data"] == {"lr": 0.001, "model.depth": 18}
    assert [f["filename"] for f in json.loads((root / "files/.files_metadata.json").read_text())["files"]] == [
        "cfg.json"]
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    # The atexit handler completes it: a handler registered before the import runs after it.
    closed = run_ours(textwrap.dedent("""
        import atexit
        def report():
            from ml_dash.auto_start import dxp
            print("open at exit:", dxp._is_open)
        atexit.register(report)
        from ml_dash.auto_start import dxp
        dxp.log("x")
        """), cwd=work)
    assert closed.stdout.strip() == "open at exit: False"


@pytest.mark.compat
def test_dxp_writes_the_tree_the_real_058_writes(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "ours").mkdir()
    real = run_real("-c", DXP_SCRIPT, cwd=tmp_path / "real")
    ours = run_ours(DXP_SCRIPT, cwd=tmp_path / "ours")
    assert last_json(ours) == last_json(real)
    assert normalise_tree(tmp_path / "ours/.ml-dash") == normalise_tree(tmp_path / "real/.ml-dash")


# --- ml_dash.storage.LocalStorage ---------------------------------------------------------------------
STORAGE_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    from pathlib import Path
    from ml_dash.storage import LocalStorage
    root = Path(sys.argv[1])
    out = {}
    s = LocalStorage(root)
    out["dir"] = str(s.create_experiment("vision", "run-1", description="d", tags=["a"],
                                         metadata={"k": 1}).relative_to(root))
    out["dir2"] = str(s.create_experiment("vision", "run-2", folder="/sweeps/2025").relative_to(root))
    s.write_log("vision", "run-1", "hello", "info", "2026-01-01T00:00:00.000001Z")
    s.write_log("vision", "run-1", "warned", "warn", "2026-01-01T00:00:01.000001Z", metadata={"step": 3})
    s.write_parameters("vision", "run-1", {"model.lr": 0.1, "seed": 1})
    s.write_parameters("vision", "run-1", {"seed": 2})
    out["params"] = s.read_parameters("vision", "run-1")
    out["params_none"] = s.read_parameters("vision", "run-2")
    out["append"] = s.append_to_metric("vision", "run-1", "loss", {"value": 1.0, "step": 0}, description="L",
                                       tags=["t"])
    out["batch"] = s.append_batch_to_metric("vision", "run-1", "loss", [{"value": 0.5, "step": 1},
                                                                         {"value": 0.25, "step": 2}])
    out["batch2"] = s.append_batch_to_metric("vision", "run-2", "acc", [{"acc": 0.5}])
    r = s.read_metric_data("vision", "run-1", "loss", start_index=1, limit=5)
    out["read"] = [[p["index"], p["data"]] for p in r["data"]] + [r["startIndex"], r["endIndex"], r["total"],
                                                                   r["hasMore"]]
    st = s.get_metric_stats("vision", "run-1", "loss")
    out["stats"] = {k: st[k] for k in ("metricId", "name", "description", "tags", "metadata", "totalDataPoints",
                                       "bufferedDataPoints", "chunkedDataPoints", "totalChunks", "chunkSize")}
    out["metrics"] = sorted([m["name"], m["totalDataPoints"], m["description"]]
                            for m in s.list_metrics("vision", "run-1"))
    src = root.parent / "notes.txt"
    src.write_text("hello notes\\n")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    f = s.write_file("vision", "run-1", str(src), "/notes", "notes.txt", "desc", ["x"], {"a": 1}, digest,
                     "text/plain", 12)
    out["file"] = {k: f[k] for k in ("experimentId", "path", "filename", "description", "tags", "contentType",
                                     "sizeBytes", "checksum", "metadata", "deletedAt")}
    s.write_file("vision", "run-2", str(src), "/", "n.txt", None, None, None, digest, "text/plain", 12)
    out["list"] = [x["filename"] for x in s.list_files("vision", "run-1")] + [
        x["filename"] for x in s.list_files("vision", "run-2", prefix="/")]
    out["list_tag"] = [x["filename"] for x in s.list_files("vision", "run-1", tags=["nope"])]
    out["read_file"] = Path(s.read_file("vision", "run-1", f["id"], str(root.parent / "copy.txt"))).read_text()
    u = s.update_file_metadata("vision", "run-1", f["id"], description="new", tags=["y"])
    out["update"] = [u["description"], u["tags"], u["metadata"]]
    out["delete"] = sorted(s.delete_file("vision", "run-1", f["id"]))
    out["list_after"] = s.list_files("vision", "run-1")
    out["errors"] = []
    for call in (lambda: s.delete_file("vision", "run-1", f["id"]), lambda: s.read_file("vision", "run-1", "123"),
                 lambda: s.get_metric_stats("vision", "run-1", "missing"),
                 lambda: s.update_file_metadata("vision", "run-1", "999")):
        try:
            call()
            out["errors"].append(None)
        except FileNotFoundError as e:
            out["errors"].append("FileNotFoundError")
    s2 = LocalStorage(root)  # a fresh instance finds the folder experiment again
    out["fresh_dir"] = str(s2._get_experiment_dir("vision", "run-2").relative_to(root))
    out["fresh_list"] = [x["filename"] for x in s2.list_files("vision", "run-2")]
    s2.write_log("vision", "run-2", "later", "info", "2026-01-01T00:00:02Z")
    print(json.dumps(out, sort_keys=True))
    """)


@pytest.mark.compat
def test_local_storage_behaves_as_the_real_058(tmp_path: Path) -> None:
    for side in ("real", "ours"):
        (tmp_path / side).mkdir()
    real = run_real("-c", STORAGE_SCRIPT, str(tmp_path / "real/.ml-dash"), cwd=tmp_path / "real")
    ours = run_ours(STORAGE_SCRIPT, str(tmp_path / "ours/.ml-dash"), cwd=tmp_path / "ours")
    assert last_json(ours) == last_json(real)
    ours_tree, real_tree = normalise_tree(tmp_path / "ours/.ml-dash"), normalise_tree(tmp_path / "real/.ml-dash")
    assert ours_tree == real_tree


def test_local_storage_reads_do_not_touch_the_tree_and_errors_are_both_kinds(tmp_path: Path) -> None:
    from ml_dash import Experiment
    from ml_dash.storage import LocalStorage, NotFoundError

    with Experiment(name="e", project="p", local_path=tmp_path, folder="/f").run as exp:
        exp.log("hi")
        exp.metrics("m").append(v=1)
        exp.files(prefix="/x").save(b"data", "d.bin")
    before = normalise_tree(tmp_path)
    storage = LocalStorage(tmp_path)
    assert storage._get_experiment_dir("p", "e") == tmp_path / "f/p/e"
    assert [f["filename"] for f in storage.list_files("p", "e")] == ["d.bin"]
    assert storage.read_parameters("p", "e") is None
    assert storage.get_metric_stats("p", "e", "m")["totalDataPoints"] == "1"
    assert normalise_tree(tmp_path) == before  # reading changed nothing (not even updated_at)
    with pytest.raises(NotFoundError, match="experiment p/nope not found") as info:
        storage.write_log("p", "nope", "x", "info", "2026-01-01T00:00:00Z")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, InvalidInputError)
    assert info.value.hint and "create_experiment" in info.value.hint
    storage.write_metric_data("p", "e", "m", 2.5)  # 0.5.8's unused writer: a point of the metric
    storage.close()
    assert [p["data"] for p in storage.read_metric_data("p", "e", "m")["data"]] == [{"v": 1}, {"value": 2.5}]


# --- ml_dash.client.RemoteClient ----------------------------------------------------------------------
REMOTE_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import httpx
    from ml_dash.client import RemoteClient
    url, key, work, name = sys.argv[1:5]
    out = {}
    with RemoteClient(base_url=url, api_key=key) as c:
        created = c.create_or_update_experiment("rc", name, description="d", tags=["t"], metadata={"k": 1})
        exp_id = created["experiment"]["id"]
        out["created"] = [created["experiment"]["name"] == name, created["experiment"]["description"]]
        c.create_log_entries(exp_id, [{"timestamp": "2026-01-01T00:00:00Z", "level": "info", "message": "hi"},
                                      {"timestamp": "2026-01-01T00:00:01Z", "level": "warn", "message": "careful",
                                       "metadata": {"s": 1}}])
        c.set_parameters(exp_id, {"model.lr": 0.1})
        c.set_parameters(exp_id, {"seed": 1})
        out["params"] = c.get_parameters(exp_id)
        one = c.append_to_metric(exp_id, "loss", {"value": 1.0, "step": 0}, description="L")
        batch = c.append_batch_to_metric(exp_id, "loss", [{"value": 0.5, "step": 1}, {"value": 0.25, "step": 2}])
        out["appended"] = [str(one["index"]), batch["count"]]
        data = c.read_metric_data(exp_id, "loss", 0, 10)
        out["read"] = [[p["index"], p["data"]] for p in data["data"]]
        out["stats"] = str(c.get_metric_stats(exp_id, "loss")["totalDataPoints"])
        out["metrics"] = sorted(m["name"] for m in c.list_metrics(exp_id))
        blob = work + "/blob.bin"
        open(blob, "wb").write(bytes(range(256)) * 10)
        digest = hashlib.sha256(open(blob, "rb").read()).hexdigest()
        f = c.upload_file(exp_id, blob, "/bin", "blob.bin", "a blob", ["x"], {"m": 1}, digest,
                          "application/octet-stream", 2560)
        out["file"] = {k: f[k] for k in ("path", "filename", "description", "tags", "sizeBytes", "checksum",
                                         "metadata", "contentType")}
        out["list"] = [x["filename"] for x in c.list_files(exp_id, prefix="/bin")]
        out["meta"] = c.get_file(exp_id, f["id"])["checksum"] == digest
        dest = c.download_file(exp_id, f["id"], work + "/copy.bin")
        out["download"] = open(dest, "rb").read() == open(blob, "rb").read()
        out["updated"] = c.update_file(exp_id, f["id"], description="new")["description"]
        out["deleted"] = bool(c.delete_file(exp_id, f["id"])["deletedAt"])
        logs = c.query_logs(exp_id, limit=10, offset=0, order_by="sequenceNumber", order="asc")["logs"]
        out["logs"] = [[x["level"], x["message"], x.get("metadata")] for x in logs]
        c.update_experiment_status(exp_id, "COMPLETED")
        try:
            c.get_file(exp_id, "123456")
            out["missing"] = None
        except httpx.HTTPStatusError as e:
            out["missing"] = e.response.status_code
        g = c.get_experiment_graphql("alice", "rc", name)
        out["graphql"] = [g["name"], g["status"], g["logMetadata"]["totalLogs"],
                          [[m["name"], m["metricMetadata"]["totalDataPoints"]] for m in g["metrics"]],
                          g["parameters"]["data"]]
        listed = c.list_experiments_graphql("alice", "rc")
        out["listed"] = sorted(e["name"] for e in listed if e["name"] == name)
        projects = c.list_projects_graphql("alice")
        out["projects"] = [p["slug"] for p in projects if p["slug"] == "rc"]
    print(json.dumps(out, sort_keys=True))
    """)


@pytest.mark.compat
def test_remote_client_behaves_as_the_real_058_against_our_server(tmp_path: Path, target: Target) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "ours").mkdir()
    real = run_real("-c", REMOTE_SCRIPT, target.url, target.key, str(tmp_path / "real"), "by-real", cwd=tmp_path / "real")
    ours = run_ours(REMOTE_SCRIPT, target.url, target.key, str(tmp_path / "ours"), "by-ours", cwd=tmp_path / "ours")
    real_out, ours_out = last_json(real), last_json(ours)
    assert real_out["graphql"][0] == "by-real" and ours_out["graphql"][0] == "by-ours"
    assert real_out["listed"] == ["by-real"] and ours_out["listed"] == ["by-ours"]
    for out in (real_out, ours_out):
        out["graphql"][0] = out["listed"] = None
    assert ours_out == real_out
    assert ours_out["missing"] == 404 and ours_out["download"] is True
    content = target.content()
    assert content["rc/by-ours"] == content["rc/by-real"]


def test_remote_client_errors_are_httpx_and_ml_dash_errors(target: Target) -> None:
    from ml_dash.client import RemoteClient, RemoteHTTPError

    with RemoteClient(target.url, target.key) as client:
        assert client._client.get("/health").status_code == 200  # 0.5.8's attribute: the httpx.Client
        exp_id = client.create_or_update_experiment("p", "e")["experiment"]["id"]
        with pytest.raises(RemoteHTTPError) as info:
            client.get_file(exp_id, "999999")
        assert isinstance(info.value, httpx.HTTPStatusError) and isinstance(info.value, ApiError)
        assert info.value.response.status_code == info.value.status == 404
        assert info.value.request.url.path.endswith("/files/999999")
    with RemoteClient(target.url, "wrong-key") as client, pytest.raises(httpx.HTTPStatusError) as denied:
        client.list_metrics("1")
    assert denied.value.response.status_code == 401 and "API key" in str(denied.value)


# --- ml_dash.cli_commands.upload ------------------------------------------------------------------------
def namespace_058(**overrides: Any) -> argparse.Namespace:
    """What 0.5.8's own parser produces for ``ml-dash upload`` (its defaults), plus overrides."""
    values: dict[str, Any] = dict(command="upload", path="./.ml-dash", remote=None, api_key=None, username=None,
                                  project=None, experiment=None, skip_logs=False, skip_metrics=False,
                                  skip_files=False, skip_params=False, dry_run=False, strict=False, verbose=False,
                                  batch_size=100, resume=False, state_file=".ml-dash-upload-state.json")
    values.update(overrides)
    return argparse.Namespace(**values)


class RequestSizes:
    """Records how many records each append request to ``base_url`` carried (only there: a sender
    thread an earlier test left behind may still be talking to its own server through the same,
    patched, class)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
        from ml_dash.api.client import ApiClient

        self.logs: list[int] = []
        self.points: list[int] = []
        real_logs, real_batch = ApiClient.append_logs, ApiClient.append_batch
        ours = base_url.rstrip("/")

        def append_logs(client: Any, experiment_id: str, entries: list[Any], *a: Any, **kw: Any) -> Any:
            if client.base_url == ours:
                self.logs.append(len(entries))
            return real_logs(client, experiment_id, entries, *a, **kw)

        def append_batch(client: Any, experiment_id: str, metric: str, points: list[Any], *a: Any, **kw: Any) -> Any:
            if client.base_url == ours:
                self.points.append(len(points))
            return real_batch(client, experiment_id, metric, points, *a, **kw)

        monkeypatch.setattr(ApiClient, "append_logs", append_logs)
        monkeypatch.setattr(ApiClient, "append_batch", append_batch)


def test_cmd_upload_with_a_058_namespace_uploads_everything(real_tree: Path, target: Target, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_dash.cli_commands.upload import cmd_upload

    monkeypatch.chdir(tmp_path)
    sizes = RequestSizes(monkeypatch, target.url)
    # 0.5.8's --username: the legacy username token, accepted by a server on loopback.
    args = namespace_058(path=str(real_tree), remote=target.url, username="alice", batch_size=4)
    assert cmd_upload(args) == 0
    assert target.content() == expected_content(real_tree)
    assert max(sizes.logs) == max(sizes.points) == 4  # the namespace's batch_size was used
    assert not (tmp_path / ".ml-dash-upload-state.json").exists()  # removed after a clean run
    # Run again: nothing is sent twice.
    assert cmd_upload(args) == 0
    assert target.content() == expected_content(real_tree)


def test_cmd_upload_with_the_seed_namespace_and_a_project(real_tree: Path, target: Target, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_dash.cli_commands.upload import cmd_upload

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(path=str(real_tree), remote=target.url, api_key=target.key, user_name=None,
                              project="vision", experiment="resnet-baseline", dry_run=False, strict=True,
                              verbose=True, batch_size=100, skip_logs=True, skip_metrics=False, skip_files=True,
                              skip_params=False, resume=False, state_file=str(tmp_path / "state.json"))
    assert cmd_upload(args) == 0
    content = target.content()
    assert list(content) == ["vision/resnet-baseline"]
    expected = expected_content(real_tree)["vision/resnet-baseline"]
    assert content["vision/resnet-baseline"] == {**expected, "logs": [], "files": []}


def test_namespace_values_become_command_line_overrides() -> None:
    from ml_dash.cli_commands.upload import _overrides
    from ml_dash.config.resolve import resolve

    def given(ns: argparse.Namespace) -> dict[str, Any]:
        return {o.key: o.text.split("=", 1)[1] for o in _overrides(ns)}

    def config(ns: argparse.Namespace) -> Any:
        return resolve("upload", list(_overrides(ns)), env={}).config

    # 0.5.8's defaults: only batch_size=100 is taken (explicit, never silently dropped).
    assert given(namespace_058()) == {"batch_size": "100"}
    assert config(namespace_058()).batch_sizes() == (100, 100)
    assert given(namespace_058(batch_size=None)) == {}
    assert config(namespace_058(batch_size=None)).batch_size == "auto"
    assert config(namespace_058(batch_size="auto")).batch_size == "auto"
    assert given(namespace_058(batch_size=0)) == {"batch_size": "0"}  # refused by validation, not skipped
    ns = namespace_058(username="bob", skip_files=True, path="/data/runs", batch_size=None, remote="http://h:1")
    assert list(given(ns)) == ["path", "remote", "username", "skip.files"]
    cfg = config(ns)
    assert (str(cfg.path), cfg.username, cfg.skip.files, cfg.skip.logs) == ("/data/runs", "bob", True, False)


def test_cmd_upload_reports_a_bad_batch_size_as_a_configuration_error(real_tree: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from ml_dash.cli_commands.upload import cmd_upload

    assert cmd_upload(namespace_058(path=str(real_tree), remote="http://127.0.0.1:9", api_key="k",
                                    batch_size=0)) == 2
    assert "batch_size" in capsys.readouterr().err


def test_add_parser_then_cmd_upload(real_tree: Path, target: Target, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_dash.cli_commands.upload import add_parser, cmd_upload

    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser(prog="ml-dash")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["upload", str(real_tree), "--remote", target.url, "--api-key", target.key,
                              "--project", "nlp", "--skip-metrics"])
    assert args.batch_size is None  # not given: our automatic sizes
    assert cmd_upload(args) == 0
    assert list(target.content()) == ["nlp/bert-finetune"]


DISCOVER_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from ml_dash.cli_commands.upload import ExperimentValidator, discover_experiments
    infos = discover_experiments(Path(sys.argv[1]), project_filter=sys.argv[2] or None)
    validator = ExperimentValidator(strict=False)
    out = []
    for e in sorted(infos, key=lambda e: (e.project, e.experiment)):
        result = validator.validate_experiment(e)
        out.append({"project": e.project, "experiment": e.experiment, "path": str(e.path), "folder": e.folder,
                    "has_logs": e.has_logs, "has_params": e.has_params, "metrics": sorted(e.metric_names),
                    "file_count": e.file_count, "estimated_size": e.estimated_size, "valid": result.is_valid,
                    "errors": result.errors, "warnings": result.warnings,
                    "parameters": result.valid_data.get("parameters"),
                    "metadata": result.valid_data.get("metadata")})
    print(json.dumps(out))
    """)


@pytest.mark.compat
@pytest.mark.parametrize("project", ["", "vision"])
def test_discover_and_validate_match_the_real_058(real_tree: Path, tmp_path: Path, project: str) -> None:
    real = last_json(run_real("-c", DISCOVER_SCRIPT, str(real_tree), project, cwd=tmp_path))
    ours = last_json(run_ours(DISCOVER_SCRIPT, str(real_tree), project, cwd=tmp_path))
    assert len(ours) == len(real) == (3 if not project else 2)
    for mine, theirs in zip(ours, real, strict=True):
        # 0.5.8 counted .files_metadata.json as one of the experiment's files (and its bytes).
        manifest = Path(theirs["path"]) / "files" / ".files_metadata.json"
        assert theirs["file_count"] == mine["file_count"] + 1
        assert theirs["estimated_size"] == mine["estimated_size"] + manifest.stat().st_size
        for key in ("file_count", "estimated_size"):
            del mine[key], theirs[key]
        assert mine == theirs


def test_experiment_info_built_by_hand_is_validated(real_tree: Path) -> None:
    from ml_dash.cli_commands.upload import ExperimentInfo, ExperimentValidator, discover_experiments

    info = ExperimentInfo(project="vision", experiment="resnet-lr-sweep",
                          path=real_tree / "sweeps/2025/vision/resnet-lr-sweep", folder="/sweeps/2025")
    result = ExperimentValidator(strict=True).validate_experiment(info)
    assert result.is_valid and result.valid_data["metadata"]["folder"] == "/sweeps/2025"
    found = {(e.project, e.experiment): e for e in discover_experiments(real_tree)}
    assert info.discovered().identity == found[("vision", "resnet-lr-sweep")].discovered().identity
    assert discover_experiments(real_tree / "missing") == []
    assert [e.experiment for e in discover_experiments(real_tree, project="nlp")] == ["bert-finetune"]


UPLOADER_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from ml_dash.cli_commands.upload import ExperimentUploader, ExperimentValidator, discover_experiments
    from ml_dash.client import RemoteClient
    from ml_dash.storage import LocalStorage
    root, url, key = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    experiments = sorted(discover_experiments(root), key=lambda e: (e.project, e.experiment))
    validator = ExperimentValidator(strict=False)
    uploader = ExperimentUploader(local_storage=LocalStorage(root_path=root),
                                  remote_client=RemoteClient(base_url=url, api_key=key), batch_size=7,
                                  skip_logs=False, skip_metrics=False, skip_files=False, skip_params=False,
                                  verbose=False, progress=None, max_concurrent_metrics=5)
    out = []
    for e in experiments:
        r = uploader.upload_experiment(e, validator.validate_experiment(e), task_id=None)
        out.append({"experiment": r.experiment, "success": r.success, "uploaded": r.uploaded, "failed": r.failed,
                    "errors": r.errors, "sent_bytes": r.bytes_uploaded > 0})
    print(json.dumps(out))
    """)


@pytest.mark.compat
def test_experiment_uploader_matches_the_real_058(real_tree: Path, tmp_path: Path, target: Target) -> None:
    with live_server(tmp_path / "server-real", "log_requests=false") as other:
        theirs = Target(other, other.token("uploader", "alice"))
        try:
            real = last_json(run_real("-c", UPLOADER_SCRIPT, str(real_tree), theirs.url, theirs.key, cwd=tmp_path))
            ours = last_json(run_ours(UPLOADER_SCRIPT, str(real_tree), target.url, target.key, cwd=tmp_path))
            assert ours == real
            assert [r["uploaded"] for r in ours] == [
                {"params": 10, "logs": 7, "metrics": 2, "files": 2},
                {"params": 10, "logs": 7, "metrics": 2, "files": 3},
                {"params": 10, "logs": 7, "metrics": 2, "files": 2}]
            assert all(r["success"] and r["failed"] == {} and r["errors"] == [] for r in ours)
            assert target.content() == theirs.content() == expected_content(real_tree)
        finally:
            theirs.close()
    # Ours again: the same answer, and nothing is stored twice (0.5.8 appended everything again).
    again = last_json(run_ours(UPLOADER_SCRIPT, str(real_tree), target.url, target.key, cwd=tmp_path))
    assert [r["uploaded"] for r in again] == [r["uploaded"] for r in ours]
    assert target.content() == expected_content(real_tree)


def test_experiment_uploader_reports_failed_files(real_tree: Path, target: Target,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from rich.progress import Progress

    from ml_dash.cli_commands.upload import ExperimentUploader, discover_experiments
    from ml_dash.client import RemoteClient
    from ml_dash.storage import LocalStorage

    exp_dir = real_tree / "nlp/bert-finetune"
    next((exp_dir / "files/notes").rglob("notes.txt")).write_text("changed after it was saved")
    info = next(e for e in discover_experiments(real_tree) if e.project == "nlp")
    with Progress(disable=True) as progress, RemoteClient(target.url, target.key) as client:
        task = progress.add_task("nlp/bert-finetune", total=100)
        uploader = ExperimentUploader(LocalStorage(real_tree), client, batch_size=None, verbose=True,
                                      progress=progress)
        result = uploader.upload_experiment(info, task_id=task)  # no validation result: validated here
        assert progress.tasks[0].finished
    assert not result.success  # 0.5.8 said True and listed the file only in `failed`
    assert list(result.failed) == ["files"] and "notes.txt" in result.failed["files"][0]
    assert result.uploaded == {"params": 10, "logs": 7, "metrics": 2, "files": 1}
    assert result.errors and "Created experiment (id:" in capsys.readouterr().out


# --- UploadState and generate_api_key_from_username ----------------------------------------------------
STATE_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from ml_dash.cli_commands.upload import UploadState
    mine, other = Path(sys.argv[1]), Path(sys.argv[2])
    s = UploadState(local_path="/data/.ml-dash", remote_url="http://h:8000", completed_experiments=["a/b"],
                    failed_experiments=["c/d"], in_progress_experiment="e/f")
    s.save(mine)
    loaded = UploadState.load(other)
    print(json.dumps({"saved": s.to_dict(), "file": json.loads(mine.read_text()),
                      "loaded": loaded.to_dict() if loaded else None,
                      "missing": UploadState.load(mine.parent / "nope.json"),
                      "roundtrip": UploadState.from_dict(s.to_dict()) == s}))
    """)


@pytest.mark.compat
def test_upload_state_files_are_interchangeable_with_the_real_058(tmp_path: Path) -> None:
    real_file, our_file = tmp_path / "real-state.json", tmp_path / "our-state.json"
    # Each side writes its own file, then (second pass) reads the other side's.
    run_real("-c", STATE_SCRIPT, str(real_file), str(our_file), cwd=tmp_path)
    ours = last_json(run_ours(STATE_SCRIPT, str(our_file), str(real_file), cwd=tmp_path))
    real = last_json(run_real("-c", STATE_SCRIPT, str(real_file), str(our_file), cwd=tmp_path))
    for out in (ours, real):
        assert out["saved"]["timestamp"] and out["file"] == out["saved"] and out["roundtrip"]
        assert out["missing"] is None
        assert {k: v for k, v in out["loaded"].items() if k != "timestamp"} == {
            k: v for k, v in out["saved"].items() if k != "timestamp"}
    assert list(ours["file"]) == list(real["file"])  # same keys, same order
    assert (tmp_path / "our-state.json").read_text().startswith('{\n  "local_path": "/data/.ml-dash",')


def test_upload_state_load_is_none_for_unreadable_files(tmp_path: Path) -> None:
    from ml_dash.cli_commands.upload import UploadState

    bad = tmp_path / "bad.json"
    for text in ("{not json", "[]", '{"remote_url": "x"}'):
        bad.write_text(text)
        assert UploadState.load(bad) is None
    bad.write_text('{"local_path": "/r", "remote_url": "u", "timestamp": null}')
    assert UploadState.load(bad) == UploadState(local_path="/r", remote_url="u")
    with pytest.raises(KeyError):
        UploadState.from_dict({"local_path": "/r"})


# The test vector of the reference (username "alice", iat 1765000000).
ALICE_AT_1765000000 = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VySWQiOiIzMTU5MjgyNjAxIiwidXNlck5hbWUiOiJhbGljZSIs"
                       "ImlhdCI6MTc2NTAwMDAwMCwiZXhwIjoxNzY3NTkyMDAwfQ.KzpFqBsqleYhlg5s6_oLI7K5swbJyGxYH6uyiOHSx2k")


def test_generate_api_key_from_username_is_the_058_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from ml_dash.cli_commands.upload import generate_api_key_from_username

    monkeypatch.setattr(time, "time", lambda: 1765000000.4)
    assert generate_api_key_from_username("alice") == ALICE_AT_1765000000


@pytest.mark.compat
def test_generate_api_key_from_username_equals_the_real_058(tmp_path: Path) -> None:
    script = ("import time; time.time = lambda: 1765001234.0\n"
              "from ml_dash.cli_commands.upload import generate_api_key_from_username as g\n"
              "print(g('test-user'))")
    assert run_ours(script, cwd=tmp_path).stdout == run_real("-c", script, cwd=tmp_path).stdout


def test_experiment_uploader_takes_any_remote_with_base_url_and_api_key(real_tree: Path, target: Target) -> None:
    import types

    from ml_dash.cli_commands.upload import ExperimentUploader, discover_experiments

    info = next(e for e in discover_experiments(real_tree) if e.project == "nlp")
    remote = types.SimpleNamespace(base_url=target.url, api_key=target.key)
    result = ExperimentUploader(None, remote, skip_files=True, skip_logs=True).upload_experiment(info)
    assert result.success and result.uploaded == {"params": 10, "metrics": 2}
    assert list(target.content()) == ["nlp/bert-finetune"]
