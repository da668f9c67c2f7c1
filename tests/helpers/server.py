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
    args: tuple[str, ...] = ()  # the extra arguments it was started with (``restart`` starts it with them again)
    plain: bool = False
    prefix: tuple[str, ...] = ()  # a command the server runs under (e.g. ``unshare -m ...``)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _setting(self, flag: str) -> list[str]:
        """``[flag, value]`` when the server was started with ``flag VALUE``, else ``[]``."""
        args = list(self.args)
        return [flag, args[args.index(flag) + 1]] if flag in args[:-1] else []

    def token(self, name: str, namespace: str) -> str:
        # On the server's own database: its --db when it was given one (else the data dir's SQLite).
        out = subprocess.run([ML_DASH, "serve", "token", "create", name, "--namespace", namespace,
                              "--data-dir", str(self.data_dir), *self._setting("--db")], env=self.env,
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    @property
    def log(self) -> str:
        return (self.data_dir / "server.log").read_text()

    def stop(self) -> None:
        terminate(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def kill(self) -> None:
        """``kill -9`` of the server and of its worker processes (``--workers N``): no graceful
        shutdown, in-flight requests break off; waits for it."""
        if self.process.poll() is None:
            for pid in descendants(self.process.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def restart(self) -> LiveServer:
        """The same server again (stopped first if it runs): same data dir, arguments, environment
        and port (given explicitly, so whoever knew the address finds it again); its log goes on
        in the same file. Returns the new ``LiveServer`` (stop that one)."""
        self.stop()
        return start_server(self.data_dir, *self.args, port=self.port, env=self.env, plain=self.plain,
                            append_log=True, prefix=self.prefix)


def descendants(pid: int) -> list[int]:
    """The live child processes of ``pid``, their children, ... (Linux /proc; [] elsewhere)."""
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 1000:
        parent = todo.pop()
        children = []
        try:
            for task in Path(f"/proc/{parent}/task").iterdir():  # a child belongs to the thread that forked it
                children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        out += children
        todo += children
    return out


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
                plain: bool = False, prefix: tuple[str, ...] = ()) -> Iterator[LiveServer]:
    """``plain``: a server with only the 0.5.8 routes (``tests/helpers/plain_server.py``);
    ``prefix``: a command it runs under (it must exec the server, keeping its pid)."""
    server = start_server(data_dir, *extra, port=port, env=env, plain=plain, prefix=prefix)
    try:
        yield server
    finally:
        server.stop()


def start_server(data_dir: Path, *extra: str, port: int = 0, env: dict[str, str] | None = None,
                 plain: bool = False, append_log: bool = False, prefix: tuple[str, ...] = ()) -> LiveServer:
    """``live_server`` without the context manager: the caller stops it (``stop`` or ``kill``).
    ``append_log``: go on writing ``server.log`` instead of starting it afresh."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
    full_env.update({"ML_DASH_CONFIG_DIR": str(data_dir / "home"), **(env or {})})
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "server.log", "a" if append_log else "w") as log:  # the child keeps its own descriptor
        command = [sys.executable, "-m", "tests.helpers.plain_server"] if plain else [ML_DASH, "serve"]
        proc = subprocess.Popen([*prefix, *command, "--host", "127.0.0.1", "--port", str(port), "--data-dir",
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
    return LiveServer(url=url, data_dir=data_dir, process=proc, env=full_env, dashboard_url=dashboard_url,
                      args=tuple(extra), plain=plain, prefix=prefix)
