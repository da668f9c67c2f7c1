"""Every example runs, and what it writes is a valid tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ml_dash.records import ExperimentRecord, load_record

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_01_log_locally(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    subprocess.run([sys.executable, "-W", "error", str(EXAMPLES / "01_log_locally.py"), str(root)], check=True,
                   capture_output=True, cwd=tmp_path)
    found = sorted(p.parent.relative_to(root).as_posix() for p in root.rglob("experiment.json"))
    assert found == ["image-classification/baseline", "sweeps/lr/image-classification/lr-0.3",
                     "sweeps/lr/image-classification/lr-0.5"]
    for path in root.rglob("experiment.json"):
        assert load_record(path, ExperimentRecord).tags == ["example"]
