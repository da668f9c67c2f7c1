"""Timestamps and ids in exactly the form ml-dash 0.5.8 writes them."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone

__all__ = ["iso_second", "new_file_id", "utc_iso_from_ns", "utc_now_iso"]

_UTC = timezone.utc
_time_ns = time.time_ns

# The last whole second formatted and its text: one tuple, swapped whole, so threads never
# see a second paired with another second's text.
_second: tuple[int, str] = (-1, "")


def iso_second(sec: int) -> str:
    """``2026-11-22T16:57:37``: the naive UTC isoformat of whole second ``sec`` (no fraction, no ``Z``).

    ``datetime`` formats it, once per second (the cache holds the last second asked for).
    """
    global _second
    cached = _second
    if cached[0] != sec:
        cached = _second = (sec, datetime.fromtimestamp(sec, _UTC).replace(tzinfo=None).isoformat())
    return cached[1]


def utc_iso_from_ns(ns: int) -> str:
    """The ``utc_now_iso`` text of a ``time.time_ns()`` reading."""
    sec, us = divmod(ns // 1000, 1_000_000)
    cached = _second
    prefix = cached[1] if cached[0] == sec else iso_second(sec)
    # isoformat leaves the fraction out when the microsecond is 0, and so does 0.5.8.
    return f"{prefix}.{us:06d}Z" if us else f"{prefix}Z"


def utc_now_iso() -> str:
    """``2026-11-22T16:57:37.635242Z``: naive UTC isoformat plus ``Z``, as 0.5.8 writes.

    0.5.8 calls ``datetime.utcnow().isoformat() + "Z"`` (``utcnow`` is deprecated now), which
    reads the clock ``time.time_ns`` reads and floors it to the microsecond; so do we, and
    format only the fraction ourselves (a third of the cost; this runs once per record).
    """
    micros = _time_ns() // 1000
    cached = _second
    if micros // 1_000_000 == cached[0] and micros % 1_000_000:  # the usual case, in the fewest steps
        return f"{cached[1]}.{micros % 1_000_000:06d}Z"
    return utc_iso_from_ns(micros * 1000)


_id_lock = threading.Lock()
_last_id = 0


def new_file_id() -> str:
    """A 0.5.8-style snowflake: milliseconds << 12 | 12 random bits, as decimal text.

    0.5.8 could hand out the same id twice within one millisecond; we never do in one
    process (the next id is bumped past the last one).
    """
    global _last_id
    candidate = (int(time.time() * 1000) << 12) | random.randint(0, 4095)
    with _id_lock:
        if candidate <= _last_id:
            candidate = _last_id + 1
        _last_id = candidate
    return str(candidate)
