"""``ml-dash serve backup DEST`` and ``ml-dash serve restore SRC``.

A backup is a directory:

* ``metadata.sqlite3`` (SQLite, through sqlite3's online backup API: one consistent copy while the
  server writes) or ``metadata.pgdump`` (PostgreSQL, ``pg_dump --format=custom`` of an exported
  snapshot);
* ``blobs.jsonl``: one line per blob the metadata references, read from that same snapshot:
  ``key`` as the blob store names it, ``sha256``, ``size``, and either one ``file`` using it (a
  file's blob) or ``"store": "segments"`` and a ``label`` (a segment: the object of a sealed metric
  chunk or of archived log lines, in the segment store ``<blobs>/segments``: storage/tiers.py); an
  entry without ``store`` is a file's blob (all of them in backups of format 1);
* ``backup.json``: ml-dash version, time, database kind, schema version, counts;
* ``blobs/`` (``--with-blobs`` only): every referenced blob, laid out as a ``file://`` store
  (``ab/cd/<sha256>``, the segments in ``segments/ab/cd/<sha256>``), each verified against its
  sha256 while copied.

Segments have no size column: their size is read from the segment store right after the snapshot
(a stat, a HEAD, or one listing per 1,000 objects on S3), so the manifest has it with or without
``--with-blobs`` and nothing is added to the database (a sealer would have to write it too, for a
number only a backup reads). A segment the snapshot points to is never deleted while rows point to
it (the sweep removes only objects no row points to), so it is still there then; one that is not
is damage (``ml-dash serve fsck``), reported like a missing file's blob.

It is written into a temporary directory beside DEST (``.DEST.partial-*``) and renamed at the end:
a killed backup never leaves a DEST that looks complete, and the next backup removes its remains.
Without ``--with-blobs`` the blob store is not copied: blobs are content-addressed and never
rewritten, so the store's own backup (S3 versioning or replication, a copy of the directory) taken
after the metadata backup holds every blob it names. A restore goes into an EMPTY database, copies
``blobs/`` into the target store when the backup has it, and checks every manifest entry there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ml_dash.errors import ConfigError, MLDashError

__all__ = ["BACKUP_HELP", "RESTORE_HELP", "backup", "find_pg_tool", "main", "restore", "verify_blobs"]

BACKUP_JSON = "backup.json"
MANIFEST = "blobs.jsonl"
SQLITE_FILE = "metadata.sqlite3"
PG_FILE = "metadata.pgdump"
BLOB_DIR = "blobs"
FORMAT = 2  # of the backup directory; bumped if its layout ever changes (2: segments)
CHUNK = 1024 * 1024
PARTIAL = ".partial-"
SHOWN_MISSING = 5  # blobs named in the one-line error (all of them are listed above it)
SEGMENTS = "segments"  # the segment store, within the blob store; the marker of its manifest entries
LIST_ABOVE = 200  # more S3 objects to size than this: list the prefix (1,000 a request), not one HEAD each

SETTINGS = "[--db URL] [--blobs URL] [--data-dir DIR] [key=value ...]"
BACKUP_HELP = f"""\
usage: ml-dash serve backup DEST [--with-blobs] {SETTINGS}

