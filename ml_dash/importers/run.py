"""The whole of ``ml-dash import KIND SOURCE`` on a resolved configuration.

find the runs (the source's reader) → [strict: read everything first, refuse on any problem]
→ per run: import into the local tree (or, dry run: count) → summary → [--remote: upload the
imported experiments]. Exit codes: 0 when every run was imported (bad input skipped in lenient
mode is reported, not fatal), 1 when a run failed, strict mode refused, or the upload failed,
2 for configuration errors and a missing reader extra.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_dash.config.models import ImportConfig
from ml_dash.errors import ConfigError, MLDashError
from ml_dash.importers.source import Problem, SourceRun, require
from ml_dash.importers.writer import RunCounts, Target, import_run, safe_name, scan_run

__all__ = ["SOURCES", "run_import"]

# kind -> (reader module, what it reads, the extra that installs its library, that library)
SOURCES: dict[str, tuple[str, str, str, str]] = {
    "tensorboard": ("ml_dash.importers.tensorboard_source", "TensorBoard logdir", "import-tensorboard",
                    "tensorboard"),
    "mlflow": ("ml_dash.importers.mlflow_source", "MLflow store", "import-mlflow", "mlflow"),
    "wandb": ("ml_dash.importers.wandb_source", "W&B directory", "import-wandb", "wandb"),
}


@dataclass
class RunOutcome:
    run: SourceRun
    target: Target
    counts: RunCounts | None = None
    error: str | None = None


def _source_runs(cfg: ImportConfig) -> Iterator[SourceRun | Problem]:
    if cfg.kind is None:
        raise ConfigError("no source kind given", hint="ml-dash import tensorboard|mlflow|wandb SOURCE")
    if not cfg.source:
        raise ConfigError(f"no {SOURCES[cfg.kind][1]} given", hint=f"ml-dash import {cfg.kind} SOURCE")
    reader, what, extra, library = SOURCES[cfg.kind]
    plural = what[:-1] + "ies" if what.endswith("y") else what + "s"  # logdirs, stores, directories
    require(library, extra, plural)  # before anything else: the one thing a new user may lack
    module = importlib.import_module(reader)
    source: Any = cfg.source if cfg.source.startswith("sqlite:") else Path(cfg.source).expanduser()
    if isinstance(source, Path) and not source.exists():
        raise ConfigError(f"{SOURCES[cfg.kind][1]} not found: {source}",
                          hint="give the path of the source to import (see ml-dash import --help)")
    runs: Iterator[SourceRun | Problem] = module.runs(source)
    return runs


def _default_project(cfg: ImportConfig) -> str:
    source = cfg.source or "imported"
    if source.startswith("sqlite:"):
        return safe_name(Path(source.split(":", 1)[1].lstrip("/")).stem or "mlflow")
    path = Path(source).expanduser().resolve()
    return safe_name(path.stem if path.is_file() else path.name)


def _target(cfg: ImportConfig, run: SourceRun, fallback: str) -> Target:
    project = safe_name(cfg.project or run.project or fallback)
    return Target(root=cfg.to, project=project, name=safe_name(run.name), folder=cfg.folder)


def _describe(counts: RunCounts) -> str:
    parts = [f"{counts.points:,} points ({len(counts.metrics)} metrics)", f"{counts.logs:,} log lines",
             f"{counts.files} files", f"{counts.params} params"]
    there = counts.points_present + counts.logs_present + counts.files_present
    return ", ".join(parts) + (f"; {there:,} already there" if there else "")


class _Progress:
    """A live line on a terminal (rich), one line per run otherwise, or nothing."""

    def __init__(self, mode: str) -> None:
        if mode == "auto":
            mode = "rich" if sys.stdout.isatty() else "plain"
        self.mode = mode
        self._live: Any = None
        self._task: Any = None  # the running run's live line

    def __enter__(self) -> _Progress:
        if self.mode == "rich":
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._live = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                  transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def run(self, display: str) -> Callable[[int], None]:
        if self._live is None:
            return lambda _n: None
        task = self._task = self._live.add_task(f"{display}: reading", total=None)

        def update(records: int) -> None:
            self._live.update(task, description=f"{display}: {records:,} records read")

        return update

    def done(self, line: str) -> None:
        """Print a line above the live one; the first after a run ends that run's live line."""
        if self._live is not None:
            if self._task is not None:
                self._live.remove_task(self._task)
                self._task = None
            self._live.console.print(line, highlight=False, soft_wrap=True)  # paths stay whole
        elif self.mode != "none":
            print(line, flush=True)


def _problem_lines(outcome: RunOutcome, strict: bool) -> list[str]:
    assert outcome.counts is not None
    tail = "" if strict else " (skipped)"
    return [f"      {p.where}: {p.position}: {p.message}{tail}" for p in outcome.counts.problems]


