"""``POST /ui/compare``: what the compare view needs of many experiments in one request — who
they are, their parameters, and every metric's numeric fields (count/min/max/last, from the
series summaries). Their series then come in one ``POST /series``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ml_dash.server import render
from ml_dash.server.routes.deps import principal, state
from ml_dash.server.routes.series import _json, metrics_index
from ml_dash.server.state import Principal, ServerState

router = APIRouter(prefix="/ui", include_in_schema=False)

MAX_COMPARED = 500


class CompareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(min_length=1, max_length=MAX_COMPARED)


@router.post("/compare")
async def compare(body: CompareIn, st: ServerState = Depends(state), who: Principal = Depends(principal)) -> Response:
    def run() -> list[dict[str, Any]]:
        exps = [st.experiment(who, i) for i in dict.fromkeys(body.ids)]  # 403/404 for any not readable
        index = metrics_index(st, [int(e["id"]) for e in exps])
        return [{"experiment": render.experiment(e), "params": st.store.get_params(e["id"])["data"] or {},
                 "metrics": index[int(e["id"])]} for e in exps]

    return _json({"experiments": await run_in_threadpool(run)})
