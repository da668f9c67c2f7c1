"""`ml-dash serve backup` / `ml-dash serve restore`: real servers, real databases, real blob stores.

The backup runs as a process beside a live server that keeps appending; the restored data is read
back through a server started on it and compared with what the source server answers. Sealed
metric chunks (objects in the blob store's segments/) are backed up, restored and checked too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.backends import S3_BUCKET, fresh_postgres_db, postgres_server, s3_server  # noqa: F401
from tests.helpers.cli import ML_DASH, run_cli
from tests.helpers.server import live_server
from tests.server.conftest import Api, make_state

LIVE = "live/loss"  # the metric appended to while the backup runs
FILES = {"weights.bin": os.urandom(300_000), "notes.txt": b"hello backup\n" * 50, "same.txt": b"twice\n"}


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"ML_DASH_CONFIG_DIR": str(tmp_path / "home")})


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command line in this process (no interpreter start-up): for the steps around the backups."""
    from ml_dash import cli

    out, err = io.StringIO(), io.StringIO()
    saved = os.environ.get("ML_DASH_CONFIG_DIR")
    os.environ["ML_DASH_CONFIG_DIR"] = str(tmp_path / "home")
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        if saved is None:
            del os.environ["ML_DASH_CONFIG_DIR"]
        else:
            os.environ["ML_DASH_CONFIG_DIR"] = saved
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def _key(tmp_path: Path, namespace: str, *settings: str) -> str:
    out = _run(tmp_path, "serve", "token", "create", f"{namespace}-{uuid.uuid4().hex[:6]}", "--namespace",
               namespace, *settings)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _write(c: httpx.Client, project: str = "vision") -> list[str]:
    """Two finished experiments with parameters, logs, metrics and files; returns their ids."""
    ids = []
    for n in range(2):
        r = c.post(f"/projects/{project}/experiments", json={
            "name": f"run-{n}", "description": f"d{n}", "tags": ["a", f"t{n}"], "folder": "/sweeps/1",
            "metadata": {"gpu": "A100"}})
        assert r.status_code == 201, r.text
        exp = r.json()["experiment"]["id"]
        ids.append(exp)
        assert c.post(f"/experiments/{exp}/parameters", json={"data": {"lr": 0.1 * (n + 1), "m.depth": 18}}).is_success
        logs = [{"timestamp": f"2026-01-01T00:00:0{i}Z", "level": "INFO", "message": f"m{i}", "metadata": {"i": i}}
                for i in range(5)]
        assert c.post(f"/experiments/{exp}/logs", json={"logs": logs}).is_success
        points = [{"step": i, "value": i / 7, "acc": 1 - 1 / (i + 1)} for i in range(1500)]
        assert c.post(f"/experiments/{exp}/metrics/train/loss/append-batch", json={"dataPoints": points}).is_success
        for name, content in FILES.items():
            r = c.post(f"/experiments/{exp}/files", data={"prefix": "/models", "checksum": _sha(content)},
                       files={"file": (name, content, "application/octet-stream")})
            assert r.status_code == 201, r.text
        assert c.patch(f"/experiments/{exp}/status", json={"status": "COMPLETED"}).is_success
    return ids


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _read(c: httpx.Client, project: str = "vision") -> dict[str, Any]:
    """Everything the API answers about a project's experiments (file contents as sha256)."""
    out: dict[str, Any] = {"projects": c.get("/ui/projects").json(),
                           "experiments": c.get(f"/ui/projects/{project}/experiments?limit=100").json()}
    for exp in sorted(e["id"] for e in out["experiments"]["items"]):
        got: dict[str, Any] = {}
        for what in ("/ui/experiments/{}", "/experiments/{}/parameters", "/experiments/{}/logs?limit=1000",
                     "/experiments/{}/metrics", "/experiments/{}/files"):
            r = c.get(what.format(exp))
            assert r.status_code == 200, r.text
            got[what] = r.json()
        for m in got["/experiments/{}/metrics"]["metrics"]:
            got[m["name"]] = c.get(f"/experiments/{exp}/metrics/{m['name']}/data?limit=100000").json()
        for f in got["/experiments/{}/files"]["files"]:
            r = c.get(f"/experiments/{exp}/files/{f['id']}/download")
            assert r.status_code == 200, r.text
            got[f["path"] + f["filename"]] = _sha(r.content)
        out[exp] = got
    return out


