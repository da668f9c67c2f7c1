"""Read a TensorBoard logdir with TensorBoard's own library, streaming every event (no sampling).

Every directory at or below the logdir that holds event files is one run. Events are read per file
with ``RawEventFileLoader`` (files in name order: names carry the writer's start time), parsed and
passed through ``data_compat``/``dataclass_compat`` exactly as ``EventFileLoader`` does, so legacy
``simple_value`` summaries (tensorboardX, torch) and TF2 tensor summaries read alike. We do not use
``EventAccumulator``: it reservoir-samples scalars and would drop points.

TensorBoard's loader swallows ``DataLossError`` (truncated record, CRC mismatch) and simply stops, so
we count the bytes of every record it returns and compare with the file size to notice it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from ml_dash.errors import InvalidInputError
from ml_dash.importers.source import FileItem, LogLine, Point, Problem, Record, SourceRun, require

__all__ = ["TensorBoardRun", "runs"]

_EXTRA = "import-tensorboard"
_WHAT = "TensorBoard logs"
_FRAME = 16  # per record: 8-byte length, 4-byte length CRC, data, 4-byte data CRC
_HPARAMS_START_TAG = b"_hparams_/session_start_info"
# Magic bytes -> file extension for encoded images (TensorBoard itself only sniffs, never stores a type).
_IMAGE_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"))


def _lib(module: str) -> ModuleType:
    return require(module, _EXTRA, _WHAT)


def runs(source: Path) -> Iterator[SourceRun]:
    """The runs of the logdir ``source``, in sorted order of their relative paths.

    Checks the library and the source now (not on first ``next()``) so errors surface at the call.
    """
    io_wrapper = _lib("tensorboard.backend.event_processing.io_wrapper")
    _lib("tensorboard.backend.event_processing.event_file_loader")
    source = Path(source)
    if not source.is_dir():
        what = "is not a directory" if source.exists() else "does not exist"
        raise InvalidInputError(f"TensorBoard logdir {source} {what}",
                                hint="give the TensorBoard logdir (the directory passed to --logdir)")
    found: list[tuple[str, Path, list[str]]] = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        # IsSummaryEventsFile: "tfevents" in the name, minus the profiler's empty ".profile-empty" files.
        files = sorted(f for f in filenames if io_wrapper.IsSummaryEventsFile(f))
        if files:
            where = Path(dirpath)
            found.append((where.relative_to(source).as_posix(), where, files))
    if not found:
        raise InvalidInputError(f"no TensorBoard event files (events.out.tfevents.*) in or below {source}",
                                hint="give the TensorBoard logdir (the directory passed to --logdir)")
    found.sort(key=lambda item: item[0])
    return iter([_make_run(source, rel, where, files) for rel, where, files in found])


def _make_run(source: Path, rel: str, where: Path, files: list[str]) -> TensorBoardRun:
    name = source.resolve().name if rel == "." else rel.replace("/", "-")
    meta: dict[str, Any] = {"run": rel, "event_files": files}
    return TensorBoardRun(key=rel, name=name, where=str(where), metadata={"tensorboard": meta})


def _iso(wall_time: float) -> str:
    return datetime.fromtimestamp(wall_time, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _image_name(step: int, index: int, count: int, data: bytes) -> str:
    ext = next((e for magic, e in _IMAGE_MAGIC if data.startswith(magic)), None)
    if ext is None:
        ext = ".webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else ".bin"
    return f"step_{step}{f'_{index}' if count > 1 else ''}{ext}"


class TensorBoardRun(SourceRun):
    """One run directory; ``records()`` re-reads its event files each call and collects the hparams
    on the way, which ``params()`` then gives without reading the files again."""

    _hparams: dict[str, Any] | None = None  # set by a records() pass read to its end

    def _event_files(self) -> list[Path]:
        # Listed again at read time so a new, later file of a growing run is seen.
        io_wrapper = _lib("tensorboard.backend.event_processing.io_wrapper")
        where = Path(self.where)
        return [where / f for f in sorted(os.listdir(where))
                if io_wrapper.IsSummaryEventsFile(f) and (where / f).is_file()]

    def _raw(self, path: Path) -> Iterator[tuple[int, bytes] | Problem]:
        """(byte offset, serialized Event) per record, then a Problem if the file was not read to its end."""
        efl = _lib("tensorboard.backend.event_processing.event_file_loader")
        tf = _lib("tensorboard.compat").tf
        offset = 0
        try:
            for data in efl.RawEventFileLoader(str(path)).Load():
                yield offset, data
                offset += len(data) + _FRAME
            size = path.stat().st_size
        except (OSError, tf.errors.OpError) as exc:
            yield Problem(str(path), f"byte {offset}", f"cannot read the event file: {exc}")
            return
        if offset < size:
            yield Problem(str(path), f"byte {offset}", _diagnose(path, offset, size))

    def records(self) -> Iterator[Record]:
        event_pb2 = _lib("tensorboard.compat.proto.event_pb2")
        data_compat = _lib("tensorboard.data_compat")
        dataclass_compat = _lib("tensorboard.dataclass_compat")
        tensor_util = _lib("tensorboard.util.tensor_util")
        decode_error = _lib("google.protobuf.message").DecodeError
        initial_metadata: dict[str, Any] = {}  # per run, as dataclass_compat wants (TF2 writes it once per tag)
        skipped: dict[str, int] = {}
        hparams: dict[str, Any] = {}
        try:
            paths = self._event_files()
        except OSError as exc:  # the run directory went away since runs() listed it
            yield Problem(self.where, "directory", f"cannot list the run directory: {exc}")
            return
        for path in paths:
            for number, item in enumerate(self._raw(path), 1):
                if isinstance(item, Problem):
                    yield item
                    continue
                offset, data = item
                try:
                    event = event_pb2.Event.FromString(data)
                except decode_error as exc:  # the CRC held, so the framing is fine: skip just this record
                    yield Problem(str(path), f"byte {offset}", f"record {number} is not an Event: {exc}")
                    continue
                if not event.HasField("summary"):
                    continue  # file_version, graph_def, session_log, ...: nothing to import
                values = event.summary.value
                # Fast path for legacy scalars (tensorboardX, torch): data_compat would only wrap this very
                # float32 into a scalar tensor, at ~7x the cost of reading the record.
                if values and all(v.WhichOneof("value") == "simple_value" for v in values):
                    for v in values:
                        yield Point(v.tag, {"value": v.simple_value, "step": event.step,
                                            "timestamp": event.wall_time})
                    continue
                for migrated in dataclass_compat.migrate_event(data_compat.migrate_event(event),
                                                               initial_metadata):
                    yield from _values(migrated, initial_metadata, tensor_util, skipped, hparams)
        self.metadata["tensorboard"]["skipped"] = skipped  # known only once the run has been read
        self._hparams = hparams

    def params(self) -> dict[str, Any]:
        """The hparams plugin's session_start_info values; later ones win. From the last records() pass
        when there was one; else the files are read for them (only those records are parsed)."""
        if self._hparams is not None:
            return dict(self._hparams)
        event_pb2 = _lib("tensorboard.compat.proto.event_pb2")
        params: dict[str, Any] = {}
        try:
            paths = self._event_files()
        except OSError:
            return params  # records() reports it
        for path in paths:
            for item in self._raw(path):
                if isinstance(item, Problem) or _HPARAMS_START_TAG not in item[1]:
                    continue  # records() reports the problems; a cheap byte test skips everything else
                for value in event_pb2.Event.FromString(item[1]).summary.value:
                    _collect_hparams(value, params)
        return params


def _collect_hparams(value: Any, params: dict[str, Any]) -> None:
    """The hparams of a session_start_info summary value into ``params`` (other values: nothing)."""
    hparams_metadata = _lib("tensorboard.plugins.hparams.metadata")
    if value.tag != hparams_metadata.SESSION_START_INFO_TAG:
        return
    json_format = _lib("google.protobuf.json_format")
    info = hparams_metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
    # google.protobuf.Value -> number (float), string, bool, list or dict.
    params.update({k: json_format.MessageToDict(v) for k, v in info.hparams.items()})


def _values(event: Any, initial_metadata: dict[str, Any], tensor_util: ModuleType,
            skipped: dict[str, int], hparams: dict[str, Any]) -> Iterator[Record]:
    """Records of one event after TensorBoard's compat layers (all values are tensors by then)."""
    for value in event.summary.value:
        first = initial_metadata.get(value.tag)
        plugin = (first or value.metadata).plugin_data.plugin_name
        if plugin == "scalars":
            yield Point(value.tag, {"value": float(tensor_util.make_ndarray(value.tensor).item()),
                                    "step": event.step, "timestamp": event.wall_time})
        elif plugin == "text":
            cells = tensor_util.make_ndarray(value.tensor)
            # A text tensor may be a table; one line per row, cells joined by tabs.
            rows = cells.reshape(1, -1) if cells.ndim < 2 else cells.reshape(cells.shape[0], -1)
            text = "\n".join("\t".join(c.decode("utf-8", "replace") for c in row) for row in rows)
            yield LogLine(text, "info", _iso(event.wall_time), {"tag": value.tag, "step": event.step})
        elif plugin == "images":
            blobs = list(value.tensor.string_val[2:])  # [width, height, image, image, ...]
            for i, blob in enumerate(blobs):
                yield FileItem(f"/images/{value.tag}", _image_name(event.step, i, len(blobs), blob), data=blob)
        elif plugin == "hparams":  # params(), not records
            _collect_hparams(value, hparams)
        else:
            key = plugin or "untyped"
            skipped[key] = skipped.get(key, 0) + 1


def _diagnose(path: Path, offset: int, size: int) -> str:
    """Why the loader stopped at ``offset`` before ``size``: it hides the DataLossError, so look ourselves."""
    pywrap = _lib("tensorboard.compat.tensorflow_stub.pywrap_tensorflow")  # pure-Python masked CRC32C
    with open(path, "rb") as f:
        f.seek(offset)
        header = f.read(12)
    rest = f"{size - offset} bytes from byte {offset} on are skipped"
    if len(header) < 12:
        return f"truncated record: the file ends inside a record header ({rest}; still being written?)"
    (length,) = struct.unpack("<Q", header[:8])
    if pywrap.masked_crc32c(header[:8]) != struct.unpack("<I", header[8:])[0]:
        return f"damaged record: the length CRC check failed ({rest})"
    if offset + length + _FRAME > size:
        return (f"truncated record: {length + _FRAME} bytes announced, the file ends after "
                f"{size - offset} ({rest}; still being written?)")
    return f"damaged record: the data CRC check failed ({rest})"
