"""Append-only JSONL writers for logs and metric points, safe across processes.

Each appender keeps its file open (``O_APPEND``) and, per record, takes the file's
``flock``, looks whether another process appended since (one ``fstat``), writes one
whole line with a single ``write`` and releases the lock. Counters that 0.5.8 kept in
side files (``logs/.log_sequence``, ``metadata.json``'s ``nextIndex``) are derived from
the JSONL itself, which is the source of truth, and the side files are rewritten
atomically on flush (at most once per ``FLUSH_INTERVAL`` while appending, and always on
close), not once per record as 0.5.8 did: that is most of the speed-up.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from ml_dash.errors import InvalidInputError, RecordError
from ml_dash.records import jsonio
from ml_dash.records.clock import utc_now_iso
from ml_dash.records.layout import ExperimentPaths
from ml_dash.records.logs import format_log_line
from ml_dash.records.metrics import MetricMetadata, MetricPoint, local_metric_id
from ml_dash.records.read import Problem, iter_jsonl, load_record
from ml_dash.sdk.locks import lock_fd, unlock_fd

__all__ = ["FLUSH_INTERVAL", "LogAppender", "MetricAppender"]

FLUSH_INTERVAL = 1.0  # seconds between side-file rewrites while appending
_TAIL_CHUNK = 8192


def _last_json_line(fd: int, size: int) -> dict[str, Any] | None:
    """The last parseable JSON object of the file, read backwards from ``size``."""
    end = size
    carry = b""
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        chunk = os.pread(fd, end - start, start) + carry
        lines = chunk.split(b"\n")
        # lines[0] may be partial unless we reached the file start
        complete = lines if start == 0 else lines[1:]
        for raw in reversed(complete):
            if raw.strip():
                try:
                    value = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    return value
        carry = lines[0] if start > 0 else b""
        end = start
    return None


class _Appender:
    """Shared machinery: the open descriptor, the locks, the tail check, the flush clock."""

    # Set when this process is the file's only writer (remote mode's private spool): appends then
    # skip the flock and the size check; each line is still one write(), so a kill -9 keeps it.
    exclusive = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._pid = -1
        self._fd = -1
        self._known_size = -1
        self._last_flush = time.monotonic()
        self._dirty = False
        self._open()

    # --- descriptor management -------------------------------------------------------
    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._read_fd = os.open(self.path, os.O_RDONLY)
        self._pid = os.getpid()
        self._known_size = -1

    def close(self) -> None:
        with self._thread_lock:
            if self._fd >= 0:
                self._flush_locked(force=True)
                os.close(self._fd)
                os.close(self._read_fd)
                self._fd = -1

    def _ensure_open(self) -> None:
        if self._fd < 0:
            raise InvalidInputError(f"{self.path} is closed", hint="the experiment was closed; start it again")
        if self._pid != os.getpid():
            # A forked child shares the parent's open file description, and flock would
            # not exclude the two: take a descriptor of our own.
            self._open()

    # --- the critical section ----------------------------------------------------------
    def _write(self, build: Any) -> Any:
        """Under both locks: catch up with other writers, build the text, write it once."""
        with self._thread_lock:
            self._ensure_open()
            fd = self._fd
            shared = not (self.exclusive and self._known_size >= 0)
            if shared:
                lock_fd(fd)
            try:
                size = os.fstat(fd).st_size if shared else self._known_size
                if size != self._known_size:
                    self._catch_up(size)
                text, result = build()
                data = text.encode()
                if self._needs_newline:
                    # A previous writer died mid-line: keep its fragment on a line of its own.
                    data = b"\n" + data
                    self._needs_newline = False
                written = os.write(fd, data)
                if written != len(data):  # pragma: no cover - disk full
                    raise OSError(f"short write to {self.path}")
                self._known_size = size + written
                self._dirty = True
                if time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
                    self._flush_side_files()
                return result
            finally:
                if shared:
                    unlock_fd(fd)

    def _catch_up(self, size: int) -> None:
        self._needs_newline = size > 0 and os.pread(self._read_fd, 1, size - 1) != b"\n"
        self._observe(_last_json_line(self._read_fd, size) if size else None)
        self._known_size = size

    def flush(self) -> None:
        with self._thread_lock:
            if self._fd >= 0:
                self._flush_locked(force=False)

    def _flush_locked(self, force: bool) -> None:
        if not (self._dirty or force):
            return
        self._ensure_open()
        lock_fd(self._fd)
        try:
            size = os.fstat(self._fd).st_size
            if size != self._known_size:
                self._catch_up(size)
            self._flush_side_files()
        finally:
            unlock_fd(self._fd)

    # --- per-kind hooks ------------------------------------------------------------------
    _needs_newline = False

    def _observe(self, last: dict[str, Any] | None) -> None:
        raise NotImplementedError

    def _flush_side_files(self) -> None:
        raise NotImplementedError


class LogAppender(_Appender):
    """``logs/logs.jsonl`` with ``sequenceNumber``s, and ``logs/.log_sequence``."""

    def __init__(self, paths: ExperimentPaths) -> None:
        self._paths = paths
        self.next_seq = 0
        seq_file = paths.log_sequence
        try:
            self.next_seq = int(seq_file.read_text().strip())
        except (OSError, ValueError):
            self.next_seq = 0  # 0.5.8 treats a missing or unparsable counter as 0
        super().__init__(paths.logs_jsonl)

    def _observe(self, last: dict[str, Any] | None) -> None:
        seq = last.get("sequenceNumber") if last else None
        if isinstance(seq, int) and seq + 1 > self.next_seq:
            self.next_seq = seq + 1

    def append(self, level: str, message: str, metadata: dict[str, Any] | None, timestamp: str) -> int:
        # Serialise outside the lock; only the sequence number is filled in under it.
        probe = format_log_line(0, timestamp, level, message, metadata)

        def build() -> tuple[str, int]:
            seq = self.next_seq
            self.next_seq = seq + 1
            line = probe if seq == 0 else probe.replace('{"sequenceNumber": 0,', f'{{"sequenceNumber": {seq},', 1)
            return line, seq

        return int(self._write(build))

    def _flush_side_files(self) -> None:
        jsonio.atomic_write_text(self._paths.log_sequence, str(self.next_seq), fsync=False)
        self._dirty = False
        self._last_flush = time.monotonic()


class MetricAppender(_Appender):
    """One series: ``metrics/<name>/data.jsonl`` and its ``metadata.json``."""

    def __init__(self, paths: ExperimentPaths, name: str | None) -> None:
        self.name = name
        self.dir = paths.metric_dir(name)
        self.metadata_path = self.dir / "metadata.json"
        self.meta: MetricMetadata | None = None
        self.next_index = 0
        self.total = 0
        self.last_created_at: str | None = None
        if self.metadata_path.exists():
            try:
                self.meta = load_record(self.metadata_path, MetricMetadata)
            except RecordError:
                self.meta = None  # rebuilt from data.jsonl, which is the truth
        if self.meta is not None:
            self.next_index = self.meta.nextIndex
            self.total = self.meta.totalDataPoints
            self.last_created_at = self.meta.updatedAt
        super().__init__(self.dir / "data.jsonl")

    def _observe(self, last: dict[str, Any] | None) -> None:
        index = last.get("index") if last else None
        if isinstance(index, int) and index + 1 > self.next_index:
            # Points written since metadata.json was last saved (by a crashed or
            # concurrent writer): indices are contiguous, so the gap is their count.
            self.total += index + 1 - self.next_index
            self.next_index = index + 1
            created = last.get("createdAt") if last else None
            if isinstance(created, str):
                self.last_created_at = created

    def append(self, data: dict[str, Any], description: str | None, tags: list[str] | None,
               metadata: dict[str, Any] | None, encoded: list[str] | None = None) -> dict[str, Any]:
        """Append one point; ``encoded`` (if given) receives the point's JSON, for a sender to reuse."""
        body = jsonio.dumps_line(data, "metric point")
        if encoded is not None:
            encoded.append(body)
        created_at = utc_now_iso()

        def build() -> tuple[str, dict[str, Any]]:
            self._ensure_meta(description, tags, metadata, created_at)
            index = self.next_index
            self.next_index = index + 1
            self.total += 1
            self.last_created_at = created_at
            line = f'{{"index": {index}, "data": {body}, "createdAt": "{created_at}"}}\n'
            return line, {"metricId": local_metric_id(self.name), "index": str(index),
                          "bufferedDataPoints": str(self.total), "chunkSize": 10000}

        return dict(self._write(build))

    def append_batch(self, points: list[dict[str, Any]], description: str | None, tags: list[str] | None,
                     metadata: dict[str, Any] | None, encoded: list[str] | None = None) -> dict[str, Any]:
        bodies = [jsonio.dumps_line(p, f"metric point #{i}") for i, p in enumerate(points)]
        if encoded is not None:
            encoded.extend(bodies)

        def build() -> tuple[str, dict[str, Any]]:
            first = utc_now_iso()
            self._ensure_meta(description, tags, metadata, first)
            start = self.next_index
            lines = []
            created_at = first
            for i, body in enumerate(bodies):
                # 0.5.8 stamps each point of a batch separately.
                created_at = first if i == 0 else utc_now_iso()
                lines.append(f'{{"index": {start + i}, "data": {body}, "createdAt": "{created_at}"}}\n')
            self.next_index = start + len(bodies)
            self.total += len(bodies)
            self.last_created_at = created_at
            end = start + len(bodies) - 1
            return "".join(lines), {"metricId": local_metric_id(self.name), "startIndex": str(start),
                                    "endIndex": str(end), "count": len(bodies),
                                    "bufferedDataPoints": str(self.total), "chunkSize": 10000}

        return dict(self._write(build))

    def _ensure_meta(self, description: str | None, tags: list[str] | None,
                     metadata: dict[str, Any] | None, created_at: str) -> None:
        if self.meta is None and self.metadata_path.exists():
            # Another process created the series first: its description wins, as in 0.5.8.
            try:
                self.meta = load_record(self.metadata_path, MetricMetadata)
            except RecordError:
                self.meta = None
        if self.meta is None:
            jsonio.dumps_line(metadata, "metric metadata")
            self.meta = MetricMetadata(metricId=local_metric_id(self.name), name=self.name,
                                       description=description, tags=list(tags or []),
                                       metadata=metadata, createdAt=created_at)
            self._dirty = True
            self._last_flush = 0.0  # write metadata.json with the first point

    def _flush_side_files(self) -> None:
        if self.meta is None:
            return
        meta = self.meta.model_copy(update={"totalDataPoints": self.total, "nextIndex": self.next_index,
                                            "updatedAt": self.last_created_at or self.meta.createdAt})
        jsonio.atomic_write_json(self.metadata_path, meta.to_json_dict(), fsync=False)
        self._dirty = False
        self._last_flush = time.monotonic()

    # --- reads ---------------------------------------------------------------------------
    def read(self, start_index: int, limit: int) -> dict[str, Any]:
        self.flush()
        points: list[dict[str, Any]] = []
        stop = start_index + limit
        for _, rec in iter_jsonl(self.path, MetricPoint):
            if isinstance(rec, Problem) or rec.index is None:
                continue
            if rec.index >= stop:
                break
            if rec.index >= start_index:
                points.append({"index": rec.index, "data": rec.data, "createdAt": rec.createdAt})
        return {
            "data": points,
            "startIndex": start_index,
            "endIndex": start_index + len(points) - 1 if points else start_index - 1,
            "total": len(points),
            "hasMore": start_index + len(points) < self.total,
        }
