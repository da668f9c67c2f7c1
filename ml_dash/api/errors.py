"""Error codes that cross the wire, and their HTTP statuses (one table, both sides)."""

from __future__ import annotations

from typing import Any

from ml_dash.errors import ApiError

__all__ = ["CODE_TO_STATUS", "ServerError", "status_for"]

CODE_TO_STATUS = {
    "bad_request": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "payload_too_large": 413,
    "invalid": 422,
    "checksum_mismatch": 422,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
}


def status_for(code: str) -> int:
    return CODE_TO_STATUS.get(code, 500)


class ServerError(ApiError):
    """Raised inside the server; rendered as ``{"error": {code, message, hint, **details}}``.

    ``details``: extra fields of the error object (a ``.dashrc`` error's ``line`` and ``key``);
    they never replace code, message or hint."""

    def __init__(self, code: str, message: str, hint: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, status=status_for(code), hint=hint)
        self.code = code
        self.details = dict(details or {})
