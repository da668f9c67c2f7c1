"""``exp.files(...)``: save, list, download, update and (soft) delete files."""

from __future__ import annotations

import json
import os
import pickle
import sys
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
    if not isinstance(file_name, str) or not file_name or "/" in file_name or "\x00" in file_name \
            or file_name in (".", ".."):
        raise InvalidInputError(f"file name {file_name!r} is not a plain file name", hint="e.g. 'model.pth'")
    with tempfile.TemporaryDirectory(prefix="ml-dash-") as tmp:
        yield Path(tmp) / file_name


# What pickle (and torch.save, which pickles) raise for an object it cannot serialise.
_PICKLE_ERRORS = (pickle.PicklingError, TypeError, AttributeError, RecursionError)


def _pickle_to(path: Path, content: Any) -> None:
    try:
        with open(path, "wb") as f:
            pickle.dump(content, f)
    except _PICKLE_ERRORS as exc:
        raise InvalidInputError(f"cannot pickle {type(content).__name__}: {exc}",
                                hint="pickle cannot store open files, locks, lambdas or local functions and "
                                     "classes; save their state (a dict, an array) instead") from None


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

                try:
                    torch.save(content, tmp)
                except _PICKLE_ERRORS as exc:
                    raise InvalidInputError(f"torch.save cannot store {type(content).__name__}: {exc}",
                                            hint="save model.state_dict() rather than the model object") from None
            else:
                _pickle_to(tmp, content)
            return self._store(tmp, None)

    def save_json(self, content: Any, file_name: str) -> dict[str, Any]:
        """Store ``content`` as indented JSON (as 0.5.8: ``json.dump(content, f, indent=2)``)."""
        self._experiment._writable("save files")
        with _scratch_file(file_name) as tmp:
            try:
                text = json.dumps(content, indent=2)
            except (TypeError, ValueError, RecursionError) as exc:
                raise InvalidInputError(f"content is not JSON-serialisable: {exc}",
                                        hint="convert it to dicts, lists, strings and numbers first, or use "
                                             "save_pkl") from None
            tmp.write_text(text)
            return self._store(tmp, None)

    def save_text(self, content: str, file_name: str) -> dict[str, Any]:
        """Store a string as a UTF-8 text file."""
        self._experiment._writable("save files")
        if not isinstance(content, str):
            hint = ("bytes are stored with save(data, name)" if isinstance(content, (bytes, bytearray))
                    else "convert it with str(...), or use save_json / save_pkl")
            raise InvalidInputError(f"save_text needs a str, got {type(content).__name__}", hint=hint)
        with _scratch_file(file_name) as tmp:
            tmp.write_text(content, encoding="utf-8")
            return self._store(tmp, None)

    def save_pkl(self, content: Any, file_name: str) -> dict[str, Any]:
        """Store any picklable object."""
        self._experiment._writable("save files")
        with _scratch_file(file_name) as tmp:
            _pickle_to(tmp, content)
            return self._store(tmp, None)

    def save_torch(self, model: Any, file_name: str) -> dict[str, Any]:
        """Store a model or state dict with ``torch.save``."""
        from ml_dash.sdk.media import require

        self._experiment._writable("save files")
        torch = require("torch", "save_torch", hint="pip install torch")
        with _scratch_file(file_name) as tmp:
            try:
                torch.save(model, tmp)
            except _PICKLE_ERRORS as exc:
                raise InvalidInputError(f"torch.save cannot store {type(model).__name__}: {exc}",
                                        hint="save model.state_dict() rather than the model object") from None
            return self._store(tmp, None)

    def save_fig(self, fig: Any = None, file_name: str = "figure.png", **savefig_kwargs: Any) -> dict[str, Any]:
        """Store a matplotlib figure (the current one when ``fig`` is None), then close it, as 0.5.8.

        The extension picks the format (.png, .pdf, .svg, .jpg); ``savefig_kwargs`` go to
        ``fig.savefig`` (``dpi=``, ``bbox_inches=``, ...).
        """
        self._experiment._writable("save files")
        plt = None
        if fig is None:
            from ml_dash.sdk.media import require

            plt = require("matplotlib.pyplot", "save_fig", hint="pip install matplotlib")
            fig = plt.gcf()
        if not callable(getattr(fig, "savefig", None)):
            raise InvalidInputError(f"save_fig needs a matplotlib figure, got {type(fig).__name__}",
                                    hint="fig, ax = plt.subplots(); ...; exp.files('plots').save_fig(fig, 'a.png')")
        with _scratch_file(file_name) as tmp:
            try:
                fig.savefig(tmp, **savefig_kwargs)
            except (ValueError, TypeError) as exc:
                raise InvalidInputError(f"cannot save the figure as {file_name!r}: {exc}",
                                        hint="use an extension matplotlib knows (.png, .pdf, .svg, .jpg) and "
                                             "savefig's own options") from None
            _close_figure(fig, plt)
            return self._store(tmp, None)

    def save_video(self, frame_stack: Any, file_name: str, fps: float = 20, **imageio_kwargs: Any) -> dict[str, Any]:
        """Encode frames as a video and store it (needs ``pip install 'ml-dash[media]'``).

        ``frame_stack``: a list of frames or one stacked array, ``N×H×W`` (grayscale) or
        ``N×H×W×3`` (RGB), floats in [0, 1] or uint8. The extension picks the format
        (.mp4, .gif, .webm, .avi, ...); ``imageio_kwargs`` go to ``imageio.v3.imwrite``
        (``codec=``, ``quality=``, ``loop=`` for a GIF, ...). As 0.5.8.
        """
        self._experiment._writable("save files")
        try:
            empty = len(frame_stack) == 0
        except TypeError:
            raise InvalidInputError(f"frame_stack must be a list of frames or an array, got "
                                    f"{type(frame_stack).__name__}",
                                    hint="e.g. [np.zeros((64, 64, 3), np.uint8) for _ in range(10)]") from None
        if empty:
            raise InvalidInputError("frame_stack is empty: a video needs at least one frame",
                                    hint="collect the frames first, e.g. frames.append(env.render())")
        from ml_dash.sdk.media import encode_video

        with _scratch_file(file_name) as tmp:
            encode_video(frame_stack, tmp, fps, **imageio_kwargs)
            return self._store(tmp, None)

    def _store(self, source: Path, file_name: str | None) -> dict[str, Any]:
        backend = self._experiment._writable("save files")
        if not source.exists():
            raise InvalidInputError(f"file not found: {source}", hint="check the path (relative to the working directory)")
        if not source.is_file():
            raise InvalidInputError(f"not a regular file: {source}",
                                    hint="save files one by one; pack a directory first, e.g. with shutil.make_archive")
        size = source.stat().st_size
        if size > MAX_FILE_SIZE:
            raise InvalidInputError(f"file size ({size} bytes) exceeds the 100 GB limit: {source}",
                                    hint="split it into parts below 100 GB and save each")
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


def _close_figure(fig: Any, plt: Any) -> None:
    """0.5.8 closed the figure after saving it (pyplot keeps every open figure alive)."""
    # A figure made with pyplot means pyplot is loaded; never import it just to close something.
    plt = plt or sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        plt.close(fig)
    except (TypeError, ValueError):  # pragma: no cover - not a pyplot figure
        pass


def _is_torch_object(obj: Any) -> bool:
    module = type(obj).__module__ or ""
    return module.startswith("torch") or (hasattr(obj, "state_dict") and "torch" in repr(type(obj).__mro__))