def _import_all(cfg: ImportConfig, runs: list[SourceRun], fallback: str, debug: bool) -> list[RunOutcome]:
    outcomes = []
    with _Progress(cfg.progress) as progress:
        for run in runs:
            outcome = RunOutcome(run, _target(cfg, run, fallback))
            update = progress.run(outcome.target.display)
            try:
                if cfg.dry_run:
                    outcome.counts = scan_run(cfg.kind or "", run, outcome.target, cfg.batch_size)
                else:
                    outcome.counts = import_run(cfg.kind or "", run, outcome.target, cfg.batch_size, update)
            except MLDashError as exc:
                outcome.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad run must not stop the others
                if debug:
                    raise
                outcome.error = f"unexpected {type(exc).__name__}: {exc} (rerun with ML_DASH_DEBUG=1 for details)"
            outcomes.append(outcome)
            label = f"{outcome.target.display} (run {run.key})"
            if outcome.error is not None:
                progress.done(f"  ✗ {label}: {outcome.error}")
                continue
            assert outcome.counts is not None
            mark = "⚠" if outcome.counts.problems else "✓"
            progress.done(f"  {mark} {label}: {_describe(outcome.counts)}")
            for line in _problem_lines(outcome, strict=False):
                progress.done(line)
    return outcomes


def _summary(outcomes: list[RunOutcome], seconds: float, dry_run: bool, unreadable: int) -> None:
    from ml_dash.cli.console import print_table

    rows = []
    for o in outcomes:
        c = o.counts
        if c is None:
            rows.append((o.run.key, o.target.display, "failed", "", "", "", ""))
            continue
        rows.append((o.run.key, o.target.display, str(c.params), f"{c.points:,}", f"{c.logs:,}", str(c.files),
                     str(len(c.problems))))
    print("\nWould import:" if dry_run else "\nImport summary:")
    print_table(("run", "experiment", "params", "points", "logs", "files", "problems"), rows)
    done = [o.counts for o in outcomes if o.counts is not None]
    new = sum(c.records for c in done)
    there = sum(c.points_present + c.logs_present + c.files_present for c in done)
    problems = sum(len(c.problems) for c in done) + unreadable
    failed = sum(1 for o in outcomes if o.counts is None)
    rate = f" in {seconds:.1f}s ({new / seconds:,.0f} records/s)" if seconds > 0 and new else f" in {seconds:.1f}s"
    verb = "Would import" if dry_run else "Imported"
    print(f"\n{verb} {len(done)} of {len(outcomes)} run(s): {new:,} new records, {there:,} already there, "
          f"{problems} problem(s) skipped, {failed} failed{rate}")


def _strict_check(cfg: ImportConfig, runs: list[SourceRun], fallback: str, unreadable: int) -> int:
    """Read every run first; any bad input refuses the import before anything is written."""
    bad = unreadable
    for run in runs:
        target = _target(cfg, run, fallback)
        counts = scan_run(cfg.kind or "", run, target, cfg.batch_size)
        if counts.problems:
            bad += len(counts.problems)
            print(f"  ✗ {target.display} (run {run.key}):")
            for p in counts.problems:
                print(f"      {p.where}: {p.position}: {p.message}")
    if bad:
        print(f"Error: {bad} problem(s) in the source; nothing was imported (--strict)", file=sys.stderr)
        print("Hint: fix or remove the bad input, or import without --strict to skip it", file=sys.stderr)
    return bad


def _upload(cfg: ImportConfig, outcomes: list[RunOutcome]) -> int:
    from ml_dash.config.models import UploadConfig
    from ml_dash.upload.run import upload

    dirs = {o.target.dir.resolve() for o in outcomes if o.counts is not None}
    if not dirs:
        return 1
    upload_cfg = UploadConfig(path=cfg.to, remote=cfg.remote, api_key=cfg.api_key, username=cfg.username,
                              verbose=cfg.verbose, retry=cfg.retry, progress=cfg.progress)
    print(f"\nUploading the imported experiments to {cfg.remote}")
    return upload(upload_cfg, only=dirs)


def run_import(cfg: ImportConfig) -> int:
    debug = os.environ.get("ML_DASH_DEBUG", "") not in ("", "0")
    started = time.monotonic()
    found = list(_source_runs(cfg))  # run descriptions only: their records are streamed one run at a time
    runs = [r for r in found if isinstance(r, SourceRun)]
    unreadable = [p for p in found if isinstance(p, Problem)]
    what = SOURCES[cfg.kind or ""][1]
    if not runs and not unreadable:
        print(f"No runs found in {what} {cfg.source}")
        return 1
    fallback = _default_project(cfg)
    action = "Checking" if cfg.dry_run else "Importing"
    print(f"{action} {len(runs)} run(s) from {what} {cfg.source} into {cfg.to.resolve()}")
    for p in unreadable:
        print(f"  ✗ a run that cannot be read: {p.where}: {p.position}: {p.message}"
              + ("" if cfg.strict else " (skipped)"))
    if cfg.strict and not cfg.dry_run and (_strict_check(cfg, runs, fallback, len(unreadable))):
        return 1
    outcomes = _import_all(cfg, runs, fallback, debug)
    _summary(outcomes, time.monotonic() - started, cfg.dry_run, len(unreadable))
    failed = any(o.counts is None for o in outcomes) or not outcomes
    if cfg.dry_run:
        print("\nDRY RUN - nothing was written")
        return 1 if failed or (cfg.strict and (unreadable or any(o.counts and o.counts.problems for o in outcomes))) else 0
    code = 1 if failed else 0
    if cfg.remote:
        code = max(code, _upload(cfg, outcomes))
    return code
