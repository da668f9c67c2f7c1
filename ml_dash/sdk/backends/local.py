"""LOCAL mode: the experiment tree on disk, record for record what ml-dash 0.5.8 writes.

Differences from 0.5.8 are only where 0.5.8 could lose data: JSON files are replaced
atomically, read-modify-write happens under a lock, JSONL lines are appended whole,
and the experiment directory is located once instead of by an ``rglob`` of the whole
root on every call (which also made 0.5.8 pick the wrong one of two experiments with
the same project/name in different folders).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ml_dash.errors import InvalidInputError, RecordError
from ml_dash.records import jsonio
from ml_dash.records.clock import new_file_id, utc_now_iso
from ml_dash.records.experiment import ExperimentRecord
from ml_dash.records.files import FileEntry, FilesManifest
from ml_dash.records.layout import ExperimentPaths, experiment_dir
from ml_dash.records.metrics import MetricMetadata
from ml_dash.records.parameters import ParametersRecord
from ml_dash.records.read import load_record
from ml_dash.sdk.appenders import LogAppender, MetricAppender
from ml_dash.sdk.backends.base import ExperimentSpec
from ml_dash.sdk.files_util import sha256_file
from ml_dash.sdk.locks import directory_lock

__all__ = ["LocalBackend"]


class LocalBackend:
    """Writes one experiment below ``root``."""

    def __init__(self, root: str | os.PathLike[str], exclusive: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.exclusive = exclusive  # no other process writes this tree (remote mode's spool)
        self.paths: ExperimentPaths | None = None
        self._spec: ExperimentSpec | None = None
        self._logs: LogAppender | None = None
        self._metrics: dict[str | None, MetricAppender] = {}

    # --- lifecycle -------------------------------------------------------------------------
    def open(self, spec: ExperimentSpec, touch: bool = True) -> None:
        """Create or re-open the experiment; ``touch=False`` leaves an existing experiment.json
        alone when the spec would change nothing in it but ``updated_at`` (an import run again)."""
        self._spec = spec
        directory = experiment_dir(self.root, spec.project, spec.name, spec.folder)
        self.paths = ExperimentPaths(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for sub in (self.paths.logs_dir, self.paths.metrics_dir, self.paths.files_dir):
            sub.mkdir(exist_ok=True)
        with directory_lock(directory):
            path = self.paths.experiment_json
            if not path.exists():
                record = ExperimentRecord(
                    name=spec.name, project=spec.project, description=spec.description,
                    tags=list(spec.tags or []), bindrs=list(spec.bindrs or []), folder=spec.folder,
                    metadata=spec.metadata, created_at=utc_now_iso(), write_protected=False,
                )
            else:
                record = load_record(path, ExperimentRecord)
                updates: dict[str, Any] = {
                    key: value
                    for key, value in (("description", spec.description), ("tags", spec.tags),
                                       ("bindrs", spec.bindrs), ("folder", spec.folder),
                                       ("metadata", spec.metadata))
                    if value is not None
                }
                if not touch and all(getattr(record, key) == value for key, value in updates.items()):
                    return
                updates["updated_at"] = utc_now_iso()
                record = record.model_copy(update=updates)
            jsonio.atomic_write_json(path, record.to_json_dict(), what="experiment metadata")

    def writer_id(self) -> str:
        """This tree's writer id (see :attr:`ExperimentRecord.writer_id`)."""
        return load_record(self._require().experiment_json, ExperimentRecord).writer_id

    def flush(self) -> None:
        if self._logs is not None:
            self._logs.flush()
        for appender in self._metrics.values():
            appender.flush()

    def close(self, status: str) -> None:
        # 0.5.8 keeps no status locally; the tree stays byte-compatible with it.
        if self._logs is not None:
            self._logs.close()
            self._logs = None
        for appender in self._metrics.values():
            appender.close()
        self._metrics.clear()

    def _require(self) -> ExperimentPaths:
        if self.paths is None:  # pragma: no cover - the facade checks first
            raise InvalidInputError("experiment is not open", hint="use `with exp.run:` or call exp.run.start() first")
        return self.paths

    # --- logs ------------------------------------------------------------------------------
    def write_log(self, level: str, message: str, metadata: dict[str, Any] | None, timestamp: str) -> int:
        if self._logs is None:
            self._logs = LogAppender(self._require())
            self._logs.exclusive = self.exclusive
        return self._logs.append(level, message, metadata, timestamp)

    def log_next_seq(self) -> int:
        """The sequence number the next line gets, after catching up with the file."""
        if self._logs is None:
            self._logs = LogAppender(self._require())
            self._logs.exclusive = self.exclusive
        self._logs.refresh()
        return self._logs.next_seq

    # --- parameters ------------------------------------------------------------------------
    def set_params(self, flat: dict[str, Any]) -> None:
        paths = self._require()
        jsonio.dumps_line(flat, "parameters")  # refuse unserialisable values before touching the file
        with directory_lock(paths.dir):
            current = self._read_params_record(paths)
            now = utc_now_iso()
            if current is None:
                record = ParametersRecord(version=1, data=dict(flat), createdAt=now, updatedAt=utc_now_iso())
            else:
                merged = dict(current.data)
                merged.update(flat)
                # 0.5.8 rebuilds the document from version 2 on, without createdAt.
                record = ParametersRecord(version=current.version + 1, data=merged, updatedAt=now)
            jsonio.atomic_write_json(paths.parameters_json, record.to_json_dict(), what="parameters")

    def _read_params_record(self, paths: ExperimentPaths) -> ParametersRecord | None:
        if not paths.parameters_json.exists():
            return None
        try:
            return load_record(paths.parameters_json, ParametersRecord)
        except RecordError as exc:
            raise RecordError(exc.message, hint="parameters.json is damaged; fix or remove it before setting "
                              "parameters again (nothing was overwritten)") from None

    def get_params(self) -> dict[str, Any]:
        record = self._read_params_record(self._require())
        return dict(record.data) if record else {}

    # --- metrics ---------------------------------------------------------------------------
    def _metric(self, name: str | None) -> MetricAppender:
        appender = self._metrics.get(name)
        if appender is None:
            appender = self._metrics[name] = MetricAppender(self._require(), name)
            appender.exclusive = self.exclusive
        return appender

    def metric_next_index(self, name: str | None) -> int:
        """The index the metric's next point gets, after catching up with its file."""
        appender = self._metric(name)
        appender.refresh()
        return appender.next_index

    def append_metric(self, name: str | None, data: dict[str, Any], description: str | None,
                      tags: list[str] | None, metadata: dict[str, Any] | None,
                      encoded: list[str] | None = None) -> dict[str, Any]:
        return self._metric(name).append(data, description, tags, metadata, encoded)

    def append_metric_batch(self, name: str | None, points: list[dict[str, Any]], description: str | None,
                            tags: list[str] | None, metadata: dict[str, Any] | None,
                            encoded: list[str] | None = None) -> dict[str, Any]:
        return self._metric(name).append_batch(points, description, tags, metadata, encoded)

    def read_metric(self, name: str | None, start_index: int, limit: int) -> dict[str, Any]:
        paths = self._require()
        if name not in self._metrics and not (paths.metric_dir(name) / "data.jsonl").exists():
            return {"data": [], "startIndex": start_index, "endIndex": start_index - 1, "total": 0,
                    "hasMore": False}
        return self._metric(name).read(start_index, limit)

    def metric_stats(self, name: str | None) -> dict[str, Any]:
        paths = self._require()
        if name in self._metrics:
            self._metrics[name].flush()
        meta_path = paths.metric_dir(name) / "metadata.json"
        if not meta_path.exists():
            raise InvalidInputError(f"metric {name!r} not found", hint="append a point to it first")
        meta = load_record(meta_path, MetricMetadata)
        total = str(meta.totalDataPoints)
        return {
            "metricId": meta.metricId, "name": meta.name, "description": meta.description,
            "tags": list(meta.tags), "metadata": meta.metadata, "totalDataPoints": total,
            "bufferedDataPoints": total, "chunkedDataPoints": "0", "totalChunks": 0, "chunkSize": 10000,
            "firstDataAt": meta.createdAt, "lastDataAt": meta.updatedAt, "createdAt": meta.createdAt,
            "updatedAt": meta.updatedAt or meta.createdAt,
        }

    def list_metrics(self) -> list[dict[str, Any]]:
        paths = self._require()
        self.flush()
        result = []
        for meta_path in sorted(paths.metrics_dir.rglob("metadata.json")):
            try:
                meta = load_record(meta_path, MetricMetadata)
            except RecordError:
                continue
            result.append({"metricId": meta.metricId, "name": meta.name, "description": meta.description,
                           "tags": list(meta.tags), "totalDataPoints": str(meta.totalDataPoints),
                           "createdAt": meta.createdAt})
        return result

    # --- files -----------------------------------------------------------------------------
    def _load_manifest(self, paths: ExperimentPaths) -> FilesManifest:
        if not paths.files_manifest.exists():
            return FilesManifest()
        return load_record(paths.files_manifest, FilesManifest)

    def save_file(self, source: Path, prefix: str, filename: str, description: str | None,
                  tags: list[str] | None, metadata: dict[str, Any] | None, content_type: str) -> dict[str, Any]:
        paths = self._require()
        spec = self._spec
        assert spec is not None
        jsonio.dumps_line(metadata, "file metadata")
        file_id = new_file_id()
        blob = paths.blob(prefix, file_id, filename)
        blob.parent.mkdir(parents=True, exist_ok=True)
        # Copy to a temporary name first: a crash never leaves a half blob under its real name.
        fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=blob.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            shutil.copystat(source, tmp)
            checksum, size = sha256_file(Path(tmp))
            os.replace(tmp, blob)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            shutil.rmtree(blob.parent, ignore_errors=True)
            raise
        now = utc_now_iso()
        entry = FileEntry(id=file_id, experimentId=f"{spec.project}/{spec.name}", path=prefix, filename=filename,
                          description=description, tags=list(tags or []), contentType=content_type,
                          sizeBytes=size, checksum=checksum, metadata=metadata, uploadedAt=now,
                          updatedAt=utc_now_iso(), deletedAt=None)
        with directory_lock(paths.dir):
            manifest = self._load_manifest(paths)
            files = list(manifest.files)
            for i, old in enumerate(files):
                if old.path == prefix and old.filename == filename and not old.deleted:
                    # Same path + name: replaced in place, old blob removed (0.5.8 behaviour).
                    shutil.rmtree(paths.blob(old.path, old.id, old.filename).parent, ignore_errors=True)
                    files[i] = entry
                    break
            else:
                files.append(entry)
            jsonio.atomic_write_json(paths.files_manifest, FilesManifest(files=files).to_json_dict())
        return entry.to_json_dict()

    def list_files(self, prefix: str | None, tags: list[str] | None) -> list[dict[str, Any]]:
        files = [f for f in self._load_manifest(self._require()).files if not f.deleted]
        if prefix:
            files = [f for f in files if f.path.startswith(prefix)]
        if tags:
            files = [f for f in files if any(t in f.tags for t in tags)]
        return [f.to_json_dict() for f in files]

    def _find_file(self, file_id: str) -> tuple[FilesManifest, int]:
        manifest = self._load_manifest(self._require())
        for i, entry in enumerate(manifest.files):
            if entry.id == file_id:
                if entry.deleted:
                    raise InvalidInputError(f"file {file_id} has been deleted",
                                            hint="files().list() lists the files that are still there")
                return manifest, i
        raise InvalidInputError(f"file {file_id} not found", hint="list the experiment's files with files().list()")

    def download_file(self, file_id: str, dest: str | None) -> str:
        paths = self._require()
        manifest, i = self._find_file(file_id)
        entry = manifest.files[i]
        source = paths.blob(entry.path, entry.id, entry.filename)
        if not source.exists():
            raise InvalidInputError(f"file {file_id} is missing on disk: {source}",
                                    hint="the local tree was changed by hand; restore the file, or save it again")
        target = Path(dest if dest is not None else entry.filename)
        shutil.copy2(source, target)
        if sha256_file(target)[0] != entry.checksum:
            target.unlink()
            raise InvalidInputError(f"checksum verification failed for file {file_id}",
                                    hint=f"the stored copy {source} is damaged")
        return str(target)

    def _rewrite_entry(self, file_id: str, **changes: Any) -> FileEntry:
        paths = self._require()
        with directory_lock(paths.dir):
            manifest, i = self._find_file(file_id)
            files = list(manifest.files)
            files[i] = files[i].model_copy(update=changes)
            jsonio.atomic_write_json(paths.files_manifest, FilesManifest(files=files).to_json_dict())
            return files[i]

    def update_file(self, file_id: str, description: str | None, tags: list[str] | None,
                    metadata: dict[str, Any] | None) -> dict[str, Any]:
        changes: dict[str, Any] = {k: v for k, v in (("description", description), ("tags", tags),
                                                      ("metadata", metadata)) if v is not None}
        changes["updatedAt"] = utc_now_iso()
        return self._rewrite_entry(file_id, **changes).to_json_dict()

    def delete_file(self, file_id: str) -> dict[str, Any]:
        now = utc_now_iso()
        entry = self._rewrite_entry(file_id, deletedAt=now, updatedAt=now)
        return {"id": entry.id, "deletedAt": entry.deletedAt}

