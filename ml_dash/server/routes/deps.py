"""Dependencies every route uses: the server state and the authenticated caller."""

from __future__ import annotations

from fastapi import Request

from ml_dash.server.state import Principal, ServerState


def state(request: Request) -> ServerState:
    return request.app.state.ml_dash  # type: ignore[no-any-return]


def principal(request: Request) -> Principal:
    found: Principal = state(request).authenticate(request.headers.get("authorization"))
    request.state.namespace = found.slug  # for the request log
    return found
