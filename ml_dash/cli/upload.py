"""``ml-dash upload``: parse → resolve → ``ml_dash.upload.run.upload`` (the pipeline)."""

from __future__ import annotations

from collections.abc import Sequence

from ml_dash.cli.configured import parse, print_help, resolve_parsed
from ml_dash.config.overrides import Override

DESCRIPTION = ("Upload experiments logged in local mode to an ml-dash server: experiment, parameters, logs, "
               "metrics, files, in that order. Resumable below the experiment; a re-run sends nothing twice.")
USAGE = "[PATH] [--remote URL] [--api-key KEY | --username NAME] [--flags ...] [key=value ...] [+profile=NAME]"
EXTRA_FLAGS = [(("--no-progress",), {"action": "store_true", "dest": "no_progress"})]


def main(argv: Sequence[str]) -> int:
    parsed = parse("upload", "ml-dash upload", argv, EXTRA_FLAGS)
    if parsed.help:
        return print_help("upload", "ml-dash upload", DESCRIPTION, USAGE)
    if parsed.extra.get("no_progress"):
        parsed.overrides.append(Override("progress=plain", "progress", "cli --no-progress"))
    if any(o.label == "cli --report" for o in parsed.overrides) and not any(
            o.key == "report.format" for o in parsed.overrides):
        parsed.overrides.append(Override("report.format=json", "report.format", "cli --report"))
    from ml_dash.upload.run import upload

    return upload(resolve_parsed("upload", parsed).config)
