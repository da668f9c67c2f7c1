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


def kill_then_resume(args: list[str], cwd: Path, *, seed: int, window: tuple[float, float],
                     attempts: int = 4) -> int:
    """Start ``args`` (an upload) and kill -9 it after a random moment in ``window`` seconds, then
    again with ``--resume``, ``attempts`` times in all; returns how many runs were killed."""
    import random
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
    rng = random.Random(seed)
    kills = 0
    for attempt in range(attempts):
        proc = subprocess.Popen([*args, *(["--resume"] if attempt else [])], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(*window))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    return kills
