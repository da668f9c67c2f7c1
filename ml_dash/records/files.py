"""``files/.files_metadata.json``: the manifest of stored files."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from ml_dash.records.base import Record

__all__ = ["FileEntry", "FilesManifest"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FileEntry(Record):
    """One stored file (0.5.8 key order). ``deletedAt`` set means soft-deleted."""

    id: str = Field(min_length=1)
    experimentId: str | None = None
    path: str = "/"
    filename: str = Field(min_length=1)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    contentType: str = "application/octet-stream"
    sizeBytes: int = Field(ge=0)
    checksum: str
    metadata: dict[str, Any] | None = None
    uploadedAt: str | None = None
    updatedAt: str | None = None
    deletedAt: str | None = None

    @field_validator("id", "filename")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if "/" in v or "\\" in v or v in (".", "..") or "\x00" in v:
            raise ValueError("must be a plain name (no '/', not '.' or '..')")
        return v

    @field_validator("path")
    @classmethod
    def _inside_tree(cls, v: str) -> str:
        if any(part in (".", "..") for part in v.replace("\\", "/").split("/")):
            raise ValueError("must not contain '.' or '..' segments (it would leave the files directory)")
        return v

    @field_validator("checksum")
    @classmethod
    def _sha256(cls, v: str) -> str:
        if not _SHA256.match(v):
            raise ValueError("must be a lowercase sha256 hex digest (64 characters)")
        return v

    @field_validator("tags", mode="before")
    @classmethod
    def _null_is_empty(cls, v: Any) -> Any:
        return [] if v is None else v

    @property
    def deleted(self) -> bool:
        return self.deletedAt is not None

    def to_json_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "experimentId": self.experimentId,
            "path": self.path,
            "filename": self.filename,
            "description": self.description,
            "tags": list(self.tags),
            "contentType": self.contentType,
            "sizeBytes": self.sizeBytes,
            "checksum": self.checksum,
            "metadata": self.metadata,
            "uploadedAt": self.uploadedAt,
            "updatedAt": self.updatedAt,
            "deletedAt": self.deletedAt,
        }
        for key, value in (self.model_extra or {}).items():
            doc.setdefault(key, value)
        return doc


class FilesManifest(Record):
    """``{"files": [FileEntry, ...]}``."""

    files: list[FileEntry] = Field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        return {"files": [f.to_json_dict() for f in self.files]}
