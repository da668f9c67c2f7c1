"""JSON for the server's hot paths: orjson when installed (the server extra), else stdlib."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["dumps", "dumps_array", "dumps_array_finite", "dumps_each", "loads", "loads_checked"]

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
