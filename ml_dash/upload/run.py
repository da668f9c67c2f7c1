"""The whole of ``ml-dash upload`` on a resolved configuration, stage by stage.

discover → validate → plan → (dry run: describe) → engine → report. ``.dashrc`` files ride
along: an experiment's with it, the folders' after every experiment (see ``upload/dashrc.py``). Messages follow the
seed document; the exit code is 0 when everything was uploaded, 1 when anything failed
(or strict validation refused), 2 for configuration errors (raised as ConfigError).
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from ml_dash.api.connect import client_for, require_server, token_for
from ml_dash.config.models import UploadConfig
from ml_dash.errors import ApiError, ConfigError
from ml_dash.upload.dashrc import FolderDashrc, folder_dashrcs
from ml_dash.upload.discover import DiscoveredExperiment, discover
from ml_dash.upload.plan import Plan, build_plan, human_bytes
from ml_dash.upload.results import RunResult
from ml_dash.upload.state import UploadState, load_state
from ml_dash.upload.validate import CheckedExperiment, ExperimentValidator, mark_clashes

__all__ = ["upload"]


def _resume_state(cfg: UploadConfig, root: Path) -> tuple[UploadState, frozenset[str]]:
    fresh = UploadState(path=cfg.state_file, local_path=str(root.resolve()), remote_url=cfg.remote or "")
    if not cfg.resume:
        return fresh, frozenset()
    previous = load_state(cfg.state_file)
    if previous is None:
        print("No previous upload state found. Starting fresh upload.")
        return fresh, frozenset()
    if previous.local_path != fresh.local_path:
        print("Warning: State file local path doesn't match. Starting fresh upload.")
        return fresh, frozenset()
    if previous.remote_url != fresh.remote_url:
        print("Warning: State file remote URL doesn't match. Starting fresh upload.")
        return fresh, frozenset()
    print(f"Resuming previous upload from {previous.timestamp}")
    print(f"  Already completed: {len(previous.completed)} experiments")
    print(f"  Failed: {len(previous.failed)} experiments")
    return previous, frozenset(previous.completed)


def _nothing_found(cfg: UploadConfig) -> str:
    if cfg.project and cfg.experiment:
        return f"No experiment found: {cfg.project}/{cfg.experiment}"
    if cfg.project:
        return f"No experiments found in project: {cfg.project}"
    return "No experiments found in local storage"


def _summary(c: CheckedExperiment) -> str:
    parts = []
    if c.logs is not None:
        parts.append("logs")
    if c.params is not None:
        parts.append("params")
    if c.metrics:
        parts.append(f"{len(c.metrics)} metrics")
    if c.files:
        parts.append(f"{len(c.files)} files ({human_bytes(c.file_bytes)})")
    if c.dashrc is not None:
        parts.append(".dashrc")
    return ", ".join(parts) or "metadata only"


def _print_validation(checked: list[CheckedExperiment], cfg: UploadConfig) -> int:
    """The discovery bullets and the validation block; returns how many are invalid."""
    if cfg.verbose or cfg.dry_run:
        print("\nDiscovered experiments:")
        for c in checked:
            print(f"  • {c.exp.identity.display} ({_summary(c)})")
    print("\nValidating experiments...")
    invalid = 0
    for c in checked:
        shown = c.errors or (c.warnings if cfg.verbose or cfg.dry_run or not cfg.strict else [])
        if not shown:
            continue
        invalid += bool(c.errors)
        print(f"  {'✗' if c.errors else '⚠'} {c.exp.identity.display}:")
        for line in shown:
            print(f"      {line}")
        if cfg.verbose:
            for detail in c.details:
                print(f"        {detail}")
    return invalid


def _print_folder_checks(folders: list[FolderDashrc], cfg: UploadConfig) -> int:
    """Invalid folder .dashrc files, as the validation block shows experiments; returns how many."""
    bad = [f for f in folders if not f.check.ok]
    for f in bad:
        hint = f" (hint: {f.check.hint})" if f.check.hint else ""
        print(f"  {'✗' if cfg.strict else '⚠'} .dashrc of {f.display}:")
        print(f"      .dashrc is invalid: {f.check.problem}{hint}{'' if cfg.strict else ' (will skip)'}")
    return len(bad)


def _on_server(cfg: UploadConfig, plan: Plan) -> dict[str, str] | None:
    """Dry run with a reachable server: how much of each experiment is already there."""
    if not cfg.remote or (cfg.api_key is None and not cfg.username):
        return None
    from ml_dash.errors import ApiError
    from ml_dash.upload.resume import resume_for

    found: dict[str, str] = {}
    try:
        with client_for(cfg, token_for(cfg, announce=True), attempts=1, timeout=min(cfg.retry.timeout, 10)) as c:
            query = ("query E($projectSlug: String!, $experimentName: String!) { experiment(projectSlug: "
                     "$projectSlug, experimentName: $experimentName) { id } }")
            for e in plan.experiments:
                exp = c.graphql(query, {"projectSlug": e.project, "experimentName": e.name}).get("experiment")
                if not exp:
                    found[e.key] = "new"
                    continue
                there = c.streams(str(exp["id"]), e.writer_id) or {}
                have = sum(resume_for(there, s.kind, s.name, s.items, e.writer_id).count(s.items or 0)
                           for s in e.streams if s.kind in ("logs", "metric"))
                todo = e.count("logs") + e.count("metric")
                files = {(f["path"], f["filename"], f["checksum"]) for f in there.get("files") or []}
                have_files = sum(1 for s in e.streams if s.file and (s.file.path, s.file.filename,
                                                                      s.file.checksum) in files)
                found[e.key] = f"{have}/{todo} records, {have_files}/{e.count('file')} files"
    except ApiError as exc:
        print(f"(server not checked: {exc.message})")
        return None
    return found


def upload(cfg: UploadConfig, only: set[Path] | None = None) -> int:
    """``only``: upload just these experiment directories (``ml-dash import --remote``)."""
    if not cfg.dry_run:
        require_server(cfg)
        token = token_for(cfg, announce=True)
    root = cfg.path
    if not root.exists():
        raise ConfigError(f"Local storage path does not exist: {root}",
                          hint="pass the directory your experiments were logged to (the SDK's local_path)")
    state, completed = _resume_state(cfg, root) if not cfg.dry_run else (None, frozenset())
    print(f"Scanning local storage: {root.resolve()}")
    found = discover(root, cfg.project, cfg.experiment)
    folders, notes = folder_dashrcs(root, found.dashrc_dirs, found.experiments)
    for problem in found.problems + notes:
        print(f"Warning: {problem}", file=sys.stderr)
    experiments: list[DiscoveredExperiment] = found.experiments
    if only is not None:
        experiments = [e for e in experiments if e.path.resolve() in only]
    if not experiments:
        print(_nothing_found(cfg))
        return 1
    if completed:
        before = len(experiments)
        experiments = [e for e in experiments if e.key not in completed]
        print(f"Skipping {before - len(experiments)} already completed experiment(s)")
    print(f"Found {len(experiments)} experiment(s) to upload")
    skipped = frozenset(part for part in ("logs", "metrics", "files", "params") if getattr(cfg.skip, part))
    # The server verifies every file's sha256 on arrival: only a strict run (which must refuse before
    # sending anything) or a dry run reads each file an extra time to check it up front.
    # Lenient uploads read each JSONL line once, as they send it (invalid lines are reported at the
    # end); strict ones and dry runs check every line first, as they must refuse before sending.
    validator = ExperimentValidator(strict=cfg.strict, skip=skipped, verify_checksums=cfg.strict or cfg.dry_run,
                                    count_lines=cfg.strict or cfg.dry_run)
    validator.prescan(experiments)
    checked = [validator.validate_experiment(e) for e in experiments]
    mark_clashes(checked)
    invalid = _print_validation(checked, cfg)
    bad_folders = _print_folder_checks(folders, cfg)
    valid = [c for c in checked if c.is_valid]
    if invalid:
        print(f"\n{invalid} experiment(s) failed validation and will be skipped")
    if bad_folders:
        print(f"\n{bad_folders} folder .dashrc file(s) are invalid and will not be uploaded")
    if cfg.strict and (invalid or bad_folders):
        print("Error: Validation failed in --strict mode", file=sys.stderr)
        _report(cfg, None, 1, checked)
        return 1
    if not valid and experiments:
        print("Error: No valid experiments to upload", file=sys.stderr)
        _report(cfg, None, 1, checked)
        return 1
    print(f"{len(valid)} experiment(s) ready to upload")
    log_batch, metric_batch = cfg.batch_sizes()
    plan = build_plan(valid, log_batch=log_batch, metric_batch=metric_batch, skip_params=cfg.skip.params,
                      skip_logs=cfg.skip.logs,
                      skip_metrics=cfg.skip.metrics, skip_files=cfg.skip.files, folder_dashrcs=tuple(folders))
    if cfg.dry_run:
        return _dry_run(cfg, plan, invalid + bad_folders)
    return _execute(cfg, plan, token, state, checked, invalid)


def _dry_run(cfg: UploadConfig, plan: Plan, invalid: int) -> int:
    from ml_dash.cli.console import print_table

    header, rows = plan.describe()
    there = _on_server(cfg, plan)
    if there is not None:
        n = len(plan.experiments)
        header = (*header, "on the server")
        rows = [(*row, there.get(e.key, "")) for row, e in zip(rows[:n], plan.experiments, strict=True)] + [
            (*row, "") for row in rows[n:]]
    size = (f"auto: {plan.log_batch} log lines, {plan.metric_batch} metric points" if cfg.batch_size == "auto"
            else str(cfg.batch_size))
    print(f"\nPlan (batch size {size}):")
    print_table(header, rows)
    dashrcs = plan.describe_dashrcs()
    if dashrcs:
        print("\n.dashrc files (sent when the server's text differs):")
        print("\n".join(dashrcs))
    print("\nDRY RUN - No data will be uploaded")
    print("Run without --dry-run to proceed with upload.")
    return 0 if not invalid else 1


def _execute(cfg: UploadConfig, plan: Plan, token: str, state: UploadState | None,
             checked: list[CheckedExperiment], invalid: int) -> int:
    from ml_dash.upload.engine import Engine
    from ml_dash.upload.progress import choose_progress
    from ml_dash.upload.report import print_results, print_summary

    print(f"\nUploading to: {cfg.remote}")
    client = client_for(cfg, token, connections=cfg.workers)
    assert state is not None
    try:
        try:
            client.preflight()  # a dead server or a refused key: one message, before any write
        except ApiError as exc:
            _stopped(cfg, exc)
            state.save()
            print(f"\nState saved to {cfg.state_file}. Use --resume to retry failed uploads.")
            _report(cfg, None, 1, checked)
            return 1
        # Everything made so far (modules, configuration) lives to the end: out of the collector's sight,
        # the collections that the upload's many small objects set off stay short.
        gc.freeze()
        with choose_progress(cfg.progress, plan) as progress:
            engine = Engine(client, workers=cfg.workers, progress=progress)
            run = engine.run(plan, state)  # type: ignore[arg-type]
    finally:
        client.close()
    _print_skipped_lines(run, cfg.verbose)
    print_results(run, cfg.verbose)
    print_summary(run)
    if engine.stopped is not None:
        _stopped(cfg, engine.stopped)
    exit_code = 0 if run.ok and not invalid else 1
    if run.ok and not invalid:
        if cfg.state_file.exists():
            state.remove()
            print("\nUpload complete. State file removed.")
        else:
            print("\nUpload complete.")
    else:
        state.save()
        print(f"\nState saved to {cfg.state_file}. Use --resume to retry failed uploads.")
    _report(cfg, run, exit_code, checked)
    return exit_code


def _print_skipped_lines(run: RunResult, verbose: bool) -> None:
    """The invalid lines a lenient upload skipped, found while streaming: the seed's validation lines."""
    from ml_dash.upload.validate import lines_message

    shown = [r for r in run.experiments if any(s.invalid for s in r.streams)]
    if not shown:
        return
    print("\nSkipped invalid lines:")
    for r in shown:
        print(f"  ⚠ {r.plan.display}:")
        for s in r.streams:
            if s.invalid:
                what = "logs.jsonl" if s.kind == "logs" else f"metric '{s.name}'"
                print(f"      {lines_message(what, s.invalid, s.problems, False)}")
        if verbose:
            for s in r.streams:
                for p in s.problems:
                    print(f"        {p}")


