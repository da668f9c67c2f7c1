"""The seed's classic ``--flags`` and Hydra ``key=value`` overrides, freely mixed.

Flags are turned into override strings (values quoted, so ``a,b`` or ``http://h/x?a=b``
arrive verbatim); positionals that look like ``key=value``, ``+key=value`` or ``~key``
are overrides, the one other positional is the path. Only flags actually given become
overrides (``argument_default=SUPPRESS``): a flag's default must never clobber
config.json or the environment.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from ml_dash.config.keys import Leaf
from ml_dash.config.overrides import Override, is_override, parse_override, quote
from ml_dash.errors import ConfigError

__all__ = ["ParsedArgs", "parse_command_line"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


@dataclass
class ParsedArgs:
    overrides: list[Override]
    help: bool
    extra: dict[str, object]


def parse_command_line(prog: str, argv: Sequence[str], leaves: Sequence[Leaf],
                       extra_flags: Sequence[tuple[tuple[str, ...], dict[str, object]]] = ()) -> ParsedArgs:
    parser = _Parser(prog=prog, add_help=False, allow_abbrev=False, argument_default=argparse.SUPPRESS)
    parser.add_argument("-h", "--help", action="store_true")
    dests: dict[str, Leaf] = {}
    path_leaf: Leaf | None = None
    for leaf in leaves:
        names = [f for f in leaf.flags if f.startswith("-")]
        if "PATH" in leaf.flags:
            path_leaf = leaf
        if not names:
            continue
        dest = "k_" + leaf.key.replace(".", "__")
        dests[dest] = leaf
        if leaf.is_bool:
            parser.add_argument(*names, dest=dest, action="store_true")
        else:
            parser.add_argument(*names, dest=dest, metavar=leaf.key.split(".")[-1].upper())
    for names, kwargs in extra_flags:
        parser.add_argument(*names, **kwargs)  # type: ignore[arg-type]
    parser.add_argument("rest", nargs="*")
    ns = parser.parse_intermixed_args(list(argv))
    values = vars(ns)
    overrides: list[Override] = []
    for dest, leaf in dests.items():
        if dest not in values:
            continue
        flag = next(f for f in leaf.flags if f.startswith("--")) if any(
            f.startswith("--") for f in leaf.flags) else leaf.flags[0]
        value = values[dest]
        if leaf.is_bool:
            overrides.append(Override(f"{leaf.key}=true", leaf.key, f"cli {flag}", True))
        else:
            overrides.append(Override(f"{leaf.key}={quote(str(value))}", leaf.key, f"cli {flag}", str(value)))
    paths: list[str] = []
    for arg in values.get("rest", []):
        if is_override(arg):
            overrides.append(parse_override(arg))
        else:
            paths.append(arg)
    if len(paths) > 1:
        raise ConfigError(f"{prog}: more than one path given: {' '.join(paths)}",
                          hint="give one storage path; write settings as key=value or --flag value")
    if paths:
        if path_leaf is None:
            raise ConfigError(f"{prog}: unexpected argument {paths[0]!r}", hint=f"see `{prog} --help`")
        overrides.append(Override(f"{path_leaf.key}={quote(paths[0])}", path_leaf.key, "cli PATH", paths[0]))
    extra = {k: v for k, v in values.items() if not k.startswith("k_") and k not in ("rest", "help")}
    return ParsedArgs(overrides=overrides, help=bool(values.get("help")), extra=extra)
