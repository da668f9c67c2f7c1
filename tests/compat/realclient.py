"""Locating the real ml-dash 0.5.8 client (installed by scripts/setup.sh in its own venv)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REAL_VENV = REPO / ".venv-ml-dash-0.5.8"
REAL_PYTHON = REAL_VENV / "bin" / "python"
REAL_CLI = REAL_VENV / "bin" / "ml-dash"


def require_real_client() -> Path:
    """The real client's python; a loud failure (not a silent skip) when it is missing."""
    if REAL_PYTHON.exists() and REAL_CLI.exists():
        return REAL_PYTHON
    if os.environ.get("ML_DASH_SKIP_COMPAT") == "1":
        pytest.skip("ML_DASH_SKIP_COMPAT=1: real ml-dash 0.5.8 client not used")
    pytest.fail(f"the real ml-dash 0.5.8 client is not installed in {REAL_VENV}: run scripts/setup.sh "
                "(or set ML_DASH_SKIP_COMPAT=1 to skip compatibility tests knowingly)")


def run_real(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real client's python with a scrubbed environment (no PYTHONPATH to our code)."""
    require_real_client()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "PYTHON"))}
    env.update(COLUMNS="100", TERM="dumb", NO_COLOR="1", HOME=str(cwd))
    return subprocess.run([str(REAL_PYTHON), *args], cwd=cwd, env=env, text=True, capture_output=True, check=check,
                          timeout=300)


def real_dry_run(root: Path, cwd: Path) -> list[str]:
    """The real ``ml-dash upload --dry-run -v`` discovery lines, sorted (0.5.8 does not sort)."""
    out = subprocess.run([str(REAL_CLI), "upload", str(root), "--dry-run", "-v", "--remote", "http://127.0.0.1:9",
                          "--api-key", "x"], cwd=cwd, text=True, capture_output=True, timeout=120,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")},
                              "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1", "HOME": str(cwd)})
    assert out.returncode == 0, out.stdout + out.stderr
    found = [line for line in out.stdout.splitlines() if line.startswith("Found ")]
    bullets = sorted(line.strip() for line in out.stdout.splitlines() if line.strip().startswith("•"))
    return found + bullets
