"""A live ``ml-dash serve`` on 127.0.0.1 (a real process, stopped by its pid)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ML_DASH = str(Path(sys.executable).parent / "ml-dash")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[str]
    env: dict[str, str]
    dashboard_url: str | None = None  # the owner's login URL the server printed (None: dashboard disabled)

    def token(self, name: str, namespace: str) -> str:
        out = subprocess.run([ML_DASH, "serve", "token", "create", name, "--namespace", namespace,
                              "--data-dir", str(self.data_dir)], env=self.env, capture_output=True, text=True,
                             check=True)
        return out.stdout.strip()

    @property
    def log(self) -> str:
        return (self.data_dir / "server.log").read_text()

    def stop(self) -> None:
        terminate(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()


def terminate(process: subprocess.Popen[str]) -> None:
    """SIGTERM (a graceful stop), SIGKILL after 30 s; waits for the process either way."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when shutdown hangs
            process.kill()
            process.wait()


@contextmanager
def live_server(data_dir: Path, *extra: str, port: int = 0, env: dict[str, str] | None = None,
                plain: bool = False) -> Iterator[LiveServer]:
    """``plain``: a server with only the 0.5.8 routes (``tests/helpers/plain_server.py``)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
    full_env.update({"ML_DASH_CONFIG_DIR": str(data_dir / "home"), **(env or {})})
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "server.log", "w") as log:  # the child keeps its own copy of the descriptor
        command = [sys.executable, "-m", "tests.helpers.plain_server"] if plain else [ML_DASH, "serve"]
        proc = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port), "--data-dir",
                                 str(data_dir), *extra], env=full_env, stdout=subprocess.PIPE, stderr=log, text=True,
                                cwd=REPO if plain else None)
    deadline = time.monotonic() + 60
    url = dashboard_url = None
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        shown = re.match(r"dashboard: (http://\S+)", line)  # printed just before "listening on"
        if shown:
            dashboard_url = shown.group(1)
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise RuntimeError(f"ml-dash serve did not start: {(data_dir / 'server.log').read_text()}")
    server = LiveServer(url=url, data_dir=data_dir, process=proc, env=full_env, dashboard_url=dashboard_url)
    try:
        yield server
    finally:
        server.stop()
