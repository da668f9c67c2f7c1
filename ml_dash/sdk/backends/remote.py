"""REMOTE mode: records go to an ml-dash server through the same API client as ``ml-dash upload``.

Writes are queued and sent in batches by a background thread (see ``sdk/sender.py``);
reads flush the queue first, so a script reads back what it wrote. Positions (log
sequence numbers, metric indices) are assigned here, continuing from what the server
already has, so retries never duplicate.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
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
                 retry: RetryPolicy | None = None) -> None:
        # Few attempts per send: the sender itself retries on the next flush, forever.
        self.client = ApiClient(url, token, retry=retry or RetryPolicy(attempts=3, backoff=0.2, max_backoff=2.0,
                                                                       timeout=30.0))
        self.url = url
        self.settings = settings
        self.buffered = buffered
        self.experiment_id: str | None = None
        self.sender: Sender | None = None
        self._log_next = 0
        self._metric_next: dict[str, int] = {}

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
        self._log_next = int(there.get("logs", 0))
        self._metric_next = {k: int(v) for k, v in (there.get("metrics") or {}).items()}
        self.sender = Sender(self.client, self.experiment_id, self.settings)

    def _sender(self) -> Sender:
        if self.sender is None:  # pragma: no cover - the facade checks first
            raise InvalidInputError("experiment is not open")
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
        lost = sender.pending + (1 if sender.behind else 0)
        if lost or sender.behind:
            print(f"ml-dash: {sender.pending} record(s) could not be sent to {self.url}"
                  + (f" (last error: {sender.last_error})" if sender.last_error else "")
                  + (f"; {hint}" if hint else ""), file=sys.stderr)

    # --- records ---------------------------------------------------------------------------------------
    def write_log(self, level: str, message: str, metadata: dict[str, Any] | None, timestamp: str,
                  position: int | None = None) -> int:
        seq = self._log_next if position is None else position
        self._log_next = max(self._log_next, seq + 1)
        entry: dict[str, Any] = {"timestamp": timestamp, "level": level, "message": message}
        if metadata:
            entry["metadata"] = metadata
        self._sender().log(seq, entry)
        self._after_write()
        return seq

    def set_params(self, flat: dict[str, Any]) -> None:
        self._sender().params(flat)
        self._after_write()

    def get_params(self) -> dict[str, Any]:
        self.flush()
        return dict(self.client.get_params(str(self.experiment_id)).get("data") or {})

    @staticmethod
    def _extra(description: str | None, tags: list[str] | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (("description", description), ("tags", tags), ("metadata", metadata)) if v}

    def append_metric_batch(self, name: str | None, points: list[dict[str, Any]], description: str | None,
                            tags: list[str] | None, metadata: dict[str, Any] | None,
                            start: int | None = None) -> dict[str, Any]:
        key = str(name)
        first = self._metric_next.get(key, 0) if start is None else start
        self._metric_next[key] = max(self._metric_next.get(key, 0), first + len(points))
        self._sender().points(key, first, points, self._extra(description, tags, metadata) or None)
        self._after_write()
        return {"metricId": key, "startIndex": str(first), "endIndex": str(first + len(points) - 1),
                "count": len(points), "bufferedDataPoints": str(self._metric_next[key]), "chunkSize": 10000}

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