A consistent online backup of the server's metadata: the server may be running and writing.
  DEST/metadata.sqlite3  SQLite: a copy through sqlite3's online backup API
  DEST/metadata.pgdump   PostgreSQL: pg_dump --format=custom (pg_dump of the server's major
                         version or newer: on PATH, in /usr/lib/postgresql/*/bin, or pgserver's)
  DEST/blobs.jsonl       every blob the metadata references (key, sha256, size), same snapshot:
                         the files', and the segments of sealed metric chunks and archived log
                         lines (in the blob store's segments/)
  DEST/backup.json       ml-dash version, time, database kind, schema version, counts
  DEST/blobs/            --with-blobs only: a sha256-verified copy of every referenced blob

Without --with-blobs the blob store (the file:// directory or the s3:// bucket) is NOT copied:
back it up by its own means (S3 versioning or replication, a copy of the directory) after this
backup; blobs are content-addressed and never rewritten, so that copy holds every blob the
backup names. The database holds the API keys (hashed) and the server's secret (which signs
dashboard sessions and username tokens), so they keep working after a restore; not in a
backup: the configuration (config files, environment, an auth.secret set there).

DEST must be absent or an empty directory. The backup is written beside it
(.DEST.partial-*) and renamed to DEST when complete.
The server settings are those of `ml-dash serve` (see ml-dash serve --help)."""
RESTORE_HELP = f"""\
usage: ml-dash serve restore SRC [--verify-only] {SETTINGS}

Restore a backup of `ml-dash serve backup` into an EMPTY database (one without namespaces,
projects, experiments or API keys), of the same kind as the backup's:
  SQLite      the backup's file is copied into place (no server may be running on the target)
  PostgreSQL  pg_restore (of the server's major version or newer) into the target database
If SRC has blobs/ (backup --with-blobs), they are copied into the target blob store (file:// or
s3://; segments into its segments/). Then every blob of SRC/blobs.jsonl is checked in
the target blob store (present, right size); missing ones are listed and the exit status is 1
(nothing is deleted).
  --verify-only  only that check (e.g. after copying the blob store back by its own means)
The server settings are those of `ml-dash serve` (see ml-dash serve --help)."""

TABLE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)")

# What backup.json counts, read from the snapshot.
COUNTS = {
    "namespaces": "SELECT COUNT(*) FROM namespaces",
    "api_keys": "SELECT COUNT(*) FROM api_keys",
    "projects": "SELECT COUNT(*) FROM projects",
    "experiments": "SELECT COUNT(*) FROM experiments",
    "metrics": "SELECT COUNT(*) FROM metrics",
    "metric_points": "SELECT COALESCE(SUM(total), 0) FROM metrics",
    "log_lines": "SELECT COUNT(*) FROM logs",
    "files": "SELECT COUNT(*) FROM files WHERE deleted_at IS NULL",
    "file_records": "SELECT COUNT(*) FROM files",
}
# Counted where the schema has the table (a backup of an older schema has not: it is restored as it is).
LATER_COUNTS = {
    "archived_log_lines": ("log_segments",
                           "SELECT COALESCE(SUM(end_seq - start_seq + 1), 0) FROM log_segments"),
}
# A restore target must have none of these.
OCCUPIED = ("namespaces", "api_keys", "projects", "experiments")
FILES_SQL = ("SELECT f.checksum, f.size_bytes, n.slug, p.slug, e.name, f.path, f.filename FROM files f "
             "JOIN experiments e ON e.id = f.experiment_id JOIN projects p ON p.id = e.project_id "
             "JOIN namespaces n ON n.id = p.namespace_id "
             "ORDER BY f.checksum, CASE WHEN f.deleted_at IS NULL THEN 0 ELSE 1 END, f.id")  # a live file first
# The objects rows point to in the segment store (storage/tiers.py): sealed metric chunks, archived log
# lines. LEFT JOINs: a pointer row is listed even if the names around it cannot be found.
_NAMES = ("LEFT JOIN projects p ON p.id = e.project_id LEFT JOIN namespaces n ON n.id = p.namespace_id ")
SEGMENTS_SQL = {
    "sealed chunk: metric {} points {}..{}":
        "SELECT c.segment, c.metric_id, c.start_idx, c.end_idx, n.slug, p.slug, e.name, m.name "
        "FROM metric_chunks c LEFT JOIN metrics m ON m.id = c.metric_id "
        "LEFT JOIN experiments e ON e.id = m.experiment_id " + _NAMES +
        "WHERE c.segment IS NOT NULL ORDER BY c.segment, c.metric_id, c.start_idx",
    "archived log lines: experiment {} lines {}..{}":
        "SELECT s.segment, s.experiment_id, s.start_seq, s.end_seq, n.slug, p.slug, e.name, NULL "
        "FROM log_segments s LEFT JOIN experiments e ON e.id = s.experiment_id " + _NAMES +
        "ORDER BY s.segment, s.experiment_id, s.start_seq",
}

Say = Callable[[str], None]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _masked(url: str) -> str:
    """A database URL without its password (what every message shows)."""
    return re.sub(r"(password=)[^&\s]*", r"\1***", re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url))


# --- command line ---------------------------------------------------------------------------------------------
def main(action: str, argv: Sequence[str], open_state: Callable[[Sequence[str]], Any]) -> int:
    """``ml-dash serve backup|restore ...``; ``open_state`` resolves the server settings (serve's ``_state``)."""
    args = list(argv)
    flag = "--with-blobs" if action == "backup" else "--verify-only"
    if not args or any(a in ("-h", "--help") for a in args):
        print(BACKUP_HELP if action == "backup" else RESTORE_HELP)
        return 0
    chosen = flag in args
    args = [a for a in args if a != flag]
    what = "DEST" if action == "backup" else "SRC"
    setting = "=" in args[0] and "/" not in args[0].partition("=")[0] if args else False  # key=value, not a path
    if not args or args[0].startswith("-") or setting:
        raise ConfigError(f"serve {action} needs a {what} directory first",
                          hint=f"ml-dash serve {action} /backups/ml-dash-1 [server settings]")
    where = Path(args[0]).expanduser().absolute()
    if action == "backup":
        _check_dest(where)
    else:
        info = read_backup(where)
    st = open_state(args[1:])
    if st is None:  # --help of the settings
        return 0
    try:
        if action == "backup":
            backup(st, where, with_blobs=chosen)
        elif chosen:
            entries = _manifest(where)
            verify_blobs(st.blobs, st.blobs_url, where, entries, segments=_segment_store(st))
            print(f"all {_counted(entries)} of {where / MANIFEST} are in {st.blobs_url}")
        else:
            restore(st, where, info)
    except MLDashError:
        raise
    except OSError as exc:
        raise MLDashError(f"serve {action} {where} failed: {exc}",
                          hint="check the free space and the permissions of the paths named") from None
    finally:
        st.close()
    return 0


# --- shared: the snapshot's contents ---------------------------------------------------------------------------
def _scalar(conn: Any, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0] or 0) if row else 0


def _schema_version(conn: Any) -> int:
    return _scalar(conn, "SELECT MAX(version) FROM schema_version")


def _has_table(conn: Any, table: str) -> bool:
    # Asked, not tried: a failing statement would end PostgreSQL's snapshot transaction.
    sql = (f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
           if isinstance(conn, sqlite3.Connection) else
           f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() "
           f"AND table_name = '{table}'")
    return _scalar(conn, sql) > 0


def _counts(conn: Any) -> dict[str, int]:
    counts = {name: _scalar(conn, sql) for name, sql in COUNTS.items()}
    counts.update({name: _scalar(conn, sql) for name, (table, sql) in LATER_COUNTS.items()
                   if _has_table(conn, table)})
    return counts


def _log_lines(counts: dict[str, int]) -> int:
    """The log lines in the database and those archived to the segment store."""
    return counts["log_lines"] + counts.get("archived_log_lines", 0)


def _blob_key(store: Any, sha256: str, within: str = "") -> str:
    """The blob's name as the blob store's URL names it: ``[within/]ab/cd/<sha256>`` in a directory
    (relative to it), the object's key in S3 (``prefix[/within]/<sha256>``, ``store`` being that one)."""
    from ml_dash.server.storage.blobs import S3BlobStore

    if isinstance(store, S3BlobStore):
        return store._key(sha256)
    return f"{within}/" * bool(within) + f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _segment_store(st: Any) -> Any:
    """The store of ``st``'s segments (the one its readers use)."""
    return st.store.segments.store if st.store.segments is not None else st.blobs.within(SEGMENTS)


def _is_segment(entry: dict[str, Any]) -> bool:
    return entry.get("store") == SEGMENTS  # no marker: a file's blob (every entry of a format 1 backup)


def _split(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(files' blobs, segments)``."""
    return [e for e in entries if not _is_segment(e)], [e for e in entries if _is_segment(e)]


def _label(entry: dict[str, Any]) -> str:
    return str(entry["label"]) if _is_segment(entry) else f"file {entry['file']}"


def _counted(entries: list[dict[str, Any]]) -> str:
    """``N blobs`` (`` (M of them segments)`` when there are)."""
    sealed = len(_split(entries)[1])
    return f"{len(entries)} blobs" + (f" ({sealed} of them segments)" if sealed else "")


def _manifest_rows(conn: Any, store: Any, segments: Any) -> list[dict[str, Any]]:
    """One entry per distinct blob the file records reference (deleted records too: their blob is kept),
    then one per distinct segment sealed chunks and archived log lines point to (its size is read
    later: :func:`_sized`)."""
    entries: list[dict[str, Any]] = []
    for checksum, size, ns, project, experiment, path, filename in conn.execute(FILES_SQL).fetchall():
        if entries and entries[-1]["sha256"] == checksum:
            continue
        entries.append({"key": _blob_key(store, checksum), "sha256": checksum, "size": int(size),
                        "file": f"{ns}/{project}/{experiment}:{(path or '/').rstrip('/')}/{filename}"})
    seen: set[str] = set()
    for label, sql in SEGMENTS_SQL.items():
        for digest, owner, start, end, ns, project, experiment, metric in conn.execute(sql).fetchall():
            if digest in seen:  # content-addressed: identical chunks of two metrics are one object
                continue
            seen.add(digest)
            names = ([f"{ns}/{project}/{experiment}"] if experiment is not None else []) + \
                    ([str(metric)] if metric is not None else [])
            where = f" ({': '.join(names)})" if names else ""
            entries.append({"store": SEGMENTS, "key": _blob_key(segments, digest, SEGMENTS), "sha256": digest,
                            "size": None, "label": label.format(owner, start, end) + where})
    return entries


def _sized(segments: Any, url: str, entries: list[dict[str, Any]], say: Say) -> None:
    """Each segment entry's size, read from the segment store (segments have no size column). One
    that is not there keeps ``None``: listed in the manifest all the same, checked at restore."""
    wanted = [e for e in entries if _is_segment(e)]
    sizes = _sizes(segments, [e["sha256"] for e in wanted])
    for e in wanted:
        e["size"] = sizes.get(e["sha256"])
        if e["size"] is None:
            say(f"warning: blob {e['key']} is missing from {url} ({e['label']}): run `ml-dash serve fsck`")


def _manifest(src: Path) -> list[dict[str, Any]]:
    path = src / MANIFEST
    try:
        lines = path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})",
                          hint="give the directory an `ml-dash serve backup` wrote, complete") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


# --- backup ----------------------------------------------------------------------------------------------------
def _check_dest(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        kind = "a directory that is not empty" if dest.is_dir() else "a file"
        raise ConfigError(f"backup destination {dest} is {kind}",
                          hint="give a new (or empty) directory; a backup never writes over anything")


def _lock(directory: Path) -> Any:
    """An exclusive lock held while the backup writes ``directory`` (released by the kernel if killed)."""
    handle = open(directory / ".lock", "w")
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # pragma: no cover - Windows: no stale-lock detection
        pass
    return handle


def _remove_stale(dest: Path, say: Say) -> None:
    """Remove what interrupted backups to DEST left beside it (their lock is no longer held)."""
    import glob

    for stale in dest.parent.glob(f".{glob.escape(dest.name)}{PARTIAL}*"):
        lock = stale / ".lock"
        if not lock.exists():
            if time.time() - stale.stat().st_mtime < 60:  # being created this instant
                continue
        else:
            try:
                import fcntl

                with open(lock, "a") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # pragma: no cover - Windows
                continue
            except OSError:  # held: a backup to the same DEST is running
                raise MLDashError(f"another backup to {dest} is running ({stale})",
                                  hint="wait for it to finish, or give another DEST") from None
        shutil.rmtree(stale, ignore_errors=True)
        say(f"removed {stale} (left by an interrupted backup)")


def backup(st: Any, dest: Path, *, with_blobs: bool = False, say: Say = _say) -> dict[str, Any]:
    """Back up the metadata of ``st`` (a ServerState) into ``dest``; return what backup.json records."""
    _check_dest(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(dest, say)
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}{PARTIAL}", dir=dest.parent))
        lock = _lock(work)
    except OSError as exc:
        raise MLDashError(f"cannot write the backup beside {dest}: {exc}",
                          hint=f"give a DEST in a directory you can write (the backup is made in {dest.parent} "
                               "and renamed)") from None
    try:
        kind = st.store.dialect.name
        say(f"backing up {kind} {_masked(st.db_url)} into {dest}")
        segments = _segment_store(st)
        if kind == "sqlite":
            info, entries = _sqlite_backup(Path(st.store.dialect.path), work / SQLITE_FILE, st.blobs,
                                           segments)
        else:
            info, entries = _postgres_backup(st.db_url, work / PG_FILE, st.blobs, segments)
        _sized(segments, st.blobs_url, entries, say)
        _write(work / MANIFEST, "".join(json.dumps(e) + "\n" for e in entries))
        if with_blobs:
            files, sealed = _split(entries)
            _copy_out(st.blobs, st.blobs_url, files, work / BLOB_DIR, say)
            # Named by the blob store's URL: the segments' keys are relative to it (segments/ab/cd/<sha256>).
            _copy_out(segments, st.blobs_url, sealed, work / BLOB_DIR / SEGMENTS, say, "segments")
        from ml_dash import __version__

        info = {"format": FORMAT, "ml_dash": __version__,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "database": kind,
                "db": _masked(st.db_url), **info,
                "blobs": {"url": st.blobs_url, "count": len(entries),
                          "bytes": sum(e["size"] or 0 for e in entries), "copied": with_blobs,
                          "segments": len(_split(entries)[1])}}
        _write(work / BACKUP_JSON, json.dumps(info, indent=2) + "\n")
        (work / ".lock").unlink()
        os.replace(work, dest)  # onto an absent or empty DEST: the backup appears complete, or not at all
        _fsync(dest.parent)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise MLDashError(f"backup into {dest} failed: {exc}",
                          hint=f"check the free space and permissions of {dest.parent} (DEST must be on the same "
                               "file system as its parent: not a mount point)") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        lock.close()
    c = info["counts"]
    print(f"backup of {kind} (schema {info['schema_version']}) in {dest}: {c['namespaces']} namespaces, "
          f"{c['experiments']} experiments, {c['metric_points']} metric points, {_log_lines(c)} log lines, "
          f"{c['files']} files, {_counted(entries)} of {info['blobs']['bytes']} bytes "
          f"({'copied' if with_blobs else 'not copied: back up the blob store by its own means'})")
    return info


def _sqlite_backup(source: Path, target: Path, store: Any,
                   segments: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # pages=-1: every page in one step, under one read transaction: a consistent copy
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file (the server switches it to WAL)
        info = {"schema_version": _schema_version(dst), "counts": _counts(dst)}
        entries = _manifest_rows(dst, store, segments)
    except sqlite3.Error as exc:
        raise MLDashError(f"backup of the SQLite database {source} failed: {exc}",
                          hint="check the file and the free space beside DEST, then run the backup again") from None
    finally:
        dst.close()
        src.close()
    _fsync(target)
    return info, entries


# --- PostgreSQL ------------------------------------------------------------------------------------------------
def _pg_candidates(tool: str) -> list[Path]:
    """Where ``tool`` may be: PATH, Debian's versioned directories (newest first), pgserver's bundled binaries."""
    found: list[Path] = []
    on_path = shutil.which(tool)
    if on_path:
        found.append(Path(on_path))
    versioned = Path("/usr/lib/postgresql").glob(f"*/bin/{tool}")
    found += sorted(versioned, key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0, reverse=True)
    import importlib.util

    spec = importlib.util.find_spec("pgserver")  # located, not imported
    for root in (spec.submodule_search_locations or []) if spec else []:
        found.append(Path(root) / "pginstall" / "bin" / tool)
    return [p for p in found if p.is_file() and os.access(p, os.X_OK)]


def _major(tool: Path) -> int:
    try:
        out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    m = re.search(r"PostgreSQL\)\s*(\d+)", out) or re.search(r"\s(\d+)", out)
    return int(m.group(1)) if m else 0


def find_pg_tool(tool: str, server_major: int) -> Path:
    """The first ``tool`` (pg_dump, pg_restore) whose major version is at least the server's."""
    candidates = _pg_candidates(tool)
    client = f"postgresql-client-{server_major}" if server_major else "postgresql-client"
    if not candidates:
        raise MLDashError(f"{tool} was not found (looked on PATH, in /usr/lib/postgresql/*/bin and in pgserver)",
                          hint=f"install the PostgreSQL client tools (e.g. apt install {client}), or put {tool} "
                               "on PATH")
    versions = [(p, _major(p)) for p in candidates]
    for path, major in versions:
        if major >= server_major:
            return path
    shown = ", ".join(f"{p} ({m or '?'})" for p, m in versions)
    raise MLDashError(f"no {tool} of PostgreSQL {server_major} or newer (found {shown})",
                      hint=f"install the client tools of the server's version (e.g. apt install {client})")


@dataclass(frozen=True)
class _Pg:
    """A connection for libpq's tools: the conninfo without its password, which goes in the environment."""

    conninfo: str
    env: dict[str, str]
    shown: str
    password: str

    @classmethod
    def of(cls, url: str) -> _Pg:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(url)
        password = str(params.pop("password", "") or "")
        env = dict(os.environ)
        if password:
            env["PGPASSWORD"] = password
        return cls(make_conninfo("", **params), env, _masked(url), password)

    def run(self, args: list[str], what: str, hint: str) -> None:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            lines = [x.strip() for x in done.stderr.splitlines() if x.strip()]
            first = next((x for x in lines if "error" in x.lower()), lines[-1] if lines else f"exit {done.returncode}")
            if self.password:
                first = first.replace(self.password, "***")
            raise MLDashError(f"{what} failed on {self.shown}: {first}", hint=hint)


def _pg_connect(url: str, autocommit: bool = True) -> Any:
    try:
        import psycopg

        return psycopg.connect(url, autocommit=autocommit)
    except ImportError:
        raise ConfigError("postgresql:// needs psycopg", hint="pip install 'ml-dash[postgres]'") from None
    except Exception as exc:
        raise MLDashError(f"cannot connect to {_masked(url)}: {str(exc).strip().splitlines()[0]}",
                          hint="check the --db URL and that the database server is up") from None


def _postgres_backup(url: str, target: Path, store: Any,
                     segments: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from psycopg import IsolationLevel

    pg = _Pg.of(url)
    conn = _pg_connect(url, autocommit=False)
    try:
        tool = find_pg_tool("pg_dump", conn.info.server_version // 10000)
        # One snapshot for all: exported by this transaction (held open meanwhile), dumped by pg_dump,
        # and read here for the manifest and the counts.
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        info = {"schema_version": _schema_version(conn), "counts": _counts(conn),
                "pg_dump": _major(tool), "server_version": conn.info.server_version}
        entries = _manifest_rows(conn, store, segments)
        pg.run([str(tool), "--format=custom", f"--file={target}", f"--snapshot={row[0]}", "--no-password",
                f"--dbname={pg.conninfo}"], "pg_dump",
               "check the database and the free space beside DEST, then run the backup again")
    finally:
        conn.close()
    _fsync(target)
    return info, entries


# --- blobs -----------------------------------------------------------------------------------------------------
def _copy_out(store: Any, url: str, entries: list[dict[str, Any]], root: Path, say: Say,
              what: str = "blobs") -> None:
    """Every entry's bytes from ``store`` into ``root/ab/cd/<sha256>``, hashed on the way."""
    from ml_dash.api.errors import ServerError

    if not entries and what != "blobs":  # no segments: nothing to say
        return
    say(f"copying {len(entries)} {what} from {url}")
    missing = []
    for e in entries:
        target = root / e["sha256"][:2] / e["sha256"][2:4] / e["sha256"]
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        try:
            with open(target, "wb") as f:
                for chunk in store.open(e["sha256"]):
                    digest.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
                f.flush()
                os.fsync(f.fileno())
        except ServerError as exc:
            if exc.code != "not_found":
                raise
            missing.append(e)
            continue
        if digest.hexdigest() != e["sha256"] or (e["size"] is not None and size != e["size"]):
            fix = ("restore that object from the blob store's own backup (`ml-dash serve fsck` lists every "
                   "damaged segment)" if _is_segment(e) else "upload that file again (or restore the blob)")
            raise MLDashError(f"blob {e['key']} in {url} ({_label(e)}) is damaged: {size} bytes hashing to "
                              f"{digest.hexdigest()}, the metadata says {e['size']} bytes, {e['sha256']}",
                              hint=f"{fix}, then run the backup again")
    if missing:
        raise MLDashError(f"{len(missing)} blob(s) the metadata references are missing from {url}: "
                          + _names(missing), hint="restore them into the blob store, or back up without "
                                                  "--with-blobs (the manifest still lists them)")


def _names(entries: list[dict[str, Any]]) -> str:
    shown = ", ".join(f"{e['key']} ({_label(e)})" for e in entries[:SHOWN_MISSING])
    return shown + (f" and {len(entries) - SHOWN_MISSING} more" if len(entries) > SHOWN_MISSING else "")


def _blob_size(store: Any, sha256: str) -> int | None:
    """The size of a blob in the store, None if it is not there."""
    from ml_dash.server.storage.blobs import FileBlobStore, S3BlobStore

    if isinstance(store, FileBlobStore):
        try:
            return store._path(sha256).stat().st_size
        except FileNotFoundError:
            return None
    if isinstance(store, S3BlobStore):
        try:
            return int(store.client.head_object(Bucket=store.bucket, Key=store._key(sha256))["ContentLength"])
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise MLDashError(f"object store error on s3://{store.bucket}/{store._key(sha256)}: {exc}",
                              hint="check the bucket, its endpoint and credentials") from None
    if not store.exists(sha256):
        return None
    return sum(len(chunk) for chunk in store.open(sha256))


def _sizes(store: Any, shas: Sequence[str]) -> dict[str, int]:
    """The size of each of ``shas`` that is in ``store`` (absent ones are left out)."""
    from ml_dash.server.storage.blobs import S3BlobStore

    if isinstance(store, S3BlobStore) and len(shas) > LIST_ABOVE:
        return _listed_sizes(store, set(shas))
    found = {}
    for sha in dict.fromkeys(shas):
        size = _blob_size(store, sha)
        if size is not None:
            found[sha] = size
    return found


def _listed_sizes(store: Any, wanted: set[str]) -> dict[str, int]:
    """The sizes of ``wanted`` from a listing of an S3 store's prefix (with a delimiter: its own objects,
    not those of the stores within it)."""
    prefix = f"{store.prefix}/" if store.prefix else ""
    found: dict[str, int] = {}
    try:
        pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix,
                                                                        Delimiter="/")
        for page in pages:
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(prefix):]
                if name in wanted:
                    found[name] = int(item["Size"])
    except Exception as exc:
        raise MLDashError(f"object store error listing s3://{store.bucket}/{prefix}: {exc}",
                          hint="check the bucket, its endpoint and credentials") from None
    return found


def _fits(size: int | None, expected: int | None) -> bool:
    """There, with the manifest's size (``None`` there: the source lacked it at backup time, any size)."""
    return size is not None and (expected is None or size == expected)


def _copy_in(store: Any, root: Path, entries: list[dict[str, Any]], say: Say, what: str = "blobs") -> None:
    """The backup's copies (``root/ab/cd/<sha256>``) into the target store (through its stage/commit,
    sha256 checked)."""
    if not entries and what != "blobs":  # no segments: nothing to say
        return
    there = _sizes(store, [e["sha256"] for e in entries])
    copied = present = 0
    for e in entries:
        path = root / e["sha256"][:2] / e["sha256"][2:4] / e["sha256"]
        if not path.is_file() or _fits(there.get(e["sha256"]), e["size"]):
            present += path.is_file()
            continue  # absent from the backup: the check below reports it
        staged = store.stage(1 << 62)
        try:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    staged.write(chunk)
            digest = staged.finish()
        except BaseException:
            staged.discard()
            raise
        if digest != e["sha256"]:
            staged.discard()
            raise MLDashError(f"{path} is damaged: its sha256 is {digest}, the manifest says {e['sha256']}",
                              hint="take a new backup with --with-blobs; the metadata is restored already")
        store.commit(staged, e["sha256"])
        copied += 1
    say(f"copied {copied} {what} into the target blob store ({present} were there already)")


def verify_blobs(store: Any, url: str, src: Path, entries: list[dict[str, Any]], say: Say = _say, *,
                 segments: Any = None) -> None:
    """Every manifest entry must be in its store with its size: a file's blob in ``store``, a segment
    (sealed metric chunk, archived log lines) in ``segments`` (default: ``store.within("segments")``,
    where a server opened on ``url`` reads them). Else list the others and fail (deleting nothing)."""
    files, sealed = _split(entries)
    if segments is None and sealed:
        segments = store.within(SEGMENTS)
    bad = []
    for part, where in ((files, store), (sealed, segments)):
        sizes = _sizes(where, [e["sha256"] for e in part]) if part else {}
        for e in part:
            size = sizes.get(e["sha256"])
            if not _fits(size, e["size"]):
                bad.append(e)
                state = "missing" if size is None else f"{size} bytes, expected {e['size']}"
                say(f"blob {e['key']} ({state}): {_label(e)}")
    if bad:
        raise MLDashError(f"{len(bad)} of {len(entries)} blobs of {src / MANIFEST} are missing from {url} (or have "
                          f"the wrong size): {_names(bad)}",
                          hint="copy them from the blob store's own backup (or take a backup with --with-blobs), "
                               f"then check again: ml-dash serve restore {src} --verify-only [server settings]")


# --- restore ---------------------------------------------------------------------------------------------------
def read_backup(src: Path) -> dict[str, Any]:
    """backup.json of a complete backup directory (refused otherwise)."""
    path = src / BACKUP_JSON
    if not src.is_dir():
        raise ConfigError(f"backup {src} does not exist", hint="give the DEST directory of ml-dash serve backup")
    try:
        info = json.loads(path.read_text())
        kind = info["database"]
        needed = SQLITE_FILE if kind == "sqlite" else PG_FILE
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{src} is not a complete backup ({path}: {exc})",
                          hint="give the DEST directory of a finished ml-dash serve backup") from None
    if not (src / needed).is_file() or not (src / MANIFEST).is_file():
        raise ConfigError(f"{src} is not a complete backup ({needed} or {MANIFEST} is missing)",
                          hint="give the DEST directory of a finished ml-dash serve backup")
    if int(info.get("format") or 1) > FORMAT:
        raise ConfigError(f"{src} is a backup of format {info['format']}; this ml-dash knows up to {FORMAT}",
                          hint=f"restore it with ml-dash {info.get('ml_dash')} or newer")
    from ml_dash.server.storage.migrations import MIGRATIONS

    if int(info.get("schema_version") or 0) > len(MIGRATIONS):
        raise ConfigError(f"{src} holds schema version {info['schema_version']}; this ml-dash knows up to "
                          f"{len(MIGRATIONS)}", hint=f"restore it with ml-dash {info.get('ml_dash')} or newer")
    return info


