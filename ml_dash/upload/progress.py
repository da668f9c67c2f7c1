"""Progress while uploading: a rich live display on a terminal, plain lines elsewhere."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from ml_dash.upload.engine import ExperimentResult
from ml_dash.upload.plan import ExperimentPlan, Plan, human_bytes

__all__ = ["PlainProgress", "RichProgress", "choose_progress"]


def _total(plan: Plan) -> int:
    return sum(s.bytes for e in plan.experiments for s in e.streams) or 1


class PlainProgress:
    """A line at most every ``interval`` seconds: percent, bytes, speed, ETA. For CI logs."""

    def __init__(self, plan: Plan, interval: float = 5.0) -> None:
        self.total = _total(plan)
        self.done = 0
        self.interval = interval
        self._start = self._last = time.monotonic()
        self._lock = threading.Lock()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def experiment_started(self, plan: ExperimentPlan) -> None:
        return None

    def advance(self, plan: ExperimentPlan, nbytes: int) -> None:
        with self._lock:
            self.done += nbytes
            now = time.monotonic()
            if now - self._last < self.interval:
                return
            self._last = now
            rate = self.done / max(now - self._start, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else 0
            print(f"  progress: {min(100, 100 * self.done // self.total)}% ({human_bytes(self.done)} of "
                  f"{human_bytes(self.total)}, {human_bytes(int(rate))}/s, ETA {eta:.0f}s)", flush=True)

    def experiment_done(self, result: ExperimentResult) -> None:
        return None


class RichProgress:
    """One live display: an overall bar and a bar per running experiment, bytes/s and ETA."""

    def __init__(self, plan: Plan) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                  TransferSpeedColumn(), TimeRemainingColumn(), transient=True)
        self._overall = self._progress.add_task(f"all {len(plan.experiments)} experiment(s)", total=_total(plan))
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def experiment_started(self, plan: ExperimentPlan) -> None:
        with self._lock:
            total = sum(s.bytes for s in plan.streams) or 1
            self._tasks[plan.key] = self._progress.add_task(f"  {plan.display}", total=total)

    def advance(self, plan: ExperimentPlan, nbytes: int) -> None:
        with self._lock:
            task = self._tasks.get(plan.key)
        if task is not None:
            self._progress.advance(task, nbytes)
        self._progress.advance(self._overall, nbytes)

    def experiment_done(self, result: ExperimentResult) -> None:
        with self._lock:
            task = self._tasks.pop(result.plan.key, None)
        if task is not None:
            self._progress.remove_task(task)


class _Silent(PlainProgress):
    def advance(self, plan: ExperimentPlan, nbytes: int) -> None:
        return None


def choose_progress(mode: str, plan: Plan) -> PlainProgress | RichProgress:
    """``auto``: rich on an interactive terminal without NO_COLOR, plain lines otherwise."""
    if mode == "none":
        return _Silent(plan)
    interactive = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    if mode == "rich" or (mode == "auto" and interactive):
        return RichProgress(plan)
    return PlainProgress(plan)
