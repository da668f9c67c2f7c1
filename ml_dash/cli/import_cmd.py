"""``ml-dash import tensorboard|mlflow|wandb SOURCE``: parse → resolve → ``ml_dash.importers.run``."""

from __future__ import annotations

from collections.abc import Sequence

from ml_dash.cli.configured import parse, print_help, resolve_parsed
from ml_dash.config.overrides import Override
from ml_dash.errors import ConfigError

KINDS = ("tensorboard", "mlflow", "wandb")
DESCRIPTION = ("Import runs of TensorBoard (a logdir), MLflow (an mlruns/ file store or a SQLite store) or W&B "
               "(offline run directories) into a local tree in the ml-dash 0.5.8 format, or with --remote on to "
               "a server. Running it again adds only what is new. Needs the extra of the source: "
               "pip install 'ml-dash[import-tensorboard]' (or import-mlflow, import-wandb).")
USAGE = ("tensorboard|mlflow|wandb SOURCE [--to PATH | --remote URL ...] [--project P] [--folder F] [--dry-run] "
         "[--strict] [key=value ...]")
EXTRA_FLAGS = [(("--no-progress",), {"action": "store_true", "dest": "no_progress"})]


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    kind = None
    if args and not args[0].startswith("-") and "=" not in args[0]:
        kind = args.pop(0)
        if kind not in KINDS:
            raise ConfigError(f"ml-dash import: unknown source {kind!r}",
                              hint="choose one of: " + ", ".join(KINDS) + " (see ml-dash import --help)")
    parsed = parse("import", "ml-dash import", args, EXTRA_FLAGS)
    if parsed.help:
        return print_help("import", "ml-dash import", DESCRIPTION, USAGE)
    if kind is not None:
        parsed.overrides.insert(0, Override(f"kind={kind}", "kind", "cli KIND", kind))
    if parsed.extra.get("no_progress"):
        parsed.overrides.append(Override("progress=plain", "progress", "cli --no-progress"))
    from ml_dash.importers.run import run_import

    return run_import(resolve_parsed("import", parsed).config)
