"""``ml-dash show``'s importer: keeps a local tree imported into the embedded server, read-only.

Every ``poll_seconds`` it looks at the tree the way ``ml-dash upload`` does (``discover``, the
validator, ``build_plan``) and sends what is new through the upload engine: the same
experiment bodies, the tree's writer id, the server's ranges of that writer (``resume``), the same
batching and file uploads. So what ``show`` displays is what ``ml-dash upload`` would put on a
server, and nothing is stored twice however often a pass runs or the process restarts.

What is added for a tree that keeps growing:

* **Only new bytes are read.** Each JSONL stream has a cursor (byte offset of the end of the
  last complete line read, and how many valid records lie before it). Experiments whose files
  did not change (size, mtime) are not even opened. Cursors are kept in the private data
  directory, so a restart reads nothing again (a cursor whose file was replaced or truncated
  starts over, and the server's writer ranges still keep every record from being stored twice).
* **A torn last line is not an error.** Lines are read up to the last newline; a writer's line
  in the middle of being appended is left for the next pass, then imported whole.
* **New experiments are listed first.** A pass creates every new experiment (and its parameters)
  before it streams anyone's points, so a large tree is browsable at once.
* **Experiments fill in together.** A pass reads at most ``SLICE_RECORDS`` records per experiment;
  the next pass starts at once and goes on from the cursors, so every chart of a large tree fills
  in at the same pace (an experiment's final status is set once all its records are in).
* **Its own process.** ``ml-dash show`` runs this as ``python -m ml_dash.server.mirror`` (see
  :func:`main`), so the server and the importer do not share one GIL; it stops with show, even
  when show is killed.
* **Metric points are parsed in blocks** (orjson over a whole batch, the record model only for
  blocks with anything unusual in them), which is what makes the first import of a large tree
  several times faster than the uploader's line-by-line reading. The rules are the same: a line
  the record model refuses is skipped and reported, as ``ml-dash upload`` does.

``.dashrc`` files ride along as with ``ml-dash upload`` (an experiment's when it changes, the
folders' when any of them changes). Deleted experiments stay in the private copy (as they would on a server after an upload);
``ml-dash show`` prints where that copy is, and removing it starts from the tree again.

Nothing is ever written below the tree: the cursors live in the private data directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_dash.api.client import ApiClient
from ml_dash.errors import MLDashError
from ml_dash.records.blocks import check_log_lines, check_metric_lines, read_blocks
from ml_dash.records.dashrc import DASHRC_FILE
from ml_dash.records.jsonio import atomic_write_text
from ml_dash.records.layout import FILES_MANIFEST, METRIC_DATA_FILE, METRIC_METADATA_FILE
from ml_dash.upload.dashrc import FolderDashrc, folder_dashrcs
from ml_dash.upload.discover import DiscoveredExperiment, discover
from ml_dash.upload.engine import Batch, Engine, ExperimentResult, StreamResult, _overlaps, _said
from ml_dash.upload.plan import ExperimentPlan, Plan, StreamPlan, build_plan
from ml_dash.upload.resume import Resume
from ml_dash.upload.validate import CheckedExperiment, ExperimentValidator, StreamCheck, mark_clashes

__all__ = ["Mirror", "PassResult", "Tail"]

CURSORS_FILE = "mirror-cursors.json"
CHECK_BYTES = 4096  # the bytes before a saved cursor that must still be there for it to be trusted
SLICE_RECORDS = 100_000  # records read per experiment per pass: a large tree's experiments fill in together


class _Stopped(MLDashError):
    """The show is shutting down: the stream stops between two batches (its cursor stays put)."""


@dataclass
class Tail:
    """Where the import of one JSONL file stands."""

    path: Path
    offset: int = 0  # end of the last complete line imported
    count: int = 0  # valid records before ``offset``: the next record's number
    invalid: int = 0  # lines the record model refused (skipped, reported)
    ino: int = 0
    check: str = ""  # sha256 of the CHECK_BYTES before ``offset``
    seen: int = -1  # the file's size when it was last read to its end (a torn last line is not re-read)

    def pending(self) -> bool:
        try:
            st = self.path.stat()
        except OSError:
            return False
        if st.st_ino != self.ino or st.st_size < self.offset:
            self.reset()  # replaced or truncated: start over (the server's writer ranges skip what it has)
            self.ino = st.st_ino
        return st.st_size > self.offset and st.st_size != self.seen

    def reset(self) -> None:
        self.offset = self.count = self.invalid = 0
        self.check = ""
        self.seen = -1

    def still_valid(self) -> bool:
        """A saved cursor is trusted only if its file is the same one, with the same bytes before it."""
        try:
            st = self.path.stat()
            if st.st_ino != self.ino or st.st_size < self.offset:
                return False
            return _check_of(self.path, self.offset) == self.check
        except OSError:
            return False

    def blocks(self, lines_per_block: int) -> Iterator[tuple[list[bytes], int]]:
        """``(complete lines, offset after them)`` from the cursor on; a last line without its
        newline (a writer mid-append) is left for the next pass."""
        for lines, end, _ in read_blocks(self.path, lines_per_block, self.offset, partial_last=False):
            yield lines, end

    def advance(self, offset: int, valid: int, invalid: int) -> None:
        self.offset, self.count, self.invalid = offset, self.count + valid, self.invalid + invalid

    def seal(self) -> None:
        self.check = _check_of(self.path, self.offset)

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "count": self.count, "invalid": self.invalid, "ino": self.ino,
                "check": self.check}


def _check_of(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        start = max(0, offset - CHECK_BYTES)
        f.seek(start)
        return hashlib.sha256(f.read(offset - start)).hexdigest()


# --- parsing blocks of lines ---------------------------------------------------------------------------
def metric_block(lines: list[bytes]) -> tuple[list[bytes], int]:
    """The ``data`` (JSON text) of every valid point of ``lines`` and how many lines were not valid
    points (see ``records/blocks.py``)."""
    block = check_metric_lines(lines)
    return block.records, len(block.problems)


def log_block(lines: list[bytes]) -> tuple[list[dict[str, Any]], int]:
    block = check_log_lines(lines)
    return block.records, len(block.problems)




# --- the engine, reading from cursors ---------------------------------------------------------------------
class MirrorEngine(Engine):
    """The upload engine (experiments, resume, parameters, files, status, 413 halving, slots), with
    logs and metrics read from each stream's cursor instead of from its first line."""

    def __init__(self, client: ApiClient, tails: dict[Path, Tail], stop: threading.Event, workers: int,
                 slice_records: int | None = None) -> None:
        super().__init__(client, workers=workers)
        self.tails = tails
        self.stop = stop
        # Records (points and log lines) read per experiment in one pass; what is left is read by
        # the next pass, so the experiments of a large tree fill in together, not one after another.
        self.slice_records = slice_records
        self._budget: dict[Path, int] = {}
        self._budget_lock = threading.Lock()
        self.unfinished: set[Path] = set()  # experiments with records left for the next pass

    def _take(self, e: ExperimentPlan, wanted: int) -> bool:
        """Whether experiment ``e`` may read one more block of ``wanted`` records in this pass."""
        if self.slice_records is None:
            return True
        with self._budget_lock:
            left = self._budget.setdefault(e.path, self.slice_records)
            if left <= 0:
                self.unfinished.add(e.path)
                return False
            self._budget[e.path] = left - wanted
            return True

    def _experiment(self, e: ExperimentPlan, pool: Any, state: Any, skip: bool) -> ExperimentResult:
        """The engine's, with the final status set only once every record of the experiment is in
        (not after its first slice)."""
        from dataclasses import replace

        result = super()._experiment(replace(e, status=None), pool, state, skip)
        result.plan = e
        if e.status and result.ok and result.experiment_id is not None and e.path not in self.unfinished:
            try:
                self._call(self.client.set_status, result.experiment_id, e.status)
            except Exception as exc:  # noqa: BLE001 - the experiment's failure, reported as the engine does
                result.errors.append(_said(exc))
        return result

    def _tail_stream(self, e: ExperimentPlan, s: StreamPlan, resume: Resume,
                     parse: Callable[[list[bytes]], tuple[list[Any], int]],
                     send: Callable[[Batch], None]) -> StreamResult:
        assert s.source is not None
        tail = self.tails[s.source]
        result = StreamResult(s.kind, s.name)
        if tail.count and resume.count(tail.count) < tail.count:
            tail.reset()  # the server lacks records the cursor says were sent (a new private copy)
        size = s.source.stat().st_size  # before reading: what is appended meanwhile is read next pass
        if not self._take(e, 0):
            return result  # this experiment's slice is spent: the stream waits for the next pass
        for lines, end in tail.blocks(s.batch):
            if self.stop.is_set():
                raise _Stopped("stopped", hint="ml-dash show is shutting down; it resumes where it stopped")
            if not self._take(e, len(lines)):
                tail.seal()
                return result  # not read to its end: ``seen`` stays, so the stream is pending next pass
            records, bad = parse(lines)
            batch = Batch(range(tail.count, tail.count + len(records)), records)
            if batch and _overlaps(resume, batch.numbers[0], batch.numbers[-1]):
                batch = batch.missing(resume)  # else the common case (a first import, new lines): none is there
            if batch:
                self._send(send, batch)
            result.sent += len(batch)
            result.already += len(records) - len(batch)
            tail.advance(end, len(records), bad)
        tail.seal()
        tail.seen = size
        return result

    def _metric(self, e: ExperimentPlan, s: StreamPlan, exp_id: str, resume: Resume) -> StreamResult:
        return self._tail_stream(e, s, resume, metric_block, self._metric_sender(exp_id, s, resume))

    def _logs(self, e: ExperimentPlan, s: StreamPlan, exp_id: str, resume: Resume) -> StreamResult:
        return self._tail_stream(e, s, resume, log_block, self._log_sender(exp_id, resume))


