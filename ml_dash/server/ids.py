"""Server-side ids (64-bit, time-ordered, as decimal strings on the wire) and timestamps.

An id is ``milliseconds << 22 | node << 12 | counter``: the node number is handed out by
the database when a store opens (``server_nodes``), so several server processes on one
database never mint the same id; the counter makes ids unique within a process.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone

__all__ = ["NODE_BITS", "new_id", "now_iso", "set_node"]

_EPOCH_MS = 1_700_000_000_000  # 2023-11-14: leaves ~69 years of 41-bit milliseconds
NODE_BITS = 10
_COUNTER_BITS = 12
_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Until a database assigns one: a random node, so even an unregistered process rarely collides.
_node = int.from_bytes(os.urandom(2), "big") % (1 << NODE_BITS)


def set_node(number: int) -> None:
    """Use the node number the database handed to this process (taken modulo 1024)."""
    global _node
    with _lock:
        _node = number % (1 << NODE_BITS)


def new_id() -> int:
    """Unique across processes that hold distinct node numbers; increasing within a process."""
    global _last_ms, _counter
    with _lock:
        ms = max(int(time.time() * 1000) - _EPOCH_MS, _last_ms)
        if ms == _last_ms:
            _counter += 1
            if _counter >= 1 << _COUNTER_BITS:  # 4096 ids in one millisecond: borrow the next one
                ms, _counter = ms + 1, 0
        else:
            _counter = 0
        _last_ms = ms
        return (ms << (NODE_BITS + _COUNTER_BITS)) | (_node << _COUNTER_BITS) | _counter


def now_iso() -> str:
    """``2026-11-22T17:00:27.864Z`` (milliseconds), as the hosted server answered."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
