"""``experiment.json``: who the experiment is (name, project, folder or prefix, tags)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ml_dash.records.base import Record

__all__ = ["ExperimentRecord"]


class ExperimentRecord(Record):
    """experiment.json, written once at creation (0.5.8 key order).

    0.5.8 writes ``folder``; the prefix layout (0.6+) writes ``prefix`` instead. On
    re-open 0.5.8 adds ``updated_at``. ``created_at``/``write_protected`` are snake_case
    here, camelCase everywhere else: that is the real format.
    """

    name: str = Field(min_length=1, description="Experiment name, unique within its project.")
    project: str = Field(min_length=1, description="Project the experiment belongs to.")
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    bindrs: list[str] = Field(default_factory=list)
    folder: str | None = Field(None, description="0.5.8 layout: folder path, e.g. '/sweeps/2025'.")
    prefix: str | None = Field(None, description="prefix layout: 'owner/project/[folders/]name'.")
    metadata: dict[str, Any] | None = None
    created_at: str | None = None
    write_protected: bool = False
    updated_at: str | None = None

    @field_validator("name", "project")
    @classmethod
    def _one_segment(cls, v: str) -> str:
        if "/" in v or v in (".", ".."):
            raise ValueError("must be a single path segment (no '/', not '.' or '..')")
        return v

    @field_validator("tags", "bindrs", mode="before")
    @classmethod
    def _null_is_empty(cls, v: Any) -> Any:
        return [] if v is None else v

    @property
    def writer_id(self) -> str:
        """Who this local tree is to a server: the same id for the hybrid SDK writing it and for
        ``ml-dash upload`` sending it later (from any copy of the tree), so that between them
        every record reaches the server once. Trees created apart (two machines, two runs) differ
        by ``created_at``, which 0.5.8 writes with microseconds."""
        import hashlib
        import json

        key = json.dumps([self.project, self.folder, self.prefix, self.name, self.created_at])
        return "tree-" + hashlib.sha256(key.encode()).hexdigest()[:24]

    def to_json_dict(self) -> dict[str, Any]:
        """The exact dict 0.5.8 writes, in its key order (``updated_at`` only when set)."""
        doc: dict[str, Any] = {
            "name": self.name,
            "project": self.project,
            "description": self.description,
            "tags": list(self.tags),
            "bindrs": list(self.bindrs),
            "folder": self.folder,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "write_protected": self.write_protected,
        }
        if self.updated_at is not None:
            doc["updated_at"] = self.updated_at
        if self.prefix is not None:
            doc["prefix"] = self.prefix
        for key, value in (self.model_extra or {}).items():
            doc.setdefault(key, value)
        return doc