class Appender:
    """Appends one point at a time to one metric until stopped: point i is ``{"i": i}``."""

    def __init__(self, c: httpx.Client, experiment: str) -> None:
        self.c, self.url = c, f"/experiments/{experiment}/metrics/{LIVE}/append-batch"
        self.sent = self.acked = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.sent += 1
                r = self.c.post(self.url, json={"dataPoints": [{"i": self.sent - 1}]})
                assert r.status_code == 200, r.text
                self.acked += 1
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + 30
        while self.acked < n and self.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.acked >= n, self.error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert self.error is None, self.error


@contextmanager
def _appending(c: httpx.Client) -> Iterator[Appender]:
    exp = c.post("/projects/live/experiments", json={"name": "appending"}).json()["experiment"]["id"]
    a = Appender(c, exp)
    try:
        yield a
    finally:
        a.stop()


def _live_points(c: httpx.Client) -> list[Any]:
    exp = c.get("/ui/projects/live/experiments").json()["items"][0]["id"]
    data = c.get(f"/experiments/{exp}/metrics/{LIVE}/data?limit=100000").json()["data"]
    assert [int(p["index"]) for p in data] == list(range(len(data)))  # no gap, nothing twice
    return [p["data"] for p in data]


def _backup_while_appending(tmp_path: Path, c: httpx.Client, dest: Path, *settings: str) -> tuple[int, int, int]:
    """``(acked before, acked after, sent at the end)`` around a backup run while points are appended."""
    with _appending(c) as appender:
        appender.wait_for(20)
        before = appender.acked
        out = _cli(tmp_path, "serve", "backup", str(dest), *settings)
        after, sent = appender.acked, appender.sent
    assert out.returncode == 0, out.stderr
    assert after > before, "no point was appended while the backup ran"
    return before, after, sent


def _check_prefix(points: list[Any], before: int, sent: int) -> int:
    assert before <= len(points) <= sent
    assert points == [{"i": i} for i in range(len(points))]  # exactly the first N points sent
    return len(points)


def _check_backup_dir(dest: Path, kind: str, live: int, blobs: bool) -> dict[str, Any]:
    info = json.loads((dest / "backup.json").read_text())
    assert dest.stat().st_mode & 0o777 == 0o700  # API key hashes and the server's secret: the owner's only
    assert (info["database"], info["blobs"]["copied"]) == (kind, blobs)
    assert info["schema_version"] >= 7 and info["ml_dash"]
    c = info["counts"]
    assert (c["experiments"], c["log_lines"], c["files"]) == (3, 10, 6)
    assert c["metric_points"] == 2 * 1500 + live  # from the same snapshot as the metric itself
    manifest = [json.loads(line) for line in (dest / "blobs.jsonl").read_text().splitlines()]
    assert sorted((e["sha256"], e["size"]) for e in manifest) == sorted((_sha(v), len(v)) for v in FILES.values())
    assert all(e["key"].endswith(e["sha256"]) and e["file"].startswith("alice/vision/run-") for e in manifest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["backup.json", "blobs.jsonl", "metadata.sqlite3" if kind == "sqlite" else "metadata.pgdump"]
        + (["blobs"] if blobs else []))
    return info


# --- SQLite + blob directory ------------------------------------------------------------------------------------
def test_sqlite_backup_while_writing_restores_what_the_server_answered(tmp_path: Path) -> None:
    dest, with_blobs = tmp_path / "backup", tmp_path / "backup-with-blobs"
    with live_server(tmp_path / "src") as server:
        key = _key(tmp_path, "alice", "--data-dir", str(server.data_dir))
        _key(tmp_path, "bob", "--data-dir", str(server.data_dir))
        with _client(server.url, key) as c:
            _write(c)
            before, _, sent = _backup_while_appending(tmp_path, c, dest, "--data-dir", str(server.data_dir))
            source, source_live = _read(c), _live_points(c)
            # A second backup, with the blobs' bytes, of the now quiet server.
            out = _run(tmp_path, "serve", "backup", str(with_blobs), "--with-blobs", "--data-dir",
                       str(server.data_dir))
            assert out.returncode == 0, out.stderr
    assert source_live == [{"i": i} for i in range(len(source_live))]
    info = json.loads((dest / "backup.json").read_text())
    n = info["counts"]["metric_points"] - 3000
    _check_backup_dir(dest, "sqlite", n, blobs=False)
    _check_backup_dir(with_blobs, "sqlite", len(source_live), blobs=True)
    assert not list(tmp_path.glob(".backup*partial*"))

    # Without --with-blobs into an empty blob store: the metadata is restored, the check fails and names
    # the blobs; once the blob directory is copied back (its own backup), --verify-only passes.
    target = tmp_path / "restored"
    out = _cli(tmp_path, "serve", "restore", str(dest), "--data-dir", str(target))
    assert out.returncode == 1, out.stderr
    assert "3 of 3 blobs" in out.stderr and _sha(FILES["weights.bin"]) in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "Hint: copy them" in out.stderr
    shutil.copytree(tmp_path / "src" / "blobs", target / "blobs", dirs_exist_ok=True)
    out = _run(tmp_path, "serve", "restore", str(dest), "--verify-only", "--data-dir", str(target))
    assert out.returncode == 0, out.stderr

    with live_server(target) as restored, _client(restored.url, key) as c:
        assert _read(c) == source
        assert _check_prefix(_live_points(c), before, sent) == n  # a prefix: no gap, nothing doubled

    # --with-blobs onto a fresh data dir with an empty blob directory: every file downloads identical.
    fresh = tmp_path / "fresh"
    out = _cli(tmp_path, "serve", "restore", str(with_blobs), "--data-dir", str(fresh))
    assert out.returncode == 0, out.stderr
    assert "copied 3 blobs" in out.stderr
    with live_server(fresh) as restored, _client(restored.url, key) as c:
        assert _read(c) == source  # file downloads compared by sha256
        assert _live_points(c) == source_live


