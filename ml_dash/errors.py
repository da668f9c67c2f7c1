"""The one exception tree of ml-dash.

Every error a user can see is an :class:`MLDashError`: a one-line message that says
what went wrong and where, plus an optional hint that says what to do about it.
The command line prints ``message`` and ``hint`` and exits with ``exit_code``; a
traceback is only shown with ``ML_DASH_DEBUG=1``.

::

    MLDashError
    ├── InvalidInputError (ValueError)      bad argument to the SDK: level, empty batch, ...
    ├── ExperimentStateError (RuntimeError) experiment not open, write-protected
    ├── RecordError (ValueError)            a damaged on-disk record (file, line, key)
    ├── ConfigError (ValueError)            invalid configuration; exit code 2
    ├── StorageError (OSError)              the local tree cannot be read or written
    │   └── ChecksumMismatchError           a file's bytes are not what its manifest says
    └── ApiError                            the server refused or could not be reached

The builtin bases let code written against ml-dash 0.5.8 (which raised plain
``ValueError``/``RuntimeError``) keep catching what it caught before.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "ChecksumMismatchError",
    "ConfigError",
    "ExperimentStateError",
    "InvalidInputError",
    "MLDashError",
    "RecordError",
    "StorageError",
]


class MLDashError(Exception):
    """Base of every ml-dash error: ``message`` plus an optional ``hint``."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class InvalidInputError(MLDashError, ValueError):
    """An argument given to the SDK cannot be used (unknown level, empty batch, ...)."""


class ExperimentStateError(MLDashError, RuntimeError):
    """The experiment is in the wrong state for the call (not open, write-protected)."""


class RecordError(MLDashError, ValueError):
    """A record on disk is damaged; ``path`` and ``line`` say where."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = path or "<record>"
        if line is not None:
            where = f"{where}:{line}"
        if key:
            message = f"{key}: {message}"
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = path
        self.line = line
        self.key = key


class ConfigError(MLDashError, ValueError):
    """The configuration is invalid (unknown key, bad value); exit code 2."""

    exit_code = 2


class StorageError(MLDashError, OSError):
    """The local experiment tree cannot be read or written."""


class ChecksumMismatchError(StorageError):
    """A file's bytes do not hash to the sha256 its manifest records (changed or damaged on disk)."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(f"{path}: sha256 is {actual}, the manifest says {expected}; not uploaded",
                         hint="the file changed or was damaged after it was saved; restore it, or save it again "
                              "with the SDK to record its new checksum")
        self.path, self.expected, self.actual = path, expected, actual


class ApiError(MLDashError):
    """The server answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
