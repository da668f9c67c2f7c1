"""``.dashrc`` files of a local tree: which server ``.dashrc`` each one is, checked before sending.

* In an experiment directory (beside experiment.json): that experiment's.
* In any other directory of the tree: a folder's (its saved Compare view), on the server keyed by
  (project, folder) — the folder without outer slashes, "" for a project's root. Which ones, from the
  experiments below the directory:

  - 0.5.8 layout ``ROOT/[F/...]/P/E``: the project directory ``ROOT/F/P`` is (P, F); a directory
    above project directories, ``ROOT/F`` (or ROOT itself: F = ""), is (P, F) for every project P
    below it — the server keeps folders inside projects, the 0.5.8 layout above them. A directory
    ``ROOT/F/P`` with no experiment below it, named like a project P of the tree, is (P, F): the
    folder F of P holds no experiment itself (e.g. F = sweeps, experiments in sweeps/2025).
  - prefix layout ``ROOT/OWNER/P/[G/...]/E``: ``ROOT/OWNER/P/G`` is (P, G) (``ROOT/OWNER/P``: (P, "")); a
    directory above the project level (ROOT, ROOT/OWNER) is (P, "") for every project P below it.

  Two files naming the same (project, folder): the deeper one (closer to the experiments) is sent,
  the other is reported. A directory with no experiment below it names nothing (reported).

``ml-dash download`` writes a folder's ``.dashrc`` where the 0.5.8 layout (which it writes) keeps
that project's experiments of the folder: ``ROOT/F/P/.dashrc`` (``ROOT/P/.dashrc`` for the root), and
an experiment's into its directory. Uploading is idempotent: the server's text is read first and
nothing is sent when it is the same, so a re-run or ``--resume`` sends each one at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ml_dash.records.dashrc import DASHRC_FILE, DashrcError, load_dashrc
from ml_dash.upload.discover import DiscoveredExperiment

__all__ = ["DashrcCheck", "FolderDashrc", "check_dashrc", "folder_dashrcs"]

MAX_BYTES = 256 * 1024  # the server's limit too (routes/dashrc.py)


@dataclass(frozen=True)
class DashrcCheck:
    """One local ``.dashrc``: its text when usable, else the problem (file, line, key in the message)."""

    path: Path
    text: str | None
    problem: str | None = None
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_dashrc(path: Path) -> DashrcCheck:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return DashrcCheck(path, None, f"{path}: cannot be read ({exc.strerror})", "check the file's permissions")
    if len(raw) > MAX_BYTES:
        return DashrcCheck(path, None, f"{path}: {len(raw)} bytes, over the limit of {MAX_BYTES}",
                           "declare fewer charts")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DashrcCheck(path, None, f"{path}: not UTF-8 text (byte {exc.start})", "save the file as UTF-8")
    try:
        load_dashrc(text, source=str(path))
    except DashrcError as exc:
        where = f"{path}:{exc.line}" if exc.line is not None else str(path)
        return DashrcCheck(path, None, ": ".join(p for p in (where, exc.key, exc.problem) if p), exc.hint)
    return DashrcCheck(path, text)


@dataclass(frozen=True)
class FolderDashrc:
    """A folder ``.dashrc`` to send: to (project, folder), from ``check.path``."""

    project: str
    folder: str
    check: DashrcCheck

    @property
    def display(self) -> str:
        return f"folder {self.folder or '/'} of project {self.project}"


def _targets(root: Path, directory: Path, exp: DiscoveredExperiment) -> tuple[str, str] | None:
    """The (project, folder) ``directory`` names for ``exp`` below it (see the module's rule)."""
    if exp.identity.spool_run or directory not in exp.path.parents:
        return None  # a remote-mode spool run is one writer among others, not a place of the tree
    rel_dir = directory.relative_to(root).parts
    rel_exp = exp.path.relative_to(root).parts
    if exp.identity.layout == "prefix":
        folders = [p for p in (exp.identity.folder or "").split("/") if p]
        layout = (exp.identity.owner or "", exp.project, *folders, exp.experiment)
        base = len(rel_exp) - len(layout)  # where OWNER sits below the upload root
        if base < 0 or rel_exp[base:] != layout:
            return None
        depth = len(rel_dir) - base
        return exp.project, "/".join(folders[:max(0, depth - 2)])
    folders = list(rel_exp[:-2])
    if len(rel_dir) == len(folders) + 1:  # the project directory itself
        return exp.project, "/".join(folders)
    return exp.project, "/".join(rel_dir)  # a folder directory above the project directories


def folder_dashrcs(root: Path, directories: list[Path],
                   experiments: list[DiscoveredExperiment]) -> tuple[list[FolderDashrc], list[str]]:
    """The folder ``.dashrc`` files to send (checked) and the problems of placing them."""
    chosen: dict[tuple[str, str], Path] = {}
    notes: list[str] = []
    projects = {e.project for e in experiments if e.identity.layout == "0.5.8" and not e.identity.spool_run}
    for directory in directories:
        names = {t for exp in experiments if (t := _targets(root, directory, exp)) is not None}
        if not names and directory != root and directory.name in projects:
            names = {(directory.name, "/".join(directory.relative_to(root).parts[:-1]))}
        if not names:
            notes.append(f"{directory / DASHRC_FILE}: no experiment below it (of those uploaded), so it names no "
                         "project folder; not uploaded")
            continue
        for name in names:
            other = chosen.get(name)
            if other is None or len(directory.parts) > len(other.parts):
                if other is not None:
                    notes.append(f"{other / DASHRC_FILE}: {directory / DASHRC_FILE} is closer to the experiments of "
                                 f"{name[0]} folder '{name[1] or '/'}' and is sent for it instead")
                chosen[name] = directory
            else:
                notes.append(f"{directory / DASHRC_FILE}: {other / DASHRC_FILE} is closer to the experiments of "
                             f"{name[0]} folder '{name[1] or '/'}' and is sent for it instead")
    checks: dict[Path, DashrcCheck] = {}
    out = []
    for (project, folder), directory in sorted(chosen.items()):
        check = checks.get(directory) or checks.setdefault(directory, check_dashrc(directory / DASHRC_FILE))
        out.append(FolderDashrc(project, folder, check))
    return out, notes
