"""The background sender of remote and hybrid mode: training never waits for the network.

Records are queued with their position already assigned (a log line's sequence number,
a metric point's index), and a daemon thread sends them in batches every
``flush_interval`` seconds or when a batch is full. A failed send keeps the records
queued and is tried again later; positions make every retry idempotent on the server.
The queue is bounded: past ``max_pending`` records a stream stops queueing and is
marked *behind* (in hybrid mode the local tree still has everything and
``ml-dash upload`` sends the rest; in remote mode the loss is reported).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from ml_dash.api.client import ApiClient
from ml_dash.errors import MLDashError

__all__ = ["Sender", "SenderSettings"]


@dataclass(frozen=True)
class SenderSettings:
    flush_interval: float = 1.0
    log_batch: int = 100
    metric_batch: int = 1000
    max_pending: int = 1_000_000
    close_timeout: float = 30.0


@dataclass
class _Stream:
    kind: str  # "logs" | "metric"
    name: str
    items: deque[tuple[int, Any]] = field(default_factory=deque)  # (position, record)
    extra: dict[str, Any] | None = None  # metric description/tags/metadata (sent with each batch)
    behind: bool = False  # dropped records because the queue was full


class Sender:
    def __init__(self, client: ApiClient, experiment_id: str, settings: SenderSettings) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.settings = settings
        self._streams: OrderedDict[tuple[str, str], _Stream] = OrderedDict()
        self._params: dict[str, Any] = {}
        self._pending = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._sending = threading.Lock()
        self.last_error: str | None = None
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
        if self._pending + len(items) > self.settings.max_pending:
            stream.behind = True
            return
        stream.items.extend(items)
        self._pending += len(items)
        if len(stream.items) >= batch:
            self._wake.set()

    def log(self, position: int, entry: dict[str, Any]) -> None:
        with self._lock:
            self._put(self._stream("logs", "logs"), [(position, entry)], self.settings.log_batch)

    def points(self, name: str, start: int, points: list[dict[str, Any]], extra: dict[str, Any] | None) -> None:
        with self._lock:
            stream = self._stream("metric", name)
            if extra and stream.extra is None:
                stream.extra = extra
            self._put(stream, [(start + i, p) for i, p in enumerate(points)], self.settings.metric_batch)

    def params(self, flat: dict[str, Any]) -> None:
        with self._lock:
            self._params.update(flat)
        self._wake.set()

    # --- the thread ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self.settings.flush_interval)
            self._wake.clear()
            self.send_pending()

    def send_pending(self) -> bool:
        """Send everything queued now; True when nothing is left (an error leaves it queued)."""
        with self._sending:
            try:
                self._send_params()
                for stream in list(self._streams.values()):
                    self._send_stream(stream)
                self.last_error = None
            except MLDashError as exc:
                self.last_error = exc.message
                return False
        with self._lock:
            return self._pending == 0 and not self._params

    def _send_params(self) -> None:
        with self._lock:
            params = dict(self._params)
        if params:
            self.client.merge_params(self.experiment_id, params)
            with self._lock:
                for key, value in params.items():
                    if self._params.get(key) is value:
                        del self._params[key]

    def _send_stream(self, stream: _Stream) -> None:
        size = self.settings.log_batch if stream.kind == "logs" else self.settings.metric_batch
        while True:
            with self._lock:
                batch = [stream.items[i] for i in range(min(size, len(stream.items)))]
            if not batch:
                return
            start = batch[0][0]
            if stream.kind == "logs":
                self.client.append_logs(self.experiment_id, [{**e, "sequenceNumber": p} for p, e in batch])
            else:
                self.client.append_batch(self.experiment_id, stream.name, [p for _, p in batch], start, stream.extra)
            with self._lock:
                for _ in batch:
                    stream.items.popleft()
                self._pending -= len(batch)

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
        return ok

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending + (1 if self._params else 0)

    @property
    def behind(self) -> list[str]:
        with self._lock:
            return [s.name for s in self._streams.values() if s.behind]
