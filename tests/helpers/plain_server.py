"""A server that speaks only the ml-dash 0.5.8 REST API (reference §b) plus position-aware
appends: ``ml-dash serve`` with our ``/streams`` route removed and with no deduplication of
file uploads (every POST of a file makes a new record, as the hosted 0.5.8 server does).
Clients must stay exact against it without our private helpers.

    python -m tests.helpers.plain_server [ml-dash serve arguments]
"""

from __future__ import annotations

import sys
from typing import Any


def _patch() -> None:
    from ml_dash.server.ids import new_id, now_iso
    from ml_dash.server.routes import experiments, files
    from ml_dash.server.storage import sql

    experiments.router.routes = [r for r in experiments.router.routes if not r.path.endswith("/streams")]
    # 0.5.8 takes one file per request: no batch route, so the uploader's fallback is what runs here.
    files.router.routes = [r for r in files.router.routes if not r.path.endswith("/batch/files")]

    def add_file(self: sql.SqlMetadataStore, experiment_id: int, fields: dict[str, Any]) -> tuple[dict, bool]:
        now = now_iso()
        with self._tx() as cur:  # the newest upload is the live one; earlier copies stay as records
            cur.execute("UPDATE files SET deleted_at = ? WHERE experiment_id = ? AND path = ? AND filename = ? AND "
                        "deleted_at IS NULL", (now, experiment_id, fields["path"], fields["filename"]))
            row = {"id": new_id(), "experiment_id": experiment_id, "path": fields["path"],
                   "filename": fields["filename"], "description": fields.get("description"),
                   "tags": sql._dumps(fields.get("tags") or []), "content_type": fields["content_type"],
                   "size_bytes": fields["size_bytes"], "checksum": fields["checksum"],
                   "metadata": sql._dumps(fields.get("metadata")), "uploaded_at": now, "updated_at": now,
                   "deleted_at": None}
            cur.execute(f"INSERT INTO files ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        tuple(row.values()))
            return row, True

    sql.SqlMetadataStore.add_file = add_file  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    _patch()
    from ml_dash.cli.serve import main as serve

    return serve(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
