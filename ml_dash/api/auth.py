"""Bearer tokens: API keys, and the username tokens (HS256 JWT) of ml-dash 0.5.x.

0.5.x derived a token from a username and signed it with a secret built into every
copy of the client, so anyone can mint one for any name. Our server verifies them
with its own secret; the built-in one is accepted only when explicitly allowed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any

__all__ = ["LEGACY_SECRET", "hash_api_key", "legacy_user_id", "make_username_token", "verify_jwt"]

LEGACY_SECRET = "your-secret-key-change-this-in-production"  # ml-dash 0.5.x's built-in HS256 secret
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def legacy_user_id(username: str) -> str:
    """0.5.x: the first 10 digits of int(sha256(username)[:16], 16)."""
    return str(int(hashlib.sha256(username.encode()).hexdigest()[:16], 16))[:10]


def make_username_token(username: str, secret: str = LEGACY_SECRET, now: int | None = None) -> str:
    """The token 0.5.x's ``--username`` generates (claims in its order, 30 days)."""
    iat = int(time.time()) if now is None else now
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"userId": legacy_user_id(username), "userName": username, "iat": iat, "exp": iat + 2592000}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def verify_jwt(token: str, secrets: list[str]) -> dict[str, Any] | None:
    """The claims of an HS256 token signed with one of ``secrets`` and not expired, else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, json.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        return None
    signed = f"{parts[0]}.{parts[1]}".encode()
    if not any(hmac.compare_digest(hmac.new(s.encode(), signed, hashlib.sha256).digest(), signature) for s in secrets):
        return None
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and exp < time.time():
        return None
    return claims


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
