"""Real sources → ``ml-dash import --remote`` → a live ``ml-dash serve`` → ``ml-dash download``.

Each source is written by its real library (tensorboardX, mlflow, wandb offline). What the server
ends up holding (downloaded back) must equal the imported tree, and every value in it must equal
what the source's own library reads back. A second import adds nothing, here or on the server; a
damaged source is reported with its position and the rest imported; a killed import, run again,
ends with exactly one copy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import ML_DASH, run_cli
from tests.helpers.trees import records_of
from tests.upload.conftest import Target, target  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
              pytest.mark.filterwarnings("ignore::FutureWarning:mlflow")]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def import_to_server(target: Target, kind: str, source: Path | str, tree: Path, cwd: Path,  # noqa: F811
                     *extra: str) -> str:
    result = run_cli("import", kind, str(source), "--to", str(tree), "--remote", target.url, "--api-key",
                     target.key, *extra, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def server_records(target: Target, dest: Path, cwd: Path) -> dict[str, dict]:  # noqa: F811
    shutil.rmtree(dest, ignore_errors=True)
    down = run_cli("download", str(dest), "--remote", target.url, "--api-key", target.key, cwd=cwd)
    assert down.returncode == 0, down.stdout + down.stderr
    return records_of(dest)


def import_twice(target: Target, kind: str, source: Path | str, tmp_path: Path) -> dict[str, dict]:  # noqa: F811
    """Import and upload, check the server holds the tree, import again: nothing new anywhere."""
    tmp_path.mkdir(exist_ok=True)
    tree = tmp_path / "tree"
    out = import_to_server(target, kind, source, tree, tmp_path)
    assert "problem(s) skipped" in out and " 0 problem(s) skipped, 0 failed" in out, out
    local = records_of(tree)
    assert server_records(target, tmp_path / "down", tmp_path) == local
    before = tree_bytes(tree)
    again = import_to_server(target, kind, source, tree, tmp_path)
    assert ": 0 new records, " in again, again
    assert tree_bytes(tree) == before
    assert server_records(target, tmp_path / "down", tmp_path) == local
    return local


# --- TensorBoard ---------------------------------------------------------------------------------


def test_tensorboard_logdir(target: Target, tmp_path: Path) -> None:  # noqa: F811
    from tests.importers.test_tensorboard_source import _reference_scalars, _write_run

    logdir = tmp_path / "logs"
    _write_run(logdir / "a", 300)
    _write_run(logdir / "b" / "seed1", 40, image=False)
    local = import_twice(target, "tensorboard", logdir, tmp_path)
    assert set(local) == {"logs/a", "logs/b-seed1"}
    for key, run_dir in (("logs/a", logdir / "a"), ("logs/b-seed1", logdir / "b/seed1")):
        want: dict[str, list[dict[str, Any]]] = {}
        for tag, value, step, wall in _reference_scalars(run_dir):
            want.setdefault(tag, []).append({"value": value, "step": step, "timestamp": wall})
        assert local[key]["metrics"] == want
    assert [(msg, meta) for _, _, msg, meta in local["logs/a"]["logs"]] == [("hello **world**",
                                                                              {"tag": "notes/text_summary", "step": 3})]
    assert [(f[0], f[1]) for f in local["logs/a"]["files"]] == [("/images/sample", "step_7.png")]


def test_tensorboard_truncated_file_is_reported_and_the_rest_imported(tmp_path: Path) -> None:
    from tests.importers.test_tensorboard_source import _event_files, _record_offsets, _write_run

    logdir = tmp_path / "logs"
    _write_run(logdir / "a", 50, image=False, text=False)
    _write_run(logdir / "b", 50, image=False, text=False)
    damaged = _event_files(logdir / "b")[0]
    with open(damaged, "r+b") as f:
        f.truncate(_record_offsets(damaged)[61] + 5)  # inside the 61st record: 30 steps of two scalars kept
    result = run_cli("import", "tensorboard", str(logdir), "--to", str(tmp_path / "tree"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  ⚠ logs/b (run b): " in result.stdout
    assert f"      {damaged}: byte " in result.stdout and "truncated record" in result.stdout
    got = records_of(tmp_path / "tree")
    assert len(got["logs/a"]["metrics"]["loss"]) == 50
    assert len(got["logs/b"]["metrics"]["acc/train"]) == 30
    strict = run_cli("import", "tensorboard", str(logdir), "--to", str(tmp_path / "strict"), "--strict",
                     cwd=tmp_path)
    assert strict.returncode == 1 and "nothing was imported (--strict)" in strict.stderr
    assert not (tmp_path / "strict").exists()


def test_tensorboard_import_killed_and_run_again_keeps_one_copy(tmp_path: Path) -> None:
    import tensorboardX as tbx

    logdir = tmp_path / "logs"
    for run in ("a", "b"):
        with tbx.SummaryWriter(str(logdir / run)) as w:
            for step in range(40_000):
                w.add_scalar("loss", 1.0 / (step + 1), step)
                w.add_scalar("acc", step * 1e-4, step)
    tree = tmp_path / "tree"
    args = [ML_DASH, "import", "tensorboard", str(logdir), "--to", str(tree), "--batch-size", "2000",
            "--progress", "none"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
    killed = 0
    for delay in (2.5, 4.0):
        proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed, "the import finished before the kill: make the logdir bigger"
    assert subprocess.run(args, env=env, cwd=tmp_path, capture_output=True).returncode == 0
    fresh = tmp_path / "fresh"
    assert subprocess.run([*args[:-5], str(fresh), "--progress", "none"], env=env, cwd=tmp_path,
                          capture_output=True).returncode == 0
    assert records_of(tree) == records_of(fresh)
    points = [json.loads(x)["index"] for x in (tree / "logs/a/metrics/loss/data.jsonl").read_text().splitlines()]
    assert points == list(range(40_000))


# --- MLflow --------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_mlflow_store(target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                      store: str) -> None:
    import mlflow

    from tests.importers.test_mlflow_source import _log_runs

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.chdir(tmp_path)  # the SQLite store keeps artifacts in ./mlruns
    uri = (tmp_path / "mlruns").as_uri() if store == "file" else f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        _log_runs(uri, tmp_path)
    finally:
        mlflow.set_tracking_uri(None)
    source = tmp_path / "mlruns" if store == "file" else tmp_path / "mlflow.db"
    local = import_twice(target, "mlflow", source, tmp_path / "import")
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(local) == len(runs) == 3
    by_id = {json.loads((tmp_path / "import/tree" / key / "experiment.json").read_text())["metadata"]["mlflow"]
             ["run_id"]: rec for key, rec in local.items()}
    status = {"FINISHED": "COMPLETED", "FAILED": "FAILED", "KILLED": "CANCELLED"}
    for run in runs:
        rec = by_id[run.info.run_id]
        experiment = client.get_experiment(run.info.experiment_id).name
        assert rec["project"] == experiment
        assert rec["params"] == run.data.params
        assert set(rec["metrics"]) == set(run.data.metrics)
        for key in run.data.metrics:
            history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.timestamp, m.step))
            assert sorted(rec["metrics"][key], key=lambda p: (p["timestamp"], p["step"])) == [
                {"value": m.value, "step": m.step, "timestamp": m.timestamp / 1000} for m in history]
        exp_json = next((tmp_path / "import/tree").rglob(f"{rec['name']}/experiment.json"))
        meta = json.loads(exp_json.read_text())["metadata"]
        assert meta["status"] == status[run.info.status]
        assert meta["mlflow"]["tags"] == run.data.tags
    resnet = next(rec for rec in local.values() if rec["name"] == "resnet")
    assert sorted((f[0], f[1]) for f in resnet["files"]) == [
        ("/artifacts", "weights.bin"), ("/artifacts/ckpt/epoch1", "weights.bin"), ("/artifacts/notes", "readme.txt")]


# --- W&B offline ---------------------------------------------------------------------------------


def test_wandb_offline_runs(target: Target, tmp_path: Path) -> None:  # noqa: F811
    from tests.importers.test_wandb_source import naive_points, write_runs

    out = tmp_path / "src"
    out.mkdir()
    made = write_runs(out)
    local = import_twice(target, "wandb", out / "wandb", tmp_path / "import")
    full = local["proj/full run"]
    want: dict[str, list[dict[str, Any]]] = {}
    for metric, value, step, stamp in naive_points(next(Path(made["first"]["dir"]).glob("*.wandb"))):
        want.setdefault(metric, []).append({"value": value, "step": step, "timestamp": stamp})
    assert json.dumps(full["metrics"], sort_keys=True) == json.dumps(want, sort_keys=True)  # NaN included
    assert full["params"]["model.layers"] == 3 and full["params"]["late"] == "yes"
    assert ("info", "hello stdout") in [(level, msg) for _, level, msg, _ in full["logs"]]
    assert ("error", "to stderr") in [(level, msg) for _, level, msg, _ in full["logs"]]
    assert local["proj/failing"]["metrics"]["x"] == [
        {"value": 1, "step": 0, "timestamp": local["proj/failing"]["metrics"]["x"][0]["timestamp"]}]
    failing = json.loads((tmp_path / "import/tree/proj/failing/experiment.json").read_text())
    assert failing["metadata"]["status"] == "FAILED"


def test_a_grown_tensorboard_run_gets_only_its_new_records(tmp_path: Path) -> None:
    import tensorboardX as tbx

    logdir = tmp_path / "logs"
    with tbx.SummaryWriter(str(logdir / "a"), filename_suffix=".1") as w:
        for step in range(100):
            w.add_scalar("loss", 1.0 / (step + 1), step)
        w.add_text("notes", "first", 0)
    tree = tmp_path / "tree"
    assert run_cli("import", "tensorboard", str(logdir), "--to", str(tree), cwd=tmp_path).returncode == 0
    with tbx.SummaryWriter(str(logdir / "a"), filename_suffix=".2") as w:  # a resumed job: a later file
        for step in range(100, 160):
            w.add_scalar("loss", 1.0 / (step + 1), step)
        w.add_text("notes", "second", 100)
    again = run_cli("import", "tensorboard", str(logdir), "--to", str(tree), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "  ✓ logs/a (run a): 60 points (1 metrics), 1 log lines, 0 files, 0 params; 101 already there" \
        in again.stdout
    fresh = tmp_path / "fresh"
    assert run_cli("import", "tensorboard", str(logdir), "--to", str(fresh), cwd=tmp_path).returncode == 0
    assert records_of(tree) == records_of(fresh)
    assert [p["step"] for p in records_of(tree)["logs/a"]["metrics"]["loss"]] == list(range(160))
