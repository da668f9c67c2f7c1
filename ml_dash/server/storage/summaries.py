"""Summaries of metric series, kept at ingest, and the bucketed series read built on them.

**What is kept.** A series' positions are cut into fixed index blocks: level 0 holds blocks of
512 points, every next level blocks 8x larger (4,096, 32,768, 262,144, 2,097,152 points). One row
of ``metric_summaries`` per (level, block) holds, over the block's points so far: how many there
are, the sum/min/max of the time the server stored them (its chunk's ``created_at``, seconds since
the epoch), and per numeric field ``[n, sum, min, max, nonFinite, last]`` (the finite values'
count, sum, min and max; how many are NaN/±Inf; the last value). A point *carries* a field when
its value is a number (JSON true/false count as 1/0); strings, null and objects are ignored as if
the field were absent. Positions only ever grow at the end, so an append changes the last block
of every level and adds new ones: O(levels) rows, in the append's transaction. Level 0 is
computed from the points with builtins over columns (``sum``/``min``/``max`` of slices: C loops),
each next level from the level below. ``metrics.summarized`` counts the points the rows cover;
a series written before the summaries existed (or whose rows went missing) is summarised on its
first read, under the metric's row lock.

**The series read** (``read_series``; the route is ``GET .../metrics/{name}/series``):

* The points considered are those with index >= ``since`` (a cursor: the series' total when an
  earlier answer was made) whose x lies in [``start``, ``end``] (inclusive; any side may be open).
  For ``x=index`` that is an index range; for any other x each point's own x value decides, so a
  non-monotone x works (a block whose x range lies inside the window is used whole, one outside
  is skipped, one that straddles it is opened: its finer blocks, at level 0 its points).
* x values: ``index`` is the position; a field is its finite numeric value (a point without one
  has no x, and is never inside a [start, end] window); ``timestamp`` is the points' ``timestamp``
  field when the series has one, else the time the server stored the point (seconds since the
  epoch): decided per series, from the summaries.
* Buckets are runs of consecutive points in index order: bucket k holds the selected points with
  index in [k*W, (k+1)*W) for a width W (so boundaries stay put while the series grows). When the
  selected points that carry y are at most ``points`` and few enough to read, each is its own bucket
  (``exact: true``; min = max = y, count 1). Otherwise, with few selected points (<= max(16 x points,
  4096)) they are read and bucketed with the smallest W that gives <= ``points`` buckets; with more,
  W is a multiple of the block size of the finest level that keeps the rows read <= ~8 x points,
  buckets are unions of whole blocks, and only blocks cut by the window (its edges, or a
  straddling x range) are read from the chunks and cut exactly. Buckets without a point carrying
  y are left out.
* Per bucket: ``x`` = mean x over the bucket's points with a finite x (index: the mean index),
  ``y`` = mean of the finite y values, ``min``/``max`` exact over them, ``count`` = points carrying
  y, ``nonFinite`` = how many of those are NaN/±Inf. No finite y: y/min/max are null (a gap).
* ``total`` = series length, ``cursor`` = the total the answer covered (ask ``since=cursor``
  next), ``last`` = the last point of the whole series carrying y, as {x, y}.
* Deterministic: the same stored data and append history give the same answer byte for byte
  (sums are added in index order; float sums may differ in the last bit from a sum in another
  order).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from ml_dash.api.ranges import coalesce
from ml_dash.server.fastjson import FlatPoints, dumps, loads

__all__ = ["FANOUT", "LEVELS", "SIZES", "SeriesQuery", "append", "backfill", "covered", "fields_of",
           "read_series"]

B0 = 512
FANOUT = 8
LEVELS = 5
SIZES = [B0 * FANOUT ** level for level in range(LEVELS)]
TOP = LEVELS - 1
ROWS_PER_BUCKET = 8  # the read's budget: summary rows read <= ROWS_PER_BUCKET x points
# A selection of up to RAW_PER_BUCKET x points points is read whole and bucketed exactly: a zoom
# into tens of thousands of points then gets its full ``points`` buckets, not one per 512-point
# block (up to 16,000 points at the default 1,000 buckets: tens of milliseconds).
RAW_PER_BUCKET = 16
_INF = float("inf")

# A chunk row by position: the chunk holding ``a``, then the range, both on the primary key
# (metric_id, start_idx); "end_idx >= a" alone would scan every chunk before a.
CHUNK_AT = "SELECT MAX(start_idx) AS s FROM metric_chunks WHERE metric_id = ? AND start_idx <= ?"
CHUNKS_FROM = ("SELECT start_idx, end_idx, data, created_at, segment FROM metric_chunks WHERE metric_id = ? AND "
               "start_idx >= ? AND start_idx < ? ORDER BY start_idx")
ROWS = ("SELECT block, points, t_sum, t_min, t_max, fields FROM metric_summaries WHERE metric_id = ? AND "
        "level = ? AND block >= ? AND block <= ? ORDER BY block")
UPSERT = ("INSERT INTO metric_summaries (metric_id, level, block, points, t_sum, t_min, t_max, fields) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (metric_id, level, block) DO UPDATE SET "
          "points = excluded.points, t_sum = excluded.t_sum, t_min = excluded.t_min, t_max = excluded.t_max, "
          "fields = excluded.fields")

Stats = list[Any]  # [n finite, sum, min, max, nonFinite, last]
Row = list[Any]  # [points, t_sum, t_min, t_max, {field: Stats}]


def epoch(iso: str) -> float:
    """Seconds since the epoch of a server timestamp (``2026-11-22T17:00:27.864Z``)."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# --- statistics of columns --------------------------------------------------------------------------
