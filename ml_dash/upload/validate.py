"""Stage 2: check every record of an experiment with the record models, and size it.

Lenient (default): bad lines and bad files are reported with their file and line and
will be skipped; the experiment is still uploaded. Strict: any problem makes the
experiment invalid, and the command stops before anything is sent. Files must exist
inside ``files/`` with the size and sha256 the manifest records; soft-deleted files
are not uploaded. JSONL is streamed: memory stays flat however large the tree is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ml_dash.errors import InvalidInputError, RecordError
from ml_dash.records.base import describe_validation_error
from ml_dash.records.blocks import CheckedBlock, check_log_lines, check_metric_lines, read_blocks
from ml_dash.records.experiment import ExperimentRecord
from ml_dash.records.files import FileEntry
from ml_dash.records.metrics import MetricMetadata
from ml_dash.records.parameters import ParametersRecord
from ml_dash.records.read import Problem, load_record
from ml_dash.sdk.files_util import sha256_file
from ml_dash.upload.dashrc import DashrcCheck, check_dashrc
from ml_dash.upload.discover import DiscoveredExperiment

__all__ = ["CheckedExperiment", "ExperimentValidator", "FileCheck", "StreamCheck", "ValidationResult"]

SAMPLE = 5  # invalid line numbers shown per stream


@dataclass
class StreamCheck:
    """One JSONL stream (the logs, or one metric): how many lines are usable."""

    name: str
    path: Path
    valid: int = 0
    invalid: int = 0
    sample: list[Problem] = field(default_factory=list)
    info: dict[str, Any] | None = None  # a metric's description/tags/metadata (its metadata.json)
    counted: bool = True  # False: not read up front (a lenient upload checks each line as it sends it)

    @property
    def sample_lines(self) -> list[int]:
        return [p.line for p in self.sample]


@dataclass
class FileCheck:
    entry: FileEntry
    blob: Path | None
    problem: str | None = None


@dataclass
class CheckedExperiment:
    """The validation result of one experiment (``ValidationResult`` in the seed's API)."""

    exp: DiscoveredExperiment
    record: ExperimentRecord | None = None
    params: dict[str, Any] | None = None
    logs: StreamCheck | None = None
    metrics: list[StreamCheck] = field(default_factory=list)
    files: list[FileCheck] = field(default_factory=list)
    deleted_files: int = 0
    dashrc: DashrcCheck | None = None  # the experiment's own .dashrc, when it has one
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # file:line: problem, for -v

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def valid_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.record is not None:
            data["metadata"] = self.record.to_json_dict()
        if self.params is not None:
            data["parameters"] = self.params
        return data

    @property
    def uploadable_files(self) -> list[FileCheck]:
        return [f for f in self.files if f.problem is None]

    @property
    def file_bytes(self) -> int:
        return sum(f.entry.sizeBytes for f in self.uploadable_files)

    @property
    def invalid_lines(self) -> int:
        return (self.logs.invalid if self.logs else 0) + sum(m.invalid for m in self.metrics)

    @property
    def metric_points(self) -> int:
        return sum(m.valid for m in self.metrics)


ValidationResult = CheckedExperiment


SCAN_BLOCK = 10_000  # lines checked per call (see records/blocks.py)


def _scan(path: Path, check_lines: Callable[..., CheckedBlock], name: str, count: bool = True) -> StreamCheck:
    """Every line of a JSONL stream checked, a block at a time; ``count`` False: only its presence."""
    check = StreamCheck(name=name, path=path, counted=count)
    if not count:
        return check
    line = 1
    for lines, _, partial in read_blocks(path, SCAN_BLOCK):
        block = check_lines(lines, line, path, partial)
        line += len(lines)
        check.valid += len(block.records)
        check.invalid += len(block.problems)
        check.sample.extend(block.problems[:SAMPLE - len(check.sample)])
    return check


PARALLEL_BYTES = 16 * 1024 * 1024  # below this, the streams are checked in this process


def _scan_job(path: Path, kind: str, name: str) -> StreamCheck:
    return _scan(path, check_log_lines if kind == "logs" else check_metric_lines, name)


def prescan(jobs: list[tuple[Path, str, str]], workers: int | None = None) -> dict[Path, StreamCheck]:
    """Every line of these streams (``(path, "logs" | "metric", name)``) checked by up to one
    process per core: a strict or dry run checks all of them before sending anything, while
    nothing else runs (the server has nothing to do yet), and the block checks hold the GIL.

    Results are those of ``_scan``, by path. Small trees, one core, a process that already runs
    threads (fork would copy their locks) or a pool that breaks: checked here, one after the other,
    by the caller (an empty or partial result)."""
    import os
    import threading

    jobs = [j for j in jobs if j[0].is_file()]
    workers = workers or min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    if workers < 2 or len(jobs) < 2 or threading.active_count() > 1 or os.name != "posix":
        return {}
    try:
        if sum(j[0].stat().st_size for j in jobs) < PARALLEL_BYTES:
            return {}
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        jobs.sort(key=lambda j: -j[0].stat().st_size)  # largest first: the workers finish together
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("fork")) as pool:
            return dict(zip([j[0] for j in jobs], pool.map(_scan_job, *zip(*jobs, strict=True)), strict=True))
    except (OSError, RuntimeError, ValueError):  # BrokenProcessPool is a RuntimeError: check them here
        return {}


