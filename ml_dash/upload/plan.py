"""Stage 3: the frozen plan: what will be sent, in which order and in how many requests.

Per experiment, in the seed's order: create the experiment, parameters, logs,
metrics, files, its ``.dashrc`` (then the final status when the tree records one); after
every experiment, the folders' ``.dashrc`` files. The engine executes exactly this;
``--dry-run`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_dash.records.files import FileEntry
from ml_dash.upload.dashrc import FolderDashrc
from ml_dash.upload.validate import CheckedExperiment, StreamCheck

__all__ = ["ExperimentPlan", "Plan", "StreamPlan", "build_plan"]


DASHRC_REQUESTS = 2  # at most: read the server's text, write ours when it differs


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class StreamPlan:
    kind: str  # "params" | "logs" | "metric" | "file" | "dashrc"
    name: str
    items: int | None  # parameters, log lines, metric points, or 1 for a file; None: not counted up front
    bytes: int
    requests: int
    source: Path | None = None
    file: FileEntry | None = None
    metric_info: dict[str, Any] | None = None  # description/tags/metadata of a metric series
    batch: int = 0  # records per request (logs and metrics)
    text: str | None = None  # a .dashrc's text (checked)


@dataclass(frozen=True)
class ExperimentPlan:
    key: str  # project/name (the state file's key)
    display: str  # [folder/]project/name
    project: str
    name: str
    path: Path
    create_body: dict[str, Any]
    params: dict[str, Any] | None
    streams: tuple[StreamPlan, ...]
    invalid_lines: int
    skipped_files: int
    status: str | None = None  # final status, when the tree records one
    file_problems: tuple[tuple[str, str], ...] = ()  # (file, problem): reported as failures, never sent
    writer_id: str | None = None  # the tree's writer id (see ExperimentRecord.writer_id)
    dashrc_problem: str | None = None  # its .dashrc is invalid: reported as a failure, never sent

    def count(self, kind: str) -> int:
        return sum(s.items or 0 for s in self.streams if s.kind == kind)

    @property
    def requests(self) -> int:
        return 1 + sum(s.requests for s in self.streams)

    @property
    def file_bytes(self) -> int:
        return sum(s.bytes for s in self.streams if s.kind == "file")

    @property
    def metric_count(self) -> int:
        return sum(1 for s in self.streams if s.kind == "metric")


@dataclass(frozen=True)
class Plan:
    experiments: tuple[ExperimentPlan, ...]
    log_batch: int
    metric_batch: int
    folder_dashrcs: tuple[FolderDashrc, ...] = ()  # sent after every experiment (their projects exist then)

    @property
    def requests(self) -> int:
        return sum(e.requests for e in self.experiments) + DASHRC_REQUESTS * sum(
            1 for f in self.folder_dashrcs if f.check.ok)

    def describe_dashrcs(self) -> list[str]:
        """The dry run's lines about .dashrc files (none when the tree has none)."""
        lines = [f"  {e.display}: {s.source}" for e in self.experiments for s in e.streams if s.kind == "dashrc"]
        lines += [f"  {f.display}: {f.check.path}" for f in self.folder_dashrcs if f.check.ok]
        return lines

    def describe(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """Header and rows of the dry-run table (one row per experiment, then a total)."""
        header = ("experiment", "params", "log lines", "metric points", "files", "bytes", "invalid lines",
                  "requests")
        rows = []
        for e in self.experiments:
            rows.append((e.display, str(e.count("params")), str(e.count("logs")), str(e.count("metric")),
                         str(e.count("file")), human_bytes(e.file_bytes), str(e.invalid_lines), str(e.requests)))
        if len(self.experiments) > 1:
            rows.append(("total", *(str(sum(int(r[i]) for r in rows)) for i in (1, 2, 3, 4)),
                         human_bytes(sum(e.file_bytes for e in self.experiments)),
                         str(sum(e.invalid_lines for e in self.experiments)), str(self.requests)))
        return header, rows


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover


def create_body(checked: CheckedExperiment) -> dict[str, Any]:
    """``POST /projects/{p}/experiments``: the experiment's own fields, None left out."""
    record = checked.record
    assert record is not None
    body: dict[str, Any] = {"name": checked.exp.experiment}
    for key, value in (("description", record.description), ("tags", record.tags), ("bindrs", record.bindrs),
                       ("folder", checked.exp.folder), ("metadata", record.metadata)):
        if value is not None:
            body[key] = value
    return body


def _recorded_status(checked: CheckedExperiment) -> str | None:
    """A final status recorded in experiment.json (0.5.8 trees have none; newer writers may)."""
    extra = (checked.record.model_extra or {}) if checked.record else {}
    status = extra.get("status")
    return status if status in ("COMPLETED", "FAILED", "CANCELLED") else None


def _sendable(check: StreamCheck) -> bool:
    return bool(check.valid) if check.counted else check.path.stat().st_size > 0


def _stream_plan(kind: str, check: StreamCheck, batch: int) -> StreamPlan:
    """A log or metric stream; its size in records and requests only when it was counted."""
    items = check.valid if check.counted else None
    return StreamPlan(kind, check.name if kind == "metric" else "logs", items, check.path.stat().st_size,
                      _ceil_div(items, batch) if items is not None else 0, check.path, metric_info=check.info,
                      batch=batch)


def build_plan(checked: list[CheckedExperiment], *, log_batch: int, metric_batch: int, skip_params: bool = False,
               skip_logs: bool = False, skip_metrics: bool = False, skip_files: bool = False,
               folder_dashrcs: tuple[FolderDashrc, ...] = ()) -> Plan:
    plans = []
    for c in checked:
        streams: list[StreamPlan] = []
        if c.params and not skip_params:
            streams.append(StreamPlan("params", "parameters", len(c.params), 0, 1))
        if c.logs and not skip_logs and _sendable(c.logs):
            streams.append(_stream_plan("logs", c.logs, log_batch))
        if not skip_metrics:
            streams += [_stream_plan("metric", m, metric_batch) for m in c.metrics if _sendable(m)]
        if not skip_files:
            for f in c.uploadable_files:
                streams.append(StreamPlan("file", f.entry.filename, 1, f.entry.sizeBytes, 1, f.blob, f.entry))
        if c.dashrc is not None and c.dashrc.text is not None:
            streams.append(StreamPlan("dashrc", ".dashrc", 1, len(c.dashrc.text.encode()), DASHRC_REQUESTS,
                                      c.dashrc.path, text=c.dashrc.text))
        plans.append(ExperimentPlan(
            key=c.exp.key, display=c.exp.identity.display, project=c.exp.project, name=c.exp.experiment,
            path=c.exp.path, create_body=create_body(c), params=None if skip_params else c.params,
            streams=tuple(streams), invalid_lines=c.invalid_lines,
            skipped_files=sum(1 for f in c.files if f.problem),
            status=_recorded_status(c), writer_id=c.record.writer_id if c.record else None,
            dashrc_problem=c.dashrc.problem if c.dashrc is not None else None,
            file_problems=() if skip_files else tuple(
                (f"{f.entry.path.rstrip('/')}/{f.entry.filename}", f.problem) for f in c.files if f.problem)))
    return Plan(experiments=tuple(plans), log_batch=log_batch, metric_batch=metric_batch,
                folder_dashrcs=folder_dashrcs)
