"""REMOTE mode with a write-ahead spool: nothing is lost when the server is down or the
training process is killed.

Every record is first written to a private tree in the 0.5.8 format (the *spool*, one
directory per process below ``spool_dir``, marked by a ``.ml-dash-spool-run`` file), then
sent in the background exactly as hybrid mode does: as that tree's writer, numbered by
position. When the server has acknowledged everything at the end of the run the spool is
removed; otherwise it stays, and ``ml-dash upload SPOOL_DIR`` sends exactly the rest
(after a kill -9 as well). Reads go to the server, as in plain remote mode, so a script
sees what every rank of its job wrote.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from ml_dash.api.client import ServerUnreachable
from ml_dash.errors import ApiError
from ml_dash.records.identity import SPOOL_MARKER
from ml_dash.sdk.backends.base import ExperimentSpec
from ml_dash.sdk.backends.hybrid import HybridBackend
from ml_dash.sdk.backends.local import LocalBackend
from ml_dash.sdk.backends.remote import RemoteBackend

__all__ = ["SPOOL_MARKER", "SpooledRemoteBackend", "new_spool_run"]



def new_spool_run(spool_dir: Path) -> Path:
    """A fresh per-process spool root (a tree root of its own) below ``spool_dir``."""
    run = spool_dir.expanduser() / f"run-{uuid.uuid4().hex[:16]}"
    run.mkdir(parents=True, exist_ok=False)
    (run / SPOOL_MARKER).write_text("ml-dash remote-mode spool: records not yet acknowledged by the server\n")
    return run


class SpooledRemoteBackend(HybridBackend):
    def __init__(self, spool_run: Path, remote: RemoteBackend) -> None:
        super().__init__(LocalBackend(spool_run, exclusive=True), remote)
        self.spool_run = spool_run
        self._tailed: set[str | None] = set()
        self._server_url = remote.url

    def _hint(self) -> str:
        return (f"they are kept in {self.spool_run}; send them with: "
                f"ml-dash upload {self.spool_run} --remote {self._server_url}")

    def open(self, spec: ExperimentSpec) -> None:
        """Spool first; a server that cannot be reached leaves the run in the spool, but a server
        that refuses (a wrong key, a bad name) is an error now, not a surprise at upload time."""
        self.local.open(spec)
        assert self.remote is not None
        self.remote.writer_id = self.local.writer_id()
        try:
            self.remote.open(spec)
        except ApiError as exc:
            if not isinstance(exc, ServerUnreachable) and (exc.status or 0) < 500:
                raise
            print(f"ml-dash: server unreachable ({exc.message}); logging to the spool only; {self._hint()}",
                  file=sys.stderr)
            self.remote = None

    def close(self, status: str) -> None:
        remote = self.remote
        super().close(status)
        # Everything acknowledged (the sender closed clean, the server never dropped out): the spool goes.
        if remote is not None and self.remote is not None and remote.sender is not None and not remote.sender.unsent():
            shutil.rmtree(self.spool_run, ignore_errors=True)
        elif self.remote is None:
            print(f"ml-dash: the server was unreachable during the run; {self._hint()}", file=sys.stderr)

    # --- metrics: the spool file is the queue (the sender reads what the training loop wrote) ----------
    def _tail(self, name: str | None, description: str | None, tags: list[str] | None,
              metadata: dict[str, Any] | None) -> None:
        if self.remote is None or name in self._tailed or self.remote.sender is None:
            return
        self._tailed.add(name)
        extra = RemoteBackend._extra(description, tags, metadata) or None
        self.remote.sender.tail(str(name), self.paths.metric_dir(name) / "data.jsonl", extra)

    def append_metric(self, name: str | None, data: dict[str, Any], description: str | None,
                      tags: list[str] | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
        result = self.local.append_metric(name, data, description, tags, metadata)
        self._tail(name, description, tags, metadata)
        return result

    def append_metric_batch(self, name: str | None, points: list[dict[str, Any]], description: str | None,
                            tags: list[str] | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
        result = self.local.append_metric_batch(name, points, description, tags, metadata)
        self._tail(name, description, tags, metadata)
        return result

    # --- reads: from the server (what every writer of the experiment sent), the spool as fallback -----
    def _read(self, action: str, *args: Any) -> Any:
        if self.remote is None:
            return getattr(self.local, action)(*args)
        return getattr(self.remote, action)(*args)

    def get_params(self) -> dict[str, Any]:
        return dict(self._read("get_params"))

    def read_metric(self, name: str | None, start_index: int, limit: int) -> dict[str, Any]:
        return dict(self._read("read_metric", name, start_index, limit))

    def metric_stats(self, name: str | None) -> dict[str, Any]:
        return dict(self._read("metric_stats", name))

    def list_metrics(self) -> list[dict[str, Any]]:
        return list(self._read("list_metrics"))

    # --- files: kept in the spool too (until acknowledged); the script sees the server's records ----------
    def save_file(self, source: Path, prefix: str, filename: str, description: str | None,
                  tags: list[str] | None, metadata: dict[str, Any] | None, content_type: str) -> dict[str, Any]:
        entry = super().save_file(source, prefix, filename, description, tags, metadata, content_type)
        server_id = self._remote_file_ids.get(entry["id"])
        if server_id is None or self.remote is None:
            return entry
        return dict(self.remote.client.file_meta(str(self.remote.experiment_id), server_id))

    def list_files(self, prefix: str | None, tags: list[str] | None) -> list[dict[str, Any]]:
        return list(self._read("list_files", prefix, tags))

    def download_file(self, file_id: str, dest: str | None) -> str:
        if self.remote is None or file_id in self._remote_file_ids:  # a spool id: the spool has the bytes
            return self.local.download_file(file_id, dest)
        return self.remote.download_file(file_id, dest)

    def _local_id(self, file_id: str) -> str | None:
        if file_id in self._remote_file_ids:
            return file_id
        return next((k for k, v in self._remote_file_ids.items() if v == file_id), None)

    def update_file(self, file_id: str, description: str | None, tags: list[str] | None,
                    metadata: dict[str, Any] | None) -> dict[str, Any]:
        local_id = self._local_id(file_id)
        entry = self.local.update_file(local_id, description, tags, metadata) if local_id else None
        server_id = self._remote_file_ids.get(local_id, file_id) if local_id else file_id
        if self.remote is not None:
            return dict(self._remote("update_file", server_id, description, tags, metadata) or entry or {})
        return dict(entry or {})

    def delete_file(self, file_id: str) -> dict[str, Any]:
        local_id = self._local_id(file_id)
        entry = self.local.delete_file(local_id) if local_id else None
        server_id = self._remote_file_ids.get(local_id, file_id) if local_id else file_id
        if self.remote is not None:
            return dict(self._remote("delete_file", server_id) or entry or {})
        return dict(entry or {})
