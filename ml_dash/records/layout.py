"""Every path of a local experiment tree, in one place.

Two layouts exist in the wild and both are read:

* **0.5.8** (``.ml-dash``): ``ROOT/[FOLDER/...]/PROJECT/EXPERIMENT/`` where the folder
  segments come from ``folder.lstrip("/")``. This is what our SDK writes.
* **prefix** (0.6+, ``.dash``): ``ROOT/<prefix>/`` with ``prefix = owner/project/[folders/]name``
  recorded in experiment.json, compact JSON and ``*.lock`` files beside the records.

Inside an experiment directory both use the same names::

    experiment.json  parameters.json
    logs/logs.jsonl  logs/.log_sequence
    metrics/<name>/data.jsonl  metrics/<name>/metadata.json
    files/.files_metadata.json  files/<path without leading "/">/<file id>/<filename>
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ml_dash.errors import InvalidInputError

__all__ = [
    "DEFAULT_ROOT",
    "EXPERIMENT_FILE",
    "FILES_DIR",
    "FILES_MANIFEST",
    "LOCK_SUFFIX",
    "LOGS_DIR",
    "LOGS_FILE",
    "LOG_SEQUENCE_FILE",
    "METRICS_DIR",
    "METRIC_DATA_FILE",
    "METRIC_METADATA_FILE",
    "PARAMETERS_FILE",
    "ExperimentPaths",
    "blob_relpath",
    "check_name",
    "experiment_dir",
    "folder_parts",
    "metric_dir_name",
]

DEFAULT_ROOT = ".ml-dash"
EXPERIMENT_FILE = "experiment.json"
PARAMETERS_FILE = "parameters.json"
LOGS_DIR = "logs"
LOGS_FILE = "logs.jsonl"
LOG_SEQUENCE_FILE = ".log_sequence"
METRICS_DIR = "metrics"
METRIC_DATA_FILE = "data.jsonl"
METRIC_METADATA_FILE = "metadata.json"
FILES_DIR = "files"
FILES_MANIFEST = ".files_metadata.json"
LOCK_SUFFIX = ".lock"  # prefix layout only: .experiment.lock, logs/.log_sequence.lock, ...


def check_name(value: str, what: str) -> str:
    """A project or experiment name is one path segment: not empty, no ``/``, not ``.``/``..``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string, got {value!r}",
                                hint=f"give the {what} as a string such as 'resnet-baseline'")
    if "/" in value or "\\" in value or value in (".", "..") or "\x00" in value:
        raise InvalidInputError(
            f"{what} {value!r} is not a single path segment",
            hint=f"use folder= (or prefix=) for hierarchy; the {what} itself cannot contain '/' or be '.'/'..'",
        )
    return value


def _relative_segments(value: str, what: str) -> tuple[str, ...]:
    """Split a ``/``-separated logical path into safe segments (no ``..``, no empties kept)."""
    parts = tuple(p for p in value.replace("\\", "/").split("/") if p)
    for part in parts:
        if part in (".", "..") or "\x00" in part:
            raise InvalidInputError(
                f"{what} {value!r} would leave the experiment directory",
                hint="use plain names separated by '/', without '.' or '..'",
            )
    return parts


def folder_parts(folder: str | None) -> tuple[str, ...]:
    """``"/sweeps/2025"`` → ``("sweeps", "2025")``; None or ``"/"`` → ``()``."""
    if not folder:
        return ()
    return _relative_segments(folder, "folder")


def experiment_dir(root: Path, project: str, name: str, folder: str | None = None) -> Path:
    """``ROOT/[folder/]project/name`` exactly as 0.5.8 lays it out."""
    check_name(project, "project")
    check_name(name, "experiment name")
    return root.joinpath(*folder_parts(folder), project, name)


def metric_dir_name(name: str | None) -> str:
    """Directory of a metric below ``metrics/``: the name itself, ``"None"`` for unnamed.

    Names such as ``train/loss`` become nested directories, as in 0.5.8.
    """
    if name is None:
        return "None"
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"metric name must be a non-empty string or None, got {name!r}",
                                hint="name the metric, e.g. exp.metrics('loss'), or leave the name out")
    return "/".join(_relative_segments(name, "metric name"))


def blob_relpath(path: str | None, file_id: str, filename: str) -> PurePosixPath:
    """``files/``-relative location of a stored file: ``<path>/<id>/<filename>``.

    Refuses anything that would leave ``files/`` (``..``, separators in the id or name).
    """
    for value, what in ((file_id, "file id"), (filename, "filename")):
        if not value or "/" in value or "\\" in value or value in (".", "..") or "\x00" in value:
            raise InvalidInputError(
                f"{what} {value!r} is not a plain file name",
                hint="a stored file's id and name cannot contain '/' or be '.'/'..'",
            )
    return PurePosixPath(*_relative_segments(path or "/", "file path"), file_id, filename)


@dataclass(frozen=True)
class ExperimentPaths:
    """The paths of one experiment directory (either layout)."""

    dir: Path

    @property
    def experiment_json(self) -> Path:
        return self.dir / EXPERIMENT_FILE

    @property
    def parameters_json(self) -> Path:
        return self.dir / PARAMETERS_FILE

    @property
    def logs_dir(self) -> Path:
        return self.dir / LOGS_DIR

    @property
    def logs_jsonl(self) -> Path:
        return self.dir / LOGS_DIR / LOGS_FILE

    @property
    def log_sequence(self) -> Path:
        return self.dir / LOGS_DIR / LOG_SEQUENCE_FILE

    @property
    def metrics_dir(self) -> Path:
        return self.dir / METRICS_DIR

    def metric_dir(self, name: str | None) -> Path:
        return self.dir / METRICS_DIR / metric_dir_name(name)

    @property
    def files_dir(self) -> Path:
        return self.dir / FILES_DIR

    @property
    def files_manifest(self) -> Path:
        return self.dir / FILES_DIR / FILES_MANIFEST

    def blob(self, path: str | None, file_id: str, filename: str) -> Path:
        return self.files_dir / blob_relpath(path, file_id, filename)
