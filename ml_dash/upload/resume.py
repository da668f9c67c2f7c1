"""Which records of a local stream the server already has, from ``GET /streams``.

A local tree is one *writer* to the server (``ExperimentRecord.writer_id``), numbering its
records by their position in the tree, as the hybrid SDK does while it writes. Against a
server that takes writers, the records it has are exactly the ranges it reports for that
writer, whoever else writes the same experiment (other ranks, other trees, scripts).

Two fallbacks keep older data exact:

* a server without writer support: by position, resuming from the stream's length;
* a stream that holds records but none from any writer (written by an earlier ml-dash
  upload or a 0.5.8 client): by position too, re-sending the last stored record so that the
  server compares it with ours and answers ``409 conflict`` if the stream is not ours,
  instead of our records being skipped as if they were there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ml_dash.api.ranges import in_ranges

__all__ = ["Resume", "resume_for", "stream_key"]


def stream_key(kind: str, name: str) -> str:
    return "logs" if kind == "logs" else f"metric:{name}"


@dataclass(frozen=True)
class Resume:
    """``writer`` None: send by position. ``done``: sorted ranges [lo, hi] of record numbers
    (positions in the local stream) the server has; everything else is sent."""

    writer: str | None
    done: tuple[tuple[int, int], ...]
    # By position, when the stream's length is not known up front (a one-pass upload): the last
    # stored record, sent again only if a record follows it (see the module docstring).
    recheck: int | None = None

    def has(self, n: int) -> bool:
        return in_ranges(self.done, n)

    def count(self, items: int) -> int:
        """How many of records 0..items-1 the server has."""
        return sum(max(0, min(hi, items - 1) - lo + 1) for lo, hi in self.done)


def resume_for(there: dict[str, Any], kind: str, name: str, items: int | None, writer_id: str | None) -> Resume:
    """``items``: the records of the local stream, or None when they are not counted before sending."""
    key = stream_key(kind, name)
    stored = int(there.get("logs", 0)) if kind == "logs" else int((there.get("metrics") or {}).get(name, 0))
    if writer_id and there.get("writers"):
        mine = tuple((int(lo), int(hi)) for lo, hi in (there.get("writer") or {}).get(key, []))
        # Every stored record came from some writer: none of them can be an older upload of ours.
        if mine or stored == int((there.get("marked") or {}).get(key, 0)):
            return Resume(writer_id, mine)
    if stored == 0:
        return Resume(None, ())
    # By position. With more to send, the last stored record goes again: the server checks it.
    if items is None:
        return Resume(None, ((0, stored - 2),) if stored >= 2 else (), recheck=stored - 1)
    last_known = stored - 2 if items > stored else stored - 1
    return Resume(None, ((0, last_known),) if last_known >= 0 else ())
