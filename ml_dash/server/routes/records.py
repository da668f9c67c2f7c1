"""Logs, parameters and metrics of one experiment."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from itertools import repeat
from operator import is_not
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from ml_dash.api.errors import ServerError
from ml_dash.api.models import (
    WRITER_ID_PATTERN,
    LogsAppend,
    LogsAppendOut,
    MetricAppend,
    MetricAppendBatch,
    ParametersIn,
)
from ml_dash.records.logs import LOG_LEVELS
from ml_dash.server import render
from ml_dash.server.fastjson import (
    FlatPoints,
    dumps,
    dumps_array,
    dumps_array_finite,
    dumps_each,
    flat_points,
    loads_checked,
    loads_strict,
    split_first_array,
)
from ml_dash.server.routes.deps import in_ingest_thread, principal, state
from ml_dash.server.state import Principal, ServerState
from ml_dash.server.storage.sql import Appended, LogColumns

router = APIRouter()
CHUNK_SIZE = 10000  # points per chunk of the 0.5.8 download protocol
BATCH_HINT = 'send {"dataPoints": [{"value": 0.5, "step": 1}, ...]} as JSON'


# --- logs ------------------------------------------------------------------------------------------
class _LogsRoute(APIRoute):
    """``POST .../logs``: the common batch (a JSON object whose lines hold the documented fields
    with their plain types) is read with C loops over columns (``_fast_logs``) instead of one
    model per line; any other body goes through FastAPI's own parsing and ``LogsAppend``, which
    stay what answers its errors and what the API documents."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        general = super().get_route_handler()

        async def handler(request: Request) -> Response:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "application/json":  # (what else FastAPI reads as JSON takes the general path)
                out = await in_ingest_thread(state(request), _append_fast_logs, request, await request.body())
                if out is not None:
                    return Response(dumps(out), status_code=201, media_type="application/json")
            return await general(request)

        return handler


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


router.add_api_route("/experiments/{experiment_id}/logs", append_logs, methods=["POST"], status_code=201,
                     response_model=LogsAppendOut, route_class_override=_LogsRoute)

_LEVELS = frozenset(LOG_LEVELS)
_WRITER_ID = re.compile(WRITER_ID_PATTERN)
_NONE = frozenset((type(None),))
_INT_OR_NONE = frozenset((int, type(None)))
_STR = frozenset((str,))
_STR_OR_NONE = frozenset((str, type(None)))
_DICT_OR_NONE = frozenset((dict, type(None)))
_MISSING = object()


def _fast_logs(raw: bytes) -> tuple[LogColumns, str | None] | None:
    """``(lines as columns, writerId)`` of a body every line of which holds a
    ``message`` string, a known level (or none: info), a timestamp string or null, metadata
    object or null and whole sequence numbers >= 0 (writerSeq on every line with a writerId),
    all found with one C loop per field; None for any other body (NaN included), which then
    takes the general path and its errors."""
    try:
        doc = loads_strict(raw)
    except ValueError:
        return None
    logs = doc.get("logs") if type(doc) is dict else None
    writer = doc.get("writerId") if type(doc) is dict else None
    if type(logs) is not list or not logs or set(map(type, logs)) != {dict}:
        return None
    if writer is not None and (type(writer) is not str or not _WRITER_ID.fullmatch(writer)):
        return None
    get = dict.get

    def column(key: str, default: Any = None) -> list[Any]:
        return list(map(get, logs, repeat(key), repeat(default)))

    messages = column("message", _MISSING)
    levels = column("level", "info")
    stamps = column("timestamp")
    metadata = column("metadata")
    if set(map(type, messages)) != _STR or set(map(type, levels)) != _STR or \
            not set(map(type, stamps)) <= _STR_OR_NONE or not set(map(type, metadata)) <= _DICT_OR_NONE:
        return None
    levels = list(map(str.lower, levels))
    if not set(levels) <= _LEVELS:
        return None
    numbers: dict[str, tuple[list[Any], set[type]]] = {}
    for key in ("sequenceNumber", "writerSeq"):  # both are checked (as LogEntryIn does), one is used
        values = column(key)
        kinds = set(map(type, values))
        if kinds != _NONE and (not kinds <= _INT_OR_NONE or min(filter(partial(is_not, None), values)) < 0):
            return None
        numbers[key] = values, kinds
    if writer is not None and numbers["writerSeq"][1] != {int}:  # the writer numbers every line
        return None
    seqs = numbers["writerSeq" if writer is not None else "sequenceNumber"][0]
    return LogColumns(seqs, stamps, levels, messages, metadata), writer


