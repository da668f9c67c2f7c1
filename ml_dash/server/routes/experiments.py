"""Experiments: create/update (implicitly creating project and namespace), status, streams."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from ml_dash.api.models import WRITER_ID_PATTERN, ExperimentCreate, StatusUpdate, StreamsOut
from ml_dash.server import render
from ml_dash.server.routes.deps import principal, state
from ml_dash.server.state import Principal, ServerState

router = APIRouter()


@router.post("/projects/{project}/experiments", status_code=201)
def create_experiment(project: str, body: ExperimentCreate, st: ServerState = Depends(state),
                      who: Principal = Depends(principal)) -> dict[str, Any]:
    from ml_dash.api.errors import ServerError

    if "/" in project or project in (".", "..") or not project.strip():
        raise ServerError("invalid", f"project {project!r} is not a single path segment",
                          hint="use a project name without '/' (folders go in the experiment's folder field)")
    exp, proj = st.store.upsert_experiment(who.namespace_id, project, body.model_dump(exclude_none=True))
    return {"experiment": render.experiment(exp), "project": render.project(proj), "folder": render.folder(exp),
            "namespace": {"id": str(who.namespace_id), "slug": who.slug, "name": who.slug}}


@router.patch("/experiments/{experiment_id}/status")
def update_status(experiment_id: str, body: StatusUpdate, st: ServerState = Depends(state),
                  who: Principal = Depends(principal)) -> dict[str, Any]:
    exp = st.experiment(who, experiment_id)
    return {"experiment": render.experiment(st.store.set_status(exp["id"], body.status))}


@router.get("/experiments/{experiment_id}/streams", response_model=StreamsOut)
def streams(experiment_id: str, writer: str | None = Query(None, pattern=WRITER_ID_PATTERN),
            st: ServerState = Depends(state), who: Principal = Depends(principal)) -> StreamsOut:
    """How far each stream got (and, for ``writer``, which of its records each stream has):
    the client resumes from here and sends nothing twice."""
    exp = st.experiment(who, experiment_id)
    params = st.store.get_params(exp["id"])
    return StreamsOut(
        experimentId=str(exp["id"]), status=exp["status"], parameters=params["data"],
        parametersVersion=params["version"], logs=int(exp["log_count"]),
        metrics={m["name"]: int(m["total"]) for m in st.store.list_metrics(exp["id"])},
        files=[{"id": str(f["id"]), "path": f["path"], "filename": f["filename"], "checksum": f["checksum"],
                "sizeBytes": int(f["size_bytes"])} for f in st.store.list_files(exp["id"])],
        marked=st.store.marked_counts(exp["id"]),
        writer=st.store.writer_marks(exp["id"], writer) if writer else None,
    )
