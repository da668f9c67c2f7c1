"""Tiered storage: sealed metric chunks (and archived log lines) live in the object store.

Points arrive as chunk rows (``metric_chunks``: the JSON array text of one append, its first and
last index and when it arrived). Once a metric has ``chunk_size`` points in rows of its own, its
oldest rows, whole, are **sealed**: their texts and arrival times go into one immutable object
(a *segment*) in the blob store, then one transaction replaces those rows with a single pointer
row over the same range (``segment`` = the object's sha256, ``data`` = ``[]``). What the
dashboard reads (count, x range, per-field min/max/sum: ``metric_summaries``) never moves, so the
database keeps one small row per sealed chunk. Readers see either the rows or the pointer, never
both (one transaction), and :meth:`Segments.expand` turns a pointer back into exactly the rows it
replaced, so every reader (data, stats, series, download) is the same code on both tiers.

**Format.** ``MLDS1\\n`` + zstd(level 3) of a JSON header line ``[[start, end, created_at, bytes],
...]`` and then each row's text as stored, byte for byte. Measured on 10,000 points of
``{"value", "step", "epoch"}``: JSON + zstd-3 is 4.4× smaller than the text, 4.4 ms to pack and
1.3 ms to unpack; a columnar layout (float64/int64 arrays + zstd) is 6.8× but would have to
re-create each point's text (``1`` vs ``1.0``, key order, odd fields) to give back exactly what was
written; zstd-19 and lzma reach 6.5× at 100× the packing time. Exact text and fast sealing win:
object store bytes are the cheap side of this trade.

**Crash safety.** The object is written first (content-addressed: writing it twice is harmless),
then the rows switch in one transaction that first checks the rows are still there and the
object is too. A crash in between leaves an object nothing points to; :meth:`Tiering.sweep`
removes such orphans once they are older than ``tiering.orphan_grace`` seconds (a sealer is never
that slow), and ``ml-dash serve fsck`` reports them. Segments live under their own prefix
(``segments/``), apart from the files' blobs, so the sweep never sees a file.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml_dash.api.errors import ServerError
from ml_dash.server.storage.blobs import BlobStore

__all__ = ["FsckReport", "LineFilter", "Sealer", "Segments", "Tiering", "archived_lines", "like_matcher", "pack",
           "page_by_offset", "unpack"]

MAGIC = b"MLDS1\n"
LEVEL = 3
Row = dict[str, Any]


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a dependency of the server extra
        raise ServerError("internal", "sealed chunks need the zstandard package",
                          hint="pip install 'ml-dash[server]'") from None
    return zstandard


def pack(rows: Iterable[Row]) -> bytes:
    """One segment of whole rows (``start_idx``, ``end_idx``, ``created_at``, ``data``), in order."""
    texts = [(int(r["start_idx"]), int(r["end_idx"]), str(r["created_at"]), str(r["data"]).encode()) for r in rows]
    header = json.dumps([[s, e, c, len(d)] for s, e, c, d in texts], separators=(",", ":")).encode()
    body = b"".join([header, b"\n", *(d for *_, d in texts)])
    return MAGIC + _zstd().ZstdCompressor(level=LEVEL).compress(body)


def unpack(blob: bytes) -> list[Row]:
    """The rows a segment holds, as they were (``data`` is each row's text, byte for byte)."""
    if not blob.startswith(MAGIC):
        raise ValueError("not a segment (no MLDS1 header)")
    body = _zstd().ZstdDecompressor().decompress(blob[len(MAGIC):])
    cut = body.index(b"\n")
    rows, at = [], cut + 1
    for start, end, created, size in json.loads(body[:cut]):
        rows.append({"start_idx": start, "end_idx": end, "created_at": created,
                     "data": body[at:at + size].decode(), "segment": None})
        at += size
    if at != len(body):
        raise ValueError(f"segment body has {len(body) - at} bytes beyond its rows")
    return rows


LOG_MAGIC = b"MLDL1\n"
LOG_FIELDS = ("seq", "timestamp", "level", "message", "metadata")


def pack_lines(rows: Iterable[Row]) -> bytes:
    """Archived log lines: one JSON array per line (``metadata`` as the database's text), zstd."""
    body = "\n".join(json.dumps([r[k] for k in LOG_FIELDS], separators=(",", ":")) for r in rows).encode()
    return LOG_MAGIC + _zstd().ZstdCompressor(level=LEVEL).compress(body)


def unpack_lines(blob: bytes) -> list[Row]:
    if not blob.startswith(LOG_MAGIC):
        raise ValueError("not a log segment (no MLDL1 header)")
    body = _zstd().ZstdDecompressor().decompress(blob[len(LOG_MAGIC):])
    return [dict(zip(LOG_FIELDS, json.loads(line), strict=True)) for line in body.split(b"\n") if line]


def put_bytes(store: BlobStore, data: bytes) -> str:
    """Write ``data`` to ``store`` (content-addressed); its sha256."""
    staged = store.stage(len(data))
    try:
        staged.write(data)
        digest = staged.finish()
    except BaseException:
        staged.discard()
        raise
    store.commit(staged, digest)
    return digest


class Segments:
    """Reads segments, with a per-process cache of unpacked ones (bounded by their text's size)."""

    def __init__(self, store: BlobStore, cache_bytes: int = 64 * 1024 * 1024) -> None:
        self.store = store
        self._cache: OrderedDict[str, tuple[list[Row], int]] = OrderedDict()
        self._cached = 0
        self._limit = cache_bytes
        self._lock = threading.Lock()

    def rows(self, digest: str) -> list[Row]:
        """The chunk rows of a sealed metric chunk."""
        return self._read(digest, unpack)

    def lines(self, digest: str) -> list[Row]:
        """The log lines of an archived segment (``metadata`` as text, as in the database)."""
        return self._read(digest, unpack_lines)

    def _read(self, digest: str, decode: Any) -> list[Row]:
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None:
                self._cache.move_to_end(digest)
                return hit[0]
        try:
            blob = b"".join(self.store.open(digest))
            rows = decode(blob)
        except ServerError as exc:
            if exc.status == 503:
                raise
            raise ServerError("internal", f"sealed chunk {digest[:12]} is missing from the blob store",
                              hint="run `ml-dash serve fsck` to list what is damaged; restore the blob store "
                                   "from a backup") from None
        except ValueError as exc:
            raise ServerError("internal", f"sealed chunk {digest[:12]} is damaged: {exc}",
                              hint="run `ml-dash serve fsck`; restore the blob store from a backup") from None
        size = sum(len(str(r.get("data") or r.get("message") or "")) + 64 for r in rows)
        with self._lock:
            if digest not in self._cache and size <= self._limit:
                self._cache[digest] = (rows, size)
                self._cached += size
                while self._cached > self._limit:
                    _, (_, dropped) = self._cache.popitem(last=False)
                    self._cached -= dropped
        return rows

    def expand(self, rows: Iterable[Row]) -> list[Row]:
        """``rows`` of ``metric_chunks`` with each pointer row replaced by the rows it sealed."""
        out: list[Row] = []
        for row in rows:
            digest = row.get("segment")
            if digest:
                out.extend(self.rows(str(digest)))
            else:
                out.append(row)
        return out


# --- reading archived log lines as the SQL over ``logs`` reads the rest -----------------------------------
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def like_matcher(pattern: str, *, escape: bool, ascii_case: bool, lower: bool = False) -> Any:
    """``value LIKE pattern`` as the database decides it: ``%`` and ``_`` wildcards (``\\`` escapes
    them when ``escape``), SQLite's LIKE ignoring ASCII case (``ascii_case``), PostgreSQL's not;
    ``lower``: the SQL lowers the value first (``LOWER(message) LIKE``: ASCII only in SQLite)."""
    import re

    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if escape and c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    flags = re.S | (re.I | re.A if ascii_case else 0)
    rx = re.compile("".join(out), flags)

    def match(value: str) -> bool:
        if lower:
            value = value.translate(_ASCII_LOWER) if ascii_case else value.lower()
        return rx.fullmatch(value) is not None

    return match


@dataclass
class LineFilter:
    """The filters of a log query, on archived lines (and on a whole segment, to skip it unread)."""

    levels: Sequence[str] = ()
    message: Callable[[str], bool] | None = None
    start: str | None = None
    end: str | None = None

    @property
    def none(self) -> bool:
        return not (self.levels or self.message or self.start or self.end)

    def skip(self, seg: Row) -> bool:
        if self.levels and not set(json.loads(seg["levels"]) if isinstance(seg["levels"], str) else seg["levels"]) \
                & set(self.levels):
            return True
        # first_ts/last_ts are the least and greatest timestamp of the segment (None: it has none).
        if self.start and (seg["last_ts"] is None or seg["last_ts"] < self.start):
            return True
        return bool(self.end and (seg["first_ts"] is None or seg["first_ts"] > self.end))

    def __call__(self, row: Row) -> bool:
        if self.levels and row["level"] not in self.levels:
            return False
        if self.message is not None and not self.message(row["message"]):
            return False
        ts = row["timestamp"]
        if self.start and (ts is None or ts < self.start):
            return False
        return not (self.end and (ts is None or ts > self.end))


def archived_lines(segments: Segments, segs: Sequence[Row], flt: LineFilter, descending: bool = False,
                   before: int | None = None, after: int | None = None) -> Iterator[Row]:
    """The archived lines of ``segs`` (ordered by position) that pass ``flt``, one segment in memory
    at a time, optionally only positions below ``before`` / above ``after``."""
    for seg in (reversed(segs) if descending else segs):
        if (before is not None and int(seg["start_seq"]) >= before) or \
                (after is not None and int(seg["end_seq"]) <= after) or flt.skip(seg):
            continue
        lines = segments.lines(str(seg["segment"]))
        for row in (reversed(lines) if descending else lines):
            seq = int(row["seq"])
            if (before is None or seq < before) and (after is None or seq > after) and flt(row):
                yield row


def page_by_offset(archived: Callable[[bool], Iterator[Row]], archived_total: int | None,
                   database: Callable[[int, int], list[Row]], database_total: int, offset: int, limit: int,
                   descending: bool) -> tuple[list[Row], int]:
    """One page of ``offset``/``limit`` over the archived lines (older) then the database's, or
    the other way round ``descending``; ``(rows, total)``. ``archived(descending)`` yields the
    matching archived lines in order; ``archived_total`` is their count when known without reading
    them (no filter), else they are counted on the way. ``database(offset, limit)`` pages the rest."""
    window: list[Row] = []
    if descending:
        rows = database(offset, limit) if offset < database_total else []
        skip = max(0, offset - database_total)
        n = 0
        for row in archived(True):
            if skip <= n < skip + limit - len(rows):
                window.append(row)
            n += 1
            if archived_total is not None and n >= skip + limit - len(rows):
                break
        return rows + window, database_total + (archived_total if archived_total is not None else n)
    n = 0
    for row in archived(False):
        if offset <= n < offset + limit:
            window.append(row)
        n += 1
        if archived_total is not None and n >= offset + limit:
            break
    total_archived = archived_total if archived_total is not None else n
    rest = limit - len(window)
    rows = database(max(0, offset - total_archived), rest) if rest > 0 else []
    return window + rows, total_archived + database_total


def _spans(covered: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether the ranges follow on from each other and cover exactly ``start..end``."""
    follow = all(a[1] + 1 == b[0] for a, b in zip(covered, covered[1:], strict=False))
    return bool(covered) and covered[0][0] == start and covered[-1][1] == end and follow


@dataclass
class FsckReport:
    segments: int = 0  # pointer rows (metric chunks and log segments) checked
    objects: int = 0  # segment objects in the store
    missing: list[str] = field(default_factory=list)  # pointer rows whose object is gone or damaged
    orphans: list[str] = field(default_factory=list)  # objects no row points to
    mismatched: list[str] = field(default_factory=list)  # objects whose rows do not cover the pointer's range

    @property
    def clean(self) -> bool:
        return not (self.missing or self.orphans or self.mismatched)

    def lines(self) -> Iterator[str]:
        yield f"{self.segments} sealed chunk(s) and log segment(s) checked, {self.objects} object(s) in the store"
        for what, keys in (("missing or damaged", self.missing), ("orphan object", self.orphans),
                           ("range mismatch", self.mismatched)):
            for key in keys:
                yield f"{what}: {key}"
        yield "clean" if self.clean else "NOT clean"


@dataclass
class Tiering:
    """Sealing, archiving, the orphan sweep and fsck over one metadata store and one segment store."""

    store: Any
    segments: Segments
    chunk_size: int = 10_000
    orphan_grace: float = 3600.0
    log_keep_lines: int = 100_000
    log_archive_age: float = 0.0
    log_segment_lines: int = 10_000

    @classmethod
    def configured(cls, store: Any, segments: Segments, cfg: Any) -> Tiering:
        """From ``serve.tiering`` (config/models.TieringConfig)."""
        return cls(store, segments, cfg.chunk_size, cfg.orphan_grace, cfg.log_keep_lines, cfg.log_archive_age,
                   cfg.log_segment_lines)

    def archive_due(self, now: float | None = None, deadline: float | None = None) -> int:
        """Archive the log lines due (beyond the newest ``log_keep_lines`` of an experiment, or older
        than ``log_archive_age``), oldest first, a segment at a time; the number of segments made."""
        from datetime import datetime, timezone

        now = time.time() if now is None else now
        cutoff = None
        if self.log_archive_age > 0:
            cutoff = datetime.fromtimestamp(now - self.log_archive_age, timezone.utc).isoformat().replace("+00:00", "Z")
        made = 0
        for experiment_id in self.store.logs_unarchived():
            while True:
                rows = self.store.lines_due(experiment_id, self.log_keep_lines, self.log_segment_lines, cutoff)
                if not rows:
                    break
                digest = put_bytes(self.segments.store, pack_lines(rows))
                if not self.store.switch_to_log_segment(experiment_id, rows, digest,
                                                        lambda d=digest: self.segments.store.exists(d)):
                    break
                made += 1
                if deadline is not None and time.monotonic() > deadline:
                    return made
        return made

    def seal_due(self, deadline: float | None = None) -> int:
        """Seal every full chunk of every metric; the number of chunks sealed (stops at ``deadline``)."""
        sealed = 0
        for metric_id in self.store.metrics_due(self.chunk_size):
            while self.seal_one(metric_id):
                sealed += 1
                if deadline is not None and time.monotonic() > deadline:
                    return sealed
        return sealed

    def seal_one(self, metric_id: int) -> bool:
        """Seal the oldest full chunk of one metric; False when it has none (or another sealer won)."""
        rows = self.store.unsealed_rows(metric_id, self.chunk_size)
        if not rows:
            return False
        digest = put_bytes(self.segments.store, pack(rows))
        return bool(self.store.switch_to_segment(metric_id, rows, digest,
                                                 lambda: self.segments.store.exists(digest)))

    def sweep(self, now: float | None = None) -> list[str]:
        """Delete segment objects no row points to, older than the grace period; the keys deleted."""
        now = time.time() if now is None else now
        referenced = self.store.segment_keys()
        gone = []
        for key, modified in self.segments.store.list():
            if key not in referenced and now - modified > self.orphan_grace:
                # Checked again just before: a sealer may have switched to it since the list was read.
                if key in self.store.segment_keys([key]):
                    continue
                self.segments.store.delete(key)
                gone.append(key)
        return gone

    @staticmethod
    def _check(report: FsckReport, stored: set[str], label: str, digest: str, fits: Callable[[str], bool]) -> None:
        """One pointer row: its object is there, readable, and holds exactly the range the row says."""
        try:
            if digest not in stored:
                report.missing.append(label)
            elif not fits(digest):
                report.mismatched.append(label)
        except ServerError:  # gone meanwhile, or damaged
            report.missing.append(label)

    def fsck(self) -> FsckReport:
        report = FsckReport()
        referenced = self.store.segment_ranges()
        report.segments = len(referenced)
        stored = {key for key, _ in self.segments.store.list()}
        report.objects = len(stored)
        for (metric_id, start, end, digest) in referenced:
            self._check(report, stored, f"metric {metric_id} points {start}..{end}: {digest}", digest,
                        lambda d, a=start, b=end: _spans([(int(r["start_idx"]), int(r["end_idx"]))
                                                          for r in self.segments.rows(d)], a, b))
        logs = self.store.log_segment_ranges()
        report.segments += len(logs)
        for (experiment_id, start, end, digest) in logs:
            self._check(report, stored, f"experiment {experiment_id} log lines {start}..{end}: {digest}", digest,
                        lambda d, a=start, b=end: [int(r["seq"]) for r in self.segments.lines(d)] ==
                        list(range(a, b + 1)))
        report.orphans = sorted(stored - {d for *_, d in referenced} - {d for *_, d in logs})
        return report


class Sealer(threading.Thread):
    """The background pass of one server process: every ``interval`` seconds, seal what is due,
    then sweep old orphans. Every process may run one (sealing is idempotent: a sealer that loses
    the race changes nothing); a failed pass is one line on stderr and the next pass tries again."""

    def __init__(self, tiering: Tiering, interval: float) -> None:
        super().__init__(name="ml-dash-sealer", daemon=True)
        self.tiering, self.interval = tiering, interval
        self._halt = threading.Event()
        self.passes = 0

    def run(self) -> None:
        import sys

        while not self._halt.wait(self.interval):
            try:
                # A bounded pass: a long backlog is sealed over several passes, not in one.
                self.tiering.seal_due(deadline=time.monotonic() + max(self.interval, 1.0))
                self.tiering.archive_due(deadline=time.monotonic() + max(self.interval, 1.0))
                self.tiering.sweep()
            except Exception as exc:  # noqa: BLE001 - the server goes on; the chunks stay in the database
                print(f"ml-dash serve: sealing chunks failed ({type(exc).__name__}: {exc}); trying again in "
                      f"{self.interval:g} s", file=sys.stderr, flush=True)
            self.passes += 1

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=30)
