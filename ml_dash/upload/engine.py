"""Stage 4: execute a frozen plan against the API client.

Per experiment: create it, ask the server which records of this tree it has (see
``resume.py``), then send only what is missing: parameters, logs, metrics, files, its
``.dashrc`` (the seed's order; streams run in parallel, each in order), and the final status
if the tree records one. Then the folders' ``.dashrc`` files. A ``.dashrc`` is read back
first and only written when the server's text differs (see ``dashrc.py``). Appends carry the tree's writer id and each record's number in the tree (or,
against older servers, positions), so a retry or a re-run can never duplicate, and other
writers of the same experiment are never overwritten. One experiment's failure never
stops another; every failure is in the result. Memory is bounded by
``batch_size × workers``: JSONL is streamed and files are streamed from disk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ml_dash.api.client import RETRY_STATUSES, ApiClient, ServerUnreachable
from ml_dash.errors import ApiError, MLDashError
from ml_dash.records.logs import LogLine
from ml_dash.records.metrics import MetricPoint
from ml_dash.records.read import Problem, iter_jsonl
from ml_dash.upload.dashrc import FolderDashrc
from ml_dash.upload.plan import ExperimentPlan, Plan, StreamPlan
from ml_dash.upload.resume import Resume, resume_for
from ml_dash.upload.state import UploadState

__all__ = ["Engine", "ExperimentResult", "FolderResult", "Progress", "RunResult", "StreamResult"]


class Progress(Protocol):
    def experiment_started(self, plan: ExperimentPlan) -> None: ...
    def advance(self, plan: ExperimentPlan, nbytes: int) -> None: ...
    def experiment_done(self, result: ExperimentResult) -> None: ...


@dataclass
class StreamResult:
    kind: str
    name: str
    sent: int = 0
    already: int = 0  # on the server before this run: not sent again
    bytes: int = 0
    error: str | None = None
    note: str | None = None  # e.g. a .dashrc the server has no place for (an older server)


@dataclass
class FolderResult:
    """A folder's ``.dashrc``: "sent", "already" (the server had the same text), "unsupported"
    (the server has no .dashrc routes: not an error) or "failed" (``error`` says why)."""

    item: FolderDashrc
    outcome: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ExperimentResult:
    plan: ExperimentPlan
    experiment_id: str | None = None
    streams: list[StreamResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False  # completed in a previous run (--resume)

    @property
    def ok(self) -> bool:
        return not self.errors and all(s.error is None for s in self.streams)

    def total(self, kind: str, attr: str = "sent") -> int:
        return sum(getattr(s, attr) for s in self.streams if s.kind == kind)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.streams)

    @property
    def all_errors(self) -> list[str]:
        return self.errors + [f"{_stream_label(s)}: {s.error}" for s in self.streams if s.error]


@dataclass
class RunResult:
    experiments: list[ExperimentResult]
    seconds: float
    requests: int
    folders: list[FolderResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.experiments) and all(f.ok for f in self.folders)


class _NoProgress:
    def experiment_started(self, plan: ExperimentPlan) -> None: ...
    def advance(self, plan: ExperimentPlan, nbytes: int) -> None: ...
    def experiment_done(self, result: ExperimentResult) -> None: ...


class Engine:
    def __init__(self, client: ApiClient, *, workers: int = 4, progress: Progress | None = None) -> None:
        self.client = client
        self.workers = workers
        self.progress = progress or _NoProgress()
        self._slots = threading.BoundedSemaphore(workers)  # requests in flight, all experiments together
        # Set when the server became unreachable past the retry budget or refused the key: nothing
        # more is attempted (the problem is not any experiment's), and the run says so once.
        self.stopped: ApiError | None = None

    def _call(self, fn: Callable[..., Any], *args: Any, final: bool = True, **kwargs: Any) -> Any:
        """One request through the shared slots. ``final``: the client's whole retry budget was
        spent on it, so an unreachable server (or a refused key) stops the run."""
        if self.stopped is not None:
            raise ApiError(f"not sent: the upload stopped ({self.stopped.message})", status=self.stopped.status,
                           hint=self.stopped.hint)
        with self._slots:
            try:
                return fn(*args, **kwargs)
            except ApiError as exc:
                if final or exc.status == 401:
                    self._stop(exc)
                raise

    def _stop(self, exc: ApiError) -> None:
        # Unreachable: no connection, or a gateway/server saying it is unavailable (502-504), past the budget.
        if (isinstance(exc, ServerUnreachable) or exc.status in (401, 502, 503, 504)) and self.stopped is None:
            self.stopped = exc

    def run(self, plan: Plan, state: UploadState | None = None, skip: frozenset[str] = frozenset()) -> RunResult:
        start = time.perf_counter()
        before = self.client.requests
        n = len(plan.experiments)
        with ThreadPoolExecutor(max(1, min(self.workers, n)), thread_name_prefix="ml-dash-exp") as experiments, \
                ThreadPoolExecutor(self.workers, thread_name_prefix="ml-dash-stream") as streams:
            futures = [experiments.submit(self._experiment, e, streams, state, e.key in skip) for e in plan.experiments]
            results = [f.result() for f in futures]
        folders = [self._folder_dashrc(f) for f in plan.folder_dashrcs]
        return RunResult(results, time.perf_counter() - start, self.client.requests - before, folders)

    # --- one experiment -------------------------------------------------------------------------------
    def _experiment(self, e: ExperimentPlan, pool: ThreadPoolExecutor, state: UploadState | None,
                    skip: bool) -> ExperimentResult:
        result = ExperimentResult(plan=e, skipped=skip)
        if skip:
            self.progress.experiment_done(result)
            return result
        started = time.perf_counter()
        self.progress.experiment_started(e)
        if state is not None:
            state.started(e.key)
        try:
            exp = self._call(self.client.create_experiment, e.project, e.create_body)
            result.experiment_id = exp_id = str(exp["id"])
            there = self._call(self.client.streams, exp_id, e.writer_id)
            if there is None:  # a server with only the 0.5.8 routes: ask those
                there = self._call(self.client.progress_058, exp_id,
                                   [s.name for s in e.streams if s.kind == "metric"])
            for label, problem in e.file_problems:  # found by validation: a failure, never silently dropped
                result.streams.append(StreamResult("file", label, error=problem))
            if e.dashrc_problem:
                result.streams.append(StreamResult("dashrc", ".dashrc", error=e.dashrc_problem))
            live = {(f["path"], f["filename"], f["checksum"]) for f in there.get("files") or []}
            if e.params:
                result.streams.append(self._params(e, exp_id, there))
            futures: list[Future[StreamResult]] = []
            for s in e.streams:
                if s.kind in ("logs", "metric"):
                    resume = resume_for(there, s.kind, s.name, s.items, e.writer_id)
                    send = self._logs if s.kind == "logs" else self._metric
                    futures.append(pool.submit(self._guard, e, s, send, exp_id, resume))
                elif s.kind == "file":
                    futures.append(pool.submit(self._guard, e, s, self._file, exp_id, live))
                elif s.kind == "dashrc":
                    futures.append(pool.submit(self._guard, e, s, self._dashrc, exp_id))
            result.streams.extend(f.result() for f in futures)
            if e.status and result.ok:
                self._call(self.client.set_status, exp_id, e.status)
        except Exception as exc:  # noqa: BLE001 - one experiment's failure never stops the others
            result.errors.append(_said(exc))
        result.seconds = time.perf_counter() - started
        if state is not None:
            state.finished(e.key, result.ok)
        self.progress.experiment_done(result)
        return result

    def _guard(self, e: ExperimentPlan, s: StreamPlan, fn: Callable[..., StreamResult], *args: Any) -> StreamResult:
        try:
            return fn(e, s, *args)
        except Exception as exc:  # noqa: BLE001 - one stream's failure is that stream's, reported
            return StreamResult(s.kind, s.name if s.kind != "file" else _file_label(s), error=_said(exc))

    def _params(self, e: ExperimentPlan, exp_id: str, there: dict[str, Any]) -> StreamResult:
        params = e.params or {}
        result = StreamResult("params", "parameters")
        have = there.get("parameters") or {}
        if there and all(k in have and have[k] == v for k, v in params.items()):
            result.already = len(params)
            return result
        self._call(self.client.merge_params, exp_id, params)
        result.sent = len(params)
        return result

    # --- files ---------------------------------------------------------------------------------------
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
                if not _retryable(exc):
                    raise
                last = exc
        assert last is not None
        self._stop(last)
        raise last

    def _has_file(self, exp_id: str, entry: Any) -> bool:
        try:
            files = self._call(self.client.list_files, exp_id)
        except ApiError:
            return False
        return any((f["path"], f["filename"], f["checksum"]) == (entry.path, entry.filename, entry.checksum)
                   for f in files)

    # --- streams ---------------------------------------------------------------------------------------
    def _batches(self, items: Iterator[Any], size: int) -> Iterator[list[Any]]:
        batch: list[Any] = []
        for item in items:
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _send(self, send: Callable[[list[tuple[int, Any]]], None], batch: list[tuple[int, Any]]) -> None:
        """Send one batch of numbered records; a 413 (too large for the server) halves it."""
        try:
            self._call(send, batch)
        except ApiError as exc:
            if exc.status != 413 or len(batch) == 1:
                raise
            half = len(batch) // 2
            self._send(send, batch[:half])
            self._send(send, batch[half:])

    def _stream(self, e: ExperimentPlan, s: StreamPlan, records: Iterator[Any], resume: Resume,
                send: Callable[[list[tuple[int, Any]]], None]) -> StreamResult:
        """Number the records by their position in the local stream and send those the server lacks."""
        result = StreamResult(s.kind, s.name)
        per_item = s.bytes / s.items if s.items else 0
        result.already = resume.count(s.items)
        self.progress.advance(e, int(per_item * result.already))
        todo = ((n, r) for n, r in enumerate(records) if not resume.has(n))
        for batch in self._batches(todo, s.batch):
            self._send(send, batch)
            result.sent += len(batch)
            result.bytes += int(per_item * len(batch))
            self.progress.advance(e, int(per_item * len(batch)))
        return result

    def _logs(self, e: ExperimentPlan, s: StreamPlan, exp_id: str, resume: Resume) -> StreamResult:
        def lines() -> Iterator[dict[str, Any]]:
            assert s.source is not None
            for _, rec in iter_jsonl(s.source, LogLine):
                if isinstance(rec, Problem):
                    continue  # reported by validation; skipped in lenient mode
                entry: dict[str, Any] = {"timestamp": rec.timestamp, "level": rec.level, "message": rec.message}
                if rec.metadata:
                    entry["metadata"] = rec.metadata
                yield entry

        number = "writerSeq" if resume.writer else "sequenceNumber"

        def send(batch: list[tuple[int, dict[str, Any]]]) -> None:
            self.client.append_logs(exp_id, [{**entry, number: n} for n, entry in batch], writer_id=resume.writer)

        return self._stream(e, s, lines(), resume, send)

    def _metric(self, e: ExperimentPlan, s: StreamPlan, exp_id: str, resume: Resume) -> StreamResult:
        def points() -> Iterator[dict[str, Any]]:
            assert s.source is not None
            for _, rec in iter_jsonl(s.source, MetricPoint):
                if not isinstance(rec, Problem):
                    yield rec.data

        def send(batch: list[tuple[int, dict[str, Any]]]) -> None:
            numbers = [n for n, _ in batch]
            data = [p for _, p in batch]
            if resume.writer is None:  # by position: the records not yet stored follow on
                self.client.append_batch(exp_id, s.name, data, numbers[0], s.metric_info or None)
                return
            follow_on = numbers[-1] - numbers[0] == len(numbers) - 1
            self.client.append_batch(exp_id, s.name, data, None, s.metric_info or None, writer_id=resume.writer,
                                     writer_seqs=numbers[0] if follow_on else numbers)

        return self._stream(e, s, points(), resume, send)

    def _file(self, e: ExperimentPlan, s: StreamPlan, exp_id: str, live: set[tuple[str, str, str]]) -> StreamResult:
        entry = s.file
        assert entry is not None and s.source is not None
        result = StreamResult("file", _file_label(s))
        if (entry.path, entry.filename, entry.checksum) in live:
            result.already = 1
        elif self._upload_once(exp_id, s.source, entry):
            result.sent = 1
            result.bytes = entry.sizeBytes
        else:
            result.already = 1
        self.progress.advance(e, entry.sizeBytes)
        return result


    # --- .dashrc files ----------------------------------------------------------------------------------
    def _put_dashrc(self, path: str, params: dict[str, str], text: str) -> str:
        """Write ``text`` unless the server has it already: "sent", "already" or "unsupported"."""
        there = self._call(self.client.request, "GET", path, params=params, ok=(404, 405))
        if there.status_code == 200 and there.json().get("text") == text:
            return "already"
        if there.status_code != 200 and _route_missing(there):
            return "unsupported"
        self._call(self.client.request, "PUT", path, params=params, json={"text": text})
        return "sent"

    def _dashrc(self, e: ExperimentPlan, s: StreamPlan, exp_id: str) -> StreamResult:
        assert s.text is not None
        result = StreamResult("dashrc", s.name)
        outcome = self._put_dashrc(f"/ui/experiments/{exp_id}/dashrc", {}, s.text)
        if outcome == "sent":
            result.sent, result.bytes = 1, s.bytes
        elif outcome == "already":
            result.already = 1
        else:
            result.note = "not uploaded: the server has no place for .dashrc files (an older server)"
        self.progress.advance(e, s.bytes)
        return result

    def _folder_dashrc(self, f: FolderDashrc) -> FolderResult:
        if f.check.text is None:  # invalid: found by validation, a failure, never silently dropped
            return FolderResult(f, "failed", f.check.problem)
        try:
            params = {"project": f.project, "folder": f.folder}
            return FolderResult(f, self._put_dashrc("/ui/dashrc", params, f.check.text))
        except Exception as exc:  # noqa: BLE001 - one folder's failure is its own, reported
            return FolderResult(f, "failed", _said(exc))


def _stream_label(s: StreamResult) -> str:
    return s.kind if s.kind in ("logs", "dashrc") else f"{s.kind} {s.name}"


def _route_missing(response: Any) -> bool:
    """A 404/405 that is not our "no .dashrc here" (which has a hint): a server without the routes."""
    try:
        error = response.json().get("error")
    except ValueError:
        return True
    return not isinstance(error, dict) or not error.get("hint")


def _retryable(exc: ApiError) -> bool:
    return isinstance(exc, ServerUnreachable) or exc.status in RETRY_STATUSES


def _said(exc: Exception) -> str:
    """The error as the report shows it: the message, and the hint when there is one (errors
    that are not ours, e.g. an OSError reading a file, are named by their type)."""
    if not isinstance(exc, MLDashError):
        return f"{type(exc).__name__}: {exc}"
    return f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message


def _file_label(s: StreamPlan) -> str:
    entry = s.file
    if entry is None:
        return s.name
    return f"{entry.path.rstrip('/')}/{entry.filename}"
