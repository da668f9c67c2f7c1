"""Dashboard logins: the owner's printed token or an API key, exchanged for a session cookie.

A session is a row of ``ui_sessions`` (random id, CSRF token, expiry; logout and expiry hold on
every server process sharing the database) named by an HttpOnly, SameSite=Strict cookie
``<id>.<HMAC of the id>``: a forged or altered cookie is refused before the database is asked.
Requests authenticated by the cookie that change something carry ``X-CSRF-Token``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ml_dash.api.auth import hash_api_key
from ml_dash.api.errors import ServerError
from ml_dash.server.state import OWNER, Principal, ServerState, loopback_request
from ml_dash.server.storage import browse as queries

__all__ = ["COOKIE", "CSRF_HEADER", "Session", "cookie_principal", "login_owner", "router", "set_cookie"]

COOKIE = "ml_dash_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOGIN_AGAIN = "log in again: open the URL `ml-dash serve` printed, or sign in with an API key"
# Failed logins: each answers after FAILED_DELAY seconds, and more than MAX_FAILURES in
# FAILURE_WINDOW seconds (per process) refuse every login attempt for a while. Tokens and keys
# are too long to guess; this keeps a scripted guesser from even trying quickly.
FAILED_DELAY = 0.2
MAX_FAILURES = 20
FAILURE_WINDOW = 10.0
_failures: deque[float] = deque()

router = APIRouter(prefix="/ui", include_in_schema=False)


@dataclass(frozen=True)
class Session:
    id: str
    namespace_id: int | None
    slug: str | None
    csrf: str
    expires_at: str

    @property
    def owner(self) -> bool:
        return self.namespace_id is None

    def principal(self) -> Principal:
        if self.namespace_id is None:
            return OWNER
        assert self.slug is not None
        return Principal(int(self.namespace_id), self.slug)


def _sign(st: ServerState, session_id: str) -> str:
    return hmac.new(st.secret.encode(), session_id.encode(), hashlib.sha256).hexdigest()


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def create(st: ServerState, namespace_id: int | None) -> tuple[str, Session]:
    """A new session row; returns the cookie value and the session."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = _iso(datetime.now(timezone.utc) + timedelta(hours=st.cfg.dashboard.session_hours))
    queries.create_session(st.store, session_id, namespace_id, csrf, expires)
    row = queries.session_row(st.store, session_id)
    assert row is not None
    return f"{session_id}.{_sign(st, session_id)}", Session(session_id, namespace_id, row["slug"], csrf, expires)


def resolve(st: ServerState, cookie: str | None) -> Session | None:
    """The live session the cookie names; None when absent, forged, unknown, revoked or expired."""
    if not cookie or cookie.count(".") != 1:
        return None
    session_id, signature = cookie.split(".")
    if not hmac.compare_digest(signature.encode(), _sign(st, session_id).encode()):
        return None
    row = queries.session_row(st.store, session_id)
    if row is None or row["revoked_at"] is not None:
        return None
    try:
        if _parse_time(row["expires_at"]) <= datetime.now(timezone.utc):
            return None
    except ValueError:
        return None
    ns = row["namespace_id"]
    return Session(session_id, None if ns is None else int(ns), row["slug"], row["csrf"], row["expires_at"])


def request_session(request: Request) -> Session | None:
    st: ServerState = request.app.state.ml_dash
    if not st.cfg.dashboard.enabled:
        return None
    return resolve(st, request.cookies.get(COOKIE))


def cookie_principal(request: Request) -> Principal:
    """The caller of a request that came with the session cookie (and no bearer token)."""
    found = request_session(request)
    if found is None:
        raise ServerError("unauthenticated", "the dashboard session is missing, expired or was logged out",
                          hint=LOGIN_AGAIN)
    check_csrf(request, found)
    if found.owner and request.method not in SAFE_METHODS and not _owner_may_post(request.url.path):
        # The owner has no namespace of its own to write into; uploads use API keys.
        raise ServerError("forbidden", "the server owner's dashboard session only reads the REST API",
                          hint="write with an API key (ml-dash serve token create NAME)")
    request.state.session = found
    return found.principal()


def _owner_may_post(path: str) -> bool:
    return path.startswith("/ui/") or path == "/series"  # dashboard routes; the batch series read


def check_csrf(request: Request, found: Session) -> None:
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), found.csrf.encode()):
        raise ServerError("forbidden", f"missing or wrong {CSRF_HEADER} header",
                          hint=f"send the csrf value of GET /ui/session in the {CSRF_HEADER} header "
                               "(reload the dashboard page)")


