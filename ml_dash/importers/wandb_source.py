"""Read W&B runs (offline ``wandb/offline-run-*`` and online ``wandb/run-*`` directories).

Each run directory holds ``run-<id>.wandb``, W&B's transaction log: every record the SDK sent to
wandb-core (run, config, history, summary, console output, files, exit ...). wandb 0.31 has no
Python reader for it any more (``wandb.sdk.internal.datastore`` is gone; ``wandb sync`` and
``wandb leet inspect`` read it in the Go ``wandb-core`` binary), so we read the chunk framing
ourselves (:func:`_log_records`, the LevelDB log format) and decode every record with wandb's
own protobuf class ``wandb_internal_pb2.Record``.

Each run's ``.wandb`` file is read twice: a first pass collects what a :class:`SourceRun` needs
up front (run record, config, final summary, exit code), :meth:`WandbRun.records` streams it
again for metric points and console lines, then lists ``files/``. Neither pass keeps history.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec

from ml_dash.errors import InvalidInputError
from ml_dash.importers.source import FileItem, LogLine, Point, Problem, Record, SourceRun, require

__all__ = ["WandbRun", "runs"]

_fast_loads = msgspec.json.decode

_BLOCK = 32 * 1024  # LevelDB log block; a chunk never crosses a block boundary
_FILE_HEADER = b":W&B" + struct.pack("<H", 0xBEE1) + b"\x00"  # ident, magic (LE uint16), version 0
_CHUNK = struct.Struct("<IHB")  # crc32, data length, chunk type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_BAD, _END = -1, -2  # what _chunks reports in place of a chunk type
_TYPE_BYTES = [bytes((t,)) for t in range(256)]
_RUN_DIR = re.compile(r"(?:offline-)?run-.+")
_STDERR = 0  # OutputRawRecord.OutputType: STDERR = 0, STDOUT = 1


def _pb() -> Any:
    return require("wandb.proto.wandb_internal_pb2", "import-wandb", "W&B offline runs")


# --- the .wandb framing -------------------------------------------------------------------------
#
# LevelDB's log format (https://github.com/google/leveldb/blob/main/doc/log_format.md) as
# wandb-core writes it, checked against files written by wandb 0.31: a 7-byte file header
# (":W&B", magic 0xBEE1 as LE uint16, version 0), then 32 KiB blocks counted from the start of
# the file (the header sits in block 0). A block holds chunks of
#   crc32 (LE uint32) | length (LE uint16) | type (uint8) | data
# where crc32 is plain zlib.crc32 over the type byte then the data (not LevelDB's masked
# CRC-32C). A chunk never crosses a block: a block's last < 7 bytes are zero padding. A record
# is one FULL chunk, or FIRST, MIDDLE..., LAST. After a bad chunk nothing in its block can be
# trusted, but the writer starts a fresh chunk at every block boundary: resynchronise there.


def _chunks(path: Path) -> Iterator[tuple[int, int, bytes | str]]:
    """``(offset, type, data)`` per chunk, one block in memory at a time. Trouble comes as
    ``(offset, _BAD, message)`` (then we skip to the next block) or ``(offset, _END, message)``."""
    with path.open("rb") as f:
        head = f.read(len(_FILE_HEADER))
        if head != _FILE_HEADER:
            yield 0, _END, f"not a W&B transaction log: header {head!r}"
            return
        block, base, pos = head + f.read(_BLOCK - len(head)), 0, len(head)
        while block:
            while len(block) - pos >= _CHUNK.size:
                crc, length, kind = _CHUNK.unpack_from(block, pos)
                end = pos + _CHUNK.size + length
                if end > len(block) and len(block) < _BLOCK:  # the file ends inside this chunk
                    yield base + pos, _END, f"truncated: chunk of {length} bytes cut off at end of file"
                    return
                data = block[pos + _CHUNK.size : end]
                if end > len(block):
                    yield base + pos, _BAD, f"chunk length {length} runs past its block"
                elif zlib.crc32(data, zlib.crc32(_TYPE_BYTES[kind])) != crc:
                    yield base + pos, _BAD, "checksum mismatch"
                elif kind not in (_FULL, _FIRST, _MIDDLE, _LAST):
                    yield base + pos, _BAD, f"unknown chunk type {kind}"
                else:
                    yield base + pos, kind, data
                    pos = end
                    continue
                break  # resynchronise at the next block
            else:
                if len(block) < _BLOCK and pos < len(block):  # a short last block: the file ends here
                    yield base + pos, _END, "truncated: partial chunk header at end of file"
                    return
            block, base, pos = f.read(_BLOCK), base + _BLOCK, 0


def _log_records(path: Path) -> Iterator[tuple[int, int, bytes] | Problem]:
    """``(offset, record number, record bytes)`` per record of a ``.wandb`` log, or a Problem."""
    count = 0  # records seen, good or not, for "record N" in messages
    parts: list[bytes] = []  # data of a record split over FIRST, MIDDLE... chunks
    start = 0  # offset of that record's first chunk
    skipping = False  # after a bad chunk: drop the orphan rest of its record, report once

    def problem(offset: int, message: str) -> Problem:
        return Problem(str(path), f"byte {offset} (record {count + 1})", message)

    for offset, kind, data in _chunks(path):
        if isinstance(data, str):  # kind is _BAD or _END
            if not skipping or kind == _END:
                count += bool(parts)  # the record in progress is lost with it
                yield problem(offset, data + ("; skipping to the next 32 KiB block" if kind == _BAD else ""))
            parts, skipping = [], True
        elif kind in (_FULL, _FIRST):
            if parts:
                count += 1
                yield problem(start, "record cut short (FIRST chunk without LAST); dropped")
            skipping, parts, start = False, [data], offset
        elif not parts:  # MIDDLE/LAST without FIRST: the tail of a record lost to a bad chunk
            if not skipping:
                yield problem(offset, "chunk continues a record that never started; dropped")
            skipping = True
            continue
        else:
            parts.append(data)
        if kind in (_FULL, _LAST):
            count += 1
            yield start, count, b"".join(parts)
            parts = []
    if parts:
        yield problem(start, "truncated: record cut off at end of file")


def _records(path: Path, pb: Any) -> Iterator[tuple[int, Any] | Problem]:
    """``(record number, wandb_internal_pb2.Record)`` per record, or a Problem."""
    for item in _log_records(path):
        if isinstance(item, Problem):
            yield item
            continue
        offset, n, data = item
        rec = pb.Record()
        try:
            rec.ParseFromString(data)
        except Exception as exc:  # google.protobuf.message.DecodeError; the framing is intact
            yield Problem(str(path), f"byte {offset} (record {n})", f"record does not parse: {exc}")
            continue
        yield n, rec


# --- small helpers ------------------------------------------------------------------------------


def _iso(seconds: int, nanos: int) -> str:
    t = datetime.fromtimestamp(seconds, timezone.utc) + timedelta(microseconds=nanos // 1000)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _path(item: Any) -> tuple[str, ...]:
    """A config/summary/history item's key: ``nested_key`` (a path) or plain ``key``."""
    return tuple(item.nested_key) or (item.key,)


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any, raw: bool) -> None:
    """Set ``tree[p0][p1]... = value``. With ``raw`` the leaves are undecoded JSON text (the
    summary, decoded once at the end): a leaf we must descend into is decoded then."""
    for key in path[:-1]:
        node = tree.get(key)
        if raw and isinstance(node, str):
            node = json.loads(node)
            node = {k: json.dumps(v) for k, v in node.items()} if isinstance(node, dict) else None
        if not isinstance(node, dict):
            node = {}
        tree[key] = node
        tree = node
    tree[path[-1]] = value


