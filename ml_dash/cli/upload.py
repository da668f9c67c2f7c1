"""``ml-dash upload``: parse → resolve → discover → validate → plan → engine → report."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ml_dash.cli.configured import parse, print_help, resolve_parsed
from ml_dash.cli.console import print_table, print_warning
from ml_dash.config.models import UploadConfig
from ml_dash.errors import ConfigError

DESCRIPTION = ("Upload experiments logged in local mode to an ml-dash server: experiment, parameters, logs, "
               "metrics, files, in that order. Resumable; a re-run sends nothing twice.")
USAGE = "[PATH] [--remote URL] [--api-key KEY | --username NAME] [--flags ...] [key=value ...] [+profile=NAME]"


def main(argv: Sequence[str]) -> int:
    parsed = parse("upload", "ml-dash upload", argv)
    if parsed.help:
        return print_help("upload", "ml-dash upload", DESCRIPTION, USAGE)
    resolved = resolve_parsed("upload", parsed)
    return run(resolved.config)


def run(cfg: UploadConfig) -> int:
    """The whole command on a resolved configuration; returns the exit code."""
    from ml_dash.upload.discover import discover
    from ml_dash.upload.plan import build_plan
    from ml_dash.upload.validate import ExperimentValidator

    if not cfg.dry_run:
        _require_remote_and_auth(cfg)
    root = cfg.path
    if not root.exists():
        raise ConfigError(f"Local storage path does not exist: {root}",
                          hint="pass the directory your experiments were logged to (the SDK's local_path)")
    print(f"Scanning local storage: {root.resolve()}")
    found = discover(root, cfg.project, cfg.experiment)
    for problem in found.problems:
        print_warning(problem)
    experiments = found.experiments
    if not experiments:
        print(_nothing_found(cfg))
        return 1
    print(f"Found {len(experiments)} experiment(s) to upload")
    validator = ExperimentValidator(strict=cfg.strict)
    checked = [validator.validate_experiment(e) for e in experiments]
    invalid = _print_validation(checked, cfg)
    valid = [c for c in checked if c.is_valid]
    if invalid:
        print(f"\n{invalid} experiment(s) failed validation and will be skipped")
        if cfg.strict:
            print("Error: Validation failed in --strict mode", file=sys.stderr)
            return 1
    if not valid:
        print("Error: No valid experiments to upload", file=sys.stderr)
        return 1
    print(f"{len(valid)} experiment(s) ready to upload")
    plan = build_plan(valid, batch_size=cfg.batch_size, skip_params=cfg.skip.params, skip_logs=cfg.skip.logs,
                      skip_metrics=cfg.skip.metrics, skip_files=cfg.skip.files)
    if cfg.dry_run:
        header, rows = plan.describe()
        print(f"\nPlan (batch size {cfg.batch_size}):")
        print_table(header, rows)
        print("\nDRY RUN - No data will be uploaded")
        print("Run without --dry-run to proceed with upload.")
        return 0 if not invalid else 1
    from ml_dash.errors import MLDashError

    raise MLDashError("uploading to a server is not available in this build yet",
                      hint="use --dry-run to validate and size the upload")


def _nothing_found(cfg: UploadConfig) -> str:
    if cfg.project and cfg.experiment:
        return f"No experiment found: {cfg.project}/{cfg.experiment}"
    if cfg.project:
        return f"No experiments found in project: {cfg.project}"
    return "No experiments found in local storage"


def _print_validation(checked: list, cfg: UploadConfig) -> int:
    """The discovery bullets and the validation block; returns how many are invalid."""
    if cfg.verbose or cfg.dry_run:
        print("\nDiscovered experiments:")
        for c in checked:
            print(f"  • {c.exp.identity.display} ({_summary(c)})")
    print("\nValidating experiments...")
    invalid = 0
    for c in checked:
        shown = c.errors or (c.warnings if cfg.verbose or cfg.dry_run else [])
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


def _summary(c: object) -> str:
    from ml_dash.upload.plan import human_bytes
    from ml_dash.upload.validate import CheckedExperiment

    assert isinstance(c, CheckedExperiment)
    parts = []
    if c.logs is not None:
        parts.append("logs")
    if c.params is not None:
        parts.append("params")
    if c.metrics:
        parts.append(f"{len(c.metrics)} metrics")
    if c.files:
        parts.append(f"{len(c.files)} files ({human_bytes(c.file_bytes)})")
    return ", ".join(parts) or "metadata only"


def _require_remote_and_auth(cfg: UploadConfig) -> None:
    if not cfg.remote:
        raise ConfigError("--remote URL is required (or set in config)",
                          hint="pass --remote http://host:8000, set ML_DASH_REMOTE, or remote_url in "
                               "~/.ml-dash/config.json")
    if cfg.api_key is None and not cfg.username:
        raise ConfigError("--api-key or --username is required (or set in config)",
                          hint="create a key with `ml-dash serve token create NAME` on the server, then "
                               "set ML_DASH_API_KEY or api_key in ~/.ml-dash/config.json")