# --- PostgreSQL + S3 --------------------------------------------------------------------------------------------
def test_postgres_s3_backup_while_writing_restores_into_a_new_database(
        tmp_path: Path, postgres_server: str, s3_server: str) -> None:  # noqa: F811
    prefix = uuid.uuid4().hex[:8]
    blobs = f"s3://{S3_BUCKET}/{prefix}?endpoint_url={s3_server}"
    source_db, target_db = fresh_postgres_db(postgres_server), fresh_postgres_db(postgres_server)
    src = ("--db", source_db, "--blobs", blobs)
    dest = tmp_path / "backup"
    with live_server(tmp_path / "src", *src) as server:
        key = _key(tmp_path, "alice", *src)
        with _client(server.url, key) as c:
            _write(c)
            before, _, sent = _backup_while_appending(tmp_path, c, dest, *src, "--data-dir", str(tmp_path / "b"))
            source = _read(c)
    info = json.loads((dest / "backup.json").read_text())
    n = info["counts"]["metric_points"] - 3000
    _check_backup_dir(dest, "postgresql", n, blobs=False)

    target = ("--db", target_db, "--blobs", blobs)  # the same bucket: S3 keeps the blobs (its own backup)
    out = _cli(tmp_path, "serve", "restore", str(dest), *target, "--data-dir", str(tmp_path / "t"))
    assert out.returncode == 0, out.stderr
    assert "3 blobs checked" in out.stdout
    with live_server(tmp_path / "restored", *target) as restored, _client(restored.url, key) as c:
        assert _read(c) == source
        assert _check_prefix(_live_points(c), before, sent) == n

    # --with-blobs from S3, restored into a third database and another prefix: copied through the blob store.
    with_blobs, prefix2 = tmp_path / "with-blobs", uuid.uuid4().hex[:8]
    assert _run(tmp_path, "serve", "backup", str(with_blobs), "--with-blobs", *src, "--data-dir",
                str(tmp_path / "b")).returncode == 0
    other = ("--db", fresh_postgres_db(postgres_server), "--blobs", f"s3://{S3_BUCKET}/{prefix2}?endpoint_url={s3_server}")
    out = _run(tmp_path, "serve", "restore", str(with_blobs), *other, "--data-dir", str(tmp_path / "t2"))
    assert out.returncode == 0 and "copied 3 blobs" in out.stderr, out.stderr
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    listed = s3.list_objects_v2(Bucket=S3_BUCKET, Prefix=f"{prefix2}/")["Contents"]
    assert sorted((o["Key"], o["Size"]) for o in listed) == sorted((f"{prefix2}/{_sha(v)}", len(v))
                                                                    for v in FILES.values())


    # A blob gone from the bucket: the manifest check names it, exit 1.
    gone = _sha(FILES["notes.txt"])
    s3.delete_object(Bucket=S3_BUCKET, Key=f"{prefix}/{gone}")
    out = _run(tmp_path, "serve", "restore", str(dest), "--verify-only", *target, "--data-dir", str(tmp_path / "t"))
    assert out.returncode == 1, out.stderr
    assert f"{prefix}/{gone}" in out.stderr and "1 of 3 blobs" in out.stderr


