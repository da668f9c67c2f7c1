"""The background sender of remote and hybrid mode: training never waits for the network.

Records are queued with the writer's own sequence number (per stream: the n-th log line
or point this writer produced; in hybrid mode the local tree's position), and a daemon
thread sends them in batches every ``flush_interval`` seconds or when a batch is full,
tagged with the writer's id. The server applies each (writer, number) once and assigns
the positions itself, so retries are idempotent and any number of processes can write
one experiment.

In remote mode a metric's queue is its spool file (``tail``): the training loop only
writes its line locally, and this thread reads the lines written since the last
acknowledged one and sends their data parts as they are (no parse, no second encoding).

Nothing is dropped silently:

* The queue is bounded (``max_pending`` records): a producer that would overflow it waits
  for the server (back-pressure), with a warning when the wait is long.
* Each stream is sent on its own: a stream the server refuses never holds up the others.
* A batch the server refuses for good (a 4xx other than 408/429) is taken off the queue
  and counted as failed, with its stream, numbers and the server's message; a batch that
  could not be sent (network, 5xx) stays queued and is tried again.
* :meth:`Sender.unsent` counts exactly what the server has not acknowledged.
"""

from __future__ import annotations

import itertools
import re
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_dash.api.client import RETRY_STATUSES, ApiClient
from ml_dash.errors import ApiError, MLDashError

__all__ = ["Sender", "SenderSettings", "StreamFailure", "permanent"]


@dataclass(frozen=True)
class SenderSettings:
    flush_interval: float = 1.0
    log_batch: int = 100
    metric_batch: int = 1000
    max_pending: int = 1_000_000
    close_timeout: float = 30.0
    # A producer blocked this long on a full queue prints one warning (it keeps waiting).
    backpressure_warning: float = 10.0


@dataclass(frozen=True)
class StreamFailure:
    """Records the server refused for good: never retried, always reported."""

    stream: str  # "logs" | "metric 'NAME'" | "parameters"
    first: int | None  # the writer's numbers of the refused records (None for parameters)
    last: int | None
    count: int
    message: str
    hint: str | None = None

    def describe(self) -> str:
        where = f" (writer numbers {self.first}..{self.last})" if self.first is not None else ""
        return f"{self.stream}: {self.count} record(s) refused{where}: {self.message}" + (
            f"; {self.hint}" if self.hint else "")


# One metric line as the SDK writes it (0.5.8's format); the data part is sent as it is.
_METRIC_LINE = re.compile(rb'\{"index": (\d+), "data": (.*), "createdAt": "[^"\n]*"\}\n')
_TAIL_CHUNK = 4 * 1024 * 1024  # bytes of a spool file read (and sent) at a time


@dataclass
class _Tail:
    """A metric whose queue is its spool file: sent from ``offset`` on, as written by this process."""

    name: str
    path: Path
    extra: dict[str, Any] | None
    offset: int = 0

    @property
    def label(self) -> str:
        return f"metric {self.name!r}"

    def unread(self) -> int:
        """Whole lines written but not acknowledged yet."""
        lines = 0
        try:
            with open(self.path, "rb") as f:  # streamed: a spool may have grown large while the server was away
                f.seek(self.offset)
                while chunk := f.read(_TAIL_CHUNK):
                    lines += chunk.count(b"\n")
        except OSError:
            return 0
        return lines


@dataclass
class _Stream:
    kind: str  # "logs" | "metric"
    name: str
    items: deque[tuple[int, Any]] = field(default_factory=deque)  # (writer number, record)
    extra: dict[str, Any] | None = None  # metric description/tags/metadata (sent with each batch)
    error: str | None = None  # the last transient error of this stream

    @property
    def label(self) -> str:
        return "logs" if self.kind == "logs" else f"metric {self.name!r}"


def permanent(exc: MLDashError) -> bool:
    """A refusal that sending again cannot fix (bad request, conflict, forbidden, ...)."""
    status = getattr(exc, "status", None)
    return isinstance(exc, ApiError) and status is not None and 400 <= status < 500 and status not in RETRY_STATUSES


