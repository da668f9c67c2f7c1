"""The dashboard's queries: sessions, namespaces, projects, folders, the experiment table, logs.

Read-mostly SQL beside :mod:`sql` (which owns ingest), through the same store: its ``_tx()``
cursor speaks ``?`` placeholders on both dialects and translates database errors. Everything
that depends on the dialect (JSON arrays, dates, trimming) is in the small table below.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ml_dash.server.ids import now_iso
from ml_dash.server.storage import tiers
from ml_dash.server.storage.sql import SqlMetadataStore

__all__ = ["ExperimentQuery", "LogQuery", "create_session", "experiment_by_id", "experiment_page", "folders",
           "last_chunks", "like_pattern", "logs_page", "metrics_of", "namespace_by_slug", "namespaces",
           "project_by_name", "projects", "readme_file", "revoke_session", "session_row", "update_experiment"]

Row = dict[str, Any]

SORTS = ("name", "status", "createdAt", "startedAt", "endedAt", "duration")
_NULLABLE = ("startedAt", "endedAt")
_SORT_COLUMNS = {"name": "e.name", "status": "e.status", "createdAt": "e.created_at", "startedAt": "e.started_at",
                 "endedAt": "e.ended_at"}


def _sqlite(store: SqlMetadataStore) -> bool:
    return store.dialect.name == "sqlite"


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE ? ESCAPE '\\'`` with the wildcards of ``text`` taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _folder_expr(store: SqlMetadataStore) -> str:
    # Clients send "a/b", "/a/b" or "/a/b/": compare folders without their outer slashes.
    return ("TRIM(COALESCE(e.folder, ''), '/')" if _sqlite(store) else "BTRIM(COALESCE(e.folder, ''), '/')")


def _tags_any(store: SqlMetadataStore, condition: str) -> str:
    """``EXISTS`` a tag (an element of the JSON array, ``{tag}`` in ``condition``) for which it holds."""
    if _sqlite(store):
        return f"EXISTS (SELECT 1 FROM json_each(e.tags) AS j WHERE {condition.format(tag='j.value')})"
    return (f"EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST(e.tags AS jsonb)) AS j(v) "
            f"WHERE {condition.format(tag='j.v')})")


def _duration_expr(store: SqlMetadataStore) -> str:
    """Seconds from start to end (or to the bound ``now`` while RUNNING); NULL when unknown."""
    end = "COALESCE(e.ended_at, CASE WHEN e.status = 'RUNNING' THEN ? END)"
    if _sqlite(store):
        return f"((julianday({end}) - julianday(e.started_at)) * 86400.0)"
    return f"EXTRACT(EPOCH FROM (CAST({end} AS timestamptz) - CAST(e.started_at AS timestamptz)))"


# --- sessions ----------------------------------------------------------------------------------------------
def create_session(store: SqlMetadataStore, session_id: str, namespace_id: int | None, csrf: str,
                   expires_at: str) -> None:
    with store._tx() as cur:
        cur.execute("INSERT INTO ui_sessions (id, namespace_id, csrf, created_at, expires_at, revoked_at) "
                    "VALUES (?, ?, ?, ?, ?, NULL)", (session_id, namespace_id, csrf, now_iso(), expires_at))


def session_row(store: SqlMetadataStore, session_id: str) -> Row | None:
    """The session with its namespace's slug (NULL for the owner), revoked or not."""
    with store._tx(write=False) as cur:
        return cur.one("SELECT s.*, n.slug FROM ui_sessions s LEFT JOIN namespaces n ON n.id = s.namespace_id "
                       "WHERE s.id = ?", (session_id,))