def test_tools_get_the_password_through_the_environment_never_in_messages(
        tmp_path: Path, postgres_server: str) -> None:  # noqa: F811
    from ml_dash.errors import MLDashError
    from ml_dash.server.backup import _Pg, find_pg_tool

    url = postgres_server.replace("postgres:@", "postgres:s3cret-pw@").replace("/postgres?", "/no_such_db?")
    pg = _Pg.of(url)
    assert "s3cret-pw" not in pg.conninfo and pg.env["PGPASSWORD"] == "s3cret-pw"
    assert "s3cret-pw" not in pg.shown and "***" in pg.shown
    tool = find_pg_tool("pg_dump", 16)
    with pytest.raises(MLDashError) as caught:
        pg.run([str(tool), "--format=custom", f"--file={tmp_path / 'x'}", f"--dbname={pg.conninfo}"], "pg_dump",
               "hint")
    assert "no_such_db" in str(caught.value) and "s3cret-pw" not in str(caught.value)


def test_missing_pg_dump_and_another_kind_of_database_are_one_line_errors(tmp_path: Path, postgres_server: str,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from ml_dash import cli
    from ml_dash.server import backup

    monkeypatch.setenv("ML_DASH_CONFIG_DIR", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(backup, "_pg_candidates", lambda tool: [])  # nor beside pgserver
    dest = tmp_path / "b"
    code = cli.main(["serve", "backup", str(dest), "--db", fresh_postgres_db(postgres_server), "--data-dir",
                     str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Error: pg_dump was not found" in err and "Hint: install the PostgreSQL client tools" in err
    assert "postgresql-client-16" in err and "Traceback" not in err
    assert not dest.exists() and not list(tmp_path.glob(".b.partial-*"))

    # A backup of SQLite is not restored into PostgreSQL (nor the other way round).
    sqlite_backup = tmp_path / "sqlite-backup"
    assert cli.main(["serve", "backup", str(sqlite_backup), "--data-dir", str(tmp_path / "s")]) == 0
    code = cli.main(["serve", "restore", str(sqlite_backup), "--db", fresh_postgres_db(postgres_server),
                     "--data-dir", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and "is a backup of a sqlite database; the target postgresql://" in err, err


# --- refusals ---------------------------------------------------------------------------------------------------
def test_refusals_name_what_and_where(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path / "src"))
    _key(tmp_path, "alice", *data)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("keep")
    out = _cli(tmp_path, "serve", "backup", str(full), *data)
    assert out.returncode == 2 and f"Error: backup destination {full} is a directory that is not empty" in out.stderr
    assert "Hint:" in out.stderr and "Traceback" not in out.stderr
    assert [p.name for p in full.iterdir()] == ["keep.txt"] and not list(tmp_path.glob(".full.partial-*"))

    out = _run(tmp_path, "serve", "restore", str(tmp_path / "src"), "--data-dir", str(tmp_path / "t"))
    assert out.returncode == 2 and "is not a complete backup" in out.stderr, out.stderr
    out = _run(tmp_path, "serve", "backup", "--data-dir", str(tmp_path / "src"))
    assert out.returncode == 2 and "needs a DEST directory" in out.stderr, out.stderr

    good = tmp_path / "good"
    assert _run(tmp_path, "serve", "backup", str(good), *data).returncode == 0
    # Into a database that has data: refused, and it is left as it was.
    out = _run(tmp_path, "serve", "restore", str(good), *data)
    assert out.returncode == 1 and "is not empty (1 namespaces, 1 api_keys)" in out.stderr, out.stderr
    # Into an empty database a server is running on: refused too.
    with live_server(tmp_path / "busy") as server:
        out = _run(tmp_path, "serve", "restore", str(good), "--data-dir", str(server.data_dir))
        assert out.returncode == 1 and "is in use" in out.stderr and "stop the ml-dash server" in out.stderr
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


# --- kill -9 ----------------------------------------------------------------------------------------------------
def test_a_killed_backup_leaves_no_dest_and_the_next_one_cleans_up(tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    big = {f"big-{i}.bin": os.urandom(3_000_000) for i in range(3)}
    with live_server(tmp_path / "src") as server:
        key = _key(tmp_path, "alice", "--data-dir", str(server.data_dir))
        with _client(server.url, key) as c:
            exp = c.post("/projects/vision/experiments", json={"name": "big"}).json()["experiment"]["id"]
            for name, content in big.items():
                assert c.post(f"/experiments/{exp}/files", files={"file": (name, content)}).status_code == 201
            assert c.patch(f"/experiments/{exp}/status", json={"status": "COMPLETED"}).is_success
            before = _read(c)
            # The last blob the backup copies (in sha256 order) becomes a FIFO nobody writes: the copy
            # blocks there, mid-way, until the kill (deterministic, however fast the machine).
            last = max(_sha(v) for v in big.values())
            blob = server.data_dir / "blobs" / last[:2] / last[2:4] / last
            os.replace(blob, blob.with_suffix(".real"))
            os.mkfifo(blob)
            env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
            proc = subprocess.Popen([ML_DASH, "serve", "backup", str(dest), "--with-blobs", "--data-dir",
                                     str(server.data_dir)], env={**env, "ML_DASH_CONFIG_DIR": str(tmp_path / "home")},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 60
                while not list(tmp_path.glob(f".backup.partial-*/blobs/*/*/{last}")) and proc.poll() is None:
                    assert time.monotonic() < deadline, "the backup never reached the blob copy"
                    time.sleep(0.02)
                proc.send_signal(signal.SIGKILL)
            finally:
                proc.wait()
                blob.unlink()
                os.replace(blob.with_suffix(".real"), blob)
            (partial,) = tmp_path.glob(".backup.partial-*")
            copied = [p.name for p in (partial / "blobs").rglob("*") if p.is_file()]
            assert not dest.exists() and not (partial / "backup.json").exists() and len(copied) == 3
            assert _read(c) == before  # the source server is untouched
            out = _run(tmp_path, "serve", "backup", str(dest), "--with-blobs", "--data-dir", str(server.data_dir))
            assert out.returncode == 0, out.stderr
            assert f"removed {partial}" in out.stderr
    assert not partial.exists() and (dest / "backup.json").is_file()
    assert sorted(p.name for p in (dest / "blobs").rglob("*") if p.is_file()) == sorted(map(_sha, big.values()))


# --- segments: sealed metric chunks, archived log lines (storage/tiers.py) ----------------------------------
# No background pass (the tests seal and archive when they mean to); the newest 50 log lines stay.
TIERED = {"chunk_size": 100, "interval": 0, "log_keep_lines": 50, "log_segment_lines": 40,
          "log_archive_age": 0}


def _stores_like(backend: dict[str, str], root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """A fresh, empty store pair of the kind of ``backend`` (a new database; a new directory or prefix)."""
    root.mkdir(parents=True, exist_ok=True)
    if backend["db"].startswith("sqlite"):
        return {"db": f"sqlite:///{root / 'meta.db'}", "blobs": f"file://{root / 'blobs'}"}
    endpoint = backend["blobs"].partition("?")[2]
    return {"db": fresh_postgres_db(request.getfixturevalue("postgres_server")),
            "blobs": f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:8]}?{endpoint}"}


def _settings(stores: dict[str, str], data_dir: Path) -> tuple[str, ...]:
    return ("--db", stores["db"], "--blobs", stores["blobs"], "--data-dir", str(data_dir))


def _open(stores: dict[str, str], data_dir: Path) -> Api:
    """The restored stores through the API (the source's API keys came with the database)."""
    from ml_dash.config.models import ServeConfig
    from ml_dash.server.state import ServerState

    return Api(ServerState(ServeConfig(data_dir=data_dir, log_requests=False, **stores)))


def _write_sealed(api: Api) -> None:
    """Two experiments with 1,000 points in two metrics each (batches of 1..37 points, so a sealed chunk
    ends where a row ends), 200 log lines and a file, then everything due sealed and archived; the
    unsealed tails and the newest log lines stay in the database."""
    for n in range(2):
        exp = api.experiment(name=f"sealed-{n}")
        lines = [{"level": "info", "message": f"line {i} of {n}", "metadata": {"i": i},
                  "timestamp": f"2026-01-01T00:00:{i % 60:02d}Z"} for i in range(200)]
        for first in range(0, 200, 25):
            r = api.alice.post(f"/experiments/{exp}/logs", json={"logs": lines[first:first + 25]})
            assert r.status_code == 201, r.text
        for metric in ("train/loss", "eval/acc"):
            step, size = 0, 1
            while step < 1000:
                count = min(size, 1000 - step)
                points = [{"step": step + i, "value": (step + i) / 7 + n, "tag": f"s{step + i}"}
                          for i in range(count)]
                r = api.alice.post(f"/experiments/{exp}/metrics/{metric}/append-batch",
                                   json={"dataPoints": points})
                assert r.status_code == 200, r.text
                step, size = step + count, size % 37 + 1
        r = api.alice.post(f"/experiments/{exp}/files", data={"prefix": "/models"},
                           files={"file": ("notes.txt", FILES["notes.txt"], "text/plain")})
        assert r.status_code == 201, r.text
        # Finished: a running experiment's duration grows between the two reads compared.
        assert api.alice.patch(f"/experiments/{exp}/status", json={"status": "COMPLETED"}).is_success
    assert api.state.tiering.seal_due() > 0
    assert api.state.tiering.archive_due() == 2 * ((200 - 50) // 40)  # whole segments of 40 lines
    sizes = api.state.store.tier_sizes()
    assert sizes["sealed_rows"] > 0 and sizes["database_rows"] > 0, sizes


def _segment_objects(st: Any) -> dict[str, tuple[int, str]]:
    """Every object the database points to in the segment store: its size and its label."""
    store = st.store.segments.store
    labels = {d: f"sealed chunk: metric {m} points {a}..{b}" for m, a, b, d in st.store.segment_ranges()}
    labels |= {d: f"archived log lines: experiment {e} lines {a}..{b}"
               for e, a, b, d in st.store.log_segment_ranges()}
    return {d: (len(b"".join(store.open(d))), label) for d, label in labels.items()}


def _segment_entries(dest: Path) -> list[dict[str, Any]]:
    manifest = [json.loads(line) for line in (dest / "blobs.jsonl").read_text().splitlines()]
    return [e for e in manifest if e.get("store") == "segments"]


def _all_points(api: Api) -> dict[str, Any]:
    """Every point of every metric of the sealed experiments, from the data route (whole series), and
    every log line."""
    out = {}
    for item in api.alice.get("/ui/projects/vision/experiments?limit=100").json()["items"]:
        for route in ("/experiments/{}/logs?limit=1000", "/ui/experiments/{}/logs?limit=1000"):
            r = api.alice.get(route.format(item["id"]))
            assert r.status_code == 200 and "line 0 of" in r.text and "line 199 of" in r.text, r.text
            out[item["name"] + route] = r.json()
        for metric in ("train/loss", "eval/acc"):
            r = api.alice.get(f"/experiments/{item['id']}/metrics/{metric}/data",
                              params={"startIndex": 0, "limit": 100_000})
            assert r.status_code == 200, r.text
            points = r.json()["data"]
            assert [int(p["index"]) for p in points] == list(range(1000))
            out[f"{item['name']}:{metric}"] = points
    return out


def test_sealed_chunks_are_backed_up_restored_and_checked(
        tmp_path: Path, backend: dict[str, str], request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_dash.server import backup as backup_module

    source = Api(make_state(tmp_path, backend, tiering=TIERED))
    try:
        _write_sealed(source)
        objects = _segment_objects(source.state)
        sealed = {d: size for d, (size, _) in objects.items()}
        before, points, sizes = _read(source.alice), _all_points(source), source.state.store.tier_sizes()
        s3 = backend["blobs"].startswith("s3://")
        if s3:  # the sizes from one listing of the segment prefix (the restore below HEADs each)
            monkeypatch.setattr(backup_module, "LIST_ABOVE", 0)
        dest = tmp_path / "backup"
        out = _run(tmp_path, "serve", "backup", str(dest), "--with-blobs",
                   *_settings(backend, tmp_path / "data"))
        assert out.returncode == 0, out.stderr
        monkeypatch.undo()
    finally:
        source.close()

    # The manifest: every segment the database points to, once, with its size and a label; files unmarked.
    entries = _segment_entries(dest)
    assert sorted((e["sha256"], e["size"]) for e in entries) == sorted(sealed.items())
    assert all(e["label"].startswith(objects[e["sha256"]][1] + " (alice/vision/sealed-") for e in entries)
    assert {e["label"].split(":")[0] for e in entries} == {"sealed chunk", "archived log lines"}
    prefix = backend["blobs"].split("?")[0].removeprefix(f"s3://{S3_BUCKET}/")
    assert all(e["key"] == (f"{prefix}/segments/{e['sha256']}" if s3 else
                            f"segments/{e['sha256'][:2]}/{e['sha256'][2:4]}/{e['sha256']}") for e in entries)
    manifest = [json.loads(line) for line in (dest / "blobs.jsonl").read_text().splitlines()]
    files = [e for e in manifest if e.get("store") != "segments"]
    assert [(e["sha256"], "store" in e) for e in files] == [(_sha(FILES["notes.txt"]), False)]  # format 1's
    for e in entries:
        copy = dest / "blobs" / "segments" / e["sha256"][:2] / e["sha256"][2:4] / e["sha256"]
        assert _sha(copy.read_bytes()) == e["sha256"]
    info = json.loads((dest / "backup.json").read_text())
    assert (info["format"], info["blobs"]["segments"]) == (2, len(sealed))
    assert info["blobs"]["count"] == len(sealed) + 1
    assert f"{len(sealed) + 1} blobs ({len(sealed)} of them segments)" in out.stdout
    assert info["counts"]["archived_log_lines"] == 2 * 120 and "400 log lines" in out.stdout

    # Into a fresh database and a fresh blob store: every point reads back as it was, and fsck is clean.
    target = _stores_like(backend, tmp_path / "t1", request)
    out = _run(tmp_path, "serve", "restore", str(dest), *_settings(target, tmp_path / "t1"))
    assert out.returncode == 0, out.stderr
    assert f"copied {len(sealed)} segments" in out.stderr and "copied 1 blobs" in out.stderr
    restored = _open(target, tmp_path / "t1")
    try:
        assert restored.state.store.tier_sizes() == sizes and _segment_objects(restored.state) == objects
        assert all(restored.state.store.segments.store.exists(d) for d in sealed)
        assert not any(restored.state.blobs.exists(d) for d in sealed)  # not among the files' blobs
        assert _all_points(restored) == points and _read(restored.alice) == before
        report = restored.state.tiering.fsck()
        assert report.clean and report.segments == sizes["sealed_rows"] + 2 * 3, list(report.lines())

        # --verify-only checks the segment store: a segment gone from it fails, named, even with the same
        # bytes among the files' blobs.
        gone = entries[0]
        data = b"".join(restored.state.store.segments.store.open(gone["sha256"]))
        restored.state.store.segments.store.delete(gone["sha256"])
        from ml_dash.server.storage.tiers import put_bytes

        put_bytes(restored.state.blobs, data)
        verify = ("serve", "restore", str(dest), "--verify-only", *_settings(target, tmp_path / "t1"))
        out = _run(tmp_path, *verify)
        assert out.returncode == 1, out.stderr
        assert f"1 of {len(sealed) + 1} blobs" in out.stderr and gone["key"] in out.stderr, out.stderr
        assert f"blob {gone['key']} (missing): {gone['label']}" in out.stderr
        assert "Hint: copy them" in out.stderr
        put_bytes(restored.state.store.segments.store, data)
        out = _run(tmp_path, *verify)
        assert out.returncode == 0, out.stderr
        assert f"all {len(sealed) + 1} blobs ({len(sealed)} of them segments)" in out.stdout
    finally:
        restored.close()

    # A backup that lacks one segment's copy: the restore fails naming it (the metadata is restored).
    lacking = tmp_path / "lacking"
    shutil.copytree(dest, lacking)
    last = entries[-1]
    (lacking / "blobs" / "segments" / last["sha256"][:2] / last["sha256"][2:4] / last["sha256"]).unlink()
    other = _stores_like(backend, tmp_path / "t2", request)
    out = _run(tmp_path, "serve", "restore", str(lacking), *_settings(other, tmp_path / "t2"))
    assert out.returncode == 1, out.stderr
    assert f"copied {len(sealed) - 1} segments" in out.stderr
    assert f"1 of {len(sealed) + 1} blobs" in out.stderr and f"{last['key']} ({last['label']})" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_sealer_running_during_the_backup_loses_nothing(tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    """Points appended and sealed while the backup runs: the restored series is a prefix of what was sent,
    every sealed chunk of the snapshot is there, and nothing else (no orphan)."""
    backend = {"db": f"sqlite:///{tmp_path / 'meta.db'}", "blobs": f"file://{tmp_path / 'blobs'}"}
    source = Api(make_state(tmp_path, backend, tiering=TIERED))
    stop, sealed = threading.Event(), [0]

    def seal() -> None:  # what the server's Sealer does, without its pause
        while not stop.is_set():
            sealed[0] += source.state.tiering.seal_due()
            time.sleep(0.005)

    sealer = threading.Thread(target=seal, daemon=True)
    dest = tmp_path / "backup"
    try:
        sealer.start()
        with _appending(source.alice) as appender:
            appender.wait_for(250)
            before = appender.acked
            out = _run(tmp_path, "serve", "backup", str(dest), "--with-blobs",
                       *_settings(backend, tmp_path / "data"))
            sent = appender.sent
        assert out.returncode == 0, out.stderr
    finally:
        stop.set()
        sealer.join(30)
        source.close()
    assert sealed[0] > 0 and _segment_entries(dest)
    target = _stores_like(backend, tmp_path / "t", request)
    out = _run(tmp_path, "serve", "restore", str(dest), *_settings(target, tmp_path / "t"))
    assert out.returncode == 0, out.stderr
    restored = _open(target, tmp_path / "t")
    try:
        n = _check_prefix(_live_points(restored.alice), before, sent)
        assert n == json.loads((dest / "backup.json").read_text())["counts"]["metric_points"]
        assert restored.state.store.tier_sizes()["sealed_rows"] == len(_segment_entries(dest))
        report = restored.state.tiering.fsck()
        assert report.clean, list(report.lines())
    finally:
        restored.close()


def test_a_backup_of_format_1_restores_and_a_newer_format_is_refused(tmp_path: Path) -> None:
    """What a backup written before segments looks like (format 1: no marker on the manifest's entries,
    no archived_log_lines count) restores as before; a format this ml-dash does not know is refused."""
    source = Api(make_state(tmp_path))
    try:
        exp = source.experiment()
        r = source.alice.post(f"/experiments/{exp}/files", files={"file": ("notes.txt", FILES["notes.txt"])})
        assert r.status_code == 201, r.text
    finally:
        source.close()
    stores = {"db": f"sqlite:///{tmp_path / 'meta.db'}", "blobs": f"file://{tmp_path / 'blobs'}"}
    old = tmp_path / "old"
    out = _run(tmp_path, "serve", "backup", str(old), "--with-blobs", *_settings(stores, tmp_path / "data"))
    assert out.returncode == 0, out.stderr
    info = json.loads((old / "backup.json").read_text())
    assert info["counts"].pop("archived_log_lines") == 0 and info["blobs"].pop("segments") == 0
    (old / "backup.json").write_text(json.dumps({**info, "format": 1}))
    assert [set(json.loads(line)) for line in (old / "blobs.jsonl").read_text().splitlines()] == [
        {"key", "sha256", "size", "file"}]
    out = _run(tmp_path, "serve", "restore", str(old), "--data-dir", str(tmp_path / "t"))
    assert out.returncode == 0, out.stderr
    assert "copied 1 blobs" in out.stderr and "1 blobs checked" in out.stdout

    (old / "backup.json").write_text(json.dumps({**info, "format": 99}))
    out = _run(tmp_path, "serve", "restore", str(old), "--data-dir", str(tmp_path / "t2"))
    assert out.returncode == 2, out.stderr
    assert "is a backup of format 99; this ml-dash knows up to 2" in out.stderr
    assert "Hint: restore it with ml-dash" in out.stderr


def test_a_segment_missing_from_the_source_is_listed_and_fails_with_blobs(tmp_path: Path) -> None:
    """Damage (a segment gone from the source's store): a backup without --with-blobs still lists it
    (size unknown, with a warning) and its restore fails naming it; with --with-blobs the backup fails."""
    stores = {"db": f"sqlite:///{tmp_path / 'meta.db'}", "blobs": f"file://{tmp_path / 'blobs'}"}
    source = Api(make_state(tmp_path, stores, tiering=TIERED))
    try:
        exp = source.experiment()
        for first in range(0, 300, 10):
            r = source.alice.post(f"/experiments/{exp}/metrics/loss/append-batch",
                                  json={"dataPoints": [{"value": first + i} for i in range(10)]})
            assert r.status_code == 200, r.text
        assert source.state.tiering.seal_due() == 3
        (metric, a, b, gone), *_ = source.state.store.segment_ranges()
        source.state.store.segments.store.delete(gone)
    finally:
        source.close()
    key = f"segments/{gone[:2]}/{gone[2:4]}/{gone}"
    out = _run(tmp_path, "serve", "backup", str(tmp_path / "b1"), *_settings(stores, tmp_path / "data"))
    assert out.returncode == 0, out.stderr
    assert f"warning: blob {key} is missing from {stores['blobs']} (sealed chunk: metric" in out.stderr
    (entry,) = [e for e in _segment_entries(tmp_path / "b1") if e["sha256"] == gone]
    assert entry["size"] is None
    assert entry["label"] == f"sealed chunk: metric {metric} points {a}..{b} (alice/vision/run-1: loss)"
    out = _run(tmp_path, "serve", "restore", str(tmp_path / "b1"), "--data-dir", str(tmp_path / "t"))
    assert out.returncode == 1 and f"blob {key} (missing): sealed chunk: metric" in out.stderr, out.stderr

    out = _run(tmp_path, "serve", "backup", str(tmp_path / "b2"), "--with-blobs",
               *_settings(stores, tmp_path / "data"))
    assert out.returncode == 1 and not (tmp_path / "b2").exists(), out.stderr
    assert f"missing from {stores['blobs']}: {key} (sealed chunk: metric {metric}" in out.stderr
