"""Read MLflow runs, from a file store (``mlruns/``) or the SQLite backend, with MLflow's own client.

One MLflow run becomes one :class:`SourceRun` (``project`` = its MLflow experiment). Records per run:
every metric's full history (keys sorted), then the artifacts. History order is the store's own:

* file store: the lines of ``mlruns/<exp>/<run>/metrics/<key>`` in file order, i.e. insertion order;
  logging more only appends lines, so a grown run reads as the old sequence plus new points.
* SQLite: MLflow orders by ``(timestamp, step, value)`` (SQL has no insertion order to give); points
  logged later carry later timestamps, so they sort after the old ones (see ``_sql_history``).

mlflow is imported only when a source is read (``ml-dash[import-mlflow]``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ml_dash.errors import InvalidInputError
from ml_dash.importers.source import FileItem, Point, Problem, Record, SourceRun, require

__all__ = ["runs"]

_ALLOW = "MLFLOW_ALLOW_FILE_STORE"
# MLflow's own page size (mlflow.store.tracking.GET_METRIC_HISTORY_MAX_RESULTS): the same queries
# client.get_metric_history issues, without holding the whole history in memory.
_PAGE = 25_000
_STATUS = {"RUNNING": "RUNNING", "SCHEDULED": "RUNNING", "FINISHED": "COMPLETED", "FAILED": "FAILED",
           "KILLED": "CANCELLED"}
# Folders of an experiment directory that are not runs (mlflow FileStore.RESERVED_EXPERIMENT_FOLDERS).
_NOT_RUNS = {"tags", "datasets", "traces", "models"}
_UPLOADING = ".artifact.uploading."  # MLflow's in-progress upload files, hidden by its own listing
_HINT = "pass the mlruns/ directory (or its parent), the SQLite file (mlflow.db) or a sqlite:///path URI"


def _mlflow() -> Any:
    return require("mlflow", "import-mlflow", "MLflow runs")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Around each MLflow call (never across a yield): allow the file store, which MLflow 3 refuses
    by default, and keep MLflow's INFO lines and the library warnings below off the user's screen."""
    old_env = os.environ.get(_ALLOW)
    os.environ[_ALLOW] = "true"
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # SQLAlchemy 2.1 deprecates the "noload" strategy MLflow's SQL store still configures.
            warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated")
            # The file store's "maintenance mode" deprecation notices.
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow\.")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if old_env is None:
            os.environ.pop(_ALLOW, None)
        else:
            os.environ[_ALLOW] = old_env


# ---------------------------------------------------------------------------------------- the source


@dataclass(frozen=True, slots=True)
class _Store:
    uri: str  # tracking URI for MlflowClient
    path: Path  # the mlruns directory or the .db file
    files: bool  # file store (else SQLite)


def _is_mlruns(path: Path) -> bool:
    """A file store: experiment folders with a meta.yaml (the artifact-only mlruns/ next to an
    mlflow.db has none), or the .trash folder the file store keeps."""
    if not path.is_dir():
        return False
    return (path / ".trash").is_dir() or any((p / "meta.yaml").is_file() for p in path.iterdir())


