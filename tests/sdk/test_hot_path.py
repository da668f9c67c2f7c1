"""The single-record hot path keeps its safety: forked writers, closed appenders, the counters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ml_dash import Experiment
from ml_dash.errors import ExperimentStateError, InvalidInputError
from ml_dash.records import LogLine, MetricPoint, Problem, iter_jsonl
from ml_dash.records.layout import ExperimentPaths
from ml_dash.sdk import appenders

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12 warns about forking a process that has threads; the child only appends and exits.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]


def valid(path: Path, model: type) -> list:
    return [r for _, r in iter_jsonl(path, model) if not isinstance(r, Problem)]


def test_a_forked_child_and_its_parent_append_to_one_series_without_clashes(tmp_path: Path) -> None:
    exp = Experiment(name="e", project="p", local_path=tmp_path).run.start()
    m = exp.metrics("loss")
    m.append(value=-1, who="parent")  # the appenders are open before the fork
    exp.log("before fork")
    go = tmp_path / "go"
    pid = os.fork()
    if pid == 0:  # the child: append, then leave without running anything of pytest's
        code = 1
        try:
            while not go.exists():
                pass
            for i in range(1500):
                m.append(value=i, who="child")
                exp.log(f"child {i}")
            m.append_batch([{"value": i, "who": "child"} for i in range(500)])
            exp.flush()
            code = 0
        finally:
            os._exit(code)
    go.touch()
    for i in range(1500):
        m.append(value=i, who="parent")
        exp.log(f"parent {i}")
    m.append_batch([{"value": i, "who": "parent"} for i in range(500)])
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    exp.run.complete()
    points = valid(exp.dir / "metrics/loss/data.jsonl", MetricPoint)
    assert [p.index for p in points] == list(range(4001))
    whos = [p.data["who"] for p in points]
    assert whos.count("child") == 2000 and whos.count("parent") == 2001
    logs = valid(exp.dir / "logs/logs.jsonl", LogLine)
    assert [x.sequenceNumber for x in logs] == list(range(3001))
    meta = json.loads((exp.dir / "metrics/loss/metadata.json").read_text())
    assert (meta["totalDataPoints"], meta["nextIndex"]) == (4001, 4001)
    assert (exp.dir / "logs/.log_sequence").read_text() == "3001"


def test_a_forked_child_writes_through_descriptors_of_its_own(tmp_path: Path) -> None:
    appender = appenders.MetricAppender(ExperimentPaths(tmp_path), "m")
    appender.append({"v": 0}, None, None, None)
    parent_fd = appender._fd
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            appender.append({"v": 1}, None, None, None)
            os.write(write, str(appender._fd).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    child_fd = int(os.read(read, 100))
    os.close(read)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    # The child's new descriptor may reuse a number, but never the parent's description: the parent's
    # next append still sees the child's line (it catches up) and continues after it.
    assert appender._fd == parent_fd and child_fd >= 0
    assert appender.append({"v": 2}, None, None, None)["index"] == "2"
    appender.close()
    lines = (tmp_path / "metrics/m/data.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1, 2]


def test_closed_appenders_refuse_with_a_hint(tmp_path: Path) -> None:
    paths = ExperimentPaths(tmp_path)
    metric, logs = appenders.MetricAppender(paths, "m"), appenders.LogAppender(paths)
    metric.close()
    logs.close()
    for call in (lambda: metric.append({"v": 1}, None, None, None),
                 lambda: metric.append_batch([{"v": 1}], None, None, None),
                 lambda: logs.append("info", "x", None, "2026-01-01T00:00:00Z")):
        with pytest.raises(InvalidInputError) as caught:
            call()
        assert caught.value.hint


def test_results_match_0_5_8(tmp_path: Path) -> None:
    with Experiment(name="e", project="p", local_path=tmp_path).run as exp:
        m = exp.metrics("loss")
        assert m.append(value=1.0) == {"metricId": "local-metric-loss", "index": "0", "bufferedDataPoints": "1",
                                       "chunkSize": 10000}
        assert m.append_batch([{"value": 2.0}, {"value": 3.0}]) == {
            "metricId": "local-metric-loss", "startIndex": "1", "endIndex": "2", "count": 2,
            "bufferedDataPoints": "3", "chunkSize": 10000}
        assert exp.metrics.append(value=4.0)["metricId"] == "local-metric-None"


def test_log_levels_and_metadata_as_before(tmp_path: Path) -> None:
    with Experiment(name="e", project="p", local_path=tmp_path).run as exp:
        exp.log("a")
        exp.log("b", level="WARN")
        exp.log("c", level="Error")
        exp.log("d", level="debug", metadata={"x": 1}, y=2)
        exp.log("e", metadata={})
        exp.log(3, level="")  # type: ignore[arg-type]
        for bad in ("nope", ["info"], 3):
            with pytest.raises(InvalidInputError):
                exp.log("x", level=bad)  # type: ignore[arg-type]
        exp.log(metadata={"m": 1}).warn("f", n=2)  # type: ignore[union-attr]
    lines = [json.loads(line) for line in (exp.dir / "logs/logs.jsonl").read_text().splitlines()]
    assert [(x["message"], x["level"], x.get("metadata")) for x in lines] == [
        ("a", "info", None), ("b", "warn", None), ("c", "error", None), ("d", "debug", {"x": 1, "y": 2}),
        ("e", "info", None), ("3", "info", None), ("f", "warn", {"m": 1, "n": 2})]
    with pytest.raises(ExperimentStateError, match="not open"):
        exp.log("closed")
    with pytest.raises(ExperimentStateError, match="not open"):
        exp.metrics("m").append(v=1)


def test_a_write_protected_experiment_refuses_points_and_lines(tmp_path: Path) -> None:
    exp = Experiment(name="e", project="p", local_path=tmp_path, _write_protected=True).run.start()
    for call in (lambda: exp.metrics("m").append(v=1), lambda: exp.metrics("m").append_batch([{"v": 1}]),
                 lambda: exp.log("x"), lambda: exp.log("x", level="warn", step=1)):
        with pytest.raises(ExperimentStateError, match="write-protected"):
            call()
    exp.run.complete()


def test_metric_names_are_checked_every_time_they_are_refused(tmp_path: Path) -> None:
    with Experiment(name="e", project="p", local_path=tmp_path).run as exp:
        for _ in range(2):
            for bad in ("../x", "", " ", ["a"], 3):
                with pytest.raises(InvalidInputError):
                    exp.metrics(bad)  # type: ignore[arg-type]
            assert exp.metrics("train/loss").append(v=1)["metricId"] == "local-metric-train/loss"
    assert (exp.dir / "metrics/train/loss/data.jsonl").exists()