def _unset(tree: dict[str, Any], path: tuple[str, ...]) -> None:
    for key in path[:-1]:
        tree = tree.get(key)  # type: ignore[assignment]
        if not isinstance(tree, dict):
            return
    tree.pop(path[-1], None)


def _decode(tree: Any) -> Any:
    return {k: _decode(v) for k, v in tree.items()} if isinstance(tree, dict) else json.loads(tree)


def _clean_line(line: str) -> str:
    """A console line as a terminal would leave it: what follows the last carriage return
    (progress bars redraw with ``\\r``), ignoring a ``\\r\\n`` line end."""
    line = line.rstrip("\r")
    return line[line.rfind("\r") + 1 :]


def _loads(text: str) -> Any:
    """One item's ``value_json``: msgspec's decoder (several times json's on these short texts), json's
    for what msgspec refuses (``NaN``, ``Infinity``, which wandb writes as Python's json does)."""
    try:
        return _fast_loads(text)
    except ValueError:  # msgspec.DecodeError is a ValueError
        return json.loads(text)


def _points(history: Any) -> Iterator[Point]:
    """A history record's numeric values; ``_step``/``_timestamp`` give step and time, other
    ``_`` keys (``_runtime``, ``_wandb``) are wandb's own."""
    loads = _loads
    step = ts = None
    values = []
    for it in history.item:
        nested = it.nested_key
        name = "/".join(nested) if nested else it.key
        if name == "_step":
            step = loads(it.value_json)
        elif name == "_timestamp":
            ts = loads(it.value_json)
        elif not name.startswith("_"):  # starts with the first key
            values.append((name, it.value_json))
    if step is None and history.HasField("step"):
        step = history.step.num
    for name, raw in values:
        v = loads(raw)
        if type(v) is int or type(v) is float:  # not bool, str, or media/table dicts
            yield Point(name, {"value": v, "step": step, "timestamp": ts})


