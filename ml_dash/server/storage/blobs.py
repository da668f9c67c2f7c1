"""Blob stores: content-addressed (the key is the sha256), so an identical blob is kept once
and no client-supplied name ever becomes a path. Data is streamed in and out in chunks.

``file:///dir`` keeps blobs at ``dir/ab/cd/<sha256>``; ``s3://bucket/prefix`` in any
S3-compatible store (``endpoint_url`` for MinIO, moto, ...).
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from ml_dash.api.errors import ServerError

__all__ = ["BlobStore", "FileBlobStore", "S3BlobStore", "StagedBlob"]

CHUNK = 1024 * 1024
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # the volume, a quota, or a file size limit
_warned_full = 0.0


def _full(exc: OSError, where: Path) -> ServerError:
    """A full disk or quota: 503 + Retry-After, so clients wait and send again (nothing is kept
    half-written: the caller discards what it staged). One line in the server log a minute."""
    global _warned_full
    message = f"the blob store is full ({os.strerror(exc.errno or errno.ENOSPC)}) at {where}"
    if time.monotonic() - _warned_full > 60:
        _warned_full = time.monotonic()
        print(f"ml-dash serve: {message}; uploads answer 503 until there is room", file=sys.stderr, flush=True)
    return ServerError("unavailable", message, hint="free space or raise the volume's quota; clients send again")


def _guard_full(where: Path, call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except OSError as exc:
        if exc.errno in _FULL:
            raise _full(exc, where) from None
        raise


class StagedBlob:
    """Bytes being received: spooled to a temporary file while hashed, never held in memory."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        def make() -> tuple[int, str]:
            return tempfile.mkstemp(prefix="upload-", suffix=".part", dir=directory)

        try:
            fd, name = _guard_full(directory, make)
        except FileNotFoundError:  # the first upload (or the directory was removed): made once, not per file
            _guard_full(directory, lambda: directory.mkdir(parents=True, exist_ok=True))
            fd, name = _guard_full(directory, make)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.max_bytes = max_bytes

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise ServerError("payload_too_large", f"file larger than the server's limit of {self.max_bytes} bytes",
                              hint="split the file, or raise the server's limits.max_file_bytes")
        self._hash.update(data)
        _guard_full(self.directory, self._file.write, data)

    def finish(self) -> str:
        _guard_full(self.directory, self._file.close)
        return self._hash.hexdigest()

    def discard(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:  # its buffer could not be written (a full disk): the file goes anyway
                pass
        self.path.unlink(missing_ok=True)


class BlobStore(Protocol):
    def stage(self, max_bytes: int) -> StagedBlob: ...
    def commit(self, staged: StagedBlob, sha256: str) -> None: ...
    def exists(self, sha256: str) -> bool: ...
    def open(self, sha256: str) -> Iterator[bytes]: ...
    def delete(self, sha256: str) -> None: ...
    def list(self) -> Iterator[tuple[str, float]]: ...
    def within(self, name: str) -> BlobStore: ...


def _check_key(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ServerError("invalid", "checksum must be a lowercase sha256 hex digest",
                          hint="send hashlib.sha256(content).hexdigest()")
    return sha256


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._staging = root / ".staging"

    def _path(self, sha256: str) -> Path:
        key = _check_key(sha256)
        return self.root / key[:2] / key[2:4] / key

    def stage(self, max_bytes: int) -> StagedBlob:
        return StagedBlob(self._staging, max_bytes)

    def commit(self, staged: StagedBlob, sha256: str) -> None:
        target = self._path(sha256)
        if target.exists():
            staged.discard()  # identical content is kept once
            return
        try:
            os.replace(staged.path, target)
        except FileNotFoundError:  # the first blob of its ab/cd directory (a directory takes a block)
            _guard_full(self.root, lambda: target.parent.mkdir(parents=True, exist_ok=True))
            os.replace(staged.path, target)

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def open(self, sha256: str) -> Iterator[bytes]:
        path = self._path(sha256)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise ServerError("not_found", "file content is missing from the blob store",
                              hint="the server's blob store lost it; upload the file again") from None
        with f:
            while chunk := f.read(CHUNK):
                yield chunk

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def list(self) -> Iterator[tuple[str, float]]:
        """``(key, modified epoch)`` of every blob (streamed, never the whole list at once)."""
        for first in sorted(self.root.glob("[0-9a-f][0-9a-f]")):
            for path in sorted(first.glob("[0-9a-f][0-9a-f]/*")):
                if len(path.name) == 64:
                    try:
                        yield path.name, path.stat().st_mtime
                    except FileNotFoundError:  # deleted meanwhile
                        continue

    def within(self, name: str) -> FileBlobStore:
        """A store of its own beside the blobs (``root/name``: not two hex digits, never a blob's directory)."""
        return FileBlobStore(self.root / name)


class S3BlobStore:
    """Blobs in ``s3://bucket/prefix`` via boto3 (imported only when used)."""

    def __init__(self, bucket: str, prefix: str, staging: Path, endpoint_url: str | None = None,
                 client: Any = None) -> None:
        try:
            import boto3
        except ImportError:
            raise ServerError("internal", "s3:// blob stores need boto3",
                              hint="pip install 'ml-dash[s3]'") from None
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._staging = staging
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url)
        from boto3.s3.transfer import TransferConfig

        self._transfer = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=4)

    def _key(self, sha256: str) -> str:
        key = _check_key(sha256)
        return f"{self.prefix}/{key}" if self.prefix else key

    def stage(self, max_bytes: int) -> StagedBlob:
        return StagedBlob(self._staging, max_bytes)

    def commit(self, staged: StagedBlob, sha256: str) -> None:
        try:
            if not self.exists(sha256):
                # upload_file streams from disk and switches to multipart for large files; at most
                # 4 parts of 8 MiB in memory per upload (boto3's default is 10), whatever the file's size.
                self.client.upload_file(str(staged.path), self.bucket, self._key(sha256), Config=self._transfer)
        except ServerError:
            raise
        except Exception as exc:
            raise ServerError("unavailable", f"object store error: {exc}", hint="retry later") from None
        finally:
            staged.discard()

    def exists(self, sha256: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
            return True
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise ServerError("unavailable", f"object store error: {exc}", hint="retry later") from None

    def open(self, sha256: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                # away for now (503 SlowDown, no connection): 503 and Retry-After, not "missing"
                raise ServerError("unavailable", f"object store error: {exc}", hint="retry later") from None
            raise ServerError("not_found", f"file content is missing from the object store: {exc}",
                              hint="check the bucket and its credentials; else upload the file again") from None
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))

    def list(self) -> Iterator[tuple[str, float]]:
        """``(key, modified epoch)`` of every blob directly under the prefix (a page at a time)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "", Delimiter="/")
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"].rsplit("/", 1)[-1]
                    if len(key) == 64:
                        yield key, item["LastModified"].timestamp()
        except Exception as exc:
            raise ServerError("unavailable", f"object store error: {exc}", hint="retry later") from None

    def within(self, name: str) -> S3BlobStore:
        """A store of its own under ``prefix/name`` (the same client and bucket)."""
        return S3BlobStore(self.bucket, f"{self.prefix}/{name}" if self.prefix else name, self._staging,
                           client=self.client)