def lines_message(what: str, invalid: int, sample: list[Problem], strict: bool) -> str:
    """The seed's line about a stream's invalid lines (``what``: "logs.jsonl" or "metric 'loss'")."""
    suffix = "" if strict else " - will skip these"
    return f"{what} has {invalid} invalid lines (e.g., {[p.line for p in sample]}...){suffix}"


def _lines_message(what: str, check: StreamCheck, strict: bool) -> str:
    return lines_message(what, check.invalid, check.sample, strict)


class ExperimentValidator:
    """``ExperimentValidator(strict=False).validate_experiment(exp)`` as in the seed."""

    def __init__(self, strict: bool = False, verify_checksums: bool = True, skip: frozenset[str] = frozenset(),
                 count_lines: bool = True) -> None:
        """``skip``: parts not to read at all ("logs", "metrics", "files", "params"), as they will not be sent.
        ``count_lines`` False: logs and metrics are not read here (a lenient upload checks each line
        once, as it sends it, and reports the invalid ones at the end)."""
        self.strict = strict
        self.verify_checksums = verify_checksums
        self.skip = skip
        self.count_lines = count_lines
        self._scanned: dict[Path, StreamCheck] = {}

    def prescan(self, experiments: list[DiscoveredExperiment]) -> None:
        """Check the logs and metrics of all ``experiments`` at once, on every core (``prescan``)."""
        if not self.count_lines:
            return
        jobs: list[tuple[Path, str, str]] = []
        for exp in experiments:
            if "logs" not in self.skip:
                jobs.append((exp.paths.logs_jsonl, "logs", "logs"))
            if "metrics" not in self.skip:
                jobs += [(exp.paths.metrics_dir / name / "data.jsonl", "metric", name) for name in exp.metric_names]
        self._scanned = prescan(jobs)

    def _scan(self, path: Path, check_lines: Callable[..., CheckedBlock], name: str) -> StreamCheck:
        done = self._scanned.pop(path, None)
        return done if done is not None else _scan(path, check_lines, name, self.count_lines)

    def _problem(self, result: CheckedExperiment, lenient_text: str, strict_text: str | None = None) -> None:
        if self.strict:
            result.errors.append(strict_text or lenient_text.replace(" (will skip)", ""))
        else:
            result.warnings.append(lenient_text)

    def validate_experiment(self, exp: DiscoveredExperiment) -> CheckedExperiment:
        result = CheckedExperiment(exp=exp)
        paths = exp.paths
        try:
            result.record = load_record(paths.experiment_json, ExperimentRecord)
        except RecordError as exc:
            result.errors.append(f"experiment.json is invalid: {exc.message}")
            return result
        if "params" not in self.skip:
            self._check_params(result)
        if paths.logs_jsonl.is_file() and "logs" not in self.skip:
            result.logs = self._scan(paths.logs_jsonl, check_log_lines, "logs")
            if result.logs.invalid:
                self._problem(result, _lines_message("logs.jsonl", result.logs, False),
                              _lines_message("logs.jsonl", result.logs, True))
                result.details += [str(p) for p in result.logs.sample]
        for name in exp.metric_names if "metrics" not in self.skip else []:
            check = self._scan(paths.metrics_dir / name / "data.jsonl", check_metric_lines, name)
            check.info = self._metric_info(result, paths.metrics_dir / name / "metadata.json", name)
            result.metrics.append(check)
            if check.invalid:
                self._problem(result, _lines_message(f"metric '{name}'", check, False),
                              _lines_message(f"metric '{name}'", check, True))
                result.details += [str(p) for p in check.sample]
        if "files" not in self.skip:
            self._check_files(result)
        self._check_dashrc(result)
        return result

    def _check_dashrc(self, result: CheckedExperiment) -> None:
        if not result.exp.dashrc.is_file():
            return
        result.dashrc = check_dashrc(result.exp.dashrc)
        if not result.dashrc.ok:
            hint = f" (hint: {result.dashrc.hint})" if result.dashrc.hint else ""
            self._problem(result, f".dashrc is invalid: {result.dashrc.problem}{hint} (will skip)")

    def _metric_info(self, result: CheckedExperiment, path: Path, name: str) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            meta = load_record(path, MetricMetadata)
        except RecordError as exc:
            result.warnings.append(f"metric '{name}': metadata.json is invalid, its description and tags are not "
                                   "uploaded (the points are)")
            result.details.append(exc.message)
            return None
        info = {"description": meta.description, "tags": meta.tags or None, "metadata": meta.metadata}
        return {k: v for k, v in info.items() if v} or None

    def _check_params(self, result: CheckedExperiment) -> None:
        path = result.exp.paths.parameters_json
        if not path.is_file():
            return
        try:
            result.params = load_record(path, ParametersRecord).data
        except RecordError as exc:
            self._problem(result, f"parameters.json is invalid: {exc.message.split(': ', 1)[-1]} (will skip)")
            result.details.append(exc.message)

    def _check_files(self, result: CheckedExperiment) -> None:
        """Each manifest entry on its own: one bad entry does not take the good ones with it."""
        paths = result.exp.paths
        if not paths.files_manifest.is_file():
            return
        try:
            doc = json.loads(paths.files_manifest.read_bytes())
        except ValueError as exc:
            line = exc.lineno if isinstance(exc, json.JSONDecodeError) else "?"
            self._manifest_problem(result, f"{paths.files_manifest}:{line}: invalid JSON")
            return
        entries = doc.get("files") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            self._manifest_problem(result, f"{paths.files_manifest}: expected {{\"files\": [...]}}")
            return
        files_root = paths.files_dir.resolve()
        for i, raw in enumerate(entries):
            try:
                entry = FileEntry.model_validate(raw)
            except ValidationError as exc:
                label = raw.get("filename", f"#{i}") if isinstance(raw, dict) else f"#{i}"
                problem = f"manifest entry files.{i} is invalid: {describe_validation_error(exc)}"
                entry = FileEntry.model_construct(id=f"#{i}", path="", filename=str(label), sizeBytes=0,
                                                  checksum="", deletedAt=None)
                result.files.append(FileCheck(entry=entry, blob=None, problem=problem))
                self._problem(result, f"file {label}: {problem} (will skip)")
                continue
            if entry.deleted:
                result.deleted_files += 1  # soft-deleted: kept on disk, never uploaded
                continue
            check = FileCheck(entry=entry, blob=None)
            check.problem = self._file_problem(entry, paths.files_dir, files_root, check)
            result.files.append(check)
            if check.problem:
                self._problem(result, f"file {entry.path.rstrip('/')}/{entry.filename}: {check.problem} "
                                      "(will skip)")

    def _manifest_problem(self, result: CheckedExperiment, problem: str) -> None:
        entry = FileEntry.model_construct(id="manifest", path="", filename=".files_metadata.json", sizeBytes=0,
                                          checksum="", deletedAt=None)
        result.files.append(FileCheck(entry=entry, blob=None, problem=problem))
        self._problem(result, f"files/.files_metadata.json is invalid: {problem} (will skip all files)")

    def _file_problem(self, entry: FileEntry, files_dir: Path, files_root: Path, check: FileCheck) -> str | None:
        try:
            blob = files_dir / _relpath(entry)
        except InvalidInputError as exc:
            return exc.message
        try:
            resolved = blob.resolve()
            resolved.relative_to(files_root)
        except ValueError:
            return f"{blob} leaves the files directory (symlink); refused"
        check.blob = blob
        if not blob.is_file():
            return f"missing on disk ({blob.relative_to(files_dir.parent)})"
        size = blob.stat().st_size
        if size != entry.sizeBytes:
            return f"size on disk is {size} bytes, the manifest says {entry.sizeBytes}"
        if self.verify_checksums:
            digest, _ = sha256_file(blob)
            if digest != entry.checksum:
                return "sha256 on disk does not match the manifest (the file changed or is corrupt)"
        return None


def _relpath(entry: FileEntry) -> Path:
    from ml_dash.records.layout import blob_relpath

    return Path(blob_relpath(entry.path, entry.id, entry.filename))


def mark_clashes(checked: list[CheckedExperiment]) -> int:
    """Experiments in different folders that one server experiment would hold (the server keys
    experiments by project and name, as 0.5.8's does) are a clash: each gets an error naming
    the other paths, and none is sent. Returns how many clash. Spool runs of one experiment
    (the same folder) are writers of it, not a clash."""
    by_server: dict[tuple[str, str], list[CheckedExperiment]] = {}
    for c in checked:
        by_server.setdefault((c.exp.project, c.exp.experiment), []).append(c)
    clashing = 0
    for (project, name), group in by_server.items():
        if len({c.exp.folder or "" for c in group}) < 2:
            continue
        for c in group:
            others = ", ".join(str(o.exp.path) for o in group if o is not c)
            c.errors.append(f"clashes with {others}: both would be experiment {project}/{name} on the server, "
                            "which keys experiments by project and name")
            c.details.append("hint: give one of them another name (rename its directory and the name in its "
                             "experiment.json), or upload one of them at a time into another project")
            clashing += 1
    return clashing
