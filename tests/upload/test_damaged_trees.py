"""Damaged trees: what is reported (file, line), what is skipped, what fails, in lenient and strict mode."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REAL_CLIENT_TREE
from tests.helpers.cli import run_cli
from tests.upload.conftest import Target

BASE = "vision/resnet-baseline"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(REAL_CLIENT_TREE, dest)
    return dest


def upload(target: Target, tree: Path, cwd: Path, *args: str):
    return run_cli("upload", str(tree), "--remote", target.url, "--api-key", target.key, "--project", "vision",
                   "--experiment", "resnet-baseline", *args, cwd=cwd)


def damage_lines(tree: Path) -> None:
    logs = tree / BASE / "logs/logs.jsonl"
    lines = logs.read_text().splitlines()
    lines[2] = lines[2][:25]  # truncated in the middle
    lines.insert(4, "")  # blank
    lines.insert(5, '{"sequenceNumber": 9, "level": "info"}')  # no message
    logs.write_text("\n".join(lines) + "\n")
    metric = tree / BASE / "metrics/train_loss/data.jsonl"
    points = metric.read_text().splitlines()
    points[9] = "not json at all"
    points[19] = '{"index": 19, "createdAt": "x"}'  # no data
    metric.write_text("\n".join(points) + "\n" + points[-1][:30])  # and a torn last line


def test_lenient_skips_bad_lines_and_reports_them_with_line_numbers(tree: Path, target: Target, tmp_path: Path) -> None:
    damage_lines(tree)
    r = upload(target, tree, tmp_path, "-v")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("  ⚠ vision/resnet-baseline:\n"
            "      logs.jsonl has 3 invalid lines (e.g., [3, 5, 6]...) - will skip these\n"
            "      metric 'train_loss' has 3 invalid lines (e.g., [10, 20, 51]...) - will skip these\n") in r.stdout
    assert f"        {tree / BASE / 'logs/logs.jsonl'}:3: truncated" not in r.stdout  # line 3 still has its newline
    assert f"{tree / BASE / 'logs/logs.jsonl'}:3: invalid JSON" in r.stdout
    assert f"{tree / BASE / 'logs/logs.jsonl'}:6: message: required key is missing" in r.stdout
    assert f"{tree / BASE / 'metrics/train_loss/data.jsonl'}:51: truncated last line" in r.stdout
    content = target.content()[BASE]
    assert len(content["logs"]) == 6 and len(content["metrics"]["train_loss"]) == 48
    assert len(content["metrics"]["val_accuracy"]) == 50


def test_strict_refuses_before_anything_is_sent(tree: Path, target: Target, tmp_path: Path) -> None:
    damage_lines(tree)
    r = run_cli("upload", str(tree), "--remote", target.url, "--api-key", target.key, "--strict", cwd=tmp_path)
    assert r.returncode == 1
    assert ("Validating experiments...\n"
            "  ✗ vision/resnet-baseline:\n"
            "      logs.jsonl has 3 invalid lines (e.g., [3, 5, 6]...)\n"
            "      metric 'train_loss' has 3 invalid lines (e.g., [10, 20, 51]...)\n\n"
            "1 experiment(s) failed validation and will be skipped\n") in r.stdout
    assert r.stderr == "Error: Validation failed in --strict mode\n"
    assert target.content() == {}  # nothing at all was sent, not even the valid experiments


def test_missing_and_corrupt_blobs_are_reported_and_fail_the_run(tree: Path, target: Target, tmp_path: Path) -> None:
    manifest = json.loads((tree / BASE / "files/.files_metadata.json").read_text())["files"]
    weights = next(f for f in manifest if f["filename"] == "weights.bin")
    notes = next(f for f in manifest if f["filename"] == "notes.txt")
    (tree / BASE / "files/models/checkpoints" / weights["id"] / "weights.bin").unlink()
    (tree / BASE / "files/notes" / notes["id"] / "notes.txt").write_text("Training notes\nline 2: lr warmup 999 steps\n")
    r = upload(target, tree, tmp_path)
    assert r.returncode == 1  # 0.5.8 exited 0 and never said a word
    assert (f"      file /models/checkpoints/weights.bin: missing on disk (files/models/checkpoints/{weights['id']}/"
            "weights.bin) (will skip)") in r.stdout
    # The corrupt one is hashed as it streams out and the request aborted before its end: no server (even one
    # that does not check) keeps it; named with both checksums (a lenient run reads each file once).
    actual = hashlib.sha256(b"Training notes\nline 2: lr warmup 999 steps\n").hexdigest()
    assert (f"      file /notes/notes.txt: {tree / BASE / 'files/notes' / notes['id'] / 'notes.txt'}: sha256 is "
            f"{actual}, the manifest says {notes['checksum']}; not uploaded") in r.stdout
    dry = upload(target, tree, tmp_path, "--dry-run")
    assert ("      file /notes/notes.txt: sha256 on disk does not match the manifest (the file changed or is corrupt) "
            "(will skip)") in dry.stdout
    assert "  ✗ Failed\n" in r.stdout and "Failed Experiments:\n  ✗ vision/resnet-baseline\n" in r.stdout
    content = target.content()[BASE]
    assert [f[1] for f in content["files"]] == ["config.yaml"]  # the good file still went up
    assert len(content["logs"]) == 7 and len(content["metrics"]["train_loss"]) == 50
    assert "State saved to .ml-dash-upload-state.json" in r.stdout


@pytest.mark.parametrize(("text", "message"), [
    ('{"name": "resnet-baseline", "project": ', ":1: invalid JSON: Expecting value"),
    ('{"project": "vision"}', ": name: required key is missing"),
])
def test_broken_experiment_json_fails_that_experiment_only(tree: Path, target: Target, tmp_path: Path, text: str,
                                                           message: str) -> None:
    (tree / BASE / "experiment.json").write_text(text)
    r = run_cli("upload", str(tree), "--remote", target.url, "--api-key", target.key, cwd=tmp_path)
    assert r.returncode == 1
    where = tree / BASE / "experiment.json"
    assert f"  ✗ vision/resnet-baseline:\n      experiment.json is invalid: {where}{message}" in r.stdout
    assert "1 experiment(s) failed validation and will be skipped" in r.stdout
    assert sorted(target.content()) == ["nlp/bert-finetune", "vision/resnet-lr-sweep"]


def test_bad_parameters_are_skipped_in_lenient_mode(tree: Path, target: Target, tmp_path: Path) -> None:
    (tree / BASE / "parameters.json").write_text('{"version": 2, "data": [1, 2]}')
    r = upload(target, tree, tmp_path, "-v")
    assert r.returncode == 0
    assert "      parameters.json is invalid: data: Input should be a valid dictionary (will skip)" in r.stdout
    assert target.content()[BASE]["params"] == {}


def test_path_traversal_in_the_manifest_is_refused(tree: Path, target: Target, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not upload")
    manifest_path = tree / BASE / "files/.files_metadata.json"
    doc = json.loads(manifest_path.read_text())
    doc["files"][0]["path"] = "/../../../../.."
    manifest_path.write_text(json.dumps(doc))
    r = upload(target, tree, tmp_path)
    assert r.returncode == 1
    assert ("file notes.txt: manifest entry files.0 is invalid: path: Value error, must not contain '.' or '..' "
            "segments (it would leave the files directory) (will skip)") in r.stdout
    assert sorted(f[1] for f in target.content()[BASE]["files"]) == ["config.yaml", "weights.bin"]


def test_a_symlinked_blob_leaving_the_tree_is_refused(tree: Path, target: Target, tmp_path: Path) -> None:
    manifest = json.loads((tree / BASE / "files/.files_metadata.json").read_text())["files"]
    cfg = next(f for f in manifest if f["filename"] == "config.yaml")
    blob = tree / BASE / "files" / cfg["id"] / "config.yaml"
    outside = tmp_path / "outside.yaml"
    outside.write_bytes(blob.read_bytes())
    blob.unlink()
    blob.symlink_to(outside)
    r = upload(target, tree, tmp_path)
    assert r.returncode == 1 and "leaves the files directory (symlink); refused" in r.stdout
    assert "config.yaml" not in [f[1] for f in target.content()[BASE]["files"]]


def test_soft_deleted_files_are_not_uploaded(tree: Path, target: Target, tmp_path: Path) -> None:
    path = tree / BASE / "files/.files_metadata.json"
    doc = json.loads(path.read_text())
    doc["files"][0]["deletedAt"] = "2026-11-22T16:57:38.000000Z"
    path.write_text(json.dumps(doc))
    assert upload(target, tree, tmp_path).returncode == 0
    assert sorted(f[1] for f in target.content()[BASE]["files"]) == ["config.yaml", "weights.bin"]


def test_a_file_named_experiment_json_inside_files_is_not_an_experiment(tree: Path, target: Target,
                                                                       tmp_path: Path) -> None:
    (tree / BASE / "files/notes/experiment.json").write_text('{"name": "bogus", "project": "notes"}')
    loop = tree / "sweeps/loop"
    loop.symlink_to(tree / "sweeps")
    r = run_cli("upload", str(tree), "--dry-run", cwd=tmp_path)
    assert r.returncode == 0 and "Found 3 experiment(s) to upload" in r.stdout and "bogus" not in r.stdout
    assert "symlink loop" in r.stderr
