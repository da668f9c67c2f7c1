"""`ml-dash upload` through the console script against a live `ml-dash serve`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REAL_CLIENT_TREE
from tests.helpers.cli import run_cli
from tests.upload.conftest import Target, expected_content

SUMMARY = re.compile(r"Upload Summary.*", re.S)


def upload(target: Target, *args: str, cwd: Path, env: dict[str, str] | None = None):
    return run_cli("upload", *args, "--remote", target.url, "--api-key", target.key, env=env, cwd=cwd)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(REAL_CLIENT_TREE, dest)
    return dest


def test_real_client_fixture_uploads_exactly(tree: Path, target: Target, tmp_path: Path) -> None:
    r = upload(target, str(tree), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    head = SUMMARY.split(r.stdout)[0].rstrip()
    assert head == (
        f"Scanning local storage: {tree}\n"
        "Found 3 experiment(s) to upload\n\n"
        "Validating experiments...\n"
        "3 experiment(s) ready to upload\n\n"
        f"Uploading to: {target.url}\n"
        "[1/3] nlp/bert-finetune\n"
        "  ✓ Uploaded (10 params, 7 logs, 2 metrics, 2 files)\n"
        "[2/3] sweeps/2025/vision/resnet-lr-sweep\n"
        "  ✓ Uploaded (10 params, 7 logs, 2 metrics, 2 files)\n"
        "[3/3] vision/resnet-baseline\n"
        "  ✓ Uploaded (10 params, 7 logs, 2 metrics, 3 files)")
    assert "│ Successful │" in r.stdout and "3/3" in r.stdout
    assert r.stdout.rstrip().endswith("Upload complete. State file removed.")
    assert not (tmp_path / ".ml-dash-upload-state.json").exists()
    assert target.content() == expected_content(tree)
    exps = target.experiments()
    sweep = exps["vision/resnet-lr-sweep"]
    assert sweep["status"] == "RUNNING"  # the tree records no status: left as the server has it


def test_a_re_run_sends_no_data_again(tree: Path, target: Target, tmp_path: Path) -> None:
    assert upload(target, str(tree), cwd=tmp_path).returncode == 0
    again = upload(target, str(tree), "--report", str(tmp_path / "r.json"), cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.count("✓ Already uploaded (nothing new;") == 3
    report = json.loads((tmp_path / "r.json").read_text())
    assert all(e["sent"] == {"params": 0, "logs": 0, "metric_points": 0, "files": 0, "bytes": 0}
               for e in report["experiments"])
    assert report["requests"] == 6  # per experiment: create + "how far did it get"
    assert target.content() == expected_content(tree)


def test_filters_and_skips(tree: Path, target: Target, tmp_path: Path) -> None:
    r = upload(target, str(tree), "--project", "vision", "--experiment", "resnet-baseline", "skip.logs=true",
               "--skip-files", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    content = target.content()
    assert list(content) == ["vision/resnet-baseline"]
    assert content["vision/resnet-baseline"]["logs"] == [] and content["vision/resnet-baseline"]["files"] == []
    assert len(content["vision/resnet-baseline"]["metrics"]["train_loss"]) == 50


def test_small_batches_and_many_workers_keep_order(tree: Path, target: Target, tmp_path: Path) -> None:
    r = upload(target, str(tree), "--batch-size", "7", "--workers", "8", cwd=tmp_path)
    assert r.returncode == 0
    assert target.content() == expected_content(tree)


def test_precondition_errors_exit_2_with_the_seed_messages(tree: Path, tmp_path: Path) -> None:
    home = {"ML_DASH_CONFIG_DIR": str(tmp_path / "nohome")}
    r = run_cli("upload", str(tree), "--username", "alice", env=home, cwd=tmp_path)
    assert (r.returncode, r.stderr.splitlines()[0]) == (2, "Error: --remote URL is required (or set in config)")
    r = run_cli("upload", str(tree), "--remote", "http://127.0.0.1:9", env=home, cwd=tmp_path)
    assert r.stderr.splitlines()[0] == "Error: --api-key or --username is required (or set in config)"
    r = run_cli("upload", str(tree), "--remote", "http://127.0.0.1:9", "--api-key", "k", "--experiment", "x",
                env=home, cwd=tmp_path)
    assert r.returncode == 2 and "experiment requires project" in r.stderr
    r = run_cli("upload", str(tmp_path / "nope"), "--remote", "http://127.0.0.1:9", "--api-key", "k", env=home,
                cwd=tmp_path)
    assert (r.returncode, r.stderr.splitlines()[0]) == (2, f"Error: Local storage path does not exist: "
                                                           f"{tmp_path / 'nope'}")


def test_nothing_found_messages(tree: Path, target: Target, tmp_path: Path) -> None:
    r = upload(target, str(tree), "--project", "nope", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout.splitlines()[-1] == "No experiments found in project: nope"
    r = upload(target, str(tree), "--project", "vision", "--experiment", "x", cwd=tmp_path)
    assert r.stdout.splitlines()[-1] == "No experiment found: vision/x"
    empty = tmp_path / "empty"
    empty.mkdir()
    r = upload(target, str(empty), cwd=tmp_path)
    assert r.stdout.splitlines()[-1] == "No experiments found in local storage"


def test_unreachable_server_stops_before_any_experiment_and_saves_state(tree: Path, tmp_path: Path) -> None:
    r = run_cli("upload", str(tree), "--remote", "http://127.0.0.1:9", "--api-key", "k", "retry.attempts=2",
                "retry.backoff=0.01", cwd=tmp_path)
    assert r.returncode == 1
    assert "  ✗ Failed" not in r.stdout  # the problem is the server's, not any experiment's: said once
    assert r.stderr.count("Error: http://127.0.0.1:9 cannot be reached: GET /experiments/0/parameters: cannot "
                          "reach http://127.0.0.1:9") == 1, r.stderr
    assert "Hint: is the server running? check with `curl http://127.0.0.1:9/health`" in r.stderr
    assert "State saved to .ml-dash-upload-state.json. Use --resume to retry failed uploads." in r.stdout
    state = json.loads((tmp_path / ".ml-dash-upload-state.json").read_text())
    assert state["failed_experiments"] == [] and state["completed_experiments"] == []
    assert state["local_path"] == str(tree) and set(state) == {
        "local_path", "remote_url", "completed_experiments", "failed_experiments", "in_progress_experiment",
        "timestamp"}


def test_resume_skips_completed_and_retries_failed(tree: Path, target: Target, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps({
        "local_path": str(tree), "remote_url": target.url, "completed_experiments": ["nlp/bert-finetune"],
        "failed_experiments": ["vision/resnet-baseline"], "in_progress_experiment": None,
        "timestamp": "2026-01-01T00:00:00"}))
    r = upload(target, str(tree), "--resume", "--state-file", str(tmp_path / "s.json"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout
    assert r.stdout.startswith("Resuming previous upload from 2026-01-01T00:00:00\n  Already completed: 1 experiments\n"
                               "  Failed: 1 experiments\n")
    assert "Skipping 1 already completed experiment(s)\nFound 2 experiment(s) to upload" in r.stdout
    assert sorted(target.content()) == ["vision/resnet-baseline", "vision/resnet-lr-sweep"]
    assert not (tmp_path / "s.json").exists() and "Upload complete. State file removed." in r.stdout


def test_resume_with_a_state_file_of_another_tree_starts_fresh(tree: Path, target: Target, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps({"local_path": "/elsewhere", "remote_url": target.url,
                                                 "completed_experiments": ["nlp/bert-finetune"]}))
    r = upload(target, str(tree), "--resume", "--state-file", str(tmp_path / "s.json"), cwd=tmp_path)
    assert r.stdout.startswith("Warning: State file local path doesn't match. Starting fresh upload.\n")
    assert "Found 3 experiment(s)" in r.stdout
    r = upload(target, str(tree), "--resume", "--state-file", str(tmp_path / "none.json"), cwd=tmp_path)
    assert r.stdout.startswith("No previous upload state found. Starting fresh upload.\n")


def test_ci_profile_writes_a_json_report(tree: Path, target: Target, tmp_path: Path) -> None:
    r = upload(target, str(tree), "+profile=ci", cwd=tmp_path)
    assert r.returncode == 0
    report = json.loads((tmp_path / "ml-dash-report.json").read_text())
    assert report["exit_code"] == 0 and report["totals"] == {"experiments": 3, "uploaded": 3, "failed": 0}
    baseline = next(e for e in report["experiments"] if e["key"] == "vision/resnet-baseline")
    sent = baseline["sent"]
    assert (sent["params"], sent["logs"], sent["metric_points"], sent["files"]) == (10, 7, 100, 3)
    assert sent["bytes"] > 579  # the files plus the JSONL records
    assert target.key not in (tmp_path / "ml-dash-report.json").read_text()


def test_the_seed_python_api(tree: Path, target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from ml_dash.cli_commands.upload import ExperimentValidator, cmd_upload, discover_experiments

    experiments = discover_experiments(Path(tree))
    assert [f"{e.project}/{e.experiment}" for e in experiments] == [
        "nlp/bert-finetune", "vision/resnet-lr-sweep", "vision/resnet-baseline"]
    validator = ExperimentValidator(strict=True)
    assert all(validator.validate_experiment(e).is_valid for e in experiments)
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(path=str(tree), remote=target.url, api_key=target.key, user_name=None, project="nlp",
                              experiment=None, dry_run=False, strict=False, verbose=True, batch_size=100,
                              skip_logs=False, skip_metrics=False, skip_files=False, skip_params=False, resume=False,
                              state_file=".ml-dash-upload-state.json")
    assert cmd_upload(args) == 0
    assert list(target.content()) == ["nlp/bert-finetune"]


def test_a_run_configured_only_by_config_json_keeps_the_key_secret(tree: Path, target: Target, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").write_text(json.dumps({"remote_url": target.url, "api_key": target.key,
                                                  "upload": {"path": str(tree), "report": {"format": "json"}}}))
    (home / "config.json").chmod(0o600)
    (tree / "vision/resnet-baseline/files/.files_metadata.json").write_text("{}")  # a failure: state file stays
    r = run_cli("upload", env={"ML_DASH_CONFIG_DIR": str(home)}, cwd=tmp_path)
    assert r.returncode == 1 and "Found 3 experiment(s) to upload" in r.stdout
    assert sorted(target.content()) == ["nlp/bert-finetune", "vision/resnet-baseline", "vision/resnet-lr-sweep"]
    written = {p.name: p.read_text() for p in tmp_path.iterdir() if p.is_file()}
    assert set(written) == {".ml-dash-upload-state.json", "ml-dash-report.json"}
    for text in [r.stdout, r.stderr, *written.values()]:
        assert target.key not in text


def test_the_prefix_layout_of_newer_clients_uploads(target: Target, tmp_path: Path) -> None:
    from tests.conftest import FIXTURES

    tree = tmp_path / "dash"
    shutil.copytree(FIXTURES / "real-client-0.6.27", tree)
    r = upload(target, str(tree), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[2/2] sweeps/2025/vision/resnet-lr-sweep" in r.stdout
    content = target.content()
    assert sorted(content) == ["vision/resnet-baseline", "vision/resnet-lr-sweep"]
    sweep = content["vision/resnet-lr-sweep"]
    assert len(sweep["metrics"]["train_loss"]) == 20 and sweep["files"][0][:2] == ("/notes", "notes.txt")
    assert sweep["params"] == {"model.name": "resnet18", "model.depth": 18, "seed": 1, "optim.lr": 0.05}


def test_a_final_status_recorded_in_the_tree_is_sent(tree: Path, target: Target, tmp_path: Path) -> None:
    path = tree / "nlp/bert-finetune/experiment.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "COMPLETED"}, indent=2))
    assert upload(target, str(tree), cwd=tmp_path).returncode == 0
    status = {k: e["status"] for k, e in target.experiments().items()}
    assert status == {"nlp/bert-finetune": "COMPLETED", "vision/resnet-baseline": "RUNNING",
                      "vision/resnet-lr-sweep": "RUNNING"}
