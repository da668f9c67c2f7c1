"""Dependencies every route uses: the server state and the authenticated caller."""

from __future__ import annotations

from fastapi import Request

from ml_dash.server.state import Principal, ServerState
from ml_dash.server.ui.session import COOKIE, cookie_principal


def state(request: Request) -> ServerState:
    return request.app.state.ml_dash  # type: ignore[no-any-return]


def principal(request: Request) -> Principal:
    """The bearer token's namespace, or (without one) the dashboard session cookie's caller."""
    st = state(request)
    authorization = request.headers.get("authorization")
    if authorization is None and st.cfg.dashboard.enabled and request.cookies.get(COOKIE):
        found = cookie_principal(request)
    else:
        found = st.authenticate(authorization)
    request.state.namespace = found.slug  # for the request log
    return found
