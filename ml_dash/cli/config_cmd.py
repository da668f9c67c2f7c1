"""``ml-dash config show [settings...]``: every resolved value and the layer that set it."""

from __future__ import annotations

from collections.abc import Sequence

from ml_dash.cli.configured import command_leaves, format_value, parse, print_help, resolve_parsed
from ml_dash.cli.console import print_table
from ml_dash.errors import ConfigError

USAGE = "show [--for upload|download|list|serve|show|import] [settings: --flags or key=value ...]"


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if not args or args[0] in ("-h", "--help"):
        return print_help("upload", "ml-dash config", "Show the resolved configuration of a command, each "
                          "value with the layer that set it (secrets masked).", USAGE)
    if args[0] != "show":
        raise ConfigError(f"unknown config action {args[0]!r}", hint="use: ml-dash config show")
    args = args[1:]
    command = "upload"
    if args[:1] == ["--for"] and len(args) > 1:
        command, args = args[1], args[2:]
    parsed = parse(command, "ml-dash config show", args)
    resolved = resolve_parsed(command, parsed)
    data = resolved.config.model_dump()
    rows = []
    for leaf in command_leaves(command):
        value: object = data
        for part in leaf.key.split("."):
            value = value[part]  # type: ignore[index]
        rows.append((leaf.key, format_value(value, leaf.secret), resolved.sources.get(leaf.key, "default")))
    profiles = ", ".join(resolved.profiles) or "none"
    print(f"Configuration of `ml-dash {command}` (profiles: {profiles})")
    print_table(("key", "value", "set by"), rows)
    return 0
