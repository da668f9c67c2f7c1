"""Who an experiment directory is, in either layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ml_dash.records.experiment import ExperimentRecord

__all__ = ["ExperimentIdentity", "identify"]


@dataclass(frozen=True)
class ExperimentIdentity:
    project: str
    name: str
    folder: str | None  # "/sweeps/2025" or None
    owner: str | None  # prefix layout only
    layout: str  # "0.5.8" or "prefix"

    @property
    def key(self) -> str:
        """``project/name``: the key 0.5.8's state file uses (no folder)."""
        return f"{self.project}/{self.name}"

    @property
    def display(self) -> str:
        folder = (self.folder or "").strip("/")
        return f"{folder}/{self.key}" if folder else self.key


def identify(root: Path, directory: Path, record: ExperimentRecord) -> ExperimentIdentity:
    """Project, name and folder of ``directory`` (below ``root``) holding ``record``.

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
    rel = directory.relative_to(root).parts
    if len(rel) >= 2:
        above = rel[:-2]
        folder = "/" + "/".join(above) if above else None
        return ExperimentIdentity(project=rel[-2], name=rel[-1], folder=folder, owner=None, layout="0.5.8")
    return ExperimentIdentity(project=record.project, name=record.name, folder=record.folder, owner=None,
                              layout="0.5.8")
