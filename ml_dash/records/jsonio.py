"""Byte-exact JSON writing (the 0.5.8 format) that never leaves a half-written file.

0.5.8 wrote ``json.dump(obj, f, indent=2)`` straight over the old file and JSONL lines
with ``json.dumps`` defaults. We keep those bytes, but replace whole files atomically
(temporary file + ``os.replace``) and append each JSONL line with one ``write``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from itertools import chain
from json import encoder as _json_encoder
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

from ml_dash.errors import InvalidInputError, StorageError

__all__ = ["atomic_write_json", "atomic_write_text", "dumps_line", "dumps_lines", "dumps_pretty", "flat_columns",
           "flat_template", "read_json"]


def _make_encoder() -> Any:
    """The very C encoder ``json.dumps(obj)`` builds on every call, built once.

    ``json.dumps`` with default arguments runs ``JSONEncoder.iterencode``, which creates
    ``c_make_encoder(markers, default, encode_basestring_ascii, None, ": ", ", ", False,
    False, True)`` per call and joins what it returns; that set-up is most of the cost of
    a small record. We build it once, with the same arguments except ``markers=None`` (no
    cycle bookkeeping), so every value it accepts comes out byte for byte as from
    ``json.dumps``. Whatever it refuses (cycles end in ``RecursionError`` here, not in
    ``ValueError``; unserialisable values) is handed to ``json.dumps`` for the real error.
    """
    make = getattr(_json_encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has _json
        return None
    reference = json.JSONEncoder()
    return make(None, reference.default, encode_basestring_ascii, None, reference.key_separator,
                reference.item_separator, reference.sort_keys, reference.skipkeys, reference.allow_nan)


_ENCODE = _make_encoder()
_join = "".join
_chain = chain.from_iterable


# --- flat records: {"key": scalar, ...}, encoded column by column ------------------------------------
# A record whose keys are all ``str`` and whose values are all numbers, bools, None or ``str``
# is ``template % values``: the template holds the keys as json.dumps writes them, one ``%s``
# per value, and each value is turned into its JSON text the way json.dumps does it:
# ``int.__repr__``/``float.__repr__`` for finite numbers (``%s`` of an exact int or float is that),
# ``NaN``/``Infinity``/``-Infinity``, ``true``/``false``/``null``, ``encode_basestring_ascii``.
# Exact types only: json.dumps treats subclasses (``IntEnum``, a ``float`` subclass with its own
# ``__repr__``, a ``dict`` with its own ``items``) by rules of its own, so those take the encoder.
_NUMBERS = frozenset((int, float))
_SCALARS = frozenset((int, float, bool, type(None), str))
_CONSTANT_TYPES = frozenset((bool, type(None)))
_STR = frozenset((str,))
_DICT = frozenset((dict,))
_CONSTANTS = {True: "true", False: "false", None: "null"}  # looked up with bools and None only
_INF = float("inf")
_templates: dict[tuple[Any, ...], str | None] = {}
_TEMPLATES_KEPT = 4096


def _scalar_json(value: Any) -> str:
    """``json.dumps(value)`` for an int, float, bool, None or str (exact types)."""
    kind = type(value)
    if kind is float:
        if -_INF < value < _INF:
            return float.__repr__(value)
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return encode_basestring_ascii(value)
    return _CONSTANTS[value]


def flat_template(keys: tuple[Any, ...]) -> str | None:
    """``'{"a": %s, "b": %s}'`` for ``keys`` ``("a", "b")``; None unless every key is a ``str``."""
    template = _templates.get(keys)
    if template is None and keys not in _templates:
        if all(type(key) is str for key in keys):
            # json.dumps writes a key as encode_basestring_ascii does; "%" must survive the formatting.
            template = "{" + ", ".join([encode_basestring_ascii(key).replace("%", "%%") + ": %s"
                                        for key in keys]) + "}"
        if len(_templates) >= _TEMPLATES_KEPT:  # records with ever new keys: keep the cache bounded
            _templates.clear()
        _templates[keys] = template
    return template


def flat_columns(points: list[Any]) -> tuple[str, list[Sequence[Any]]] | None:
    """``(template, columns)`` such that ``template % row == json.dumps(point)`` for each point
    and the matching ``row`` of ``zip(*columns)``; None when the fast path does not apply.

    It applies when the points are plain dicts with the same ``str`` keys in the same order,
    and scalar values (exact int, float, bool, None, str). A column of finite numbers is
    returned as it is (``%s`` formats it), other columns as JSON texts.
    """
    if not points or type(points[0]) is not dict:
        return None
    keys = tuple(points[0])
    template = flat_template(keys)
    if template is None or set(map(type, points)) != _DICT:
        return None
    # Iterating a dict gives its keys: all of them in a row must be the first point's, again and
    # again. (No dict can hold fewer keys and another more: that one would repeat a key.)
    if list(_chain(points)) != list(keys) * len(points):
        return None
    try:
        columns = _columns(points)
    except ValueError:  # an int too long for str(): json.dumps refuses it as well, and says which
        return None
    return None if columns is None else (template, columns)


def _columns(points: list[dict[str, Any]]) -> list[Sequence[Any]] | None:
    """The points' values, column by column, each as ``%s`` must get it (None: not all scalars)."""
    columns: list[Sequence[Any]] = []
    for column in zip(*map(dict.values, points), strict=True):
        kinds = set(map(type, column))
        if kinds <= _NUMBERS:
            if float in kinds:
                try:
                    finite = -_INF < sum(column) < _INF  # NaN or ±inf anywhere makes the sum so
                except OverflowError:  # an int beyond float range
                    finite = False
                if not finite:
                    columns.append(list(map(_scalar_json, column)))
                    continue
            columns.append(column)
        elif kinds <= _CONSTANT_TYPES:
            columns.append(list(map(_CONSTANTS.__getitem__, column)))
        elif kinds == _STR:
            columns.append(list(map(encode_basestring_ascii, column)))
        elif kinds <= _SCALARS:
            columns.append(list(map(_scalar_json, column)))
        else:
            return None
    return columns


