"""Sets of record numbers as sorted, disjoint ranges ``[(lo, hi), ...]``: what the server keeps
of each writer (``write_marks``) and what ``/streams?writer=`` tells a client."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

__all__ = ["coalesce", "in_ranges"]


def in_ranges(ranges: Sequence[tuple[int, int]], n: int) -> bool:
    """Whether ``n`` lies in one of ``ranges`` (sorted by ``lo``, not overlapping)."""
    i = bisect.bisect_right(ranges, (n, math.inf)) - 1  # the last range starting at or before n
    return i >= 0 and ranges[i][1] >= n


def coalesce(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive ranges, sorted and joined where they overlap or touch."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
