"""One source run into one experiment of the local tree, exactly once however often it runs.

Resuming needs no state file: the tree itself says how much of each stream is there. Under an
exclusive lock on the experiment's ``metrics/`` directory (so two imports of the same run
take turns; the tree gains no lock file), the writer counts what each stream holds (a
metric's next index, the log's next sequence number, the files by path + name + checksum)
and skips that many records of the same stream from the source, whose readers promise a
stable order. A kill -9 leaves every stream a prefix of the source's (points are written a
batch per ``write``, lines one per ``write``), so the next run completes each one.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_dash.errors import InvalidInputError
from ml_dash.importers.source import FileItem, LogLine, Point, Problem, Record, SourceRun
from ml_dash.records.experiment import ExperimentRecord
from ml_dash.records.layout import ExperimentPaths, experiment_dir
from ml_dash.records.parameters import flatten_params
from ml_dash.records.read import load_record
from ml_dash.sdk.backends.base import ExperimentSpec
from ml_dash.sdk.backends.local import LocalBackend
from ml_dash.sdk.files_util import guess_content_type, sha256_file
from ml_dash.sdk.locks import directory_lock

__all__ = ["RunCounts", "Target", "import_run", "safe_name", "scan_run"]


def safe_name(value: str) -> str:
    """A source's run or project name as one path segment (``a/b`` → ``a-b``)."""
    cleaned = value.strip().strip("/").replace("/", "-").replace("\\", "-").replace("\x00", "")
    return cleaned if cleaned not in ("", ".", "..") else "_"


@dataclass(frozen=True)
class Target:
    """Where a run goes: the tree, and the experiment's project / name / folder there."""

    root: Path
    project: str
    name: str
    folder: str | None

    @property
    def display(self) -> str:
        return "/".join(p for p in ((self.folder or "").strip("/"), self.project, self.name) if p)

    @property
    def dir(self) -> Path:
        return experiment_dir(self.root, self.project, self.name, self.folder)


@dataclass
class RunCounts:
    """What one run brought (``new``) and what the tree already had of it (``present``)."""

    params: int = 0
    points: int = 0
    points_present: int = 0
    metrics: set[str] = field(default_factory=set)
    logs: int = 0
    logs_present: int = 0
    files: int = 0
    files_present: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def records(self) -> int:
        return self.points + self.logs + self.files


