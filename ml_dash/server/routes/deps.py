"""Dependencies every route uses: the server state and the authenticated caller."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request

from ml_dash.api.errors import ServerError
from ml_dash.server.state import Principal, ServerState, loopback_request
from ml_dash.server.ui.session import COOKIE, CSRF_HEADER, SAFE_METHODS, cookie_principal

# What a read-only caller may POST: reads that take a body (the batch series, GraphQL queries) and
# the .dashrc check that stores nothing.
READ_POSTS = ("/series", "/graphql", "/ui/dashrc/validate")
READ_ONLY_HINT = ("ml-dash show mirrors a local tree, which is the source of truth: change the tree with the "
                  "ml-dash SDK (it shows up here within seconds), or upload it to an ml-dash serve to edit it "
                  "there (ml-dash upload PATH --remote URL)")


T = TypeVar("T")


def state(request: Request) -> ServerState:
    return request.app.state.ml_dash  # type: ignore[no-any-return]


async def in_ingest_thread(st: ServerState, call: Callable[..., T], *args: Any) -> T:
    """Run an append in a worker thread, at most ``serve.limits.ingest_threads`` at once per process.
    Appends are CPU-bound Python: a hundred of them in threads at once only share the GIL (and
    the database's write lock) more finely, while a read that arrives among them waits for every
    one. Queued in the event loop instead, they cost nothing, and reads keep their own threads."""
    import asyncio

    import anyio.to_thread

    # One limiter per event loop, made in it (anyio's primitives belong to their loop): a server
    # process has one loop; an in-process test client may start one per request.
    loop = asyncio.get_running_loop()
    limiter = st.ingest_limiters.get(loop)
    if limiter is None:
        limiter = st.ingest_limiters[loop] = anyio.CapacityLimiter(st.cfg.limits.ingest_threads)
    return await anyio.to_thread.run_sync(call, *args, limiter=limiter)


def trusted_request(request: Request) -> bool:
    """A request `ml-dash show` answers without a login: its server trusts loopback, and the
    request comes from this machine, addressed to it."""
    st = state(request)
    return st.trusted is not None and loopback_request(request.client.host if request.client else None,
                                                       request.headers.get("host"))


def principal(request: Request) -> Principal:
    """The bearer token's namespace, or (without one) the dashboard session cookie's caller; on a
    trusted loopback server (ml-dash show) any loopback caller, read-only unless it is the importer."""
    st = state(request)
    authorization = request.headers.get("authorization")
    if st.trusted is not None and trusted_request(request):
        found = st.trusted.principal(authorization)
        if found.read_only:
            _read_only(request, authorization is None)
    elif authorization is None and st.cfg.dashboard.enabled and request.cookies.get(COOKIE):
        found = cookie_principal(request)
    else:
        found = st.authenticate(authorization)
    request.state.namespace = found.slug  # for the request log
    return found


def _read_only(request: Request, ambient: bool) -> None:
    if request.method in SAFE_METHODS:
        return
    if request.url.path not in READ_POSTS:
        raise ServerError("forbidden", f"{request.method} {request.url.path}: ml-dash show is read-only",
                          hint=READ_ONLY_HINT)
    st = state(request)
    assert st.trusted is not None
    # Without a bearer token the caller is "whoever is on this machine": a page's script must
    # prove it read GET /ui/session (the browser lets only same-origin pages do that).
    sent = request.headers.get(CSRF_HEADER, "")
    if ambient and not hmac.compare_digest(sent.encode(), st.trusted.csrf.encode()):
        raise ServerError("forbidden", f"missing or wrong {CSRF_HEADER} header",
                          hint=f"send the csrf value of GET /ui/session in the {CSRF_HEADER} header "
                               "(reload the dashboard page)")