class Sender:
    def __init__(self, client: ApiClient, experiment_id: str, settings: SenderSettings, writer_id: str) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.settings = settings
        self.writer_id = writer_id
        self._streams: OrderedDict[tuple[str, str], _Stream] = OrderedDict()
        self._params: dict[str, Any] = {}
        self._pending = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # signalled whenever the queue shrinks
        self._wake = threading.Event()
        self._stop = False
        self._sending = threading.Lock()
        self.failures: list[StreamFailure] = []
        self._tails: dict[str, _Tail] = {}
        self.last_error: str | None = None
        self._warned_full = False
        self._thread = threading.Thread(target=self._loop, name="ml-dash-sender", daemon=True)
        self._thread.start()

    # --- producers (the training loop) -------------------------------------------------------------
    def _stream(self, kind: str, name: str) -> _Stream:
        key = (kind, name)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(kind, name)
        return stream

    def _put(self, stream: _Stream, items: list[tuple[int, Any]], batch: int) -> None:
        """Queue ``items``; with the queue full, wait for the server to take some (never drop)."""
        # A batch larger than the whole queue is let in alone, or it could never be queued.
        limit = max(self.settings.max_pending, len(items))
        started = time.monotonic() if self._pending + len(items) > limit else 0.0
        while self._pending + len(items) > limit:
            self._wake.set()
            self._room.wait(timeout=1.0)
            if not self._warned_full and time.monotonic() - started > self.settings.backpressure_warning:
                self._warned_full = True
                print(f"ml-dash: {self._pending} record(s) are waiting for the server "
                      f"({self.last_error or 'it is slow'}); logging waits until it takes them", file=sys.stderr)
        stream.items.extend(items)
        self._pending += len(items)
        if len(stream.items) >= batch:
            self._wake.set()

    def log(self, number: int, entry: dict[str, Any]) -> None:
        with self._lock:
            self._put(self._stream("logs", "logs"), [(number, entry)], self.settings.log_batch)

    def points(self, name: str, first: int, points: list[Any], extra: dict[str, Any] | None) -> None:
        """Queue points (dicts, or their JSON text) numbered ``first, first+1, ...``."""
        with self._lock:
            stream = self._streams.get(("metric", name)) or self._stream("metric", name)
            if extra and stream.extra is None:
                stream.extra = extra
            items = [(first, points[0])] if len(points) == 1 else list(zip(range(first, first + len(points)), points, strict=True))
            self._put(stream, items, self.settings.metric_batch)

    def tail(self, name: str, path: Path, extra: dict[str, Any] | None) -> None:
        """Send metric ``name`` from its spool file (``data.jsonl``, written only by this process):
        the training loop then pays for nothing but its local write."""
        with self._lock:
            if name not in self._tails:
                self._tails[name] = _Tail(name, path, extra)

    def params(self, flat: dict[str, Any]) -> None:
        with self._lock:
            self._params.update(flat)
        self._wake.set()

    # --- the thread ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        last_all = time.monotonic()
        while not self._stop:
            woken = self._wake.wait(self.settings.flush_interval)
            self._wake.clear()
            # Woken because a batch filled up: send full batches only. Sending every partial
            # remainder at once would keep this thread in a loop of small requests, holding the
            # GIL against the training loop; the remainders go at the next interval.
            full_only = woken and time.monotonic() - last_all < self.settings.flush_interval
            if not full_only:
                last_all = time.monotonic()
            self.send_pending(full_only=full_only)

    def send_pending(self, full_only: bool = False) -> bool:
        """Send what is queued now (``full_only``: whole batches only), each stream on its own;
        True when nothing is left."""
        with self._sending:
            errors = [self._guard("parameters", self._send_params)]
            for stream in list(self._streams.values()):
                errors.append(self._guard(stream.label, self._send_stream, stream, full_only))
            # A tail sent without an error has sent every whole line written before this call.
            tail_errors = [self._guard(tail.label, self._send_tail, tail) for tail in list(self._tails.values())]
            errors += tail_errors
            self.last_error = next((e for e in errors if e), None)
        with self._lock:
            return self._pending == 0 and not self._params and not any(tail_errors)

    def _guard(self, label: str, send: Any, *args: Any) -> str | None:
        try:
            send(*args)
            return None
        except MLDashError as exc:
            return f"{label}: {exc.message}"

    def _send_params(self) -> None:
        with self._lock:
            params = dict(self._params)
        if not params:
            return
        try:
            self.client.merge_params(self.experiment_id, params)
        except MLDashError as exc:
            if not permanent(exc):
                raise
            self.failures.append(StreamFailure("parameters", None, None, len(params), exc.message, exc.hint))
        with self._lock:
            for key, value in params.items():
                if self._params.get(key) is value:
                    del self._params[key]

    def _send_stream(self, stream: _Stream, full_only: bool = False) -> None:
        size = self.settings.log_batch if stream.kind == "logs" else self.settings.metric_batch
        while True:
            with self._lock:
                if full_only and len(stream.items) < size:
                    return
                batch = list(itertools.islice(stream.items, min(size, len(stream.items))))
            if not batch:
                stream.error = None
                return
            try:
                self._send_batch(stream, batch)
            except MLDashError as exc:
                if not permanent(exc):
                    stream.error = exc.message
                    raise
                self.failures.append(StreamFailure(stream.label, batch[0][0], batch[-1][0], len(batch),
                                                   exc.message, exc.hint))
            with self._lock:
                for _ in batch:
                    stream.items.popleft()
                self._pending -= len(batch)
                self._room.notify_all()

    def _send_tail(self, tail: _Tail) -> None:
        """Send the whole lines written since the last acknowledged one, in chunks."""
        while True:
            with open(tail.path, "rb") as f:
                f.seek(tail.offset)
                chunk = f.read(_TAIL_CHUNK)
            end = chunk.rfind(b"\n") + 1
            if end == 0:
                return
            chunk = chunk[:end]
            numbers, points = [], []
            for m in _METRIC_LINE.finditer(chunk):
                numbers.append(int(m.group(1)))
                points.append(m.group(2).decode())
            if points:
                follow_on = numbers[-1] - numbers[0] == len(numbers) - 1
                try:
                    self.client.append_batch(self.experiment_id, tail.name, points, None, tail.extra,
                                             writer_id=self.writer_id,
                                             writer_seqs=numbers[0] if follow_on else numbers, encoded=True)
                except MLDashError as exc:
                    if not permanent(exc):
                        raise
                    self.failures.append(StreamFailure(tail.label, numbers[0], numbers[-1], len(numbers),
                                                       exc.message, exc.hint))
            tail.offset += end

    def _send_batch(self, stream: _Stream, batch: list[tuple[int, Any]]) -> None:
        if stream.kind == "logs":
            self.client.append_logs(self.experiment_id, [{**e, "writerSeq": n} for n, e in batch],
                                    writer_id=self.writer_id)
            return
        numbers = [n for n, _ in batch]
        follow_on = numbers[-1] - numbers[0] == len(numbers) - 1 and numbers == sorted(numbers)
        points = [p for _, p in batch]
        self.client.append_batch(self.experiment_id, stream.name, points, None, stream.extra,
                                 writer_id=self.writer_id, writer_seqs=numbers[0] if follow_on else numbers,
                                 encoded=isinstance(points[0], str))

    # --- shutdown ---------------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Block until the queue is empty or ``timeout`` passes; True when everything was sent."""
        deadline = time.monotonic() + (self.settings.close_timeout if timeout is None else timeout)
        while True:
            if self.send_pending():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def close(self, timeout: float | None = None) -> bool:
        ok = self.flush(timeout)
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=5)
        return ok and not self.failures

    @property
    def pending(self) -> int:
        """Records (and a pending parameter update, as one) not acknowledged and still queued."""
        with self._lock:
            return self._pending + (1 if self._params else 0)

    def refused(self) -> list[StreamFailure]:
        """The refusals, one per stream (counts summed, number ranges spanned, first message)."""
        merged: dict[str, StreamFailure] = {}
        for f in self.failures:
            have = merged.get(f.stream)
            if have is None:
                merged[f.stream] = f
                continue
            numbers = [n for n in (have.first, have.last, f.first, f.last) if n is not None]
            merged[f.stream] = StreamFailure(f.stream, min(numbers, default=None), max(numbers, default=None),
                                             have.count + f.count, have.message, have.hint)
        return list(merged.values())

    def unsent(self) -> dict[str, int]:
        """Per stream, exactly the records the server has not acknowledged (queued or refused)."""
        out: dict[str, int] = {}
        with self._lock:
            for stream in self._streams.values():
                if stream.items:
                    out[stream.label] = len(stream.items)
            if self._params:
                out["parameters"] = len(self._params)
        for tail in self._tails.values():
            lines = tail.unread()
            if lines:
                out[tail.label] = out.get(tail.label, 0) + lines
        for failure in self.failures:
            out[failure.stream] = out.get(failure.stream, 0) + failure.count
        return out
