"""ml_dash.importers.mlflow_source against real MLflow stores (file store and SQLite) made by mlflow."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml_dash.errors import InvalidInputError
from ml_dash.importers.source import FileItem, MissingExtraError, Point, Problem, SourceRun

mlflow = pytest.importorskip("mlflow")

from ml_dash.importers import mlflow_source  # noqa: E402

pytestmark = [
    # Raised while the tests *write* stores with mlflow (the reader silences them itself): SQLAlchemy 2.1
    # deprecates the "noload" strategy MLflow's SQL store configures at import.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
    pytest.mark.filterwarnings("ignore::FutureWarning:mlflow"),
]


@pytest.fixture(scope="module", autouse=True)
def _allow_file_store() -> Iterator[None]:
    """MLflow 3 refuses to write or read a file store without it (the reader sets it for itself)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        yield


def _log_runs(uri: str, artifacts: Path) -> None:
    """Two experiments; runs FINISHED, FAILED, KILLED; several points per step; a repeated name."""
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("vision")
    with mlflow.start_run(run_name="resnet") as run:
        mlflow.log_params({"lr": 0.1, "opt": "sgd", "layers": 50})
        mlflow.set_tags({"team": "cv", "mlflow.note.content": "first try"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metric("loss", 2.0 / (step + 1), step=step)  # a second point at the same step
        mlflow.log_metric("acc", 0.5, step=0, timestamp=1_700_000_000_123)
        client = mlflow.MlflowClient()
        client.log_batch(run.info.run_id, metrics=[
            mlflow.entities.Metric("lr/sched", 0.01 * i, 1_700_000_001_000 + i, i) for i in range(20)])
        mlflow.log_text("hello", "notes/readme.txt")
        (artifacts / "weights.bin").write_bytes(bytes(range(256)))
        mlflow.log_artifact(str(artifacts / "weights.bin"))
        mlflow.log_artifact(str(artifacts / "weights.bin"), artifact_path="ckpt/epoch1")
    with mlflow.start_run(run_name="resnet"):  # same name: the importer makes it unique
        mlflow.log_metric("loss", 3.0)
        mlflow.end_run(status="FAILED")
    mlflow.set_experiment("nlp")
    with mlflow.start_run(run_name="bert"):
        mlflow.log_param("tokens", "wordpiece")
        mlflow.log_metric("ppl", 12.5, step=3)
        mlflow.end_run(status="KILLED")


@pytest.fixture(scope="module")
def file_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fs")
    try:
        _log_runs((root / "mlruns").as_uri(), root)
    finally:
        mlflow.set_tracking_uri(None)
    yield root / "mlruns"


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Made once (migrations take seconds); tests that change it use a copy (``sqlite_copy``)."""
    root = tmp_path_factory.mktemp("db")
    cwd = os.getcwd()
    os.chdir(root)  # the SQLite store puts artifacts in ./mlruns
    try:
        _log_runs(f"sqlite:///{root / 'mlflow.db'}", root)
    finally:
        os.chdir(cwd)
        mlflow.set_tracking_uri(None)
    yield root / "mlflow.db"


@pytest.fixture
def sqlite_copy(sqlite_store: Path, tmp_path: Path) -> Path:
    """The module's SQLite store with its artifacts, copied, the copy's runs pointing at the copy's
    artifacts (MLflow keeps absolute artifact locations)."""
    shutil.copytree(sqlite_store.parent, tmp_path, dirs_exist_ok=True)
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        for table in ("runs", "experiments"):
            column = "artifact_uri" if table == "runs" else "artifact_location"
            db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)",
                       (str(sqlite_store.parent), str(tmp_path)))
    db.close()
    return tmp_path / "mlflow.db"


@pytest.fixture
def file_copy(file_store: Path, tmp_path: Path) -> Path:
    """The module's file store, copied, its meta.yaml files pointing at the copy."""
    copy = tmp_path / "mlruns"
    shutil.copytree(file_store, copy)
    for meta in copy.rglob("meta.yaml"):
        meta.write_text(meta.read_text().replace(file_store.as_uri(), copy.as_uri()))
    return copy


def _client(source: Path) -> Any:
    uri = source.as_uri() if source.is_dir() else f"sqlite:///{source}"
    return mlflow.MlflowClient(tracking_uri=uri)


def _read(source: str | Path) -> dict[str, tuple[SourceRun, list[Any]]]:
    return {run.key: (run, list(run.records())) for run in mlflow_source.runs(source)
            if not isinstance(run, Problem)}


def _check_against_mlflow(source: Path) -> None:
    read = _read(source)
    client = _client(source)
    expected = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert sorted(read) == sorted(r.info.run_id for r in expected)
    status = {"FINISHED": "COMPLETED", "FAILED": "FAILED", "KILLED": "CANCELLED"}
    for mr in expected:
        run, records = read[mr.info.run_id]
        info = mr.info
        assert run.project == client.get_experiment(info.experiment_id).name
        assert run.params() == mr.data.params
        assert run.metadata["status"] == status[info.status]
        assert run.metadata["mlflow"]["status"] == info.status
        assert run.metadata["mlflow"]["tags"] == mr.data.tags
        assert run.tags == sorted(f"{k}={v}" for k, v in mr.data.tags.items() if not k.startswith("mlflow."))
        assert run.description == mr.data.tags.get("mlflow.note.content")
        points = [r for r in records if isinstance(r, Point)]
        want = [Point(key, {"value": m.value, "step": m.step, "timestamp": m.timestamp / 1000})
                for key in sorted(mr.data.metrics) for m in client.get_metric_history(info.run_id, key)]
        assert points == want
        files = {f"{r.prefix}/{r.filename}": r.path.read_bytes() for r in records if isinstance(r, FileItem)}
        assert files == _artifacts(client, info.run_id)
        assert not [r for r in records if isinstance(r, Problem)]
    names = sorted((run.project, run.name) for run, _ in read.values())
    assert [n for _, n in names if n.startswith("resnet")][0] == "resnet"
    assert len(set(names)) == len(names) == 3


def _artifacts(client: Any, run_id: str, path: str | None = None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            out |= _artifacts(client, run_id, info.path)
        else:
            # Into a directory we remove: without dst_path MLflow leaves a mkdtemp() behind in /tmp.
            with tempfile.TemporaryDirectory() as dst:
                local = client.download_artifacts(run_id, info.path, dst)
                out[f"/artifacts/{info.path}"] = Path(local).read_bytes()
    return out


def test_file_store_matches_mlflow(file_store: Path) -> None:
    _check_against_mlflow(file_store)
    assert _read(file_store.parent).keys() == _read(file_store).keys()  # the parent of mlruns/ too
    run = next(r for r, _ in _read(file_store).values() if r.name == "resnet")
    assert run.where.startswith(str(file_store)) and run.metadata["mlflow"]["start_time"].endswith("Z")


def test_sqlite_matches_mlflow(sqlite_store: Path) -> None:
    _check_against_mlflow(sqlite_store)
    assert _read(f"sqlite:///{sqlite_store}").keys() == _read(sqlite_store.parent).keys()


def test_several_points_per_step_are_all_kept(sqlite_store: Path) -> None:
    (run, records), = [v for v in _read(sqlite_store).values() if v[0].name == "resnet"]
    loss = [r.data for r in records if isinstance(r, Point) and r.metric == "loss"]
    assert [d["step"] for d in loss] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert {r.metric for r in records if isinstance(r, Point)} == {"loss", "acc", "lr/sched"}


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_grown_run_reads_old_sequence_then_new(kind: str, request: pytest.FixtureRequest) -> None:
    source: Path = request.getfixturevalue(f"{kind}_copy")
    before = _read(source)
    key = next(k for k, (r, _) in before.items() if r.name == "resnet")
    client = _client(source)
    for step in range(5, 8):  # more points, several per step, as a resumed run would log them
        client.log_metric(key, "loss", 0.1 * step, step=step)
        client.log_metric(key, "loss", 0.2 * step, step=step)
    client.log_metric(key, "new", 1.0, step=0)
    after = _read(source)
    assert after.keys() == before.keys()
    for run_key, (_, old) in before.items():
        new = after[run_key][1]
        for metric in {r.metric for r in new if isinstance(r, Point)}:
            old_points = [r for r in old if isinstance(r, Point) and r.metric == metric]
            new_points = [r for r in new if isinstance(r, Point) and r.metric == metric]
            assert new_points[: len(old_points)] == old_points
    grown = [r.data["step"] for r in after[key][1] if isinstance(r, Point) and r.metric == "loss"]
    assert grown[-6:] == [5, 5, 6, 6, 7, 7]
    assert [_points(after[k][1]) for k in after] == [_points(v[1]) for v in _read(source).values()]


def _points(records: list[Any]) -> list[Any]:
    return [(r.metric, r.data) for r in records if isinstance(r, Point)]


def test_corrupt_metric_line_is_a_problem_and_the_rest_is_read(file_copy: Path) -> None:
    before = _read(file_copy)
    key, (run, _) = next((k, v) for k, v in before.items() if v[0].name == "resnet")
    loss = Path(run.where) / "metrics" / "loss"
    lines = loss.read_text().splitlines()
    lines[2] = "garbage in this line"
    loss.write_text("\n".join(lines) + "\n")
    after = _read(file_copy)
    assert after.keys() == before.keys()  # the run and its neighbours are still read
    _, records = after[key]
    problems = [r for r in records if isinstance(r, Problem)]
    assert len(problems) == 1 and problems[0].where == str(loss) and problems[0].position == "line 3"
    old_loss = [r for r in before[key][1] if isinstance(r, Point) and r.metric == "loss"]
    assert [r for r in records if isinstance(r, Point) and r.metric == "loss"] == old_loss[:2] + old_loss[3:]
    assert _points(records) != [] and after[key][0].params() == run.params()
    assert [r for r in records if isinstance(r, FileItem)] == [r for r in before[key][1] if isinstance(r, FileItem)]


def test_broken_meta_yaml_is_a_problem_and_other_runs_are_read(file_copy: Path) -> None:
    before = _read(file_copy)
    key, (run, _) = next((k, v) for k, v in before.items() if v[0].name == "bert")
    (Path(run.where) / "meta.yaml").write_text("{{{: not yaml")
    after = _read(file_copy)
    assert after.keys() == before.keys() - {key}
    problems = [p for p in mlflow_source.runs(file_copy) if isinstance(p, Problem)]
    assert [(p.where, p.position) for p in problems] == [(str(Path(run.where) / "meta.yaml"), "meta.yaml")]
    assert "MLflow cannot read this run or experiment" in problems[0].message
    for other in before.keys() - {key}:
        assert _points(after[other][1]) == _points(before[other][1])


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_missing_artifact_is_a_problem(kind: str, request: pytest.FixtureRequest) -> None:
    source: Path = request.getfixturevalue(f"{kind}_copy")
    (run, records), = [v for v in _read(source).values() if v[0].name == "resnet"]
    files = [r for r in records if isinstance(r, FileItem)]
    assert all(f.path.is_relative_to(source.parent) for f in files) and len(files) == 3
    gone = next(f.path for f in files if f.filename == "readme.txt")
    gone.unlink()
    gone.symlink_to(gone.parent / "nowhere")  # a dangling entry, listed but unreadable
    records = list(run.records())
    problems = [r for r in records if isinstance(r, Problem)]
    assert [(p.where, p.position) for p in problems] == [(str(gone), "notes/readme.txt")]
    assert [r for r in records if isinstance(r, FileItem)] == [f for f in files if f.path != gone]
    assert _points(records) == _points(list(run.records()))


def test_missing_artifact_folder_of_a_file_store_run(file_copy: Path) -> None:
    (run, _), = [v for v in _read(file_copy).values() if v[0].name == "resnet"]
    shutil.rmtree(Path(run.where) / "artifacts")
    problems = [r for r in run.records() if isinstance(r, Problem)]
    assert len(problems) == 1 and "artifact folder is missing" in problems[0].message


def test_remote_artifact_store_is_downloaded(file_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Non-local artifact URIs go through MlflowClient.download_artifacts (a file:// store stands in)."""
    local = _read(file_store)
    monkeypatch.setattr(mlflow_source, "_local_path", lambda uri: None)
    for key, (run, _) in _read(file_store).items():
        got = {(r.prefix, r.filename): r.path.read_bytes() for r in run.records() if isinstance(r, FileItem)}
        want = {(r.prefix, r.filename): r.path.read_bytes() for r in local[key][1] if isinstance(r, FileItem)}
        assert got == want


def test_deleted_runs_only_on_request(sqlite_copy: Path) -> None:
    key = next(k for k, (r, _) in _read(sqlite_copy).items() if r.name == "bert")
    _client(sqlite_copy).delete_run(key)
    assert key not in _read(sqlite_copy)
    deleted = {r.key: r for r in mlflow_source.runs(sqlite_copy, deleted=True)}
    assert deleted[key].metadata["mlflow"]["lifecycle_stage"] == "deleted"


def test_missing_library_names_the_extra(file_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError) as info:
        list(mlflow_source.runs(file_store))
    assert "ml-dash[import-mlflow]" in str(info.value)


def test_importing_the_reader_does_not_import_mlflow() -> None:
    import subprocess

    code = "import sys, ml_dash.importers.mlflow_source; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("make", ["missing", "empty_dir", "text_file", "other_sqlite", "http"])
def test_not_a_store(make: str, tmp_path: Path) -> None:
    source: str | Path = tmp_path / "x"
    if make == "empty_dir":
        tmp_path.joinpath("x").mkdir()
    elif make == "text_file":
        tmp_path.joinpath("x").write_text("hello")
    elif make == "other_sqlite":
        sqlite3.connect(tmp_path / "x").execute("CREATE TABLE t (a)").connection.close()
    elif make == "http":
        source = "http://localhost:5000"
    with pytest.raises(InvalidInputError) as info:
        list(mlflow_source.runs(source))
    assert info.value.hint
    if make == "other_sqlite":  # MLflow was not let loose on it (it would add its tables)
        tables = sqlite3.connect(tmp_path / "x").execute("SELECT name FROM sqlite_master").fetchall()
        assert tables == [("t",)]
