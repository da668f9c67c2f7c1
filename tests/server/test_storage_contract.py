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

    assert store.migrate() == len(MIGRATIONS) == 2
    assert store.migrate() == 2


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
    metric, start, inserted = store.append_points(exp, "loss", [{"v": i} for i in range(10)], 0, "d", ["t"], None)
    assert (start, inserted, metric["total"]) == (0, 10, 10)
    metric, start, inserted = store.append_points(exp, "loss", [{"v": i} for i in range(5, 15)], 5, None, None, None)
    assert (start, inserted, metric["total"]) == (5, 5, 15)  # 5..9 were there already
    metric, start, inserted = store.append_points(exp, "loss", [{"v": 15}], None, None, None, None)
    assert (start, inserted, metric["total"]) == (15, 1, 16)  # 0.5.8 style: no position, at the end
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
    metric, start, inserted = store.append_points(3, "m", [{"v": 3}], 3, None, None, None)
    assert (metric["total"], inserted) == (4, 1)
    store.close()


def test_positioned_log_appends_never_duplicate(store: SqlMetadataStore) -> None:
    exp = experiment(store)
    lines = [(i, "t", "info", f"m{i}", None) for i in range(3)]
    assert store.append_logs(exp, lines) == (3, 0, 2)
    assert store.append_logs(exp, lines + [(3, "t", "warn", "m3", {"k": 1})]) == (1, 0, 3)
    assert store.append_logs(exp, [(None, "t", "info", "m4", None)]) == (1, 4, 4)
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
