"""Append-only JSONL writers for logs and metric points, safe across processes.

Each appender keeps its file open (``O_APPEND``) and, per record or batch, takes the file's
``flock``, looks whether another process appended since (one ``lseek`` to the end), writes
the whole text with a single ``write`` and releases the lock. Counters that 0.5.8 kept in
side files (``logs/.log_sequence``, ``metadata.json``'s ``nextIndex``) are derived from
the JSONL itself, which is the source of truth, and the side files are rewritten
atomically on flush (at most once per ``FLUSH_INTERVAL`` while appending, and always on
close), not once per record as 0.5.8 did: that is most of the speed-up.

The single-record ``append`` methods are written out flat (no helper calls, no closures):
at a few microseconds per record, every Python call shows. A batch of flat records is
formatted from a template, a thousand lines per ``%`` (see ``_format_batch`` and
:func:`ml_dash.records.jsonio.flat_columns`), and written with one ``write``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from itertools import repeat, starmap
from pathlib import Path
from typing import Any

from ml_dash.errors import InvalidInputError, RecordError
from ml_dash.records import jsonio
from ml_dash.records.clock import iso_second, utc_iso_from_ns, utc_now_iso
from ml_dash.records.layout import ExperimentPaths
from ml_dash.records.logs import log_line_tail
from ml_dash.records.metrics import MetricMetadata, MetricPoint, local_metric_id
from ml_dash.records.read import Problem, iter_jsonl, load_record
from ml_dash.sdk.locks import lock_fd, unlock_fd

__all__ = ["FLUSH_INTERVAL", "LogAppender", "MetricAppender"]

FLUSH_INTERVAL = 1.0  # seconds between side-file rewrites while appending
_TAIL_CHUNK = 8192
_FORMAT_RUN = 1000  # lines formatted by one % (a batch's template is this many lines, at most)
_CLOSED = -1  # _fd of a closed appender
_FORKED = -2  # _fd in a forked child: open descriptors of its own before the next write

_time_ns = time.time_ns
_join = "".join
# json.dumps's own C encoder, built once (see jsonio): called here, it saves a call per point.
_ENCODE = jsonio._ENCODE or (lambda obj, _indent: (json.dumps(obj),))
_monotonic = time.monotonic
_write_fd = os.write
_lseek = os.lseek
_SEEK_END = os.SEEK_END
try:  # the locks module's lock_fd/unlock_fd, without the extra Python call per record
    import fcntl

    _flock = fcntl.flock
    _LOCK_EX, _LOCK_UN = fcntl.LOCK_EX, fcntl.LOCK_UN
except ImportError:  # pragma: no cover - Windows: no inter-process exclusion (see locks.py)

    def _flock(fd: int, operation: int) -> None:
        return None

    _LOCK_EX = _LOCK_UN = 0

_live: weakref.WeakSet[_Appender] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child shares the parent's open file descriptions, and flock would not
    # exclude the two: the next write opens descriptors of its own. A thread of the parent
    # may have held the thread lock at the fork; the child's copy would never be released.
    for appender in list(_live):
        appender._thread_lock = threading.Lock()
        if appender._fd >= 0:
            appender._inherited_fd = appender._fd
            appender._fd = _FORKED


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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


def _format_batch(template: str, columns: list[Any], start: int, stamps_ns: list[int]) -> tuple[str, str, str]:
    """The JSONL text of a batch (indexes from ``start``, one clock reading per point) and its
    first and last ``createdAt``. ``template % row`` is a point's JSON for each row of ``zip(*columns)``.

    Each run of up to ``_FORMAT_RUN`` lines is one ``%``: the line's template repeated once per
    point, its arguments (index, the point's values, the stamp; point after point) laid out in
    one list by slice assignments.
    """
    count = len(stamps_ns)
    if not count:
        now = utc_iso_from_ns(_time_ns())
        return "", now, now
    sec = stamps_ns[0] // 1_000_000_000
    base = sec * 1_000_000_000
    if base + 1000 <= min(stamps_ns) and max(stamps_ns) < base + 1_000_000_000:
        # All in one second and none on a whole second (such a stamp has no fraction): the
        # stamps differ only in their six digits, which go into the line's template.
        prefix = iso_second(sec)
        line = '{"index": %d, "data": ' + template + ', "createdAt": "' + prefix + '.%06dZ"}\n'
        stamps: list[Any] = [(ns - base) // 1000 for ns in stamps_ns]
        first, last = f"{prefix}.{stamps[0]:06d}Z", f"{prefix}.{stamps[-1]:06d}Z"
    else:
        line = '{"index": %d, "data": ' + template + ', "createdAt": "%s"}\n'
        stamps = list(map(utc_iso_from_ns, stamps_ns))
        first, last = stamps[0], stamps[-1]
    width = len(columns) + 2
    texts = []
    run_template = line * min(count, _FORMAT_RUN)
    for lo in range(0, count, _FORMAT_RUN):
        hi = min(count, lo + _FORMAT_RUN)
        args: list[Any] = [None] * ((hi - lo) * width)
        args[0::width] = range(start + lo, start + hi)
        for offset, column in enumerate(columns, 1):
            args[offset::width] = column[lo:hi]
        args[width - 1::width] = stamps[lo:hi]
        texts.append((run_template if hi - lo == _FORMAT_RUN or lo == 0 else line * (hi - lo)) % tuple(args))
    return "".join(texts), first, last


class _Appender:
    """Shared machinery: the open descriptor, the locks, the tail check, the flush clock."""

    # Set when this process is the file's only writer (remote mode's private spool): appends then
    # skip the flock and the size check; each line is still one write(), so a kill -9 keeps it.
    exclusive = False
    _inherited_fd = _CLOSED

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd = _CLOSED
        self._read_fd = _CLOSED
        self._known_size = -1
        self._last_flush = _monotonic()
        self._dirty = False
        self._open()
        _live.add(self)

    # --- descriptor management -------------------------------------------------------
    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._read_fd = os.open(self.path, os.O_RDONLY)
        self._known_size = -1

    def close(self) -> None:
        with self._thread_lock:
            if self._fd != _CLOSED:
                self._flush_locked(force=True)
                os.close(self._fd)
                os.close(self._read_fd)
                self._fd = _CLOSED

    def _reopen(self) -> int:
        """The descriptor to write to when ``_fd`` is not one (closed, or inherited by a fork)."""
        if self._fd == _CLOSED:
            raise InvalidInputError(f"{self.path} is closed", hint="the experiment was closed; start it again")
        # Forked: the inherited descriptors are the child's copies (closing them leaves the
        # parent's alone); the parent's tail position means nothing to us, so catch up afresh.
        for fd in (self._inherited_fd, self._read_fd):
            try:
                os.close(fd)
            except OSError:  # pragma: no cover - already closed by the child itself
                pass
        self._open()
        return self._fd

    def _ensure_open(self) -> None:
        if self._fd < 0:
            self._reopen()

    # --- the critical section ----------------------------------------------------------
    def _write(self, build: Any) -> Any:
        """Under both locks: catch up with other writers, build the text, write it once.

        ``build()`` returns ``(text, result, commit)``; ``commit()`` runs once the text is on
        disk (so a failed build or write changes no counter).
        """
        with self._thread_lock:
            fd = self._fd
            if fd < 0:
                fd = self._reopen()
            shared = not (self.exclusive and self._known_size >= 0)
            if shared:
                _flock(fd, _LOCK_EX)
            try:
                # The end of the file, as fstat's st_size would give it, without building a stat result.
                size = _lseek(fd, 0, _SEEK_END) if shared else self._known_size
                if size != self._known_size:
                    self._catch_up(size)
                text, result, commit = build()
                data = text.encode()
                if self._needs_newline:
                    # A previous writer died mid-line: keep its fragment on a line of its own.
                    data = b"\n" + data
                    self._needs_newline = False
                written = _write_fd(fd, data)
                if written != len(data):  # pragma: no cover - disk full
                    raise OSError(f"short write to {self.path}")
                commit()
                self._known_size = size + written
                self._dirty = True
                if _monotonic() - self._last_flush >= FLUSH_INTERVAL:
                    self._flush_side_files()
                return result
            finally:
                if shared:
                    _flock(fd, _LOCK_UN)

    def _catch_up(self, size: int) -> None:
        self._needs_newline = size > 0 and os.pread(self._read_fd, 1, size - 1) != b"\n"
        self._observe(_last_json_line(self._read_fd, size) if size else None)
        self._known_size = size

    def flush(self) -> None:
        with self._thread_lock:
            if self._fd != _CLOSED:
                self._flush_locked(force=False)

    def refresh(self) -> None:
        """Catch up with lines other writers (or a killed earlier run) appended, so that the
        counters (``next_index``, ``next_seq``) say what the file holds now."""
        with self._thread_lock:
            fd = self._fd if self._fd >= 0 else self._reopen()
            _flock(fd, _LOCK_EX)
            try:
                size = _lseek(fd, 0, _SEEK_END)
                if size != self._known_size:
                    self._catch_up(size)
            finally:
                _flock(fd, _LOCK_UN)

    def _flush_locked(self, force: bool) -> None:
        if not (self._dirty or force):
            return
        self._ensure_open()
        lock_fd(self._fd)
        try:
            size = _lseek(self._fd, 0, _SEEK_END)
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
        # Serialise outside the lock; under it only the sequence number is put in front.
        # (_write's steps, written out: this runs once per log line.)
        tail = log_line_tail(timestamp, level, message, metadata)
        with self._thread_lock:
            fd = self._fd
            if fd < 0:
                fd = self._reopen()
            shared = not (self.exclusive and self._known_size >= 0)
            if shared:
                _flock(fd, _LOCK_EX)
            try:
                size = _lseek(fd, 0, _SEEK_END) if shared else self._known_size
                if size != self._known_size:
                    self._catch_up(size)
                seq = self.next_seq
                data = f'{{"sequenceNumber": {seq}{tail}'.encode()
                if self._needs_newline:
                    data = b"\n" + data
                    self._needs_newline = False
                written = _write_fd(fd, data)
                if written != len(data):  # pragma: no cover - disk full
                    raise OSError(f"short write to {self.path}")
                self.next_seq = seq + 1
                self._known_size = size + written
                self._dirty = True
                if _monotonic() - self._last_flush >= FLUSH_INTERVAL:
                    self._flush_side_files()
                return seq
            finally:
                if shared:
                    _flock(fd, _LOCK_UN)

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
        self.metric_id = local_metric_id(name)
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
        body = None
        if type(data) is dict:  # jsonio.dumps_line's fast path, without the call
            try:
                body = _join(_ENCODE(data, 0))
            except Exception:  # noqa: BLE001 - dumps_line below raises the real error, or succeeds
                pass
        if body is None:
            body = jsonio.dumps_line(data, "metric point")
        if encoded is not None:
            encoded.append(body)
        created_at = utc_now_iso()
        # _write's steps, written out: this runs once per point.
        with self._thread_lock:
            fd = self._fd
            if fd < 0:
                fd = self._reopen()
            shared = not (self.exclusive and self._known_size >= 0)
            if shared:
                _flock(fd, _LOCK_EX)
            try:
                size = _lseek(fd, 0, _SEEK_END) if shared else self._known_size
                if size != self._known_size:
                    self._catch_up(size)
                if self.meta is None:
                    self._ensure_meta(description, tags, metadata, created_at)
                index = self.next_index
                line = f'{{"index": {index}, "data": {body}, "createdAt": "{created_at}"}}\n'.encode()
                if self._needs_newline:
                    line = b"\n" + line
                    self._needs_newline = False
                written = _write_fd(fd, line)
                if written != len(line):  # pragma: no cover - disk full
                    raise OSError(f"short write to {self.path}")
                self.next_index = index + 1
                self.total = total = self.total + 1
                self.last_created_at = created_at
                self._known_size = size + written
                self._dirty = True
                if _monotonic() - self._last_flush >= FLUSH_INTERVAL:
                    self._flush_side_files()
            finally:
                if shared:
                    _flock(fd, _LOCK_UN)
        return {"metricId": self.metric_id, "index": str(index), "bufferedDataPoints": str(total),
                "chunkSize": 10000}

    def append_batch(self, points: list[dict[str, Any]], description: str | None, tags: list[str] | None,
                     metadata: dict[str, Any] | None, encoded: list[str] | None = None) -> dict[str, Any]:
        """Append the points with one ``write``; ``encoded`` (if given) receives each point's JSON."""
        count = len(points)
        flat = jsonio.flat_columns(points)
        if flat is not None and encoded is None:
            template, columns = flat
        else:
            if flat is None:
                bodies = jsonio.dumps_lines(points, "metric point")
            else:
                template, columns = flat
                bodies = list(map(template.__mod__, zip(*columns, strict=True))) if columns else [template] * count
            if encoded is not None:
                encoded.extend(bodies)
            template, columns = "%s", [bodies]

        def build() -> tuple[str, dict[str, Any], Any]:
            start = self.next_index
            # 0.5.8 reads the clock for each point of a batch, and so do we.
            stamps_ns = list(starmap(_time_ns, repeat((), count)))
            try:
                text, first, last = _format_batch(template, columns, start, stamps_ns)
            except ValueError:  # an int too long for str(): json.dumps refuses it too, and names the point
                jsonio.dumps_lines(points, "metric point")
                raise
            if self.meta is None:
                self._ensure_meta(description, tags, metadata, first)

            def commit() -> None:
                self.next_index = start + count
                self.total += count
                if count:
                    self.last_created_at = last

            return text, {"metricId": self.metric_id, "startIndex": str(start), "endIndex": str(start + count - 1),
                          "count": count, "bufferedDataPoints": str(self.total + count),
                          "chunkSize": 10000}, commit

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
            self.meta = MetricMetadata(metricId=self.metric_id, name=self.name,
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
