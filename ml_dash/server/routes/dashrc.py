"""``.dashrc`` files on the server: a folder's (its saved Compare view) and an experiment's (its charts).

    GET  /ui/dashrc?namespace=NS&project=P&folder=a/b   → {"text", "config", "updatedAt"} or 404
                                                          (with &optional=1: nulls instead of 404)
    PUT  /ui/dashrc?namespace=NS&project=P&folder=a/b   {"text"} → the same document
    GET  /ui/dashrc/folders?namespace=NS&project=P      → {"items": [{"folder", "text", "updatedAt"}]}
    GET  /ui/experiments/{id}/dashrc                    → as above
    PUT  /ui/experiments/{id}/dashrc                    {"text"} → as above
    POST /ui/dashrc/validate                            {"text"} → {"config"} (stores nothing)

``folder`` "" (or absent) is the project's root. An invalid text is a 422 whose error object
adds ``line`` and ``key`` to code/message/hint, and is never stored. ``config`` is the model as
JSON with every default filled in (see ``records.dashrc.config_json``); a stored text that no
longer validates is still served, with ``config`` null and ``error`` saying why.

Namespaces as on the browse routes (an API key: its own; the owner: ``?namespace=``). These
routes are on with the dashboard switched off too: ``ml-dash upload``/``download`` use them
with an API key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from ml_dash.api.errors import ServerError
from ml_dash.errors import InvalidInputError
from ml_dash.records.dashrc import DashrcError, config_json, load_dashrc
from ml_dash.records.layout import folder_parts
from ml_dash.server.routes.browse import _namespace, _project
from ml_dash.server.routes.deps import principal, state
from ml_dash.server.state import Principal, ServerState
from ml_dash.server.storage import dashrc as queries

router = APIRouter(prefix="/ui", include_in_schema=False)

Row = dict[str, Any]
MAX_TEXT = 256 * 1024  # characters of one .dashrc: hand-written YAML is a few KB


class DashrcIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def _invalid(exc: DashrcError) -> ServerError:
    return ServerError("invalid", exc.message, exc.hint, details=exc.details())


def _checked(text: str) -> Row:
    """The config of a text about to be stored, or the 422 that says where it is wrong."""
    if len(text) > MAX_TEXT:
        raise ServerError("payload_too_large", f"a .dashrc of {len(text)} characters is over the limit of {MAX_TEXT}",
                          hint="declare fewer charts, or share series through a folder prefix")
    try:
        return config_json(load_dashrc(text))
    except DashrcError as exc:
        raise _invalid(exc) from None


def _document(row: Row) -> Row:
    doc: Row = {"text": row["text"], "config": None, "updatedAt": row["updated_at"]}
    try:
        doc["config"] = config_json(load_dashrc(row["text"]))
    except DashrcError as exc:  # stored before a stricter model: served, so it can be fixed in the editor
        doc["error"] = {"code": "invalid", "message": exc.message, "hint": exc.hint, **exc.details()}
    return doc


def _folder(value: str | None) -> str:
    try:
        return "/".join(folder_parts(value))
    except InvalidInputError as exc:
        raise ServerError("invalid", f"folder: {exc.message}", hint=exc.hint) from None


def _project_id(st: ServerState, who: Principal, namespace: str | None, project: str) -> int:
    ns_id, slug = _namespace(st, who, namespace)
    return int(_project(st, ns_id, slug, project)["id"])


def _found(row: Row | None, optional: bool, what: str) -> Row:
    """The stored .dashrc's document; when there is none, ABSENT (``optional``) or a 404."""
    if row is not None:
        return _document(row)
    if optional:
        return ABSENT
    raise _missing(what)


def _missing(what: str) -> ServerError:
    return ServerError("not_found", f"{what} has no .dashrc",
                       hint="PUT one here, or use the dashboard's 'Save as .dashrc'")


# ``optional=1``: no .dashrc is a normal answer (the dashboard asks on every page; a browser logs
# every 404 it fetches as a console error), ``{"text": null, "config": null, "updatedAt": null}``.
ABSENT: Row = {"text": None, "config": None, "updatedAt": None}


# --- a folder's ---------------------------------------------------------------------------------------------------
@router.get("/dashrc")
def get_folder_dashrc(project: str, namespace: str | None = None, folder: str | None = None, optional: bool = False,
                      st: ServerState = Depends(state), who: Principal = Depends(principal)) -> Row:
    path = _folder(folder)
    row = queries.folder_dashrc(st.store, _project_id(st, who, namespace, project), path)
    return _found(row, optional, f"folder {path or '/'!r} of project {project!r}")


@router.put("/dashrc")
def put_folder_dashrc(body: DashrcIn, project: str, namespace: str | None = None, folder: str | None = None,
                      st: ServerState = Depends(state), who: Principal = Depends(principal)) -> Row:
    project_id = _project_id(st, who, namespace, project)
    path = _folder(folder)
    _checked(body.text)
    return _document(queries.put_folder_dashrc(st.store, project_id, path, body.text))


@router.get("/dashrc/folders")
def list_folder_dashrcs(project: str, namespace: str | None = None, st: ServerState = Depends(state),
                        who: Principal = Depends(principal)) -> Row:
    rows = queries.folder_dashrcs(st.store, _project_id(st, who, namespace, project))
    return {"items": [{"folder": r["folder"], "text": r["text"], "updatedAt": r["updated_at"]} for r in rows]}


@router.post("/dashrc/validate")
def validate_dashrc(body: DashrcIn, who: Principal = Depends(principal)) -> Row:
    return {"config": _checked(body.text)}


# --- an experiment's ----------------------------------------------------------------------------------------------
@router.get("/experiments/{experiment_id}/dashrc")
def get_experiment_dashrc(experiment_id: str, optional: bool = False, st: ServerState = Depends(state),
                          who: Principal = Depends(principal)) -> Row:
    exp = st.experiment(who, experiment_id)
    row = queries.experiment_dashrc(st.store, int(exp["id"]))
    return _found(row, optional, f"experiment {experiment_id}")


@router.put("/experiments/{experiment_id}/dashrc")
def put_experiment_dashrc(experiment_id: str, body: DashrcIn, st: ServerState = Depends(state),
                          who: Principal = Depends(principal)) -> Row:
    exp = st.experiment(who, experiment_id)
    _checked(body.text)
    return _document(queries.put_experiment_dashrc(st.store, int(exp["id"]), body.text))
