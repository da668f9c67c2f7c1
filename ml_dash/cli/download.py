"""``ml-dash download``: experiments from a server into a local tree (resumable, verified)."""

from __future__ import annotations

from collections.abc import Sequence

from ml_dash.cli.configured import parse, print_help, resolve_parsed

DESCRIPTION = ("Download experiments from an ml-dash server into a local tree in the ml-dash 0.5.8 format "
               "(parameters, logs, metrics, files; checksums verified). Re-running completes what is missing.")
USAGE = "[PATH] [--remote URL] [--api-key KEY | --username NAME] [--project P [--experiment E]] [key=value ...]"


def main(argv: Sequence[str]) -> int:
    parsed = parse("download", "ml-dash download", argv)
    if parsed.help:
        return print_help("download", "ml-dash download", DESCRIPTION, USAGE)
    from ml_dash.download.run import download

    return download(resolve_parsed("download", parsed).config)