def _stopped(cfg: UploadConfig, exc: ApiError) -> None:
    """The one message of a run stopped because of the server or the key, not an experiment."""
    if exc.status == 401:
        print(f"Error: {cfg.remote} refused the credentials: {exc.message}", file=sys.stderr)
        print("Hint: create an API key on the server with `ml-dash serve token create NAME --namespace NS` and "
              "pass it with --api-key or ML_DASH_API_KEY", file=sys.stderr)
    else:
        print(f"Error: {cfg.remote} cannot be reached: {exc.message}", file=sys.stderr)
        print(f"Hint: is the server running? check with `curl {cfg.remote}/health`; then run the same command "
              "with --resume", file=sys.stderr)


def _report(cfg: UploadConfig, run: object, exit_code: int, checked: list[CheckedExperiment]) -> None:
    if cfg.report.format != "json" and cfg.report.path is None:
        return
    from ml_dash.upload.report import write_report

    invalid = [{"key": c.exp.key, "experiment": c.exp.identity.display, "status": "invalid", "errors": c.errors}
               for c in checked if not c.is_valid]
    path = cfg.report.path or Path("ml-dash-report.json")
    write_report(path, run, remote=cfg.remote, local_path=cfg.path, exit_code=exit_code,  # type: ignore[arg-type]
                 invalid=invalid)
    print(f"Report written to {path}")
