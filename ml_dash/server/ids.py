"""Server-side ids (64-bit, time-ordered, as decimal strings on the wire) and timestamps."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

__all__ = ["new_id", "now_iso"]

_EPOCH_MS = 1_700_000_000_000  # 2023-11-14: leaves ~69 years of 41-bit milliseconds
_lock = threading.Lock()
_last = 0


def new_id() -> int:
    """Milliseconds since the epoch << 22 | a counter: unique in this process, sortable by time."""
    global _last
    candidate = (int(time.time() * 1000) - _EPOCH_MS) << 22
    with _lock:
        if candidate <= _last:
            candidate = _last + 1
        _last = candidate
    return candidate


def now_iso() -> str:
    """``2026-11-22T17:00:27.864Z`` (milliseconds), as the hosted server answered."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
