"""``ml-dash serve``: the server (SQLite + blob directory by default), and its API keys.

    ml-dash serve [--host 127.0.0.1] [--port 8000] [--db URL] [--blobs URL] [--data-dir DIR]
    ml-dash serve token create NAME [--namespace NS]   # prints the key once; stored hashed
    ml-dash serve token list
    ml-dash serve token revoke NAME
    ml-dash serve backup DEST [--with-blobs]          # online backup of the metadata (+ blob manifest)
    ml-dash serve restore SRC [--verify-only]         # into an empty database; checks the blobs
    ml-dash serve compact                             # seal full metric chunks, archive old log lines now
    ml-dash serve fsck                                # every sealed chunk has its object, and back (exit 1 if not)

At start it prints ``dashboard: http://HOST:PORT/?token=...``: the server owner's login to the
dashboard (every namespace); others sign in there with their API key.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Sequence
from typing import Any

from ml_dash.cli.configured import parse, print_help, resolve_parsed
from ml_dash.cli.console import print_table
from ml_dash.errors import ConfigError, MLDashError

DESCRIPTION = ("Run the ml-dash server: the REST API of the ml-dash client and the web dashboard (open the URL "
               "it prints), with SQLite and a blob directory by default, or PostgreSQL and S3 by URL. Manage API "
               "keys with `ml-dash serve token`.")
USAGE = ("[--host H] [--port P] [--db URL] [--blobs URL] [--data-dir DIR] [key=value ...] | token create|list|revoke"
         " | backup DEST | restore SRC | compact | fsck")


def _state(argv: Sequence[str]) -> Any:
    parsed = parse("serve", "ml-dash serve", argv)
    if parsed.help:
        print_help("serve", "ml-dash serve", DESCRIPTION, USAGE)
        return None
    try:
        from ml_dash.server.state import ServerState
    except ImportError as exc:  # fastapi/uvicorn are the `server` extra
        raise MLDashError(f"the server needs extra packages ({exc.name} is missing)",
                          hint="pip install 'ml-dash[server]'") from None
    return ServerState(resolve_parsed("serve", parsed).config)


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if args[:1] == ["token"]:
        return _token(args[1:])
    if args[:1] in (["backup"], ["restore"]):
        from ml_dash.server import backup

        return backup.main(args[0], args[1:], _state)
    if args[:1] in (["compact"], ["fsck"]):
        return _tiers(args[0], args[1:])
    st = _state(args)
    if st is None:
        return 0
    try:
        return _serve(st)
    finally:
        st.close()


def _tiers(action: str, argv: Sequence[str]) -> int:
    """``compact``: seal every full chunk and sweep old orphans; ``fsck``: check both tiers agree."""
    st = _state(argv)
    if st is None:
        return 0
    try:
        if action == "fsck":
            report = st.tiering.fsck()
            for line in report.lines():
                print(line)
            return 0 if report.clean else 1
        sealed = st.tiering.seal_due()
        archived = st.tiering.archive_due()
        swept = st.tiering.sweep()
        sizes = st.store.tier_sizes()
        print(f"sealed {sealed} chunk(s); archived {archived} log segment(s); removed {len(swept)} orphan object(s) "
              f"older than {st.cfg.tiering.orphan_grace:g} s")
        print(f"database: {sizes['database_points']:,} points in {sizes['database_rows']:,} rows; blob store: "
              f"{sizes['sealed_points']:,} points in {sizes['sealed_rows']:,} sealed chunks")
        return 0
    finally:
        st.close()


def dashboard_url(host: str, port: int, token: str) -> str:
    """The owner's login URL (the Jupyter convention). A server bound to every address is
    opened through loopback; IPv6 addresses go in brackets."""
    from urllib.parse import quote

    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={quote(token, safe='')}"


def _serve(st: Any) -> int:
    import uvicorn

    from ml_dash.server.app import create_app

    def announce(host: str, port: int) -> None:
        where = f"db {st.db_url.split('@')[-1]}, blobs {st.blobs_url}"
        legacy = "accepted" if st.legacy_tokens else "refused"
        workers = f"; {st.cfg.workers} worker processes" if st.cfg.workers > 1 else ""
        # Before "listening on": scripts that wait for that line have read this one too
        # (and those written for servers without a dashboard need not know of it).
        shown = dashboard_url(host, port, st.owner_token) if st.cfg.dashboard.enabled else \
            "disabled (serve.dashboard.enabled=false)"
        print(f"dashboard: {shown}", flush=True)
        print(f"ml-dash server listening on http://{host}:{port} ({where}; 0.5.x username tokens {legacy}{workers})",
              flush=True)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                announce(*self.servers[0].sockets[0].getsockname()[:2])

    if st.cfg.workers > 1:
        return _serve_workers(st, announce)
    config = uvicorn.Config(create_app(st), host=st.cfg.host, port=st.cfg.port, log_level="warning",
                            timeout_graceful_shutdown=30, access_log=False)
    server = Server(config)
    server.run()  # SIGINT/SIGTERM: stop accepting, finish in-flight requests, then return
    return 0


def _serve_workers(st: Any, announce: Any) -> int:
    """``--workers N``: this process binds the port (after migrating the database, once) and
    supervises N worker processes that accept on it (uvicorn's supervisor: a worker that dies
    is replaced; SIGINT/SIGTERM stop them gracefully)."""
    import inspect
    import os

    import uvicorn
    from pydantic import SecretStr
    from uvicorn.supervisors import Multiprocess

    from ml_dash.server.worker import ENV, encode_settings

    # The owner's dashboard token is this process's (printed below), the same in every worker.
    dashboard = st.cfg.dashboard.model_copy(update={"owner_token": SecretStr(st.owner_token)})
    os.environ[ENV] = encode_settings(st.cfg.model_copy(update={"dashboard": dashboard}))
    config = uvicorn.Config("ml_dash.server.worker:create", factory=True, host=st.cfg.host, port=st.cfg.port,
                            workers=st.cfg.workers, log_level="warning", timeout_graceful_shutdown=30,
                            access_log=False)
    sock = config.bind_socket()
    sock.listen(config.backlog)  # connections queue from now on, while the workers start (not refused)
    announce(*sock.getsockname()[:2])
    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.50 took the worker's target
        Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock]).run()  # type: ignore[call-arg]
    else:
        Multiprocess(config, sockets=[sock]).run()
    return 0


def _token(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print("usage: ml-dash serve token create NAME [--namespace NS] | list | revoke NAME  [server settings]")
        return 0
    action, rest = args[0], args[1:]
    name = None
    if action in ("create", "revoke"):
        if not rest or rest[0].startswith("-") or "=" in rest[0]:
            raise ConfigError(f"token {action} needs a NAME", hint=f"ml-dash serve token {action} alice-laptop")
        name, rest = rest[0], rest[1:]
    namespace = name
    if "--namespace" in rest:
        i = rest.index("--namespace")
        if i + 1 >= len(rest):
            raise ConfigError("--namespace needs a value",
                              hint="e.g. ml-dash serve token create alice-laptop --namespace alice")
        namespace, rest = rest[i + 1], rest[:i] + rest[i + 2:]
    st = _state(rest)
    if st is None:
        return 0
    try:
        from ml_dash.api.auth import SLUG, hash_api_key

        if action == "create":
            assert name is not None and namespace is not None
            if not SLUG.match(namespace):
                raise ConfigError(f"namespace {namespace!r} is not a valid name", hint="letters, digits, . _ -")
            key = "mld_" + secrets.token_urlsafe(32)
            st.store.create_api_key(name, namespace, hash_api_key(key))
            print(key)
            print(f"API key {name!r} for namespace {namespace!r} created; it is shown only once.", file=sys.stderr)
            return 0
        if action == "list":
            rows = st.store.list_api_keys()
            print_table(("name", "namespace", "created", "revoked"),
                        [(r["name"], r["namespace"], r["created_at"], r["revoked_at"] or "-") for r in rows])
            return 0
        if action == "revoke":
            if not st.store.revoke_api_key(name):
                raise MLDashError(f"no active API key named {name!r}", hint="see: ml-dash serve token list")
            print(f"API key {name!r} revoked")
            return 0
        raise ConfigError(f"unknown token action {action!r}", hint="create, list or revoke")
    finally:
        st.close()