def set_cookie(response: Response, request: Request, value: str, hours: float) -> None:
    response.set_cookie(COOKIE, value, max_age=int(hours * 3600), path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")


def document(st: ServerState, found: Session) -> dict[str, Any]:
    if found.owner:
        names = [n["slug"] for n in queries.namespaces(st.store)]
    else:
        names = [found.slug]
    return {"owner": found.owner, "namespace": found.slug, "namespaces": names, "csrf": found.csrf,
            "pollSeconds": st.cfg.dashboard.poll_seconds, "maxSeriesPoints": st.cfg.dashboard.max_series_points,
            "expiresAt": found.expires_at, "readOnly": False}


def trusted_document(st: ServerState) -> dict[str, Any]:
    """``ml-dash show``'s session: no login, no cookie, no expiry; namespace ``local``, read-only."""
    trusted = st.trusted
    assert trusted is not None
    return {"owner": False, "namespace": trusted.namespace, "namespaces": [trusted.namespace], "csrf": trusted.csrf,
            "pollSeconds": st.cfg.dashboard.poll_seconds, "maxSeriesPoints": st.cfg.dashboard.max_series_points,
            "expiresAt": None, "readOnly": True}


# --- failed logins ------------------------------------------------------------------------------------------
def _throttled() -> bool:
    now = time.monotonic()
    while _failures and _failures[0] < now - FAILURE_WINDOW:
        _failures.popleft()
    return len(_failures) >= MAX_FAILURES


async def _failed() -> None:
    _failures.append(time.monotonic())
    await asyncio.sleep(FAILED_DELAY)


def _refuse_if_throttled() -> None:
    if _throttled():
        raise ServerError("rate_limited", "too many failed dashboard logins; try again in a few seconds",
                          hint="use the exact URL `ml-dash serve` printed, or a valid API key")


async def login_owner(st: ServerState, token: str) -> tuple[str, Session] | None:
    """A new owner session for the right token; None (after the failure delay) otherwise."""
    _refuse_if_throttled()
    if not st.owner_token_matches(token):
        await _failed()
        return None
    return await run_in_threadpool(create, st, None)


# --- routes -------------------------------------------------------------------------------------------------
def _state(request: Request) -> ServerState:
    return request.app.state.ml_dash  # type: ignore[no-any-return]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apiKey: str | None = Field(None, max_length=512)
    token: str | None = Field(None, max_length=512)


@router.post("/login")
async def login(body: LoginIn, request: Request, st: ServerState = Depends(_state)) -> JSONResponse:
    if (body.apiKey is None) == (body.token is None):
        raise ServerError("invalid", 'send exactly one of "apiKey" and "token"',
                          hint='POST {"apiKey": "mld_..."} or {"token": "<the token of the printed URL>"}')
    made: tuple[str, Session] | None
    if body.token is not None:
        made = await login_owner(st, body.token)
    else:
        _refuse_if_throttled()
        ns = await run_in_threadpool(st.store.namespace_for_key, hash_api_key(body.apiKey or ""))
        made = None if ns is None else await run_in_threadpool(create, st, int(ns["id"]))
        if made is None:
            await _failed()
    if made is None:
        raise ServerError("unauthenticated", "unknown or revoked API key" if body.apiKey is not None
                          else "wrong dashboard token",
                          hint="create an API key on the server (ml-dash serve token create NAME), or open the "
                               "URL `ml-dash serve` printed")
    cookie, found = made
    response = JSONResponse(await run_in_threadpool(document, st, found))
    set_cookie(response, request, cookie, st.cfg.dashboard.session_hours)
    return response


@router.post("/logout")
def logout(request: Request, st: ServerState = Depends(_state)) -> JSONResponse:
    found = request_session(request)
    if found is not None:
        check_csrf(request, found)
        queries.revoke_session(st.store, found.id)
    response = JSONResponse({"loggedOut": True})
    clear_cookie(response, request)
    return response


@router.get("/session")
def session(request: Request, optional: bool = False, st: ServerState = Depends(_state)) -> dict[str, Any]:
    """The session document; 401 when not logged in, or with ``optional=1`` (the page's first
    question: a browser logs every 401 it fetches as a console error) ``{"loggedIn": false}``."""
    if st.trusted is not None and loopback_request(request.client.host if request.client else None,
                                                   request.headers.get("host")):
        return trusted_document(st)
    found = request_session(request)
    if found is None:
        if optional:
            return {"loggedIn": False}
        raise ServerError("unauthenticated", "not logged in to the dashboard", hint=LOGIN_AGAIN)
    return document(st, found)
