"""Database rows → the JSON shapes the 0.5.8 client reads (ids as strings, camelCase)."""

from __future__ import annotations

import json
from typing import Any

Row = dict[str, Any]


def _j(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def experiment(row: Row) -> Row:
    return {
        "id": str(row["id"]), "name": row["name"], "projectId": str(row["project_id"]),
        "description": row["description"], "tags": _j(row["tags"]) or [], "bindrs": _j(row["bindrs"]) or [],
        "folderId": None, "folder": row["folder"], "metadata": _j(row["metadata"]), "status": row["status"],
        "writeProtected": bool(row["write_protected"]), "createdAt": row["created_at"],
        "updatedAt": row["updated_at"], "startedAt": row["started_at"], "endedAt": row["ended_at"],
    }


def project(row: Row) -> Row:
    return {"id": str(row["id"]), "name": row["name"], "slug": row["slug"], "namespaceId": str(row["namespace_id"]),
            "description": row["description"], "tags": _j(row["tags"]) or [], "createdAt": row["created_at"]}


def folder(row: Row) -> Row | None:
    path = row.get("folder")
    if not path:
        return None
    return {"id": None, "path": path, "name": path.rstrip("/").rsplit("/", 1)[-1]}


def metric_summary(row: Row) -> Row:
    return {"metricId": str(row["id"]), "name": row["name"], "description": row["description"],
            "tags": _j(row["tags"]) or [], "totalDataPoints": str(row["total"]), "createdAt": row["created_at"]}


def metric_stats(row: Row) -> Row:
    total = str(row["total"])
    return {"metricId": str(row["id"]), "name": row["name"], "description": row["description"],
            "tags": _j(row["tags"]) or [], "metadata": _j(row["metadata"]), "totalDataPoints": total,
            "bufferedDataPoints": total, "chunkedDataPoints": "0", "totalChunks": 0, "chunkSize": 10000,
            "firstDataAt": row["first_data_at"], "lastDataAt": row["last_data_at"], "createdAt": row["created_at"],
            "updatedAt": row["updated_at"]}


def file(row: Row) -> Row:
    return {"id": str(row["id"]), "experimentId": str(row["experiment_id"]), "path": row["path"],
            "filename": row["filename"], "description": row["description"], "tags": _j(row["tags"]) or [],
            "contentType": row["content_type"], "sizeBytes": int(row["size_bytes"]), "checksum": row["checksum"],
            "metadata": _j(row["metadata"]), "uploadedAt": row["uploaded_at"], "updatedAt": row["updated_at"],
            "deletedAt": row["deleted_at"]}


def log(row: Row) -> Row:
    return {"sequenceNumber": int(row["seq"]), "timestamp": row["timestamp"], "level": row["level"],
            "message": row["message"], "metadata": row["metadata"]}
