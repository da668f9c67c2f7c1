"""``ml_dash.storage.LocalStorage``: ml-dash 0.5.8's local storage class, on our local backend.

Scripts written for 0.5.8 call it directly (``LocalStorage(root_path)`` and then
``create_experiment``, ``write_log``, ``append_to_metric``, ``list_files``, ...) and it is
what 0.5.8's ``ExperimentUploader`` takes. Every method has 0.5.8's signature and returns
0.5.8's shapes; the writing is done by :class:`ml_dash.sdk.backends.local.LocalBackend`,
the backend of ``Experiment(local_path=...)``, so the tree is the same record for record,
with its guarantees (atomic JSON, whole JSONL lines under a lock, several processes at once).

Differences from 0.5.8, all where 0.5.8 lost or hid data:

* ``.log_sequence`` and each metric's ``metadata.json`` are refreshed about once a second
  and on :meth:`flush`/:meth:`close`/exit, not after every record (the JSONL files are
  always complete, and the counters are derived from them);
* ``write_file`` computes the checksum and size from the file it copies rather than
  trusting the ones passed in;
* ``write_metric_data`` (never called by 0.5.8 itself; it wrote ``metrics/NAME.jsonl``,
  a file nothing reads or uploads) appends a point to the metric ``NAME`` like
  ``append_to_metric``; a value that is not a dict is stored as ``{"value": data}``;
* an experiment that does not exist yet is an error naming it, instead of a half-written
  directory; not found is :class:`NotFoundError`, both a ``FileNotFoundError`` (as 0.5.8
  raised) and an :class:`ml_dash.InvalidInputError`;
* among several experiments with the same project and name in different folders, the
  first in sorted order is used (0.5.8 took whichever ``rglob`` met first).
"""

from __future__ import annotations

import atexit
import glob
import json
import threading
import weakref
from pathlib import Path
from typing import Any

from ml_dash.errors import InvalidInputError, RecordError
from ml_dash.records.layout import EXPERIMENT_FILE, ExperimentPaths, experiment_dir
from ml_dash.sdk.backends.base import ExperimentSpec
from ml_dash.sdk.backends.local import LocalBackend

__all__ = ["LocalStorage", "NotFoundError"]


