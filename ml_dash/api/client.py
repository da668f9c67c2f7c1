"""``ApiClient``: the HTTP side of the wire contract, used by ``ml-dash upload`` and the SDK.

One ``httpx.Client`` (keep-alive, bounded connection pool) per client. Every request is
retried with exponential back-off and jitter on network errors, timeouts, 429
(honouring ``Retry-After``) and 5xx, a bounded number of times. httpx exceptions are
translated to :class:`ApiError` here and only here.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ml_dash import __version__
from ml_dash.api.models import ExperimentCreate, LogsAppendOut, StatusUpdate, StreamsOut
from ml_dash.errors import ApiError, ChecksumMismatchError

__all__ = ["ApiClient", "BatchFile", "RetryPolicy", "ServerUnreachable"]

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class ServerUnreachable(ApiError):
    """The server could not be reached (connection refused/reset, DNS, timeout) after retrying."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    backoff: float = 0.5
    max_backoff: float = 30.0
    timeout: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        base = min(self.max_backoff, self.backoff * (2 ** attempt))
        backoff = base * random.uniform(0.5, 1.0)  # jitter: retrying clients do not stampede together
        if retry_after is not None:
            # The server's word is the least to wait; the backoff still grows, so a budget of
            # retries outlasts an outage longer than attempts x Retry-After (a database restart).
            return min(max(retry_after, backoff), self.max_backoff)
        return backoff


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return parsed.timestamp() - time.time() if parsed else None


