"""The wire contract: every request and response body, shared by our client and server.

Shapes follow what the real ml-dash 0.5.8 client sends and reads (see
``shared/reference``); fields that 0.5.8 renders as strings (``index``,
``startIndex``, ``totalDataPoints``, ...) stay strings. Our own additions are optional
and ignored by 0.5.8:

* a **writer** on appends (``writerId`` and each record's ``writerSeq``): the writer's own
  numbering, so that a retried or replayed batch is applied once while the server assigns
  the positions: any number of writers (ranks of a job, a resumed script, an upload) share
  a stream;
* **positions** on appends (``startIndex``, ``sequenceNumber``): kept for older clients;
  a position already taken by other content is a ``409 conflict``, never a silent drop;
* ``GET /experiments/{id}/streams[?writer=W]`` for resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "STATUSES",
    "SeriesBatchIn",
    "SeriesBatchOut",
    "SeriesIndexOut",
    "SeriesItemIn",
    "SeriesOut",
    "ErrorBody",
    "ErrorDetail",
    "ExperimentCreate",
    "FileUpdate",
    "LogEntryIn",
    "LogsAppend",
    "LogsAppendOut",
    "WRITER_ID_PATTERN",
    "MetricAppend",
    "MetricAppendBatch",
    "ParametersIn",
    "StatusUpdate",
    "StreamsOut",
]

STATUSES = ("RUNNING", "COMPLETED", "FAILED", "CANCELLED")
WRITER_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_WRITER_ID = Field(None, pattern=WRITER_ID_PATTERN,
                   description="ml-dash: who writes (one id per writing process or local tree); with it, each "
                               "record's writerSeq makes retries idempotent and the server assigns positions.")


class _In(BaseModel):
    # Unknown keys are ignored (newer clients may send more), input never echoed.
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)


class ExperimentCreate(_In):
    """``POST /projects/{project}/experiments``: create, or update the named experiment."""

    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    tags: list[str] | None = None
    bindrs: list[str] | None = None
    folder: str | None = None
    writeProtected: bool | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _segment(cls, v: str) -> str:
        if "/" in v or v in (".", ".."):
            raise ValueError("must be a single path segment")
        return v


class StatusUpdate(_In):
    status: Literal["RUNNING", "COMPLETED", "FAILED", "CANCELLED"]


class LogEntryIn(_In):
    timestamp: str | None = None
    level: str = "info"
    message: str
    metadata: dict[str, Any] | None = None
    sequenceNumber: int | None = Field(None, ge=0, description="ml-dash: position; the same line again is "
                                                                "ignored, another line there is a conflict.")
    writerSeq: int | None = Field(None, ge=0, description="ml-dash: the writer's own number of this line.")


class LogsAppend(_In):
    logs: list[LogEntryIn] = Field(min_length=1)
    writerId: str | None = _WRITER_ID

    @model_validator(mode="after")
    def _writer_numbers_every_line(self) -> LogsAppend:
        if self.writerId is not None:
            for i, entry in enumerate(self.logs):
                if entry.writerSeq is None:
                    raise ValueError(f"logs.{i}.writerSeq is required with writerId")
        return self


class LogsAppendOut(BaseModel):
    created: int
    startSequence: int
    endSequence: int
    experimentId: str
    duplicates: int = Field(0, description="ml-dash: lines the server already had (a retry)")


class ParametersIn(_In):
    data: dict[str, Any]


class MetricAppend(_In):
    data: dict[str, Any]
    description: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    index: int | None = Field(None, ge=0, description="ml-dash: position of the point; a known one is ignored.")


class MetricAppendBatch(_In):
    dataPoints: list[dict[str, Any]] = Field(min_length=1)
    description: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    startIndex: int | None = Field(None, ge=0, description="ml-dash: position of the first point.")
    writerId: str | None = _WRITER_ID
    writerSeq: int | None = Field(None, ge=0, description="ml-dash: the writer's number of the first point "
                                                          "(the others follow on)")
    writerSeqs: list[int] | None = Field(None, description="ml-dash: the writer's number of each point, "
                                                           "when they do not follow on")

    @model_validator(mode="after")
    def _writer_numbers_every_point(self) -> MetricAppendBatch:
        if self.writerId is not None:
            if (self.writerSeq is None) == (self.writerSeqs is None):
                raise ValueError("writerId needs exactly one of writerSeq and writerSeqs")
            if self.writerSeqs is not None and (len(self.writerSeqs) != len(self.dataPoints)
                                                or min(self.writerSeqs) < 0):
                raise ValueError("writerSeqs must hold one number >= 0 per data point")
        return self

    def writer_seqs(self) -> Sequence[int] | None:
        """The writer's number of each point (a ``range`` when they follow on: no list of n ints)."""
        if self.writerId is None:
            return None
        if self.writerSeqs is not None:
            return self.writerSeqs
        assert self.writerSeq is not None
        return range(self.writerSeq, self.writerSeq + len(self.dataPoints))


class FileUpdate(_In):
    description: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class StreamsOut(BaseModel):
    """How far each stream of an experiment got on the server (for resume and dry runs)."""

    experimentId: str
    status: str
    parameters: dict[str, Any]
    parametersVersion: int
    logs: int = Field(description="number of log lines; the next sequence number")
    metrics: dict[str, int] = Field(description="metric name -> number of points")
    files: list[dict[str, Any]] = Field(description="live files: id, path, filename, checksum, sizeBytes")
    writers: bool = Field(True, description="the server takes writerId/writerSeq on appends")
    marked: dict[str, int] = Field(default_factory=dict,
                                   description="stream ('logs', 'metric:NAME') -> records appended by some writer")
    writer: dict[str, list[tuple[int, int]]] | None = Field(
        None, description="with ?writer=W: stream -> the ranges [lo, hi] of W's sequence numbers the server has")


# --- series (the dashboard's charts; usable from a notebook) -----------------------------------------------
class SeriesLast(BaseModel):
    x: Any = None
    y: float | None = None


class SeriesOut(BaseModel):
    """A metric field bucketed by index: per bucket the mean x and y, the exact min and max of y, the
    number of points carrying y and how many of them are NaN/±Inf (non-finite numbers are null)."""

    x: list[float | None]
    y: list[float | None]
    min: list[float | None]
    max: list[float | None]
    count: list[int]
    nonFinite: list[int]
    total: int = Field(description="points in the series")
    cursor: int = Field(description="the total this answer covered: ask since=cursor for what is new")
    xField: str
    yField: str
    last: SeriesLast | None = Field(None, description="the series' last point carrying y")
    exact: bool = Field(description="every bucket is one point")


class SeriesItemIn(_In):
    experimentId: str
    metric: str
    y: str
    x: str = "index"
    start: float | None = None
    end: float | None = None
    since: int | None = Field(None, ge=0)


class SeriesBatchIn(_In):
    points: int = Field(1000, ge=1, description="buckets per series (at most serve.dashboard.max_series_points)")
    series: list[SeriesItemIn] = Field(min_length=1, max_length=500)


class SeriesBatchOut(BaseModel):
    series: list[dict[str, Any]] = Field(description="per request item, in order: a series or {\"error\": {...}}")


class SeriesFieldOut(BaseModel):
    count: int
    min: float | None
    max: float | None
    last: float | None


class SeriesMetricOut(BaseModel):
    name: str
    total: int
    fields: dict[str, SeriesFieldOut]
    xFields: list[str]


class SeriesIndexOut(BaseModel):
    metrics: list[SeriesMetricOut]


class ErrorDetail(BaseModel):
    code: str
    message: str
    hint: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
