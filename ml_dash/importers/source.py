"""What every source reader hands the importer: runs, and per run a stream of records.

A reader (``tensorboard_source``, ``mlflow_source``, ``wandb_source``) walks its source with the
source project's own library. ``runs(source)`` yields a :class:`SourceRun` per run (or a
:class:`Problem` for a run it cannot read at all), and each run yields the records below **in a
stable order**: the
importer resumes a stream by skipping as many records as the tree already holds for it (metric
points per metric name, log lines per run, files by prefix + filename + checksum), so the same
source read twice must give the same sequence, and a run that grew must only add records at the
end of each stream.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ml_dash.errors import MLDashError

__all__ = ["FileItem", "LogLine", "MissingExtraError", "Point", "Problem", "Record", "SourceRun", "require"]


class MissingExtraError(MLDashError):
    """A source's reader library is not installed."""

    exit_code = 2


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import the source's own library, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"reading {what} needs the {module.split('.')[0]!r} package ({exc})",
                                hint=f"pip install 'ml-dash[{extra}]'") from None


@dataclass(slots=True)
class Point:
    """One metric point: ``data`` is the point as the SDK would append it, e.g.
    ``{"value": 0.5, "step": 3, "timestamp": 1732981234.5}`` (timestamp: seconds since the epoch)."""

    metric: str
    data: dict[str, Any]


@dataclass(slots=True)
class LogLine:
    message: str
    level: str = "info"  # info | warn | error | debug | fatal
    timestamp: str | None = None  # ISO 8601 UTC with "Z", e.g. "2026-11-30T17:30:00.123456Z"
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class FileItem:
    """A file to keep with the run: from ``path`` on disk, or ``data`` in memory (exactly one)."""

    prefix: str  # e.g. "/artifacts/model"; "/" for the top
    filename: str
    path: Path | None = None
    data: bytes | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class Problem:
    """Bad input the reader skipped: where (a file) and the position in it (byte, record, line)."""

    where: str
    position: str
    message: str


Record = Point | LogLine | FileItem | Problem


@dataclass
class SourceRun:
    """One run of the source, to become one ml-dash experiment."""

    key: str  # stable identity in the source (relative run dir, run id)
    name: str  # experiment name
    where: str  # for messages: the run's directory or database
    project: str | None = None  # the source's own grouping (MLflow experiment, W&B project), if any
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # JSON-safe: source, status, times, ...

    def params(self) -> dict[str, Any]:
        """The run's parameters (nested dicts are flattened with "." as the SDK does). Asked for after
        :meth:`records` has been read through, so a reader may collect them on the way."""
        return {}

    def records(self) -> Iterator[Record]:
        """Metric points, log lines, files and problems, streamed in a stable order."""
        return iter(())
