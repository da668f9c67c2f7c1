"""One contract for every storage backend: SQLite + files and PostgreSQL + S3 (real servers)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ml_dash.api.errors import ServerError
from ml_dash.server.storage.registry import open_blob_store, open_metadata_store
from ml_dash.server.storage.sql import SqlMetadataStore


@pytest.fixture
def store(backend: dict[str, str]) -> SqlMetadataStore:
    s = open_metadata_store(backend["db"])
    yield s
    s.close()


def experiment(store: SqlMetadataStore, name: str = "e") -> int:
    ns = store.ensure_namespace("alice")
    exp, _ = store.upsert_experiment(ns["id"], "vision", {"name": name, "tags": ["a"]})
    return int(exp["id"])


def test_migrations_are_versioned_and_idempotent(store: SqlMetadataStore) -> None:
    from ml_dash.server.storage.migrations import MIGRATIONS

    assert store.migrate() == len(MIGRATIONS) == 9
    assert store.migrate() == len(MIGRATIONS)


def test_experiment_upsert_creates_project_and_updates_given_fields(store: SqlMetadataStore) -> None:
    ns = store.ensure_namespace("alice")
    first, project = store.upsert_experiment(ns["id"], "vision", {"name": "e", "description": "d", "tags": ["a"]})
    again, same_project = store.upsert_experiment(ns["id"], "vision", {"name": "e", "folder": "/f"})
    assert first["id"] == again["id"] and project["id"] == same_project["id"]
    assert (again["description"], again["folder"], again["tags"]) == ("d", "/f", '["a"]')
    assert store.get_experiment(ns["id"], first["id"])["name"] == "e"
    other = store.ensure_namespace("bob")
    assert store.get_experiment(other["id"], first["id"]) is None  # namespaces never see each other


def test_positioned_metric_appends_never_duplicate(store: SqlMetadataStore) -> None:
    exp = experiment(store)
    metric, done = store.append_points(exp, "loss", [{"v": i} for i in range(10)], 0, "d", ["t"], None)
    assert (done.start, done.created, metric["total"]) == (0, 10, 10)
    metric, done = store.append_points(exp, "loss", [{"v": i} for i in range(5, 15)], 5, None, None, None)
    assert (done.start, done.created, done.duplicates, metric["total"]) == (10, 5, 5, 15)  # 5..9 were there
    metric, done = store.append_points(exp, "loss", [{"v": 15}], None, None, None, None)
    assert (done.start, done.created, metric["total"]) == (15, 1, 16)  # 0.5.8 style: no position, at the end
    rows = store.read_points(metric["id"], 0, 100)
    assert [r[0] for r in rows] == list(range(16)) and [r[1] for r in rows] == [{"v": i} for i in range(16)]
    assert [r[0] for r in store.read_points(metric["id"], 7, 5)] == [7, 8, 9, 10, 11]  # across chunks
    with pytest.raises(ServerError, match="leaves a gap"):
        store.append_points(exp, "loss", [{"v": 0}], 17, None, None, None)


def test_migration_2_moves_version_1_points_into_chunks(tmp_path: Path) -> None:
    import sqlite3

    from ml_dash.server.storage.migrations import MIGRATIONS

    db = tmp_path / "v1.db"  # a database as version 1 left it, points one row each
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in MIGRATIONS[0]:
        conn.execute(statement.format(ID="INTEGER", JSON="TEXT"))
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute("INSERT INTO namespaces VALUES (1, 'a', 'a', 't')")
    conn.execute("INSERT INTO projects VALUES (2, 1, 'p', 'p', NULL, '[]', 't')")
    conn.execute("INSERT INTO experiments (id, project_id, name, tags, bindrs, status, write_protected, log_count, "
                 "params_version, created_at, updated_at) VALUES (3, 2, 'e', '[]', '[]', 'RUNNING', 0, 0, 0, 't', 't')")
    conn.execute("INSERT INTO metrics (id, experiment_id, name, tags, total, created_at, updated_at) "
                 "VALUES (4, 3, 'm', '[]', 3, 't', 't')")
    for i in range(3):
        conn.execute("INSERT INTO metric_points VALUES (4, ?, ?, 't')", (i, f'{{"v": {i}}}'))
    conn.close()
    store = open_metadata_store(f"sqlite:///{db}")
    assert store.migrate() == len(MIGRATIONS)
    assert [r[1] for r in store.read_points(4, 0, 10)] == [{"v": 0}, {"v": 1}, {"v": 2}]
    metric, done = store.append_points(3, "m", [{"v": 3}], 3, None, None, None)
    assert (metric["total"], done.created) == (4, 1)
    store.close()


def test_positioned_log_appends_never_duplicate(store: SqlMetadataStore) -> None:
    exp = experiment(store)
    lines = [(i, "t", "info", f"m{i}", None) for i in range(3)]
    assert store.append_logs(exp, lines) == (3, 0, 0, 2, 3)
    assert store.append_logs(exp, lines + [(3, "t", "warn", "m3", {"k": 1})]) == (1, 3, 0, 3, 4)
    assert store.append_logs(exp, [(None, "t", "info", "m4", None)]) == (1, 0, 4, 4, 5)
    rows, total = store.query_logs(exp, 0, 100)
    assert total == 5 and [r["message"] for r in rows] == ["m0", "m1", "m2", "m3", "m4"]
    assert rows[3]["metadata"] == {"k": 1}
    rows, total = store.query_logs(exp, 0, 10, levels=["warn"])
    assert total == 1


def test_parameters_merge_and_version(store: SqlMetadataStore) -> None:
    exp = experiment(store)
    assert store.merge_params(exp, {"a": 1})["version"] == 1
    merged = store.merge_params(exp, {"b": 2})
    assert (merged["data"], merged["version"]) == ({"a": 1, "b": 2}, 2)
    assert store.merge_params(exp, {"b": 2})["version"] == 2  # nothing new: no new version


def test_files_dedupe_replace_update_delete(store: SqlMetadataStore) -> None:
    exp = experiment(store)
    fields = {"path": "/m", "filename": "w.bin", "content_type": "application/octet-stream", "size_bytes": 3,
              "checksum": "a" * 64}
    first, created = store.add_file(exp, fields)
    again, created_again = store.add_file(exp, fields)
    assert created and not created_again and again["id"] == first["id"]
    replaced, _ = store.add_file(exp, {**fields, "checksum": "b" * 64})
    assert [f["id"] for f in store.list_files(exp)] == [replaced["id"]]
    assert len(store.list_files(exp, include_deleted=True)) == 2
    updated = store.update_file(exp, replaced["id"], {"description": "x", "tags": ["t"]})
    assert (updated["description"], updated["tags"]) == ("x", '["t"]')
    store.update_file(exp, replaced["id"], {"deleted_at": "now"})
    assert store.list_files(exp) == []


def test_api_keys(store: SqlMetadataStore) -> None:
    store.create_api_key("k1", "alice", "h1")
    assert store.namespace_for_key("h1")["slug"] == "alice"
    with pytest.raises(ServerError, match="already exists"):
        store.create_api_key("k1", "bob", "h2")
    assert [k["name"] for k in store.list_api_keys()] == ["k1"]
    assert store.revoke_api_key("k1") and not store.revoke_api_key("k1")
    assert store.namespace_for_key("h1") is None


def test_blob_store_streams_and_keeps_identical_content_once(backend: dict[str, str], tmp_path: Path) -> None:
    blobs = open_blob_store(backend["blobs"], tmp_path / "staging")
    payload = os.urandom(3 * 1024 * 1024 + 7)
    digest = hashlib.sha256(payload).hexdigest()
    for _ in range(2):
        staged = blobs.stage(max_bytes=10 * 1024 * 1024)
        for i in range(0, len(payload), 65536):
            staged.write(payload[i:i + 65536])
        assert staged.finish() == digest
        blobs.commit(staged, digest)
        assert not staged.path.exists()
    assert blobs.exists(digest)
    chunks = list(blobs.open(digest))
    assert b"".join(chunks) == payload and max(len(c) for c in chunks) <= 1024 * 1024
    blobs.delete(digest)
    assert not blobs.exists(digest)


def test_blob_store_refuses_oversize_and_non_hash_keys(backend: dict[str, str], tmp_path: Path) -> None:
    blobs = open_blob_store(backend["blobs"], tmp_path / "staging")
    staged = blobs.stage(max_bytes=10)
    with pytest.raises(ServerError, match="larger than"):
        staged.write(b"x" * 11)
    staged.discard()
    with pytest.raises(ServerError, match="sha256"):
        blobs.exists("../../etc/passwd")


def test_unknown_store_urls_list_the_registered_schemes(tmp_path: Path) -> None:
    from ml_dash.errors import ConfigError

    with pytest.raises(ConfigError, match="registered schemes: sqlite, postgresql"):
        open_metadata_store("mysql://x")
    with pytest.raises(ConfigError, match="registered schemes: file, s3"):
        open_blob_store("gs://bucket", tmp_path)


def test_concurrent_writers_neither_fail_nor_duplicate(store: SqlMetadataStore) -> None:
    """Many clients creating the same namespace/project/experiment/metric and appending at once
    (PostgreSQL does not serialise transactions the way SQLite's BEGIN IMMEDIATE does)."""
    from concurrent.futures import ThreadPoolExecutor

    def worker(n: int) -> None:
        ns = store.ensure_namespace("racers")
        exp, _ = store.upsert_experiment(ns["id"], "race", {"name": "same"})
        for i in range(5):
            store.append_points(exp["id"], "loss", [{"w": n, "i": i}], None, None, None, None)
            store.append_logs(exp["id"], [(None, "t", "info", f"{n}-{i}", None)])
        store.merge_params(exp["id"], {f"p{n}": n})
        store.add_file(exp["id"], {"path": "/", "filename": "same.bin", "content_type": "x", "size_bytes": 1,
                                   "checksum": "c" * 64})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    ns = store.ensure_namespace("racers")
    (exp,) = store.list_experiments(ns["id"])
    metric = store.get_metric(exp["id"], "loss")
    points = store.read_points(metric["id"], 0, 1000)
    assert [p[0] for p in points] == list(range(40)) and int(metric["total"]) == 40
    rows, total = store.query_logs(exp["id"], 0, 1000)
    assert total == 40 and [r["seq"] for r in rows] == list(range(40))
    assert store.get_params(exp["id"])["data"] == {f"p{n}": n for n in range(8)}
    assert len(store.list_files(exp["id"])) == 1


def test_a_position_taken_by_other_content_is_a_conflict_never_a_silent_drop(store: SqlMetadataStore) -> None:
    exp = experiment(store)
    store.append_logs(exp, [(0, "t", "info", "rank0 line", None)])
    with pytest.raises(ServerError, match="log line 0 is already stored with other content") as info:
        store.append_logs(exp, [(0, "t", "info", "rank1 line", None)])
    assert info.value.code == "conflict" and "writerId" in (info.value.hint or "")
    store.append_points(exp, "loss", [{"v": 1.0}, {"v": float("nan")}], 0, None, None, None)
    metric, done = store.append_points(exp, "loss", [{"v": 1.0}, {"v": float("nan")}], 0, None, None, None)
    assert (done.created, done.duplicates, metric["total"]) == (0, 2, 2)  # a retry, NaN included
    with pytest.raises(ServerError, match="point 1 of metric 'loss' is already stored with other values"):
        store.append_points(exp, "loss", [{"v": 1.0}, {"v": 2.0}], 0, None, None, None)


def test_writer_appends_are_applied_once_and_placed_by_the_server(store: SqlMetadataStore) -> None:
    exp = experiment(store)
    a = store.append_logs(exp, [(i, "t", "info", f"a{i}", None) for i in range(3)], writer="rank-0")
    b = store.append_logs(exp, [(i, "t", "info", f"b{i}", None) for i in range(3)], writer="rank-1")
    again = store.append_logs(exp, [(i, "t", "info", f"a{i}", None) for i in range(4)], writer="rank-0")
    assert (a.start, a.end, b.start, b.end) == (0, 2, 3, 5)
    assert (again.created, again.duplicates, again.start, again.total) == (1, 3, 6, 7)
    rows, _ = store.query_logs(exp, 0, 100)
    assert [r["message"] for r in rows] == ["a0", "a1", "a2", "b0", "b1", "b2", "a3"]
    # Sequence numbers out of order and interleaved (ranks sharing one local tree) are still exact.
    for seqs in ([0, 2, 4], [1, 3, 5], [4, 5, 6], [0, 6]):
        store.append_points(exp, "m", [{"s": s} for s in seqs], None, None, None, None, writer="tree-x",
                            writer_seqs=seqs)
    metric = store.get_metric(exp, "m")
    assert sorted(p[1]["s"] for p in store.read_points(metric["id"], 0, 100)) == list(range(7))
    assert store.writer_marks(exp, "tree-x") == {"metric:m": [(0, 6)]}
    assert store.marked_counts(exp) == {"logs": 7, "metric:m": 7}
