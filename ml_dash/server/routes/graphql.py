"""``POST /graphql``: the queries 0.5.8's ``list`` and ``download`` send.

A small executor for the subset they use (one operation, variables, arguments,
nested selections): root fields ``projects``, ``experiments`` and ``experiment``;
each object answers only the fields selected. A namespace other than the caller's
is an error, like every other cross-namespace access.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends

from ml_dash.api.errors import ServerError
from ml_dash.server import render
from ml_dash.server.routes.deps import principal, state
from ml_dash.server.state import Principal, ServerState

router = APIRouter()

_TOKEN = re.compile(r'\s*(?:(?P<name>[_A-Za-z][_0-9A-Za-z]*)|(?P<var>\$[_A-Za-z][_0-9A-Za-z]*)|'
                    r'(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)|(?P<punct>[{}():!,\[\]=@]))')


@dataclass
class Field:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    selection: list[Field] = field(default_factory=list)


class GraphQLError(Exception):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    text = re.sub(r"#[^\n]*", "", text)
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise GraphQLError(f"unexpected character at {pos}: {text[pos:pos + 10]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent over the token list."""

    def __init__(self, query: str, variables: dict[str, Any]) -> None:
        self.toks = _tokens(query)
        self.i = 0
        self.variables = variables

    def peek(self, offset: int = 0) -> str:
        return self.toks[self.i + offset][1]

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.toks[self.i]
        if value is not None and tok[1] != value:
            raise GraphQLError(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def operation(self) -> list[Field]:
        if self.toks and self.peek() == "query":
            self.take()
            if self.toks[self.i][0] == "name":
                self.take()
            if self.peek() == "(":  # variable definitions: the values come from `variables`
                while self.take()[1] != ")":
                    pass
        return self.selection()

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "var":
            return self.variables.get(text[1:])
        if kind == "str":
            return bytes(text[1:-1], "utf-8").decode("unicode_escape")
        if kind == "num":
            return float(text) if "." in text else int(text)
        return {"true": True, "false": False, "null": None}.get(text, text)  # else an enum value

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        self.take("(")
        while self.peek() != ")":
            name = self.take()[1]
            self.take(":")
            args[name] = self.value()
            if self.peek() == ",":
                self.take()
        self.take(")")
        return args

    def selection(self) -> list[Field]:
        self.take("{")
        fields = []
        while self.peek() != "}":
            name = self.take()[1]
            if self.peek() == ":":  # alias: answer under the field's own name
                self.take()
                name = self.take()[1]
            f = Field(name)
            if self.peek() == "(":
                f.args = self.arguments()
            if self.peek() == "{":
                f.selection = self.selection()
            fields.append(f)
            if self.peek() == ",":
                self.take()
        self.take("}")
        return fields


def parse(query: str, variables: dict[str, Any]) -> list[Field]:
    """The root selection set of the (single) operation in ``query``."""
    return _Parser(query, variables).operation()


def _select(obj: Any, fields: list[Field]) -> Any:
    if isinstance(obj, list):
        return [_select(o, fields) for o in obj]
    if obj is None or not fields:
        return obj
    out = {}
    for f in fields:
        value = obj.get(f.name)
        if callable(value):
            value = value()
        out[f.name] = _select(value, f.selection)
    return out


def _experiment_object(st: ServerState, row: dict[str, Any]) -> dict[str, Any]:
    exp = render.experiment(row)
    exp_id = row["id"]

    def metrics() -> list[dict[str, Any]]:
        return [{"name": m["name"], "metricMetadata": {"totalDataPoints": int(m["total"])}}
                for m in st.store.list_metrics(exp_id)]

    def files() -> list[dict[str, Any]]:
        return [render.file(f) for f in st.store.list_files(exp_id)]

    def parameters() -> dict[str, Any]:
        params = st.store.get_params(exp_id)
        return {"id": str(exp_id), "data": params["data"], "version": params["version"]}

    resolvers: dict[str, Callable[[], Any]] = {"metrics": metrics, "files": files, "parameters": parameters}
    return {**exp, "project": {"slug": row["project_slug"]}, "logMetadata": {"totalLogs": int(row["log_count"])},
            **resolvers}


def _namespace(who: Principal, args: dict[str, Any]) -> None:
    slug = args.get("namespaceSlug")
    if slug is not None and slug != who.slug:
        raise GraphQLError(f"namespace '{slug}' is not accessible with this token (yours: '{who.slug}')")


def _resolve(st: ServerState, who: Principal, f: Field) -> Any:
    _namespace(who, f.args)
    if f.name == "projects":
        return [render.project(p) for p in st.store.list_projects(who.namespace_id)]
    if f.name == "experiments":
        rows = st.store.list_experiments(who.namespace_id, f.args.get("projectSlug"), f.args.get("status"))
        return [_experiment_object(st, r) for r in rows]
    if f.name == "experiment":
        rows = st.store.list_experiments(who.namespace_id, f.args.get("projectSlug"), None, f.args.get("experimentName"))
        return _experiment_object(st, rows[0]) if rows else None
    if f.name == "me":
        return {"username": who.slug, "namespace": {"slug": who.slug}}
    raise GraphQLError(f"unknown field '{f.name}' (supported: projects, experiments, experiment, me)")


@router.post("/graphql")
def graphql(body: dict[str, Any], st: ServerState = Depends(state), who: Principal = Depends(principal)) -> Any:
    query = body.get("query")
    variables = body.get("variables") or {}
    if not isinstance(query, str) or not isinstance(variables, dict):
        raise ServerError("invalid", "a GraphQL request needs a 'query' string and optional 'variables' object",
                          hint='send {"query": "...", "variables": {...}} as JSON')
    try:
        fields = parse(query, variables)
        data = {f.name: _select(_resolve(st, who, f), f.selection) for f in fields}
    except (GraphQLError, IndexError) as exc:
        message = str(exc) if isinstance(exc, GraphQLError) else "unexpected end of query"
        return {"data": None, "errors": [{"message": message}]}
    return {"data": data}
