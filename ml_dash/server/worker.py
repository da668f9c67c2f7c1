"""The app of one worker process of ``ml-dash serve --workers N``.

The parent resolves the configuration once (layers, profiles, flags), migrates the database,
binds the port and passes the resolved settings to its workers in the environment; each worker
opens its own connections and store (its own node number for ids). Everything that must agree
between processes lives in the database: API keys, sessions, the shared secret; the owner's
dashboard token is the parent's (set in the settings it hands down).
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import SecretStr

__all__ = ["ENV", "create", "encode_settings"]

ENV = "_ML_DASH_SERVE_WORKER_SETTINGS"  # not ML_DASH_*: not a setting of any command's environment layer


def encode_settings(cfg: Any) -> str:
    """The resolved :class:`ServeConfig` as JSON, secrets included (for the workers only)."""

    def plain(value: Any) -> Any:
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

    return json.dumps(cfg.model_dump(), default=plain)


def create() -> Any:
    """uvicorn's app factory in a worker: the settings from the parent, a state of its own."""
    from ml_dash.config.models import ServeConfig
    from ml_dash.server.app import create_app
    from ml_dash.server.state import ServerState

    cfg = ServeConfig.model_validate(json.loads(os.environ[ENV]))
    return create_app(ServerState(cfg))