# --- runs ---------------------------------------------------------------------------------------


class WandbRun(SourceRun):
    """One W&B run directory."""

    def __init__(self, run_dir: Path, log: Path | None, pb: Any, key: str | None = None) -> None:
        self._dir, self._log, self._pb = run_dir, log, pb
        self._config: dict[str, Any] = {}
        info = self._scan()
        run_id = info["run_id"] or (log.stem.removeprefix("run-") if log else run_dir.name.rsplit("-", 1)[-1])
        exit_code = info["exit_code"]
        wandb_meta: dict[str, Any] = {
            "run_id": run_id,
            "project": info["project"],
            "entity": info["entity"],
            "group": info["group"],
            "job_type": info["job_type"],
            "start_time": info["start_time"],
            "exit_code": exit_code,
            "runtime": info["runtime"],
            "summary": info["summary"],
            "host": info["host"],
            "program": info["program"],
        }
        if exit_code is None:
            wandb_meta["exit"] = None  # no exit record: the run crashed or was killed
        super().__init__(
            key=key or run_id,
            name=info["display_name"] or run_id,
            where=str(run_dir),
            project=info["project"],
            description=info["notes"],
            tags=info["tags"],
            metadata={"status": "COMPLETED" if exit_code == 0 else "FAILED", "wandb": wandb_meta},
        )

    def _scan(self) -> dict[str, Any]:
        """First pass: run record(s), config, summary, exit, environment. Bad chunks are skipped
        here; :meth:`records` reports them."""
        info: dict[str, Any] = dict.fromkeys(
            ("run_id", "project", "entity", "group", "job_type", "display_name", "notes", "start_time",
             "host", "program", "exit_code", "runtime"))
        info["tags"] = []
        summary: dict[str, Any] = {}  # leaves: raw JSON text, decoded once at the end
        runtime = None
        for item in _records(self._log, self._pb) if self._log else ():
            if isinstance(item, Problem):
                continue
            rec = item[1]
            kind = rec.WhichOneof("record_type")
            if kind == "summary":  # wandb writes one per history step: the plain key is the common case
                for u in rec.summary.update:
                    if u.nested_key:
                        _set(summary, tuple(u.nested_key), u.value_json, raw=True)
                    else:
                        summary[u.key] = u.value_json
                for u in rec.summary.remove:
                    _unset(summary, _path(u))
            elif kind == "config":
                self._apply_config(rec.config)
            elif kind == "run":
                r = rec.run
                # A run record can come again (e.g. a rename); later non-empty fields win.
                for field, value in (("run_id", r.run_id), ("project", r.project), ("entity", r.entity),
                                     ("group", r.run_group), ("job_type", r.job_type),
                                     ("display_name", r.display_name), ("notes", r.notes), ("host", r.host)):
                    info[field] = value or info[field]
                info["tags"] = list(r.tags) or info["tags"]
                if r.HasField("start_time"):
                    info["start_time"] = _iso(r.start_time.seconds, r.start_time.nanos)
                self._apply_config(r.config)
            elif kind == "environment":
                info["program"] = rec.environment.program or rec.environment.code_path or info["program"]
                info["host"] = info["host"] or rec.environment.host or None
            elif kind == "exit":
                info["exit_code"], runtime = rec.exit.exit_code, rec.exit.runtime
        info["summary"] = _decode(summary)
        info["runtime"] = runtime if runtime is not None else info["summary"].get("_runtime")
        self._config.pop("_wandb", None)  # wandb's own bookkeeping, not a parameter
        return info

    def _apply_config(self, config: Any) -> None:
        for u in config.update:
            _set(self._config, _path(u), json.loads(u.value_json), raw=False)
        for u in config.remove:
            _unset(self._config, _path(u))

    def params(self) -> dict[str, Any]:
        return self._config

    def records(self) -> Iterator[Record]:
        """History points and console lines in file order, then problems for files the run
        named but are missing, then everything under ``files/`` in sorted order."""
        named: dict[str, int] = {}  # files records: path -> record number
        pending: dict[int, tuple[str, str]] = {}  # stream -> (partial console line, its timestamp)
        finished = False
        for item in _records(self._log, self._pb) if self._log else ():
            if isinstance(item, Problem):
                yield item
                continue
            n, rec = item
            kind = rec.WhichOneof("record_type")
            if kind == "history":
                yield from _points(rec.history)
            elif kind in ("output_raw", "output"):
                out = getattr(rec, kind)
                yield from self._console(pending, out.output_type, out.line,
                                         _iso(out.timestamp.seconds, out.timestamp.nanos))
            elif kind == "files":
                for f in rec.files.files:
                    named.setdefault(f.path, n)
            elif kind == "exit":
                finished = True
        if finished:
            # The run has exited, so the file cannot grow: an unterminated last line is final.
            # (In a live or killed run it is held back, so a re-read after growth stays a prefix.)
            for stream, (text, ts) in sorted(pending.items(), reverse=True):
                yield self._line(stream, _clean_line(text), ts)
        yield from self._files(named)

    def _console(self, pending: dict[int, tuple[str, str]], stream: int, chunk: str,
                 ts: str) -> Iterator[LogLine]:
        """wandb records console output in chunks as written (``print`` gives the text and the
        ``"\\n"`` as two records); join them per stream and emit complete lines."""
        text, first_ts = pending.pop(stream, ("", ts))
        lines = (text + chunk).split("\n")
        for line in lines[:-1]:
            yield self._line(stream, _clean_line(line), first_ts)
            first_ts = ts
        if lines[-1]:
            pending[stream] = (lines[-1], first_ts)

    @staticmethod
    def _line(stream: int, message: str, ts: str) -> LogLine:
        name = "stderr" if stream == _STDERR else "stdout"
        return LogLine(message=message, level="error" if stream == _STDERR else "info", timestamp=ts,
                       metadata={"stream": name})

    def _files(self, named: dict[str, int]) -> Iterator[Record]:
        files = self._dir / "files"
        for rel, n in named.items():
            if not any(c in rel for c in "*?[") and not os.path.lexists(files / rel):
                yield Problem(str(self._log), f"record {n}", f"files record names {rel!r}, "
                              f"but {files / rel} does not exist")
        for top, dirs, names in os.walk(files):  # symlinked dirs are not followed (no loops)
            dirs.sort()
            sub = Path(top).relative_to(files).as_posix()
            prefix = "/wandb" if sub == "." else f"/wandb/{sub}"
            for name in sorted(names):
                p = Path(top, name)
                if p.is_file():
                    yield FileItem(prefix=prefix, filename=name, path=p)
                else:  # a dangling symlink (wandb.save links files into files/)
                    yield Problem(str(p), "file", "missing: a link to a file that does not exist")