def _error_from(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        err = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        err = None
    if isinstance(err, dict):
        message, hint, code = str(err.get("message")), err.get("hint"), err.get("code")
    else:
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
        message, hint, code = f"HTTP {response.status_code}: {text}", None, None
    if response.status_code == 401 and hint is None:
        hint = "check the API key (ML_DASH_API_KEY, --api-key, or api_key in ~/.ml-dash/config.json)"
    exc = ApiError(message, status=response.status_code, hint=hint)
    exc.code = code  # type: ignore[attr-defined]
    return exc


def _segment(name: str) -> str:
    return quote(name, safe="/")


class ApiClient:
    """A bearer-token client for one server."""

    def __init__(self, base_url: str, token: str, *, retry: RetryPolicy | None = None, max_connections: int = 8,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.sleep = sleep  # the back-off between attempts (tests pass a fake)
        self.requests = 0
        self._count_lock = threading.Lock()
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        # Plain http: no TLS, so no certificate store to load (building it is most of a client's start-up).
        plain = self.base_url.startswith("http://")
        self._http = httpx.Client(base_url=self.base_url, timeout=self.retry.timeout, limits=limits,
                                  transport=transport, verify=not plain,
                                  headers={"Authorization": f"Bearer {token}",
                                           "User-Agent": f"ml-dash/{__version__}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the one request loop ----------------------------------------------------------------------
    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (), attempts: int | None = None,
                **kwargs: Any) -> httpx.Response:
        """Send with retries (``attempts``, default the policy's); return a 2xx response (or one
        whose status is in ``ok``).

        ``kwargs["files"]`` may be a callable returning the files argument, so a retried
        upload re-opens its file instead of resending a consumed stream.
        """
        files_factory = kwargs.pop("files", None)
        if "json" in kwargs:  # encoded here: NaN and ±Infinity go as the JSON tokens 0.5.8 writes
            kwargs["content"] = json.dumps(kwargs.pop("json"), separators=(",", ":")).encode()
            kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/json"}
        last: ApiError | None = None
        attempts = self.retry.attempts if attempts is None else attempts
        for attempt in range(attempts):
            if attempt:
                assert last is not None
                self.sleep(self.retry.delay(attempt - 1, getattr(last, "retry_after", None)))
            opened = files_factory() if callable(files_factory) else files_factory
            try:
                with self._count_lock:
                    self.requests += 1
                response = self._http.request(method, path, files=opened, **kwargs)
            except httpx.TimeoutException as exc:
                last = ServerUnreachable(f"{method} {path}: timed out after {self.retry.timeout:g}s ({type(exc).__name__})",
                                         hint="the server is slow or unreachable; raise retry.timeout or retry later")
                continue
            except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
                last = ServerUnreachable(f"{method} {path}: cannot reach {self.base_url} ({exc})",
                                         hint="is the server running? check the URL (--remote / ML_DASH_REMOTE)")
                continue
            finally:
                _close_files(opened)
            if response.is_success or response.status_code in ok:
                return response
            error = _error_from(response)
            if response.status_code not in RETRY_STATUSES:
                raise error
            error.retry_after = _retry_after(response)  # type: ignore[attr-defined]
            last = error
        assert last is not None
        last.message = f"{last.message} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})"
        raise last

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return json_of(self.request(method, path, **kwargs), "is --remote pointing at an ml-dash server?")

    # --- experiments -----------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return dict(self._json("GET", "/health"))

    def create_experiment(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        # The request goes through the shared wire model: a bad body fails here, not at the server.
        payload = ExperimentCreate.model_validate(body).model_dump(exclude_none=True)
        data = self._json("POST", f"/projects/{_segment(project)}/experiments", json=payload)
        return dict(data.get("experiment") or data)

    def preflight(self) -> None:
        """One authenticated request that changes nothing, before the first write: raises
        :class:`ServerUnreachable` (after the retry budget) or an ``ApiError`` with status 401 when
        the key is refused. Only 0.5.8 routes: an unknown experiment answers 403/404 to a valid key."""
        self.request("GET", "/experiments/0/parameters", ok=(400, 403, 404, 422))

    def set_status(self, experiment_id: str, status: str) -> None:
        self._json("PATCH", f"/experiments/{experiment_id}/status", json=StatusUpdate(status=status).model_dump())

    def streams(self, experiment_id: str, writer_id: str | None = None) -> dict[str, Any] | None:
        """How far each stream got (and which of ``writer_id``'s records each stream has), or
        None when the server does not tell (older servers)."""
        params = {"writer": writer_id} if writer_id else None
        response = self.request("GET", f"/experiments/{experiment_id}/streams", ok=(404, 405), params=params)
        if response.status_code in (404, 405):
            return None
        return StreamsOut.model_validate(response.json()).model_dump()

    def progress_058(self, experiment_id: str, metrics: list[str]) -> dict[str, Any]:
        """What ``streams`` tells, asked through the 0.5.8 routes only (for servers without it):
        parameters, the log total, each metric's point count, the live files. Counts a server
        does not report are 0: the records then go by position, and the server skips what it has."""
        params = self._json("GET", f"/experiments/{experiment_id}/parameters")
        logs = self._json("GET", f"/experiments/{experiment_id}/logs", params={"limit": 1, "offset": 0})
        counts: dict[str, int] = {}
        for name in metrics:
            response = self.request("GET", f"/experiments/{experiment_id}/metrics/{_segment(name)}/stats", ok=(404,))
            stats = response.json() if response.status_code == 200 else {}
            counts[name] = int(stats.get("totalDataPoints") or 0)
        return {"parameters": params.get("data") or {}, "logs": int(logs.get("total") or 0), "metrics": counts,
                "files": self.list_files(experiment_id), "writers": False}

    def merge_params(self, experiment_id: str, data: dict[str, Any]) -> dict[str, Any]:
        return dict(self._json("POST", f"/experiments/{experiment_id}/parameters", json={"data": data}))

    def get_params(self, experiment_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/experiments/{experiment_id}/parameters"))

    def append_logs(self, experiment_id: str, entries: list[dict[str, Any]], writer_id: str | None = None,
                    ) -> dict[str, Any]:
        """Append lines; with ``writer_id`` every entry carries its ``writerSeq``."""
        body: dict[str, Any] = {"logs": entries}
        if writer_id is not None:
            body["writerId"] = writer_id
        out = self._json("POST", f"/experiments/{experiment_id}/logs", json=body)
        return LogsAppendOut.model_validate(out).model_dump()

    def query_logs(self, experiment_id: str, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
        return dict(self._json("GET", f"/experiments/{experiment_id}/logs",
                               params={"offset": offset, "limit": limit, "orderBy": "sequenceNumber",
                                       "order": "asc"}))

    def append_batch(self, experiment_id: str, metric: str, points: list[Any], start_index: int | None,
                     extra: dict[str, Any] | None = None, *, writer_id: str | None = None,
                     writer_seqs: int | list[int] | None = None, encoded: bool = False) -> dict[str, Any]:
        """Append points at ``start_index`` (or at the end), or as ``writer_id``'s records numbered
        ``writer_seqs`` (the first number when they follow on, else one number per point).
        ``encoded``: each point is its JSON text already, str or bytes (joined as they are, not
        encoded again: the upload forwards the points of a local tree as they are written)."""
        body: dict[str, Any] = {**(extra or {})}
        if start_index is not None:
            body["startIndex"] = start_index
        if writer_id is not None:
            body["writerId"] = writer_id
            body["writerSeq" if isinstance(writer_seqs, int) else "writerSeqs"] = writer_seqs
        path = f"/experiments/{experiment_id}/metrics/{_segment(metric)}/append-batch"
        if not encoded:
            return dict(self._json("POST", path, json={"dataPoints": points, **body}))
        rest = json.dumps(body, separators=(",", ":"))[1:].encode()
        joined = ",".join(points).encode() if points and isinstance(points[0], str) else b",".join(points)
        content = b'{"dataPoints":[' + joined + b"]" + (b"," + rest if body else b"}")
        return dict(self._json("POST", path, content=content, headers={"Content-Type": "application/json"}))

    def read_metric(self, experiment_id: str, metric: str, start_index: int = 0, limit: int = 1000) -> dict[str, Any]:
        return dict(self._json("GET", f"/experiments/{experiment_id}/metrics/{_segment(metric)}/data",
                               params={"startIndex": start_index, "limit": limit}))

    def metric_stats(self, experiment_id: str, metric: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/experiments/{experiment_id}/metrics/{_segment(metric)}/stats"))

    def list_metrics(self, experiment_id: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/experiments/{experiment_id}/metrics")["metrics"])

    # --- files -------------------------------------------------------------------------------------------
    def upload_file(self, experiment_id: str, source: Path, *, prefix: str, filename: str, checksum: str,
                    size: int, content_type: str, description: str | None = None, tags: list[str] | None = None,
                    metadata: dict[str, Any] | None = None, attempts: int | None = None) -> dict[str, Any]:
        """Multipart upload, streamed from disk (the fields first, the file last, as 0.5.8).

        The bytes are hashed as they stream out; if they do not hash to ``checksum`` the request
        is aborted before its last chunk, so no server keeps them, and
        :class:`ChecksumMismatchError` is raised (one read of the file, never two).
        """
        data = file_form(prefix, checksum, size, description, tags, metadata)
        return dict(self._json("POST", f"/experiments/{experiment_id}/files", data=data, attempts=attempts,
                               files=lambda: {"file": (filename, _VerifyingReader(source, checksum), content_type)}))

    def upload_files(self, experiment_id: str, files: list[BatchFile], *, attempts: int | None = None,
                     ) -> list[dict[str, Any]] | None:
        """Many small files in one request (``POST /experiments/{id}/batch/files``), their bytes in
        memory already verified against their checksums by the caller. One answer per file, in
        order: ``{"file": record, "created": bool}`` or ``{"error": {code, message, hint}, "status"}``.
        None when the server has no such route (0.5.8's, or an older ml-dash): send each file with
        :meth:`upload_file` then. An empty list stores nothing: it asks whether the route is there."""
        boundary = secrets.token_hex(16)
        body = _batch_body(boundary, files)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
                   "Content-Length": str(sum(len(part) for part in body))}
        # A list, not a generator: the same body can be sent again by a retry.
        response = self.request("POST", f"/experiments/{experiment_id}/batch/files", ok=(404, 405),
                                attempts=attempts, content=body, headers=headers)
        if response.status_code in (404, 405):
            error = _error_from(response)
            if error.hint:  # ours, about this request (e.g. no such experiment): not a missing route
                raise error
            return None
        answers = json_of(response, "is --remote pointing at an ml-dash server?").get("files")
        if not isinstance(answers, list) or len(answers) != len(files):
            raise ApiError(f"POST /experiments/{experiment_id}/batch/files: {len(files)} files sent, the answer "
                           "does not list them", status=response.status_code,
                           hint="the server is not a compatible ml-dash server; upload with --workers 1 or "
                                "update the server")
        return answers

    def list_files(self, experiment_id: str, prefix: str | None = None, tags: list[str] | None = None,
                   ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("prefix", prefix), ("tags", ",".join(tags) if tags else None)) if v}
        return list(self._json("GET", f"/experiments/{experiment_id}/files", params=params).get("files", []))

    def file_meta(self, experiment_id: str, file_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/experiments/{experiment_id}/files/{file_id}"))

    def download_file(self, experiment_id: str, file_id: str) -> Iterator[bytes]:
        """Stream a file's bytes, retried like :meth:`request` (the same policy, back-off and
        ``Retry-After``); httpx errors become :class:`ServerUnreachable` / :class:`ApiError`.

        A download that breaks mid-stream is requested again and continues after the bytes
        already yielded, so the caller sees one contiguous stream (which it verifies by sha256);
        if the server's copy changed in between, an ``ApiError`` says so instead.
        """
        method, path = "GET", f"/experiments/{experiment_id}/files/{file_id}/download"
        delivered = 0  # bytes already yielded: a restarted download skips them
        checksum: str | None = None
        last: ApiError | None = None
        attempts = self.retry.attempts
        for attempt in range(attempts):
            if attempt:
                assert last is not None
                self.sleep(self.retry.delay(attempt - 1, getattr(last, "retry_after", None)))
            try:
                with self._count_lock:
                    self.requests += 1
                with self._http.stream(method, path) as response:
                    if not response.is_success:
                        response.read()
                        error = _error_from(response)
                        if response.status_code not in RETRY_STATUSES:
                            raise error
                        error.retry_after = _retry_after(response)  # type: ignore[attr-defined]
                        last = error
                        continue
                    sent = response.headers.get("x-checksum-sha256")
                    if delivered and checksum and sent and sent != checksum:
                        raise ApiError(f"{method} {path}: the file changed on the server while it was downloaded",
                                       status=response.status_code, hint="download it again")
                    checksum = checksum or sent
                    skip = delivered
                    for chunk in response.iter_bytes(1024 * 1024):
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk, skip = chunk[skip:], 0
                        delivered += len(chunk)
                        yield chunk
                    if skip:
                        raise ApiError(f"{method} {path}: the file is shorter than the part already downloaded",
                                       status=response.status_code, hint="the file changed on the server; "
                                                                         "download it again")
                    return
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
                    httpx.ProxyError) as exc:
                last = self._unreachable(method, path, exc)
        assert last is not None
        last.message = f"{last.message} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})"
        raise last

    def _unreachable(self, method: str, path: str, exc: httpx.HTTPError) -> ServerUnreachable:
        if isinstance(exc, httpx.TimeoutException):
            return ServerUnreachable(f"{method} {path}: timed out after {self.retry.timeout:g}s ({type(exc).__name__})",
                                     hint="the server is slow or unreachable; raise retry.timeout or retry later")
        return ServerUnreachable(f"{method} {path}: cannot reach {self.base_url} ({exc})",
                                 hint="is the server running? check the URL (--remote / ML_DASH_REMOTE)")

    def update_file(self, experiment_id: str, file_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return dict(self._json("PATCH", f"/experiments/{experiment_id}/files/{file_id}", json=changes))

    def delete_file(self, experiment_id: str, file_id: str) -> dict[str, Any]:
        return dict(self._json("DELETE", f"/experiments/{experiment_id}/files/{file_id}"))

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = self._json("POST", "/graphql", json={"query": query, "variables": variables})
        if body.get("errors"):
            raise ApiError(f"GraphQL: {body['errors'][0].get('message')}",
                           hint="check the query's fields and variables against the server's schema")
        return dict(body["data"])


class _VerifyingReader:
    """A file read in chunks for a multipart body, hashed on the way out. One chunk is held
    back until the end of the file is seen: a mismatch raises before the server has it all."""

    CHUNK = 1024 * 1024

    def __init__(self, path: Path, expected: str) -> None:
        self.path, self.expected = path, expected
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close(), after the request
        self._reset()

    def _reset(self) -> None:
        self._hash = hashlib.sha256()
        self._held: bytes | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    def fileno(self) -> int:  # lets httpx send a Content-Length (from fstat)
        return self._file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._file.seek(offset, whence)
        if position == 0:
            self._reset()
        return position

    def tell(self) -> int:
        return self._file.tell()

    def read(self, size: int = -1) -> bytes:
        if self._held is None:
            self._held = self._file.read(self.CHUNK)
            self._hash.update(self._held)
        chunk = self._file.read(self.CHUNK)
        self._hash.update(chunk)
        out, self._held = self._held, chunk
        if not chunk:  # the end of the file: the bytes held back go only if the hash is right
            actual = self._hash.hexdigest()
            if actual != self.expected:
                raise ChecksumMismatchError(str(self.path), self.expected, actual)
        return out

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class BatchFile:
    """A small file for :meth:`ApiClient.upload_files`: its record and its bytes (read once)."""

    prefix: str
    filename: str
    checksum: str
    content_type: str
    data: bytes
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None


def _batch_body(boundary: str, files: list[BatchFile]) -> list[bytes]:
    """The multipart body of a batch: the manifest, then each file's part in the same order. Tags
    go as the single-file route sends them (joined by commas and split again), so either route
    stores the same record."""
    manifest = [{"prefix": f.prefix, "filename": f.filename, "checksum": f.checksum, "sizeBytes": len(f.data),
                 "contentType": f.content_type, "description": f.description or None,
                 "tags": [t for t in ",".join(f.tags).split(",") if t], "metadata": f.metadata or None}
                for f in files]
    dash = f"--{boundary}\r\n".encode()
    body = [dash, b'Content-Disposition: form-data; name="manifest"\r\nContent-Type: application/json\r\n\r\n',
            json.dumps(manifest, separators=(",", ":")).encode(), b"\r\n"]
    for n, f in enumerate(files):
        body += [dash, f'Content-Disposition: form-data; name="file"; filename="{n}"\r\n'
                       "Content-Type: application/octet-stream\r\n\r\n".encode(), f.data, b"\r\n"]
    body.append(f"--{boundary}--\r\n".encode())
    return body


def file_form(prefix: str, checksum: str, size: int, description: str | None, tags: list[str] | None,
              metadata: dict[str, Any] | None) -> dict[str, str]:
    """The text fields of a file upload, as 0.5.8 sends them (optional ones only when set)."""
    data = {"prefix": prefix, "checksum": checksum, "sizeBytes": str(size)}
    if description:
        data["description"] = description
    if tags:
        data["tags"] = ",".join(tags)
    if metadata:
        data["metadata"] = json.dumps(metadata)
    return data


def json_of(response: httpx.Response, hint: str) -> Any:
    """The body as JSON, or an ApiError naming the request (a proxy's HTML page, a wrong URL)."""
    try:
        return response.json()
    except ValueError:
        request = response.request
        raise ApiError(f"{request.method} {request.url.path}: the server answered with something that is not JSON",
                       status=response.status_code, hint=hint) from None


def _close_files(opened: Any) -> None:
    if isinstance(opened, dict):
        for value in opened.values():
            if isinstance(value, tuple) and len(value) > 1 and hasattr(value[1], "close"):
                value[1].close()
