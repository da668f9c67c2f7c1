"""Sealing under kill -9, on a live server: `ml-dash serve compact` killed mid-way (twice) while the
server serves reads, then run to the end; nothing lost, nothing doubled, fsck clean, and a
download equals the tree that was uploaded, record for record."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from ml_dash import Experiment
from ml_dash.server.storage.registry import open_metadata_store
from ml_dash.server.storage.sql import SqlMetadataStore
from tests.helpers.backends import backend, postgres_server, s3_server  # noqa: F401 - fixtures
from tests.helpers.cli import ML_DASH, run_cli
from tests.helpers.server import live_server, start_server
from tests.helpers.trees import records_of

CHUNK = 100
SETTINGS = (f"tiering.chunk_size={CHUNK}", "tiering.interval=0")


def _tree(root: Path) -> Path:
    for run in range(2):
        with Experiment(name=f"run-{run}", project="p", local_path=root).run as exp:
            exp.log("started")
            for name, n in (("loss", 30_000), ("acc", 10_000), ("lr", CHUNK // 2)):
                metric = exp.metrics(name)
                for first in range(0, n, 5_000):
                    metric.append_batch([{"value": (i * 7 % 1000) / 997, "step": i, "epoch": i // 1000}
                                         for i in range(first, min(first + 5_000, n))])
    return root


def _sealed(store: SqlMetadataStore) -> int:
    return store.tier_sizes()["sealed_rows"]


def _compact(srv: Path, stores: tuple[str, ...], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([ML_DASH, "serve", "compact", "--data-dir", str(srv), *stores, *SETTINGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_compact_killed_mid_way_then_finished_loses_and_doubles_nothing(tmp_path: Path,
                                                                         backend: dict[str, str]) -> None:  # noqa: F811
    tree = _tree(tmp_path / "tree")
    srv = tmp_path / "srv"
    stores = ("--db", backend["db"], "--blobs", backend["blobs"])
    store = open_metadata_store(backend["db"], 1)
    with live_server(srv, *stores, *SETTINGS) as server, closing(store):
        key = server.token("k", "alice")
        # 50 points a request, as a training loop's batches: rows of 50 points, 2 to a sealed chunk.
        up = run_cli("upload", str(tree), "--remote", server.url, "--api-key", key, "--batch-size", "50",
                     cwd=tmp_path, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        assert _sealed(store) == 0  # the server itself seals nothing here (tiering.interval=0)
        with store._tx(write=False) as cur:
            exp_id = (cur.one("SELECT MIN(id) AS i FROM experiments") or {})["i"]

        for kill_at in (5, 40):  # twice, at different points of the work
            compact = _compact(srv, stores)
            deadline = time.monotonic() + 120
            while _sealed(store) < kill_at:
                assert compact.poll() is None, f"compact ended before it was killed: {compact.communicate()[0]}"
                assert time.monotonic() < deadline
                time.sleep(0.005)
            compact.send_signal(signal.SIGKILL)
            compact.communicate()
            # The server answers meanwhile, from both tiers: every point once, in order.
            r = httpx.get(f"{server.url}/experiments/{exp_id}/metrics/loss/data", params={"limit": 10_000},
                          headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text
            assert [int(p["index"]) for p in r.json()["data"]] == list(range(10_000))
        partly = _sealed(store)
        assert 40 <= partly < 2 * (30_000 + 10_000) // CHUNK - 10  # killed mid-way, not after the end

        done = _compact(srv, stores, "tiering.orphan_grace=0")  # the killed runs' orphans are old enough now
        out, _ = done.communicate(timeout=600)
        assert done.returncode == 0, out
        assert "removed" in out and "sealed" in out, out
        assert _sealed(store) >= 2 * (30_000 + 10_000) // CHUNK - 4  # everything due is sealed ...
        fsck = run_cli("serve", "fsck", "--data-dir", str(srv), *stores, *SETTINGS)
        assert fsck.returncode == 0 and fsck.stdout.rstrip().endswith("clean"), fsck.stdout + fsck.stderr

        down = run_cli("download", str(tmp_path / "down"), "--remote", server.url, "--api-key", key, cwd=tmp_path,
                       timeout=600)
        assert down.returncode == 0, down.stdout + down.stderr
        assert records_of(tmp_path / "down") == records_of(tree)  # ... and reads back record for record
        again = run_cli("upload", str(tree), "--remote", server.url, "--api-key", key, "+profile=ci", cwd=tmp_path,
                        timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "0 metric points" in again.stdout or '"metric_points": 0' in (tmp_path / "ml-dash-report.json").read_text()


def test_fsck_exit_code_and_lines_name_what_is_missing(tmp_path: Path) -> None:
    srv = tmp_path / "srv"
    with live_server(srv, *SETTINGS) as server:
        key = server.token("k", "alice")
        h = {"Authorization": f"Bearer {key}"}
        exp = httpx.post(f"{server.url}/projects/p/experiments", json={"name": "e"}, headers=h).json()["experiment"]
        r = httpx.post(f"{server.url}/experiments/{exp['id']}/metrics/m/append-batch", headers=h,
                       json={"dataPoints": [{"value": i} for i in range(3 * CHUNK)]})
        assert r.status_code == 200, r.text
    ok = run_cli("serve", "compact", "--data-dir", str(srv), *SETTINGS)
    assert ok.returncode == 0 and ok.stdout.startswith("sealed 1 chunk(s)"), ok.stdout + ok.stderr
    clean = run_cli("serve", "fsck", "--data-dir", str(srv), *SETTINGS)
    assert (clean.returncode, clean.stdout) == (0, "1 sealed chunk(s) and log segment(s) checked, 1 object(s) in the store\nclean\n")
    for obj in (srv / "blobs" / "segments").rglob("*"):
        if obj.is_file() and len(obj.name) == 64:
            obj.unlink()
            gone = obj.name
    bad = run_cli("serve", "fsck", "--data-dir", str(srv), *SETTINGS)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert bad.stdout.splitlines() == ["1 sealed chunk(s) and log segment(s) checked, 0 object(s) in the store",
                                       f"missing or damaged: metric {_metric_id(srv)} points 0..{3 * CHUNK - 1}: {gone}",
                                       "NOT clean"]


def _metric_id(srv: Path) -> int:
    with sqlite3.connect(srv / "ml-dash.db") as conn:
        return int(conn.execute("SELECT id FROM metrics").fetchone()[0])


def test_each_server_process_seals_in_the_background_and_stops_cleanly(tmp_path: Path) -> None:
    srv = tmp_path / "srv"
    server = start_server(srv, f"tiering.chunk_size={CHUNK}", "tiering.interval=0.2", "tiering.log_keep_lines=10",
                          "tiering.log_segment_lines=20")
    try:
        key = server.token("k", "alice")
        h = {"Authorization": f"Bearer {key}"}
        exp = httpx.post(f"{server.url}/projects/p/experiments", json={"name": "e"}, headers=h).json()["experiment"]
        for first in range(0, 1000, 50):
            r = httpx.post(f"{server.url}/experiments/{exp['id']}/metrics/m/append-batch", headers=h,
                           json={"dataPoints": [{"value": i} for i in range(first, first + 50)]})
            assert r.status_code == 200, r.text
        r = httpx.post(f"{server.url}/experiments/{exp['id']}/logs", headers=h,
                       json={"logs": [{"message": f"line {i}"} for i in range(100)]})
        assert r.status_code == 201, r.text
        store = open_metadata_store(f"sqlite:///{srv / 'ml-dash.db'}", 1)
        with closing(store):
            deadline = time.monotonic() + 60
            while _sealed(store) < 1000 // CHUNK - 1 or len(store.log_segment_ranges()) < 4:
                assert time.monotonic() < deadline, server.log[-2000:]
                time.sleep(0.1)
        r = httpx.get(f"{server.url}/experiments/{exp['id']}/metrics/m/data", params={"limit": 2000}, headers=h)
        assert [p["data"]["value"] for p in r.json()["data"]] == list(range(1000))
        r = httpx.get(f"{server.url}/experiments/{exp['id']}/logs", params={"limit": 1000}, headers=h)
        assert [x["message"] for x in r.json()["logs"]] == [f"line {i}" for i in range(100)]
    finally:
        server.stop()
    # (uvicorn re-raises the SIGTERM it handled once shut down: -15 is a clean stop too)
    assert server.process.returncode in (0, -15) and "Traceback" not in server.log and "failed" not in server.log, \
        server.log
