"""kill -9 at random moments, then --resume: the server ends with exactly one clean upload."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

from tests.helpers.build import build_experiment
from tests.helpers.cli import ML_DASH, run_cli
from tests.upload.conftest import Target, expected_content


def test_kill_minus_9_then_resume_loses_and_doubles_nothing(any_target: Target, tmp_path: Path) -> None:
    target = any_target
    tree = tmp_path / "tree"
    for i in range(4):
        build_experiment(tree, "big", f"run-{i}", logs=1500, points=4000, files=3)
    args = [ML_DASH, "upload", str(tree), "--remote", target.url, "--api-key", target.key, "--batch-size", "20",
            "--workers", "3", "--progress", "none"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
    rng = random.Random(20261123)
    kills = 0
    for attempt in range(4):
        proc = subprocess.Popen([*args, *(["--resume"] if attempt else [])], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.6, 1.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "the upload finished too fast to be interrupted; grow the tree"
    final = run_cli("upload", str(tree), "--remote", target.url, "--api-key", target.key, "--resume",
                    cwd=tmp_path, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    assert target.content() == expected_content(tree)
    assert set(target.file_copies().values()) == {1}  # no file was ever sent twice
