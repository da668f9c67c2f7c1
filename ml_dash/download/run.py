"""``ml-dash download``: experiments from a server into a local tree in the 0.5.8 format.

Discovery goes through GraphQL (as 0.5.8's download did); each experiment is then
written with the SDK's local backend, so the tree is exactly what the SDK writes.
Resumable below the experiment: an experiment already on disk is completed, not
re-fetched (each stream continues from the local count; files present with the same
checksum are kept). Files are streamed to disk and checksum-verified. Experiments
and streams run in parallel (``workers``).

``.dashrc`` files come back too: an experiment's into its directory, a folder's (project P,
folder F) to ``ROOT/F/P/.dashrc``, where this layout keeps P's experiments of F (see
``upload/dashrc.py``). A local ``.dashrc`` that differs from the server's is kept (and said)
unless ``--overwrite``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_dash.api.client import ApiClient
from ml_dash.api.connect import client_for
from ml_dash.config.models import DownloadConfig
from ml_dash.errors import MLDashError
from ml_dash.records.dashrc import DASHRC_FILE
from ml_dash.records.jsonio import atomic_write_text
from ml_dash.records.layout import experiment_dir, folder_parts
from ml_dash.sdk.backends.base import ExperimentSpec
from ml_dash.sdk.backends.local import LocalBackend
from ml_dash.sdk.files_util import sha256_file
from ml_dash.upload.state import UploadState, load_state

__all__ = ["download"]

EXPERIMENTS_QUERY = (
    "query Experiments($namespaceSlug: String, $projectSlug: String) { experiments(namespaceSlug: $namespaceSlug, "
    "projectSlug: $projectSlug) { id name description tags bindrs folder status metadata project { slug } } }")
PROJECTS_QUERY = "query Projects($namespaceSlug: String) { projects(namespaceSlug: $namespaceSlug) { slug } }"


@dataclass
class _Result:
    key: str
    display: str
    counts: dict[str, int] = field(default_factory=lambda: {"params": 0, "logs": 0, "points": 0, "files": 0,
                                                             "bytes": 0, "dashrc": 0})
    errors: list[str] = field(default_factory=list)


def describe(exc: BaseException) -> str:
    """One line for the summary: an ml-dash error's message, or any other exception's type and message."""
    if isinstance(exc, MLDashError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def remote_experiments(client: ApiClient, namespace: str | None, project: str | None) -> list[dict[str, Any]]:
    projects = [project] if project else [p["slug"] for p in client.graphql(PROJECTS_QUERY, {
        "namespaceSlug": namespace})["projects"]]
    out: list[dict[str, Any]] = []
    for slug in projects:
        out += client.graphql(EXPERIMENTS_QUERY, {"namespaceSlug": namespace, "projectSlug": slug})["experiments"]
    return out


def _identity(exp: dict[str, Any]) -> dict[str, Any]:
    """Name, folder and the experiment's own fields; undoes 0.5.8's upload, which put the whole
    experiment.json into ``metadata`` (and the folder only there)."""
    metadata = exp.get("metadata")
    fields = {"description": exp.get("description"), "tags": exp.get("tags") or [], "bindrs": exp.get("bindrs") or [],
              "folder": exp.get("folder"), "metadata": metadata}
    if isinstance(metadata, dict) and metadata.get("name") == exp["name"] and "created_at" in metadata:
        fields.update(description=fields["description"] or metadata.get("description"),
                      tags=fields["tags"] or metadata.get("tags") or [],
                      bindrs=fields["bindrs"] or metadata.get("bindrs") or [],
                      folder=fields["folder"] or metadata.get("folder"), metadata=metadata.get("metadata"))
    return fields


class _Downloader:
    def __init__(self, client: ApiClient, cfg: DownloadConfig) -> None:
        self.client = client
        self.cfg = cfg
        self.pool = ThreadPoolExecutor(cfg.parallel, thread_name_prefix="ml-dash-dl")
        self.lock = threading.Lock()

    def experiment(self, exp: dict[str, Any]) -> _Result:
        project = exp["project"]["slug"]
        fields = _identity(exp)
        display = "/".join(p for p in ((fields["folder"] or "").strip("/"), project, exp["name"]) if p)
        result = _Result(f"{project}/{exp['name']}", display)
        target = experiment_dir(self.cfg.path, project, exp["name"], fields["folder"])
        if self.cfg.overwrite and target.exists():
            shutil.rmtree(target)
        local = LocalBackend(self.cfg.path)
        jobs: list[Future[None]] = []
        try:
            local.open(ExperimentSpec(name=exp["name"], project=project, **fields))
            exp_id = str(exp["id"])
            if not self.cfg.skip.params:
                self._params(local, exp_id, result)
            if not self.cfg.skip.logs:
                jobs.append(self.pool.submit(self._logs, local, exp_id, result))
            if not self.cfg.skip.metrics:
                jobs += [self.pool.submit(self._metric, local, exp_id, m, result)
                         for m in self.client.list_metrics(exp_id)]
            if not self.cfg.skip.files:
                have = {(f["path"], f["filename"], f["checksum"]) for f in local.list_files(None, None)}
                jobs += [self.pool.submit(self._file, local, exp_id, f, result)
                         for f in self.client.list_files(exp_id) if (f["path"], f["filename"], f["checksum"]) not in have]
            text = self._get_text(f"/experiments/{exp_id}/dashrc")
            if text is not None and write_dashrc(target / DASHRC_FILE, text, self.cfg.overwrite):
                self._count(result, "dashrc", 1)
        except Exception as exc:  # noqa: BLE001 - one experiment's failure, whatever it is, is only its own
            result.errors.append(describe(exc))
        finally:
            for job in jobs:  # every stream ends before the experiment is closed; each failure is reported
                try:
                    job.result()
                except Exception as exc:  # noqa: BLE001 - as above, per stream
                    result.errors.append(describe(exc))
            local.close("COMPLETED")
        return result

    def _count(self, result: _Result, key: str, n: int) -> None:
        with self.lock:
            result.counts[key] += n

    def _params(self, local: LocalBackend, exp_id: str, result: _Result) -> None:
        data = self.client.get_params(exp_id).get("data") or {}
        current = local.get_params()
        missing = {k: v for k, v in data.items() if k not in current or current[k] != v}
        if missing:
            local.set_params(missing)
            self._count(result, "params", len(missing))

    def _logs(self, local: LocalBackend, exp_id: str, result: _Result) -> None:
        paths = local.paths
        assert paths is not None
        offset = sum(1 for _ in open(paths.logs_jsonl, "rb")) if paths.logs_jsonl.exists() else 0
        while True:
            page = self.client.query_logs(exp_id, offset=offset, limit=self.cfg.batch_size)
            for line in page["logs"]:
                local.write_log(line["level"], line["message"], line.get("metadata"), line["timestamp"] or "")
            offset += len(page["logs"])
            self._count(result, "logs", len(page["logs"]))
            if not page.get("hasMore") or not page["logs"]:
                return

    def _metric(self, local: LocalBackend, exp_id: str, metric: dict[str, Any], result: _Result) -> None:
        name = metric["name"]
        stats = self.client.metric_stats(exp_id, name)
        start = self._local_points(local, name)  # continue where the local series ends
        info = {"description": stats.get("description"), "tags": stats.get("tags") or None,
                "metadata": stats.get("metadata")}
        while True:
            page = self.client.read_metric(exp_id, name, start, self.cfg.batch_size)
            points = [p["data"] for p in page["data"]]
            if points:
                local.append_metric_batch(name, points, info["description"], info["tags"], info["metadata"])
                start += len(points)
                self._count(result, "points", len(points))
            if not page.get("hasMore") or not points:
                return

    def _get_text(self, path: str, params: dict[str, str] | None = None) -> str | None:
        """The ``.dashrc`` text at ``/ui{path}``; None when there is none (or the server has no such route)."""
        response = self.client.request("GET", f"/ui{path}", params=params, ok=(404, 405))
        return str(response.json()["text"]) if response.status_code == 200 else None

    def folder_dashrcs(self, projects: list[str]) -> tuple[list[Path], list[str]]:
        """Every folder ``.dashrc`` of these projects into the tree: ``(files written, problems)``."""
        written: list[Path] = []
        problems = []
        for project in projects:
            params = {"project": project, **({"namespace": self.cfg.namespace} if self.cfg.namespace else {})}
            try:
                response = self.client.request("GET", "/ui/dashrc/folders", params=params, ok=(404, 405))
                items = response.json().get("items", []) if response.status_code == 200 else []
                for item in items:
                    path = self.cfg.path.joinpath(*folder_parts(item["folder"]), project, DASHRC_FILE)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    if write_dashrc(path, str(item["text"]), self.cfg.overwrite):
                        written.append(path)
            except Exception as exc:  # noqa: BLE001 - reported; the experiments are downloaded already
                problems.append(f"the folder .dashrc files of project {project}: {describe(exc)}")
        return written, problems

    @staticmethod
    def _local_points(local: LocalBackend, name: str) -> int:
        try:
            return int(local.metric_stats(name)["totalDataPoints"])
        except MLDashError:
            return 0

    def _file(self, local: LocalBackend, exp_id: str, f: dict[str, Any], result: _Result) -> None:
        with tempfile.TemporaryDirectory(prefix="ml-dash-dl-") as tmp:
            part = Path(tmp) / f["filename"]
            with open(part, "wb") as out:
                for chunk in self.client.download_file(exp_id, str(f["id"])):
                    out.write(chunk)
            digest, size = sha256_file(part)
            if digest != f["checksum"]:
                raise MLDashError(f"file {f['path'].rstrip('/')}/{f['filename']}: checksum mismatch after download",
                                  hint="run the download again")
            local.save_file(part, f["path"], f["filename"], f.get("description"), f.get("tags"), f.get("metadata"),
                            f.get("contentType") or "application/octet-stream")
        self._count(result, "files", 1)
        self._count(result, "bytes", size)


def write_dashrc(path: Path, text: str, overwrite: bool) -> bool:
    """Write the server's ``.dashrc`` text; a different local one is kept (and said) unless ``overwrite``.
    True when the file now holds ``text``."""
    try:
        current = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        current = None
    if current == text:
        return True
    if current is not None and not overwrite:
        print(f"Warning: {path} differs from the server's .dashrc; kept (--overwrite replaces it)", file=sys.stderr)
        return False
    atomic_write_text(path, text, fsync=False)
    return True


def download(cfg: DownloadConfig) -> int:
    client = client_for(cfg, connections=cfg.parallel)
    started = time.perf_counter()
    try:
        print("Discovering experiments on remote server...")
        found = remote_experiments(client, cfg.namespace, cfg.project)
        if cfg.experiment:
            found = [e for e in found if e["name"] == cfg.experiment]
        projects = sorted({e["project"]["slug"] for e in found})  # their folder .dashrc files come too
        state = UploadState(path=cfg.state_file, local_path=str(cfg.path.resolve()), remote_url=cfg.remote or "")
        if cfg.resume:
            previous = load_state(cfg.state_file)
            if previous and previous.local_path == state.local_path and previous.remote_url == state.remote_url:
                state = previous
                before = len(found)
                found = [e for e in found if f"{e['project']['slug']}/{e['name']}" not in set(state.completed)]
                print(f"Skipping {before - len(found)} already completed experiment(s)")
        print(f"Found {len(found)} experiment(s)")
        if cfg.dry_run:
            for e in found:
                print(f"  • {e['project']['slug']}/{e['name']} ({e['status']})")
            print("\nDRY RUN - No data will be downloaded")
            return 0
        downloader = _Downloader(client, cfg)
        progress = _Progress(len(found))
        with ThreadPoolExecutor(max(1, min(cfg.parallel, len(found) or 1))) as pool:
            results = list(pool.map(lambda e: _tracked(downloader, state, e, progress), found))
        downloader.pool.shutdown()
        written, problems = downloader.folder_dashrcs(projects)
    finally:
        client.close()
    for path in written:
        print(f"  ✓ folder .dashrc {path}", file=sys.stderr)
    for problem in problems:
        print(f"Error: {problem}", file=sys.stderr)
    return max(_summary(results, time.perf_counter() - started, state), 1 if problems else 0)


class _Progress:
    """One line per finished experiment, as they finish (to stderr: stdout keeps the summary)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.lock = threading.Lock()

    def finished(self, result: _Result) -> None:
        with self.lock:
            self.done += 1
            mark = "✗" if result.errors else "✓"
            print(f"  {mark} {self.done}/{self.total} {result.display} ({result.counts['points']} points, "
                  f"{result.counts['files']} files)", file=sys.stderr, flush=True)