def _stats(seg: Sequence[Any]) -> Stats | None:
    try:
        total = sum(seg)  # one C loop; fails on None, strings, objects
    except TypeError:
        return _slow(seg)
    if -_INF < total < _INF:  # a NaN or infinity anywhere makes the sum non-finite
        return [len(seg), total, min(seg), max(seg), 0, seg[-1]]
    return _slow(seg)


def _slow(seg: Sequence[Any]) -> Stats | None:
    nums = [v for v in seg if isinstance(v, (int, float))]
    if not nums:
        return None
    fin = [v for v in nums if -_INF < v < _INF]
    if not fin:
        return [0, 0, None, None, len(nums), nums[-1]]
    return [len(fin), sum(fin), min(fin), max(fin), len(nums) - len(fin), nums[-1]]


def _columns(points: Sequence[Any] | FlatPoints) -> dict[str, Sequence[Any]]:
    """``{field: [value or None per point]}``; one C loop per field when every point has the same keys."""
    if isinstance(points, FlatPoints):  # read as columns already (the ingest fast path)
        return dict(zip(points.keys, points.columns, strict=True))
    first = points[0]
    if type(first) is dict:
        keys = list(first)
        try:
            # Every point has at least the first one's keys (no KeyError) and as many keys: the same ones.
            if sum(map(len, points)) == len(keys) * len(points):
                return {k: list(map(itemgetter(k), points)) for k in keys}
        except (KeyError, TypeError):
            pass
    union: dict[str, None] = {}
    for p in points:
        if isinstance(p, dict):
            union.update(dict.fromkeys(p))
    return {k: [p.get(k) if isinstance(p, dict) else None for p in points] for k in union}


def merge_stats(a: Stats, b: Stats) -> Stats:
    """``a`` then ``b`` (in index order)."""
    lo = b[2] if a[2] is None else a[2] if b[2] is None else min(a[2], b[2])
    hi = b[3] if a[3] is None else a[3] if b[3] is None else max(a[3], b[3])
    return [a[0] + b[0], a[1] + b[1], lo, hi, a[4] + b[4], b[5]]


def merge_rows(a: Row, b: Row) -> Row:
    fields = dict(a[4])
    for name, stats in b[4].items():
        have = fields.get(name)
        fields[name] = stats if have is None else merge_stats(have, stats)
    return [a[0] + b[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3]), fields]


def _level0(start: int, points: Sequence[Any] | FlatPoints,
            times: Sequence[tuple[int, float]]) -> list[tuple[int, Row]]:
    """``(block, row)`` of the level-0 blocks the points (at positions ``start..``) fall in;
    ``times`` = runs ``(count, seconds)`` of the points' storage time, in order."""
    cols = _columns(points)
    whole = len(points)
    out: list[tuple[int, Row]] = []
    run, left = 0, times[0][0]
    pos, end = start, start + whole
    while pos < end:
        block = pos // B0
        stop = min(end, (block + 1) * B0)
        a, b = pos - start, stop - start
        fields: dict[str, Stats] = {}
        for name, col in cols.items():
            seg = col if (a == 0 and b == whole) else col[a:b]
            stats = _stats(seg)
            if stats is not None:
                fields[name] = stats
        need, t_sum, t_min, t_max = b - a, 0.0, _INF, -_INF
        while need:
            while left == 0:
                run += 1
                left = times[run][0]
            take = min(need, left)
            t = times[run][1]
            t_sum += take * t
            t_min, t_max = min(t_min, t), max(t_max, t)
            need -= take
            left -= take
        out.append((block, [b - a, t_sum, t_min, t_max, fields]))
        pos = stop
    return out


