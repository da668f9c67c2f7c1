"""``ml_dash.cli_commands.upload``: the Python API of ml-dash 0.5.8's ``ml-dash upload``.

The names 0.5.8 exposes here, with its signatures, attributes and return shapes, as thin
adapters over our pipeline (``ml_dash.upload``: discover → validate → plan → engine,
and its state file); nothing here uploads on its own:

* ``discover_experiments(local_path, project_filter=None, experiment_filter=None)`` →
  ``[ExperimentInfo]`` (``project``, ``experiment``, ``path``, ``folder``, ``has_logs``,
  ``has_params``, ``metric_names``, ``file_count``, ``estimated_size``), sorted.
* ``ExperimentValidator(strict=False).validate_experiment(info)`` → a result with
  ``is_valid``, ``errors``, ``warnings`` and ``valid_data`` (``metadata``, ``parameters``).
* ``ExperimentUploader(local_storage, remote_client, batch_size=100, skip_logs=False, ...,
  verbose=False, progress=None, max_concurrent_metrics=5).upload_experiment(info, result)``
  → ``UploadResult`` (``experiment``, ``success``, ``uploaded``, ``failed``, ``errors``,
  ``bytes_uploaded``). It runs our engine: records the server already has are not sent
  again, and ``success`` is False when any part failed (0.5.8 still said True when metrics
  or files had failed, and only listed them in ``failed``).
* ``UploadState(local_path, remote_url, ...)`` with ``to_dict``/``from_dict``/``save(path)``/
  ``load(path)``: the ``--state-file`` document, written atomically by our state module.
* ``generate_api_key_from_username(user_name)``: the 0.5.x username token (HS256 JWT).
* ``cmd_upload(args)`` and ``add_parser(subparsers)``.

``cmd_upload(args)`` takes the ``argparse.Namespace`` of the seed (``path``, ``remote``,
``api_key``, ``user_name``, ``project``, ``experiment``, ``dry_run``, ``strict``, ``verbose``,
``batch_size``, ``skip_*``, ``resume``, ``state_file``) or of 0.5.8's own parser (``username``
instead of ``user_name``), runs the same pipeline as ``ml-dash upload`` and returns the
exit code. The namespace is the command-line layer, above config.json, the environment
and profiles. An attribute that is missing, ``None`` or ``False`` is "not given" and left
to those layers; so are ``path="./.ml-dash"`` and ``state_file=".ml-dash-upload-state.json"``,
which are our defaults too.

``batch_size``: a number in the namespace is always used, 100 included. 0.5.8's parser
always filled in 100, so a namespace cannot tell a default from a choice, and silently
replacing what a script asked for is worse than sending smaller requests. Pass
``batch_size=None`` (or ``"auto"``) for our automatic sizes (1000 log lines and 10000
metric points per request); :func:`add_parser` leaves it ``None`` unless ``--batch-size``
is given.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_dash.client import RemoteClient
from ml_dash.config.overrides import Override, quote
from ml_dash.records.identity import ExperimentIdentity
from ml_dash.records.layout import FILES_MANIFEST, folder_parts
from ml_dash.storage import LocalStorage
from ml_dash.upload.discover import DiscoveredExperiment, discover
from ml_dash.upload.validate import CheckedExperiment, ValidationResult
from ml_dash.upload.validate import ExperimentValidator as _Validator

__all__ = ["DiscoveredExperiment", "ExperimentInfo", "ExperimentUploader", "ExperimentValidator", "LocalStorage",
           "RemoteClient", "UploadResult", "UploadState", "ValidationResult", "add_parser", "cmd_upload",
           "discover_experiments", "generate_api_key_from_username"]


# --- discovery -----------------------------------------------------------------------------------------
@dataclass
class ExperimentInfo:
    """One experiment to upload (0.5.8's fields; ``file_count``/``estimated_size`` cover the
    stored files, without 0.5.8's counting of ``.files_metadata.json`` as one of them)."""

    project: str
    experiment: str
    path: Path
    folder: str | None = None
    has_logs: bool = False
    has_params: bool = False
    metric_names: list[str] = field(default_factory=list)
    file_count: int = 0
    estimated_size: int = 0  # bytes
    _discovered: DiscoveredExperiment | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_discovered(cls, exp: DiscoveredExperiment) -> ExperimentInfo:
        count, size = _stored_files(exp.paths.files_dir)
        return cls(project=exp.project, experiment=exp.experiment, path=exp.path, folder=exp.folder,
                   has_logs=exp.has_logs, has_params=exp.has_params, metric_names=exp.metric_names,
                   file_count=count, estimated_size=size, _discovered=exp)

    def discovered(self) -> DiscoveredExperiment:
        """Our pipeline's view of this experiment (also for an ``ExperimentInfo`` built by hand)."""
        if self._discovered is not None:
            return self._discovered
        return _as_discovered(self)


def _stored_files(files_dir: Path) -> tuple[int, int]:
    count = size = 0
    if not files_dir.is_dir():
        return 0, 0
    for dirpath, _, names in os.walk(files_dir):
        for name in names:
            if name == FILES_MANIFEST or name.endswith((".lock", ".part")):
                continue
            try:
                size += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            count += 1
    return count, size


def _as_discovered(exp: Any) -> DiscoveredExperiment:
    """A ``DiscoveredExperiment`` from ours, an ``ExperimentInfo``, or anything with
    ``project``/``experiment``/``path`` (and ``folder``), as 0.5.8's code passed around."""
    if isinstance(exp, DiscoveredExperiment):
        return exp
    if isinstance(exp, ExperimentInfo) and exp._discovered is not None:
        return exp._discovered
    path = Path(exp.path)
    folder = getattr(exp, "folder", None) or None
    parts = folder_parts(folder)
    root = path.parents[len(parts) + 1] if len(path.parents) > len(parts) + 1 else path.parent
    identity = ExperimentIdentity(project=exp.project, name=exp.experiment,
                                  folder="/" + "/".join(parts) if parts else None, owner=None, layout="0.5.8")
    return DiscoveredExperiment(root=root, path=path, identity=identity)


def discover_experiments(local_path: Path | str, project_filter: str | None = None,
                         experiment_filter: str | None = None, *, project: str | None = None,
                         experiment: str | None = None) -> list[ExperimentInfo]:
    """The experiments below ``local_path`` (either layout, any depth), in sorted order.

    ``project=``/``experiment=`` are accepted as well as 0.5.8's ``*_filter`` names. A
    path that does not exist gives ``[]``, as in 0.5.8.
    """
    root = Path(local_path)
    if not root.exists():
        return []
    found = discover(root, project_filter or project, experiment_filter or experiment)
    return [ExperimentInfo.from_discovered(e) for e in found.experiments]


class ExperimentValidator(_Validator):
    """``ExperimentValidator(strict=False).validate_experiment(exp)``: takes an
    ``ExperimentInfo`` (or our ``DiscoveredExperiment``) and returns a ``ValidationResult``
    (``is_valid``, ``errors``, ``warnings``, ``valid_data``)."""

    def validate_experiment(self, exp_info: Any) -> CheckedExperiment:
        return super().validate_experiment(_as_discovered(exp_info))


# --- uploading one experiment ------------------------------------------------------------------------
@dataclass
class UploadResult:
    """What ``ExperimentUploader.upload_experiment`` did (0.5.8's fields)."""

    experiment: str
    success: bool = False
    uploaded: dict[str, int] = field(default_factory=dict)  # {"params": 10, "logs": 7, "metrics": 2, "files": 3}
    failed: dict[str, list[str]] = field(default_factory=dict)  # {"files": ["model.pt: ..."]}
    errors: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0


_KINDS = {"params": "params", "logs": "logs", "metric": "metrics", "file": "files"}


class _TaskProgress:
    """Our engine's progress calls, shown on the caller's rich ``Progress`` task (if any)."""

    def __init__(self, progress: Any, task_id: Any) -> None:
        self.progress = progress if task_id is not None else None
        self.task_id = task_id
        self.total = 1

    def experiment_started(self, plan: Any) -> None:
        if self.progress is not None:
            self.total = sum(s.bytes for s in plan.streams) or 1
            self.progress.update(self.task_id, completed=0, total=self.total)

    def advance(self, plan: Any, nbytes: int) -> None:
        if self.progress is not None and nbytes:
            self.progress.advance(self.task_id, nbytes)

    def experiment_done(self, result: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task_id, completed=self.total, total=self.total)


class ExperimentUploader:
    """Uploads one experiment at a time with our engine (0.5.8's constructor).

    ``local_storage`` is kept for compatibility (the tree is read directly); ``remote_client``
    is a :class:`ml_dash.client.RemoteClient` (or anything with ``base_url`` and ``api_key``).
    ``max_concurrent_metrics`` is the number of requests in flight (0.5.8: metric series
    uploaded at once).
    """

    def __init__(self, local_storage: LocalStorage | None, remote_client: Any, batch_size: int = 100,
                 skip_logs: bool = False, skip_metrics: bool = False, skip_files: bool = False,
                 skip_params: bool = False, verbose: bool = False, progress: Any = None,
                 max_concurrent_metrics: int = 5) -> None:
        self.local = local_storage
        self.remote = remote_client
        self.batch_size = batch_size
        self.skip_logs = skip_logs
        self.skip_metrics = skip_metrics
        self.skip_files = skip_files
        self.skip_params = skip_params
        self.verbose = verbose
        self.progress = progress
        self.max_concurrent_metrics = max_concurrent_metrics

    @property
    def _skip(self) -> frozenset[str]:
        return frozenset(part for part in ("logs", "metrics", "files", "params") if getattr(self, f"skip_{part}"))

    def upload_experiment(self, exp_info: Any, validation_result: Any = None, task_id: Any = None) -> UploadResult:
        """Create the experiment, then send its parameters, logs, metrics and files."""
        from ml_dash.upload.engine import Engine
        from ml_dash.upload.plan import build_plan

        exp = _as_discovered(exp_info)
        result = UploadResult(experiment=f"{exp.project}/{exp.experiment}")
        checked = validation_result
        if not (isinstance(checked, CheckedExperiment) and checked.exp.path == exp.path):
            # 0.5.8's result only carried the parsed JSON; ours knows each stream: validate again.
            checked = _Validator(skip=self._skip, verify_checksums=False).validate_experiment(exp)
        if checked.record is None:
            result.errors.extend(checked.errors or ["experiment.json is missing or invalid"])
            return result
        if self.batch_size is None or self.batch_size == "auto":
            from ml_dash.config.models import AUTO_LOG_BATCH, AUTO_METRIC_BATCH

            log_batch, metric_batch = AUTO_LOG_BATCH, AUTO_METRIC_BATCH
        else:
            log_batch = metric_batch = int(self.batch_size)
        plan = build_plan([checked], log_batch=log_batch, metric_batch=metric_batch, skip_params=self.skip_params,
                          skip_logs=self.skip_logs, skip_metrics=self.skip_metrics, skip_files=self.skip_files)
        if isinstance(self.remote, RemoteClient):
            api, own = self.remote._api, False
        else:  # any object with base_url and api_key, as 0.5.8 accepted
            from ml_dash.api.client import ApiClient

            api, own = ApiClient(self.remote.base_url, self.remote.api_key), True
        try:
            engine = Engine(api, workers=max(1, int(self.max_concurrent_metrics)),
                            progress=_TaskProgress(self.progress, task_id))
            done = engine.run(plan).experiments[0]
        finally:
            if own:
                api.close()
        result.success = done.ok
        result.errors = done.all_errors
        result.bytes_uploaded = done.bytes
        for stream in done.streams:
            kind = _KINDS.get(stream.kind, stream.kind)
            if stream.error:
                result.failed.setdefault(kind, []).append(f"{stream.name}: {stream.error}")
        planned = {s.kind for s in plan.experiments[0].streams} | ({"params"} if plan.experiments[0].params else set())
        for kind in ("params", "logs", "metric", "file"):
            if kind not in planned:
                continue
            good = [s for s in done.streams if s.kind == kind and s.error is None]
            if kind in ("metric", "file"):
                result.uploaded[_KINDS[kind]] = len(good)  # series / files now on the server
            else:
                result.uploaded[kind] = sum(s.sent + s.already for s in good)
        if self.verbose:
            self._print(done, result)
        return result

    def _print(self, done: Any, result: UploadResult) -> None:
        if done.experiment_id:
            print(f"  ✓ Created experiment (id: {done.experiment_id})")
        for stream in done.streams:
            if stream.error:
                print(f"  ✗ {stream.kind} {stream.name}: {stream.error}")
                continue
            count = stream.sent + stream.already
            already = f" ({stream.already} already on the server)" if stream.already else ""
            if stream.kind == "params":
                print(f"  ✓ Uploaded {count} parameters{already}")
            elif stream.kind == "logs":
                print(f"  ✓ Uploaded {count} log entries{already}")
            elif stream.kind == "metric":
                print(f"  ✓ Uploaded {count} data points for '{stream.name}'{already}")
            else:
                print(f"    ✓ {stream.name}{already}")
        for error in done.errors:
            print(f"  ✗ Error: {error}")


# --- the state file ------------------------------------------------------------------------------------
@dataclass
class UploadState:
    """The ``--state-file`` document (0.5.8's fields and methods)."""

    local_path: str
    remote_url: str
    completed_experiments: list[str] = field(default_factory=list)  # ["project/experiment"]
    failed_experiments: list[str] = field(default_factory=list)
    in_progress_experiment: str | None = None
    timestamp: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"local_path": self.local_path, "remote_url": self.remote_url,
                "completed_experiments": self.completed_experiments, "failed_experiments": self.failed_experiments,
                "in_progress_experiment": self.in_progress_experiment, "timestamp": self.timestamp}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UploadState:
        return cls(local_path=data["local_path"], remote_url=data["remote_url"],
                   completed_experiments=data.get("completed_experiments", []),
                   failed_experiments=data.get("failed_experiments", []),
                   in_progress_experiment=data.get("in_progress_experiment"), timestamp=data.get("timestamp"))

    def _engine_state(self, path: Path) -> Any:
        from ml_dash.upload.state import UploadState as EngineState

        return EngineState(path=path, local_path=self.local_path, remote_url=self.remote_url,
                           completed=list(self.completed_experiments), failed=list(self.failed_experiments),
                           in_progress=self.in_progress_experiment, timestamp=self.timestamp or "")

    def save(self, path: Path | str) -> None:
        """Write the file (atomically) with a fresh local ``timestamp``."""
        state = self._engine_state(Path(path))
        state.save()
        self.timestamp = state.timestamp

    @classmethod
    def load(cls, path: Path | str) -> UploadState | None:
        """The saved state, or None when the file is missing or unreadable."""
        from ml_dash.upload.state import load_state

        state = load_state(Path(path))
        if state is None:
            return None
        return cls(local_path=state.local_path, remote_url=state.remote_url,
                   completed_experiments=list(state.completed), failed_experiments=list(state.failed),
                   in_progress_experiment=state.in_progress,
                   timestamp=state.timestamp if state.timestamp not in ("", "None") else None)


