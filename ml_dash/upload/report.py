"""Stage 5: what the user reads after a run: per-experiment lines, the summary tables,
the list of failures, and the machine-readable JSON report."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ml_dash.records.jsonio import atomic_write_text
from ml_dash.upload.engine import ExperimentResult, FolderResult, RunResult

__all__ = ["print_results", "print_summary", "write_report"]


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f}MB"


def _parts(r: ExperimentResult) -> str:
    parts = []
    for label, value in (("params", r.total("params")), ("logs", r.total("logs")), ("metrics", sum(
            1 for s in r.streams if s.kind == "metric" and s.sent)), ("files", r.total("file"))):
        if value:
            parts.append(f"{value} {label}")
    if r.total("dashrc"):
        parts.append(".dashrc")
    return ", ".join(parts)


def _already(r: ExperimentResult) -> str:
    parts = []
    for label, kind in (("params", "params"), ("logs", "logs"), ("points", "metric"), ("files", "file")):
        value = r.total(kind, "already")
        if value:
            parts.append(f"{value} {label}")
    if r.total("dashrc", "already"):
        parts.append(".dashrc")
    return ", ".join(parts)


def _verbose_lines(r: ExperimentResult) -> list[str]:
    lines = [f"  ✓ Created experiment (id: {r.experiment_id})"] if r.experiment_id else []
    for s in r.streams:
        note = f" ({s.already} already on the server)" if s.already else ""
        if s.error:
            lines.append(f"  ✗ {s.kind} {s.name}: {s.error}")
        elif s.kind == "params":
            lines.append(f"  ✓ Uploaded {s.sent} parameters{note}")
        elif s.kind == "logs":
            lines.append(f"  ✓ Uploaded {s.sent} log entries{note}")
        elif s.kind == "metric":
            lines.append(f"  ✓ Uploaded {s.sent} data points for '{s.name}'{note}")
        elif s.kind == "file":
            lines.append(f"    ✓ {s.name} ({_mb(s.bytes or 0)}){' (already on the server)' if s.already else ''}")
        elif s.kind == "dashrc":
            lines.append(f"  ✓ .dashrc {s.note or ('already on the server' if s.already else 'uploaded')}")
    return lines


def _folder_line(f: FolderResult) -> str:
    said = {"sent": "✓ uploaded", "already": "✓ already on the server",
            "unsupported": "⚠ not uploaded: the server has no place for .dashrc files (an older server)"}
    return f"  {said.get(f.outcome, '✗ failed')}" if f.ok else f"  ✗ failed: {f.error}"


def print_results(run: RunResult, verbose: bool) -> None:
    n = len(run.experiments)
    for i, r in enumerate(run.experiments, 1):
        print(f"[{i}/{n}] {r.plan.display}")
        if verbose:
            for line in _verbose_lines(r):
                print(line)
        if r.skipped:
            print("  ✓ Skipped (completed in the previous run)")
        elif r.ok:
            sent, already = _parts(r), _already(r)
            if not sent and already:
                print(f"  ✓ Already uploaded (nothing new; on the server: {already})")
            else:
                print(f"  ✓ Uploaded ({sent or 'metadata only'})" + (f" (already on the server: {already})"
                                                                       if already else ""))
        else:
            print("  ✗ Failed")
            for error in r.all_errors[: None if verbose else 3]:
                print(f"      {error}")
    for f in run.folders:
        print(f"[.dashrc] {f.item.display} ({f.item.check.path})")
        print(_folder_line(f))


def _console() -> Any:
    from rich.console import Console

    width = int(os.environ.get("COLUMNS", "0") or 0) or None
    return Console(file=sys.stdout, width=width, no_color=bool(os.environ.get("NO_COLOR")), highlight=False,
                   soft_wrap=False)


def print_summary(run: RunResult) -> None:
    from rich.table import Table

    console = _console()
    attempted = [r for r in run.experiments if not r.skipped]
    n = len(run.experiments)
    ok = sum(1 for r in run.experiments if r.ok)
    failed = n - ok
    sent_bytes = sum(r.bytes for r in attempted)
    summary = Table(title="Upload Summary")
    summary.add_column("Status")
    summary.add_column("Count", justify="right")
    summary.add_row("Successful", f"{ok}/{n}")
    if failed:
        summary.add_row("Failed", f"{failed}/{n}")
    summary.add_row("Total Time", f"{run.seconds:.2f}s")
    if sent_bytes and run.seconds > 0:
        speed = sent_bytes / run.seconds
        summary.add_row("Avg Speed", f"{speed / 1024 / 1024:.2f} MB/s" if speed >= 1024 * 1024 else
                        f"{speed / 1024:.2f} KB/s")
    summary.add_row("Requests", str(run.requests))
    console.print()
    console.print(summary)
    data = Table(title="Data Uploaded")
    data.add_column("Type")
    data.add_column("Count", justify="right")
    logs = sum(r.total("logs") for r in attempted)
    points = sum(r.total("metric") for r in attempted)
    metrics = sum(1 for r in attempted for s in r.streams if s.kind == "metric" and s.sent)
    files = sum(r.total("file") for r in attempted)
    for label, value in (("Logs", f"{logs} entries" if logs else ""),
                         ("Metrics", f"{metrics} metrics ({points} points)" if metrics else ""),
                         ("Files", f"{files} files" if files else "")):
        if value:
            data.add_row(label, value)
    if data.row_count:
        console.print()
        console.print(data)
    failures = [r for r in run.experiments if not r.ok]
    if failures:
        print("\nFailed Experiments:")
        for r in failures:
            print(f"  ✗ {r.plan.display}")
            for error in r.all_errors:
                print(f"      {error}")
    folder_failures = [f for f in run.folders if not f.ok]
    if folder_failures:
        print("\nFailed .dashrc files:")
        for f in folder_failures:
            print(f"  ✗ {f.item.display}: {f.error}")


def _dashrc_status(r: ExperimentResult) -> str | None:
    """The experiment's .dashrc in the report: sent, already, failed, unsupported, or None (has none)."""
    for s in r.streams:
        if s.kind == "dashrc":
            return "failed" if s.error else "sent" if s.sent else "already" if s.already else "unsupported"
    return None


