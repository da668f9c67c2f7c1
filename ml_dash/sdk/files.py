"""``exp.files(...)``: save, list, download, update and (soft) delete files."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_dash.errors import InvalidInputError
from ml_dash.sdk.files_util import guess_content_type

if TYPE_CHECKING:
    from ml_dash.sdk.experiment import Experiment

__all__ = ["MAX_FILE_SIZE", "FileBuilder"]

MAX_FILE_SIZE = 100 * 1024**3  # 100 GB, as 0.5.8


@contextmanager
def _scratch_file(file_name: str) -> Iterator[Path]:
    if not file_name or "/" in file_name or file_name in (".", ".."):
        raise InvalidInputError(f"file name {file_name!r} is not a plain file name", hint="e.g. 'model.pth'")
    with tempfile.TemporaryDirectory(prefix="ml-dash-") as tmp:
        yield Path(tmp) / file_name


class FileBuilder:
    """Built by ``exp.files(file_path=..., prefix="/models", description=, tags=, metadata=)``.

    The seed's short forms work too: ``exp.files("models").save(obj, "model.pth")``
    (a positional prefix) and ``exp.files("model.pth", prefix="/models")`` (a positional
    path when ``prefix`` is also given, or when it names an existing file).
    """

    def __init__(self, experiment: Experiment, target: str | os.PathLike[str] | None = None, *,
                 file_path: str | os.PathLike[str] | None = None, prefix: str | None = None,
                 description: str | None = None, tags: list[str] | None = None,
                 bindrs: list[str] | None = None, metadata: dict[str, Any] | None = None,
                 file_id: str | None = None, dest_path: str | None = None) -> None:
        if target is not None:
            if prefix is not None or Path(target).is_file():
                file_path = file_path or target
            else:
                prefix = "/" + str(target).strip("/")
        self._experiment = experiment
        self._file_path = file_path
        self._prefix = prefix if prefix is not None else "/"
        self._description = description
        self._tags = tags if tags is not None else []
        self._bindrs = bindrs  # accepted for compatibility; 0.5.8 ignores it too
        self._metadata = metadata
        self._file_id = file_id
        self._dest_path = dest_path

    # --- saving ----------------------------------------------------------------------------
    def save(self, content: Any = None, file_name: str | None = None) -> dict[str, Any]:
        """Store a file and return its manifest entry.

        ``save()`` stores ``file_path``; ``save(path, name)`` stores an existing file under
        ``name``; ``save(bytes, name)`` stores raw bytes; any other object is written with
        ``torch.save`` when PyTorch is installed and it is a torch object, else pickled.
        """
        if content is None:
            if not self._file_path:
                raise InvalidInputError("file_path is required for save()",
                                        hint="exp.files(file_path='model.pt').save() or .save(obj, 'name')")
            return self._store(Path(self._file_path), file_name)
        if isinstance(content, (str, os.PathLike)):
            return self._store(Path(content), file_name)
        if not file_name:
            raise InvalidInputError("save(obj, file_name) needs a file name for an object",
                                    hint="e.g. exp.files('models').save(model, 'model.pth')")
        with _scratch_file(file_name) as tmp:
            if isinstance(content, (bytes, bytearray, memoryview)):
                tmp.write_bytes(bytes(content))
            elif _is_torch_object(content):
                import torch

                torch.save(content, tmp)
            else:
                try:
                    with open(tmp, "wb") as f:
                        pickle.dump(content, f)
                except (pickle.PicklingError, TypeError, AttributeError) as exc:
                    raise InvalidInputError(f"cannot serialise {type(content).__name__}: {exc}",
                                            hint="save a file path, bytes, or a picklable object") from None
            return self._store(tmp, None)

    def save_json(self, content: Any, file_name: str) -> dict[str, Any]:
        with _scratch_file(file_name) as tmp:
            try:
                tmp.write_text(json.dumps(content, indent=2))
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"content is not JSON-serialisable: {exc}") from None
            return self._store(tmp, None)

    def save_text(self, content: str, file_name: str) -> dict[str, Any]:
        with _scratch_file(file_name) as tmp:
            tmp.write_text(content)
            return self._store(tmp, None)

    def save_pkl(self, content: Any, file_name: str) -> dict[str, Any]:
        with _scratch_file(file_name) as tmp:
            with open(tmp, "wb") as f:
                pickle.dump(content, f)
            return self._store(tmp, None)

    def save_torch(self, model: Any, file_name: str) -> dict[str, Any]:
        try:
            import torch
        except ImportError:
            raise InvalidInputError("PyTorch is not installed", hint="pip install torch") from None
        with _scratch_file(file_name) as tmp:
            torch.save(model, tmp)
            return self._store(tmp, None)

    def save_fig(self, fig: Any, file_name: str, **savefig_kwargs: Any) -> dict[str, Any]:
        with _scratch_file(file_name) as tmp:
            fig.savefig(tmp, **savefig_kwargs)
            return self._store(tmp, None)

    def _store(self, source: Path, file_name: str | None) -> dict[str, Any]:
        backend = self._experiment._writable("save files")
        if not source.exists():
            raise InvalidInputError(f"file not found: {source}", hint="check the path (relative to the working directory)")
        if not source.is_file():
            raise InvalidInputError(f"not a regular file: {source}")
        size = source.stat().st_size
        if size > MAX_FILE_SIZE:
            raise InvalidInputError(f"file size ({size} bytes) exceeds the 100 GB limit: {source}")
        name = file_name or source.name
        return backend.save_file(source, self._prefix, name, self._description, self._tags,
                                 self._metadata, guess_content_type(name))

    upload = save  # the 0.6 spelling: exp.files("dir").upload(path)

    # --- the rest --------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        backend = self._experiment._readable("list files")
        return backend.list_files(self._prefix if self._prefix != "/" else None, self._tags or None)

    def _need_id(self, action: str) -> str:
        if not self._file_id:
            raise InvalidInputError(f"file_id is required for {action}()", hint=f"exp.files(file_id=...).{action}()")
        return self._file_id

    def download(self) -> str:
        backend = self._experiment._readable("download files")
        return backend.download_file(self._need_id("download"), self._dest_path)

    def update(self) -> dict[str, Any]:
        backend = self._experiment._writable("update files")
        return backend.update_file(self._need_id("update"), self._description, self._tags or None, self._metadata)

    def delete(self) -> dict[str, Any]:
        backend = self._experiment._writable("delete files")
        return backend.delete_file(self._need_id("delete"))


def _is_torch_object(obj: Any) -> bool:
    module = type(obj).__module__ or ""
    return module.startswith("torch") or (hasattr(obj, "state_dict") and "torch" in repr(type(obj).__mro__))
