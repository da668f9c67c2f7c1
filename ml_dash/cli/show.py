"""``ml-dash show [PATH]``: the dashboard over a local tree, with zero set-up.

    ml-dash show [PATH] [--port 8765] [--no-browser] [--data-dir DIR]

Starts the ml-dash server on 127.0.0.1 over a private SQLite + blob directory (one per tree, in
``~/.ml-dash/show/``; never inside the tree), keeps importing the tree into it through the
upload engine (:mod:`ml_dash.server.mirror`), and opens the dashboard. Loopback callers need no
login and read namespace ``local``; nothing may write but the importer: the tree is the truth.
"""

from __future__ import annotations

import errno
import json
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml_dash.cli.configured import parse, print_help, resolve_parsed
from ml_dash.config.overrides import Override
from ml_dash.errors import ConfigError, MLDashError

DESCRIPTION = ("Show the experiments of a local tree (what the SDK writes in local mode) in the web dashboard, "
               "like `mlflow ui` or `tensorboard --logdir`: no server to set up, no login, live while training "
               "scripts append. The tree is only read; a private copy is kept in ~/.ml-dash/show so a restart "
               "imports nothing again. Its REST API (namespace `local`) also serves `ml-dash list`/`download`.")
USAGE = "[PATH] [--port P] [--no-browser] [--data-dir DIR] [key=value ...]"
EXTRA_FLAGS = [(("--no-browser",), {"action": "store_true", "dest": "no_browser"})]
NAMESPACE = "local"
KEY_FILE = "mirror-key.json"


def main(argv: Sequence[str]) -> int:
    parsed = parse("show", "ml-dash show", argv, EXTRA_FLAGS)
    if parsed.help:
        return print_help("show", "ml-dash show", DESCRIPTION, USAGE)
    if parsed.extra.get("no_browser"):
        parsed.overrides.append(Override("open_browser=false", "open_browser", "cli --no-browser"))
    cfg = resolve_parsed("show", parsed).config
    from ml_dash.server.state import is_loopback

    if not is_loopback(cfg.host):
        raise ConfigError(f"ml-dash show binds loopback addresses only, not {cfg.host}: it asks for no login",
                          hint="use --host 127.0.0.1 (the default); to share experiments, upload them to an "
                               "`ml-dash serve` (ml-dash upload PATH --remote URL)")
    root: Path = cfg.path
    if not root.is_dir():
        raise ConfigError(f"no local tree at {root}",
                          hint="pass the directory your experiments were logged to (the SDK's local_path; "
                               "default ./.ml-dash)")
    _check_port(cfg.host, cfg.port)
    try:
        from ml_dash.server.state import ServerState
    except ImportError as exc:  # fastapi/uvicorn are the `server` extra
        raise MLDashError(f"ml-dash show needs extra packages ({exc.name} is missing)",
                          hint="pip install 'ml-dash[server]'") from None
    from ml_dash.config.commands import config_dir
    from ml_dash.config.models import ServeConfig
    from ml_dash.server.mirror import private_dir

    root = root.resolve()
    private = private_dir(cfg.data_dir or config_dir() / "show", root)
    private.mkdir(parents=True, exist_ok=True)
    (private / "tree.json").write_text(json.dumps({"path": str(root)}) + "\n")  # which tree this copy is of
    serve_cfg = ServeConfig(host=cfg.host, port=cfg.port, data_dir=private, log_requests=cfg.log_requests,
                            dashboard={"poll_seconds": cfg.poll_seconds})
    st = ServerState(serve_cfg)
    try:
        key = _importer_key(st, private)
        st.trust_loopback(NAMESPACE, key)
        return _serve(st, cfg, root, private, key)
    finally:
        st.close()


