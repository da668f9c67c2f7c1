"""Run the real console script, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ML_DASH = str(Path(sys.executable).parent / "ml-dash")


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "DREAMLAKE_"))}
    full_env.update({"NO_COLOR": "1", "COLUMNS": "100", "TERM": "dumb"})
    full_env.update(env or {})
    if cwd is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="ml-dash-cli-") as scratch:
            return subprocess.run([ML_DASH, *args], env=full_env, cwd=scratch, text=True, capture_output=True,
                                  timeout=timeout)
    return subprocess.run([ML_DASH, *args], env=full_env, cwd=cwd, text=True, capture_output=True, timeout=timeout)
