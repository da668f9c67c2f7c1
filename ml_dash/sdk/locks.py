"""Inter-process locks that add no files to the tree.

0.5.8 trees have no lock files, and ours must look the same, so we lock what is
already there: the JSONL file being appended to (its inode never changes), or the
experiment directory itself for read-modify-write of the small JSON files (which are
replaced atomically, so their inode does change). ``flock`` does not exclude threads
sharing one descriptor, hence the extra threading lock in the callers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX; on Windows the SDK still works, without inter-process exclusion.
    import fcntl

    def lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - not exercised on Linux CI

    def lock_fd(fd: int) -> None:
        return None

    def unlock_fd(fd: int) -> None:
        return None


__all__ = ["directory_lock", "lock_fd", "unlock_fd"]


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Exclusive lock on a directory (Linux and macOS allow ``flock`` on a directory fd)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        lock_fd(fd)
        try:
            yield
        finally:
            unlock_fd(fd)
    finally:
        os.close(fd)
