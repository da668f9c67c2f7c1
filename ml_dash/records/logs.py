"""``logs/logs.jsonl``: one log line per JSON object, plus ``.log_sequence``."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator

from ml_dash.errors import InvalidInputError
from ml_dash.records.base import Record
from ml_dash.records.jsonio import dumps_line

__all__ = ["LOG_LEVELS", "LogLine", "format_log_line", "normalize_level"]

LOG_LEVELS = ("info", "warn", "error", "debug", "fatal")


def normalize_level(level: str) -> str:
    """Case-insensitive level → stored lowercase form; anything else is refused."""
    low = level.lower() if isinstance(level, str) else level
    if low not in LOG_LEVELS:
        raise InvalidInputError(
            f"invalid log level {level!r}",
            hint=f"use one of: {', '.join(LOG_LEVELS)}",
        )
    return low


class LogLine(Record):
    """``{"sequenceNumber", "timestamp", "level", "message", ["metadata"]}``.

    Only ``message`` is required to upload a line (as in 0.5.8); a missing level
    means ``info``.
    """

    sequenceNumber: int | None = Field(None, ge=0)
    timestamp: str | None = None
    level: str = "info"
    message: str
    metadata: dict[str, Any] | None = None

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        low = v.lower()
        if low not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return low


def format_log_line(seq: int, timestamp: str, level: str, message: str, metadata: dict[str, Any] | None) -> str:
    """The exact JSONL line 0.5.8 writes (``metadata`` only when non-empty), with newline."""
    head = f'{{"sequenceNumber": {seq}, "timestamp": "{timestamp}", "level": "{level}", "message": '
    msg = json.dumps(message)
    if metadata:
        return f'{head}{msg}, "metadata": {dumps_line(metadata, "log metadata")}}}\n'
    return f"{head}{msg}}}\n"
