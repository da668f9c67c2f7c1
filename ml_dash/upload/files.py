"""The file stage of the engine: each file of the manifest streamed from disk, small ones many to a request.

A mixin of :class:`~ml_dash.upload.engine.Engine` (it uses its request slots, its client and its
progress): ``_files`` submits the experiment's files to the stream pool and returns one future
per file. A file is read once: a large one is hashed while it streams out, a small one (up to
``SMALL_FILE``) is read whole, checked against its checksum and sent with others in one request
(``BATCH_BYTES`` / ``BATCH_FILES`` at most) when the server has the batch route: the first
batch asks, with an empty request, and the answer holds for the run; on servers without it
(0.5.8's) every file goes in its own request, as before. After a failed attempt the server is
asked which files it has after all, and only the others are sent again: no server, ours or
0.5.8's, ever gets a second copy.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_dash.api.client import RETRY_STATUSES, BatchFile, ServerUnreachable
from ml_dash.errors import ApiError, ChecksumMismatchError
from ml_dash.upload.results import StreamResult

if TYPE_CHECKING:
    from ml_dash.upload.plan import ExperimentPlan, StreamPlan

__all__ = ["BATCH_BYTES", "BATCH_FILES", "SMALL_FILE", "FileStage", "file_label"]

SMALL_FILE = 1024 * 1024  # files up to this size are sent many to a request
BATCH_BYTES = 4 * 1024 * 1024  # bytes of files in one batch request, at most (memory: one batch per worker)
BATCH_FILES = 256  # files in one batch request, at most (the server's manifest field stays small)

Live = set[tuple[str, str, str]]
_Item = tuple["StreamPlan", Future[StreamResult]]
_Ready = tuple["StreamPlan", Future[StreamResult], BatchFile]


class FileStage:
    """File uploads for the engine (see the module docstring)."""

    client: Any
    progress: Any
    stopped: Any
    _call: Any
    _stop: Any
    _guard: Any
    _batches: bool | None = None  # does the server take many files in one request (asked once per engine)
    _asking = threading.Lock()  # only the first batch asks; the others wait for its answer

    def _files(self, e: ExperimentPlan, streams: list[StreamPlan], pool: ThreadPoolExecutor, exp_id: str,
               live: Live) -> list[Future[StreamResult]]:
        """One future per file: a large file (or one the server has) is its own task in the pool,
        small ones are grouped into batches, each batch one task that settles its files' futures."""
        futures: list[Future[StreamResult]] = []
        batch: list[_Item] = []
        size = 0
        for s in streams:
            entry = s.file
            if (entry is None or s.source is None or entry.sizeBytes > SMALL_FILE or self._batches is False
                    or (entry.path, entry.filename, entry.checksum) in live):
                futures.append(pool.submit(self._guard, e, s, self._file, exp_id, live))
                continue
            if batch and (size + entry.sizeBytes > BATCH_BYTES or len(batch) >= BATCH_FILES):
                pool.submit(self._batch, e, batch, pool, exp_id, live)
                batch, size = [], 0
            future: Future[StreamResult] = Future()
            batch.append((s, future))
            futures.append(future)
            size += entry.sizeBytes
        if batch:
            pool.submit(self._batch, e, batch, pool, exp_id, live)
        return futures

    def _file(self, e: ExperimentPlan, s: StreamPlan, exp_id: str, live: Live) -> StreamResult:
        entry = s.file
        assert entry is not None and s.source is not None
        result = StreamResult("file", file_label(s))
        if (entry.path, entry.filename, entry.checksum) in live:
            result.already = 1
        elif self._upload_once(exp_id, s.source, entry):
            result.sent = 1
            result.bytes = entry.sizeBytes
        else:
            result.already = 1
        self.progress.advance(e, entry.sizeBytes)
        return result

    def _upload_once(self, exp_id: str, source: Any, entry: Any) -> bool:
        """Upload one file, one attempt at a time; after a failed attempt, look first whether the
        server has the file after all (committed, then the answer was lost): no server, ours or
        0.5.8's, ever gets a second copy. True when sent now, False when it was there already."""
        policy = self.client.retry
        last: ApiError | None = None
        for attempt in range(policy.attempts):
            if last is not None:
                self.client.sleep(policy.delay(attempt - 1, getattr(last, "retry_after", None)))
                if self._has_file(exp_id, entry):
                    return False
            try:
                self._call(self.client.upload_file, exp_id, source, prefix=entry.path, filename=entry.filename,
                           checksum=entry.checksum, size=entry.sizeBytes, content_type=entry.contentType,
                           description=entry.description, tags=entry.tags, metadata=entry.metadata, attempts=1,
                           final=False)
                return True
            except ApiError as exc:
                if not _retryable(exc) or self.stopped is not None:  # stopped: no use waiting to try again
                    raise
                last = exc
        assert last is not None
        _gave_up(last, policy.attempts)
        self._stop(last)
        raise last

    def _has_file(self, exp_id: str, entry: Any) -> bool:
        there = self._there(exp_id)
        return there is not None and (entry.path, entry.filename, entry.checksum) in there

    def _there(self, exp_id: str) -> Live | None:
        """The experiment's live files on the server, or None when it cannot tell now."""
        try:
            files = self._call(self.client.list_files, exp_id)
        except ApiError:
            return None
        return {(f["path"], f["filename"], f["checksum"]) for f in files}

    # --- many small files to a request ------------------------------------------------------------------
    def _batch(self, e: ExperimentPlan, items: list[_Item], pool: ThreadPoolExecutor, exp_id: str,
               live: Live) -> None:
        """Settle every future of ``items``, whatever happens (the engine waits for each)."""
        try:
            if self._batch_route(exp_id):
                self._send_batch(e, items, pool, exp_id, live)
            else:
                self._one_by_one(e, items, pool, exp_id, live)
        except Exception as exc:  # noqa: BLE001 - the batch's failure is each of its files' failure
            self._fail(e, items, exc)
        except BaseException as exc:
            self._fail(e, items, exc)
            raise

    def _batch_route(self, exp_id: str) -> bool:
        """Whether the server takes many files in one request: asked once, with an empty batch."""
        with self._asking:
            if self._batches is None:
                try:
                    self._batches = self._call(self.client.upload_files, exp_id, [], attempts=1,
                                               final=False) is not None
                except ApiError as exc:
                    if _retryable(exc):
                        return False  # no answer now: these files go one by one, the next batch asks again
                    self._batches = False  # a server that does not understand the question: as without it
            return self._batches

    def _one_by_one(self, e: ExperimentPlan, items: list[_Item], pool: ThreadPoolExecutor, exp_id: str,
                    live: Live) -> None:
        """Each file in its own request, as many at once as the pool runs."""
        for s, future in items:
            pool.submit(self._guard, e, s, self._file, exp_id, live).add_done_callback(
                lambda done, s=s, future=future: _relay(done, s, future))

    def _read(self, e: ExperimentPlan, items: list[_Item]) -> tuple[list[_Ready], list[_Item]]:
        """Each file read whole and checked: those to batch, and those to stream alone."""
        ready: list[_Ready] = []
        alone: list[_Item] = []
        for s, future in items:
            try:
                data = _read_small(s)
            except Exception as exc:  # noqa: BLE001 - that file's failure (changed or unreadable), reported
                _settle(future, self._guard(e, s, _raising(exc)))
                continue
            if data is None:  # larger on disk than the manifest says: streamed alone, its hash tells
                alone.append((s, future))
                continue
            entry = s.file
            assert entry is not None
            ready.append((s, future, BatchFile(entry.path, entry.filename, entry.checksum, entry.contentType, data,
                                               entry.description, list(entry.tags), entry.metadata)))
        return ready, alone

    def _send_batch(self, e: ExperimentPlan, items: list[_Item], pool: ThreadPoolExecutor, exp_id: str,
                    live: Live) -> None:
        ready, alone = self._read(e, items)
        self._one_by_one(e, alone, pool, exp_id, live)
        policy = self.client.retry
        last: ApiError | None = None
        for attempt in range(policy.attempts):
            if last is not None:
                self.client.sleep(policy.delay(attempt - 1, getattr(last, "retry_after", None)))
                there = self._there(exp_id)  # stored before the answer was lost: not sent again
                if there:
                    for s, future, f in ready:
                        if (f.prefix, f.filename, f.checksum) in there:
                            _settle(future, self._guard(e, s, self._already))
                    ready = [r for r in ready if not r[1].done()]
                if not ready:
                    return
            try:
                answers = self._call(self.client.upload_files, exp_id, [f for _, _, f in ready], attempts=1,
                                     final=False)
            except ApiError as exc:
                if exc.status == 413:  # the server's body limit is smaller: one file per request fits it
                    self._one_by_one(e, [(s, future) for s, future, _ in ready], pool, exp_id, live)
                    return
                if not _retryable(exc) or self.stopped is not None:
                    raise
                last = exc
                continue
            if answers is None:  # the route went away (another server behind the same address)
                self._one_by_one(e, [(s, future) for s, future, _ in ready], pool, exp_id, live)
                return
            for (s, future, _), answer in zip(ready, answers, strict=True):
                _settle(future, self._guard(e, s, self._answered, answer))
            return
        assert last is not None
        _gave_up(last, policy.attempts)
        self._stop(last)
        raise last

    def _answered(self, e: ExperimentPlan, s: StreamPlan, answer: dict[str, Any]) -> StreamResult:
        entry = s.file
        assert entry is not None
        error = answer.get("error")
        if isinstance(error, dict) or "file" not in answer:
            error = error if isinstance(error, dict) else {}
            raise ApiError(str(error.get("message") or "the server did not store the file"),
                           status=answer.get("status"),
                           hint=error.get("hint") or "upload it again; the server log has the details")
        result = StreamResult("file", file_label(s))
        if answer.get("created", True):
            result.sent, result.bytes = 1, entry.sizeBytes
        else:
            result.already = 1
        self.progress.advance(e, entry.sizeBytes)
        return result

    def _already(self, e: ExperimentPlan, s: StreamPlan) -> StreamResult:
        entry = s.file
        assert entry is not None
        self.progress.advance(e, entry.sizeBytes)
        return StreamResult("file", file_label(s), already=1)

    def _fail(self, e: ExperimentPlan, items: list[_Item], exc: BaseException) -> None:
        for s, future in items:
            if not future.done():
                _settle(future, self._guard(e, s, _raising(exc)))


