"""``exp.log(...)``: the traditional call and the fluent ``exp.log(metadata=...).warn(...)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_dash.sdk.experiment import Experiment

__all__ = ["LogBuilder"]


class LogBuilder:
    """Returned by ``exp.log()`` without a message; the level method writes the line."""

    def __init__(self, experiment: Experiment, metadata: dict[str, Any] | None) -> None:
        self._experiment = experiment
        self._metadata = metadata

    def _write(self, level: str, message: str, extra: dict[str, Any]) -> None:
        merged = {**(self._metadata or {}), **extra}
        self._experiment._write_log(message, level, merged or None)

    def info(self, message: str, **metadata: Any) -> None:
        self._write("info", message, metadata)

    def warn(self, message: str, **metadata: Any) -> None:
        self._write("warn", message, metadata)

    def error(self, message: str, **metadata: Any) -> None:
        self._write("error", message, metadata)

    def debug(self, message: str, **metadata: Any) -> None:
        self._write("debug", message, metadata)

    def fatal(self, message: str, **metadata: Any) -> None:
        self._write("fatal", message, metadata)
