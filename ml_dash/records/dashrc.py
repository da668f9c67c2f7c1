"""``.dashrc``: the dashboard's declared charts, in the YAML format of the hosted ml-dash.

In an experiment directory (beside experiment.json) a ``.dashrc`` sets that experiment's
Dashboard tab; in any other folder it defines a saved Compare view. Keys (hosted format)::

    metrics:
      fields: ["train*", "eval.acc"]      # globs of the metric keys shown in the header row
    charts:                               # ordered
      - ctype: line                       # line | image | video
        title: Loss
        xKey: default                     # default: timestamp, then step, then epoch, else the index
        yKey: train.loss                  # or yKeys: [train.loss, eval.loss] (exactly one of the two)
        xLabel: step
        yLabel: loss
        bins: 200                         # points per series after downsampling
        xFormat: ",d"                     # axis number formats (d3-format strings)
        yFormat: ".3f"
        xTicks: 5                         # how many ticks (a hint to the axis)
        yTicks: 5
        series:                           # Compare .dashrc only: one line each
          - prefix: sweeps/lr             # or experimentId: "123" or experimentIds: ["1", "2"]
            label: lr sweep
            color: "#1f77b4"              # hex
            dash: "4 2"                   # SVG stroke-dasharray
            xKey: step                    # overrides the chart's keys for this line
            yKey: eval.loss
      - ctype: image                      # or video
        title: Samples
        glob: "**/*.{png,jpg,jpeg,gif,webp}"   # video: "**/*.{mp4,webm,mov}"
        nCols: 3
        nRows: 2
        limit: 6                          # absent: nCols × nRows
        sort: date                        # name | date | size

A metric key ``train.loss`` names field ``loss`` of metric ``train``
(``exp.metrics("train").log(loss=...)``); the model keeps keys as plain strings.

Keys ml-dash adds, which the hosted format ignores (all optional):

* line charts: ``logX`` / ``logY`` (log axes), ``smoothing`` (0..0.99, exponential moving
  average weight, independent of the series' length), ``groupBy`` (``folder`` or
  ``params.KEY``: one mean line per group) and ``band`` (``minmax`` | ``std``: the band drawn
  around a group's mean line);
* top level ``compare: {experiments: [ids or folder prefixes], groupBy, band,
  differencesOnly}``: a saved Compare view (which runs, grouping, the parameter table's
  "differences only").

Unknown keys are errors (a typo must not silently do nothing). :func:`load_dashrc` reports
the first problem of the file with its line, key path and a did-you-mean; :func:`dump_dashrc`
writes YAML in a stable key order that loads back to an equal model.
"""

from __future__ import annotations

import difflib
import re
import typing
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ml_dash.errors import RecordError

__all__ = ["DASHRC_FILE", "Dashrc", "DashrcError", "ImageChart", "LineChart", "Series", "VideoChart",
           "config_json", "dump_dashrc", "load_dashrc"]

DASHRC_FILE = ".dashrc"
IMAGE_GLOB = "**/*.{png,jpg,jpeg,gif,webp}"
VIDEO_GLOB = "**/*.{mp4,webm,mov}"
CTYPES = ("line", "image", "video")
KEYS_HINT = "the keys are listed in schemas/records/dashrc.schema.json and in ml_dash/records/dashrc.py"
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
_DASH = re.compile(r"^\s*\d+(?:\.\d+)?(?:[\s,]+\d+(?:\.\d+)?)*\s*$")
_GROUP = re.compile(r"^(?:folder|params\..+)$")


class DashrcError(RecordError):
    """A ``.dashrc`` that cannot be used: ``line`` (1-based, None when unknown), ``key`` (the
    dotted path, ``charts.0.ctype``; None for a YAML syntax error) and ``problem`` (the message
    without its place). The message reads ``line 4: charts.0.ctype: problem``."""

    def __init__(self, problem: str, *, line: int | None, key: str | None, hint: str | None,
                 source: str = DASHRC_FILE) -> None:
        where = [f"line {line}"] if line is not None else []
        where += [key] if key else []
        message = ": ".join([*where, problem])
        super(RecordError, self).__init__(message, hint=hint)  # RecordError formats differently
        self.path = source
        self.line = line
        self.key = key
        self.problem = problem

    def details(self) -> dict[str, Any]:
        """What the server adds to its error object (besides code, message and hint)."""
        return {"line": self.line, "key": self.key}