def _check_empty(st: Any) -> None:
    with st.store._tx(write=False) as cur:
        found = {name: int((cur.one(f"SELECT COUNT(*) AS n FROM {name}") or {}).get("n") or 0) for name in OCCUPIED}
    held = ", ".join(f"{n} {name}" for name, n in found.items() if n)
    if held:
        raise MLDashError(f"the target database {_masked(st.db_url)} is not empty ({held})",
                          hint="restore into a new database (or a new --data-dir); a restore never merges or "
                               "overwrites")


def restore(st: Any, src: Path, info: dict[str, Any] | None = None, say: Say = _say) -> None:
    """Restore the backup ``src`` into the empty target ``st`` (a ServerState), then its blobs, then check them."""
    info = info or read_backup(src)
    kind = st.store.dialect.name
    if info["database"] != kind:
        raise ConfigError(f"{src} is a backup of a {info['database']} database; the target "
                          f"{_masked(st.db_url)} is {kind}", hint=f"restore it into a {info['database']} --db "
                                                                  "(the kind of database is kept)")
    entries = _manifest(src)
    _check_empty(st)
    st.store.close()  # the target's own connections: a restore must be alone on the database
    if kind == "sqlite":
        _restore_sqlite(src / SQLITE_FILE, Path(st.store.dialect.path))
        conn = sqlite3.connect(st.store.dialect.path)
    else:
        _restore_postgres(src / PG_FILE, st.db_url, info)
        conn = _pg_connect(st.db_url)
    try:
        counts = _counts(conn)
    finally:
        conn.close()
    expected = info.get("counts", counts)
    if {name: counts.get(name) for name in expected} != expected:  # those the backup has (older ones: fewer)
        raise MLDashError(f"the restored database {_masked(st.db_url)} does not hold what {src / BACKUP_JSON} "
                          f"counts: {counts} instead of {expected}",
                          hint="the backup is damaged; restore another one into a new database (the restored "
                               "data is left in place for inspection)")
    say(f"restored {_masked(st.db_url)}: {counts['namespaces']} namespaces, {counts['experiments']} experiments, "
        f"{counts['metric_points']} metric points, {_log_lines(counts)} log lines, {counts['files']} files")
    segments = _segment_store(st)
    if (src / BLOB_DIR).is_dir():
        files, sealed = _split(entries)
        _copy_in(st.blobs, src / BLOB_DIR, files, say)
        _copy_in(segments, src / BLOB_DIR / SEGMENTS, sealed, say, "segments")
    verify_blobs(st.blobs, st.blobs_url, src, entries, say, segments=segments)
    print(f"restored {src} into {_masked(st.db_url)} and {st.blobs_url}: {_counted(entries)} checked")


