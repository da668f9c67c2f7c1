"""Files: multipart upload streamed to the blob store, list, metadata, download, update, delete."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ml_dash.api.errors import ServerError
from ml_dash.api.models import FileUpdate
from ml_dash.server import render
from ml_dash.server.routes.deps import principal, state
from ml_dash.server.state import Principal, ServerState
from ml_dash.server.storage.blobs import StagedBlob

router = APIRouter()
MAX_FIELD_BYTES = 1024 * 1024
WRITE_CHUNK = 1024 * 1024
METADATA_HINT = 'send metadata as a JSON object, e.g. {"epoch": 3}'
_DISPOSITION = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class _MultipartSink:
    """python-multipart callbacks: text fields into memory (bounded), the file into the blob store."""

    def __init__(self, st: ServerState) -> None:
        self.st = st
        self.fields: dict[str, str] = {}
        self.staged: StagedBlob | None = None
        self.filename: str | None = None
        self.content_type = "application/octet-stream"
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
            if self.staged is not None:
                raise ServerError("invalid", "one file per upload request", hint="send each file in its own request")
            self._is_file = True
            self.filename = params["filename"]
            self.content_type = self._headers.get("content-type", "application/octet-stream")
            self.staged = self.st.blobs.stage(self.st.cfg.limits.max_file_bytes)

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            assert self.staged is not None
            self.staged.write(data[start:end])
        else:
            self._buffer += data[start:end]
            if len(self._buffer) > MAX_FIELD_BYTES:
                raise ServerError("payload_too_large", f"form field {self._name!r} is larger than 1 MiB",
                                  hint="keep description, tags and metadata small; store large data as a file")

    def _end(self) -> None:
        if not self._is_file and self._name:
            self.fields[self._name] = self._buffer.decode("utf-8", "replace")


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


@router.post("/experiments/{experiment_id}/files", status_code=201)
async def upload_file(experiment_id: str, request: Request, st: ServerState = Depends(state),
                      who: Principal = Depends(principal)) -> dict[str, Any]:
    from python_multipart.multipart import MultipartParser, parse_options_header

    exp = await run_in_threadpool(st.experiment, who, experiment_id)
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ServerError("invalid", "a file upload must be multipart/form-data with a 'file' part",
                          hint="send the file as the 'file' part of a multipart/form-data body")
    sink = _MultipartSink(st)
    parser = MultipartParser(boundary, sink.callbacks())
    try:
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= WRITE_CHUNK:  # parse and write ~1 MiB at a time, off the event loop
                await run_in_threadpool(parser.write, bytes(pending))
                pending.clear()
        if pending:
            await run_in_threadpool(parser.write, bytes(pending))
        parser.finalize()
        if sink.staged is None:
            raise ServerError("invalid", "the upload has no 'file' part",
                              hint="send the file as the 'file' part of a multipart/form-data body")
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
        if sink.staged is not None:
            sink.staged.discard()
        raise
    row, _ = await run_in_threadpool(st.store.add_file, exp["id"], record)
    return render.file(row)


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