# --- the model -------------------------------------------------------------------------------------------------
def _scalar_text(value: Any) -> Any:
    """YAML reads ``title: 2025`` or ``experimentId: 123`` as numbers; these keys are text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_scalar_text)]
GROUP_HELP = '"folder" or "params.KEY" (e.g. params.seed): one mean line per group'
Band = Literal["minmax", "std"]


class _Strict(BaseModel):
    # extra="forbid": a misspelt key is an error with a did-you-mean, never silently ignored.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


def _check_group(value: str | None) -> str | None:
    if value is not None and not _GROUP.match(value):
        raise ValueError('must be "folder" or "params.KEY" (e.g. params.seed)')
    return value


class MetricsHeader(_Strict):
    """The metrics shown in the experiment's header row."""

    fields: list[Text] = Field(default_factory=lambda: ["*"],
                               description='globs of metric keys ("*", "train*", "eval.acc")')


class Series(_Strict):
    """One line of a Compare chart: the experiments it draws (exactly one of prefix,
    experimentId, experimentIds) and how."""

    prefix: Text | None = Field(None, description="every experiment whose folder/name starts with it")
    experimentId: Text | None = None
    experimentIds: list[Text] | None = Field(None, min_length=1)
    label: Text | None = None
    color: str | None = Field(None, description="hex colour, e.g. #1f77b4")
    dash: Text | None = Field(None, description='SVG stroke-dasharray, e.g. "4 2"')
    xKey: Text | None = Field(None, description="overrides the chart's xKey for this line")
    yKey: Text | None = Field(None, description="overrides the chart's yKey for this line")

    @field_validator("color")
    @classmethod
    def _color(cls, value: str | None) -> str | None:
        if value is not None and not _HEX.match(value):
            raise ValueError("must be a hex colour such as #1f77b4 (quote it in YAML: \"#1f77b4\")")
        return value

    @field_validator("dash")
    @classmethod
    def _dash(cls, value: str | None) -> str | None:
        if value is not None and not _DASH.match(value):
            raise ValueError('must be an SVG dasharray: numbers separated by spaces or commas, e.g. "4 2"')
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Series:
        given = [k for k in ("prefix", "experimentId", "experimentIds") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of prefix, experimentId, experimentIds"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


class LineChart(_Strict):
    ctype: Literal["line"]
    title: Text | None = None
    xKey: Text = Field("default", description="default: timestamp, then step, then epoch, else the index")
    yKey: Text | None = Field(None, description="a metric key, e.g. train.loss (or yKeys)")
    yKeys: list[Text] | None = Field(None, min_length=1, description="several metric keys (or yKey)")
    xLabel: Text | None = None
    yLabel: Text | None = None
    bins: int = Field(200, ge=2, le=100_000, description="points per series after downsampling")
    xFormat: Text | None = Field(None, description="d3-format string of the x axis")
    yFormat: Text | None = Field(None, description="d3-format string of the y axis")
    xTicks: int | None = Field(None, ge=0, le=100, description="how many x ticks")
    yTicks: int | None = Field(None, ge=0, le=100, description="how many y ticks")
    series: list[Series] | None = Field(None, description="Compare .dashrc: one line each")
    # ml-dash additions (the hosted format ignores them)
    logX: bool = False
    logY: bool = False
    smoothing: float = Field(0.0, ge=0.0, le=0.99, description="exponential moving average weight")
    groupBy: str | None = Field(None, description=GROUP_HELP)
    band: Band | None = Field(None, description="band around a group's mean line")

    @field_validator("groupBy")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return _check_group(value)

    @model_validator(mode="after")
    def _one_y(self) -> LineChart:
        if self.yKey is not None and self.yKeys is not None:
            raise ValueError("give exactly one of yKey and yKeys, not both")
        every_series_has_y = bool(self.series) and all(s.yKey for s in self.series or [])
        if self.yKey is None and self.yKeys is None and not every_series_has_y:
            raise ValueError("yKey (or yKeys) is required")
        return self


class _MediaChart(_Strict):
    title: Text | None = None
    glob: Text
    nCols: int = Field(3, ge=1, le=24)
    nRows: int = Field(2, ge=1, le=100)
    limit: int | None = Field(None, ge=1, description="absent: nCols × nRows")
    sort: Literal["name", "date", "size"] = "date"

    @property
    def effective_limit(self) -> int:
        return self.limit if self.limit is not None else self.nCols * self.nRows


class ImageChart(_MediaChart):
    ctype: Literal["image"]
    glob: Text = IMAGE_GLOB


class VideoChart(_MediaChart):
    ctype: Literal["video"]
    glob: Text = VIDEO_GLOB


Chart = Annotated[LineChart | ImageChart | VideoChart, Field(discriminator="ctype")]


class CompareView(_Strict):
    """A saved Compare view (ml-dash addition)."""

    experiments: list[Text] = Field(default_factory=list, description="experiment ids or folder prefixes")
    groupBy: str | None = Field(None, description=GROUP_HELP)
    band: Band | None = None
    differencesOnly: bool = False

    @field_validator("groupBy")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return _check_group(value)


class Dashrc(_Strict):
    """A whole ``.dashrc`` file."""

    metrics: MetricsHeader | None = None
    charts: list[Chart] = Field(default_factory=list)
    compare: CompareView | None = None


# --- loading with line numbers -----------------------------------------------------------------------------------
Path_ = tuple[str | int, ...]


def _syntax_error(exc: yaml.YAMLError, source: str) -> DashrcError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    return DashrcError(f"invalid YAML: {problem}", line=line, key=None, source=source,
                       hint="check the indentation (spaces, not tabs) and the quoting near that line; "
                            "a mapping is 'key: value', a list item starts with '- '")


def _check_duplicates(node: yaml.Node, source: str, path: Path_ = ()) -> None:
    """A key twice in one mapping: YAML keeps the last silently, which hides an edit."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(key_node.value)
            if key in seen:
                raise DashrcError("duplicate key", line=key_node.start_mark.line + 1, key=_dotted((*path, key)),
                                  source=source, hint="a key may appear once per mapping; remove one of them")
            seen.add(key)
            _check_duplicates(value_node, source, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, source, (*path, i))


def _lines(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    """``{key path: 1-based line}`` of every mapping key and list item (after merges)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            out[key] = key_node.start_mark.line + 1
            _lines(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _lines(item, (*path, i), out)


def _parse(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _check_duplicates(node, source)
        data = loader.construct_document(node)  # applies merge keys to the node tree in place
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, source) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {(): node.start_mark.line + 1}
    _lines(node, (), lines)
    return data, lines


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def _data_path(data: Any, loc: tuple[Any, ...]) -> Path_:
    """The error's location in the data: pydantic adds union tags (``line``) and validator
    names to ``loc`` that are not keys of the file; they are dropped."""
    out: list[str | int] = []
    here = data
    for part in loc:
        if isinstance(here, dict) and part in here:
            here = here[part]
            out.append(part)
        elif isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here):
            here = here[part]
            out.append(part)
        elif isinstance(here, dict) and isinstance(part, str) and not _looks_internal(part):
            out.append(part)  # a missing or misspelt key: it names the place all the same
            here = None
    return tuple(out)


def _looks_internal(part: str) -> bool:
    return part in CTYPES or "[" in part or part.startswith(("function-", "union["))


def _model_at(path: Path_, data: Any) -> type[BaseModel] | None:
    """Which model validates the mapping at ``path`` (for the keys a typo is compared with)."""
    if path == ():
        return Dashrc
    if path == ("metrics",):
        return MetricsHeader
    if path == ("compare",):
        return CompareView
    if len(path) in (2, 4) and path[0] == "charts" and isinstance(path[1], int):
        if len(path) == 4:
            return Series if path[2] == "series" else None
        try:
            ctype = data["charts"][path[1]].get("ctype")
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        return {"line": LineChart, "image": ImageChart, "video": VideoChart}.get(ctype)
    return None


def _choices(annotation: Any) -> list[str]:
    if typing.get_origin(annotation) is Literal:
        return [str(a) for a in typing.get_args(annotation)]
    return [c for arg in typing.get_args(annotation) for c in _choices(arg)]


def _did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f"did you mean {close[0]!r}?" if close else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    keys = list(model.model_fields)
    return sorted(keys, key=lambda k: k != "ctype")  # ctype first, as charts are written


# Hints of the model's own checks, by the start of their message.
_VALUE_HINTS = {
    "yKey (or yKeys) is required": "add yKey: NAME.FIELD (e.g. train.loss) or yKeys: [train.loss, eval.loss]",
    "give exactly one of yKey": "keep yKey for one line or yKeys for several, not both",
    "give exactly one of prefix": "a series draws the experiments of one prefix, one experimentId, or a list of "
                                  "experimentIds",
    "must be a hex colour": 'e.g. color: "#1f77b4" (quoted: a bare # starts a YAML comment)',
    "must be an SVG dasharray": 'e.g. dash: "4 2" (dashes of 4, gaps of 2) or "1 3" (dots)',
}


def _explain(err: dict[str, Any], path: Path_, data: Any) -> tuple[str, str]:
    """``(problem, hint)`` of one pydantic error, in words of the file."""
    kind, key = err["type"], str(path[-1]) if path else ""
    parent = _model_at(path[:-1], data)
    if kind == "extra_forbidden":
        choices = _keys_of(parent) if parent else []
        where = f" of {_what(parent)}" if parent else ""
        guess = _did_you_mean(key, choices)
        listing = f"keys{where}: {', '.join(choices)}" if choices else KEYS_HINT
        return "unknown key", f"{guess} {listing}" if guess else listing
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = (err.get("ctx") or {}).get("tag")
        if kind == "union_tag_not_found" or tag is None:
            return "ctype is missing", "every chart needs ctype: line, image or video"
        guess = _did_you_mean(str(tag), CTYPES)
        return f"{tag!r} is not one of line, image, video", f"{guess or ''} ctype is line, image or video".strip()
    if kind == "literal_error" and parent is not None and key in parent.model_fields:
        choices = _choices(parent.model_fields[key].annotation)
        value = _value_at(data, path)
        guess = _did_you_mean(str(value), choices)
        problem = f"{value!r} is not one of {', '.join(choices)}"
        return problem, (f"{guess} " if guess else "") + f"{key} is one of {', '.join(choices)}"
    if kind == "missing":
        return "required key is missing", f"add {key}: ... here; {KEYS_HINT}"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "expected a mapping (key: value lines)", "indent the keys below this one, e.g. 'metrics:\\n  fields: [\"*\"]'"
    message = str(err["msg"])
    hint = KEYS_HINT
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        hint = next((h for start, h in _VALUE_HINTS.items() if message.startswith(start)), hint)
        if key == "groupBy":
            value = str(_value_at(data, path))
            guess = _did_you_mean(value, ["folder"]) or (
                f"did you mean 'params.{value.split('.', 1)[1]}'?" if "." in value else None)
            hint = f"{guess or ''} group by folder, or by a parameter: params.seed".strip()
    if kind.startswith(("string_", "int_", "float_", "bool_", "list_", "greater", "less")):
        hint = f"fix the value of {key or 'this key'}; {KEYS_HINT}"
    return message[:1].lower() + message[1:], hint


def _what(model: type[BaseModel]) -> str:
    return {Dashrc: "a .dashrc", MetricsHeader: "metrics", CompareView: "compare", Series: "a series",
            LineChart: "a line chart", ImageChart: "an image chart", VideoChart: "a video chart"}.get(model, "it")


def _value_at(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def load_dashrc(text: str, source: str = DASHRC_FILE) -> Dashrc:
    """Parse and validate a ``.dashrc``; the first problem in the file raises :class:`DashrcError`
    (line, key path, did-you-mean). An empty file is an empty ``.dashrc`` (automatic charts)."""
    data, lines = _parse(text, source)
    if data is None:
        return Dashrc()
    if not isinstance(data, dict):
        raise DashrcError("expected a mapping of keys (metrics, charts, compare) at the top level", line=1, key=None,
                          source=source, hint="start the file with e.g. 'charts:' followed by a list of charts")
    try:
        return Dashrc.model_validate(data)
    except ValidationError as exc:
        found = []
        for err in exc.errors(include_url=False, include_input=False):
            path = _data_path(data, tuple(err["loc"]))
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                path = (*path, "ctype")
            found.append((_line_of(lines, path) or 0, path, err))
        found.sort(key=lambda f: f[0])  # the first problem in the file, not in the model's field order
        line, path, err = found[0]
        problem, hint = _explain(err, path, data)
        if len(found) > 1:
            problem += f" (and {len(found) - 1} more problem{'s' if len(found) > 2 else ''})"
        raise DashrcError(problem, line=line or None, key=_dotted(path) or None, source=source,
                          hint=hint) from None


# --- writing ---------------------------------------------------------------------------------------------------
def dump_dashrc(model: Dashrc) -> str:
    """YAML in the model's key order, defaults left out (``load_dashrc(dump_dashrc(m)) == m``)."""
    data = model.model_dump(mode="json", exclude_defaults=True)
    # ctype first (media charts inherit their other keys, which pydantic would put before it)
    if model.charts:
        data["charts"] = [{"ctype": c.ctype, **{k: v for k, v in d.items() if k != "ctype"}}
                          for c, d in zip(model.charts, data["charts"], strict=True)]
    ordered = {k: data[k] for k in ("metrics", "charts", "compare") if k in data}
    if not ordered:
        return ""
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def config_json(model: Dashrc) -> dict[str, Any]:
    """The model as the dashboard reads it: every default filled in, media ``limit`` resolved."""
    data = model.model_dump(mode="json", exclude_none=True)
    for chart, source in zip(data["charts"], model.charts, strict=True):
        if isinstance(source, _MediaChart):
            chart["limit"] = source.effective_limit
    return data
