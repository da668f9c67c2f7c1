"""Sets of record numbers as sorted, disjoint ranges ``[(lo, hi), ...]``: what the server keeps
of each writer (``write_marks``) and what ``/streams?writer=`` tells a client."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

__all__ = ["in_ranges"]


def in_ranges(ranges: Sequence[tuple[int, int]], n: int) -> bool:
    """Whether ``n`` lies in one of ``ranges`` (sorted by ``lo``, not overlapping)."""
    i = bisect.bisect_right(ranges, (n, math.inf)) - 1  # the last range starting at or before n
    return i >= 0 and ranges[i][1] >= n
