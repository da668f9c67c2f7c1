"""What the dashboard browses: namespaces → projects → folders → the experiment table, an
experiment's document (editable description and tags), and its logs with filters and paging.

Namespace-scoped routes take ``?namespace=SLUG``: required for the server owner, and for an API
key (or its session) only its own namespace, anything else is 403. Experiments are reached
through ``ServerState.experiment``, the same isolation as the REST API.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ml_dash.api.errors import ServerError
from ml_dash.records.logs import LOG_LEVELS
from ml_dash.server import render
from ml_dash.server.fastjson import loads
from ml_dash.server.routes.deps import principal, state
from ml_dash.server.state import Principal, ServerState
from ml_dash.server.storage import browse as queries

router = APIRouter(prefix="/ui", include_in_schema=False)

Row = dict[str, Any]
README_BYTES = 1024 * 1024
MAX_COLUMNS = 50  # metrics= and params= keys per table request
MAX_PAGE = 500
FIELDS_SAMPLE = 100  # points at the end of a metric's last chunk whose fields name the metric's columns


# --- small helpers ------------------------------------------------------------------------------------------
def json_safe(value: Any) -> Any:
    """NaN and ±Infinity (which JSON cannot carry) as the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def duration_seconds(row: Row, now: datetime | None = None) -> float | None:
    """Ended (or now, while RUNNING) minus started; None when either end is unknown."""
    started = _time(row["started_at"])
    ended = _time(row["ended_at"])
    if ended is None and row["status"] == "RUNNING":
        ended = now or datetime.now(timezone.utc)
    if started is None or ended is None:
        return None
    return round((ended - started).total_seconds(), 3)


def _list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _namespace(st: ServerState, who: Principal, namespace: str | None) -> tuple[int, str]:
    if not who.owner:
        if namespace is not None and namespace != who.slug:
            raise ServerError("forbidden", f"namespace {namespace!r} is not accessible with this login "
                                           f"(yours: {who.slug!r})",
                              hint="log in with an API key of that namespace")
        return who.namespace_id, who.slug
    if not namespace:
        raise ServerError("invalid", "namespace: required for the server owner's session",
                          hint="add ?namespace=SLUG (GET /ui/namespaces lists them)")
    row = queries.namespace_by_slug(st.store, namespace)
    if row is None:
        raise ServerError("not_found", f"namespace {namespace!r} does not exist",
                          hint="GET /ui/namespaces lists the namespaces")
    return int(row["id"]), str(row["slug"])


def _project(st: ServerState, namespace_id: int, slug: str, name: str) -> Row:
    row = queries.project_by_name(st.store, namespace_id, name)
    if row is None:
        raise ServerError("not_found", f"project {name!r} does not exist in namespace {slug!r}",
                          hint=f"GET /ui/projects?namespace={slug} lists its projects")
    return row


# --- namespaces, projects, folders ------------------------------------------------------------------------------
@router.get("/namespaces")
def list_namespaces(st: ServerState = Depends(state), who: Principal = Depends(principal)) -> Row:
    only = None if who.owner else who.namespace_id
    return {"namespaces": queries.namespaces(st.store, only)}


@router.get("/projects")
def list_projects(namespace: str | None = None, st: ServerState = Depends(state),
                  who: Principal = Depends(principal)) -> Row:
    ns_id, _ = _namespace(st, who, namespace)
    return {"projects": queries.projects(st.store, ns_id)}


@router.get("/projects/{project}/folders")
def list_folders(project: str, namespace: str | None = None, st: ServerState = Depends(state),
                 who: Principal = Depends(principal)) -> Row:
    ns_id, slug = _namespace(st, who, namespace)
    return {"folders": queries.folders(st.store, int(_project(st, ns_id, slug, project)["id"]))}


