""".dashrc: every documented key round-trips (model → YAML → model, and text → model → YAML → model),
and every kind of mistake is one DashrcError with its line, key path and a did-you-mean."""

from __future__ import annotations

import pytest

from ml_dash.errors import MLDashError, RecordError
from ml_dash.records.dashrc import (
    IMAGE_GLOB,
    VIDEO_GLOB,
    Dashrc,
    DashrcError,
    ImageChart,
    LineChart,
    Series,
    VideoChart,
    config_json,
    dump_dashrc,
    load_dashrc,
)

EVERY_KEY = """\
# a comment is fine
metrics:
  fields: ["train*", "eval.acc"]
charts:
  - ctype: line
    title: Loss
    xKey: step
    yKey: train.loss
    xLabel: step
    yLabel: loss
    bins: 500
    xFormat: ",d"
    yFormat: ".3f"
    xTicks: 4
    yTicks: 6
    logX: true
    logY: true
    smoothing: 0.6
    groupBy: params.seed
    band: std
    series:
      - prefix: sweeps/lr
        label: lr sweep
        color: "#1f77b4"
        dash: "4 2"
        xKey: epoch
        yKey: eval.loss
      - experimentId: 123
        color: "#abc"
      - experimentIds: ["1", "2"]
        dash: "1,3"
  - ctype: line
    yKeys: [train.loss, eval.loss]
    groupBy: folder
    band: minmax
  - ctype: image
    title: Samples
    glob: "samples/*.png"
    nCols: 4
    nRows: 3
    limit: 10
    sort: name
  - ctype: video
    title: Rollouts
    glob: "**/*.mp4"
    nCols: 2
    nRows: 1
    sort: size
compare:
  experiments: ["12", sweeps/lr]
  groupBy: params.lr
  band: std
  differencesOnly: true
"""


def test_every_documented_key_round_trips() -> None:
    model = load_dashrc(EVERY_KEY)
    line = model.charts[0]
    assert isinstance(line, LineChart)
    assert (line.title, line.xKey, line.yKey, line.bins, line.xFormat, line.xTicks, line.yTicks) == (
        "Loss", "step", "train.loss", 500, ",d", 4, 6)
    assert (line.logX, line.logY, line.smoothing, line.groupBy, line.band) == (True, True, 0.6, "params.seed", "std")
    assert line.series is not None and line.series[1].experimentId == "123"  # YAML's number, as the id text
    assert line.series[0] == Series(prefix="sweeps/lr", label="lr sweep", color="#1f77b4", dash="4 2",
                                    xKey="epoch", yKey="eval.loss")
    image, video = model.charts[2], model.charts[3]
    assert isinstance(image, ImageChart) and (image.nCols, image.nRows, image.limit, image.sort) == (4, 3, 10, "name")
    assert isinstance(video, VideoChart) and video.effective_limit == 2
    assert model.compare is not None and model.compare.differencesOnly and model.compare.experiments == ["12",
                                                                                                        "sweeps/lr"]
    text = dump_dashrc(model)
    assert load_dashrc(text) == model
    assert dump_dashrc(load_dashrc(text)) == text  # stable
    assert text.index("ctype: image") < text.index("title: Samples")  # ctype first in every chart


def test_defaults_of_the_hosted_format() -> None:
    model = load_dashrc("metrics: {}\ncharts:\n  - {ctype: line, yKey: loss}\n  - {ctype: image}\n"
                        "  - {ctype: video}\n")
    line, image, video = model.charts
    assert isinstance(line, LineChart) and (line.xKey, line.bins, line.smoothing, line.logY) == ("default", 200, 0,
                                                                                                  False)
    assert isinstance(image, ImageChart) and (image.glob, image.nCols, image.nRows, image.sort) == (IMAGE_GLOB, 3, 2,
                                                                                                    "date")
    assert isinstance(video, VideoChart) and video.glob == VIDEO_GLOB
    assert model.metrics is not None and model.metrics.fields == ["*"]
    assert config_json(model)["charts"][1]["limit"] == 6  # nCols × nRows, resolved for the dashboard
    assert load_dashrc(dump_dashrc(model)) == model
    assert load_dashrc("") == Dashrc() == load_dashrc("# only a comment\n") and dump_dashrc(Dashrc()) == ""