def _unserialisable(exc: Exception, what: str) -> InvalidInputError:
    return InvalidInputError(
        f"{what} is not JSON-serialisable: {exc}",
        hint="pass numbers, strings, booleans, None, lists and dicts (convert tensors with .item() or .tolist())",
    )


def dumps_line(obj: Any, what: str = "value") -> str:
    """``json.dumps`` with 0.5.8's defaults (``", "``/``": "`` separators, ASCII)."""
    if _ENCODE is not None and type(obj) is dict:
        try:
            return _join(_ENCODE(obj, 0))
        except Exception:  # noqa: BLE001 - json.dumps below raises the real error, or succeeds
            pass
    try:
        return json.dumps(obj)
    except (TypeError, ValueError) as exc:
        raise _unserialisable(exc, what) from None


def dumps_lines(objs: list[Any], what: str = "value") -> list[str]:
    """``[dumps_line(obj, f"{what} #{i}") for i, obj in enumerate(objs)]``, faster.

    A list of dicts is encoded in one call of the encoder and cut where one dict ends and
    the next begins (``"}, {"``). A dict's text always starts with ``{`` and ends with
    ``}``, so those ``n - 1`` boundaries are always there; the cut is taken only when the
    text holds no other ``"}, {"`` (as it may inside a string or a nested list), which
    makes every piece exactly the ``json.dumps`` of its dict. Otherwise one call per item.
    """
    if _ENCODE is not None:
        try:
            if len(objs) > 1 and all(type(obj) is dict for obj in objs):
                inner = _join(_ENCODE(objs, 0))[1:-1]
                if inner.count("}, {") == len(objs) - 1:
                    # json.dumps never writes a raw newline (it escapes them in strings).
                    return inner.replace("}, {", "}\n{").split("\n")
            return [_join(_ENCODE(obj, 0)) for obj in objs]
        except Exception:  # noqa: BLE001 - the slow pass names the offending item
            pass
    return [dumps_line(obj, f"{what} #{i}") for i, obj in enumerate(objs)]


def dumps_pretty(obj: Any, what: str = "value") -> str:
    """``json.dump(obj, indent=2)`` as 0.5.8 wrote its JSON files (no trailing newline)."""
    try:
        return json.dumps(obj, indent=2)
    except (TypeError, ValueError) as exc:
        raise _unserialisable(exc, what) from None


def atomic_write_text(path: Path, text: str, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never half."""
    directory = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}", hint="check the directory exists and is writable") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        # mkstemp creates 0600; the 0.5.8 files were created with the process umask.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_json(path: Path, obj: Any, *, what: str | None = None, fsync: bool = True) -> None:
    atomic_write_text(path, dumps_pretty(obj, what or path.name), fsync=fsync)


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        current = os.umask(0)
        os.umask(current)
        _UMASK = current
    return _UMASK
