"""JSONL read and checked a block of lines at a time, in compiled code where it can be.

``iter_jsonl`` (``read.py``) checks one line per Python call through the record model: exact,
and the reference for every message, but ~10 µs a line. The upload and ``ml-dash show`` read
millions of lines, so they go through here instead:

* :func:`read_blocks` reads the file in large chunks and splits it into lines (bounded memory:
  one chunk, one block, and a line longer than ``MAX_LINE_BYTES`` is cut, never held);
* :func:`check_metric_lines` / :func:`check_log_lines` decode a whole block with **one** msgspec
  call into typed structs that check, in C, what the record model checks for the plain record.
  A metric point's ``data`` is not even decoded: it stays the raw JSON text of the line
  (``msgspec.Raw``), checked to be an object, and goes into the request body as it is (no parse →
  dict → dump round trip). Anything else in the block (a bad or blank line, NaN/Infinity, which
  msgspec refuses, a level in capitals, an index given as a string...) is decided line by line by
  the record model (:func:`~ml_dash.records.read.parse_line`), so what is valid and every message
  are exactly ``iter_jsonl``'s: the structs only ever accept what the model accepts.

Each line is parsed once; the lines of a block that does not decode as a whole are parsed once
more each, and a line the structs do not take once more by the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from ml_dash.records.logs import LogLine
from ml_dash.records.metrics import MetricPoint
from ml_dash.records.read import MAX_LINE_BYTES, Problem, parse_line

__all__ = ["READ_CHUNK", "CheckedBlock", "check_log_lines", "check_metric_lines", "read_blocks"]

READ_CHUNK = 4 * 1024 * 1024
TRUNCATED = "truncated last line (no newline at the end; the writer was probably killed)"
_Count = Annotated[int, msgspec.Meta(ge=0)]


# gc=False: these structs hold only leaves and freshly decoded JSON, never a cycle, and a block makes
# 10,000 of them at a time: tracked, they would set off the cyclic collector over and over (2x slower).
class _Point(msgspec.Struct, gc=False):
    """The plain metric point (unknown keys ignored, as the model keeps them and nothing sends them)."""

    data: msgspec.Raw
    index: _Count | None = None
    createdAt: str | None = None
    ts: float | None = msgspec.field(name="_ts", default=None)


class _Object(msgspec.Struct, gc=False):
    """Any JSON object, its content skipped: proves a raw ``data`` is an object."""


class _Line(msgspec.Struct, gc=False):
    """The plain log line, its level already in lower case."""

    message: str
    level: Literal["info", "warn", "error", "debug", "fatal"] = "info"
    timestamp: str | None = None
    metadata: dict[str, Any] | None = None
    sequenceNumber: _Count | None = None


_points, _point = msgspec.json.Decoder(list[_Point]), msgspec.json.Decoder(_Point)
_lines, _line = msgspec.json.Decoder(list[_Line]), msgspec.json.Decoder(_Line)
_objects = msgspec.json.Decoder(list[_Object])


@dataclass(slots=True)
class CheckedBlock:
    """The valid records of a block in order (a metric point's ``data`` as JSON text, a log line as
    the entry to send) and the lines that were not valid."""

    records: list[Any] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_blocks(path: Path, lines_per_block: int, offset: int = 0, *, partial_last: bool = True,
                ) -> Iterator[tuple[list[bytes], int, bool]]:
    """``(lines, offset after them, last line without its newline)`` from ``offset`` on, at most
    ``lines_per_block`` lines each, without their newlines. ``partial_last``: a last line without
    its newline is a line (the upload checks it); otherwise it is left out (``ml-dash show``: a
    writer is mid-append)."""
    keep = MAX_LINE_BYTES + 1  # of a line longer than the limit: enough to report it, never the whole
    with open(path, "rb") as f:
        f.seek(offset)
        position = offset  # just after the last line yielded
        carry, dropped = b"", 0  # the unfinished line: the bytes kept, and how many were cut off
        lines: list[bytes] = []
        extra = 0  # bytes cut off lines in ``lines`` (they still count for the offset)
        while chunk := f.read(READ_CHUNK):
            data = carry + chunk if carry else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > keep:
                    dropped += len(data) - keep
                    data = data[:keep]
                carry = data
                continue
            complete, carry = data[:cut], data[cut + 1:]
            parts = complete.split(b"\n")
            extra, dropped = extra + dropped, 0
            k = 0
            while k < len(parts):  # whole slices of the chunk's lines, not one line at a time
                take = min(lines_per_block - len(lines), len(parts) - k)
                lines += parts[k:k + take]
                k += take
                if len(lines) >= lines_per_block:
                    position += sum(map(len, lines)) + len(lines) + extra
                    yield lines, position, False
                    lines, extra = [], 0
            if len(carry) > keep:
                dropped, carry = len(carry) - keep, carry[:keep]
        position += sum(map(len, lines)) + len(lines) + extra
        partial = bool(carry) and partial_last
        if partial:
            lines.append(carry)
            position += len(carry) + dropped
        if lines:
            yield lines, position, partial


def _decode_block(lines: list[bytes], decoder: msgspec.json.Decoder[Any]) -> list[Any] | None:
    """Every line decoded by one call, or None when any line is not a plain record."""
    joined = b"[" + b",".join(lines) + b"]"
    try:
        joined.decode()  # msgspec does not check the UTF-8 of what it keeps raw; the model would refuse it
        decoded = decoder.decode(joined)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    # One value per line: a blank line (``[]``) or a line holding two values (``{..}, {..}``) is not.
    return decoded if len(decoded) == len(lines) else None


def _check(lines: list[bytes], first_line: int, shown: str, last_is_partial: bool,
           whole: Callable[[list[bytes]], list[Any] | None], one: Callable[[bytes], Any | None],
           model: type[Any], of_record: Callable[[Any], Any]) -> CheckedBlock:
    block = CheckedBlock()
    if not (last_is_partial or max(map(len, lines)) > MAX_LINE_BYTES):
        records = whole(lines)
        if records is not None:
            block.records = records
            return block
    for i, raw in enumerate(lines):
        number = first_line + i
        if len(raw) > MAX_LINE_BYTES:
            block.problems.append(Problem(shown, number, f"line longer than {MAX_LINE_BYTES} bytes"))
            continue
        record = one(raw)
        if record is not None:
            block.records.append(record)
            continue
        result = parse_line(raw, model)  # the exact verdict and message (NaN, coercions, errors)
        if isinstance(result, str):
            if last_is_partial and i == len(lines) - 1 and result.startswith("invalid JSON"):
                result = TRUNCATED
            block.problems.append(Problem(shown, number, result))
        else:
            block.records.append(of_record(result))
    return block


def _points_whole(lines: list[bytes]) -> list[Any] | None:
    points = _decode_block(lines, _points)
    if points is None:
        return None
    data = [p.data for p in points]
    try:
        _objects.decode(b"[" + b",".join(data) + b"]")
    except msgspec.DecodeError:
        return None  # some point's data is not an object
    return data


def _point_one(raw: bytes) -> Any | None:
    points = _points_whole([raw])
    return points[0] if points else None


def _model_point(rec: MetricPoint) -> bytes:
    # The stdlib writes NaN/Infinity as 0.5.8 does (msgspec refused them, the model took them).
    return json.dumps(rec.data, separators=(",", ":")).encode()


def _entry(line: _Line | LogLine) -> dict[str, Any]:
    """What a log line sends: timestamp, level, message, and metadata when there is some (from the
    block's struct or, for a line only the model took, the model)."""
    entry: dict[str, Any] = {"timestamp": line.timestamp, "level": line.level, "message": line.message}
    if line.metadata:
        entry["metadata"] = line.metadata
    return entry


def _lines_whole(lines: list[bytes]) -> list[Any] | None:
    decoded = _decode_block(lines, _lines)
    return None if decoded is None else list(map(_entry, decoded))


def _line_one(raw: bytes) -> Any | None:
    entries = _lines_whole([raw])
    return entries[0] if entries else None


def check_metric_lines(lines: list[bytes], first_line: int = 1, path: Path | str = "",
                       last_is_partial: bool = False) -> CheckedBlock:
    """The ``data`` (JSON text) of every valid point of ``lines`` (line ``first_line`` on) and the bad lines."""
    return _check(lines, first_line, str(path), last_is_partial, _points_whole, _point_one, MetricPoint,
                  _model_point)


def check_log_lines(lines: list[bytes], first_line: int = 1, path: Path | str = "",
                    last_is_partial: bool = False) -> CheckedBlock:
    """The entry to send of every valid log line of ``lines`` and the bad lines."""
    return _check(lines, first_line, str(path), last_is_partial, _lines_whole, _line_one, LogLine, _entry)