def revoke_session(store: SqlMetadataStore, session_id: str) -> None:
    with store._tx() as cur:
        cur.execute("UPDATE ui_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    (now_iso(), session_id))


# --- namespaces and projects ---------------------------------------------------------------------------------
def namespace_by_slug(store: SqlMetadataStore, slug: str) -> Row | None:
    with store._tx(write=False) as cur:
        return cur.one("SELECT id, slug FROM namespaces WHERE slug = ?", (slug,))


def namespaces(store: SqlMetadataStore, only: int | None = None) -> list[Row]:
    """Every namespace (or only the one with id ``only``) with its project and experiment counts."""
    query = ("SELECT n.slug, COUNT(DISTINCT p.id) AS projects, COUNT(e.id) AS experiments FROM namespaces n "
             "LEFT JOIN projects p ON p.namespace_id = n.id LEFT JOIN experiments e ON e.project_id = p.id")
    args: list[Any] = []
    if only is not None:
        query += " WHERE n.id = ?"
        args.append(only)
    with store._tx(write=False) as cur:
        rows = cur.all(query + " GROUP BY n.id, n.slug ORDER BY n.slug", args)
    return [{"slug": r["slug"], "projects": int(r["projects"]), "experiments": int(r["experiments"])} for r in rows]


def projects(store: SqlMetadataStore, namespace_id: int) -> list[Row]:
    """The namespace's projects, most recently active first."""
    with store._tx(write=False) as cur:
        rows = cur.all(
            "SELECT p.name, COUNT(e.id) AS experiments, "
            "COALESCE(SUM(CASE WHEN e.status = 'RUNNING' THEN 1 ELSE 0 END), 0) AS running, "
            "MAX(e.updated_at) AS last FROM projects p LEFT JOIN experiments e ON e.project_id = p.id "
            "WHERE p.namespace_id = ? GROUP BY p.id, p.name", (namespace_id,))
    rows.sort(key=lambda r: r["name"])
    rows.sort(key=lambda r: r["last"] or "", reverse=True)
    return [{"name": r["name"], "experiments": int(r["experiments"]), "running": int(r["running"]),
             "lastActivity": r["last"]} for r in rows]


def project_by_name(store: SqlMetadataStore, namespace_id: int, name: str) -> Row | None:
    with store._tx(write=False) as cur:
        return cur.one("SELECT * FROM projects WHERE namespace_id = ? AND slug = ?", (namespace_id, name))


def folders(store: SqlMetadataStore, project_id: int) -> list[Row]:
    """Each folder that holds experiments directly, with how many (``""``: the project's root)."""
    with store._tx(write=False) as cur:
        rows = cur.all(f"SELECT {_folder_expr(store)} AS path, COUNT(*) AS n FROM experiments e "
                       "WHERE e.project_id = ? GROUP BY 1 ORDER BY 1", (project_id,))
    return [{"path": r["path"], "experiments": int(r["n"])} for r in rows]


# --- experiments --------------------------------------------------------------------------------------------
def experiment_by_id(store: SqlMetadataStore, experiment_id: int) -> Row | None:
    """Any namespace's experiment (the owner's reads), shaped like ``SqlMetadataStore.get_experiment``."""
    with store._tx(write=False) as cur:
        return cur.one("SELECT e.*, p.slug AS project_slug, p.namespace_id, n.slug AS namespace_slug "
                       "FROM experiments e JOIN projects p ON p.id = e.project_id "
                       "JOIN namespaces n ON n.id = p.namespace_id WHERE e.id = ?", (experiment_id,))


@dataclass
class ExperimentQuery:
    """One page of a project's experiment table: filters, sort (one of :data:`SORTS`) and paging."""

    folder: str | None = None
    recursive: bool = False
    statuses: Sequence[str] = ()
    tags: Sequence[str] = ()  # any of them
    text: str | None = None  # in name, description or a tag, case-insensitive
    sort: str = "createdAt"
    descending: bool = True
    offset: int = 0
    limit: int = 50
    now: str = field(default_factory=now_iso)


def experiment_page(store: SqlMetadataStore, project_id: int, q: ExperimentQuery) -> tuple[int, list[Row]]:
    """``(total matching, the page's rows)``: filtered, sorted and paged in SQL (the
    ``(project_id, name)`` index narrows to the project; sorting its rows is cheap)."""
    where, args = ["e.project_id = ?"], [project_id]
    if q.folder is not None:
        folder = q.folder.strip("/")
        expr = _folder_expr(store)
        if q.recursive and folder:
            where.append(f"({expr} = ? OR {expr} LIKE ? ESCAPE '\\')")
            args += [folder, like_pattern(folder + "/")[1:]]
        elif not q.recursive:
            where.append(f"{expr} = ?")
            args.append(folder)
    if q.statuses:
        where.append(f"e.status IN ({', '.join('?' * len(q.statuses))})")
        args += list(q.statuses)
    if q.tags:
        # A cheap LIKE on the JSON text first (most rows fail it), then the exact test on the array.
        quick = " OR ".join(["e.tags LIKE ? ESCAPE '\\'"] * len(q.tags))
        where.append(f"({quick}) AND " + _tags_any(store, "{tag} IN (" + ", ".join("?" * len(q.tags)) + ")"))
        args += [like_pattern(json.dumps(t)) for t in q.tags] + list(q.tags)
    if q.text:
        # Tags are searched in their JSON text, with the text JSON-escaped like them: it cannot
        # match across two tags (it holds no bare quote), and it costs no JSON parse per row.
        like = "LIKE ? ESCAPE '\\'"
        where.append(f"(LOWER(e.name) {like} OR LOWER(COALESCE(e.description, '')) {like} OR LOWER(e.tags) {like})")
        args += [like_pattern(q.text.lower())] * 2 + [like_pattern(json.dumps(q.text.lower())[1:-1])]
    clause = " AND ".join(where)
    direction = "DESC" if q.descending else "ASC"
    order_args: list[Any] = []
    if q.sort == "duration":
        key = _duration_expr(store)
        order = f"({key}) IS NULL, {key} {direction}"
        order_args = [q.now, q.now]
    elif q.sort in _NULLABLE:
        column = _SORT_COLUMNS[q.sort]
        order = f"{column} IS NULL, {column} {direction}"  # unknown values last, either way
    else:  # NOT NULL columns: a plain ORDER BY, which an index on (project_id, column) can serve
        order = f"{_SORT_COLUMNS[q.sort]} {direction}"
    with store._tx(write=False) as cur:
        total = cur.one(f"SELECT COUNT(*) AS n FROM experiments e WHERE {clause}", args)
        # Sort and skip ids only, then read the page's rows: whole rows (params, metadata) are
        # never carried through the sort.
        ids = [r["id"] for r in cur.all(f"SELECT e.id FROM experiments e WHERE {clause} ORDER BY {order}, "
                                        f"e.id {direction} LIMIT ? OFFSET ?",
                                        [*args, *order_args, q.limit, q.offset])]
        rows = cur.all(f"SELECT * FROM experiments WHERE id IN ({', '.join('?' * len(ids))})", ids) if ids else []
    position = {i: n for n, i in enumerate(ids)}
    rows.sort(key=lambda r: position[r["id"]])
    return int((total or {}).get("n") or 0), rows


def metrics_of(store: SqlMetadataStore, experiment_ids: Sequence[int]) -> list[Row]:
    if not experiment_ids:
        return []
    with store._tx(write=False) as cur:
        return cur.all(f"SELECT id, experiment_id, name FROM metrics WHERE experiment_id IN "
                       f"({', '.join('?' * len(experiment_ids))}) ORDER BY experiment_id, name", list(experiment_ids))


def last_chunks(store: SqlMetadataStore, metric_ids: Sequence[int]) -> dict[int, str]:
    """``{metric id: data of its last chunk}`` (the JSON array text), one indexed lookup each."""
    out: dict[int, str] = {}
    with store._tx(write=False) as cur:
        for metric_id in metric_ids:
            rows = cur.chunks("SELECT data, segment FROM metric_chunks WHERE metric_id = ? ORDER BY start_idx DESC "
                              "LIMIT 1", (metric_id,))
            if rows:  # (a sealed last chunk: the last row it holds)
                out[metric_id] = rows[-1]["data"]
    return out


def readme_file(store: SqlMetadataStore, experiment_id: int) -> Row | None:
    with store._tx(write=False) as cur:
        return cur.one("SELECT * FROM files WHERE experiment_id = ? AND filename = 'README.md' AND deleted_at IS NULL "
                       "ORDER BY uploaded_at DESC, id DESC LIMIT 1", (experiment_id,))


def counts(store: SqlMetadataStore, experiment_id: int) -> dict[str, int]:
    with store._tx(write=False) as cur:
        m = cur.one("SELECT COUNT(*) AS n FROM metrics WHERE experiment_id = ?", (experiment_id,))
        f = cur.one("SELECT COUNT(*) AS n FROM files WHERE experiment_id = ? AND deleted_at IS NULL", (experiment_id,))
        e = cur.one("SELECT log_count FROM experiments WHERE id = ?", (experiment_id,))
    return {"logs": int((e or {}).get("log_count") or 0), "metrics": int((m or {}).get("n") or 0),
            "files": int((f or {}).get("n") or 0)}


def update_experiment(store: SqlMetadataStore, experiment_id: int, description: str | None,
                      tags: list[str] | None, set_description: bool) -> None:
    sets, args = ["updated_at = ?"], [now_iso()]
    if set_description:
        sets.append("description = ?")
        args.append(description)
    if tags is not None:
        sets.append("tags = ?")
        args.append(json.dumps(tags))
    with store._tx() as cur:
        cur.execute(f"UPDATE experiments SET {', '.join(sets)} WHERE id = ?", (*args, experiment_id))


# --- logs ---------------------------------------------------------------------------------------------------
@dataclass
class LogQuery:
    levels: Sequence[str] = ()
    text: str | None = None
    start: str | None = None  # timestamps, inclusive
    end: str | None = None
    before: int | None = None  # seq: newest first, older than this
    after: int | None = None  # seq: oldest first, newer than this (polling)
    limit: int = 100


def logs_page(store: SqlMetadataStore, experiment_id: int, q: LogQuery) -> tuple[list[Row], int, int | None]:
    """``(lines, total matching the filters, next cursor or None)``. Newest first (``before`` pages
    back); with ``after`` oldest first, and ``next`` is the ``after`` of the following page."""
    where, args = ["experiment_id = ?"], [experiment_id]
    if q.levels:
        where.append(f"level IN ({', '.join('?' * len(q.levels))})")
        args += list(q.levels)
    if q.text:
        where.append("LOWER(message) LIKE ? ESCAPE '\\'")
        args.append(like_pattern(q.text.lower()))
    if q.start:
        where.append("timestamp >= ?")
        args.append(q.start)
    if q.end:
        where.append("timestamp <= ?")
        args.append(q.end)
    clause = " AND ".join(where)
    page_where, page_args = list(where), list(args)
    if q.after is not None:
        page_where.append("seq > ?")
        page_args.append(q.after)
    if q.before is not None:
        page_where.append("seq < ?")
        page_args.append(q.before)
    direction = "ASC" if q.after is not None and q.before is None else "DESC"
    with store._tx(write=False) as cur:
        store._snapshot(cur)
        total = int((cur.one(f"SELECT COUNT(*) AS n FROM logs WHERE {clause}", args) or {}).get("n") or 0)
        rows = cur.all(f"SELECT seq, timestamp, level, message, metadata FROM logs WHERE {' AND '.join(page_where)} "
                       f"ORDER BY seq {direction} LIMIT ?", [*page_args, q.limit + 1])
        segs = store._log_segments(cur, experiment_id)
    if segs:  # archived lines (storage/tiers.py): older than every line in the database
        rows, total = _with_archived(store, segs, q, rows, total, direction == "DESC")
    more = len(rows) > q.limit
    rows = rows[:q.limit]
    return rows, total, (int(rows[-1]["seq"]) if more and rows else None)


def _with_archived(store: SqlMetadataStore, segs: list[Row], q: LogQuery, rows: list[Row], total: int,
                   newest_first: bool) -> tuple[list[Row], int]:
    """The page and total of ``logs_page`` over both tiers: newest first, the database's lines come
    first and archived ones fill the page; oldest first (polling ``after``), the other way round."""
    sqlite = _sqlite(store)
    flt = tiers.LineFilter(q.levels, tiers.like_matcher(like_pattern(q.text.lower()), escape=True, ascii_case=sqlite,
                                                        lower=True) if q.text else None, q.start, q.end)
    segments = store._segments_or_fail()
    matching = sum(int(g["end_seq"]) - int(g["start_seq"]) + 1 for g in segs) if flt.none else \
        sum(1 for _ in tiers.archived_lines(segments, segs, flt))
    want = q.limit + 1
    if newest_first:
        older = tiers.archived_lines(segments, segs, flt, descending=True, before=q.before)
        rows = rows + list(itertools.islice(older, max(0, want - len(rows))))
    else:
        archived = list(itertools.islice(tiers.archived_lines(segments, segs, flt, after=q.after), want))
        rows = (archived + rows)[:want]
    return [{k: r[k] for k in ("seq", "timestamp", "level", "message", "metadata")} for r in rows], total + matching
