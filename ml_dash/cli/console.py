"""All terminal output of the CLI goes through here: errors, warnings, plain tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["print_error", "print_table", "print_warning", "table_lines"]


def table_lines(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Aligned columns without box drawing: stable text for logs, pipes and tests."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], file: TextIO | None = None) -> None:
    for line in table_lines(header, rows):
        print(line, file=file or sys.stdout)


def print_warning(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)


def print_error(exc: BaseException) -> int:
    """Print an error as one line (or a table of problems) plus hint; return the exit code."""
    from ml_dash.errors import MLDashError

    if not isinstance(exc, MLDashError):
        print(f"Error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        print("Hint: this is a bug in ml-dash; rerun with ML_DASH_DEBUG=1 for the traceback and report it",
              file=sys.stderr)
        return 1
    problems = getattr(exc, "problems", None)
    if problems:
        count = len(problems)
        print(f"Error: invalid configuration ({count} problem{'s' if count > 1 else ''})", file=sys.stderr)
        print_table(("key", "problem", "set by"), [(p.key, p.problem, p.source) for p in problems], file=sys.stderr)
    else:
        print(f"Error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"Hint: {exc.hint}", file=sys.stderr)
    return exc.exit_code
