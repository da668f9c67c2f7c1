"""Shell completion: ``ml-dash --completion bash|zsh`` prints a script that calls
``ml-dash __complete WORDS...``, which prints one candidate per line."""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["candidates", "main", "script"]

_BASH = r"""_ml_dash_complete() {
    local IFS=$'\n'
    COMPREPLY=( $(ml-dash __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) )
    [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]] && compopt -o nospace
}
complete -F _ml_dash_complete ml-dash"""

_ZSH = "autoload -U +X bashcompinit && bashcompinit\n" + _BASH


def script(shell: str) -> str:
    return _ZSH if shell == "zsh" else _BASH


def candidates(words: Sequence[str]) -> list[str]:
    from ml_dash.cli import COMMANDS

    current = words[-1] if words else ""
    if len(words) <= 1:
        options = [c for c in COMMANDS if not c.startswith("_")] + ["--help", "--version", "--completion"]
        return sorted(c for c in options if c.startswith(current))
    command = words[0]
    if command == "import" and len(words) == 2 and not current.startswith("-"):
        return [k for k in ("mlflow", "tensorboard", "wandb") if k.startswith(current)]
    if command == "config":
        if len(words) == 2:
            return [c for c in ("show",) if c.startswith(current)]
        command = "upload"
    from ml_dash.config.commands import SPECS

    if command not in SPECS:
        return []
    from ml_dash.cli.configured import command_leaves
    from ml_dash.config.sources import profiles

    leaves = command_leaves(command)
    for prefix in ("+profile=", "profile="):
        if current.startswith(prefix):
            return [prefix + name for name in profiles(os.environ) if (prefix + name).startswith(current)]
    if "=" in current:
        key, _, _ = current.partition("=")
        leaf = next((x for x in leaves if x.key == key), None)
        values: list[str] = []
        if leaf is not None and leaf.is_bool:
            values = ["true", "false"]
        elif leaf is not None and "|" in leaf.type_name:
            values = leaf.type_name.split("|")
        return [f"{key}={v}" for v in values if f"{key}={v}".startswith(current)]
    options = [f for leaf in leaves for f in leaf.flags if f.startswith("-")]
    options += [f"{leaf.key}=" for leaf in leaves] + ["profile=", "+profile=", "--help"]
    return sorted(o for o in options if o.startswith(current))


def main(argv: Sequence[str]) -> int:
    for item in candidates(list(argv)):
        print(item)
    return 0