def _json_safe(value: Any) -> Any:
    """NaN and infinities as strings: experiment.json must stay strict JSON for every reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _source_stamp(kind: str, run: SourceRun) -> dict[str, Any]:
    stamp = {**run.metadata, "imported_from": {"source": kind, "key": run.key, "path": run.where}}
    return _json_safe(stamp)  # type: ignore[no-any-return]


def _owner(target: Target) -> dict[str, Any] | None:
    """The ``imported_from`` of the experiment already at the target, or None if there is none."""
    path = ExperimentPaths(target.dir).experiment_json
    if not path.exists():
        return None
    record = load_record(path, ExperimentRecord)
    origin = (record.metadata or {}).get("imported_from")
    return origin if isinstance(origin, dict) else {}


def _check_owner(kind: str, run: SourceRun, target: Target) -> None:
    """Never mix a run into an experiment that holds something else (the user's own, or another run)."""
    origin = _owner(target)
    if origin is None or (origin.get("source"), origin.get("key")) == (kind, run.key):
        return
    what = (f"{origin.get('source')} run {origin.get('key')!r}" if origin else "an experiment not imported by "
            "ml-dash import")
    raise InvalidInputError(f"{target.display} in {target.root} already holds {what}",
                            hint="import into another project or folder (--project / --folder) or another tree (--to)")


class _Present:
    """How much of each stream the experiment holds, read under the import lock."""

    def __init__(self, backend: LocalBackend | None, paths: ExperimentPaths) -> None:
        self.backend = backend
        self.paths = paths
        self._logs: int | None = None
        self._files: set[tuple[str, str, str]] | None = None

    def metric(self, name: str) -> int:
        """Points the tree holds of this metric (asked once per metric: the writer's _Stream keeps it)."""
        if self.backend is not None:
            return self.backend.metric_next_index(name)
        return _last_counter(self.paths.metric_dir(name) / "data.jsonl", "index")

    def logs(self) -> int:
        if self._logs is None:
            if self.backend is not None:
                self._logs = self.backend.log_next_seq()
            else:
                self._logs = _last_counter(self.paths.logs_jsonl, "sequenceNumber")
        return self._logs

    def files(self) -> set[tuple[str, str, str]]:
        if self._files is None:
            self._files = set()
            if self.paths.files_manifest.exists():
                from ml_dash.records.files import FilesManifest

                manifest = load_record(self.paths.files_manifest, FilesManifest)
                self._files = {(f.path, f.filename, f.checksum) for f in manifest.files if not f.deleted}
        return self._files


def _last_counter(path: Path, key: str) -> int:
    """``last line's key + 1`` of a JSONL file (0 if there is none): the dry run's count, no writes."""
    from ml_dash.sdk.appenders import _last_json_line

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        last = _last_json_line(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    value = last.get(key) if last else None
    return value + 1 if isinstance(value, int) else 0


def _file_identity(item: FileItem) -> tuple[str, str, str]:
    import hashlib

    if item.data is not None:
        return item.prefix, item.filename, hashlib.sha256(item.data).hexdigest()
    assert item.path is not None
    return item.prefix, item.filename, sha256_file(item.path)[0]


_PENDING_LIMIT = 100_000  # metric points held for writing, all metrics of a run together


class _Stream:
    """One metric of the run: how many of its source points the tree still holds (to skip), and
    the points waiting to be written."""

    __slots__ = ("batch", "skip")

    def __init__(self, skip: int) -> None:
        self.skip = skip
        self.batch: list[dict[str, Any]] = []


class _Writer:
    """Batches one run's records into the tree, skipping what is already there."""

    def __init__(self, backend: LocalBackend | None, paths: ExperimentPaths, batch_size: int,
                 counts: RunCounts) -> None:
        self.backend = backend  # None: a dry run, count only
        self.present = _Present(backend, paths)
        self.batch_size = batch_size
        self.counts = counts
        self.streams: dict[str, _Stream] = {}
        self.pending_total = 0
        # One bound for all metrics together: a W&B run may log thousands of keys.
        self.pending_limit = max(batch_size, _PENDING_LIMIT)
        self.log_seen = 0

    def add(self, record: Record) -> None:
        kind = type(record)
        if kind is Point:
            self._point(record)  # type: ignore[arg-type]
        elif kind is LogLine:
            self._log(record)  # type: ignore[arg-type]
        elif kind is FileItem:
            self._file(record)  # type: ignore[arg-type]
        elif kind is Problem:
            self.counts.problems.append(record)  # type: ignore[arg-type]

    def _stream(self, name: str) -> _Stream:
        stream = self.streams[name] = _Stream(self.present.metric(name))
        self.counts.metrics.add(name)
        return stream

    def _point(self, point: Point) -> None:
        # Once per point of a million: one dict lookup, then only attributes of the stream.
        stream = self.streams.get(point.metric) or self._stream(point.metric)
        if stream.skip:
            stream.skip -= 1
            self.counts.points_present += 1
            return
        if self.backend is None:
            self.counts.points += 1
            return
        batch = stream.batch
        batch.append(point.data)
        self.pending_total += 1
        if len(batch) >= self.batch_size:
            self._flush_metric(point.metric)
        elif self.pending_total >= self.pending_limit:
            self.finish()

    def _flush_metric(self, name: str) -> None:
        stream = self.streams[name]
        batch, stream.batch = stream.batch, []
        if batch and self.backend is not None:
            self.pending_total -= len(batch)
            self.counts.points += len(batch)
            self.backend.append_metric_batch(name, batch, None, None, None)

    def _log(self, line: LogLine) -> None:
        seen, self.log_seen = self.log_seen, self.log_seen + 1
        if seen < self.present.logs():
            self.counts.logs_present += 1
            return
        self.counts.logs += 1
        if self.backend is not None:
            from ml_dash.records.clock import utc_now_iso

            self.backend.write_log(line.level, line.message, line.metadata, line.timestamp or utc_now_iso())

    def _file(self, item: FileItem) -> None:
        try:
            identity = _file_identity(item)
        except OSError as exc:
            self.counts.problems.append(Problem(str(item.path), item.filename, f"cannot read the file: {exc}"))
            return
        if identity in self.present.files():
            self.counts.files_present += 1
            return
        self.counts.files += 1
        if self.backend is None:
            return
        self.present.files().add(identity)
        if item.path is not None:
            self._save(item, item.path)
            return
        assert item.data is not None
        fd, tmp = tempfile.mkstemp(prefix=".ml-dash-import-", suffix=Path(item.filename).suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(item.data)
            self._save(item, Path(tmp))
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _save(self, item: FileItem, source: Path) -> None:
        assert self.backend is not None
        self.backend.save_file(source, item.prefix, item.filename, item.description, None, item.metadata,
                               guess_content_type(item.filename))

    def finish(self) -> None:
        for name, stream in self.streams.items():
            if stream.batch:
                self._flush_metric(name)


def _params_to_write(backend: LocalBackend | None, paths: ExperimentPaths, run: SourceRun) -> dict[str, Any]:
    flat = flatten_params(run.params())
    if not flat:
        return {}
    have = backend.get_params() if backend is not None else (
        _stored_params(paths) if paths.parameters_json.exists() else {})
    return {k: v for k, v in flat.items() if k not in have or have[k] != v}


def _stored_params(paths: ExperimentPaths) -> dict[str, Any]:
    from ml_dash.records.parameters import ParametersRecord

    return dict(load_record(paths.parameters_json, ParametersRecord).data)


def scan_run(kind: str, run: SourceRun, target: Target, batch_size: int) -> RunCounts:
    """A dry run: what :func:`import_run` would add, reading the source and the tree only."""
    _check_owner(kind, run, target)
    counts = RunCounts()
    paths = ExperimentPaths(target.dir)
    writer = _Writer(None, paths, batch_size, counts)
    _drain(run.records(), writer)
    counts.params = len(_params_to_write(None, paths, run))
    return counts


def import_run(kind: str, run: SourceRun, target: Target, batch_size: int,
               on_record: Any = None) -> RunCounts:
    """Write what the tree does not hold yet of ``run``; returns the counts."""
    _check_owner(kind, run, target)
    backend = LocalBackend(target.root)
    spec = ExperimentSpec(name=target.name, project=target.project, folder=target.folder,
                          description=run.description, tags=list(run.tags), metadata=_source_stamp(kind, run))
    counts = RunCounts()
    directory = target.dir
    (directory / "metrics").mkdir(parents=True, exist_ok=True)
    with directory_lock(directory / "metrics"):
        _check_owner(kind, run, target)  # again, under the lock: another import may have been first
        backend.open(spec, touch=False)
        try:
            assert backend.paths is not None
            writer = _Writer(backend, backend.paths, batch_size, counts)
            _drain(run.records(), writer, on_record)
            # After the records: a reader may learn the parameters on its way through them (TensorBoard's
            # hparams are events), and a run killed before this line gets them on the next run.
            params = _params_to_write(backend, backend.paths, run)
            if params:
                backend.set_params(params)
            counts.params = len(params)
        finally:
            backend.close("COMPLETED")
    return counts


def _drain(records: Iterable[Record], writer: _Writer, on_record: Any = None) -> None:
    add = writer.add
    if on_record is None:
        for record in records:
            add(record)
    else:
        for i, record in enumerate(records, 1):
            add(record)
            if not i % 10_000:
                on_record(i)
    writer.finish()
