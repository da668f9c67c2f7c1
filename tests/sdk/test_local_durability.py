"""Crashes, concurrent writers and torn lines: nothing lost, nothing doubled, nothing corrupt."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from ml_dash import Experiment
from ml_dash.records import LogLine, MetricPoint, Problem, iter_jsonl

WRITER = """
import os, sys, time
from ml_dash import Experiment
root, tag, n, crash = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "crash"
exp = Experiment(name="shared", project="p", local_path=root).run.start()
open(os.path.join(root, "ready-" + tag), "w").close()
while not os.path.exists(os.path.join(root, "go")):  # start appending together
    time.sleep(0.001)
m = exp.metrics("loss")
for i in range(n):
    m.append(value=i, writer=tag)
    exp.log(f"{tag} {i}")
if crash:
    os._exit(0)  # no flush, no close: like a SIGKILL after the last write
exp.run.complete()
"""


def run_writers(root: Path, *specs: tuple[str, int, str]) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), tag, str(n), mode]) for tag, n, mode in specs]
    deadline = time.monotonic() + 60
    while not all((root / f"ready-{tag}").exists() for tag, _, _ in specs) and time.monotonic() < deadline:
        time.sleep(0.01)
    (root / "go").touch()
    for p in procs:
        assert p.wait(timeout=120) == 0


def valid(path: Path, model: type) -> list:
    return [r for _, r in iter_jsonl(path, model) if not isinstance(r, Problem)]


def test_two_processes_appending_to_one_experiment_do_not_corrupt_it(tmp_path: Path) -> None:
    run_writers(tmp_path, ("a", 3000, "close"), ("b", 3000, "close"))
    exp_dir = tmp_path / "p/shared"
    points = valid(exp_dir / "metrics/loss/data.jsonl", MetricPoint)
    assert [p.index for p in points] == list(range(6000))
    writers = [p.data["writer"] for p in points]
    assert writers.count("a") == writers.count("b") == 3000
    # They really ran at the same time: the two writers' lines interleave.
    assert sum(1 for x, y in zip(writers, writers[1:], strict=False) if x != y) > 10
    logs = valid(exp_dir / "logs/logs.jsonl", LogLine)
    assert [x.sequenceNumber for x in logs] == list(range(6000))
    meta = json.loads((exp_dir / "metrics/loss/metadata.json").read_text())
    assert (meta["totalDataPoints"], meta["nextIndex"]) == (6000, 6000)
    assert (exp_dir / "logs/.log_sequence").read_text() == "6000"


def test_threads_share_one_experiment_safely(tmp_path: Path) -> None:
    exp = Experiment(name="e", project="p", local_path=tmp_path).run.start()

    def work(t: int) -> None:
        for i in range(500):
            exp.metrics("m").append(t=t, i=i)
            exp.log("x", t=t)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    exp.run.complete()
    assert [p.index for p in valid(exp.dir / "metrics/m/data.jsonl", MetricPoint)] == list(range(2000))
    assert [x.sequenceNumber for x in valid(exp.dir / "logs/logs.jsonl", LogLine)] == list(range(2000))


def test_a_killed_writer_leaves_a_tree_that_reopens_exactly(tmp_path: Path) -> None:
    run_writers(tmp_path, ("a", 300, "crash"))
    exp_dir = tmp_path / "p/shared"
    # Side files may be stale after the kill; the JSONL is complete.
    assert len(valid(exp_dir / "metrics/loss/data.jsonl", MetricPoint)) == 300
    with Experiment(name="shared", project="p", local_path=tmp_path).run as exp:
        assert exp.metrics("loss").append(value=-1)["index"] == "300"
        exp.log("after restart")
    meta = json.loads((exp_dir / "metrics/loss/metadata.json").read_text())
    assert (meta["totalDataPoints"], meta["nextIndex"]) == (301, 301)
    assert valid(exp_dir / "logs/logs.jsonl", LogLine)[-1].sequenceNumber == 300
    assert (exp_dir / "logs/.log_sequence").read_text() == "301"


def test_a_torn_last_line_stays_isolated(tmp_path: Path) -> None:
    with Experiment(name="e", project="p", local_path=tmp_path).run as exp:
        exp.metrics("m").append(v=0)
    data = exp.dir / "metrics/m/data.jsonl"
    with open(data, "a") as f:
        f.write('{"index": 1, "data": {"v"')  # a writer died mid-line
    with Experiment(name="e", project="p", local_path=tmp_path).run as exp:
        assert exp.metrics("m").append(v=2)["index"] == "1"
    results = list(iter_jsonl(data, MetricPoint))
    assert [type(r).__name__ for _, r in results] == ["MetricPoint", "Problem", "MetricPoint"]
    assert results[2][1].data == {"v": 2}
