"""Stage 1: find the experiments below a storage root (either layout, any depth).

A directory holding ``experiment.json`` is an experiment and is not descended into,
and any other directory holding a ``.dashrc`` is noted (a folder's, see ``upload/dashrc.py``);
so a file that happens to be named experiment.json inside ``files/`` is never taken
for one (0.5.8 took it). The order is sorted, hence deterministic. Symlink loops and
unreadable directories are reported and skipped, never fatal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ml_dash.errors import RecordError
from ml_dash.records.dashrc import DASHRC_FILE
from ml_dash.records.experiment import ExperimentRecord
from ml_dash.records.identity import ExperimentIdentity, identify
from ml_dash.records.layout import EXPERIMENT_FILE, FILES_MANIFEST, ExperimentPaths
from ml_dash.records.read import load_record

__all__ = ["DiscoveredExperiment", "Discovery", "discover", "discover_experiments"]


@dataclass(frozen=True)
class DiscoveredExperiment:
    """One experiment directory. ``project``/``experiment``/``path`` as in the seed's API."""

    root: Path
    path: Path
    identity: ExperimentIdentity
    record_error: str | None = None  # experiment.json unreadable: reported by validation

    @property
    def project(self) -> str:
        return self.identity.project

    @property
    def experiment(self) -> str:
        return self.identity.name

    @property
    def folder(self) -> str | None:
        return self.identity.folder

    @property
    def key(self) -> str:
        return self.identity.key

    @property
    def paths(self) -> ExperimentPaths:
        return ExperimentPaths(self.path)

    # What 0.5.8's discovery reported, computed on demand (cheap stats, no reading).
    @property
    def has_logs(self) -> bool:
        return self.paths.logs_jsonl.is_file()

    @property
    def dashrc(self) -> Path:
        """Where the experiment's own ``.dashrc`` would be (beside experiment.json)."""
        return self.path / DASHRC_FILE

    @property
    def has_params(self) -> bool:
        return self.paths.parameters_json.is_file()

    @property
    def metric_names(self) -> list[str]:
        base = self.paths.metrics_dir
        if not base.is_dir():
            return []
        return sorted(p.parent.relative_to(base).as_posix() for p in base.rglob("data.jsonl"))


@dataclass
class Discovery:
    root: Path
    experiments: list[DiscoveredExperiment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dashrc_dirs: list[Path] = field(default_factory=list)  # directories (not experiments) holding a .dashrc


def _walk(root: Path, problems: list[str], dashrc_dirs: list[Path] | None = None) -> list[Path]:
    """Directories holding experiment.json, depth-first, sorted, following symlinks once
    (and, into ``dashrc_dirs``, the other directories holding a ``.dashrc`` file)."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            st = directory.stat()
        except OSError as exc:
            problems.append(f"{directory}: cannot be read ({exc.strerror}); skipped")
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            problems.append(f"{directory}: symlink loop (this directory was already visited); skipped")
            continue
        seen.add(ident)
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"{directory}: cannot be read ({exc.strerror}); skipped")
            continue
        if any(e.name == EXPERIMENT_FILE and e.is_file() for e in entries) and directory != root:
            found.append(directory)
            continue
        if dashrc_dirs is not None and any(e.name == DASHRC_FILE and e.is_file() for e in entries):
            dashrc_dirs.append(directory)
        subdirs = []
        for entry in entries:
            try:
                if entry.is_dir():
                    subdirs.append(Path(entry.path))
            except OSError:
                continue
        stack.extend(reversed(subdirs))
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def discover(root: Path, project: str | None = None, experiment: str | None = None) -> Discovery:
    """Every experiment below ``root`` (filtered by exact project / experiment name)."""
    result = Discovery(root=root)
    if (root / EXPERIMENT_FILE).is_file():
        result.problems.append(f"{root / EXPERIMENT_FILE}: an experiment directly at the storage root has no "
                               "project directory; give its parent's parent as the path")
    for directory in _walk(root, result.problems, result.dashrc_dirs):
        try:
            record = load_record(directory / EXPERIMENT_FILE, ExperimentRecord)
            identity = identify(root, directory, record)
            error = None
        except RecordError as exc:
            rel = directory.relative_to(root).parts
            if len(rel) < 2:
                result.problems.append(f"{directory}: not inside a project directory; skipped")
                continue
            folder = "/" + "/".join(rel[:-2]) if len(rel) > 2 else None
            identity = ExperimentIdentity(project=rel[-2], name=rel[-1], folder=folder, owner=None, layout="0.5.8")
            error = exc.message
        if project is not None and identity.project != project:
            continue
        if experiment is not None and identity.name != experiment:
            continue
        result.experiments.append(DiscoveredExperiment(root=root, path=directory, identity=identity,
                                                       record_error=error))
    return result


def discover_experiments(root: Path | str, project: str | None = None,
                         experiment: str | None = None) -> list[DiscoveredExperiment]:
    """The seed's API: the experiments below ``root``, in a deterministic order."""
    return discover(Path(root), project, experiment).experiments


def manifest_path(exp: DiscoveredExperiment) -> Path:
    return exp.path / "files" / FILES_MANIFEST
