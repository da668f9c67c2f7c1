"""Files: multipart upload streamed to the blob store, list, metadata, download, update, delete.

An upload is parsed as it arrives and never held whole: the event loop receives the next MiB of
the body while a worker thread parses, hashes and writes the previous one (two batches at most in
memory per upload), so receiving and storing overlap. ``POST /experiments/{id}/files`` takes one
file (the 0.5.8 route, unchanged on the wire); ``POST /experiments/{id}/batch/files`` takes many
small files in one request (``ml-dash upload`` uses it for small files when the server has it):
each file is verified, stored and recorded on its own, and answered on its own.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ml_dash.api.errors import ServerError
from ml_dash.api.models import FileUpdate
from ml_dash.server import render
from ml_dash.server.routes.deps import principal, state
from ml_dash.server.state import Principal, ServerState
from ml_dash.server.storage.blobs import StagedBlob

router = APIRouter()
MAX_FIELD_BYTES = 1024 * 1024
FEED_BYTES = 1024 * 1024  # the body is handed to the worker thread in batches of about this size
METADATA_HINT = 'send metadata as a JSON object, e.g. {"epoch": 3}'
MULTIPART_HINT = "send the file as the 'file' part of a multipart/form-data body"
_DISPOSITION = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# Parsing, hashing and writing uploads, off the event loop. Its own pool: an upload's batches run
# one after the other, and a slow disk never takes the threads the synchronous routes run in.
_WORKERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ml-dash-upload")


class _Parts:
    """python-multipart callbacks: text fields into memory (bounded), file parts to the hooks."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self._headers: dict[str, str] = {}
        self._field = b""
        self._value = b""
        self._name: str | None = None
        self._buffer = bytearray()
        self._is_file = False

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self._begin, "on_header_field": self._hfield, "on_header_value": self._hvalue,
                "on_header_end": self._hend, "on_headers_finished": self._headers_done, "on_part_data": self._data,
                "on_part_end": self._end}

    def _begin(self) -> None:
        self._headers, self._buffer, self._is_file, self._name = {}, bytearray(), False, None

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _hend(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value.decode("utf-8", "replace")
        self._field, self._value = b"", b""

    def _headers_done(self) -> None:
        params = dict(_DISPOSITION.findall(self._headers.get("content-disposition", "")))
        self._name = params.get("name")
        if "filename" in params:
            self._is_file = True
            self.file_begin(params["filename"], self._headers.get("content-type", "application/octet-stream"))

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:  # a view, not a copy: the bytes go straight to the hash and the file
            self.file_data(memoryview(data)[start:end])
        else:
            self._buffer += data[start:end]
            if len(self._buffer) > MAX_FIELD_BYTES:
                raise ServerError("payload_too_large", f"form field {self._name!r} is larger than 1 MiB",
                                  hint="keep description, tags and metadata small; store large data as a file")

    def _end(self) -> None:
        if self._is_file:
            self.file_end()
        elif self._name:
            self.fields[self._name] = self._buffer.decode("utf-8", "replace")

    def file_begin(self, filename: str, content_type: str) -> None:
        raise NotImplementedError

    def file_data(self, data: memoryview) -> None:
        raise NotImplementedError

    def file_end(self) -> None:
        """A file part is complete (called in the worker thread, as every callback)."""

    def discard(self) -> None:
        """The upload failed: nothing staged may stay behind."""


class _OneFile(_Parts):
    """The 0.5.8 upload: text fields, then one file, staged in the blob store while it arrives."""

    def __init__(self, st: ServerState) -> None:
        super().__init__()
        self.st = st
        self.staged: StagedBlob | None = None
        self.filename: str | None = None
        self.content_type = "application/octet-stream"

    def file_begin(self, filename: str, content_type: str) -> None:
        if self.staged is not None:
            raise ServerError("invalid", "one file per upload request", hint="send each file in its own request")
        self.filename, self.content_type = filename, content_type
        self.staged = self.st.blobs.stage(self.st.cfg.limits.max_file_bytes)

    def file_data(self, data: memoryview) -> None:
        assert self.staged is not None
        self.staged.write(data)

    def discard(self) -> None:
        if self.staged is not None:
            self.staged.discard()


def _plain_name(value: str | None, what: str) -> str:
    if not value or "/" in value or "\\" in value or value in (".", "..") or "\x00" in value:
        raise ServerError("invalid", f"{what} {value!r} is not a plain file name",
                          hint="no '/', not '.' or '..'; folders go into the prefix field")
    return value


def _prefix(value: str | None) -> str:
    prefix = value or "/"
    if any(part in (".", "..") for part in prefix.replace("\\", "/").split("/")) or "\x00" in prefix:
        raise ServerError("invalid", f"prefix {prefix!r} must not contain '.' or '..' segments",
                          hint="give a path such as /models/checkpoints")
    return prefix if prefix.startswith("/") else "/" + prefix


def _multipart(request: Request, sink: _Parts) -> Any:
    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ServerError("invalid", "a file upload must be multipart/form-data with a 'file' part",
                          hint=MULTIPART_HINT)
    return MultipartParser(boundary, sink.callbacks())


async def _feed(request: Request, write: Callable[[list[bytes]], None]) -> None:
    """Pass the body to ``write`` in order, in batches of about FEED_BYTES, each in the worker pool
    while the next one is received. On any failure (a disconnect, a body too large, an error of
    ``write``) the batch being written is waited for, so its caller may discard what was staged."""
    running: Future[None] | None = None
    batch: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            batch.append(chunk)
            size += len(chunk)
            if size >= FEED_BYTES:
                if running is not None:
                    await asyncio.wrap_future(running)
                running, batch, size = _WORKERS.submit(write, batch), [], 0
        if running is not None:
            await asyncio.wrap_future(running)
        running = _WORKERS.submit(write, batch) if batch else None
        if running is not None:
            await asyncio.wrap_future(running)
    except ClientDisconnect:  # not a server fault: an error answer (no one reads it), not a traceback
        raise ServerError("bad_request", "the client went away before the upload was complete",
                          hint="upload the file again") from None
    finally:
        if running is not None and not running.done():
            wait_for([running])  # a few milliseconds at most: one batch


def _writer(parser: Any) -> Callable[[list[bytes]], None]:
    def write(batch: list[bytes]) -> None:
        # One parse of the whole batch: the file's bytes then reach the hash and the disk in one
        # piece, each releasing the GIL once per batch instead of once per received chunk.
        parser.write(batch[0] if len(batch) == 1 else b"".join(batch))
    return write


@router.post("/experiments/{experiment_id}/files", status_code=201)
async def upload_file(experiment_id: str, request: Request, st: ServerState = Depends(state),
                      who: Principal = Depends(principal)) -> dict[str, Any]:
    exp = await run_in_threadpool(st.experiment, who, experiment_id)
    sink = _OneFile(st)
    parser = _multipart(request, sink)
    try:
        await _feed(request, _writer(parser))
        parser.finalize()
        if sink.staged is None:
            raise ServerError("invalid", "the upload has no 'file' part", hint=MULTIPART_HINT)
        digest = await run_in_threadpool(sink.staged.finish)
        fields = sink.fields
        claimed = fields.get("checksum")
        if claimed and claimed != digest:
            raise ServerError("checksum_mismatch", "checksum does not match the uploaded content",
                              hint="the file changed or was damaged in transit; upload it again")
        size = sink.staged.size
        if fields.get("sizeBytes") not in (None, "") and fields["sizeBytes"] != str(size):
            raise ServerError("invalid", f"sizeBytes says {fields['sizeBytes']}, {size} bytes arrived",
                              hint="the file changed while it was sent, or sizeBytes is wrong; upload it again")
        record = {
            "path": _prefix(fields.get("prefix")), "filename": _plain_name(sink.filename, "filename"),
            "description": fields.get("description") or None,
            "tags": [t for t in (fields.get("tags") or "").split(",") if t],
            "content_type": sink.content_type, "size_bytes": size, "checksum": digest,
            "metadata": _json_field(fields.get("metadata")),
        }
        await run_in_threadpool(st.blobs.commit, sink.staged, digest)
    except BaseException:
        sink.discard()
        raise
    row, _ = await run_in_threadpool(st.store.add_file, exp["id"], record)
    return render.file(row)


# --- many small files in one request ---------------------------------------------------------------------
BATCH_HINT = ("send a 'manifest' field (a JSON list of {filename, prefix, checksum, sizeBytes, contentType, "
              "description, tags, metadata}) and then one 'file' part per entry, in the same order")


class _Batch(_Parts):
    """``manifest`` (a JSON list, one entry per file), then one file part per entry, in order. Each
    file is checked against its entry, committed to the blob store and recorded as soon as its part
    ends; a file that fails its checks is answered with its error and the others are stored."""

    def __init__(self, st: ServerState, experiment_id: int) -> None:
        super().__init__()
        self.st, self.experiment_id = st, experiment_id
        self.entries: list[dict[str, Any]] | None = None
        self.results: list[dict[str, Any]] = []
        self._staged: StagedBlob | None = None
        self._entry: dict[str, Any] | None = None
        self._failed: ServerError | None = None

    def file_begin(self, filename: str, content_type: str) -> None:
        if self.entries is None:
            self.entries = _manifest(self.fields.get("manifest"))
        n = len(self.results)
        if n >= len(self.entries):
            raise ServerError("invalid", f"more file parts than the {len(self.entries)} entries of the manifest",
                              hint=BATCH_HINT)
        self._failed = None
        try:
            self._entry = _batch_record(self.entries[n], n)
            self._staged = self.st.blobs.stage(self.st.cfg.limits.max_file_bytes)
        except ServerError as exc:
            _unless_unavailable(exc)
            self._failed = exc

    def file_data(self, data: memoryview) -> None:
        if self._staged is None:
            return  # this file failed already: its bytes are skipped
        try:
            self._staged.write(data)
        except ServerError as exc:
            self._staged.discard()
            self._staged, self._failed = None, exc
            _unless_unavailable(exc)

    def file_end(self) -> None:
        staged, entry = self._staged, self._entry
        if staged is None or entry is None:
            assert self._failed is not None
            self.results.append(_error(self._failed))
            return
        try:
            digest = staged.finish()
            if digest != entry["checksum"]:
                raise ServerError("checksum_mismatch", f"{entry['filename']}: checksum does not match the uploaded "
                                  "content", hint="the file changed or was damaged in transit; upload it again")
            if staged.size != entry["size_bytes"]:
                raise ServerError("invalid", f"{entry['filename']}: sizeBytes says {entry['size_bytes']}, "
                                  f"{staged.size} bytes arrived", hint="upload it again")
        except ServerError as exc:
            self.discard()
            _unless_unavailable(exc)
            self.results.append(_error(exc))
            return
        # The blob before the record: a record always has its content. If the commit fails, the
        # route's discard() removes what is left staged (and the request fails, to be retried).
        self.st.blobs.commit(staged, digest)
        self._staged = None
        row, created = self.st.store.add_file(self.experiment_id, entry)
        self.results.append({"file": render.file(row), "created": created})

    def discard(self) -> None:
        if self._staged is not None:
            self._staged.discard()
            self._staged = None


def _unless_unavailable(exc: ServerError) -> None:
    """A store that is away or full fails the whole request (503 + Retry-After: the client sends the
    batch again), not one file of it as if that file were bad."""
    if exc.status == 503:
        raise exc


def _error(exc: ServerError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message, "hint": exc.hint}, "status": exc.status}