# --- the loop ---------------------------------------------------------------------------------------------
@dataclass
class PassResult:
    """What one look at the tree did."""

    experiments: int = 0  # in the tree
    changed: int = 0  # looked at closely (new or changed files)
    created: int = 0  # new to the private copy
    points: int = 0
    logs: int = 0
    files: int = 0
    requests: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    more: bool = False  # records were left for the next pass (slices): it starts at once


def _files_signature(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out: list[tuple[str, int, int]] = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _signature(d: DiscoveredExperiment) -> tuple[Any, ...]:
    """What changes when anything worth importing changes: sizes and mtimes of the records."""
    paths = d.paths
    candidates = [paths.experiment_json, paths.parameters_json, paths.logs_jsonl, paths.files_dir / FILES_MANIFEST,
                  d.dashrc]
    if paths.metrics_dir.is_dir():
        for name in d.metric_names:
            candidates += [paths.metrics_dir / name / METRIC_DATA_FILE, paths.metrics_dir / name / METRIC_METADATA_FILE]
    return _files_signature(candidates)


class Mirror:
    """Imports ``root`` into the server behind ``client`` (an API key of the target namespace),
    pass after pass, until :meth:`stop`."""

    def __init__(self, root: Path, client: ApiClient, state_dir: Path, *, poll_seconds: float = 1.0,
                 batch: int = 10_000, workers: int = 4, slice_records: int | None = SLICE_RECORDS,
                 say: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.client = client
        self.state_path = state_dir / CURSORS_FILE
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.workers = workers
        self.slice_records = slice_records
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        self.stop_event = threading.Event()
        self.tails: dict[Path, Tail] = {}
        self.signatures: dict[Path, tuple[Any, ...]] = {}
        self.folders_signature: tuple[Any, ...] | None = None
        self.known: set[Path] = set()  # experiment directories created in the private copy by this process
        self._said: set[str] = set()
        self.passes = 0
        self.first_pass: PassResult | None = None
        self.first_done = threading.Event()
        self._thread: threading.Thread | None = None
        self._load_cursors()

    # --- cursors ------------------------------------------------------------------------------------------
    def _load_cursors(self) -> None:
        try:
            doc = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(doc, dict) or doc.get("root") != str(self.root.resolve()):
            return
        for rel, c in (doc.get("streams") or {}).items():
            try:
                tail = Tail(self.root / rel, int(c["offset"]), int(c["count"]), int(c["invalid"]), int(c["ino"]),
                            str(c["check"]))
            except (KeyError, TypeError, ValueError):
                continue
            if tail.still_valid():
                self.tails[tail.path] = tail

    def _save_cursors(self) -> None:
        streams = {str(p.relative_to(self.root)): t.to_json() for p, t in self.tails.items() if t.offset}
        doc = {"root": str(self.root.resolve()), "streams": streams}
        atomic_write_text(self.state_path, json.dumps(doc), fsync=False)

    # --- running ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="ml-dash-show-mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                result = self.pass_once()
            except Exception as exc:  # noqa: BLE001 - the loop outlives one bad pass; said once
                result = PassResult(errors=[f"{type(exc).__name__}: {exc}"])
            for error in result.errors:
                if not self.stop_event.is_set():  # a pass cut short by the shutdown is not an error
                    self._say_once(f"ml-dash show: {error}")
            going = result.more and bool(result.points or result.logs)  # slices left, and progress made
            if self.first_pass is None:
                self.first_pass = result
            elif not self.first_done.is_set():  # the first import goes on over several passes: its figures add up
                first = self.first_pass
                first.points += result.points
                first.logs += result.logs
                first.files += result.files
                first.created += result.created
                first.requests += result.requests
                first.seconds += result.seconds
                first.errors += result.errors
            if not going:
                self.first_done.set()
            self.passes += 1
            if not going:
                self.stop_event.wait(max(0.0, self.poll_seconds - (time.monotonic() - started)))

    def _say_once(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self.say(text)

    def pass_once(self) -> PassResult:
        """One look at the tree: import whatever is new."""
        started = time.perf_counter()
        before = self.client.requests
        result = PassResult()
        if not self.root.is_dir():
            result.errors.append(f"{self.root} is gone; waiting for it to come back")
            return result
        found = discover(self.root)
        for problem in found.problems:
            self._say_once(f"ml-dash show: {problem}")
        result.experiments = len(found.experiments)
        changed = self._changed(found.experiments)
        folders_sig = _files_signature([d / DASHRC_FILE for d in found.dashrc_dirs])
        folders: list[FolderDashrc] = []
        if folders_sig != self.folders_signature:  # a folder's .dashrc (a saved compare view) is new or changed
            folders, notes = folder_dashrcs(self.root, found.dashrc_dirs, found.experiments)
            for note in notes:
                self._say_once(f"ml-dash show: {note}")
        result.changed = len(changed)
        if changed or folders:
            self._import(changed, folders, result)
            self._save_cursors()
        if all(not e.startswith(".dashrc") for e in result.errors):
            self.folders_signature = folders_sig
        result.requests = self.client.requests - before
        result.seconds = time.perf_counter() - started
        return result

    def _changed(self, experiments: list[DiscoveredExperiment]) -> list[tuple[DiscoveredExperiment, tuple[Any, ...]]]:
        """The experiments with anything new, and their signatures. Experiments two folders would both
        put at project/name are left out (as upload refuses them), said once."""
        stubs = [CheckedExperiment(exp=d) for d in experiments]
        mark_clashes(stubs)
        changed = []
        for stub in stubs:
            if stub.errors:
                self._say_once(f"ml-dash show: {stub.exp.identity.display}: {stub.errors[0]}")
                continue
            d = stub.exp
            sig = _signature(d)
            if self.signatures.get(d.path) != sig or any(t.pending() for t in self._tails_of(d)):
                changed.append((d, sig))
        return changed

    def _import(self, changed: list[tuple[DiscoveredExperiment, tuple[Any, ...]]], folders: list[FolderDashrc],
                result: PassResult) -> None:
        validator = ExperimentValidator(skip=frozenset({"logs", "metrics"}), verify_checksums=False)
        checked = [self._check(validator, d) for d, _ in changed]
        for c in checked:
            for text in c.errors + c.warnings:
                self._say_once(f"ml-dash show: {c.exp.identity.display}: {text}")
        valid = [c for c in checked if c.is_valid]
        engine = MirrorEngine(self.client, self.tails, self.stop_event, self.workers, self.slice_records)
        new = [c for c in valid if c.exp.path not in self.known]
        if new:  # every new experiment listed before anyone's points are streamed
            skeleton = build_plan(new, log_batch=self.batch, metric_batch=self.batch, skip_logs=True,
                                  skip_metrics=True, skip_files=True)
            self._collect(engine.run(_without_status(skeleton)).experiments, result, created=True)
        run = engine.run(build_plan(valid, log_batch=self.batch, metric_batch=self.batch,
                                    folder_dashrcs=tuple(folders)))
        ok = self._collect(run.experiments, result, created=False)
        result.more = bool(engine.unfinished)
        result.errors += [f".dashrc of {f.item.display}: {f.error}" for f in run.folders if f.error]
        for d, sig in changed:
            if d.path in ok:
                self.signatures[d.path] = sig

    def _tails_of(self, d: DiscoveredExperiment) -> list[Tail]:
        paths = d.paths
        out = [self._tail(paths.logs_jsonl)] if paths.logs_jsonl.is_file() else []
        return out + [self._tail(paths.metrics_dir / n / METRIC_DATA_FILE) for n in d.metric_names]

    def _tail(self, path: Path) -> Tail:
        tail = self.tails.get(path)
        if tail is None:
            tail = self.tails[path] = Tail(path)
        return tail

    def _check(self, validator: ExperimentValidator, d: DiscoveredExperiment) -> CheckedExperiment:
        """The uploader's validation of the experiment's own records and files; its logs and metrics
        as streams with something new past their cursors (``valid`` is 1: the count is only known
        once the new lines are read, by the engine)."""
        c = validator.validate_experiment(d)
        if not c.is_valid:
            return c
        paths = d.paths
        if paths.logs_jsonl.is_file() and self._tail(paths.logs_jsonl).pending():
            c.logs = StreamCheck("logs", paths.logs_jsonl, valid=1)
        for name in d.metric_names:
            data = paths.metrics_dir / name / METRIC_DATA_FILE
            if self._tail(data).pending():
                check = StreamCheck(name, data, valid=1)
                check.info = validator._metric_info(c, paths.metrics_dir / name / METRIC_METADATA_FILE, name)
                c.metrics.append(check)
        return c

    def _collect(self, results: list[ExperimentResult], into: PassResult, created: bool) -> set[Path]:
        ok: set[Path] = set()
        for r in results:
            for text in r.all_errors:
                if "ml-dash show is shutting down" not in text:
                    into.errors.append(f"{r.plan.display}: {text}")
            if created and r.experiment_id is not None and r.plan.path not in self.known:
                self.known.add(r.plan.path)
                into.created += 1
            if not created:
                if r.experiment_id is not None:
                    self.known.add(r.plan.path)
                into.points += r.total("metric")
                into.logs += r.total("logs")
                into.files += r.total("file")
                if r.ok:
                    ok.add(r.plan.path)
        for tail in self.tails.values():
            if tail.invalid:
                rel = tail.path.relative_to(self.root)
                self._say_once(f"ml-dash show: {rel}: {tail.invalid} invalid line(s) skipped")
        return ok


def _without_status(plan: Plan) -> Plan:
    """The skeleton pass sets no final status: that waits until the records are in."""
    from dataclasses import replace

    return replace(plan, experiments=tuple(replace(e, status=None) for e in plan.experiments))


def private_dir(base: Path, root: Path) -> Path:
    """One private copy per tree: named by the tree's absolute path."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return base / digest



# --- the importer's own process -----------------------------------------------------------------------------
def first_pass_line(mirror: Mirror) -> str | None:
    """What ``ml-dash show`` prints once the first import is done (None when it was stopped first)."""
    mirror.first_done.wait()
    r = mirror.first_pass
    if r is None or mirror.stop_event.is_set():
        return None
    if not r.experiments:
        return f"no experiments in {mirror.root} yet; they appear here as soon as the SDK writes them"
    return (f"imported {r.experiments} experiment(s): {r.points:,} new metric points, {r.logs:,} log lines, "
            f"{r.files} files in {r.seconds:.1f} s ({r.requests} requests); watching for changes")


def _print_first_pass(mirror: Mirror) -> None:
    line = first_pass_line(mirror)
    if line is not None:
        print(line, flush=True)


def _watch_parent(mirror: Mirror, parent: int) -> None:
    """Stop when the parent is gone, even killed (SIGKILL): its end of our stdin closes then, and
    (in case anything else holds it) we are re-parented."""
    def eof() -> None:
        try:
            sys.stdin.buffer.read()
        except (OSError, ValueError):
            pass
        mirror.stop()

    threading.Thread(target=eof, name="ml-dash-show-parent-pipe", daemon=True).start()
    while not mirror.stop_event.wait(1.0):
        if os.getppid() != parent:
            mirror.stop()


def main() -> int:
    """``python -m ml_dash.server.mirror``: the importer in a process of its own, which is how
    ``ml-dash show`` runs it (server and importer then each have a core, not one GIL between them).

    It reads one JSON line on stdin: ``url``, ``key``, ``root``, ``private`` (the private
    directory, for the cursors), ``poll_seconds``, ``batch`` and ``slice`` (records per experiment
    per pass, null for no limit). Then it imports until SIGTERM or SIGINT, or until its stdin
    closes (the parent stopped it, or is gone). What it has to say goes to stderr (show's log);
    stdout carries the line that ends the first import, which show prints."""
    import signal

    def leave(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)
    parent = os.getppid()
    try:
        line = sys.stdin.buffer.readline()
    except SystemExit:
        return 0
    if not line:
        return 0
    cfg = json.loads(line)
    from ml_dash.api.client import RetryPolicy

    client = ApiClient(cfg["url"], cfg["key"], retry=RetryPolicy(attempts=3, backoff=0.2, timeout=120),
                       max_connections=8)
    mirror = Mirror(Path(cfg["root"]), client, Path(cfg["private"]), poll_seconds=float(cfg["poll_seconds"]),
                    batch=int(cfg["batch"]), slice_records=cfg.get("slice", SLICE_RECORDS))

    def stop(signum: int, frame: Any) -> None:
        mirror.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=_watch_parent, args=(mirror, parent), name="ml-dash-show-parent", daemon=True).start()
    threading.Thread(target=_print_first_pass, args=(mirror,), name="ml-dash-show-first", daemon=True).start()
    try:
        mirror.run()
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
