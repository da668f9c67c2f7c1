"""What the engine did: per stream, per experiment, per folder ``.dashrc`` and for the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field

from ml_dash.records.read import Problem
from ml_dash.upload.dashrc import FolderDashrc
from ml_dash.upload.plan import ExperimentPlan

__all__ = ["ExperimentResult", "FolderResult", "RunResult", "StreamResult"]


@dataclass
class StreamResult:
    kind: str
    name: str
    sent: int = 0
    already: int = 0  # on the server before this run: not sent again
    bytes: int = 0
    error: str | None = None
    note: str | None = None  # e.g. a .dashrc the server has no place for (an older server)
    invalid: int = 0  # lines skipped as invalid, found while streaming (lenient: one pass)
    problems: list[Problem] = field(default_factory=list)  # the first few of them, with their line numbers


@dataclass
class FolderResult:
    """A folder's ``.dashrc``: "sent", "already" (the server had the same text), "unsupported"
    (the server has no .dashrc routes: not an error) or "failed" (``error`` says why)."""

    item: FolderDashrc
    outcome: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ExperimentResult:
    plan: ExperimentPlan
    experiment_id: str | None = None
    streams: list[StreamResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False  # completed in a previous run (--resume)

    @property
    def ok(self) -> bool:
        return not self.errors and all(s.error is None for s in self.streams)

    def total(self, kind: str, attr: str = "sent") -> int:
        return sum(getattr(s, attr) for s in self.streams if s.kind == kind)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.streams)

    @property
    def invalid_lines(self) -> int:
        """Found by validation (strict, dry run) or while streaming (lenient)."""
        return self.plan.invalid_lines + sum(s.invalid for s in self.streams)

    @property
    def all_errors(self) -> list[str]:
        return self.errors + [f"{stream_label(s)}: {s.error}" for s in self.streams if s.error]


@dataclass
class RunResult:
    experiments: list[ExperimentResult]
    seconds: float
    requests: int
    folders: list[FolderResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.experiments) and all(f.ok for f in self.folders)


def stream_label(s: StreamResult) -> str:
    return s.kind if s.kind in ("logs", "dashrc") else f"{s.kind} {s.name}"
