"""The built dashboard page: ``/`` (``dist/index.html``, and the printed URL's token login) and
``/assets/*``. Everything is served from the package: no CDN, the page works air-gapped."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from ml_dash.api.errors import ServerError
from ml_dash.server.state import ServerState
from ml_dash.server.ui.session import login_owner, set_cookie

__all__ = ["DIST_DIR", "SECURITY_HEADERS", "make_router"]

DIST_DIR = Path(__file__).resolve().parent / "dist"  # built by scripts/setup.sh (esbuild); tests pass their own

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                               "style-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8", ".json": "application/json",
    ".map": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
    ".woff2": "font/woff2", ".woff": "font/woff", ".txt": "text/plain; charset=utf-8",
}
# Assets are named app.js / app.css (not content-hashed): the browser revalidates them (a 304
# with the ETag) so an upgraded server never runs stale code. Requests that carry a version
# (``?v=...``) are immutable and cached for a year.
REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ml-dash: dashboard not built</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem}}
code{{background:#8882;padding:.1rem .3rem;border-radius:4px}}</style></head>
<body><h1>The dashboard is not built</h1>
<p>This ml-dash server runs (the REST API works), but the dashboard's page was not found in
<code>{where}</code>.</p>
<p>Build it from the repository with <code>bash scripts/setup.sh</code>. It needs node and npm
(on Debian/Ubuntu: <code>apt-get install nodejs npm</code>), then restart <code>ml-dash serve</code>.
Installed wheels ship the page already built.</p></body></html>
"""


def _asset_path(root: Path, path: str) -> Path | None:
    """``root/path`` when it is a file inside ``root``; None for anything else (``..``, absolute paths,
    backslashes, NUL, symlinks out of the tree)."""
    parts = path.split("/")
    if not path or "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        return None
    try:
        base = root.resolve()
        target = (base / path).resolve()
    except (OSError, ValueError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def make_router(dist_dir: Path | None = None) -> APIRouter:
    dist = dist_dir or DIST_DIR
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index(request: Request, token: str | None = None) -> Response:
        st: ServerState = request.app.state.ml_dash
        if token is not None:
            return await _token_login(request, st, token)
        page = dist / "index.html"
        if not page.is_file():
            return HTMLResponse(NOT_BUILT.format(where=html.escape(str(dist))), status_code=503,
                                headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})
        return FileResponse(page, media_type="text/html; charset=utf-8",
                            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    @router.get("/assets/{path:path}")
    def asset(path: str, request: Request) -> Response:
        target = _asset_path(dist / "assets", path)
        if target is None:
            raise ServerError("not_found", f"no dashboard asset {path!r}",
                              hint="reload the dashboard page; rebuild it with bash scripts/setup.sh if this persists")
        media = CONTENT_TYPES.get(target.suffix.lower(), "application/octet-stream")
        info = target.stat()
        etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
        headers = {**SECURITY_HEADERS, "Cache-Control": IMMUTABLE if "v" in request.query_params else REVALIDATE,
                   "ETag": etag}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return FileResponse(target, media_type=media, headers=headers, stat_result=info)

    return router


async def _token_login(request: Request, st: ServerState, token: str) -> Response:
    """The printed URL: a valid owner token becomes a session cookie, and the token leaves the
    address bar (303 to ``/``); a wrong one lands on the login page."""
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    made = await login_owner(st, token)
    if made is None:
        return RedirectResponse("/#/login?error=bad-token", status_code=303, headers=headers)
    response = RedirectResponse("/", status_code=303, headers=headers)
    set_cookie(response, request, made[0], st.cfg.dashboard.session_hours)
    return response