def _tracked(downloader: _Downloader, state: UploadState, exp: dict[str, Any], progress: _Progress) -> _Result:
    key = f"{exp['project']['slug']}/{exp['name']}"
    state.started(key)
    try:
        result = downloader.experiment(exp)
    except Exception as exc:  # noqa: BLE001 - e.g. an odd experiment record, or the local tree not closing
        result = _Result(key, key, errors=[describe(exc)])
    state.finished(key, not result.errors)
    progress.finished(result)
    return result


def _summary(results: list[_Result], seconds: float, state: UploadState) -> int:
    for i, r in enumerate(results, 1):
        print(f"[{i}/{len(results)}] {r.display}")
        c = r.counts
        if r.errors:
            print("  ✗ Failed")
            for e in r.errors:
                print(f"      {e}")
        else:
            dashrc = ", .dashrc" if c["dashrc"] else ""
            print(f"  ✓ Downloaded ({c['params']} params, {c['logs']} logs, {c['points']} points, {c['files']} files"
                  f"{dashrc})")
    failed = sum(1 for r in results if r.errors)
    total = sum(r.counts["bytes"] for r in results)
    print(f"\nDownloaded {len(results) - failed}/{len(results)} experiment(s), {total / 1024:.1f} KB of files "
          f"in {seconds:.2f}s")
    if failed:
        state.save()
        print(f"State saved to {state.path}. Use --resume to continue.", file=sys.stderr)
        return 1
    state.remove()
    return 0
