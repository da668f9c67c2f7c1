"""The import writer: exactly once into the tree, however often, concurrently or killed it runs.

The source is ``tests/importers/synthetic.py`` (records computed from a JSON spec), so these
tests are about the writer alone; the real readers have their own tests with real sources.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ml_dash.config.models import ImportConfig
from ml_dash.importers import run as import_pipeline
from tests.helpers.trees import records_of
from tests.importers import synthetic

REPO = Path(__file__).resolve().parents[2]


def spec(path: Path, *runs: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"runs": list(runs)}))
    return path


def expected_metric(metric: int, points: int) -> list[dict[str, Any]]:
    return [{"value": synthetic.value(metric, i), "step": i, "timestamp": 1.7e9 + i} for i in range(points)]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_as_a_fresh_import(source: Path, tree: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "tests.importers.synthetic", str(source), str(fresh)], cwd=REPO,
                   check=True)
    assert records_of(tree) == records_of(fresh)


@pytest.fixture
def use_synthetic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(import_pipeline.SOURCES, "tensorboard", ("tests.importers.synthetic", "test source", "x", "json"))


def run_import(source: Path, tree: Path, **settings: Any) -> int:
    settings.setdefault("progress", "plain")
    cfg = ImportConfig(kind="tensorboard", source=str(source), to=tree, **settings)
    return import_pipeline.run_import(cfg)


def importer(source: Path, tree: Path, batch: int = 1000) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.importers.synthetic", str(source), str(tree), str(batch)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.usefixtures("use_synthetic")
def test_import_then_again_adds_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = spec(tmp_path / "src.json", {"key": "a", "points": 250, "metrics": 2, "logs": 3, "files": 2,
                                          "project": "vision"})
    tree = tmp_path / "tree"
    assert run_import(source, tree) == 0
    out = capsys.readouterr().out
    assert "  ✓ vision/a (run a): 500 points (2 metrics), 3 log lines, 2 files, 3 params" in out
    got = records_of(tree)["vision/a"]
    assert got["metrics"] == {"train/m0": expected_metric(0, 250), "train/m1": expected_metric(1, 250)}
    assert [line[2] for line in got["logs"]] == ["step 0", "step 100", "step 200"]
    assert got["params"] == {"model.name": "mlp", "model.depth": 3, "lr": 0.1}
    assert [f[1] for f in got["files"]] == ["f0.txt", "f1.txt"]
    meta = json.loads((tree / "vision/a/experiment.json").read_text())["metadata"]
    assert meta["imported_from"] == {"source": "tensorboard", "key": "a", "path": str(source)}
    before = tree_bytes(tree)
    assert run_import(source, tree) == 0
    out = capsys.readouterr().out
    assert "  ✓ vision/a (run a): 0 points (2 metrics), 0 log lines, 0 files, 0 params; 505 already there" in out
    assert tree_bytes(tree) == before  # not a byte changed: no record, no updated_at, no counter


@pytest.mark.usefixtures("use_synthetic")
def test_a_grown_run_gets_only_its_new_records(tmp_path: Path) -> None:
    small = {"key": "a", "points": 120, "metrics": 2, "logs": 1, "files": 1, "project": "p"}
    grown = {**small, "points": 480, "logs": 4, "files": 3, "params": {"epochs": 10}}
    assert run_import(spec(tmp_path / "s.json", small), tmp_path / "tree") == 0
    assert run_import(spec(tmp_path / "s.json", grown), tmp_path / "tree") == 0
    assert run_import(spec(tmp_path / "g.json", grown), tmp_path / "fresh") == 0
    assert records_of(tmp_path / "tree") == records_of(tmp_path / "fresh")
    params = json.loads((tmp_path / "tree/p/a/parameters.json").read_text())
    assert params["version"] == 2 and params["data"]["epochs"] == 10  # only the new key was written


@pytest.mark.usefixtures("use_synthetic")
def test_dry_run_counts_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = spec(tmp_path / "s.json", {"key": "a", "points": 100, "logs": 1, "project": "p"})
    assert run_import(source, tmp_path / "tree", dry_run=True) == 0
    out = capsys.readouterr().out
    assert "100 points (1 metrics), 1 log lines, 0 files, 3 params" in out and "DRY RUN" in out
    assert not (tmp_path / "tree").exists()
    assert run_import(source, tmp_path / "tree") == 0
    spec(tmp_path / "s.json", {"key": "a", "points": 150, "logs": 2, "project": "p"})
    assert run_import(source, tmp_path / "tree", dry_run=True) == 0
    assert "50 points (1 metrics), 1 log lines, 0 files, 0 params; 101 already there" in capsys.readouterr().out


@pytest.mark.usefixtures("use_synthetic")
def test_bad_input_is_skipped_and_reported_or_refused_in_strict_mode(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source = spec(tmp_path / "s.json", {"key": "ok", "points": 10, "project": "p"},
                  {"key": "broken", "points": 10, "bad": [4], "project": "p"})
    assert run_import(source, tmp_path / "tree", strict=True) == 1
    captured = capsys.readouterr()
    assert f"  ✗ p/broken (run broken):\n      {source}: record 4: bad record\n" in captured.out
    assert "Error: 1 problem(s) in the source; nothing was imported (--strict)" in captured.err
    assert not (tmp_path / "tree").exists()
    assert run_import(source, tmp_path / "tree") == 0
    out = capsys.readouterr().out
    assert "  ⚠ p/broken (run broken): 10 points (1 metrics)" in out
    assert f"      {source}: record 4: bad record (skipped)\n" in out
    assert "1 problem(s) skipped, 0 failed" in out
    assert set(records_of(tmp_path / "tree")) == {"p/ok", "p/broken"}


@pytest.mark.usefixtures("use_synthetic")
def test_never_mixes_into_an_experiment_it_did_not_import(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from ml_dash import Experiment

    tree = tmp_path / "tree"
    with Experiment(name="a", project="p", local_path=str(tree)).run as exp:
        exp.metrics("train/m0").append(value=42.0)
    before = tree_bytes(tree)
    source = spec(tmp_path / "s.json", {"key": "a", "points": 5, "project": "p"}, {"key": "b", "points": 5,
                                                                                  "project": "p"})
    assert run_import(source, tree) == 1
    out = capsys.readouterr().out
    assert (f"  ✗ p/a (run a): p/a in {tree} already holds an experiment not imported by ml-dash import "
            "(hint: import into another project or folder (--project / --folder) or another tree (--to))") in out
    assert "  ✓ p/b (run b)" in out
    assert {k: v for k, v in tree_bytes(tree).items() if k.startswith("p/a/")} == before
    assert run_import(source, tree, project="imported") == 0
    assert records_of(tree)["imported/a"]["metrics"]["train/m0"] == expected_metric(0, 5)


def test_two_imports_at_once_write_every_record_once(tmp_path: Path) -> None:
    source = spec(tmp_path / "s.json", *({"key": k, "points": 20_000, "metrics": 3, "logs": 50, "files": 3,
                                          "project": "p"} for k in ("a", "b")))
    tree = tmp_path / "tree"
    procs = [importer(source, tree, batch=500) for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert_same_as_a_fresh_import(source, tree, tmp_path)
    for key in ("a", "b"):
        lines = (tree / f"p/{key}/metrics/train/m2/data.jsonl").read_text().splitlines()
        assert [json.loads(x)["index"] for x in lines] == list(range(20_000))


def test_an_import_killed_mid_way_and_run_again_ends_with_one_copy(tmp_path: Path) -> None:
    source = spec(tmp_path / "s.json", *({"key": k, "points": 60_000, "metrics": 4, "logs": 300, "files": 5,
                                          "project": "p"} for k in ("a", "b")))
    tree = tmp_path / "tree"
    kills = 0
    for delay in (0.6, 1.2, 1.8):
        proc = importer(source, tree, batch=700)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.communicate()
    assert kills >= 1, "the import finished before any kill: make the source bigger"
    proc = importer(source, tree)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert_same_as_a_fresh_import(source, tree, tmp_path)


@pytest.mark.usefixtures("use_synthetic")
def test_points_held_for_writing_are_bounded_across_metrics(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_dash.importers import writer
    from ml_dash.sdk.backends.local import LocalBackend

    source = spec(tmp_path / "s.json", {"key": "a", "points": 20, "metrics": 30, "project": "p"})
    assert run_import(source, tmp_path / "whole") == 0
    batches: list[int] = []
    write = LocalBackend.append_metric_batch

    def spy(self: LocalBackend, name: str | None, points: list[dict[str, Any]], *rest: Any) -> dict[str, Any]:
        batches.append(len(points))
        return write(self, name, points, *rest)

    monkeypatch.setattr(LocalBackend, "append_metric_batch", spy)
    monkeypatch.setattr(writer, "_PENDING_LIMIT", 50)
    assert run_import(source, tmp_path / "bounded", batch_size=10) == 0
    assert records_of(tmp_path / "bounded") == records_of(tmp_path / "whole")
    assert sum(batches) == 600 and max(batches) <= 10 and len(batches) > 200  # by 10s per metric: 60


@pytest.mark.usefixtures("use_synthetic")
def test_the_live_progress_display_reports_runs_and_their_problems(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source = spec(tmp_path / "s.json", {"key": "a", "points": 30_000, "bad": [5, 9], "project": "p"},
                  {"key": "b", "points": 10, "project": "p"})
    assert run_import(source, tmp_path / "tree", progress="rich") == 0
    out = capsys.readouterr().out
    assert "⚠ p/a (run a): 30,000 points (1 metrics)" in out and "✓ p/b (run b)" in out
    assert f"{source}: record 5: bad record (skipped)" in out and f"{source}: record 9: bad record (skipped)" in out