def generate_api_key_from_username(user_name: str) -> str:
    """The token 0.5.x derives from a username (HS256 JWT signed with its built-in secret,
    valid for 30 days). Our server accepts it only where legacy username tokens are allowed
    (by default on loopback); prefer an API key from ``ml-dash serve token create``."""
    from ml_dash.api.auth import make_username_token

    return make_username_token(user_name)


# --- the command ---------------------------------------------------------------------------------------
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add 0.5.8's ``upload`` subcommand (its flags) to ``subparsers``; use with :func:`cmd_upload`."""
    parser = subparsers.add_parser("upload", help="Upload local experiments to remote server",
                                   description="Upload locally-stored ML-Dash experiment data to a remote server.")
    parser.add_argument("path", nargs="?", default="./.ml-dash",
                        help="Local storage directory to upload from (default: ./.ml-dash)")
    parser.add_argument("--remote", type=str, help="Remote server URL (required unless set in config)")
    parser.add_argument("--api-key", type=str, help="API key for authentication")
    parser.add_argument("--username", type=str, help="Username for authentication (0.5.x username token)")
    parser.add_argument("--project", type=str, help="Upload only experiments from this project")
    parser.add_argument("--experiment", type=str, help="Upload only this specific experiment (requires --project)")
    for part in ("logs", "metrics", "files", "params"):
        parser.add_argument(f"--skip-{part}", action="store_true", help=f"Don't upload {part}")
    parser.add_argument("--dry-run", action="store_true", help="Show what would be uploaded without uploading")
    parser.add_argument("--strict", action="store_true", help="Fail on any validation error")
    parser.add_argument("-v", "--verbose", action="store_true", help="Show detailed progress")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="Records per request (default: auto, 1000 log lines / 10000 metric points)")
    parser.add_argument("--resume", action="store_true", help="Resume previous interrupted upload")
    parser.add_argument("--state-file", type=str, default=".ml-dash-upload-state.json",
                        help="Path to state file for resume (default: .ml-dash-upload-state.json)")
    return parser