def _manifest(text: str | None) -> list[dict[str, Any]]:
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ServerError("invalid", "manifest: must be a JSON list of objects, sent before the files",
                          hint=BATCH_HINT)
    return value


def _batch_record(entry: dict[str, Any], n: int) -> dict[str, Any]:
    """The file record of one manifest entry (its checksum and size to be checked on arrival)."""
    checksum, size, tags = entry.get("checksum"), entry.get("sizeBytes"), entry.get("tags") or []
    if not isinstance(checksum, str) or len(checksum) != 64 or any(c not in "0123456789abcdef" for c in checksum):
        raise ServerError("invalid", f"manifest entry {n}: checksum must be a lowercase sha256 hex digest",
                          hint="send hashlib.sha256(content).hexdigest()")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ServerError("invalid", f"manifest entry {n}: sizeBytes must be a whole number", hint=BATCH_HINT)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ServerError("invalid", f"manifest entry {n}: tags must be a list of strings", hint=BATCH_HINT)
    metadata = entry.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ServerError("invalid", f"manifest entry {n}: metadata must be a JSON object", hint=METADATA_HINT)
    description = entry.get("description")
    content_type = entry.get("contentType") or "application/octet-stream"
    if not isinstance(description, str | None) or not isinstance(content_type, str):
        raise ServerError("invalid", f"manifest entry {n}: description and contentType must be text",
                          hint=BATCH_HINT)
    prefix = entry.get("prefix")
    return {"path": _prefix(prefix if isinstance(prefix, str) else None),
            "filename": _plain_name(entry.get("filename") if isinstance(entry.get("filename"), str) else None,
                                    "filename"),
            "description": description or None, "tags": [t for t in tags if t], "content_type": content_type,
            "size_bytes": size, "checksum": checksum, "metadata": metadata or None}