@contextlib.contextmanager
def _alone(path: Path) -> Iterator[None]:
    """Exclusive use of a SQLite file: leaving WAL mode fails while any other connection has it open."""
    conn = sqlite3.connect(path, timeout=2, isolation_level=None)
    try:
        try:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            raise MLDashError(f"the target database {path} is in use ({exc})",
                              hint="stop the ml-dash server (or anything else) that has it open, then restore "
                                   "again") from None
        yield
    finally:
        conn.close()


def _restore_sqlite(backup_file: Path, target: Path) -> None:
    part = target.with_name(f".{target.name}.restoring")
    shutil.copyfile(backup_file, part)
    try:
        check = sqlite3.connect(part)
        try:
            ok = check.execute("PRAGMA quick_check").fetchone()
        finally:
            check.close()
        if not ok or ok[0] != "ok":
            raise MLDashError(f"{backup_file} is damaged (quick_check: {ok[0] if ok else '?'})",
                              hint="restore another backup")
        _fsync(part)
        with _alone(target):
            for suffix in ("-wal", "-shm", "-journal"):  # the empty database's: never to be applied to the copy
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            os.replace(part, target)
        _fsync(target.parent)
    finally:
        part.unlink(missing_ok=True)


def _ml_dash_tables() -> list[str]:
    from ml_dash.server.storage.migrations import MIGRATIONS

    text = "\n".join(s for statements in MIGRATIONS for s in statements)
    return ["schema_version", *dict.fromkeys(TABLE.findall(text))]


def _restore_postgres(dump: Path, url: str, info: dict[str, Any]) -> None:
    pg = _Pg.of(url)
    conn = _pg_connect(url)
    try:
        deadline = time.monotonic() + 5  # the sessions of our own store end a moment after it closed them
        while (others := _scalar(conn, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                                       "AND pid <> pg_backend_pid()")) and time.monotonic() < deadline:
            time.sleep(0.1)
        if others:
            raise MLDashError(f"the target database {_masked(url)} has {others} other connection(s)",
                              hint="stop the ml-dash servers (and other clients) using it, then restore again")
        major = max(conn.info.server_version // 10000, int(info.get("pg_dump") or 0))
        tool = find_pg_tool("pg_restore", major)
        # The empty tables the target's first opening created (checked empty): the dump brings its own.
        with conn.transaction():
            conn.execute("DROP TABLE IF EXISTS " + ", ".join(_ml_dash_tables()) + " CASCADE")
    finally:
        conn.close()
    pg.run([str(tool), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", "--no-password",
            f"--dbname={pg.conninfo}", str(dump)], "pg_restore",
           "the target database is left without ml-dash tables (a server started on it begins empty); fix the "
           "cause and restore again")
