"""What every declaratively configured command shares: parse, resolve, --help from the schema."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml_dash.cli.console import print_warning, table_lines
from ml_dash.config.commands import get_spec
from ml_dash.config.flags import ParsedArgs, parse_command_line
from ml_dash.config.keys import Leaf, leaves

__all__ = ["format_value", "help_text", "parse", "resolve_parsed"]

PRECEDENCE = "defaults < ~/.ml-dash/config.json < ML_DASH_* env < profile < command line"


def command_leaves(command: str) -> tuple[Leaf, ...]:
    spec = get_spec(command)
    return leaves(spec.model(), spec.env_prefix)


def parse(command: str, prog: str, argv: Sequence[str],
          extra_flags: Sequence[tuple[tuple[str, ...], dict[str, object]]] = ()) -> ParsedArgs:
    return parse_command_line(prog, argv, command_leaves(command), extra_flags)


def resolve_parsed(command: str, parsed: ParsedArgs) -> Any:
    from ml_dash.config.resolve import resolve

    return resolve(command, parsed.overrides, warn=print_warning)


def format_value(value: Any, secret: bool = False) -> str:
    if secret:
        return "null" if value is None else "'**********'"
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def help_text(command: str, prog: str, description: str, usage: str) -> str:
    from ml_dash.config.sources import profiles

    rows = []
    for leaf in command_leaves(command):
        flag = ", ".join(leaf.flags) or "-"
        default = format_value(leaf.default, False) if not leaf.secret else "null"
        rows.append((leaf.key, flag, leaf.env, default, leaf.description))
    lines = [f"usage: {prog} {usage}", "", description, "",
             "Settings: give each as --flag VALUE or key=value, or set the environment variable.", ""]
    lines += table_lines(("key", "flag", "env var", "default", "description"), rows)
    import os

    found = profiles(os.environ)
    named = [f"{n} ({'built-in' if p.builtin else p.path})" for n, p in found.items()]
    lines += ["", "Profiles: " + (", ".join(named) or "none") + "  (select with profile=NAME, +profile=NAME,",
              "          profile=[a,b] to stack, or ML_DASH_PROFILE)",
              f"Precedence: {PRECEDENCE}",
              f"Show the resolved values and their sources: ml-dash config show [{command} settings]"]
    return "\n".join(lines)


def print_help(command: str, prog: str, description: str, usage: str) -> int:
    sys.stdout.write(help_text(command, prog, description, usage) + "\n")
    return 0
