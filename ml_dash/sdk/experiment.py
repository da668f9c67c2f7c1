"""``Experiment``: the one object a training script talks to."""

from __future__ import annotations

import atexit
import functools
import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ml_dash.errors import ExperimentStateError, InvalidInputError
from ml_dash.records.clock import utc_now_iso
from ml_dash.records.layout import check_name
from ml_dash.records.logs import LOG_LEVELS, normalize_level
from ml_dash.sdk.backends.base import Backend, ExperimentSpec
from ml_dash.sdk.files import FileBuilder
from ml_dash.sdk.logbuilder import LogBuilder
from ml_dash.sdk.metrics import MetricsManager
from ml_dash.sdk.params import ParametersBuilder

__all__ = ["Experiment", "RunManager", "parse_prefix"]

F = TypeVar("F", bound=Callable[..., Any])

_open_experiments: weakref.WeakSet[Experiment] = weakref.WeakSet()
# log(level=...) as given → as stored, for the usual spellings (normalize_level handles the rest).
_STORED_LEVELS: dict[str | None, str] = {None: "info", **{lv: lv for lv in LOG_LEVELS},
                                         **{lv.upper(): lv for lv in LOG_LEVELS}}
_atexit_lock = threading.Lock()
_atexit_registered = False


def _flush_at_exit() -> None:
    # Side files (.log_sequence, metadata.json) are written lazily; make them exact
    # for experiments a script forgot to close.
    for exp in list(_open_experiments):
        try:
            exp.flush()
        except Exception:  # pragma: no cover - best effort during interpreter shutdown
            pass


def parse_prefix(prefix: str) -> tuple[str | None, str, str, str | None]:
    """``owner/project/[folders/]name`` → ``(owner, project, name, folder)``.

    Two segments are read as ``project/name``. The folders between project and name
    become the 0.5.8 ``folder`` (``/f1/f2``), so the tree is the 0.5.8 layout.
    """
    parts = [p for p in str(prefix).split("/") if p]
    if len(parts) < 2:
        raise InvalidInputError(f"prefix {prefix!r} needs at least project/name",
                                hint="use 'owner/project/name' or 'owner/project/folder/.../name'")
    if len(parts) == 2:
        return None, parts[0], parts[1], None
    folders = parts[2:-1]
    return parts[0], parts[1], parts[-1], ("/" + "/".join(folders)) if folders else None


class RunManager:
    """``exp.run``: ``start()``/``complete()``/``fail()``/``cancel()``, a context manager
    (COMPLETED, or FAILED on an exception, CANCELLED on Ctrl-C) and a decorator."""

    def __init__(self, experiment: Experiment) -> None:
        self._experiment = experiment

    def start(self) -> Experiment:
        return self._experiment._open()

    def complete(self) -> None:
        self._experiment._close("COMPLETED")

    def fail(self) -> None:
        self._experiment._close("FAILED")

    def cancel(self) -> None:
        self._experiment._close("CANCELLED")

    def __enter__(self) -> Experiment:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.complete()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.cancel()
        else:
            self.fail()

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self as exp:
                return func(exp, *args, **kwargs)

        return wrapper  # type: ignore[return-value]