@router.post("/experiments/{experiment_id}/batch/files", include_in_schema=False)
async def upload_files(experiment_id: str, request: Request, st: ServerState = Depends(state),
                       who: Principal = Depends(principal)) -> dict[str, Any]:
    """Many files in one request: ``{"files": [{"file": <record>, "created": bool} | {"error": ...,
    "status": int}]}`` in the manifest's order. An empty manifest stores nothing (clients ask with
    one whether the server has this route)."""
    exp = await run_in_threadpool(st.experiment, who, experiment_id)
    sink = _Batch(st, exp["id"])
    parser = _multipart(request, sink)
    try:
        await _feed(request, _writer(parser))
        parser.finalize()
    except BaseException:
        sink.discard()
        raise
    entries = sink.entries if sink.entries is not None else _manifest(sink.fields.get("manifest"))
    if len(sink.results) != len(entries):
        raise ServerError("invalid", f"the manifest lists {len(entries)} files, {len(sink.results)} arrived",
                          hint=BATCH_HINT)
    return {"files": sink.results}


def _json_field(text: str | None) -> Any:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ServerError("invalid", "metadata: must be a JSON object", hint=METADATA_HINT) from None
    if not isinstance(value, dict):
        raise ServerError("invalid", "metadata: must be a JSON object", hint=METADATA_HINT)
    return value