def test_a_model_built_in_python_round_trips() -> None:
    model = Dashrc(charts=[LineChart(ctype="line", yKeys=["a.b", "c"], smoothing=0.99, band="minmax"),
                           ImageChart(ctype="image", limit=1),
                           LineChart(ctype="line", series=[Series(experimentIds=["7"], yKey="loss")])])
    assert load_dashrc(dump_dashrc(model)) == model


def _error(text: str) -> DashrcError:
    with pytest.raises(DashrcError) as caught:
        load_dashrc(text, source="runs/.dashrc")
    return caught.value


@pytest.mark.parametrize(("text", "line", "key", "message", "hint"), [
    ("charts:\n  - ctype: line\n    yKey: a\n  - ctype: lin\n    yKey: b\n", 4, "charts.1.ctype",
     "'lin' is not one of line, image, video", "did you mean 'line'?"),
    ("charts:\n  - ctype: line\n    yKye: a\n", 3, "charts.0.yKye", "unknown key", "did you mean 'yKey'?"),
    ("metrcs:\n  fields: ['*']\n", 1, "metrcs", "unknown key", "did you mean 'metrics'?"),
    ("charts:\n  - ctype: image\n\n    sort: nam\n", 4, "charts.0.sort", "'nam' is not one of name, date, size",
     "did you mean 'name'?"),
    ("charts:\n  - ctype: line\n    yKey: a\n    band: stdev\n", 4, "charts.0.band", "'stdev' is not one of minmax, std",
     "did you mean 'std'?"),
    ("compare:\n  groupBy: param.seed\n", 2, "compare.groupBy", 'must be "folder" or "params.KEY"',
     "did you mean 'params.seed'?"),
    ("charts:\n  - title: no type\n", 2, "charts.0.ctype", "ctype is missing", "line, image or video"),
    ("charts:\n  - ctype: line\n    title: x\n", 2, "charts.0", "yKey (or yKeys) is required", "yKeys"),
    ("charts:\n  - ctype: line\n    yKey: a\n    yKeys: [b]\n", 2, "charts.0", "not both", "not both"),
    ("charts:\n  - ctype: line\n    yKey: a\n    series:\n      - prefix: a\n        color: blue\n", 6,
     "charts.0.series.0.color", "hex colour", '"#1f77b4"'),
    ("charts:\n  - ctype: line\n    yKey: a\n    smoothing: 1.5\n", 4, "charts.0.smoothing", "less than or equal",
     "smoothing"),
    ("charts:\n  - ctype: line\n    yKey: a\n    yKey: b\n", 4, "charts.0.yKey", "duplicate key", "once"),
    ("charts: 3\n", 1, "charts", "valid list", "charts"),
])
def test_mistakes_name_their_line_key_and_a_guess(text: str, line: int, key: str, message: str, hint: str) -> None:
    err = _error(text)
    assert (err.line, err.key) == (line, key), err.message
    assert err.message.startswith(f"line {line}: {key}: ") and message in err.message, err.message
    assert err.hint and hint in err.hint, err.hint
    assert err.path == "runs/.dashrc" and isinstance(err, RecordError) and isinstance(err, MLDashError)
    assert err.details() == {"line": line, "key": key}


def test_the_first_problem_in_the_file_is_reported_and_the_others_counted() -> None:
    err = _error("charts:\n  - ctype: line\n    yKye: a\nmetrcs: {}\n")
    assert err.line == 3 and "(and 1 more problem)" in err.message


@pytest.mark.parametrize(("text", "line"), [
    ("charts:\n  - ctype: line\n   yKey: a\n", 3),
    ("charts: [1, 2\n", 2),
    ("charts:\n\t- ctype: line\n", 2),
    ("a: 'unclosed\n", 2),
])
def test_bad_yaml_is_reported_with_its_line(text: str, line: int) -> None:
    err = _error(text)
    assert err.line == line and err.key is None, err.message
    assert err.message.startswith(f"line {line}: invalid YAML: ") and "indentation" in (err.hint or "")


def test_a_top_level_list_is_not_a_dashrc() -> None:
    err = _error("- ctype: line\n")
    assert err.line == 1 and "mapping" in err.message


def test_merge_keys_are_not_duplicates() -> None:
    model = load_dashrc("charts:\n  - &b {ctype: line, yKey: a, bins: 50}\n  - {<<: *b, yKey: c}\n")
    assert [c.yKey for c in model.charts if isinstance(c, LineChart)] == ["a", "c"]
    assert all(isinstance(c, LineChart) and c.bins == 50 for c in model.charts)
