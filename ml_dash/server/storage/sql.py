"""The metadata store on SQL: one implementation, two dialects (SQLite, PostgreSQL).

Every method is one transaction. Appends are position-aware: a batch may say where it
starts (``startIndex``, a log line's ``sequenceNumber``); rows already there are left
alone (``ON CONFLICT DO NOTHING``), so a retried or resumed append never duplicates.
A batch without a position goes at the end, as the real 0.5.8 client expects.
Errors of sqlite3 and psycopg are translated to :class:`ServerError` here, only here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ml_dash.api.errors import ServerError
from ml_dash.server.ids import new_id, now_iso
from ml_dash.server.storage.migrations import MIGRATIONS

__all__ = ["SqlMetadataStore", "open_postgres", "open_sqlite"]

Row = dict[str, Any]


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _loads_array(text: str) -> list[Any]:
    from ml_dash.server.fastjson import loads

    value = loads(text)
    return value if isinstance(value, list) else []


class _Dialect:
    name = "base"
    id_type = "BIGINT"
    json_type = "TEXT"

    def connect(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @contextmanager
    def transaction(self, conn: Any, write: bool) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def sql(self, text: str) -> str:
        return text

    def translate(self, exc: Exception) -> ServerError | None:  # pragma: no cover - abstract
        return None


class _SQLite(_Dialect):
    name = "sqlite"
    id_type = "INTEGER"

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextmanager
    def transaction(self, conn: sqlite3.Connection, write: bool) -> Iterator[sqlite3.Cursor]:
        cur = conn.cursor()
        # IMMEDIATE takes the write lock up front: read-then-write transactions (next
        # index, next sequence) cannot interleave.
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def translate(self, exc: Exception) -> ServerError | None:
        if isinstance(exc, sqlite3.IntegrityError):
            return ServerError("conflict", f"conflicting write: {exc}")
        if isinstance(exc, sqlite3.OperationalError):
            return ServerError("unavailable", f"database error: {exc}", hint="retry; the database is busy")
        if isinstance(exc, sqlite3.DatabaseError):
            return ServerError("internal", f"database error: {exc}")
        return None


class _Postgres(_Dialect):
    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    @contextmanager
    def transaction(self, conn: Any, write: bool) -> Iterator[Any]:
        with conn.transaction(), conn.cursor() as cur:
            yield cur

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def translate(self, exc: Exception) -> ServerError | None:
        import psycopg

        if isinstance(exc, psycopg.errors.IntegrityError):
            return ServerError("conflict", f"conflicting write: {exc}")
        if isinstance(exc, psycopg.OperationalError):
            return ServerError("unavailable", f"database unavailable: {exc}", hint="retry later")
        if isinstance(exc, psycopg.Error):
            return ServerError("internal", f"database error: {exc}")
        return None


class SqlMetadataStore:
    """Namespaces, keys, projects, experiments, logs, parameters, metrics and file records."""

    def __init__(self, dialect: _Dialect) -> None:
        self.dialect = dialect
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        self.migrate()

    # --- plumbing -----------------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.dialect.connect()
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except Exception:  # pragma: no cover - best effort at shutdown
                    pass
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[_Cursor]:
        try:
            with self.dialect.transaction(self._conn(), write) as cur:
                yield _Cursor(cur, self.dialect)
        except ServerError:
            raise
        except Exception as exc:
            translated = self.dialect.translate(exc)
            if translated is None:
                raise
            raise translated from exc

    def migrate(self) -> int:
        """Apply the migrations not applied yet; return the schema version."""
        with self._tx() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = cur.one("SELECT MAX(version) AS v FROM schema_version")
            current = (row or {}).get("v") or 0
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in statements:
                    cur.execute(statement.format(ID=self.dialect.id_type, JSON=self.dialect.json_type))
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                current = version
        return int(current)

    # --- namespaces and keys ------------------------------------------------------------------
    def ensure_namespace(self, slug: str) -> Row:
        with self._tx(write=False) as cur:  # the common case reads only: no write lock per request
            row = cur.one("SELECT id, slug, name FROM namespaces WHERE slug = ?", (slug,))
        if row is not None:
            return row
        with self._tx() as cur:
            row = cur.one("SELECT id, slug, name FROM namespaces WHERE slug = ?", (slug,))
            if row is None:
                row = {"id": new_id(), "slug": slug, "name": slug}
                cur.execute("INSERT INTO namespaces (id, slug, name, created_at) VALUES (?, ?, ?, ?)",
                            (row["id"], slug, slug, now_iso()))
            return row

    def namespace_for_key(self, key_hash: str) -> Row | None:
        with self._tx(write=False) as cur:
            return cur.one("SELECT n.id, n.slug, n.name FROM api_keys k JOIN namespaces n ON n.id = k.namespace_id "
                           "WHERE k.key_hash = ? AND k.revoked_at IS NULL", (key_hash,))

    def create_api_key(self, name: str, namespace: str, key_hash: str) -> None:
        ns = self.ensure_namespace(namespace)
        with self._tx() as cur:
            if cur.one("SELECT id FROM api_keys WHERE name = ?", (name,)):
                raise ServerError("conflict", f"an API key named {name!r} already exists",
                                  hint="revoke it first, or pick another name")
            cur.execute("INSERT INTO api_keys (id, namespace_id, name, key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                        (new_id(), ns["id"], name, key_hash, now_iso()))

    def list_api_keys(self) -> list[Row]:
        with self._tx(write=False) as cur:
            return cur.all("SELECT k.name, n.slug AS namespace, k.created_at, k.revoked_at FROM api_keys k "
                           "JOIN namespaces n ON n.id = k.namespace_id ORDER BY k.created_at, k.name")

    def revoke_api_key(self, name: str) -> bool:
        with self._tx() as cur:
            cur.execute("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now_iso(), name))
            return cur.rowcount > 0

    # --- projects and experiments ---------------------------------------------------------------
    def upsert_experiment(self, namespace_id: int, project: str, fields: dict[str, Any]) -> tuple[Row, Row]:
        """Create the project if needed and the experiment, or update the given fields of it."""
        now = now_iso()
        with self._tx() as cur:
            proj = cur.one("SELECT * FROM projects WHERE namespace_id = ? AND slug = ?", (namespace_id, project))
            if proj is None:
                proj = {"id": new_id(), "namespace_id": namespace_id, "name": project, "slug": project,
                        "description": None, "tags": "[]", "created_at": now}
                cur.execute("INSERT INTO projects (id, namespace_id, name, slug, description, tags, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", tuple(proj.values()))
            exp = cur.one("SELECT * FROM experiments WHERE project_id = ? AND name = ?", (proj["id"], fields["name"]))
            if exp is None:
                exp_id = new_id()
                cur.execute(
                    "INSERT INTO experiments (id, project_id, name, description, tags, bindrs, folder, metadata, "
                    "status, write_protected, log_count, params, params_version, created_at, updated_at, "
                    "started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'RUNNING', ?, 0, NULL, 0, ?, ?, ?)",
                    (exp_id, proj["id"], fields["name"], fields.get("description"), _dumps(fields.get("tags") or []),
                     _dumps(fields.get("bindrs") or []), fields.get("folder"), _dumps(fields.get("metadata")),
                     1 if fields.get("writeProtected") else 0, now, now, now))
            else:
                exp_id = exp["id"]
                sets, args = ["updated_at = ?"], [now]
                for key, column, encode in (("description", "description", False), ("tags", "tags", True),
                                            ("bindrs", "bindrs", True), ("folder", "folder", False),
                                            ("metadata", "metadata", True)):
                    if fields.get(key) is not None:
                        sets.append(f"{column} = ?")
                        args.append(_dumps(fields[key]) if encode else fields[key])
                cur.execute(f"UPDATE experiments SET {', '.join(sets)} WHERE id = ?", (*args, exp_id))
            exp = cur.one("SELECT * FROM experiments WHERE id = ?", (exp_id,))
            assert exp is not None
            return exp, proj

    def get_experiment(self, namespace_id: int, experiment_id: int) -> Row | None:
        with self._tx(write=False) as cur:
            return cur.one("SELECT e.*, p.slug AS project_slug, p.namespace_id FROM experiments e "
                           "JOIN projects p ON p.id = e.project_id WHERE e.id = ? AND p.namespace_id = ?",
                           (experiment_id, namespace_id))

    def set_status(self, experiment_id: int, status: str) -> Row:
        now = now_iso()
        ended = now if status in ("COMPLETED", "FAILED", "CANCELLED") else None
        with self._tx() as cur:
            cur.execute("UPDATE experiments SET status = ?, ended_at = ?, updated_at = ? WHERE id = ?",
                        (status, ended, now, experiment_id))
            row = cur.one("SELECT * FROM experiments WHERE id = ?", (experiment_id,))
            assert row is not None
            return row

    def list_projects(self, namespace_id: int) -> list[Row]:
        with self._tx(write=False) as cur:
            return cur.all("SELECT * FROM projects WHERE namespace_id = ? ORDER BY created_at, name", (namespace_id,))

    def list_experiments(self, namespace_id: int, project: str | None = None, status: str | None = None,
                         name: str | None = None) -> list[Row]:
        query = ("SELECT e.*, p.slug AS project_slug FROM experiments e JOIN projects p ON p.id = e.project_id "
                 "WHERE p.namespace_id = ?")
        args: list[Any] = [namespace_id]
        for column, value in (("p.slug", project), ("e.status", status), ("e.name", name)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        with self._tx(write=False) as cur:
            return cur.all(query + " ORDER BY e.created_at, e.id", args)

    # --- parameters ----------------------------------------------------------------------------
    def merge_params(self, experiment_id: int, data: dict[str, Any]) -> Row:
        now = now_iso()
        with self._tx() as cur:
            row = cur.one("SELECT params, params_version, params_created_at FROM experiments WHERE id = ?",
                          (experiment_id,))
            assert row is not None
            current = _loads(row["params"]) or {}
            merged = {**current, **data}
            if merged != current or row["params_version"] == 0:  # a re-sent identical set changes nothing
                cur.execute("UPDATE experiments SET params = ?, params_version = params_version + 1, "
                            "params_created_at = COALESCE(params_created_at, ?), params_updated_at = ? WHERE id = ?",
                            (_dumps(merged), now, now, experiment_id))
            return self._params_row(cur, experiment_id)

    def get_params(self, experiment_id: int) -> Row:
        with self._tx(write=False) as cur:
            return self._params_row(cur, experiment_id)

    @staticmethod
    def _params_row(cur: _Cursor, experiment_id: int) -> Row:
        row = cur.one("SELECT params, params_version, params_created_at, params_updated_at FROM experiments "
                      "WHERE id = ?", (experiment_id,))
        assert row is not None
        return {"data": _loads(row["params"]) or {}, "version": row["params_version"],
                "createdAt": row["params_created_at"], "updatedAt": row["params_updated_at"]}

    # --- logs ----------------------------------------------------------------------------------
    def append_logs(self, experiment_id: int, entries: Sequence[tuple[int | None, str | None, str, str, Any]],
                    ) -> tuple[int, int, int]:
        """Insert lines; ``(seq or None, timestamp, level, message, metadata)``. Returns
        ``(created, startSequence, endSequence)``."""
        with self._tx() as cur:
            row = cur.one("SELECT log_count FROM experiments WHERE id = ?", (experiment_id,))
            assert row is not None
            count = int(row["log_count"])
            next_free = count
            rows, seqs = [], []
            for seq, ts, level, message, meta in entries:
                position = next_free if seq is None else seq
                if position > next_free:
                    raise ServerError("conflict", f"log sequenceNumber {position} leaves a gap (the server has "
                                                  f"{next_free} lines)", hint="resume from the server's count")
                seqs.append(position)
                next_free = max(next_free, position + 1)
                rows.append((experiment_id, position, ts, level, message, _dumps(meta)))
            cur.executemany("INSERT INTO logs (experiment_id, seq, timestamp, level, message, metadata) "
                            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)
            created = cur.rowcount
            cur.execute("UPDATE experiments SET log_count = ? WHERE id = ?", (next_free, experiment_id))
            return created, min(seqs), max(seqs)

    def query_logs(self, experiment_id: int, offset: int, limit: int, descending: bool = False,
                   levels: Sequence[str] = (), search: str | None = None, start_time: str | None = None,
                   end_time: str | None = None) -> tuple[list[Row], int]:
        where, args = ["experiment_id = ?"], [experiment_id]
        if levels:
            where.append(f"level IN ({', '.join('?' * len(levels))})")
            args.extend(levels)
        if search:
            where.append("message LIKE ?")
            args.append(f"%{search}%")
        if start_time:
            where.append("timestamp >= ?")
            args.append(start_time)
        if end_time:
            where.append("timestamp <= ?")
            args.append(end_time)
        clause = " AND ".join(where)
        with self._tx(write=False) as cur:
            total = cur.one(f"SELECT COUNT(*) AS n FROM logs WHERE {clause}", args)
            rows = cur.all(f"SELECT * FROM logs WHERE {clause} ORDER BY seq {'DESC' if descending else 'ASC'} "
                           "LIMIT ? OFFSET ?", [*args, limit, offset])
        for row in rows:
            row["metadata"] = _loads(row["metadata"])
        return rows, int((total or {}).get("n") or 0)

    # --- metrics -------------------------------------------------------------------------------
    def append_points(self, experiment_id: int, name: str, points: Sequence[Any], start_index: int | None,
                      description: str | None, tags: list[str] | None, metadata: dict[str, Any] | None,
                      encode: Callable[[Sequence[Any]], str] = json.dumps) -> tuple[Row, int, int]:
        """Append points (one chunk row); returns ``(metric row, startIndex, inserted)``.

        With ``start_index`` the points already stored (below the series' total) are
        dropped, so a retried or resumed batch never duplicates; a start beyond the
        total would leave a gap and is refused.
        """
        now = now_iso()
        with self._tx() as cur:
            metric = cur.one("SELECT * FROM metrics WHERE experiment_id = ? AND name = ?", (experiment_id, name))
            if metric is None:
                metric = {"id": new_id(), "experiment_id": experiment_id, "name": name, "description": description,
                          "tags": _dumps(tags or []), "metadata": _dumps(metadata), "total": 0,
                          "created_at": now, "updated_at": now, "first_data_at": now, "last_data_at": now}
                cur.execute("INSERT INTO metrics (id, experiment_id, name, description, tags, metadata, total, "
                            "created_at, updated_at, first_data_at, last_data_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                            "?, ?, ?)", tuple(metric.values()))
            total = int(metric["total"])
            start = total if start_index is None else start_index
            if start > total:
                raise ServerError("conflict", f"startIndex {start} leaves a gap (metric {name!r} has {total} points)",
                                  hint="resume from the server's count")
            fresh = points[total - start:]
            if fresh:
                cur.execute("INSERT INTO metric_chunks (metric_id, start_idx, end_idx, data, created_at) "
                            "VALUES (?, ?, ?, ?, ?)", (metric["id"], total, total + len(fresh) - 1, encode(fresh), now))
                cur.execute("UPDATE metrics SET total = ?, updated_at = ?, last_data_at = ? WHERE id = ?",
                            (total + len(fresh), now, now, metric["id"]))
                metric.update(total=total + len(fresh), updated_at=now, last_data_at=now)
            return metric, start, len(fresh)

    def get_metric(self, experiment_id: int, name: str) -> Row | None:
        with self._tx(write=False) as cur:
            return cur.one("SELECT * FROM metrics WHERE experiment_id = ? AND name = ?", (experiment_id, name))

    def list_metrics(self, experiment_id: int) -> list[Row]:
        with self._tx(write=False) as cur:
            return cur.all("SELECT * FROM metrics WHERE experiment_id = ? ORDER BY created_at, name", (experiment_id,))

    def read_points(self, metric_id: int, start: int, limit: int) -> list[tuple[int, Any, str]]:
        """``(index, point, createdAt)`` for indices ``start .. start+limit-1`` that exist."""
        stop = start + limit
        with self._tx(write=False) as cur:
            chunks = cur.all("SELECT start_idx, data, created_at FROM metric_chunks WHERE metric_id = ? AND "
                             "end_idx >= ? AND start_idx < ? ORDER BY start_idx", (metric_id, start, stop))
        out: list[tuple[int, Any, str]] = []
        for chunk in chunks:
            first = int(chunk["start_idx"])
            values = _loads_array(chunk["data"])
            lo, hi = max(start - first, 0), min(stop - first, len(values))
            out.extend((first + i, values[i], chunk["created_at"]) for i in range(lo, hi))
        return out

    # --- files ---------------------------------------------------------------------------------
    def add_file(self, experiment_id: int, fields: dict[str, Any]) -> tuple[Row, bool]:
        """Record a stored file. The same path, name and content again returns the existing
        record (``created`` False); other content under the same path and name replaces it."""
        now = now_iso()
        with self._tx() as cur:
            live = cur.one("SELECT * FROM files WHERE experiment_id = ? AND path = ? AND filename = ? AND "
                           "deleted_at IS NULL", (experiment_id, fields["path"], fields["filename"]))
            if live is not None and live["checksum"] == fields["checksum"]:
                return live, False
            if live is not None:
                cur.execute("UPDATE files SET deleted_at = ?, updated_at = ? WHERE id = ?", (now, now, live["id"]))
            row = {"id": new_id(), "experiment_id": experiment_id, "path": fields["path"],
                   "filename": fields["filename"], "description": fields.get("description"),
                   "tags": _dumps(fields.get("tags") or []), "content_type": fields["content_type"],
                   "size_bytes": fields["size_bytes"], "checksum": fields["checksum"],
                   "metadata": _dumps(fields.get("metadata")), "uploaded_at": now, "updated_at": now,
                   "deleted_at": None}
            cur.execute("INSERT INTO files (id, experiment_id, path, filename, description, tags, content_type, "
                        "size_bytes, checksum, metadata, uploaded_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, "
                        "?, ?, ?, ?, ?, ?, ?, ?)", tuple(row.values()))
            return row, True

    def list_files(self, experiment_id: int, include_deleted: bool = False) -> list[Row]:
        query = "SELECT * FROM files WHERE experiment_id = ?"
        if not include_deleted:
            query += " AND deleted_at IS NULL"
        with self._tx(write=False) as cur:
            return cur.all(query + " ORDER BY uploaded_at, id", (experiment_id,))

    def get_file(self, experiment_id: int, file_id: int) -> Row | None:
        with self._tx(write=False) as cur:
            return cur.one("SELECT * FROM files WHERE experiment_id = ? AND id = ?", (experiment_id, file_id))

    def update_file(self, experiment_id: int, file_id: int, changes: dict[str, Any]) -> Row | None:
        sets, args = ["updated_at = ?"], [now_iso()]
        for key in ("description", "tags", "metadata", "deleted_at"):
            if key in changes:
                sets.append(f"{key} = ?")
                args.append(_dumps(changes[key]) if key in ("tags", "metadata") else changes[key])
        with self._tx() as cur:
            cur.execute(f"UPDATE files SET {', '.join(sets)} WHERE experiment_id = ? AND id = ? AND deleted_at IS NULL",
                        (*args, experiment_id, file_id))
            return cur.one("SELECT * FROM files WHERE id = ?", (file_id,))

    def checksum_in_use(self, checksum: str) -> bool:
        with self._tx(write=False) as cur:
            return cur.one("SELECT id FROM files WHERE checksum = ? LIMIT 1", (checksum,)) is not None


class _Cursor:
    """A DB-API cursor speaking ``?`` placeholders and returning dict rows."""

    def __init__(self, cur: Any, dialect: _Dialect) -> None:
        self._cur = cur
        self._dialect = dialect

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._cur.execute(self._dialect.sql(sql), tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cur.executemany(self._dialect.sql(sql), rows)

    def _rows(self) -> list[Row]:
        names = [d[0] for d in self._cur.description]
        return [dict(zip(names, r, strict=True)) for r in self._cur.fetchall()]

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        self.execute(sql, args)
        rows = self._rows()
        return rows[0] if rows else None

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        self.execute(sql, args)
        return self._rows()


def open_sqlite(path: Path) -> SqlMetadataStore:
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqlMetadataStore(_SQLite(path))


def open_postgres(url: str) -> SqlMetadataStore:
    return SqlMetadataStore(_Postgres(url))
