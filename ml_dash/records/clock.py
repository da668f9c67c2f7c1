"""Timestamps and ids in exactly the form ml-dash 0.5.8 writes them."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone

__all__ = ["new_file_id", "utc_now_iso"]

_UTC = timezone.utc


def utc_now_iso() -> str:
    """``2026-11-22T16:57:37.635242Z``: naive UTC isoformat plus ``Z``, as 0.5.8 writes.

    Like 0.5.8 (``datetime.utcnow().isoformat() + "Z"``) the fraction is left out when
    the microsecond is 0. ``utcnow`` itself is deprecated, hence the detour.
    """
    return datetime.now(_UTC).replace(tzinfo=None).isoformat() + "Z"


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
