"""ml-dash: experiment tracking that works offline and uploads later.

The public API is the SDK (``Experiment``), the exception tree and ``__version__``.
Names are imported lazily so that ``ml-dash --help`` does not pay for pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.6.0"

__all__ = [
    "ApiError",
    "ConfigError",
    "Experiment",
    "ExperimentStateError",
    "InvalidInputError",
    "LocalStorage",
    "MLDashError",
    "RecordError",
    "RemoteClient",
    "RunManager",
    "StorageError",
    "__version__",
]

_LAZY = {
    "Experiment": "ml_dash.sdk.experiment",
    "RunManager": "ml_dash.sdk.experiment",
    "ApiError": "ml_dash.errors",
    "ConfigError": "ml_dash.errors",
    "ExperimentStateError": "ml_dash.errors",
    "InvalidInputError": "ml_dash.errors",
    "MLDashError": "ml_dash.errors",
    "RecordError": "ml_dash.errors",
    "StorageError": "ml_dash.errors",
    # 0.5.8's low-level classes, as adapters over our backends (scripts written for 0.5.8 import them).
    "LocalStorage": "ml_dash.storage",
    "RemoteClient": "ml_dash.client",
}

if TYPE_CHECKING:
    from ml_dash.client import RemoteClient
    from ml_dash.errors import (
        ApiError,
        ConfigError,
        ExperimentStateError,
        InvalidInputError,
        MLDashError,
        RecordError,
        StorageError,
    )
    from ml_dash.sdk.experiment import Experiment, RunManager
    from ml_dash.storage import LocalStorage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ml_dash' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
