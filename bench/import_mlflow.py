"""MLflow source for the import benchmark: a SQLite store with N metric points, MLflow's own read of it.

    python bench/import_mlflow.py --scalars 100000

prints the time to make the store, MLflow's read (get_metric_history per key), ml-dash's
``mlflow_source.runs()/records()`` over the same store, and the ratio ours/native.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

_KEYS = 10
_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def _client(uri: str) -> Any:  # an MlflowClient; mlflow is imported lazily
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def make_source(dest: Path, scalars: int) -> str:
    """A SQLite store at dest/mlflow.db: one run, ``scalars`` points over 10 keys, returned as the path."""
    from mlflow.entities import Metric

    dest.mkdir(parents=True, exist_ok=True)
    db = dest / "mlflow.db"
    client = _client(f"sqlite:///{db.resolve()}")
    experiment = client.create_experiment("bench", artifact_location=(dest / "artifacts").resolve().as_uri())
    run_id = client.create_run(experiment, run_name="bench").info.run_id
    start = int(time.time() * 1000)
    batch: list[Metric] = []
    for i in range(scalars):
        step = i // _KEYS
        batch.append(Metric(f"m{i % _KEYS}", step * 0.001, start + step, step))
        if len(batch) == _BATCH:
            client.log_batch(run_id, metrics=batch)
            batch = []
    if batch:
        client.log_batch(run_id, metrics=batch)
    client.set_terminated(run_id)
    return str(db)


def native_read(source: str) -> int:
    """Every point, read the way MLflow users do: get_metric_history per key of every run."""
    from mlflow.entities import ViewType

    client = _client(f"sqlite:///{Path(source).resolve()}")
    count = 0
    for experiment in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
        for run in client.search_runs([experiment.experiment_id]):
            for key in run.data.metrics:
                count += len(client.get_metric_history(run.info.run_id, key))
    return count


def ours_read(source: str) -> int:
    from ml_dash.importers import mlflow_source
    from ml_dash.importers.source import Point

    return sum(isinstance(r, Point) for run in mlflow_source.runs(source) for r in run.records())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scalars", type=int, default=100_000)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        t0 = time.perf_counter()
        source = make_source(Path(tmp), args.scalars)
        # Warm-up outside the timings: imports and MLflow's schema check of the store (cached per URI).
        _client(f"sqlite:///{Path(source).resolve()}").search_experiments()
        t1 = time.perf_counter()
        native = native_read(source)
        t2 = time.perf_counter()
        ours = ours_read(source)
        t3 = time.perf_counter()
    assert native == ours == args.scalars, (native, ours, args.scalars)
    print(f"make_source   {t1 - t0:8.2f} s  ({args.scalars} points)")
    print(f"native_read   {t2 - t1:8.2f} s  ({native / (t2 - t1):,.0f} points/s)")
    print(f"runs/records  {t3 - t2:8.2f} s  ({ours / (t3 - t2):,.0f} points/s)")
    print(f"ours/native   {(t3 - t2) / (t2 - t1):8.2f}")


if __name__ == "__main__":
    main()