@router.get("/experiments/{experiment_id}/files")
def list_files(experiment_id: str, prefix: str | None = None, tags: str | None = None,
               st: ServerState = Depends(state), who: Principal = Depends(principal)) -> dict[str, Any]:
    exp = st.experiment(who, experiment_id)
    files = [render.file(f) for f in st.store.list_files(exp["id"])]
    if prefix:
        files = [f for f in files if f["path"].startswith(prefix)]
    if tags:
        wanted = {t for t in tags.split(",") if t}
        files = [f for f in files if wanted & set(f["tags"])]
    return {"files": files, "total": len(files)}


def _file(st: ServerState, who: Principal, experiment_id: str, file_id: str) -> dict[str, Any]:
    exp = st.experiment(who, experiment_id)
    row = st.store.get_file(exp["id"], int(file_id)) if file_id.isdigit() else None
    if row is None:
        raise ServerError("not_found", f"file {file_id} not found in experiment {experiment_id}",
                          hint=f"GET /experiments/{experiment_id}/files lists the experiment's files")
    return row


@router.get("/experiments/{experiment_id}/files/{file_id}")
def file_meta(experiment_id: str, file_id: str, st: ServerState = Depends(state),
              who: Principal = Depends(principal)) -> dict[str, Any]:
    return render.file(_file(st, who, experiment_id, file_id))


