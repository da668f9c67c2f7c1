"""The stored ``.dashrc`` texts: a folder's (by project and folder) and an experiment's.

Texts are kept as written (the dashboard edits YAML, comments included); routes validate
them before they get here. One upsert per write, on both dialects.
"""

from __future__ import annotations

from typing import Any

from ml_dash.server.ids import now_iso
from ml_dash.server.storage.sql import SqlMetadataStore

__all__ = ["experiment_dashrc", "folder_dashrc", "folder_dashrcs", "put_experiment_dashrc", "put_folder_dashrc"]

Row = dict[str, Any]


def folder_dashrc(store: SqlMetadataStore, project_id: int, folder: str) -> Row | None:
    """``{"text", "updated_at"}`` of the folder's ``.dashrc`` (``folder`` without outer slashes)."""
    with store._tx(write=False) as cur:
        return cur.one("SELECT text, updated_at FROM folder_dashrc WHERE project_id = ? AND folder = ?",
                       (project_id, folder))


def folder_dashrcs(store: SqlMetadataStore, project_id: int) -> list[Row]:
    """Every folder ``.dashrc`` of a project, by folder."""
    with store._tx(write=False) as cur:
        return cur.all("SELECT folder, text, updated_at FROM folder_dashrc WHERE project_id = ? ORDER BY folder",
                       (project_id,))


def put_folder_dashrc(store: SqlMetadataStore, project_id: int, folder: str, text: str) -> Row:
    now = now_iso()
    with store._tx() as cur:
        cur.execute("INSERT INTO folder_dashrc (project_id, folder, text, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (project_id, folder) DO UPDATE SET text = excluded.text, "
                    "updated_at = excluded.updated_at", (project_id, folder, text, now))
    return {"text": text, "updated_at": now}


def experiment_dashrc(store: SqlMetadataStore, experiment_id: int) -> Row | None:
    with store._tx(write=False) as cur:
        return cur.one("SELECT text, updated_at FROM experiment_dashrc WHERE experiment_id = ?", (experiment_id,))


def put_experiment_dashrc(store: SqlMetadataStore, experiment_id: int, text: str) -> Row:
    now = now_iso()
    with store._tx() as cur:
        cur.execute("INSERT INTO experiment_dashrc (experiment_id, text, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (experiment_id) DO UPDATE SET text = excluded.text, "
                    "updated_at = excluded.updated_at", (experiment_id, text, now))
    return {"text": text, "updated_at": now}
