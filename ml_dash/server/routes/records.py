"""Logs, parameters and metrics of one experiment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ml_dash.api.errors import ServerError
from ml_dash.api.models import LogsAppend, LogsAppendOut, MetricAppend, MetricAppendBatch, ParametersIn
from ml_dash.records.logs import LOG_LEVELS
from ml_dash.server import render
from ml_dash.server.fastjson import dumps, dumps_array, dumps_array_finite, dumps_each, loads_checked
from ml_dash.server.routes.deps import principal, state
from ml_dash.server.state import Principal, ServerState
from ml_dash.server.storage.sql import Appended

router = APIRouter()
CHUNK_SIZE = 10000  # points per chunk of the 0.5.8 download protocol
BATCH_HINT = 'send {"dataPoints": [{"value": 0.5, "step": 1}, ...]} as JSON'


# --- logs ------------------------------------------------------------------------------------------
@router.post("/experiments/{experiment_id}/logs", status_code=201, response_model=LogsAppendOut)
def append_logs(experiment_id: str, body: LogsAppend, st: ServerState = Depends(state),
                who: Principal = Depends(principal)) -> LogsAppendOut:
    exp = st.experiment(who, experiment_id)
    entries = []
    for i, e in enumerate(body.logs):
        level = e.level.lower()
        if level not in LOG_LEVELS:
            raise ServerError("invalid", f"logs.{i}.level: must be one of {', '.join(LOG_LEVELS)}",
                              hint="log with one of these levels, e.g. 'info' or 'error'")
        entries.append((e.writerSeq if body.writerId else e.sequenceNumber, e.timestamp, level, e.message,
                        e.metadata))
    done = st.store.append_logs(exp["id"], entries, writer=body.writerId)
    return LogsAppendOut(created=done.created, startSequence=done.start, endSequence=done.end,
                         experimentId=str(exp["id"]), duplicates=done.duplicates)


@router.get("/experiments/{experiment_id}/logs")
def query_logs(experiment_id: str, limit: int = 1000, offset: int = 0, order: str = "asc",
               level: str | None = None, search: str | None = None, startTime: str | None = None,
               endTime: str | None = None, st: ServerState = Depends(state),
               who: Principal = Depends(principal)) -> dict[str, Any]:
    exp = st.experiment(who, experiment_id)
    limit = max(1, min(limit, 10000))
    levels = [x.strip().lower() for x in level.split(",")] if level else []
    rows, total = st.store.query_logs(exp["id"], offset, limit, order.lower() == "desc", levels, search,
                                      startTime, endTime)
    return {"logs": [render.log(r) for r in rows], "total": total, "offset": offset, "limit": limit,
            "hasMore": offset + len(rows) < total}


# --- parameters ------------------------------------------------------------------------------------
def _params_json(exp: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(exp["id"]), "experimentId": str(exp["id"]), **row}


@router.post("/experiments/{experiment_id}/parameters")
def merge_parameters(experiment_id: str, body: ParametersIn, st: ServerState = Depends(state),
                     who: Principal = Depends(principal)) -> dict[str, Any]:
    exp = st.experiment(who, experiment_id)
    return _params_json(exp, st.store.merge_params(exp["id"], body.data))


@router.get("/experiments/{experiment_id}/parameters")
def get_parameters(experiment_id: str, st: ServerState = Depends(state),
                   who: Principal = Depends(principal)) -> dict[str, Any]:
    exp = st.experiment(who, experiment_id)
    return _params_json(exp, st.store.get_params(exp["id"]))


# --- metrics ---------------------------------------------------------------------------------------
def _append(st: ServerState, exp: dict[str, Any], name: str, points: list[Any], start: int | None,
            body: MetricAppend | MetricAppendBatch, finite: bool = False) -> tuple[dict[str, Any], Appended]:
    writer = body.writerId if isinstance(body, MetricAppendBatch) else None
    return st.store.append_points(exp["id"], name, points, start, body.description, body.tags, body.metadata,
                                  encode=dumps_array_finite if finite else dumps_array, writer=writer,
                                  writer_seqs=body.writer_seqs() if writer else None)


@router.post("/experiments/{experiment_id}/metrics/{name:path}/append")
def append_point(experiment_id: str, name: str, body: MetricAppend, st: ServerState = Depends(state),
                 who: Principal = Depends(principal)) -> dict[str, Any]:
    exp = st.experiment(who, experiment_id)
    metric, done = _append(st, exp, name, [body.data], body.index, body)
    index = done.start if done.created else (body.index if body.index is not None else done.start)
    return {"metricId": str(metric["id"]), "index": str(index), "bufferedDataPoints": str(metric["total"]),
            "chunkSize": CHUNK_SIZE}


@router.post("/experiments/{experiment_id}/metrics/{name:path}/append-batch",
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": MetricAppendBatch.model_json_schema()}}, "required": True}})
async def append_batch(experiment_id: str, name: str, request: Request, st: ServerState = Depends(state),
                       who: Principal = Depends(principal)) -> Response:
    # The hot path of ingest: parsed with orjson and validated by hand (the same rules as
    # MetricAppendBatch) instead of through FastAPI's generic body handling.
    from starlette.concurrency import run_in_threadpool

    raw = await request.body()
    try:
        doc, finite = loads_checked(raw)
    except ValueError as exc:
        raise ServerError("invalid", f"body is not valid JSON: {exc}", hint=BATCH_HINT) from None
    body = _check_batch(doc)
    exp = await run_in_threadpool(st.experiment, who, experiment_id)
    metric, done = await run_in_threadpool(_append, st, exp, name, body.dataPoints, body.startIndex, body, finite)
    # startIndex..endIndex: where the batch's points are (by position: as sent; by writer: the new ones).
    start = body.startIndex if body.startIndex is not None and not body.writerId else done.start
    count = len(body.dataPoints) if body.startIndex is not None and not body.writerId else done.created
    out = {"metricId": str(metric["id"]), "startIndex": str(start), "endIndex": str(start + count - 1),
           "count": len(body.dataPoints), "inserted": done.created, "duplicates": done.duplicates,
           "bufferedDataPoints": str(metric["total"]), "chunkSize": CHUNK_SIZE}
    return Response(dumps(out), media_type="application/json")


def _check_batch(doc: Any) -> MetricAppendBatch:
    if not isinstance(doc, dict):
        raise ServerError("invalid", "body: expected a JSON object", hint=BATCH_HINT)
    points = doc.get("dataPoints")
    if not isinstance(points, list) or not points:
        raise ServerError("invalid", "dataPoints: must be a non-empty list of objects", hint=BATCH_HINT)
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            raise ServerError("invalid", f"dataPoints.{i}: must be an object", hint=BATCH_HINT)
    rest = {k: v for k, v in doc.items() if k not in ("dataPoints", "writerSeqs")}
    # The model checks everything but the per-point lists, which are checked here in one pass each.
    seqs = doc.get("writerSeqs")
    if seqs is not None:
        if not isinstance(seqs, list) or len(seqs) != len(points) or not all(
                type(n) is int and n >= 0 for n in seqs):
            raise ServerError("invalid", "writerSeqs: must hold one whole number >= 0 per data point",
                              hint="give one writerSeqs number per data point, or writerSeq for the first of a run")
        rest["writerSeqs"] = [0]
    from pydantic import ValidationError

    try:
        meta = MetricAppendBatch.model_validate({**rest, "dataPoints": [{}]})
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        raise ServerError("invalid", f"{'.'.join(map(str, err['loc']))}: {err['msg']}",
                          hint="fix the field named; the API is described in schemas/api/openapi.json") from None
    return meta.model_copy(update={"dataPoints": points, "writerSeqs": seqs})


def _metric(st: ServerState, who: Principal, experiment_id: str, name: str) -> dict[str, Any]:
    exp = st.experiment(who, experiment_id)
    metric = st.store.get_metric(exp["id"], name)
    if metric is None:
        raise ServerError("not_found", f"metric {name!r} not found in experiment {experiment_id}",
                          hint=f"GET /experiments/{experiment_id}/metrics lists the experiment's metrics")
    return metric


def _points_response(rows: list[tuple[int, Any, str]], start: int, extra: dict[str, Any]) -> Response:
    """Built by hand so that NaN/Infinity (which generic JSON encoders turn into null or
    refuse) survive, as 0.5.8 clients send and expect them."""
    encoded = dumps_each([value for _, value, _ in rows])
    items = ",".join(f'{{"index":"{i}","data":{d},"createdAt":"{c}"}}'
                     for (i, _, c), d in zip(rows, encoded, strict=True))
    head = {"startIndex": str(start), "endIndex": str(start + len(rows) - 1), **extra}
    return Response(f'{{"data":[{items}],{dumps(head).decode()[1:]}', media_type="application/json")


@router.get("/experiments/{experiment_id}/metrics/{name:path}/data")
def metric_data(experiment_id: str, name: str, startIndex: int = 0, limit: int = 1000, bufferOnly: bool = False,
                st: ServerState = Depends(state), who: Principal = Depends(principal)) -> Response:
    metric = _metric(st, who, experiment_id, name)
    total = int(metric["total"])
    if bufferOnly:  # the points after the last full chunk (0.5.8 download protocol)
        startIndex, limit = (total // CHUNK_SIZE) * CHUNK_SIZE, CHUNK_SIZE
    limit = max(1, min(limit, 100_000))
    rows = st.store.read_points(metric["id"], max(0, startIndex), limit)
    return _points_response(rows, startIndex, {"total": len(rows), "hasMore": startIndex + len(rows) < total})


@router.get("/experiments/{experiment_id}/metrics/{name:path}/chunks/{number}")
def metric_chunk(experiment_id: str, name: str, number: int, st: ServerState = Depends(state),
                 who: Principal = Depends(principal)) -> Response:
    metric = _metric(st, who, experiment_id, name)
    if number < 0 or number >= int(metric["total"]) // CHUNK_SIZE:
        raise ServerError("not_found", f"chunk {number} of metric {name!r} does not exist",
                          hint="only complete chunks are served; read the rest with the metric's /data route")
    rows = st.store.read_points(metric["id"], number * CHUNK_SIZE, CHUNK_SIZE)
    return _points_response(rows, number * CHUNK_SIZE, {"chunkNumber": number})


@router.get("/experiments/{experiment_id}/metrics/{name:path}/stats")
def metric_stats(experiment_id: str, name: str, st: ServerState = Depends(state),
                 who: Principal = Depends(principal)) -> dict[str, Any]:
    stats = render.metric_stats(_metric(st, who, experiment_id, name))
    total = int(stats["totalDataPoints"])
    stats.update(totalChunks=total // CHUNK_SIZE, chunkedDataPoints=str(total // CHUNK_SIZE * CHUNK_SIZE),
                 bufferedDataPoints=str(total % CHUNK_SIZE))
    return stats


@router.get("/experiments/{experiment_id}/metrics")
def list_metrics(experiment_id: str, st: ServerState = Depends(state),
                 who: Principal = Depends(principal)) -> dict[str, Any]:
    exp = st.experiment(who, experiment_id)
    return {"metrics": [render.metric_summary(m) for m in st.store.list_metrics(exp["id"])]}