# --- the experiment table -----------------------------------------------------------------------------------
@router.get("/projects/{project}/experiments")
def list_experiments(project: str, namespace: str | None = None, folder: str | None = None, recursive: bool = False,
                     status: str | None = None, tag: str | None = None, q: str | None = Query(None, max_length=200),
                     sort: str = "createdAt", order: str = "desc", offset: int = Query(0, ge=0),
                     limit: int = Query(50, ge=1, le=MAX_PAGE), metrics: str | None = None,
                     params: str | None = None, st: ServerState = Depends(state),
                     who: Principal = Depends(principal)) -> Row:
    ns_id, slug = _namespace(st, who, namespace)
    if sort not in queries.SORTS:
        raise ServerError("invalid", f"sort: must be one of {', '.join(queries.SORTS)}",
                          hint="e.g. sort=createdAt&order=desc")
    if order not in ("asc", "desc"):
        raise ServerError("invalid", "order: must be asc or desc", hint="e.g. order=desc")
    metric_keys, param_keys = _list(metrics), _list(params)
    if len(metric_keys) > MAX_COLUMNS or len(param_keys) > MAX_COLUMNS:
        raise ServerError("invalid", f"at most {MAX_COLUMNS} metrics= and {MAX_COLUMNS} params= columns",
                          hint="choose fewer columns")
    proj = _project(st, ns_id, slug, project)
    now = datetime.now(timezone.utc)
    query = queries.ExperimentQuery(folder=folder, recursive=recursive, statuses=[s.upper() for s in _list(status)],
                                    tags=_list(tag), text=q or None, sort=sort, descending=order == "desc",
                                    offset=offset, limit=limit)
    total, rows = queries.experiment_page(st.store, int(proj["id"]), query)
    latest, choices = _latest_metrics(st, [int(r["id"]) for r in rows], metric_keys)
    items, seen_params = [], set()
    for row in rows:
        data = loads(row["params"]) if row["params"] else {}
        flat = dict(_flatten(data)) if isinstance(data, dict) else {}
        seen_params.update(flat)
        items.append({
            "id": str(row["id"]), "name": row["name"], "folder": (row["folder"] or "").strip("/"),
            "status": row["status"], "tags": loads(row["tags"]) or [], "description": row["description"],
            "createdAt": row["created_at"], "startedAt": row["started_at"], "endedAt": row["ended_at"],
            "durationSeconds": duration_seconds(row, now),
            "metrics": json_safe(latest.get(int(row["id"]), {})),
            "params": json_safe({k: _param(data, flat, k) for k in param_keys if _param(data, flat, k) is not None}),
        })
    return {"total": total, "offset": offset, "limit": limit, "items": items, "metricKeys": choices,
            "paramKeys": sorted(seen_params)}


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested objects as dotted keys (lists stay values), as the dashboard's params tab shows them."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def _param(data: Any, flat: dict[str, Any], key: str) -> Any:
    if key in flat:
        return flat[key]
    return data.get(key) if isinstance(data, dict) else None  # a whole group, e.g. params=model


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _latest_metrics(st: ServerState, experiment_ids: list[int], keys: list[str],
                    ) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """``({experiment id: {key: latest value}}, the NAME.FIELD choices of these experiments)``.

    Reads one chunk per metric asked for (the last, newest points) and one per metric name for
    the choices: the cost is the page's, never the series' length."""
    metrics = queries.metrics_of(st.store, experiment_ids)
    by_name: dict[str, list[Row]] = {}
    for m in metrics:
        by_name.setdefault(m["name"], []).append(m)
    wanted: dict[str, tuple[str, str]] = {}
    for key in keys:  # NAME.FIELD, where NAME may hold dots itself: the longest metric name wins
        names = [n for n in by_name if key.startswith(n + ".") and len(key) > len(n) + 1]
        if names:
            name = max(names, key=len)
            wanted[key] = (name, key[len(name) + 1:])
    ids = {int(by_name[n][0]["id"]) for n in by_name}
    ids.update(int(m["id"]) for name, _ in wanted.values() for m in by_name[name])
    parsed: dict[int, list[Any]] = {}
    for metric_id, text in queries.last_chunks(st.store, sorted(ids)).items():
        value = loads(text)
        parsed[metric_id] = value if isinstance(value, list) else []
    choices: set[str] = set()
    for name, rows in by_name.items():
        for point in parsed.get(int(rows[0]["id"]), [])[-FIELDS_SAMPLE:]:
            if isinstance(point, dict):
                choices.update(f"{name}.{f}" for f, v in point.items() if _numeric(v))
    latest: dict[int, dict[str, Any]] = {}
    for key, (name, field_name) in wanted.items():
        for m in by_name[name]:
            for point in reversed(parsed.get(int(m["id"]), [])):
                if isinstance(point, dict) and field_name in point:
                    latest.setdefault(int(m["experiment_id"]), {})[key] = point[field_name]
                    break
    return latest, sorted(choices)


