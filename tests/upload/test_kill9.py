"""kill -9 at random moments, then --resume: the server ends with exactly one clean upload."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.build import build_experiment
from tests.helpers.cli import ML_DASH, kill_then_resume
from tests.upload.conftest import Target, resume_ends_with_one_clean_upload


def test_kill_minus_9_then_resume_loses_and_doubles_nothing(any_target: Target, tmp_path: Path) -> None:
    target = any_target
    tree = tmp_path / "tree"
    for i in range(4):
        build_experiment(tree, "big", f"run-{i}", logs=1500, points=4000, files=3)
    args = [ML_DASH, "upload", str(tree), "--remote", target.url, "--api-key", target.key, "--batch-size", "20",
            "--workers", "3", "--progress", "none"]
    kills = kill_then_resume(args, tmp_path, seed=20261123, window=(0.6, 1.6))
    assert kills >= 2, "the upload finished too fast to be interrupted; grow the tree"
    resume_ends_with_one_clean_upload(target, tree, tmp_path)
