"""Checksums and content types, streamed (a checkpoint is never held in memory)."""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

__all__ = ["guess_content_type", "sha256_file"]

_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> tuple[str, int]:
    """``(sha256 hex, size in bytes)`` of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def guess_content_type(path: str | Path) -> str:
    """As 0.5.8: ``mimetypes.guess_type`` or ``application/octet-stream``."""
    guessed, _ = mimetypes.guess_type(str(path))
    return guessed or "application/octet-stream"