class NotFoundError(InvalidInputError, FileNotFoundError):
    """An experiment, file or metric that is not there (``FileNotFoundError`` in 0.5.8)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        InvalidInputError.__init__(self, message, hint=hint)


_live: weakref.WeakSet[LocalStorage] = weakref.WeakSet()
_atexit_lock = threading.Lock()
_atexit_registered = False


def _flush_all_at_exit() -> None:
    for storage in list(_live):
        try:
            storage.flush()
        except Exception:  # noqa: BLE001 # pragma: no cover - best effort during interpreter shutdown
            pass


class LocalStorage:
    """Local filesystem storage below ``root_path`` (created at once, as 0.5.8 did)."""

    def __init__(self, root_path: Path | str) -> None:
        global _atexit_registered
        self.root_path = Path(root_path)
        self.root_path.mkdir(parents=True, exist_ok=True)
        self._backends: dict[Path, LocalBackend] = {}
        self._named: dict[tuple[str, str], Path] = {}
        self._lock = threading.RLock()
        _live.add(self)
        with _atexit_lock:
            if not _atexit_registered:
                atexit.register(_flush_all_at_exit)
                _atexit_registered = True

    # --- experiments ---------------------------------------------------------------------------
    def create_experiment(self, project: str, name: str, description: str | None = None,
                          tags: list[str] | None = None, bindrs: list[str] | None = None,
                          folder: str | None = None, metadata: dict[str, Any] | None = None) -> Path:
        """Create (or update, keeping what is not given) ``ROOT/[folder/]project/name``; its path."""
        backend = LocalBackend(self.root_path)
        backend.open(ExperimentSpec(name=name, project=project, folder=folder, description=description,
                                    tags=tags, bindrs=bindrs, metadata=metadata))
        assert backend.paths is not None
        directory = backend.paths.dir
        with self._lock:
            old = self._backends.pop(directory, None)
            if old is not None:
                old.close("COMPLETED")
            self._backends[directory] = backend
            self._named[(project, name)] = directory
        return directory

    def _get_experiment_dir(self, project: str, experiment: str, folder: str | None = None) -> Path:
        """Where ``project/experiment`` lives: ``ROOT/[folder/]project/experiment`` (as 0.5.8)."""
        if folder is not None:
            return experiment_dir(self.root_path, project, experiment, folder)
        with self._lock:
            known = self._named.get((project, experiment))
        if known is not None:
            return known
        default = experiment_dir(self.root_path, project, experiment)
        pattern = f"**/{glob.escape(project)}/{glob.escape(experiment)}/{EXPERIMENT_FILE}"
        found = sorted(p.parent for p in self.root_path.glob(pattern) if p.parent != default)
        for candidate in [*found, default]:
            exp_json = candidate / EXPERIMENT_FILE
            if not exp_json.is_file():
                continue
            try:
                recorded = json.loads(exp_json.read_text()).get("folder")
            except (OSError, ValueError, AttributeError):
                recorded = None
            if recorded:
                return experiment_dir(self.root_path, project, experiment, recorded)
            return candidate
        return default

    def _backend(self, project: str, experiment: str) -> LocalBackend:
        """The backend writing ``project/experiment``, attached to the existing directory
        without touching experiment.json (reading must not change the tree)."""
        directory = self._get_experiment_dir(project, experiment)
        with self._lock:
            backend = self._backends.get(directory)
            if backend is not None:
                return backend
            exp_json = directory / EXPERIMENT_FILE
            if not exp_json.is_file():
                raise NotFoundError(f"experiment {project}/{experiment} not found below {self.root_path}",
                                    hint="create it first with create_experiment(project, name)")
            try:
                folder = json.loads(exp_json.read_text()).get("folder")
            except (OSError, ValueError, AttributeError):
                folder = None
            backend = LocalBackend(self.root_path)
            backend.paths = ExperimentPaths(directory)
            backend._spec = ExperimentSpec(name=experiment, project=project, folder=folder)
            self._backends[directory] = backend
            self._named[(project, experiment)] = directory
            return backend

    def flush(self) -> None:
        """Bring every side file (``.log_sequence``, ``metadata.json``) up to date now."""
        with self._lock:
            backends = list(self._backends.values())
        for backend in backends:
            backend.flush()

    def close(self) -> None:
        """Flush and release the open files (the storage can still be used afterwards)."""
        with self._lock:
            backends = list(self._backends.values())
            self._backends.clear()
            self._named.clear()
        for backend in backends:
            backend.close("COMPLETED")

    def __enter__(self) -> LocalStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- logs and parameters ---------------------------------------------------------------------
    def write_log(self, project: str, experiment: str, message: str, level: str, timestamp: str,
                  metadata: dict[str, Any] | None = None) -> None:
        """Append one line to ``logs/logs.jsonl`` (the next ``sequenceNumber``)."""
        self._backend(project, experiment).write_log(level, message, metadata or None, timestamp)

    def write_metric_data(self, project: str, experiment: str, metric_name: str, data: Any) -> None:
        """0.5.8's unused writer of ``metrics/NAME.jsonl``: here a point of metric ``NAME``."""
        point = data if isinstance(data, dict) else {"value": data}
        self.append_to_metric(project, experiment, metric_name, point)

    def write_parameters(self, project: str, experiment: str, data: dict[str, Any]) -> None:
        """Merge already-flattened parameters into ``parameters.json`` (version + 1)."""
        self._backend(project, experiment).set_params(dict(data))

    def read_parameters(self, project: str, experiment: str) -> dict[str, Any] | None:
        """The flattened parameters, or None when there are none (or the file is damaged)."""
        backend = self._backend(project, experiment)
        assert backend.paths is not None
        if not backend.paths.parameters_json.is_file():
            return None
        try:
            return backend.get_params()
        except RecordError:
            return None

    # --- files -------------------------------------------------------------------------------------
    def write_file(self, project: str, experiment: str, file_path: str, prefix: str, filename: str,
                   description: str | None, tags: list[str] | None, metadata: dict[str, Any] | None,
                   checksum: str, content_type: str, size_bytes: int) -> dict[str, Any]:
        """Copy ``file_path`` to ``files/<prefix>/<id>/<filename>``; the manifest entry."""
        source = Path(file_path)
        if not source.is_file():
            raise NotFoundError(f"file not found: {file_path}", hint="check the path (relative to the working directory)")
        return self._backend(project, experiment).save_file(source, prefix, filename, description, tags,
                                                            metadata, content_type)

    def _live_entry(self, backend: LocalBackend, file_id: str) -> dict[str, Any]:
        for entry in backend.list_files(None, None):
            if entry["id"] == file_id:
                return entry
        raise NotFoundError(f"File {file_id} not found", hint="list_files(project, experiment) lists the files "
                                                              "that are there (deleted ones are not)")

    def list_files(self, project: str, experiment: str, prefix: str | None = None,
                   tags: list[str] | None = None) -> list[dict[str, Any]]:
        """Manifest entries of the files not deleted, filtered by prefix and any of ``tags``."""
        try:
            return self._backend(project, experiment).list_files(prefix, tags)
        except RecordError:
            return []  # 0.5.8: an unreadable manifest lists nothing

    def read_file(self, project: str, experiment: str, file_id: str, dest_path: str | None = None) -> str:
        """Copy a stored file to ``dest_path`` (default: its name) and verify its sha256."""
        backend = self._backend(project, experiment)
        entry = self._live_entry(backend, file_id)
        assert backend.paths is not None
        if not backend.paths.blob(entry["path"], file_id, entry["filename"]).is_file():
            raise NotFoundError(f"File {file_id} not found on disk",
                                hint="the local tree was changed by hand; restore the file, or save it again")
        return backend.download_file(file_id, dest_path)

    def delete_file(self, project: str, experiment: str, file_id: str) -> dict[str, Any]:
        """Soft delete (``deletedAt`` set, the blob stays): ``{"id", "deletedAt"}``."""
        backend = self._backend(project, experiment)
        self._live_entry(backend, file_id)
        return backend.delete_file(file_id)

    def update_file_metadata(self, project: str, experiment: str, file_id: str, description: str | None = None,
                             tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
                             ) -> dict[str, Any]:
        """Replace the description, tags or metadata that are given; the updated entry."""
        backend = self._backend(project, experiment)
        self._live_entry(backend, file_id)
        return backend.update_file(file_id, description, tags, metadata)

    # --- metrics -----------------------------------------------------------------------------------
    def append_to_metric(self, project: str, experiment: str, metric_name: str | None, data: dict[str, Any],
                         description: str | None = None, tags: list[str] | None = None,
                         metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """One point: ``{"metricId", "index", "bufferedDataPoints", "chunkSize"}``."""
        return self._backend(project, experiment).append_metric(metric_name, data, description, tags, metadata)

    def append_batch_to_metric(self, project: str, experiment: str, metric_name: str | None,
                               data_points: list[dict[str, Any]], description: str | None = None,
                               tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
                               ) -> dict[str, Any]:
        """Several points: ``{"metricId", "startIndex", "endIndex", "count", ...}``."""
        return self._backend(project, experiment).append_metric_batch(metric_name, list(data_points), description,
                                                                      tags, metadata)

    def read_metric_data(self, project: str, experiment: str, metric_name: str, start_index: int = 0,
                         limit: int = 1000) -> dict[str, Any]:
        """Points ``start_index`` .. ``start_index + limit - 1``: ``{"data", ..., "hasMore"}``."""
        return self._backend(project, experiment).read_metric(metric_name, start_index, limit)

    def get_metric_stats(self, project: str, experiment: str, metric_name: str) -> dict[str, Any]:
        """Counts and metadata of one metric."""
        backend = self._backend(project, experiment)
        try:
            return backend.metric_stats(metric_name)
        except InvalidInputError:
            assert backend.paths is not None
            if not (backend.paths.metric_dir(metric_name) / "metadata.json").is_file():
                raise NotFoundError(f"Metric {metric_name} not found",
                                    hint="list_metrics(project, experiment) lists the metrics; append a point first") from None
            raise

    def list_metrics(self, project: str, experiment: str) -> list[dict[str, Any]]:
        """A summary of every metric of the experiment."""
        return self._backend(project, experiment).list_metrics()
