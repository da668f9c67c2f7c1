"""REMOTE mode: records go to an ml-dash server through the same API client as ``ml-dash upload``.

Writes are queued and sent in batches by a background thread (see ``sdk/sender.py``);
reads flush the queue first, so a script reads back what it wrote. Each process is its
own *writer*: it numbers its records per stream and the server applies each number once
and assigns the positions, so retries never duplicate and several processes (the ranks
of a distributed job) can log to one experiment at once. The positions returned by
appends are estimates (what the server had at open plus this writer's own records).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ml_dash.api.client import ApiClient, RetryPolicy
from ml_dash.errors import InvalidInputError
from ml_dash.sdk.backends.base import ExperimentSpec
from ml_dash.sdk.files_util import sha256_file
from ml_dash.sdk.sender import Sender, SenderSettings

__all__ = ["RemoteBackend", "normalise_read"]


def normalise_read(result: dict[str, Any]) -> dict[str, Any]:
    """Metric reads in one shape whatever the backend: integer indices (the server sends strings)."""
    out = dict(result)
    out["data"] = [{**p, "index": int(p["index"])} for p in result.get("data", [])]
    for key in ("startIndex", "endIndex"):
        if key in out and out[key] is not None:
            out[key] = int(out[key])
    out.pop("chunkNumber", None)
    return out


class RemoteBackend:
    def __init__(self, url: str, token: str, settings: SenderSettings, buffered: bool = True,
                 retry: RetryPolicy | None = None, writer_id: str | None = None) -> None:
        # Few attempts per send: the sender itself retries on the next flush, forever.
        self.client = ApiClient(url, token, retry=retry or RetryPolicy(attempts=3, backoff=0.2, max_backoff=2.0,
                                                                       timeout=30.0))
        self.url = url
        self.settings = settings
        self.buffered = buffered
        self.experiment_id: str | None = None
        self.sender: Sender | None = None
        # This process's identity to the server; hybrid mode passes its local tree's id instead.
        self.writer_id = writer_id or f"run-{uuid.uuid4().hex}"
        self._log_base = 0  # what the server had at open: the base of the estimated positions
        self._metric_base: dict[str, int] = {}
        self._log_seq = 0  # this writer's own numbers, per stream
        self._metric_seq: dict[str, int] = {}

    # --- lifecycle -------------------------------------------------------------------------------------
    def open(self, spec: ExperimentSpec) -> None:
        body: dict[str, Any] = {"name": spec.name}
        for key in ("description", "tags", "bindrs", "folder", "metadata"):
            value = getattr(spec, key)
            if value is not None:
                body[key] = value
        exp = self.client.create_experiment(spec.project, body)
        self.experiment_id = str(exp["id"])
        there = self.client.streams(self.experiment_id) or {}
        self._log_base = int(there.get("logs", 0))
        self._metric_base = {k: int(v) for k, v in (there.get("metrics") or {}).items()}
        self.sender = Sender(self.client, self.experiment_id, self.settings, self.writer_id)

    def _sender(self) -> Sender:
        if self.sender is None:  # pragma: no cover - the facade checks first
            raise InvalidInputError("experiment is not open", hint="use `with exp.run:` or call exp.run.start() first")
        return self.sender

    def _after_write(self) -> None:
        if not self.buffered:
            self._sender().flush()

    def flush(self) -> None:
        self._sender().flush()

    def close(self, status: str) -> None:
        sender = self._sender()
        sent = sender.close()
        if sent:
            try:
                self.client.set_status(str(self.experiment_id), status)
            except Exception as exc:  # noqa: BLE001 - closing must not raise over a network error
                print(f"ml-dash: could not set the status of the experiment: {exc}", file=sys.stderr)
        self.report_unsent(sender)
        self.client.close()

    def report_unsent(self, sender: Sender, hint: str | None = None) -> None:
        """Say exactly what the server has not acknowledged, per stream (nothing when all was sent)."""
        unsent = sender.unsent()
        if not unsent:
            return
        detail = ", ".join(f"{stream}: {n}" for stream, n in unsent.items())
        print(f"ml-dash: {sum(unsent.values())} record(s) did not reach {self.url} ({detail})"
              + (f"; last error: {sender.last_error}" if sender.last_error else "")
              + (f"; {hint}" if hint else ""), file=sys.stderr)
        for failure in sender.refused():
            print(f"ml-dash: refused by the server: {failure.describe()}", file=sys.stderr)

    # --- records ---------------------------------------------------------------------------------------
    def write_log(self, level: str, message: str, metadata: dict[str, Any] | None, timestamp: str,
                  position: int | None = None) -> int:
        if position is None:
            number, self._log_seq = self._log_seq, self._log_seq + 1
        else:
            number = position
        entry: dict[str, Any] = {"timestamp": timestamp, "level": level, "message": message}
        if metadata:
            entry["metadata"] = metadata
        self._sender().log(number, entry)
        self._after_write()
        return self._log_base + number if position is None else position

    def set_params(self, flat: dict[str, Any]) -> None:
        self._sender().params(flat)
        self._after_write()

    def get_params(self) -> dict[str, Any]:
        self.flush()
        return dict(self.client.get_params(str(self.experiment_id)).get("data") or {})

    @staticmethod
    def _extra(description: str | None, tags: list[str] | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (("description", description), ("tags", tags), ("metadata", metadata)) if v}

    def queue_points(self, name: str | None, points: list[Any], first: int, description: str | None,
                     tags: list[str] | None, metadata: dict[str, Any] | None) -> None:
        """Queue points numbered ``first, first+1, ...`` by the caller (hybrid mode: the tree's positions);
        a point may be given already encoded as JSON text."""
        extra = self._extra(description, tags, metadata) if description or tags or metadata else None
        self._sender().points(str(name), first, points, extra or None)
        if not self.buffered:
            self._sender().flush()

    def append_metric_batch(self, name: str | None, points: list[dict[str, Any]], description: str | None,
                            tags: list[str] | None, metadata: dict[str, Any] | None,
                            start: int | None = None) -> dict[str, Any]:
        key = str(name)
        if start is None:
            first = self._metric_seq.get(key, 0)
            self._metric_seq[key] = first + len(points)
            index = self._metric_base.get(key, 0) + first
        else:
            first = index = start
        self._sender().points(key, first, points, self._extra(description, tags, metadata) or None)
        self._after_write()
        return {"metricId": key, "startIndex": str(index), "endIndex": str(index + len(points) - 1),
                "count": len(points), "bufferedDataPoints": str(index + len(points)), "chunkSize": 10000}

    def append_metric(self, name: str | None, data: dict[str, Any], description: str | None,
                      tags: list[str] | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
        result = self.append_metric_batch(name, [data], description, tags, metadata)
        return {"metricId": result["metricId"], "index": result["startIndex"],
                "bufferedDataPoints": result["bufferedDataPoints"], "chunkSize": 10000}

    def read_metric(self, name: str | None, start_index: int, limit: int) -> dict[str, Any]:
        self.flush()
        from ml_dash.errors import ApiError

        try:
            return normalise_read(self.client.read_metric(str(self.experiment_id), str(name), start_index, limit))
        except ApiError as exc:
            if exc.status == 404:
                return {"data": [], "startIndex": start_index, "endIndex": start_index - 1, "total": 0,
                        "hasMore": False}
            raise

    def metric_stats(self, name: str | None) -> dict[str, Any]:
        self.flush()
        from ml_dash.errors import ApiError

        try:
            return self.client.metric_stats(str(self.experiment_id), str(name))
        except ApiError as exc:
            if exc.status == 404:
                raise InvalidInputError(f"metric {name!r} not found", hint="append a point to it first") from None
            raise

    def list_metrics(self) -> list[dict[str, Any]]:
        self.flush()
        return self.client.list_metrics(str(self.experiment_id))

    # --- files -----------------------------------------------------------------------------------------
    def save_file(self, source: Path, prefix: str, filename: str, description: str | None,
                  tags: list[str] | None, metadata: dict[str, Any] | None, content_type: str) -> dict[str, Any]:
        checksum, size = sha256_file(source)
        return self.client.upload_file(str(self.experiment_id), source, prefix=prefix, filename=filename,
                                       checksum=checksum, size=size, content_type=content_type,
                                       description=description, tags=tags, metadata=metadata)

    def list_files(self, prefix: str | None, tags: list[str] | None) -> list[dict[str, Any]]:
        return self.client.list_files(str(self.experiment_id), prefix, tags)

    def download_file(self, file_id: str, dest: str | None) -> str:
        meta = self.client.file_meta(str(self.experiment_id), file_id)
        target = Path(dest if dest is not None else meta["filename"])
        with tempfile.NamedTemporaryFile(dir=target.parent if str(target.parent) else ".", delete=False,
                                         prefix=f".{target.name}.", suffix=".part") as tmp:
            for chunk in self.client.download_file(str(self.experiment_id), file_id):
                tmp.write(chunk)
        if sha256_file(Path(tmp.name))[0] != meta["checksum"]:
            Path(tmp.name).unlink()
            raise InvalidInputError(f"checksum verification failed for file {file_id}",
                                    hint="the download was damaged; try again")
        shutil.move(tmp.name, target)
        return str(target)

    def update_file(self, file_id: str, description: str | None, tags: list[str] | None,
                    metadata: dict[str, Any] | None) -> dict[str, Any]:
        changes = {k: v for k, v in (("description", description), ("tags", tags), ("metadata", metadata))
                   if v is not None}
        return self.client.update_file(str(self.experiment_id), file_id, changes)

    def delete_file(self, file_id: str) -> dict[str, Any]:
        return self.client.delete_file(str(self.experiment_id), file_id)
