"""The wire contract: every request and response body, shared by our client and server.

Shapes follow what the real ml-dash 0.5.8 client sends and reads (see
``shared/reference``); fields that 0.5.8 renders as strings (``index``,
``startIndex``, ``totalDataPoints``, ...) stay strings. Our own additions are optional
and ignored by 0.5.8: positions on appends (``startIndex``, ``sequenceNumber``) that
make retries and resumes idempotent, and ``GET /experiments/{id}/streams`` for resume.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "STATUSES",
    "ErrorBody",
    "ErrorDetail",
    "ExperimentCreate",
    "FileUpdate",
    "LogEntryIn",
    "LogsAppend",
    "LogsAppendOut",
    "MetricAppend",
    "MetricAppendBatch",
    "ParametersIn",
    "StatusUpdate",
    "StreamsOut",
]

STATUSES = ("RUNNING", "COMPLETED", "FAILED", "CANCELLED")


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
    sequenceNumber: int | None = Field(None, ge=0, description="ml-dash: position; a known one is ignored.")


class LogsAppend(_In):
    logs: list[LogEntryIn] = Field(min_length=1)


class LogsAppendOut(BaseModel):
    created: int
    startSequence: int
    endSequence: int
    experimentId: str


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


class ErrorDetail(BaseModel):
    code: str
    message: str
    hint: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
