"""MLflow source for the import benchmark (loaded by bench/import.py): a SQLite store with N metric
points, and MLflow's own read of it (get_metric_history per key)."""

from __future__ import annotations

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
