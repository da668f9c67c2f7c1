"""Who an experiment directory is, in either layout."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ml_dash.records.experiment import ExperimentRecord

__all__ = ["SPOOL_MARKER", "ExperimentIdentity", "identify"]

SPOOL_MARKER = ".ml-dash-spool-run"  # written by remote mode's spool (sdk/backends/spooled.py)


@dataclass(frozen=True)
class ExperimentIdentity:
    project: str
    name: str
    folder: str | None  # "/sweeps/2025" or None
    owner: str | None  # prefix layout only
    layout: str  # "0.5.8" or "prefix"
    spool_run: str | None = None  # the remote-mode spool run holding it (one writer of several)

    @property
    def key(self) -> str:
        """``project/name``: the key 0.5.8's state file uses (no folder); a spool run's experiment
        is one writer of that experiment among others, so its key names the run too."""
        key = f"{self.project}/{self.name}"
        return f"{self.spool_run}:{key}" if self.spool_run else key

    @property
    def display(self) -> str:
        folder = (self.folder or "").strip("/")
        shown = f"{self.project}/{self.name}"
        shown = f"{folder}/{shown}" if folder else shown
        return f"{shown} [{self.spool_run}]" if self.spool_run else shown


def identify(root: Path, directory: Path, record: ExperimentRecord) -> ExperimentIdentity:
    """Project, name and folder of ``directory`` (below ``root``) holding ``record``.

    A remote-mode spool run (a directory with the spool marker, between ``root`` and
    ``directory``) is a tree root of its own: the folder is counted from there.

    Prefix layout (experiment.json has ``prefix = owner/project/[folders/]name``):
    taken from the prefix. 0.5.8 layout: project and name are the last two path
    segments and anything above them is the folder, as 0.5.8's own discovery does.
    """
    if record.prefix:
        parts = [p for p in record.prefix.split("/") if p]
        if len(parts) >= 3:
            folders = parts[2:-1]
            return ExperimentIdentity(project=parts[1], name=parts[-1],
                                      folder="/" + "/".join(folders) if folders else None,
                                      owner=parts[0], layout="prefix")
    for parent in directory.parents:
        if parent == root or root not in parent.parents:
            break
        if (parent / SPOOL_MARKER).is_file():
            inner = identify(parent, directory, record)
            return dataclasses.replace(inner, spool_run=parent.name)
    rel = directory.relative_to(root).parts
    if len(rel) >= 2:
        above = rel[:-2]
        folder = "/" + "/".join(above) if above else None
        return ExperimentIdentity(project=rel[-2], name=rel[-1], folder=folder, owner=None, layout="0.5.8")
    return ExperimentIdentity(project=record.project, name=record.name, folder=record.folder, owner=None,
                              layout="0.5.8")