def _read_small(s: StreamPlan) -> bytes | None:
    """The file's bytes, checked against the manifest's checksum (one read); None when the file is
    larger than the manifest says (then it is streamed on its own, as any large file)."""
    entry = s.file
    assert entry is not None and s.source is not None
    with open(Path(s.source), "rb") as f:
        data = f.read(entry.sizeBytes + 1)
    if len(data) > entry.sizeBytes:
        return None
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.checksum:
        raise ChecksumMismatchError(str(s.source), entry.checksum, actual)
    return data


def _raising(exc: BaseException) -> Callable[..., StreamResult]:
    def fail(*_: Any) -> StreamResult:
        if isinstance(exc, Exception):
            raise exc
        raise ApiError(f"not sent: {type(exc).__name__}", hint="run the upload again with --resume") from exc
    return fail


def _relay(done: Future[StreamResult], s: StreamPlan, future: Future[StreamResult]) -> None:
    """The single upload's result as the batched file's (an interrupted one as its failure)."""
    try:
        result = done.result()
    except BaseException as exc:  # noqa: BLE001 - the engine waits for this future: it must be settled
        result = StreamResult("file", file_label(s), error=f"not sent: {type(exc).__name__}")
    _settle(future, result)


def _settle(future: Future[StreamResult], result: StreamResult) -> None:
    if not future.done():
        future.set_result(result)


def _gave_up(exc: ApiError, attempts: int) -> None:
    """Each request was one attempt of ours: the message counts them all."""
    message = exc.message.removesuffix(" (gave up after 1 attempt)")
    exc.message = f"{message} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})"


def _retryable(exc: ApiError) -> bool:
    return isinstance(exc, ServerUnreachable) or exc.status in RETRY_STATUSES


def file_label(s: StreamPlan) -> str:
    entry = s.file
    if entry is None:
        return s.name
    return f"{entry.path.rstrip('/')}/{entry.filename}"