# --- finding runs -------------------------------------------------------------------------------


def _log_of(run_dir: Path) -> Path | None:
    logs = sorted(run_dir.glob("*.wandb"))
    return logs[0] if logs else None


def _run_dirs(source: Path) -> list[tuple[Path, Path | None]]:
    """The (run dir, .wandb file) pairs of a source, in a stable order."""
    if not source.exists():
        raise InvalidInputError(f"{source}: no such file or directory",
                                hint="give the wandb/ directory of your runs, or one run directory in it")
    if source.is_file():
        if source.suffix == ".wandb":
            return [(source.parent, source)]
    elif _log_of(source) or (_RUN_DIR.fullmatch(source.name) and (source / "files").is_dir()):
        return [(source, _log_of(source))]
    else:
        top = source / "wandb" if (source / "wandb").is_dir() else source
        found = [
            (d, _log_of(d)) for d in top.iterdir()
            # latest-run is a symlink to a run listed anyway
            if _RUN_DIR.fullmatch(d.name) and d.is_dir() and not d.is_symlink() and _log_of(d)
        ]
        if found:
            # By start time (the name's date), offline and online runs interleaved.
            return sorted(found, key=lambda r: (r[0].name.removeprefix("offline-"), r[0].name))
    raise InvalidInputError(
        f"{source}: not a W&B source (no run-*.wandb log found)",
        hint="give a wandb/ directory, a directory containing one, a run directory "
        "(wandb/offline-run-* or wandb/run-*) or a run-*.wandb file")


def runs(source: Path) -> Iterator[SourceRun]:
    """The W&B runs under ``source``; raises at once if it is not a W&B source or wandb is missing."""
    found = _run_dirs(Path(source))
    pb = _pb()

    def generate() -> Iterator[SourceRun]:
        seen: set[str] = set()
        for run_dir, log in found:
            run = WandbRun(run_dir, log, pb)
            if run.key in seen:
                # An offline resume (wandb.init(id=..., resume=...)) writes a new directory with
                # the same run id: keep the first as "<id>", key later parts by their directory.
                run.key = f"{run.key}/{run_dir.name}"
            seen.add(run.key)
            yield run

    return generate()