def write_report(path: Path, run: RunResult | None, *, remote: str | None, local_path: Path, exit_code: int,
                 invalid: list[dict[str, Any]]) -> None:
    """The machine-readable report: per experiment counts, failures and timings."""
    experiments: list[dict[str, Any]] = list(invalid)
    for r in run.experiments if run else []:
        experiments.append({
            "key": r.plan.key, "experiment": r.plan.display, "id": r.experiment_id,
            "status": "skipped" if r.skipped else ("uploaded" if r.ok else "failed"),
            "sent": {"params": r.total("params"), "logs": r.total("logs"), "metric_points": r.total("metric"),
                     "files": r.total("file"), "bytes": r.bytes},
            "already_on_server": {"params": r.total("params", "already"), "logs": r.total("logs", "already"),
                                  "metric_points": r.total("metric", "already"), "files": r.total("file", "already")},
            "dashrc": _dashrc_status(r),
            "invalid_lines": r.invalid_lines, "skipped_files": r.plan.skipped_files,
            "errors": r.all_errors, "seconds": round(r.seconds, 3)})
    doc = {"version": 1, "remote": remote, "local_path": str(local_path.resolve()), "exit_code": exit_code,
           "seconds": round(run.seconds, 3) if run else 0.0, "requests": run.requests if run else 0,
           "experiments": experiments,
           "folder_dashrcs": [{"project": f.item.project, "folder": f.item.folder, "path": str(f.item.check.path),
                               "status": f.outcome, "error": f.error} for f in (run.folders if run else [])],
           "totals": {"experiments": len(experiments),
                      "uploaded": sum(1 for e in experiments if e["status"] == "uploaded"),
                      "failed": sum(1 for e in experiments if e["status"] in ("failed", "invalid"))}}
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n", fsync=False)
