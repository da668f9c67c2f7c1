"""``metrics/<name>/data.jsonl`` (points) and ``metrics/<name>/metadata.json``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ml_dash.records.base import Record

__all__ = ["MetricMetadata", "MetricPoint", "local_metric_id"]


class MetricPoint(Record):
    """``{"index", "data", "createdAt"}``; the prefix layout adds ``_ts`` (epoch seconds).

    ``data`` is the free-form point; ``step``/``epoch`` inside it are ordinary keys.
    """

    index: int | None = Field(None, ge=0)
    data: dict[str, Any]
    createdAt: str | None = None
    ts: float | None = Field(None, alias="_ts")


class MetricMetadata(Record):
    """metadata.json of one metric series (0.5.8 key order)."""

    metricId: str
    name: str | None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    totalDataPoints: int = Field(0, ge=0)
    nextIndex: int = Field(0, ge=0)
    createdAt: str | None = None
    updatedAt: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "metricId": self.metricId,
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "totalDataPoints": self.totalDataPoints,
            "nextIndex": self.nextIndex,
            "createdAt": self.createdAt,
        }
        if self.updatedAt is not None:
            doc["updatedAt"] = self.updatedAt
        return doc


def local_metric_id(name: str | None) -> str:
    return f"local-metric-{name}"

