"""``logs/logs.jsonl``: one log line per JSON object, plus ``.log_sequence``."""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any

from pydantic import Field, field_validator

from ml_dash.errors import InvalidInputError
from ml_dash.records.base import Record
from ml_dash.records.jsonio import dumps_line

__all__ = ["LOG_LEVELS", "LogLine", "format_log_line", "log_line_tail", "normalize_level"]

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


def log_line_tail(timestamp: str, level: str, message: str, metadata: dict[str, Any] | None) -> str:
    """Everything of the 0.5.8 line after ``{"sequenceNumber": N``, with the newline.

    Built before the append lock is taken; under it only the sequence number is put in front.
    ``metadata`` is written only when non-empty, as 0.5.8 does.
    """
    # encode_basestring_ascii is what json.dumps does with a str, minus its call overhead.
    ts = encode_basestring_ascii(timestamp) if type(timestamp) is str else json.dumps(timestamp)
    lv = encode_basestring_ascii(level) if type(level) is str else json.dumps(level)
    msg = encode_basestring_ascii(message) if type(message) is str else json.dumps(message)
    if metadata:
        meta = dumps_line(metadata, "log metadata")  # jsonio's fast encoder, json.dumps's bytes
        return f', "timestamp": {ts}, "level": {lv}, "message": {msg}, "metadata": {meta}}}\n'
    return f', "timestamp": {ts}, "level": {lv}, "message": {msg}}}\n'


def format_log_line(seq: int, timestamp: str, level: str, message: str, metadata: dict[str, Any] | None) -> str:
    """The exact JSONL line 0.5.8 writes (``metadata`` only when non-empty), with newline."""
    return f'{{"sequenceNumber": {seq}{log_line_tail(timestamp, level, message, metadata)}'