def _append_fast_logs(request: Request, raw: bytes) -> dict[str, Any] | None:
    """The answer to the batch, or None (nothing done) when it is not one for the fast path."""
    lines = _fast_logs(raw)
    if lines is None:
        return None
    st, who = state(request), principal(request)
    exp = st.experiment(who, request.path_params["experiment_id"])
    done = st.store.append_logs(exp["id"], lines[0], writer=lines[1])
    return {"created": done.created, "startSequence": done.start, "endSequence": done.end,
            "experimentId": str(exp["id"]), "duplicates": done.duplicates}


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
def _append(st: ServerState, exp: dict[str, Any], name: str, points: Sequence[Any] | FlatPoints, start: int | None,
            body: MetricAppend | MetricAppendBatch, finite: bool = False,
            writer_seqs: Sequence[int] | None = None) -> tuple[dict[str, Any], Appended]:
    writer = body.writerId if isinstance(body, MetricAppendBatch) else None
    return st.store.append_points(exp["id"], name, points, start, body.description, body.tags, body.metadata,
                                  encode=dumps_array_finite if finite else dumps_array, writer=writer,
                                  writer_seqs=writer_seqs if writer else None)


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
    # The hot path of ingest: parsed and validated by hand (the same rules as MetricAppendBatch)
    # instead of through FastAPI's generic body handling, in one worker-thread call (parse,
    # experiment, append) so that the event loop only moves bytes.
    raw = await request.body()
    out = await in_ingest_thread(st, _append_batch, st, who, experiment_id, name, raw)
    return Response(dumps(out), media_type="application/json")


def _append_batch(st: ServerState, who: Principal, experiment_id: str, name: str, raw: bytes) -> dict[str, Any]:
    body, points, finite = _parse_batch(raw)
    count = len(points)
    seqs = None
    if body.writerId is not None:
        seqs = body.writerSeqs if body.writerSeqs is not None else \
            range(body.writerSeq or 0, (body.writerSeq or 0) + count)  # follow on: no list of n ints
    exp = st.experiment(who, experiment_id)
    metric, done = _append(st, exp, name, points, body.startIndex, body, finite, seqs)
    # startIndex..endIndex: where the batch's points are (by position: as sent; by writer: the new ones).
    by_position = body.startIndex is not None and not body.writerId
    start = body.startIndex if by_position else done.start
    stored = count if by_position else done.created
    assert start is not None
    return {"metricId": str(metric["id"]), "startIndex": str(start), "endIndex": str(start + stored - 1),
            "count": count, "inserted": done.created, "duplicates": done.duplicates,
            "bufferedDataPoints": str(metric["total"]), "chunkSize": CHUNK_SIZE}


def _parse_batch(raw: bytes) -> tuple[MetricAppendBatch, Sequence[Any] | FlatPoints, bool]:
    """``(body without its points, points, finite)``.

    The common body (``{"dataPoints": [...], ...}`` whose points are flat objects of finite
    numbers with the same keys) is read as columns, with a few C loops over its text instead of
    a dict per point (``fastjson.flat_points``); any other body is parsed whole, NaN/Infinity
    included (0.5.8 clients send them), with the same answer and the same errors as before.
    """
    split = split_first_array(raw, b"dataPoints")
    flat = flat_points(split[0]) if split is not None else None
    if split is not None and flat is not None:
        try:
            rest = loads_strict(split[1])
        except ValueError:
            rest = None  # not JSON, or NaN in the other members: the general path says what is wrong
        if type(rest) is dict and "dataPoints" not in rest:
            return _check_batch(rest, flat), flat, True
    try:
        doc, finite = loads_checked(raw)
    except ValueError as exc:
        raise ServerError("invalid", f"body is not valid JSON: {exc}", hint=BATCH_HINT) from None
    if not isinstance(doc, dict):
        raise ServerError("invalid", "body: expected a JSON object", hint=BATCH_HINT)
    points = doc.get("dataPoints")
    if not isinstance(points, list) or not points:
        raise ServerError("invalid", "dataPoints: must be a non-empty list of objects", hint=BATCH_HINT)
    if set(map(type, points)) != {dict}:  # one C loop; the message names the first offender
        for i, p in enumerate(points):
            if not isinstance(p, dict):
                raise ServerError("invalid", f"dataPoints.{i}: must be an object", hint=BATCH_HINT)
    return _check_batch(doc, points), points, finite


def _check_batch(doc: dict[str, Any], points: Sequence[Any]) -> MetricAppendBatch:
    """The members other than the points, checked by MetricAppendBatch (the points' list and
    ``writerSeqs`` are checked here, with C loops)."""
    rest = {k: v for k, v in doc.items() if k not in ("dataPoints", "writerSeqs")}
    seqs = doc.get("writerSeqs")
    if seqs is not None:
        if type(seqs) is not list or len(seqs) != len(points) or set(map(type, seqs)) != {int} or min(seqs) < 0:
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
    return meta.model_copy(update={"writerSeqs": seqs})


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