# Shown in the browser with ?inline=1 (the dashboard's previews); the rest always downloads. Text
# of any kind (HTML, SVG sources, scripts) is shown as plain text, never run in the dashboard's origin.
_INLINE_MEDIA = ("image/", "video/", "audio/")
_INLINE_TEXT = ("text/", "application/json", "application/x-ndjson", "application/yaml", "application/x-yaml",
                "application/toml", "application/xml", "application/javascript")
# A stored file is the uploader's content: even opened directly it runs no script, loads nothing,
# and is never sniffed into something else.
_FILE_HEADERS = {"Content-Security-Policy": "default-src 'none'; img-src 'self' data:; media-src 'self'; "
                                            "style-src 'unsafe-inline'; sandbox",
                 "X-Content-Type-Options": "nosniff"}


def _disposition(kind: str, filename: str) -> str:
    from urllib.parse import quote

    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/experiments/{experiment_id}/files/{file_id}/download")
def download(experiment_id: str, file_id: str, inline: bool = False, st: ServerState = Depends(state),
             who: Principal = Depends(principal)) -> StreamingResponse:
    """The file's content; ``inline=1``: to be shown in the browser (images, video, audio, text)."""
    row = _file(st, who, experiment_id, file_id)
    if not st.blobs.exists(row["checksum"]):
        raise ServerError("not_found", f"the content of file {file_id} is missing from the blob store",
                          hint="the server's blob store lost it; upload the file again")
    media = row["content_type"] or "application/octet-stream"
    kind = "attachment"
    if inline:
        base = media.split(";")[0].strip().lower()
        if base.startswith(_INLINE_TEXT):
            media, kind = "text/plain; charset=utf-8", "inline"
        elif base.startswith(_INLINE_MEDIA):
            kind = "inline"
    headers = {"Content-Length": str(row["size_bytes"]), "Content-Disposition": _disposition(kind, row["filename"]),
               "X-Checksum-Sha256": row["checksum"], **_FILE_HEADERS}
    return StreamingResponse(st.blobs.open(row["checksum"]), media_type=media, headers=headers)


@router.patch("/experiments/{experiment_id}/files/{file_id}")
def update_file(experiment_id: str, file_id: str, body: FileUpdate, st: ServerState = Depends(state),
                who: Principal = Depends(principal)) -> dict[str, Any]:
    row = _file(st, who, experiment_id, file_id)
    if row["deleted_at"]:
        raise ServerError("not_found", f"file {file_id} has been deleted",
                          hint="upload it again to make a new file record")
    updated = st.store.update_file(row["experiment_id"], row["id"], body.model_dump(exclude_none=True))
    assert updated is not None
    return render.file(updated)


@router.delete("/experiments/{experiment_id}/files/{file_id}")
def delete_file(experiment_id: str, file_id: str, st: ServerState = Depends(state),
                who: Principal = Depends(principal)) -> dict[str, Any]:
    from ml_dash.server.ids import now_iso

    row = _file(st, who, experiment_id, file_id)
    if row["deleted_at"]:
        raise ServerError("not_found", f"file {file_id} has already been deleted",
                          hint=f"nothing to delete; GET /experiments/{experiment_id}/files lists the live files")
    updated = st.store.update_file(row["experiment_id"], row["id"], {"deleted_at": now_iso()})
    assert updated is not None
    return {"id": str(updated["id"]), "deletedAt": updated["deleted_at"]}
