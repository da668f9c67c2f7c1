"""Several ``ml-dash serve`` processes on one database behind a real load balancer (HAProxy).

Used by ``tests/server/test_balancer.py`` and ``bench/load.py``; stdlib only (plus the repo's
``tests/helpers/server.py``), so a bench can import it without pytest.

    servers = start_servers(2, "postgresql://...", "s3://bucket/prefix?endpoint_url=...", work, env=aws_env)
    try:
        with haproxy([("127.0.0.1", s.port) for s in servers], work) as lb:
            ...                          # lb.url: http://127.0.0.1:PORT, round robin over the servers
            servers[0].kill()            # kill -9: haproxy retries elsewhere and marks it DOWN (~0.4 s)
            servers[0] = servers[0].restart()   # the same port again: marked UP after two good checks
    finally:
        stop_servers(servers)

Everything listens on 127.0.0.1 only, and every process started here is stopped by its pid.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.server import LiveServer, start_server

__all__ = ["Balancer", "find_haproxy", "free_port", "haproxy", "missing_haproxy", "request_lines", "start_servers",
           "stop_servers"]

HAPROXY_PATHS = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")


def find_haproxy() -> str | None:
    """The haproxy binary (Debian puts it in /usr/sbin, often not on a user's PATH), or None."""
    found = shutil.which("haproxy")
    if found:
        return found
    return next((p for p in HAPROXY_PATHS if os.access(p, os.X_OK)), None)


def missing_haproxy() -> str | None:
    """Why the balancer cannot run here, with the fix; None when it can."""
    if find_haproxy() is None:
        return "haproxy is not installed: run scripts/setup.sh as root, or apt-get install haproxy"
    return None


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (for programs that cannot bind port 0 and say which)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the servers ----------------------------------------------------------------------------------------------
def start_servers(n: int, db_url: str, blobs_url: str, work_dir: Path, extra_args: Sequence[str] = (),
                  env: dict[str, str] | None = None) -> list[LiveServer]:
    """``n`` ``ml-dash serve`` processes on 127.0.0.1 (free ports), each with its own data dir
    ``work_dir/server-<i>`` and the same ``--db`` and ``--blobs`` (for n > 1: PostgreSQL and S3;
    ``env`` carries what the blob store needs, e.g. ``AWS_ACCESS_KEY_ID``). Started at once;
    if one fails, those that started are stopped. Stop them with :func:`stop_servers`."""
    results: list[LiveServer | BaseException | None] = [None] * n

    def start(i: int) -> None:
        try:
            results[i] = start_server(work_dir / f"server-{i}", "--db", db_url, "--blobs", blobs_url, *extra_args,
                                      env=env)
        except BaseException as exc:  # noqa: BLE001 - raised below, once the others are stopped
            results[i] = exc

    threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    servers = [r for r in results if isinstance(r, LiveServer)]
    if len(servers) < n:
        stop_servers(servers)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        raise RuntimeError(f"{n - len(servers)} of {n} servers did not start") from failed
    return servers


def stop_servers(servers: Sequence[LiveServer]) -> None:
    """A graceful stop of each (SIGTERM, SIGKILL after 30 s), by pid."""
    for server in servers:
        server.stop()


def request_lines(server: LiveServer, *, health: bool = False) -> list[dict[str, object]]:
    """The server's request log (one JSON object per request), without the balancer's health
    checks unless ``health``."""
    out = []
    for line in server.log.splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut off by kill -9
                continue
            if health or entry.get("path") != "/health":
                out.append(entry)
    return out


# --- the balancer ---------------------------------------------------------------------------------------------
CONFIG = """\
# written by tests/helpers/balancer.py
global
    maxconn 4096
    stats socket {socket} mode 600 level admin
    # logging only with log=True, and then to stdout (haproxy.log), never to syslog
{log_global}
defaults
    mode http
{log_defaults}    timeout connect 2s
    timeout client 300s
    timeout server 300s
    timeout http-request 300s
    timeout http-keep-alive 30s
    timeout queue 60s
    # A refused connection (a dead server) fails a check at once; an answer may take this long: a busy
    # server answers /health late (it waits behind the requests in its thread pool) but is not dead.
    timeout check {check_timeout}
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    # The whole request (up to a buffer, 16 kB) before the server is chosen: what HAProxy holds it can
    # replay elsewhere when a server dies with the request in flight (bigger bodies stream through).
    option http-buffer-request

frontend ml_dash
    bind 127.0.0.1:{port}
    maxconn 4096
    default_backend servers

backend servers
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter {inter} fastinter {inter} downinter {inter} fall 2 rise 2 maxconn 1000
{servers}
"""


@dataclass
class Balancer:
    url: str
    port: int
    config: Path
    process: subprocess.Popen[bytes]
    socket: Path
    backends: list[tuple[str, int]]

    @property
    def names(self) -> list[str]:
        """HAProxy's name of each backend, in the order given."""
        return [f"s{i}" for i in range(len(self.backends))]

    def _admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.socket))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """Each backend server's state as HAProxy sees it: ``UP``, ``DOWN``, ``UP 1/2``..."""
        text = self._admin("show stat").lstrip("# ")
        return {row["svname"]: row["status"] for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "servers" and row["svname"] in self.names}

    def wait_state(self, index: int, state: str, timeout: float = 10.0) -> None:
        """Until backend ``index`` is in ``state`` (``UP`` or ``DOWN``, exactly)."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.states().get(self.names[index])
            if seen == state:
                return
            time.sleep(0.05)
        raise TimeoutError(f"haproxy: server {self.names[index]} is {seen}, not {state}, after {timeout:g} s")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # http://127.0.0.1 only
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def haproxy(backends: Sequence[tuple[str, int]], work_dir: Path, *, check_interval_ms: int = 200,
            check_timeout_s: float = 10.0, log: bool = False, startup_timeout: float = 20.0) -> Iterator[Balancer]:
    """HAProxy in front of ``backends`` (``(host, port)``, all on 127.0.0.1): round robin per
    request, health checks ``GET /health`` every ``check_interval_ms`` (DOWN after 2 failures: a
    refused connection at once, an answer later than ``check_timeout_s``; UP after 2 successes), a failed connection, an empty answer or a response timeout retried
    (``retries 3``) on another server, timeouts sized for 2 GB uploads (300 s). Runs in the
    foreground (``haproxy -db``), stopped by its pid on exit. ``log``: one line per request (with
    HAProxy's termination state and retry count) in ``work_dir/haproxy.log``, never syslog. Yields a :class:`Balancer` whose
    ``url`` is the address clients use (HAProxy's own answer on /health needs a backend UP)."""
    binary = find_haproxy()
    if binary is None:
        raise RuntimeError(missing_haproxy())
    for host, _ in backends:
        if host != "127.0.0.1":
            raise ValueError(f"backends listen on 127.0.0.1 only, not {host}")
    work_dir.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"    server s{i} {host}:{port} check" for i, (host, port) in enumerate(backends))
    last_error = ""
    for _attempt in range(5):  # the free port may be taken between looking and binding: try another
        port = free_port()
        cfg = work_dir / "haproxy.cfg"
        sock = work_dir / "haproxy.sock"
        cfg.write_text(CONFIG.format(port=port, socket=sock, inter=f"{check_interval_ms}ms", servers=servers,
                                     check_timeout=f"{int(check_timeout_s * 1000)}ms",
                                     log_global="    log stdout format raw local0\n" if log else "",
                                     log_defaults="    log global\n    option httplog\n" if log else ""))
        check = subprocess.run([binary, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused {cfg}: {check.stderr or check.stdout}")
        out = open(work_dir / "haproxy.log", "ab")  # closed below, after the process
        proc = subprocess.Popen([binary, "-f", str(cfg), "-db"], stdout=out, stderr=out)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline and proc.poll() is None and not _answers(f"{url}/health"):
            time.sleep(0.05)
        if proc.poll() is None and _answers(f"{url}/health"):
            break
        _stop(proc)
        out.close()
        last_error = (work_dir / "haproxy.log").read_text(errors="replace")[-2000:]
    else:
        raise RuntimeError(f"haproxy did not start (or no backend answered /health): {last_error}")
    try:
        yield Balancer(url=url, port=port, config=cfg, process=proc, socket=sock, backends=list(backends))
    finally:
        _stop(proc)
        out.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (HAProxy's immediate stop), SIGKILL if it is still there after 10 s; by pid."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
        proc.wait()