class Experiment:
    """An experiment, written to a local tree (``local_path=``).

    ``Experiment(name, project, local_path=ROOT, folder=, description=, tags=, bindrs=,
    metadata=)`` as in ml-dash 0.5.8, or ``Experiment(prefix="owner/project/.../name",
    local_path=ROOT)``. Use it with ``with exp.run:`` or ``exp.run.start()`` …
    ``exp.run.complete()``.
    """

    def __init__(
        self,
        name: str | None = None,
        project: str | None = None,
        *,
        prefix: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        bindrs: list[str] | None = None,
        folder: str | None = None,
        metadata: dict[str, Any] | None = None,
        remote: str | None = None,
        api_key: str | None = None,
        user_name: str | None = None,
        local_path: str | os.PathLike[str] | None = None,
        _write_protected: bool = False,
    ) -> None:
        self.owner: str | None = None
        if prefix is not None:
            self.owner, p_project, p_name, p_folder = parse_prefix(prefix)
            name = name or p_name
            project = project or p_project
            folder = folder if folder is not None else p_folder
            if local_path is not None:
                local_path = _root_from_prefixed_path(Path(local_path), prefix)
        if name is None or project is None:
            raise InvalidInputError("an experiment needs a name and a project",
                                    hint="Experiment(name='run-1', project='vision', local_path='.ml-dash') "
                                         "or Experiment(prefix='me/vision/run-1', local_path='.ml-dash')")
        self.name = check_name(name, "experiment name")
        self.project = check_name(project, "project")
        self.description = description
        self.tags = tags
        self.bindrs = bindrs
        self.folder = folder
        self.metadata = metadata
        self._write_protected = _write_protected
        self._is_open = False
        self._backend: Backend
        from ml_dash.config.sdk import choose_mode

        # Explicit arguments decide; without them ML_DASH_* (or DREAMLAKE_*) variables do.
        choice = choose_mode(remote, local_path, api_key, user_name)
        self.mode = choice.mode
        self.local_path = choice.local_path
        self.remote = choice.remote
        self._backend = _make_backend(choice)
        self._spec = ExperimentSpec(name=self.name, project=self.project, folder=folder,
                                    description=description, tags=tags, bindrs=bindrs, metadata=metadata)

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def run(self) -> RunManager:
        return RunManager(self)

    def _open(self) -> Experiment:
        global _atexit_registered
        if self._is_open:
            return self
        self._backend.open(self._spec)
        self._is_open = True
        _open_experiments.add(self)
        with _atexit_lock:
            if not _atexit_registered:
                atexit.register(_flush_at_exit)
                _atexit_registered = True
        return self

    def _close(self, status: str) -> None:
        if not self._is_open:
            return
        self._is_open = False
        _open_experiments.discard(self)
        self._backend.close(status)

    def __enter__(self) -> Experiment:
        return self._open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self.run.__exit__(exc_type, exc, tb)

    def flush(self) -> None:
        """Make every side file exact now (they are otherwise refreshed about once a second)."""
        if self._is_open:
            self._backend.flush()

    @property
    def dir(self) -> Path | None:
        """The experiment's directory in the local tree (after ``start()``)."""
        paths = getattr(self._backend, "paths", None)
        return paths.dir if paths is not None else None

    @property
    def id(self) -> str | None:
        """The server's id of the experiment (remote and hybrid mode, after ``start()``)."""
        return getattr(self._backend, "experiment_id", None)

    def _readable(self, action: str) -> Backend:
        if not self._is_open:
            raise ExperimentStateError(f"cannot {action}: experiment {self.project}/{self.name} is not open",
                                       hint="use `with exp.run:` or call exp.run.start() first")
        return self._backend

    def _writable(self, action: str) -> Backend:
        backend = self._readable(action)
        if self._write_protected:
            raise ExperimentStateError(f"cannot {action}: experiment {self.project}/{self.name} is write-protected",
                                       hint="write to a new experiment, or set write_protected to false in its "
                                            "experiment.json")
        return backend

    # --- the four kinds of records ----------------------------------------------------------
    def log(self, message: str | None = None, level: str | None = None,
            metadata: dict[str, Any] | None = None, **extra: Any) -> LogBuilder | None:
        """``exp.log("msg", level="warn", step=3)``, or fluent ``exp.log(metadata=...).warn("msg")``."""
        if message is not None and self._is_open and not self._write_protected:
            # The common call, straight to the backend (this runs once per log line): the same
            # checks and values as the general path below, without its calls.
            try:
                stored = _STORED_LEVELS.get(level)
            except TypeError:  # unhashable: normalize_level below refuses it
                stored = None
            if stored is not None:
                merged = extra if metadata is None else {**metadata, **extra}  # extra is our own dict
                self._backend.write_log(stored, message if isinstance(message, str) else str(message),
                                        merged or None, utc_now_iso())
                return None
        self._readable("log")
        merged = {**(metadata or {}), **extra}
        if message is None:
            if level is not None:
                raise InvalidInputError("log(level=...) needs a message", hint='exp.log("text", level="warn")')
            return LogBuilder(self, merged or None)
        self._write_log(message, normalize_level(level or "info"), merged or None)
        return None

    def _write_log(self, message: Any, level: str, metadata: dict[str, Any] | None) -> None:
        backend = self._writable("log")
        backend.write_log(level, message if isinstance(message, str) else str(message), metadata, utc_now_iso())

    @property
    def params(self) -> ParametersBuilder:
        return ParametersBuilder(self)

    parameters = params

    @property
    def metrics(self) -> MetricsManager:
        return MetricsManager(self)

    def files(self, target: str | os.PathLike[str] | None = None, **kwargs: Any) -> FileBuilder:
        return FileBuilder(self, target, **kwargs)

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        return f"Experiment({self.project}/{self.name}, mode={self.mode}, {state})"


def _make_backend(choice: Any) -> Backend:
    from ml_dash.sdk.backends.local import LocalBackend

    if choice.mode == "local":
        return LocalBackend(choice.local_path)
    from ml_dash.sdk.backends.remote import RemoteBackend
    from ml_dash.sdk.sender import SenderSettings

    if choice.api_key:
        token = choice.api_key
    elif choice.username:
        from ml_dash.api.auth import make_username_token

        token = make_username_token(choice.username)
    else:
        raise InvalidInputError(f"{choice.mode} mode needs api_key= or user_name=",
                                hint="or set ML_DASH_API_KEY (create a key: ml-dash serve token create NAME)")
    s = choice.settings
    # Hybrid waits less at the end: the local tree already has every record (`ml-dash upload` sends the rest).
    close_timeout = s.close_timeout if s.close_timeout is not None else (30.0 if choice.mode == "remote" else 5.0)
    remote = RemoteBackend(choice.remote, token, SenderSettings(flush_interval=s.flush_interval,
                                                                log_batch=s.log_batch_size,
                                                                metric_batch=s.metric_batch_size,
                                                                max_pending=s.max_pending,
                                                                close_timeout=close_timeout),
                           buffered=s.buffer_enabled)
    if choice.mode == "remote":
        from ml_dash.config.commands import config_dir
        from ml_dash.sdk.backends.spooled import SpooledRemoteBackend, new_spool_run

        return SpooledRemoteBackend(new_spool_run(s.spool_dir or config_dir() / "spool"), remote)
    from ml_dash.sdk.backends.hybrid import HybridBackend

    return HybridBackend(LocalBackend(choice.local_path), remote)


def _root_from_prefixed_path(local_path: Path, prefix: str) -> Path:
    """The seed writes ``local_path=".dash/owner/proj/exp"`` with ``prefix="owner/proj/exp"``:
    when ``local_path`` ends with the prefix, the storage root is what comes before it."""
    parts = [p for p in prefix.split("/") if p]
    tail = local_path.parts[-len(parts):] if len(local_path.parts) >= len(parts) else ()
    if list(tail) == parts:
        return Path(*local_path.parts[: -len(parts)]) if len(local_path.parts) > len(parts) else Path(".")
    return local_path
