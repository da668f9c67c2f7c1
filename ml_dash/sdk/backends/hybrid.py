"""HYBRID mode (``local_path`` and ``remote``): the local tree first, the server second.

Every record is written locally (the source of truth, readable at once) and then
queued for the server as a record of the local tree (the tree's writer id, numbered by
its position in the tree). If the server is down, training goes on; the queue catches
up when it is back, and whatever never made it (the process ended first) is sent by
``ml-dash upload`` later, exactly once, because upload and the SDK speak for the same
writer with the same numbers. Processes sharing one tree share its numbering too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ml_dash.errors import MLDashError
from ml_dash.sdk.backends.base import ExperimentSpec
from ml_dash.sdk.backends.local import LocalBackend
from ml_dash.sdk.backends.remote import RemoteBackend

__all__ = ["HybridBackend"]


class HybridBackend:
    def __init__(self, local: LocalBackend, remote: RemoteBackend) -> None:
        self.local = local
        self.remote: RemoteBackend | None = remote
        self._remote_file_ids: dict[str, str] = {}  # local file id -> server file id

    @property
    def paths(self) -> Any:
        return self.local.paths

    @property
    def experiment_id(self) -> str | None:
        return self.remote.experiment_id if self.remote else None

    def _hint(self) -> str:
        return f"they are in the local tree; send them with: ml-dash upload {self.local.root}"

    def _remote(self, action: str, *args: Any, **kwargs: Any) -> Any:
        """Call the server side; a failure never stops training (the local tree has the record)."""
        if self.remote is None:
            return None
        try:
            return getattr(self.remote, action)(*args, **kwargs)
        except MLDashError as exc:
            print(f"ml-dash: server unreachable ({exc.message}); logging locally only from now on; "
                  f"{self._hint()}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - an odd answer or a client bug must not stop training either
            print(f"ml-dash: the server side failed ({type(exc).__name__}: {exc}); logging locally only from now "
                  f"on; {self._hint()}", file=sys.stderr)
        self.remote = None
        return None

    def open(self, spec: ExperimentSpec) -> None:
        self.local.open(spec)
        if self.remote is not None:
            # The local tree's id and positions: whatever this sender does not deliver, `ml-dash
            # upload` sends later as the same writer, so the server gets every record once.
            self.remote.writer_id = self.local.writer_id()
        self._remote("open", spec)

    def flush(self) -> None:
        self.local.flush()
        if self.remote is not None and self.remote.sender is not None:
            self.remote.sender.flush()

    def close(self, status: str) -> None:
        self.local.close(status)
        if self.remote is not None and self.remote.sender is not None:
            sender = self.remote.sender
            if sender.close():
                try:
                    self.remote.client.set_status(str(self.remote.experiment_id), status)
                except MLDashError:
                    pass
            self.remote.report_unsent(sender, self._hint())
            self.remote.client.close()

    # --- records: local first, then the same positions to the server -------------------------------------
    def write_log(self, level: str, message: str, metadata: dict[str, Any] | None, timestamp: str) -> int:
        seq = self.local.write_log(level, message, metadata, timestamp)
        self._remote("write_log", level, message, metadata, timestamp, position=seq)
        return seq

    def set_params(self, flat: dict[str, Any]) -> None:
        self.local.set_params(flat)
        self._remote("set_params", flat)

    def get_params(self) -> dict[str, Any]:
        return self.local.get_params()

    def append_metric(self, name: str | None, data: dict[str, Any], description: str | None,
                      tags: list[str] | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
        # The hot path of a training loop: the point's JSON, made once for the local line, is what the
        # sender sends (no second encoding), and no response the caller never sees is built.
        encoded: list[str] = []
        result = self.local.append_metric(name, data, description, tags, metadata, encoded)
        self._remote("queue_points", name, encoded, int(result["index"]), description, tags, metadata)
        return result

    def append_metric_batch(self, name: str | None, points: list[dict[str, Any]], description: str | None,
                            tags: list[str] | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
        encoded: list[str] = []
        result = self.local.append_metric_batch(name, points, description, tags, metadata, encoded)
        self._remote("queue_points", name, encoded, int(result["startIndex"]), description, tags, metadata)
        return result

    def read_metric(self, name: str | None, start_index: int, limit: int) -> dict[str, Any]:
        return self.local.read_metric(name, start_index, limit)

    def metric_stats(self, name: str | None) -> dict[str, Any]:
        return self.local.metric_stats(name)

    def list_metrics(self) -> list[dict[str, Any]]:
        return self.local.list_metrics()

    def save_file(self, source: Path, prefix: str, filename: str, description: str | None,
                  tags: list[str] | None, metadata: dict[str, Any] | None, content_type: str) -> dict[str, Any]:
        entry = self.local.save_file(source, prefix, filename, description, tags, metadata, content_type)
        sent = self._remote("save_file", source, prefix, filename, description, tags, metadata, content_type)
        if sent:
            self._remote_file_ids[entry["id"]] = str(sent["id"])
        return entry

    def list_files(self, prefix: str | None, tags: list[str] | None) -> list[dict[str, Any]]:
        return self.local.list_files(prefix, tags)

    def download_file(self, file_id: str, dest: str | None) -> str:
        return self.local.download_file(file_id, dest)

    def update_file(self, file_id: str, description: str | None, tags: list[str] | None,
                    metadata: dict[str, Any] | None) -> dict[str, Any]:
        entry = self.local.update_file(file_id, description, tags, metadata)
        if file_id in self._remote_file_ids:
            self._remote("update_file", self._remote_file_ids[file_id], description, tags, metadata)
        return entry

    def delete_file(self, file_id: str) -> dict[str, Any]:
        entry = self.local.delete_file(file_id)
        if file_id in self._remote_file_ids:
            self._remote("delete_file", self._remote_file_ids[file_id])
        return entry
