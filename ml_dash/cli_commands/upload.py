"""The seed's programmatic API: ``discover_experiments``, ``ExperimentValidator``, ``cmd_upload``.

``cmd_upload(args)`` takes the ``argparse.Namespace`` of the seed (``path``, ``remote``,
``api_key``, ``user_name``, ``project``, ``experiment``, ``dry_run``, ``strict``,
``verbose``, ``batch_size``, ``skip_*``, ``resume``, ``state_file``) and runs the same
pipeline as ``ml-dash upload``: the namespace is the command-line layer, above
config.json, the environment and profiles. It returns the exit code.
"""

from __future__ import annotations

import argparse

from ml_dash.config.overrides import Override, quote
from ml_dash.upload.discover import DiscoveredExperiment, discover_experiments
from ml_dash.upload.validate import ExperimentValidator, ValidationResult

__all__ = ["DiscoveredExperiment", "ExperimentValidator", "ValidationResult", "cmd_upload", "discover_experiments"]

_KEYS = {"path": "path", "remote": "remote", "api_key": "api_key", "user_name": "username", "username": "username",
         "project": "project", "experiment": "experiment", "dry_run": "dry_run", "strict": "strict",
         "verbose": "verbose", "batch_size": "batch_size", "skip_logs": "skip.logs", "skip_metrics": "skip.metrics",
         "skip_files": "skip.files", "skip_params": "skip.params", "resume": "resume", "state_file": "state_file",
         "workers": "workers"}
# What the seed's example namespace sets to "nothing": leave those keys to the lower layers.
_UNSET = (None, False)


def cmd_upload(args: argparse.Namespace) -> int:
    from ml_dash.cli import _guarded
    from ml_dash.config.resolve import resolve
    from ml_dash.upload.run import upload

    overrides = []
    for attr, key in _KEYS.items():
        value = getattr(args, attr, None)
        if value in _UNSET or (attr in ("batch_size",) and value == 100) or (
                attr == "state_file" and value == ".ml-dash-upload-state.json") or (
                attr == "path" and value == "./.ml-dash"):
            continue
        text = f"{key}=true" if value is True else f"{key}={quote(str(value))}"
        overrides.append(Override(text, key, f"args.{attr}"))

    def run() -> int:
        from ml_dash.cli.console import print_warning

        return upload(resolve("upload", overrides, warn=print_warning).config)

    return _guarded(run)