def _check_port(host: str, port: int) -> None:
    """A port in use is one clear line (uvicorn would log a bind error and exit)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is in use (another ml-dash show?)",
                                  hint="pass --port 0 for any free port, or --port N") from None
            raise ConfigError(f"cannot bind {host}:{port}: {exc.strerror}",
                              hint="pass another --port, or --host 127.0.0.1") from None


def _importer_key(st: Any, private: Path) -> str:
    """The API key of the importer (namespace ``local``), kept in the private directory (0600) so
    that restarts reuse it."""
    from ml_dash.api.auth import hash_api_key

    path = private / KEY_FILE
    try:
        key = str(json.loads(path.read_text())["key"])
        if st.store.namespace_for_key(hash_api_key(key)) is not None:
            return key
    except (OSError, ValueError, KeyError, TypeError):
        pass
    key = "mld_" + secrets.token_urlsafe(32)
    st.store.create_api_key(f"show-importer-{secrets.token_hex(4)}", NAMESPACE, hash_api_key(key))
    path.write_text(json.dumps({"key": key}))
    path.chmod(0o600)
    return key


def _serve(st: Any, cfg: Any, root: Path, private: Path, key: str) -> int:
    import uvicorn

    from ml_dash.server.app import create_app

    importer = _Importer()  # started now, so its imports overlap the server's start-up

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if not self.started:
                return
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{port}/"
            print(f"ml-dash show: {url}", flush=True)
            print(f"showing {root} (read-only; private copy in {private})", flush=True)
            print(f"ml-dash server listening on http://{shown}:{port} (namespace {NAMESPACE}, no login on "
                  "loopback)", flush=True)
            importer.begin({"url": url, "key": key, "root": str(root), "private": str(private),
                            "poll_seconds": cfg.poll_seconds, "batch": cfg.batch_size})
            if cfg.open_browser:
                threading.Thread(target=_open_browser, args=(url,), daemon=True).start()

        async def shutdown(self, sockets: Any = None) -> None:
            importer.stop()  # no new requests from the importer while in-flight ones finish
            await super().shutdown(sockets)

    config = uvicorn.Config(create_app(st), host=st.cfg.host, port=st.cfg.port, log_level="warning",
                            timeout_graceful_shutdown=10, access_log=False)
    server = Server(config)
    try:
        server.run()  # SIGINT/SIGTERM: stop accepting, finish in-flight requests, then return
    finally:
        importer.stop()
        importer.join(timeout=15)
    return 0 if server.started else 1


class _Importer:
    """The importer (:mod:`ml_dash.server.mirror`) as a child process: the server and the importer
    each get a core instead of sharing one GIL. Its stderr is ours (show's log); its stdout lines
    are printed by us; it stops when we stop it, and by itself when we are gone (its stdin closes)."""

    def __init__(self) -> None:
        self.stopping = False
        self.proc = subprocess.Popen([sys.executable, "-m", "ml_dash.server.mirror"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self._relay: threading.Thread | None = None

    def begin(self, settings: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(settings).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            print(f"ml-dash show: the importer did not start ({exc})", file=sys.stderr, flush=True)
        self._relay = threading.Thread(target=self._relay_output, name="ml-dash-show-importer", daemon=True)
        self._relay.start()

    def _relay_output(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            sys.stdout.write(line.decode(errors="replace"))
            sys.stdout.flush()
        code = self.proc.wait()
        if code and not self.stopping:
            print(f"ml-dash show: the importer stopped (exit status {code}); the dashboard keeps what was "
                  "imported", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self.stopping = True
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.terminate()

    def join(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print("ml-dash show: the importer did not stop in time; killed (it resumes where it was)",
                  file=sys.stderr, flush=True)
            self.proc.kill()
            self.proc.wait()
        if self._relay is not None:
            self._relay.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _open_browser(url: str) -> None:
    import webbrowser

    try:
        webbrowser.open(url)
    except Exception as exc:  # noqa: BLE001 - no browser is not an error: the URL is printed
        print(f"(could not open a browser: {exc}; open {url})", file=sys.stderr, flush=True)