# --- keeping the rows up to date -------------------------------------------------------------------
class _Pyramid:
    """The summary rows of one series being extended; written back by :meth:`flush`."""

    def __init__(self, cur: Any, metric_id: int) -> None:
        self.cur = cur
        self.metric_id = metric_id
        self.rows: dict[tuple[int, int], Row] = {}
        self.dirty: set[tuple[int, int]] = set()

    def _load(self, keys: list[tuple[int, int]]) -> None:
        keys = [k for k in keys if k not in self.rows]
        if not keys:
            return
        where = " OR ".join("(level = ? AND block = ?)" for _ in keys)
        rows = self.cur.all("SELECT level, block, points, t_sum, t_min, t_max, fields FROM metric_summaries "
                            f"WHERE metric_id = ? AND ({where})", [self.metric_id, *(x for k in keys for x in k)])
        for r in rows:
            self.rows[(int(r["level"]), int(r["block"]))] = _decode(r)

    def add(self, start: int, segs: list[tuple[int, Row]]) -> None:
        """The level-0 segments (``_level0``) of points appended at ``start..``: the last block of
        each level changes, the others are new."""
        if not segs:
            return
        # Only the block each level is in the middle of can exist already.
        self._load([(level, start // size) for level, size in enumerate(SIZES) if start % size])
        for level in range(LEVELS):
            if level:  # the segments of the level below, grouped by block of this level
                grouped: list[tuple[int, Row]] = []
                for block, row in segs:
                    parent = block // FANOUT
                    if grouped and grouped[-1][0] == parent:
                        grouped[-1] = (parent, merge_rows(grouped[-1][1], row))
                    else:
                        grouped.append((parent, row))
                segs = grouped
            for block, row in segs:
                key = (level, block)
                have = self.rows.get(key)
                self.rows[key] = row if have is None else merge_rows(have, row)
                self.dirty.add(key)

    def flush(self) -> None:
        if self.dirty:
            self.cur.executemany(UPSERT, [(self.metric_id, level, block, *_encode(self.rows[(level, block)]))
                                          for level, block in sorted(self.dirty)])
        self.dirty.clear()


def _encode(row: Row) -> tuple[Any, ...]:
    return int(row[0]), float(row[1]), float(row[2]), float(row[3]), dumps(row[4]).decode()


def _decode(r: dict[str, Any]) -> Row:
    return [int(r["points"]), float(r["t_sum"]), float(r["t_min"]), float(r["t_max"]), loads(r["fields"])]


def append(cur: Any, metric_id: int, start: int, points: Sequence[Any] | FlatPoints, created_at: str) -> None:
    """Summarise one append (in its transaction; the caller holds the metric's row lock)."""
    pyramid = _Pyramid(cur, metric_id)
    pyramid.add(start, _level0(start, points, [(len(points), epoch(created_at))]))
    pyramid.flush()


def backfill(cur: Any, metric_id: int, start: int, total: int, batch_points: int = 100_000) -> None:
    """Summarise points ``start..total-1`` from their chunks (``start`` is a chunk boundary; the
    rows already there cover ``0..start-1``). The caller holds the metric's row lock."""
    if start == 0:
        cur.execute("DELETE FROM metric_summaries WHERE metric_id = ?", (metric_id,))
    pyramid = _Pyramid(cur, metric_id)
    pos = start
    while pos < total:
        # From the row holding pos: a sealed chunk starts before pos when pos is one of its rows' starts.
        at = cur.one(CHUNK_AT, (metric_id, pos))
        first = min(pos, int((at or {}).get("s") or pos))
        fetched = cur.chunks(CHUNKS_FROM + " LIMIT 1000", (metric_id, first, total))
        chunks = [c for c in fetched if int(c["start_idx"]) >= pos]
        if not chunks:
            break
        points: list[Any] = []
        times: list[tuple[int, float]] = []
        for chunk in chunks:
            values = loads(chunk["data"])
            values = values if isinstance(values, list) else []
            points.extend(values)
            times.append((len(values), epoch(chunk["created_at"])))
            pos = int(chunk["start_idx"]) + len(values)
            if len(points) >= batch_points:
                break
        first = int(chunks[0]["start_idx"])
        pyramid.add(first, _level0(first, points, times) if points else [])
        pyramid.flush()
        pyramid.rows.clear()  # bounded memory; the next batch reloads the partial blocks it extends
        if len(points) < batch_points and len(fetched) < 1000:
            break


def covered(cur: Any, metric_id: int) -> int:
    """How many points the top-level rows cover (equal to ``metrics.summarized`` unless rows went missing)."""
    row = cur.one("SELECT SUM(points) AS n FROM metric_summaries WHERE metric_id = ? AND level = ?",
                  (metric_id, TOP))
    return int((row or {}).get("n") or 0)


def _fetch(cur: Any, metric_id: int, level: int, lo: int, hi: int) -> list[tuple[int, Row]]:
    """``(block, row)`` of blocks ``lo..hi`` of a level."""
    return [(b, [n, ts, t0, t1, _loads_row(f)]) for b, n, ts, t0, t1, f in cur.tuples(ROWS, (metric_id, level, lo, hi))]


try:
    from orjson import loads as _orjson_loads

    def _loads_row(text: str) -> Any:
        try:
            return _orjson_loads(text)  # the hot path of a read: ~2,000 rows
        except ValueError:  # integers over 64 bits went through the stdlib (fastjson.dumps)
            return loads(text)

except ImportError:  # pragma: no cover - the server extra installs orjson
    _loads_row = loads


def _top(cur: Any, metric_id: int) -> list[tuple[int, Row]]:
    return _fetch(cur, metric_id, TOP, 0, 1 << 62)


def fields_of(cur: Any, metric_id: int) -> tuple[int, dict[str, Stats]]:
    """``(points, {field: stats})`` of the whole series, from the top-level rows."""
    whole: Row | None = None
    for _, row in _top(cur, metric_id):
        whole = row if whole is None else merge_rows(whole, row)
    return (0, {}) if whole is None else (int(whole[0]), whole[4])


# --- reading a series ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesQuery:
    y: str
    x: str = "index"
    points: int = 1000
    start: float | None = None
    end: float | None = None
    since: int | None = None


class _Points:
    """Points read from chunks: parallel lists of index, x (None: no finite x) and y (None: absent)."""

    def __init__(self) -> None:
        self.idx: list[int] = []
        self.x: list[Any] = []
        self.y: list[Any] = []


def _num(v: Any) -> bool:
    return isinstance(v, (int, float))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and -_INF < v < _INF


class _Reader:
    def __init__(self, cur: Any, metric_id: int, total: int, q: SeriesQuery) -> None:
        self.cur, self.metric_id, self.total, self.q = cur, metric_id, total, q
        self.top = _top(cur, metric_id)
        if q.x == "index":
            self.xmode = "index"
        elif q.x == "timestamp" and not any("timestamp" in row[4] for _, row in self.top):
            self.xmode = "created"
        else:
            self.xmode = "field"
        self.window = None if q.start is None and q.end is None else (
            -_INF if q.start is None else q.start, _INF if q.end is None else q.end)
        self.raw_cap = max(RAW_PER_BUCKET * q.points, 4096)
        self._epochs: dict[str, float] = {}
        self.tail: tuple[Any, Any] | None = None  # the last point carrying y, when a read reached the end

    # x statistics of a summary row: (n finite, sum, min, max)
    def _xstats(self, start: int, row: Row) -> tuple[int, float, Any, Any]:
        n = row[0]
        if self.xmode == "index":
            return n, n * (2 * start + n - 1) / 2, start, start + n - 1
        if self.xmode == "created":
            return n, row[1], row[2], row[3]
        s = row[4].get(self.q.x)
        return (0, 0.0, None, None) if s is None else (s[0], s[1], s[2], s[3])

    def _rows(self, level: int, ranges: Iterable[tuple[int, int]]) -> list[tuple[int, Row]]:
        out: list[tuple[int, Row]] = []
        for lo, hi in coalesce(ranges):
            out.extend(_fetch(self.cur, self.metric_id, level, lo, hi))
        return out

    def _epoch(self, iso: str) -> float:
        t = self._epochs.get(iso)
        if t is None:
            t = self._epochs[iso] = epoch(iso)
        return t

    def read_points(self, ranges: Iterable[tuple[int, int]], into: _Points) -> None:
        """Points with index in the ranges [a, b) (sorted, disjoint), filtered by the x window."""
        y, xf, mode, window = self.q.y, self.q.x, self.xmode, self.window
        for a, b in coalesce(((a, b - 1) for a, b in ranges)):
            b += 1
            at = self.cur.one(CHUNK_AT, (self.metric_id, a))
            first = int((at or {}).get("s") or 0)
            for chunk in self.cur.chunks(CHUNKS_FROM, (self.metric_id, first, b)):
                base = int(chunk["start_idx"])
                if int(chunk["end_idx"]) < a or base >= b:
                    continue  # a row of a sealed chunk outside the range: not parsed
                values = loads(chunk["data"])
                if not isinstance(values, list):
                    continue
                t = self._epoch(chunk["created_at"]) if mode == "created" else None
                for i in range(max(a - base, 0), min(b - base, len(values))):
                    p = values[i]
                    if not isinstance(p, dict):
                        p = {}
                    if mode == "index":
                        xv: Any = base + i
                    elif mode == "created":
                        xv = t
                    else:
                        xv = p.get(xf)
                        if not _finite(xv):
                            xv = None
                    yv = p.get(y)
                    if not _num(yv):
                        yv = None
                    if b == self.total and yv is not None:
                        self.tail = (xv, yv)
                    if window is not None and (xv is None or not window[0] <= xv <= window[1]):
                        continue
                    into.idx.append(base + i)
                    into.x.append(xv)
                    into.y.append(yv)

    def _classify(self, start: int, row: Row) -> int:
        """0 outside the x window, 1 inside, 2 straddling."""
        if self.window is None:
            return 1
        n, _, lo, hi = self._xstats(start, row)
        if n == 0 or hi < self.window[0] or lo > self.window[1]:
            return 0
        return 1 if n == row[0] and self.window[0] <= lo and hi <= self.window[1] else 2

    def select(self, lo: int, hi: int) -> tuple[list[tuple[int, int, Row]], _Points]:
        """The selected points in [lo, hi): whole summary rows ``(level, block, row)`` + points read."""
        whole: list[tuple[int, int, Row]] = []
        edges: list[tuple[int, int]] = []
        level = TOP
        rows = [(b, r) for b, r in self.top if lo // SIZES[TOP] <= b <= (hi - 1) // SIZES[TOP]]
        while True:
            opened: list[tuple[int, int]] = []
            for block, row in rows:
                a = block * SIZES[level]
                e = a + row[0]
                a2, e2 = max(a, lo), min(e, hi)
                if a2 >= e2:
                    continue
                kind = self._classify(a, row)
                if kind == 0:
                    continue
                if kind == 1 and a2 == a and e2 == e:
                    whole.append((level, block, row))
                elif level == 0:
                    edges.append((a2, e2))
                else:
                    opened.append((block * FANOUT, block * FANOUT + FANOUT - 1))
            if not opened:
                break
            level -= 1
            rows = self._rows(level, opened)
        whole.sort(key=lambda w: w[1] * SIZES[w[0]])
        points = _Points()
        self.read_points(sorted(edges), points)
        return whole, points

    def run(self) -> dict[str, Any]:
        q = self.q
        lo = min(max(q.since or 0, 0), self.total)
        hi = self.total
        if self.xmode == "index" and self.window is not None:
            x0, x1 = self.window
            lo = max(lo, 0 if x0 == -_INF else math.ceil(x0))
            hi = min(hi, hi if x1 == _INF else math.floor(x1) + 1)
        whole: list[tuple[int, int, Row]] = []
        pts = _Points()
        many = False
        if hi - lo <= self.raw_cap:
            if lo < hi:
                self.read_points([(lo, hi)], pts)
        else:
            whole, pts = self.select(lo, hi)
            many = sum(w[2][0] for w in whole) + len(pts.idx) > self.raw_cap
            if not many:  # few points after all: read them, every one exactly
                more = _Points()
                self.read_points([(b * SIZES[lv], b * SIZES[lv] + r[0]) for lv, b, r in whole], more)
                pts = _sorted_union(pts, more)
                whole = []
        if many:
            buckets = self._summary_buckets(whole, pts)
            exact = False
        else:
            with_y = sum(1 for v in pts.y if v is not None)
            exact = with_y <= q.points
            buckets = self._exact(pts) if exact else self._raw_buckets(pts)
        doc = _document(buckets, q, self.total, exact)
        doc["last"] = self._last()
        return doc

    # --- bucketing ---
    def _exact(self, pts: _Points) -> list[list[Any]]:
        out = []
        for x, y in zip(pts.x, pts.y, strict=True):
            if y is None:
                continue
            fin = -_INF < y < _INF
            out.append([x, y if fin else None, y if fin else None, y if fin else None, 1, 0 if fin else 1])
        return out

    def _width(self, first: int, last: int, step: int) -> int:
        span = last - first + 1
        width = max(step, -(-math.ceil(span / self.q.points) // step) * step)
        while last // width - first // width + 1 > self.q.points:
            width += step
        return width

    def _raw_buckets(self, pts: _Points) -> list[list[Any]]:
        width = self._width(pts.idx[0], pts.idx[-1], 1)
        cells: dict[int, list[Any]] = {}
        for i, x, y in zip(pts.idx, pts.x, pts.y, strict=True):
            _add_point(cells, i // width, x, y)
        return _finish(cells)

    def _grid(self, whole: list[tuple[int, int, Row]], pts: _Points) -> tuple[int, int]:
        """``(level, width)``: the finest level whose rows over the selection stay <= ROWS_PER_BUCKET x
        points, and the bucket width (a multiple of its block size) giving <= points buckets."""
        ends = [(lv_b_r[1] * SIZES[lv_b_r[0]], lv_b_r[1] * SIZES[lv_b_r[0]] + lv_b_r[2][0] - 1)
                for lv_b_r in (whole[0], whole[-1])] if whole else []
        if pts.idx:
            ends.append((pts.idx[0], pts.idx[-1]))
        first, last = min(e[0] for e in ends), max(e[1] for e in ends)
        level = 0
        while level < TOP and (last - first + 1) / SIZES[level] > ROWS_PER_BUCKET * self.q.points:
            level += 1
        return level, self._width(first, last, SIZES[level])

    def _summary_buckets(self, whole: list[tuple[int, int, Row]], pts: _Points) -> list[list[Any]]:
        level, width = self._grid(whole, pts)
        # Rows wider than a bucket (coarser levels, taken whole above) are replaced by their level's rows.
        cells: dict[int, list[Any]] = {}
        y, xf, mode = self.q.y, self.q.x, self.xmode

        def take(a: int, n: int, t_sum: float, fields: dict[str, Stats]) -> None:
            # The hot loop of a read (~2,000 rows): _xstats and _add_stats, inlined.
            cell = cells.get(a // width)
            if cell is None:
                cell = cells[a // width] = [0, 0.0, 0, 0.0, None, None, 0]
            if mode == "index":
                cell[0] += n
                cell[1] += n * (2 * a + n - 1) / 2
            elif mode == "created":
                cell[0] += n
                cell[1] += t_sum
            else:
                xs = fields.get(xf)
                if xs is not None and xs[0]:
                    cell[0] += xs[0]
                    cell[1] += xs[1]
            ys = fields.get(y)
            if ys is not None:
                cell[2] += ys[0]
                cell[3] += ys[1]
                if ys[0]:
                    cell[4] = ys[2] if cell[4] is None or ys[2] < cell[4] else cell[4]
                    cell[5] = ys[3] if cell[5] is None or ys[3] > cell[5] else cell[5]
                cell[6] += ys[4]

        coarse: list[tuple[int, int]] = []
        for lv, block, row in whole:
            a = block * SIZES[lv]
            if a // width == (a + row[0] - 1) // width:
                take(a, row[0], row[1], row[4])
            else:
                coarse.append((a // SIZES[level], (a + row[0] - 1) // SIZES[level]))
        size = SIZES[level]
        for lo, hi in coalesce(coarse):
            for b, n, t_sum, _, _, f in self.cur.tuples(ROWS, (self.metric_id, level, lo, hi)):
                take(b * size, n, t_sum, _loads_row(f))
        for i, x, yv in zip(pts.idx, pts.x, pts.y, strict=True):
            _add_point(cells, i // width, x, yv)
        return _finish(cells)

    def _last(self) -> dict[str, Any] | None:
        if self.tail is None:
            self._find_tail()
        if self.tail is None:
            return None
        return {"x": self.tail[0], "y": self.tail[1]}

    def _find_tail(self) -> None:
        """The last point carrying y: the last chunk first (the common case), else the last level-0
        block that has y, found down the summaries."""
        if self.total == 0:
            return
        y = self.q.y
        last = _fetch(self.cur, self.metric_id, 0, (self.total - 1) // B0, (self.total - 1) // B0)
        if last and y in last[0][1][4] and self.xmode != "created":
            # Every point of the last block carries y: its last value is the last point's.
            n, fields = last[0][1][0], last[0][1][4]
            ys, xs = fields[y], fields.get(self.q.x)
            if ys[0] + ys[4] == n and (self.xmode == "index" or xs is None or xs[0] + xs[4] == n):
                x = self.total - 1 if self.xmode == "index" else None if xs is None else xs[5]
                self.tail = (x if _finite(x) else None, ys[5])
                return
        saved = self.window
        self.window = None  # the last point of the series, whatever the zoom
        try:
            last = self.cur.chunks("SELECT start_idx, data, created_at, segment FROM metric_chunks WHERE "
                                   "metric_id = ? ORDER BY start_idx DESC LIMIT 1", (self.metric_id,))
            row = last[-1] if last else None  # (a sealed last chunk: the last row it holds)
            values = loads(row["data"]) if row is not None else []
            for i in range(len(values) - 1, -1, -1):  # backwards: usually the very last point
                p = values[i]
                if isinstance(p, dict) and _num(p.get(y)):
                    assert row is not None
                    x = (int(row["start_idx"]) + i if self.xmode == "index" else self._epoch(row["created_at"])
                         if self.xmode == "created" else p.get(self.q.x))
                    self.tail = (x if _finite(x) else None, p[y])
                    return
            rows, level = self.top, TOP
            while True:
                found = [(b, r) for b, r in rows if self.q.y in r[4]]
                if not found:
                    return
                block, r = found[-1]
                if level == 0:
                    a = block * B0
                    probe = _Points()
                    self.read_points([(a, a + r[0])], probe)
                    picked = [(x, y) for x, y in zip(probe.x, probe.y, strict=True) if y is not None]
                    self.tail = picked[-1] if picked else None
                    return
                level -= 1
                rows = self._rows(level, [(block * FANOUT, block * FANOUT + FANOUT - 1)])
        finally:
            self.window = saved


def _sorted_union(a: _Points, b: _Points) -> _Points:
    out = _Points()
    for i, x, y in sorted(zip(a.idx + b.idx, a.x + b.x, a.y + b.y, strict=True), key=itemgetter(0)):
        out.idx.append(i)
        out.x.append(x)
        out.y.append(y)
    return out


# A bucket while it is summed: [x n, x sum, y n finite, y sum, y min, y max, y nonFinite]
def _add_point(cells: dict[int, list[Any]], key: int, x: Any, y: Any) -> None:
    cell = cells.get(key)
    if cell is None:
        cell = cells[key] = [0, 0.0, 0, 0.0, None, None, 0]
    if x is not None:
        cell[0] += 1
        cell[1] += x
    if y is not None:
        if -_INF < y < _INF:
            cell[2] += 1
            cell[3] += y
            cell[4] = y if cell[4] is None else min(cell[4], y)
            cell[5] = y if cell[5] is None else max(cell[5], y)
        else:
            cell[6] += 1


def _finish(cells: dict[int, list[Any]]) -> list[list[Any]]:
    """``[x, y, min, max, count, nonFinite]`` per bucket with a point carrying y, in index order."""
    out = []
    for key in sorted(cells):
        xn, xs, yn, ys, lo, hi, nf = cells[key]
        if yn + nf == 0:
            continue
        out.append([xs / xn if xn else None, ys / yn if yn else None, lo, hi, yn + nf, nf])
    return out


def _document(buckets: list[list[Any]], q: SeriesQuery, total: int, exact: bool) -> dict[str, Any]:
    cols = list(zip(*buckets, strict=True)) if buckets else [(), (), (), (), (), ()]
    return {"x": list(cols[0]), "y": list(cols[1]), "min": list(cols[2]), "max": list(cols[3]),
            "count": list(cols[4]), "nonFinite": list(cols[5]), "total": total, "cursor": total,
            "xField": q.x, "yField": q.y, "exact": exact}


def read_series(cur: Any, metric_id: int, total: int, q: SeriesQuery) -> dict[str, Any]:
    """The series document (see the module's docstring); the summaries must cover ``total``."""
    return _Reader(cur, metric_id, total, q).run()
