"""From a client command's configuration to a connected :class:`ApiClient`: which server,
which token, which retry policy. Shared by upload, download and list."""

from __future__ import annotations

from typing import Any

from ml_dash.api.client import ApiClient, RetryPolicy
from ml_dash.errors import ConfigError

__all__ = ["client_for", "require_server", "token_for"]


def require_server(cfg: Any) -> None:
    """The seed's two precondition errors, in its order: remote first, then credentials."""
    if not cfg.remote:
        raise ConfigError("--remote URL is required (or set in config)",
                          hint="pass --remote http://host:8000, set ML_DASH_REMOTE, or remote_url in "
                               "~/.ml-dash/config.json")
    if cfg.api_key is None and not cfg.username:
        raise ConfigError("--api-key or --username is required (or set in config)",
                          hint="create a key on the server with `ml-dash serve token create NAME`, then set "
                               "ML_DASH_API_KEY or api_key in ~/.ml-dash/config.json")


def token_for(cfg: Any, announce: bool = False) -> str:
    """The API key, or else the 0.5.x username token (an api_key always wins)."""
    if cfg.api_key is not None:
        return str(cfg.api_key.get_secret_value())
    from ml_dash.api.auth import make_username_token

    if announce:
        print(f"Generating API key from username: {cfg.username}")
    return make_username_token(cfg.username)


def client_for(cfg: Any, token: str | None = None, connections: int = 4, **retry: Any) -> ApiClient:
    """A client for ``cfg.remote`` with ``cfg.retry`` (``retry`` overrides single fields)."""
    require_server(cfg)
    policy = RetryPolicy(**{"attempts": cfg.retry.attempts, "backoff": cfg.retry.backoff,
                            "max_backoff": cfg.retry.max_backoff, "timeout": cfg.retry.timeout, **retry})
    return ApiClient(cfg.remote, token or token_for(cfg), retry=policy, max_connections=connections + 2)