def _sqlite_store(path: Path) -> _Store:
    """Check the file is an MLflow database before MLflow opens it: MlflowClient would otherwise
    create a fresh store (or add its tables to any SQLite file)."""
    if not path.is_file():
        raise InvalidInputError(f"MLflow database {path} does not exist", hint=_HINT)
    with path.open("rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise InvalidInputError(f"{path} is not an MLflow store (not a SQLite database)", hint=_HINT)
    try:
        with contextlib.closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise InvalidInputError(f"{path}: cannot read the SQLite database ({exc})", hint=_HINT) from None
    if not {"experiments", "runs", "metrics", "params", "tags"} <= tables:
        raise InvalidInputError(f"{path} is a SQLite database but not an MLflow store (no runs table)",
                                hint=_HINT)
    return _Store(f"sqlite:///{path.resolve()}", path, files=False)


def _locate(source: str | Path) -> _Store:
    text = str(source)
    if text.startswith("sqlite:"):
        if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
            raise InvalidInputError(f"{text!r} is not a SQLite file URI", hint=_HINT)
        return _sqlite_store(Path(text[len("sqlite:///"):]))
    if "://" in text:
        raise InvalidInputError(f"{text!r}: only MLflow file stores and SQLite databases can be imported",
                                hint=_HINT)
    path = Path(source).expanduser()
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist", hint=_HINT)
    if path.is_file():
        return _sqlite_store(path)
    for candidate in (path, path / "mlruns"):
        if _is_mlruns(candidate):
            return _Store(candidate.resolve().as_uri(), candidate, files=True)
    if (path / "mlflow.db").is_file():
        return _sqlite_store(path / "mlflow.db")
    raise InvalidInputError(f"{path} is not an MLflow store (no experiment folders with meta.yaml, "
                            "no mlruns/ or mlflow.db inside)", hint=_HINT)


def _open(store: _Store) -> Any:
    mlflow = _mlflow()
    with _quiet():
        client = mlflow.tracking.MlflowClient(tracking_uri=store.uri)
        try:
            _ = client._tracking_client.store  # builds the store now: schema check, file-store gate
        except mlflow.exceptions.MlflowException as exc:
            raise InvalidInputError(f"{store.path}: MLflow cannot open this store: {exc.message}",
                                    hint="an old database needs `mlflow db upgrade` (after a backup)") from None
    return client


# ------------------------------------------------------------------------------------------ the runs


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


@dataclass
class MlflowRun(SourceRun):
    client: Any = field(default=None, repr=False)
    run: Any = field(default=None, repr=False)  # mlflow.entities.Run (metrics not needed)
    store: _Store | None = field(default=None, repr=False)
    run_dir: Path | None = None  # file store only

    def params(self) -> dict[str, Any]:
        return dict(self.run.data.params)

    def records(self) -> Iterator[Record]:
        for key in self._metric_keys():
            yield from self._file_history(key) if self.run_dir else self._sql_history(key)
        yield from self._artifacts()

    def _metric_keys(self) -> list[str]:
        if self.run_dir is None:
            return sorted(self.run.data.metrics)
        # The metrics folder itself: also right when a corrupt file kept MLflow from reading the run.
        root = self.run_dir / "metrics"
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def _file_history(self, key: str) -> Iterator[Record]:
        """The metric file, streamed line by line through MLflow's own line parser: MLflow's
        get_metric_history reads the file whole (one metric's history in memory) and refuses the
        whole metric for one bad line; here a bad line alone is reported and skipped."""
        from mlflow.store.tracking.file_store import FileStore

        assert self.run_dir is not None
        path = self.run_dir / "metrics" / key
        parse, run_id = FileStore._get_metric_from_line, self.run.info.run_id
        try:
            with open(path, encoding="utf-8", errors="replace") as lines:
                for number, line in enumerate(lines, 1):
                    try:
                        metric = parse(run_id, key, line.rstrip("\n"), "")
                    except Exception as exc:  # whatever MLflow's parser raises for this line
                        yield Problem(str(path), f"line {number}", f"metric {key!r}: bad line {line[:80]!r} ({exc})")
                        continue
                    yield _point(key, metric)
        except OSError as exc:
            yield Problem(str(path), "", f"cannot read metric {key!r}: {exc}")

    def _sql_history(self, key: str) -> Iterator[Record]:
        """Paged like MlflowClient.get_metric_history, through the store it wraps (the client keeps no
        page API): at most _PAGE points in memory. MLflow's SQL store orders by (timestamp, step,
        value); a run that grew logs with later timestamps, so new points come after the old ones
        (not so for points logged with an explicit earlier timestamp, or in the same millisecond
        as the last old point with a lower step/value)."""
        run_id, token, done = self.run.info.run_id, None, 0
        backend = self.client._tracking_client.store
        while True:
            try:
                with _quiet():
                    page = backend.get_metric_history(run_id, key, max_results=_PAGE, page_token=token)
            except Exception as exc:  # a damaged database: report, go on with the next metric
                yield Problem(str(self.where), f"run {run_id} metric {key!r} point {done}",
                              f"cannot read the metric history: {exc}")
                return
            for metric in page:
                yield _point(key, metric)
            done += len(page)
            token = page.token
            if not token:
                return

    def _artifacts(self) -> Iterator[Record]:
        uri = self.run.info.artifact_uri
        local = _local_path(uri)
        if local is None:
            yield from self._download_all()
        elif local.is_dir():
            yield from _walk(local, "")
        elif self.run_dir is not None:
            # The file store creates the artifact folder with the run; its absence means lost files.
            yield Problem(str(local), "", "the run's artifact folder is missing")

    def _download_all(self) -> Iterator[Record]:
        """Artifacts in a remote store (s3://, mlflow-artifacts:, ...): MLflow downloads each file into a
        temporary folder that lives until this stream is finished or closed."""
        tmp = Path(tempfile.mkdtemp(prefix="ml-dash-mlflow-"))
        try:
            yield from self._download(None, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _download(self, path: str | None, tmp: Path) -> Iterator[Record]:
        run_id, uri = self.run.info.run_id, self.run.info.artifact_uri
        try:
            with _quiet():
                infos = sorted(self.client.list_artifacts(run_id, path), key=lambda info: info.path)
        except Exception as exc:
            yield Problem(uri, path or "", f"cannot list artifacts: {exc}")
            return
        for info in infos:
            if info.is_dir:
                yield from self._download(info.path, tmp)
                continue
            try:
                with _quiet():
                    local = Path(self.client.download_artifacts(run_id, info.path, str(tmp)))
            except Exception as exc:  # listed but cannot be fetched
                yield Problem(uri, info.path, f"cannot download the artifact: {exc}")
                continue
            yield _file_item(info.path, local)


def _point(key: str, metric: Any) -> Point:
    return Point(key, {"value": float(metric.value), "step": int(metric.step),
                       "timestamp": metric.timestamp / 1000.0})


def _file_item(relpath: str, local: Path) -> FileItem:
    parent, _, name = relpath.rpartition("/")
    return FileItem(prefix="/artifacts" + (f"/{parent}" if parent else ""), filename=name, path=local)


def _local_path(uri: str) -> Path | None:
    """The folder of a local artifact location (file:// URI or plain path), else None."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # plain path, C:\ on Windows
        return Path(uri)
    return None


def _walk(root: Path, rel: str) -> Iterator[Record]:
    """A local artifact folder, read directly in MLflow's order (sorted paths): MLflow's local listing
    fails for the whole folder on one dangling entry; here that entry alone becomes a Problem."""
    folder = root / rel if rel else root
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        yield Problem(str(folder), rel or ".", f"cannot list artifacts: {exc}")
        return
    for name in names:
        if name.startswith(_UPLOADING):
            continue
        relpath = f"{rel}/{name}" if rel else name
        path = folder / name
        if path.is_dir():
            yield from _walk(root, relpath)
        elif path.is_file():
            yield _file_item(relpath, path)
        else:
            yield Problem(str(path), relpath, "artifact is missing (dangling link, or removed while reading)")


# --------------------------------------------------------------------------------------- collecting


def _broken(folder: Path, exc: BaseException) -> Problem:
    """A run (or experiment) MLflow cannot read at all: reported instead of imported."""
    meta = folder / "meta.yaml"
    return Problem(str(meta), "meta.yaml", f"MLflow cannot read this run or experiment: {exc}")


def _sql_runs(client: Any, deleted: bool) -> Iterator[tuple[Any, list[Any]]]:
    """(experiment, its runs) from a SQL store, paged the way MLflow pages searches."""
    from mlflow.entities import ViewType

    view = ViewType.ALL if deleted else ViewType.ACTIVE_ONLY
    experiments, token = [], None
    while True:
        with _quiet():
            page = client.search_experiments(view_type=view, page_token=token)
        experiments += page
        if not (token := page.token):
            break
    for experiment in sorted(experiments, key=lambda e: (len(e.experiment_id), e.experiment_id)):
        found, token = [], None
        while True:
            with _quiet():
                page = client.search_runs([experiment.experiment_id], run_view_type=view,
                                          max_results=50_000, page_token=token)
            found += page
            if not (token := page.token):
                break
        yield experiment, found


def _file_run(client: Any, run_dir: Path) -> Any:
    """One run of the file store. MLflow's get_run reads every metric file to get the latest values
    and fails on one corrupt line; then read meta.yaml, params and tags alone (the metrics come from
    records(), which reports the bad line). Raises if meta.yaml itself is broken."""
    from mlflow.entities import Run, RunData

    try:
        with _quiet():
            return client.get_run(run_dir.name)
    except Exception:  # retried below without the metrics, which tells what is broken
        pass
    backend = client._tracking_client.store
    with _quiet():
        info = backend._get_run_info(run_dir.name)
        return Run(info, RunData(params=backend._get_all_params(info), tags=backend._get_all_tags(info)))


def _file_runs(client: Any, root: Path, deleted: bool) -> Iterator[tuple[Any, list[Any]]]:
    """(experiment, its runs and broken runs) from a file store, one folder at a time: MLflow's
    search_runs fails for a whole experiment on one broken run."""
    folders = sorted(p for p in root.iterdir() if (p / "meta.yaml").is_file())
    if deleted and (root / ".trash").is_dir():
        folders += sorted(p for p in (root / ".trash").iterdir() if (p / "meta.yaml").is_file())
    for folder in folders:
        try:
            with _quiet():
                experiment = client.get_experiment(folder.name)
        except Exception as exc:
            yield None, [_broken(folder, exc)]
            continue
        if experiment.lifecycle_stage != "active" and not deleted:
            continue
        found: list[Any] = []
        for run_dir in sorted(folder.iterdir()):
            # Folders without meta.yaml are not runs for MLflow either (e.g. artifacts kept here).
            if run_dir.name in _NOT_RUNS or not (run_dir / "meta.yaml").is_file():
                continue
            try:
                run = _file_run(client, run_dir)
            except Exception as exc:
                found.append(_broken(run_dir, exc))
                continue
            if deleted or run.info.lifecycle_stage == "active":
                found.append(run)
        yield experiment, found


def _source_run(client: Any, store: _Store, experiment: Any, run: Any, name: str) -> MlflowRun:
    info, tags = run.info, dict(run.data.tags)
    run_dir = store.path / info.experiment_id / info.run_id if store.files else None
    if run_dir is not None and not run_dir.is_dir():  # a run of a deleted experiment, in .trash
        run_dir = store.path / ".trash" / info.experiment_id / info.run_id
    return MlflowRun(
        key=info.run_id, name=name, where=str(run_dir or store.path), project=experiment.name,
        description=tags.get("mlflow.note.content"),
        tags=sorted(f"{k}={v}" for k, v in tags.items() if not k.startswith("mlflow.")),
        metadata={"status": _STATUS.get(info.status, "RUNNING"), "mlflow": {
            "run_id": info.run_id, "experiment_id": info.experiment_id, "experiment": experiment.name,
            "status": info.status, "start_time": _iso(info.start_time), "end_time": _iso(info.end_time),
            "lifecycle_stage": info.lifecycle_stage, "tags": tags, "artifact_uri": info.artifact_uri}},
        client=client, run=run, store=store, run_dir=run_dir)


def runs(source: str | Path, *, deleted: bool = False) -> Iterator[SourceRun | Problem]:
    """The runs of an MLflow store, experiment by experiment (by id), runs by start time.

    Only active experiments and runs unless ``deleted``. Run names repeated within an experiment
    get ``-<run id[:8]>`` on the later runs (by start time, then run id), so each name is unique."""
    store = _locate(source)
    client = _open(store)
    pairs = _file_runs(client, store.path, deleted) if store.files else _sql_runs(client, deleted)
    for experiment, found in pairs:
        seen: set[str] = set()
        for run in sorted(found, key=_order):
            if isinstance(run, Problem):
                yield run
                continue
            name = run.info.run_name or run.data.tags.get("mlflow.runName") or run.info.run_id
            if name in seen:
                name = f"{name}-{run.info.run_id[:8]}"
            seen.add(name)
            yield _source_run(client, store, experiment, run, name)


def _order(run: Any) -> tuple[int, str]:
    if isinstance(run, Problem):
        return (0, run.where)
    return (run.info.start_time or 0, run.info.run_id)