_KEYS = {"path": "path", "remote": "remote", "api_key": "api_key", "user_name": "username", "username": "username",
         "project": "project", "experiment": "experiment", "dry_run": "dry_run", "strict": "strict",
         "verbose": "verbose", "batch_size": "batch_size", "skip_logs": "skip.logs", "skip_metrics": "skip.metrics",
         "skip_files": "skip.files", "skip_params": "skip.params", "resume": "resume", "state_file": "state_file",
         "workers": "workers"}
# Namespace values that equal our own defaults: left to the lower layers (config.json, env, profiles).
_OUR_DEFAULTS = {"path": "./.ml-dash", "state_file": ".ml-dash-upload-state.json"}


def _overrides(args: argparse.Namespace) -> Iterable[Override]:
    for attr, key in _KEYS.items():
        value = getattr(args, attr, None)
        if value is None or value is False or (attr in _OUR_DEFAULTS and str(value) == _OUR_DEFAULTS[attr]):
            continue
        if value is True:
            text = f"{key}=true"
        elif isinstance(value, int):
            text = f"{key}={value}"
        else:
            text = f"{key}={quote(str(value))}"
        yield Override(text, key, f"args.{attr}")


def cmd_upload(args: argparse.Namespace) -> int:
    """Run ``ml-dash upload`` as configured by ``args``; the exit code (0, 1, or 2 for configuration)."""
    from ml_dash.cli import _guarded
    from ml_dash.config.resolve import resolve
    from ml_dash.upload.run import upload

    overrides = list(_overrides(args))

    def run() -> int:
        from ml_dash.cli.console import print_warning

        return upload(resolve("upload", overrides, warn=print_warning).config)

    return _guarded(run)
