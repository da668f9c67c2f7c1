"""JSON for the server's hot paths: orjson when installed (the server extra), else stdlib."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FlatPoints", "dumps", "dumps_array", "dumps_array_finite", "dumps_each", "flat_points", "loads",
           "loads_checked", "loads_strict", "split_first_array"]

_INF = float("inf")


def _finite(value: Any) -> bool:
    """True unless a NaN or infinity is somewhere inside (floats, lists, dicts)."""
    if isinstance(value, float):
        return -_INF < value < _INF
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True

try:
    import orjson

    def loads(data: bytes | str) -> Any:
        return loads_checked(data)[0]

    def loads_strict(data: bytes | str) -> Any:
        """JSON without NaN/Infinity (ValueError for those)."""
        return orjson.loads(data)

    def loads_checked(data: bytes | str) -> tuple[Any, bool]:
        """``(value, finite)``: finite is True when no NaN/Infinity can be inside."""
        try:
            return orjson.loads(data), True  # orjson refuses NaN/Infinity: success proves there is none
        except orjson.JSONDecodeError:
            # ... which 0.5.8 clients send for diverging losses: the stdlib reads them.
            return json.loads(data), False

    def dumps_array_finite(values: Sequence[Any]) -> str:
        return orjson.dumps(list(values)).decode()

    def dumps(value: Any) -> bytes:
        try:
            return orjson.dumps(value)
        except TypeError:
            return json.dumps(value).encode()

    def dumps_each(values: Sequence[Any]) -> list[str]:
        # orjson writes NaN/Infinity as null: such values go through the stdlib, which keeps them.
        return [orjson.dumps(v).decode() if _finite(v) else json.dumps(v) for v in values]

    def dumps_array(values: Sequence[Any]) -> str:
        items = list(values)
        return orjson.dumps(items).decode() if _finite(items) else json.dumps(items)

except ImportError:  # pragma: no cover - the server extra installs orjson

    def loads(data: bytes | str) -> Any:
        return json.loads(data)

    def _refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def loads_strict(data: bytes | str) -> Any:
        """JSON without NaN/Infinity (ValueError for those)."""
        return json.loads(data, parse_constant=_refuse_constant)

    def loads_checked(data: bytes | str) -> tuple[Any, bool]:
        return json.loads(data), False

    def dumps_array_finite(values: Sequence[Any]) -> str:
        return json.dumps(list(values))

    def dumps(value: Any) -> bytes:
        return json.dumps(value).encode()

    def dumps_each(values: Sequence[Any]) -> list[str]:
        return [json.dumps(v) for v in values]

    def dumps_array(values: Sequence[Any]) -> str:
        return json.dumps(list(values))


# --- flat points: a JSON array of {"key": number, ...} read as columns, without a dict per point ----------
@dataclass(frozen=True, slots=True)
class FlatPoints:
    """Points that are objects with the same keys in the same order and numbers as values:
    point ``i`` is ``dict(zip(keys, (c[i] for c in columns)))``; ``text`` is their JSON array."""

    keys: tuple[str, ...]
    columns: list[list[int | float]]
    text: str

    def __len__(self) -> int:
        return len(self.columns[0])

    def dicts(self) -> list[dict[str, Any]]:
        """The points as dicts (for the rare paths that compare or filter single points)."""
        return [dict(zip(self.keys, row, strict=True)) for row in zip(*self.columns, strict=True)]


# A value of the fast path is a number: made of these bytes only.
_NUMBER = b"0123456789.+-eE"
_WHITESPACE = b" \t\n\r"
# Each key's text ("key") is replaced by a marker byte before the checks, so a key may hold any
# character but these (a quote or backslash would make its text ambiguous, whitespace would be
# stripped from the stored text, the others delimit the first point).
_KEY_REFUSED = _WHITESPACE + b'{}[],:"\\' + bytes(range(32))
# Markers: control bytes, which JSON allows nowhere raw (so the text cannot hold one already; that
# is checked) and which are neither number characters nor whitespace.
_MARKERS = [bytes([c]) for c in range(1, 32) if c not in b"\t\n\r"]
# The values' text: everything but number characters, whitespace and ",[]:}" deleted (markers
# and "{" too), then ":" made "\r" and "}" a space: whitespace, so that a number character
# anywhere but in a value ends up apart from the value it precedes or follows, which orjson
# refuses ({"a":1}5 gives "1 5"); "\r" marks where each value begins (its absence from the points'
# own whitespace is checked).
_VALUES_DELETE = bytes(c for c in range(256) if c not in _NUMBER + _WHITESPACE + b",[]:}")
_VALUES_TABLE = bytes.maketrans(b":}", b"\r ")


def split_first_array(body: bytes, key: bytes) -> tuple[bytes, bytes] | None:
    """``(array, rest)`` of a body ``{"<key>": [...], ...}`` whose array holds no ``]`` before
    its end (the fast path's points never do): the array's text, and ``{...}`` holding the other
    members. None when the body does not start so; the caller verifies both parts."""
    head = b'{"' + key + b'":'
    if not body.startswith(head):
        return None
    start = body.find(b"[", len(head))
    if start < 0 or body[len(head):start].strip():
        return None
    end = body.find(b"]", start)
    if end < 0:
        return None
    rest = body[end + 1:].lstrip()
    if rest.startswith(b","):  # a member must follow (a trailing comma is not JSON)
        more = rest[1:].lstrip()
        return (body[start:end + 1], b"{" + more) if more.startswith(b'"') else None
    return (body[start:end + 1], rest) if rest.startswith(b"}") else None


def flat_points(array: bytes) -> FlatPoints | None:
    """The points of the JSON array ``array`` as columns, when every point is an object with the
    same keys in the same order (as the first point has them, spelled without escapes, whitespace
    or ``{}[],:``), written with the same whitespace, and every value is a finite number; None
    otherwise (the caller then parses the array as any JSON).

    The work per point is done by C loops over the whole text, not by a dict per point:

    * each key's text ``"key"`` is replaced by a marker byte of its own (a control byte, which
      valid JSON never holds raw: the text is checked to hold none). Only the exact text of one
      of the first point's keys is replaced; any other key or string leaves a quote behind;
    * the *skeleton* (that text without number characters) must be the first point's repeated,
      with the separator that follows it: that proves the structure, the keys (their markers) and
      whitespace of every point, and that nothing but number characters is left anywhere else;
    * the *values* (the text without anything but number characters, whitespace and ``,[]``;
      ``:`` and ``}`` made whitespace) are then ``[v, v, ...]`` in order, parsed by orjson in one
      go. orjson refuses any value that is not a JSON number or is out of a double's range, and
      any number character outside a value (it stands apart from the value beside it), unless it
      stands in for an empty value (``{"a":}5``): no value's place may be found empty.

    The text to store is the array as sent, without its whitespace.
    """
    keys = _first_keys(array)
    if keys is None:
        return None
    markers = _MARKERS[:len(keys)]
    if any(array.find(m) >= 0 for m in markers):
        return None  # not JSON (a raw control byte): the general parser says so
    marked = array
    for key, marker in zip(keys, markers, strict=True):
        marked = marked.replace(b'"' + key.encode() + b'"', marker)
    close = marked.find(b"}")
    unit = marked[1:close + 1].translate(None, _NUMBER)
    if unit.translate(None, _WHITESPACE) != b"{" + b",".join([m + b":" for m in markers]) + b"}":
        return None  # the first point's keys are written with escapes, or its values are not numbers
    following = marked.find(b"{", close)
    sep = marked[close + 1:following] if following > 0 else b","
    if sep.translate(None, _WHITESPACE) != b"," or b"\r" in unit or b"\r" in sep:
        return None
    skeleton = marked.translate(None, _NUMBER)
    n, odd = divmod(len(skeleton) - 2 + len(sep), len(unit) + len(sep))
    if odd or n < 1 or not _repeats(skeleton, b"[" + unit, sep + unit, n - 1, b"]"):
        return None
    values_text = marked.translate(_VALUES_TABLE, _VALUES_DELETE)
    try:
        values = loads_strict(values_text)
    except ValueError:
        return None
    m = len(keys)
    if type(values) is not list or len(values) != m * n:  # cannot be, once the skeleton matched
        return None
    # No value left empty ("\r" followed by the whitespace and separator of the skeleton) while a
    # number character elsewhere in its item took its place.
    for empty in {unit[i:j + 1].translate(_VALUES_TABLE, _VALUES_DELETE) for i, j in _slots(unit)}:
        if values_text.find(empty) >= 0:
            return None
    columns = [values] if m == 1 else [values[j::m] for j in range(m)]
    if len(unit) + len(sep) != len(unit.translate(None, _WHITESPACE)) + 1:
        # Stored without the whitespace (the skeleton proved there is none inside keys or numbers).
        array = array.translate(None, _WHITESPACE)
    try:
        text = array.decode()
    except UnicodeDecodeError:  # pragma: no cover - orjson read the same keys as UTF-8
        return None
    return FlatPoints(keys, columns, text)


def _first_keys(array: bytes) -> tuple[str, ...] | None:
    """The keys of the array's first point when it is a non-empty object whose keys the fast path
    can mark (none holds a refused character; not more keys than markers), else None."""
    if array[1:2] != b"{":
        return None
    try:
        first = loads_strict(array[1:array.find(b"}") + 1])
    except ValueError:
        return None
    if type(first) is not dict or not first or len(first) > len(_MARKERS):
        return None
    if any(len(k.encode().translate(None, _KEY_REFUSED)) != len(k.encode()) for k in first):
        return None
    return tuple(first)


def _repeats(text: bytes, head: bytes, unit: bytes, times: int, tail: bytes) -> bool:
    """``text == head + unit * times + tail``, compared in place (memcmp of blocks of units: no
    copy of the whole expected text, which costs more than the comparison at this size)."""
    if len(text) != len(head) + len(unit) * times + len(tail) or not text.startswith(head) or \
            not text.endswith(tail):
        return False
    block, at = unit * 256, len(head)
    while times >= 256:
        if not text.startswith(block, at):
            return False
        at, times = at + len(block), times - 256
    return text.startswith(unit * times, at)


def _slots(unit: bytes) -> list[tuple[int, int]]:
    """``(colon, separator)`` positions of each value's place in a point's skeleton."""
    out, at = [], unit.find(b":")
    while at >= 0:
        end = min(i for i in (unit.find(b",", at), unit.find(b"}", at)) if i >= 0)
        out.append((at, end))
        at = unit.find(b":", end)
    return out
