"""``ml-dash``: the command line. Stdlib-only at import time so ``--help`` stays fast;
each command module is imported only when that command runs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]

# name -> (module, one-line help). Modules expose ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "upload": ("ml_dash.cli.upload", "upload local experiments to a server"),
    "download": ("ml_dash.cli.download", "download experiments from a server into a local tree"),
    "list": ("ml_dash.cli.list_cmd", "list projects and experiments on a server"),
    "serve": ("ml_dash.cli.serve", "run the ml-dash server (embedded SQLite by default) and manage its API keys"),
    "import": ("ml_dash.cli.import_cmd", "import runs from TensorBoard, MLflow or W&B offline into a local tree "
               "(or a server)"),
    "show": ("ml_dash.cli.show", "show a local tree in the web dashboard (no server to set up, no login)"),
    "config": ("ml_dash.cli.config_cmd", "show the resolved configuration and where each value comes from"),
    "__complete": ("ml_dash.cli.completion", ""),
}


def _build_parser() -> argparse.ArgumentParser:
    from ml_dash import __version__

    parser = argparse.ArgumentParser(
        prog="ml-dash",
        description="Experiment tracking for ML: log locally or to your own server, upload later.",
        epilog="Run 'ml-dash COMMAND --help' for the options of a command. ML_DASH_DEBUG=1 shows tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"ml-dash {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        if help_text:
            sub.add_parser(name, help=help_text, add_help=False)
    parser.add_argument("--completion", choices=("bash", "zsh"), help="print a shell completion script")
    return parser


def _run_command(name: str, argv: Sequence[str]) -> int:
    import importlib

    module = importlib.import_module(COMMANDS[name][0])
    runner: Callable[[Sequence[str]], int] = module.main
    return runner(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return _guarded(lambda: _run_command(args[0], args[1:]))
    parser = _build_parser()
    if not args:
        parser.print_help()
        return 0
    ns = parser.parse_args(args)  # prints help/version or a usage error (exit 2)
    if ns.completion:
        from ml_dash.cli.completion import script

        print(script(ns.completion))
    return 0


def _guarded(call: Callable[[], int]) -> int:
    """Turn every error into one line plus hint; tracebacks only with ML_DASH_DEBUG=1."""
    debug = os.environ.get("ML_DASH_DEBUG", "") not in ("", "0")
    try:
        return call()
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `ml-dash ... | head`: the reader left; stop quietly like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        if debug:
            raise
        from ml_dash.cli.console import print_error

        return print_error(exc)