# --- one experiment -------------------------------------------------------------------------------------------
def _readme(st: ServerState, experiment_id: int) -> str | None:
    row = queries.readme_file(st.store, experiment_id)
    if row is None or not st.blobs.exists(row["checksum"]):
        return None
    data = bytearray()
    stream = st.blobs.open(row["checksum"])
    try:
        for chunk in stream:
            data += chunk
            if len(data) >= README_BYTES:
                break
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return bytes(data[:README_BYTES]).decode("utf-8", "replace")


def _document(st: ServerState, who: Principal, exp: Row) -> Row:
    if "namespace_slug" in exp:
        slug = exp["namespace_slug"]
    else:
        slug = who.slug
    experiment = json_safe(render.experiment(exp))
    experiment["durationSeconds"] = duration_seconds(exp)
    experiment["folder"] = (exp["folder"] or "").strip("/")
    return {"experiment": experiment, "project": exp["project_slug"], "namespace": slug,
            "readme": _readme(st, int(exp["id"])), "counts": queries.counts(st.store, int(exp["id"]))}


@router.get("/experiments/{experiment_id}")
def get_experiment(experiment_id: str, st: ServerState = Depends(state), who: Principal = Depends(principal)) -> Row:
    return _document(st, who, st.experiment(who, experiment_id))


Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ExperimentEdit(BaseModel):
    """What the dashboard edits: the description (null clears it) and the tags (the whole list)."""

    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(None, max_length=10_000)
    tags: list[Tag] | None = Field(None, max_length=100)


@router.patch("/experiments/{experiment_id}")
def edit_experiment(experiment_id: str, body: ExperimentEdit, st: ServerState = Depends(state),
                    who: Principal = Depends(principal)) -> Row:
    exp = st.experiment(who, experiment_id)
    if "tags" in body.model_fields_set and body.tags is None:
        raise ServerError("invalid", "tags: must be a list of strings (an empty list removes every tag)",
                          hint='send e.g. {"tags": ["baseline", "lr-sweep"]}')
    tags = list(dict.fromkeys(body.tags)) if body.tags is not None else None  # duplicates once, order kept
    queries.update_experiment(st.store, int(exp["id"]), body.description, tags,
                              set_description="description" in body.model_fields_set)
    return _document(st, who, st.experiment(who, experiment_id))


# --- logs -----------------------------------------------------------------------------------------------------
def _timestamp(value: str | None, what: str) -> str | None:
    """An ISO time as the clients write log timestamps (UTC, microseconds, ``Z``) so that text
    comparison in SQL orders them."""
    if not value:
        return None
    moment = _time(value)
    if moment is None:
        raise ServerError("invalid", f"{what}: {value!r} is not an ISO 8601 time",
                          hint="e.g. 2026-11-30T05:12:03Z")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@router.get("/experiments/{experiment_id}/logs")
def experiment_logs(experiment_id: str, level: str | None = None, q: str | None = Query(None, max_length=200),
                    start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
                    before: int | None = Query(None, ge=0), after: int | None = Query(None, ge=-1),
                    limit: int = Query(100, ge=1, le=1000), st: ServerState = Depends(state),
                    who: Principal = Depends(principal)) -> Row:
    exp = st.experiment(who, experiment_id)
    levels = [x.lower() for x in _list(level)]
    bad = [x for x in levels if x not in LOG_LEVELS]
    if bad:
        raise ServerError("invalid", f"level: {bad[0]!r} is not one of {', '.join(LOG_LEVELS)}",
                          hint="e.g. level=warn,error")
    query = queries.LogQuery(levels=levels, text=q or None, start=_timestamp(start, "from"),
                             end=_timestamp(end, "to"), before=before, after=after, limit=limit)
    rows, total, following = queries.logs_page(st.store, int(exp["id"]), query)
    items = [{"seq": int(r["seq"]), "timestamp": r["timestamp"], "level": r["level"], "message": r["message"],
              "metadata": json_safe(loads(r["metadata"])) if r["metadata"] else None} for r in rows]
    return {"items": items, "total": total, "next": following}
