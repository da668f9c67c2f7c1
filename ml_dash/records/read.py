"""Reading records back: whole JSON files and streamed JSONL, each problem with file and line.

JSONL is read one line at a time (bounded memory however long the file), and a bad
line never stops the stream: the reader yields ``(line_number, record)`` or
``(line_number, Problem)`` and the caller decides (the SDK skips, the lenient
uploader skips and reports, the strict uploader refuses).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from ml_dash.errors import RecordError
from ml_dash.records.base import Record, describe_validation_error, type_name

__all__ = ["MAX_LINE_BYTES", "Problem", "iter_jsonl", "load_record", "parse_line"]

R = TypeVar("R", bound=Record)

# A line longer than this is reported, not parsed: one corrupted line must not take the
# reader's memory with it (a metric point is typically < 1 KiB).
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one line (or file) was not a valid record."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def parse_line(raw: bytes, model: type[R]) -> R | str:
    """One JSONL line → record, or the reason it is not one."""
    if not raw.strip():
        return "blank line"
    try:
        # pydantic-core parses and validates in one pass (3x faster than json.loads + validate,
        # NaN/Infinity accepted); the slow path below only runs to explain a bad line.
        return model.model_validate_json(raw)
    except ValidationError:
        pass
    try:
        value = json.loads(raw)
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return f"invalid JSON: {reason}"
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type_name(value)}"
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        return describe_validation_error(exc)


def iter_jsonl(path: Path, model: type[R]) -> Iterator[tuple[int, R | Problem]]:
    """Stream ``path`` as ``(line_number, record | Problem)``, 1-based line numbers."""
    shown = str(path)
    with open(path, "rb") as f:
        number = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                # Skip the rest of the oversized line without holding it.
                while raw and not raw.endswith(b"\n"):
                    raw = f.readline(MAX_LINE_BYTES)
                yield number, Problem(shown, number, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            result = parse_line(raw, model)
            if isinstance(result, str):
                if not raw.endswith(b"\n") and result.startswith("invalid JSON"):
                    result = "truncated last line (no newline at the end; the writer was probably killed)"
                yield number, Problem(shown, number, result)
            else:
                yield number, result


def load_record(path: Path, model: type[R]) -> R:
    """Read a whole JSON record file, raising :class:`RecordError` with file (and line)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecordError("file is missing", path=str(path),
                          hint="restore it from a copy, or remove the experiment directory if it is incomplete") from None
    except OSError as exc:
        raise RecordError(f"cannot be read: {exc.strerror}", path=str(path),
                          hint="check the file's permissions and the disk") from None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        line = exc.lineno if isinstance(exc, json.JSONDecodeError) else None
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise RecordError(f"invalid JSON: {reason}", path=str(path), line=line,
                          hint="the file is damaged; restore it or remove the experiment") from None
    if not isinstance(value, dict):
        raise RecordError(f"expected a JSON object, got {type_name(value)}", path=str(path),
                          hint="the file is damaged; restore it or remove the experiment")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise RecordError(describe_validation_error(exc), path=str(path),
                          hint="the file was changed by hand or damaged; fix the field named, or restore the file") from None
