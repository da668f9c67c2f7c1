"""``create_app(state)``: the REST API of the ml-dash 0.5.8 client, plus health and resume.

Every route needs a bearer token (or the dashboard's session cookie) except ``/health`` and the
dashboard's page and login (``/``, ``/assets/*``, ``/ui/login``). Errors are always
``{"error": {"code", "message", "hint"}}`` with the status of ``api.errors``; a bad body
is a 422 naming the field, never a 500.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ml_dash import __version__
from ml_dash.api.errors import ServerError
from ml_dash.server.state import ServerState
from ml_dash.server.storage.tiers import Sealer

__all__ = ["create_app"]


RETRY_AFTER_SECONDS = 2


def _error(status: int, code: str, message: str, hint: str | None = None,
           details: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "hint": hint}
    body.update((k, v) for k, v in (details or {}).items() if k not in body)  # never replacing those three
    # 503: the database or blob store is away for now; clients (ours, and 0.5.8's retries) come back later.
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


class BodyLimit:
    """Refuse bodies over the limit with 413, from Content-Length or while they stream in."""

    def __init__(self, app: ASGIApp, json_limit: int, file_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.file_limit = file_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        is_file = scope["path"].endswith("/files")
        limit = self.file_limit + 1024 * 1024 if is_file else self.json_limit  # form fields ride along
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise ServerError("payload_too_large", f"request body larger than {limit} bytes",
                                  hint="send smaller batches (--batch-size) or raise limits.max_json_bytes on the server")
            return message

        await self.app(scope, counting, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = _error(413, "payload_too_large", f"request body larger than the server's limit of {limit} bytes",
                          "send smaller batches (--batch-size) or raise limits.max_json_bytes on the server")
        await response(scope, receive, send)


class RequestLog:
    """One JSON line per request on stderr: time, method, path, status, milliseconds, namespace and
    the process (``--workers``).

    Plain ASGI (not ``@app.middleware("http")``, whose BaseHTTPMiddleware runs every request in a
    task group and pipes the response through a memory stream: ~1 ms of each request's CPU)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S"), "method": scope["method"], "path": scope["path"],
                    "status": status, "ms": round((time.perf_counter() - start) * 1000, 1),
                    # set by the auth dependency on request.state, which Starlette keeps in scope["state"]
                    "namespace": (scope.get("state") or {}).get("namespace"), "pid": os.getpid()}
            # One write of the whole line: worker processes share this stream, and a line written in two
            # parts (text, then newline) could have another process's line land between them.
            sys.stderr.write(json.dumps(line) + "\n")
            sys.stderr.flush()


def _sealing(st: ServerState) -> Any:
    """The app's lifespan: the background sealing pass of this process (storage/tiers.py) while it serves."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sealer = Sealer(st.tiering, st.cfg.tiering.interval) if st.cfg.tiering.interval > 0 else None
        if sealer is not None:
            sealer.start()
        try:
            yield
        finally:
            if sealer is not None:
                sealer.stop()

    return lifespan


def create_app(st: ServerState, dist_dir: Path | None = None) -> FastAPI:
    """``dist_dir``: where the built dashboard page is (default: the package's ``ui/dist``; tests
    pass their own)."""
    from ml_dash.server.routes import dashrc, experiments, files, graphql, records, series

    app = FastAPI(title="ml-dash", version=__version__, docs_url=None, redoc_url=None, lifespan=_sealing(st),
                  description="The REST API of ml-dash (compatible with the ml-dash 0.5.8 client).")
    app.state.ml_dash = st
    # dashrc: always on (also with the dashboard off): `ml-dash upload`/`download` move .dashrc files through it
    for module in (experiments, series, records, files, graphql, dashrc):
        app.include_router(module.router)
    if st.cfg.dashboard.enabled:  # disabled: no page, no /ui routes, no session cookies (404, as any path)
        from ml_dash.server.routes import browse, compare
        from ml_dash.server.ui import session, static

        for router in (session.router, browse.router, compare.router, static.make_router(dist_dir)):
            app.include_router(router)

    @app.get("/health")
    def health() -> JSONResponse:
        """Each backend apart (a balancer's check: 503 takes this process out until both answer)."""
        checks = {"database": st.store.ping, "blobs": lambda: st.blobs.exists("0" * 64)}
        parts: dict[str, str] = {}
        for name, check in checks.items():
            try:
                check()
                parts[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure of a backend is reported, never raised
                parts[name] = f"unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        ok = all(v == "ok" for v in parts.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "version": __version__, **parts},
                            status_code=200 if ok else 503,
                            headers=None if ok else {"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.exception_handler(ServerError)
    async def server_error(request: Request, exc: ServerError) -> JSONResponse:
        return _error(exc.status or 500, exc.code, exc.message, exc.hint, exc.details)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, "invalid", f"{loc}: {first.get('msg')}" if loc else str(first.get("msg")),
                      "see the API reference in schemas/api/openapi.json")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "bad_request"}.get(exc.status_code, "bad_request")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        traceback.print_exception(exc, file=sys.stderr)
        return _error(500, "internal", "internal server error", "the server log has the details")

    if st.cfg.log_requests:
        app.add_middleware(RequestLog)
    app.add_middleware(BodyLimit, json_limit=st.cfg.limits.max_json_bytes, file_limit=st.cfg.limits.max_file_bytes)
    return app
