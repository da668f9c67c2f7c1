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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ml_dash.api.client import ApiClient, ServerUnreachable
from ml_dash.errors import ApiError, MLDashError
from ml_dash.records.blocks import CheckedBlock, check_log_lines, check_metric_lines, read_blocks
from ml_dash.upload.dashrc import FolderDashrc
from ml_dash.upload.files import FileStage, file_label
from ml_dash.upload.plan import ExperimentPlan, Plan, StreamPlan
from ml_dash.upload.results import ExperimentResult, FolderResult, RunResult, StreamResult
from ml_dash.upload.resume import Resume, resume_for
from ml_dash.upload.state import UploadState
from ml_dash.upload.validate import SAMPLE

__all__ = ["Engine", "ExperimentResult", "FolderResult", "Progress", "RunResult", "StreamResult"]


class Progress(Protocol):
    def experiment_started(self, plan: ExperimentPlan) -> None: ...
    def advance(self, plan: ExperimentPlan, nbytes: int) -> None: ...
    def experiment_done(self, result: ExperimentResult) -> None: ...


@dataclass(slots=True)
class Batch:
    """Records numbered by their position in the local stream, without a tuple per record (a million
    small tuples keep the cyclic garbage collector busy): ``numbers`` is a range when they follow on."""

    numbers: range | list[int]
    records: list[Any]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def follows_on(self) -> bool:
        return isinstance(self.numbers, range) or self.numbers[-1] - self.numbers[0] == len(self.numbers) - 1

    def split(self, at: int) -> tuple[Batch, Batch]:
        return Batch(self.numbers[:at], self.records[:at]), Batch(self.numbers[at:], self.records[at:])

    def halves(self) -> tuple[Batch, Batch]:
        return self.split(len(self) // 2)

    def then(self, other: Batch) -> Batch:
        """This batch followed by ``other`` (a range still when the numbers follow on)."""
        if isinstance(self.numbers, range) and isinstance(other.numbers, range) and (
                not self.numbers or self.numbers.stop == other.numbers.start):
            numbers: range | list[int] = range(self.numbers.start if self.numbers else other.numbers.start,
                                               other.numbers.stop)
        else:
            numbers = [*self.numbers, *other.numbers]
        return Batch(numbers, self.records + other.records)

    def missing(self, resume: Resume) -> Batch:
        """Only the records the server does not have."""
        keep = [i for i, n in enumerate(self.numbers) if not resume.has(n)]
        return Batch([self.numbers[i] for i in keep], [self.records[i] for i in keep])


class _NoProgress:
    def experiment_started(self, plan: ExperimentPlan) -> None: ...
    def advance(self, plan: ExperimentPlan, nbytes: int) -> None: ...
    def experiment_done(self, result: ExperimentResult) -> None: ...


class Engine(FileStage):
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
            futures: list[Future[StreamResult]] = self._files(e, [s for s in e.streams if s.kind == "file"], pool,
                                                              exp_id, live)
            for s in e.streams:
                if s.kind in ("logs", "metric"):
                    resume = resume_for(there, s.kind, s.name, s.items, e.writer_id)
                    send = self._logs if s.kind == "logs" else self._metric
                    futures.append(pool.submit(self._guard, e, s, send, exp_id, resume))
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
            return StreamResult(s.kind, s.name if s.kind != "file" else file_label(s), error=_said(exc))

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

    # --- streams ---------------------------------------------------------------------------------------
    def _send(self, send: Callable[[Batch], None], batch: Batch) -> None:
        """Send one batch of numbered records; a 413 (too large for the server) halves it."""
        try:
            self._call(send, batch)
        except ApiError as exc:
            if exc.status != 413 or len(batch) == 1:
                raise
            for half in batch.halves():
                self._send(send, half)

    def _stream(self, e: ExperimentPlan, s: StreamPlan, resume: Resume, check: Callable[..., CheckedBlock],
                send: Callable[[Batch], None]) -> StreamResult:
        """One pass over the stream's file: each block of lines is read, checked (``records/blocks.py``)
        and its valid records, numbered by their position in the local stream, go into one request,
        except those the server has. Invalid lines are skipped and kept in the result."""
        assert s.source is not None
        result = StreamResult(s.kind, s.name)
        line, number, offset = 1, 0, 0
        held: Batch | None = None  # by position: the last stored record, sent only with one after it
        for lines, end, partial in read_blocks(s.source, s.batch):
            block = check(lines, line, s.source, partial)
            line += len(lines)
            if block.problems:
                result.invalid += len(block.problems)
                result.problems.extend(block.problems[:SAMPLE - len(result.problems)])
            batch = Batch(range(number, number + len(block.records)), block.records)
            number += len(block.records)
            if held is not None and batch:
                batch, held = held.then(batch), None
            if batch and resume.done and _overlaps(resume, batch.numbers[0], batch.numbers[-1]):
                batch = batch.missing(resume)
            if batch and batch.numbers[-1] == resume.recheck:
                batch, held = batch.split(len(batch) - 1)
            if batch:
                self._send(send, batch)
            result.sent += len(batch)
            result.already += len(block.records) - len(batch) - (len(held) if held else 0)
            result.bytes += (end - offset) * len(batch) // max(1, len(lines))  # sent now, of what was read
            self.progress.advance(e, end - offset)
            offset = end
        result.already += len(held) if held else 0  # nothing followed it: the server's last record already
        return result

    def _logs(self, e: ExperimentPlan, s: StreamPlan, exp_id: str, resume: Resume) -> StreamResult:
        return self._stream(e, s, resume, check_log_lines, self._log_sender(exp_id, resume))

    def _metric(self, e: ExperimentPlan, s: StreamPlan, exp_id: str, resume: Resume) -> StreamResult:
        return self._stream(e, s, resume, check_metric_lines, self._metric_sender(exp_id, s, resume))

    def _log_sender(self, exp_id: str, resume: Resume) -> Callable[[Batch], None]:
        number = "writerSeq" if resume.writer else "sequenceNumber"

        def send(batch: Batch) -> None:
            for n, entry in zip(batch.numbers, batch.records, strict=True):
                entry[number] = n  # the entries are this stream's own, made by the block check
            self.client.append_logs(exp_id, batch.records, writer_id=resume.writer)

        return send

    def _metric_sender(self, exp_id: str, s: StreamPlan, resume: Resume) -> Callable[[Batch], None]:
        def send(batch: Batch) -> None:
            # batch.records: each point's JSON text, as the tree holds it
            if resume.writer is None:  # by position: the records not yet stored follow on
                self.client.append_batch(exp_id, s.name, batch.records, batch.numbers[0], s.metric_info or None,
                                         encoded=True)
                return
            seqs = batch.numbers[0] if batch.follows_on else list(batch.numbers)
            self.client.append_batch(exp_id, s.name, batch.records, None, s.metric_info or None,
                                     writer_id=resume.writer, writer_seqs=seqs, encoded=True)

        return send

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


def _route_missing(response: Any) -> bool:
    """A 404/405 that is not our "no .dashrc here" (which has a hint): a server without the routes."""
    try:
        error = response.json().get("error")
    except ValueError:
        return True
    return not isinstance(error, dict) or not error.get("hint")


def _overlaps(resume: Resume, lo: int, hi: int) -> bool:
    """Whether the server has any of records ``lo..hi`` (by the resume's ranges)."""
    return any(a <= hi and b >= lo for a, b in resume.done)


def _said(exc: Exception) -> str:
    """The error as the report shows it: the message, and the hint when there is one (errors
    that are not ours, e.g. an OSError reading a file, are named by their type)."""
    if not isinstance(exc, MLDashError):
        return f"{type(exc).__name__}: {exc}"
    return f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message
