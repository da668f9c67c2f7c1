"""HYBRID mode (``local_path`` and ``remote``): the local tree first, the server second.

Every record is written locally (the source of truth, readable at once) and then
queued for the server as a record of the local tree (the tree's writer id, numbered by
its position in the tree). If the server is down, training goes on; the queue catches
up when it is back, and whatever never made it (the process ended first) is sent by
``ml-dash upload`` later, exactly once, because upload and the SDK speak for the same
writer with the same numbers. Processes sharing one tree share its numbering too.

The calls that go to the server at once (a file upload, a file's change, the final
status) meet an outage too: a transient failure (the server unreachable, a timeout, a
5xx after the client's retries) is reported once per kind and the run goes on with the
server; the file is remembered, tried once more at close, and named there when it still
did not make it. Only a failed ``open`` (no experiment on the server) or a permanent or
unexpected error drops the server side for the rest of the run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ml_dash.errors import ApiError, MLDashError
from ml_dash.sdk.backends.base import ExperimentSpec
from ml_dash.sdk.backends.local import LocalBackend
from ml_dash.sdk.backends.remote import RemoteBackend
from ml_dash.sdk.sender import permanent

__all__ = ["HybridBackend"]

# What a synchronous call that failed for now was doing, for its one warning (per kind).
_WHAT = {"save_file": "send file {}", "update_file": "send a change to file {}",
         "delete_file": "send the deletion of file {}"}


def _transient(exc: MLDashError) -> bool:
    """A failure the same call may get past later (the sender's rule): unreachable, timeout, 408/429/5xx."""
    return isinstance(exc, ApiError) and not permanent(exc)


def _label(entry: dict[str, Any]) -> str:
    return f"{str(entry.get('path') or '').strip('/')}/{entry.get('filename')}".lstrip("/")


class HybridBackend:
    def __init__(self, local: LocalBackend, remote: RemoteBackend) -> None:
        self.local = local
        self.remote: RemoteBackend | None = remote
        # The server side after it was dropped: its sender still gets flushed and closed at close
        # (what it had queued is delivered or counted), and the experiment keeps its server id.
        self._dropped: RemoteBackend | None = None
        self._remote_file_ids: dict[str, str] = {}  # local file id -> server file id
        # Files (local id -> label) the server did not take for now: tried again at close, else reported.
        self._unsent_files: dict[str, str] = {}
        # Changes (update/delete) to files the server has, not applied there: local id -> (server id, label).
        self._unsent_changes: dict[str, tuple[str, str]] = {}
        self._warned: set[str] = set()
        # Remote mode (the spooled subclass) reads files from the server by server id and knows nothing
        # of files the server has not got: it still drops the server side on any failure (its spool
        # keeps every record for `ml-dash upload`), until it learns about them.
        self._ride_out = type(self) is HybridBackend

    @property
    def paths(self) -> Any:
        return self.local.paths

    @property
    def experiment_id(self) -> str | None:
        side = self.remote or self._dropped
        return side.experiment_id if side else None

    def _hint(self) -> str:
        return f"they are in the local tree; send them with: ml-dash upload {self.local.root}"

    def _drop(self, reason: str) -> None:
        print(f"ml-dash: {reason}; logging locally only from now on; {self._hint()}", file=sys.stderr)
        self._dropped, self.remote = self.remote, None

    def _call(self, action: str, *args: Any, about: str = "", **kwargs: Any) -> tuple[bool, Any]:
        """Call the server side: ``(True, answer)``, or ``(False, None)`` when it failed (reported here).
        A failure never stops training (the local tree has the record); a transient one of a call
        other than ``open`` does not stop the server side either."""
        if self.remote is None:
            return False, None
        try:
            return True, getattr(self.remote, action)(*args, **kwargs)
        except MLDashError as exc:
            if action != "open" and self._ride_out and _transient(exc):
                if action not in self._warned:
                    self._warned.add(action)
                    what = _WHAT.get(action, action).format(about or "?")
                    print(f"ml-dash: could not {what} to the server ({exc.message}); logging to the server goes on, "
                          f"what fails like this is tried again and reported at close; {self._hint()}",
                          file=sys.stderr)
                return False, None
            self._drop(f"server unreachable ({exc.message})")
        except Exception as exc:  # noqa: BLE001 - an odd answer or a client bug must not stop training either
            self._drop(f"the server side failed ({type(exc).__name__}: {exc})")
        return False, None

    def _remote(self, action: str, *args: Any, **kwargs: Any) -> Any:
        """The server's answer, or None when there is none (see :meth:`_call`)."""
        return self._call(action, *args, **kwargs)[1]

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
        # After a drop, what the sender had queued still goes (or is counted) now; remote mode kept its
        # old way: its spool has everything, and closing does not wait for a server that went away.
        server = self.remote or (self._dropped if self._ride_out else None)
        if server is None:
            return
        if server.sender is None:  # the server never had the experiment
            server.client.close()
            return
        sender = server.sender
        delivered = sender.close()
        if self.remote is not None:
            # Only when the sender's last try reached the server: while it is still away, each
            # file would wait out the client's retries for nothing.
            if (self._unsent_files or self._unsent_changes) and sender.last_error is None:
                self._resend()
            # As for records: a copy the server does not have whole keeps its running status.
            if delivered and not self._unsent_files:
                try:
                    self.remote.client.set_status(str(self.remote.experiment_id), status)
                except MLDashError as exc:
                    print(f"ml-dash: could not set the status of the experiment on the server: {exc.message}",
                          file=sys.stderr)
        server.report_unsent(sender, self._hint())
        self._report_files()
        server.client.close()

    def _resend(self) -> None:
        """One more try of each file (and file change) the server did not take during the run,
        with the file's state in the local tree now; stops at the first failure."""
        assert self.remote is not None
        remote, exp_id = self.remote, str(self.remote.experiment_id)
        try:
            here = {e["id"]: e for e in self.local.list_files(None, None)}
            # A failed attempt may have reached the server after all: never a second copy.
            there = {(f["path"], f["filename"], f["checksum"]): f for f in remote.client.list_files(exp_id)}
            for local_id in list(self._unsent_files):
                entry = here.get(local_id)
                if entry is None:  # deleted or replaced locally since: nothing of it to send
                    del self._unsent_files[local_id]
                    continue
                key = (entry["path"], entry["filename"], entry["checksum"])
                if key not in there:
                    blob = self.local.paths.blob(entry["path"], entry["id"], entry["filename"])
                    there[key] = remote.save_file(blob, entry["path"], entry["filename"], entry.get("description"),
                                                  entry.get("tags"), entry.get("metadata"), entry["contentType"])
                self._remote_file_ids[local_id] = str(there[key]["id"])
                del self._unsent_files[local_id]
            for local_id, (server_id, _) in list(self._unsent_changes.items()):
                entry = here.get(local_id)
                try:
                    if entry is None:  # deleted (or replaced by a newer save) locally
                        remote.delete_file(server_id)
                    else:  # the file's state now, whatever changes did not get through
                        remote.update_file(server_id, entry.get("description"), entry.get("tags"),
                                           entry.get("metadata"))
                except ApiError as exc:
                    if exc.status != 404 or entry is not None:  # a deletion answered 404: it is gone already
                        raise
                del self._unsent_changes[local_id]
        except MLDashError as exc:
            if not _transient(exc):  # the report that follows names what is left; this says why
                print(f"ml-dash: the server refused a file at close: {exc.message}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - closing must not raise; what is left is reported
            print(f"ml-dash: sending files at close failed ({type(exc).__name__}: {exc})", file=sys.stderr)

    def _report_files(self) -> None:
        if self._unsent_files:
            names = ", ".join(self._unsent_files.values())
            print(f"ml-dash: {len(self._unsent_files)} file(s) not sent: {names}; {self._hint()}", file=sys.stderr)
        if self._unsent_changes:
            names = ", ".join(label for _, label in self._unsent_changes.values())
            print(f"ml-dash: {len(self._unsent_changes)} file change(s) not applied on the server: {names}; the "
                  f"local tree has them (`ml-dash upload` does not change files the server already has)",
                  file=sys.stderr)

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
        # The tree's copy, not the caller's file: the server gets the bytes the local record has
        # (the caller's file may change meanwhile), and a retry at close reads the same.
        blob = self.local.paths.blob(entry["path"], entry["id"], entry["filename"])
        ok, sent = self._call("save_file", blob, prefix, filename, description, tags, metadata, content_type,
                              about=_label(entry))
        if ok and sent:
            self._remote_file_ids[entry["id"]] = str(sent["id"])
        elif self.remote is not None:  # a transient failure: the server side goes on without this file
            self._unsent_files[entry["id"]] = _label(entry)
        return entry

    def list_files(self, prefix: str | None, tags: list[str] | None) -> list[dict[str, Any]]:
        return self.local.list_files(prefix, tags)

    def download_file(self, file_id: str, dest: str | None) -> str:
        return self.local.download_file(file_id, dest)

    def update_file(self, file_id: str, description: str | None, tags: list[str] | None,
                    metadata: dict[str, Any] | None) -> dict[str, Any]:
        entry = self.local.update_file(file_id, description, tags, metadata)
        if file_id in self._remote_file_ids:
            ok, _ = self._call("update_file", self._remote_file_ids[file_id], description, tags, metadata,
                               about=_label(entry))
            self._note_change(ok, file_id, _label(entry))
        return entry

    def delete_file(self, file_id: str) -> dict[str, Any]:
        server_id = self._remote_file_ids.get(file_id)
        label = file_id
        if server_id is not None:  # named by path (the manifest is read only when there is a server copy)
            label = next((_label(e) for e in self.local.list_files(None, None) if e["id"] == file_id), file_id)
        entry = self.local.delete_file(file_id)
        self._unsent_files.pop(file_id, None)  # never reached the server: nothing to delete there
        if server_id is not None:
            ok, _ = self._call("delete_file", server_id, about=label)
            self._note_change(ok, file_id, label)
        return entry

    def _note_change(self, ok: bool, file_id: str, label: str) -> None:
        if ok:
            self._unsent_changes.pop(file_id, None)
        elif self.remote is not None:  # a transient failure: the state in the local tree is sent at close
            self._unsent_changes[file_id] = (self._remote_file_ids[file_id], label)
