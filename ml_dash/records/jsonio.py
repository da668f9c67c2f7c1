"""Byte-exact JSON writing (the 0.5.8 format) that never leaves a half-written file.

0.5.8 wrote ``json.dump(obj, f, indent=2)`` straight over the old file and JSONL lines
with ``json.dumps`` defaults. We keep those bytes, but replace whole files atomically
(temporary file + ``os.replace``) and append each JSONL line with one ``write``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ml_dash.errors import InvalidInputError, StorageError

__all__ = ["atomic_write_json", "atomic_write_text", "dumps_line", "dumps_pretty", "read_json"]


def _unserialisable(exc: Exception, what: str) -> InvalidInputError:
    return InvalidInputError(
        f"{what} is not JSON-serialisable: {exc}",
        hint="pass numbers, strings, booleans, None, lists and dicts (convert tensors with .item() or .tolist())",
    )


def dumps_line(obj: Any, what: str = "value") -> str:
    """``json.dumps`` with 0.5.8's defaults (``", "``/``": "`` separators, ASCII)."""
    try:
        return json.dumps(obj)
    except (TypeError, ValueError) as exc:
        raise _unserialisable(exc, what) from None


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
