"""The series API: a metric field bucketed for charts, its batch form, and the index of series.

``GET /experiments/{id}/metrics/{name}/series?y=FIELD&x=index&points=1000[&start=X0&end=X1][&since=C]``
answers at most ``points`` buckets; what a bucket holds, how ``start``/``end``/``since`` select
points and how x is read are documented in :mod:`ml_dash.server.storage.summaries` (the answer
comes from summaries kept at ingest plus the chunks at the window's edges, so its cost does not
grow with the series). ``POST /series`` serves several series in one request, each checked on
its own (a failing item answers ``{"error": {...}}`` in its slot). ``GET /experiments/{id}/series``
lists every metric's numeric fields with count/min/max/last, and the x choices.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ml_dash.api.errors import ServerError
from ml_dash.api.models import SeriesBatchIn, SeriesBatchOut, SeriesIndexOut, SeriesOut
from ml_dash.server.routes.deps import principal, state
from ml_dash.server.state import Principal, ServerState
from ml_dash.server.storage.summaries import SeriesQuery

router = APIRouter()
X_FIRST = ("step", "epoch", "timestamp", "index")


def _json(doc: Any) -> Response:
    """orjson (fast; NaN/±Inf become null); the stdlib for what orjson refuses (integers over 64 bits)."""
    try:
        import orjson

        body = orjson.dumps(doc)
    except (ImportError, TypeError):
        body = json.dumps(_clean(doc)).encode()
    return Response(body, media_type="application/json")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _points(st: ServerState, points: int) -> int:
    cap = st.cfg.dashboard.max_series_points
    if points > cap:
        raise ServerError("invalid", f"points={points} is more than this server's limit of {cap}",
                          hint=f"ask for at most {cap} buckets (the server's dashboard.max_series_points), "
                               "or zoom in with start/end for finer data")
    return points


def _series(st: ServerState, who: Principal, experiment_id: str, name: str, query: SeriesQuery) -> dict[str, Any]:
    exp = st.experiment(who, experiment_id)
    metric = st.store.get_metric(exp["id"], name)
    if metric is None:
        raise ServerError("not_found", f"metric {name!r} not found in experiment {experiment_id}",
                          hint=f"GET /experiments/{experiment_id}/series lists the experiment's metrics and fields")
    return st.store.series(int(metric["id"]), query)


@router.get("/experiments/{experiment_id}/metrics/{name:path}/series",
            responses={200: {"model": SeriesOut, "description": "the bucketed series"}})
def metric_series(experiment_id: str, name: str,
                  y: str = Query(..., description="the field drawn, e.g. loss"),
                  x: str = Query("index", description="step | epoch | timestamp | index | any numeric field"),
                  points: int = Query(1000, ge=1, description="most buckets (serve.dashboard.max_series_points caps)"),
                  start: float | None = Query(None, description="only points with x >= start"),
                  end: float | None = Query(None, description="only points with x <= end"),
                  since: int | None = Query(None, ge=0, description="only points with index >= since (a cursor)"),
                  st: ServerState = Depends(state), who: Principal = Depends(principal)) -> Response:
    query = SeriesQuery(y=y, x=x, points=_points(st, points), start=start, end=end, since=since)
    return _json(_series(st, who, experiment_id, name, query))


@router.post("/series", response_model=SeriesBatchOut)
async def series_batch(body: SeriesBatchIn, st: ServerState = Depends(state),
                       who: Principal = Depends(principal)) -> Response:
    points = _points(st, body.points)

    def one(item: Any) -> dict[str, Any]:
        try:
            query = SeriesQuery(y=item.y, x=item.x, points=points, start=item.start, end=item.end, since=item.since)
            return _series(st, who, item.experimentId, item.metric, query)
        except ServerError as exc:
            return {"error": {"code": exc.code, "message": exc.message, "hint": exc.hint}}

    def run() -> list[dict[str, Any]]:
        return [one(item) for item in body.series]

    return _json({"series": await run_in_threadpool(run)})


@router.get("/experiments/{experiment_id}/series", response_model=SeriesIndexOut)
def series_index(experiment_id: str, st: ServerState = Depends(state),
                 who: Principal = Depends(principal)) -> Response:
    exp = st.experiment(who, experiment_id)
    return _json({"metrics": metrics_index(st, [int(exp["id"])])[int(exp["id"])]})


def metrics_index(st: ServerState, experiment_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Every metric of the experiments (already access-checked) with its numeric fields'
    count/min/max/last and the x-axes it can be drawn against: one summaries query for all."""
    metrics = {e: st.store.list_metrics(e) for e in experiment_ids}
    found = st.store.series_fields([int(m["id"]) for ms in metrics.values() for m in ms])
    return {e: [_metric_entry(m, found.get(int(m["id"]), (0, {}))[1]) for m in ms] for e, ms in metrics.items()}


def _metric_entry(m: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    names = sorted(fields)
    x_fields = [f for f in X_FIRST if f in fields or f in ("timestamp", "index")]
    x_fields += [f for f in names if f not in X_FIRST]
    return {"name": m["name"], "total": int(m["total"]),
            "fields": {f: {"count": fields[f][0] + fields[f][4], "min": fields[f][2], "max": fields[f][3],
                           "last": fields[f][5]} for f in names},
            "xFields": x_fields}
