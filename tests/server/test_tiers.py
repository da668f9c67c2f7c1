"""Tiered storage (storage/tiers.py): sealed chunks in the blob store, read exactly as written.

On SQLite + files and on PostgreSQL + S3 (moto): every read (data, the 0.5.8 chunk route, stats,
series, the experiment table's last value) answers the same before and after sealing; sealing
races appends, readers and other sealers without a point lost or doubled; a crash between the
object and the switch leaves an orphan the sweep removes; fsck finds what is missing.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ml_dash.server.storage.tiers import pack, put_bytes, unpack
from tests.server.conftest import Api, make_state

CHUNK = 100


@pytest.fixture
def tiered(tmp_path: Path, backend: dict[str, str]) -> Any:  # noqa: F811
    api = Api(make_state(tmp_path, backend, tiering={"chunk_size": CHUNK, "interval": 0}))
    yield api
    api.close()


def _write(api: Api, exp: str, name: str, first: int, count: int, rng: random.Random) -> None:
    """``count`` points from step ``first``, in every shape a client sends them."""
    url = f"/experiments/{exp}/metrics/{name}"
    step = first
    while step < first + count:
        n = min(rng.choice([1, 3, 7, 40]), first + count - step)
        kind = rng.random()
        points = [{"value": step + i + 0.25, "step": step + i} for i in range(n)]
        if kind < 0.15 and n == 1:  # 0.5.8's single append
            r = api.alice.post(f"{url}/append", json={"data": points[0]})
            assert r.status_code == 200, r.text
        elif kind < 0.3:  # the general path: an odd value, a nested field, NaN (0.5.8 sends it)
            points[0]["value"] = math.nan if rng.random() < 0.5 else {"nested": [step, "text"]}
            r = api.alice.post(f"{url}/append-batch", content=json.dumps({"dataPoints": points}),
                               headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text
        else:  # the fast path, by a writer
            r = api.alice.post(f"{url}/append-batch", json={"dataPoints": points, "writerId": "w",
                                                             "writerSeq": step})
            assert r.status_code == 200, r.text
        step += n


def _reads(api: Api, exp: str, name: str) -> list[Any]:
    base = f"/experiments/{exp}/metrics/{name}"
    get = api.alice.get
    out = [get(f"{base}/data", params={"startIndex": 0, "limit": 100_000}).text,
           get(f"{base}/data", params={"startIndex": 137, "limit": 55}).text,
           get(f"{base}/stats").text]
    total = int(get(f"{base}/stats").json()["totalDataPoints"])
    out += [get(f"{base}/chunks/{n}").text for n in range(total // 10_000)]
    for params in ({"y": "value", "x": "step", "points": 40}, {"y": "value", "x": "index", "points": 1000},
                   {"y": "value", "x": "step", "start": 120, "end": 181}, {"y": "value", "x": "timestamp"},
                   {"y": "value", "x": "step", "since": 90}, {"y": "step", "x": "step", "points": 7}):
        r = get(f"{base}/series", params=params)
        assert r.status_code == 200, r.text
        out.append(r.text)
    out.append(api.alice.post("/series", json={"points": 30, "series": [
        {"experimentId": exp, "metric": name, "y": "value", "x": "step"}]}).text)
    out.append(get(f"/experiments/{exp}/series").text)
    return out


def _sealed(api: Api) -> dict[str, int]:
    return api.state.store.tier_sizes()


def test_reads_equal_writes_across_tiers(tiered: Api) -> None:
    rng = random.Random(7)
    exp = tiered.experiment()
    _write(tiered, exp, "loss", 0, 1234, rng)
    _write(tiered, exp, "small", 0, CHUNK - 1, rng)  # never a full chunk: stays in the database
    before = {m: _reads(tiered, exp, m) for m in ("loss", "small")}
    assert _sealed(tiered)["sealed_rows"] == 0

    chunks = tiered.state.tiering.seal_due()
    sizes = _sealed(tiered)
    assert chunks >= 1234 // (CHUNK + 40) and sizes["sealed_points"] >= 1234 - CHUNK - 40
    assert sizes["database_points"] < CHUNK + 40 + CHUNK  # the unsealed tail of each metric only
    assert {m: _reads(tiered, exp, m) for m in ("loss", "small")} == before
    assert tiered.state.tiering.seal_due() == 0  # nothing is due twice

    # More points: the reads span both tiers (sealed chunks, then rows), and the old ones again.
    _write(tiered, exp, "loss", 1234, 20_000 - 1234, rng)
    grown = _reads(tiered, exp, "loss")
    assert tiered.state.tiering.seal_due() > 0
    assert _reads(tiered, exp, "loss") == grown
    data = tiered.alice.get(f"/experiments/{exp}/metrics/loss/data", params={"startIndex": 0, "limit": 100_000})
    points = data.json()["data"]
    assert [p["index"] for p in points] == [str(i) for i in range(20_000)] or \
        [int(p["index"]) for p in points] == list(range(20_000))
    assert [p["data"]["step"] for p in points] == list(range(20_000))  # each point once, in order
    report = tiered.state.tiering.fsck()
    assert report.clean and report.segments == _sealed(tiered)["sealed_rows"], list(report.lines())


def test_sealing_races_appends_readers_and_other_sealers(tiered: Api) -> None:
    exp = tiered.experiment()
    url = f"/experiments/{exp}/metrics/m/append-batch"
    stop, errors = threading.Event(), []

    def writer(w: int) -> None:
        for b in range(60):
            points = [{"value": w * 1000 + b * 10 + i, "step": b * 10 + i} for i in range(10)]
            r = tiered.alice.post(url, json={"dataPoints": points, "writerId": f"w{w}", "writerSeq": b * 10})
            if r.status_code != 200:
                errors.append(r.text)

    def sealer() -> None:
        while not stop.is_set():
            tiered.state.tiering.seal_due()

    def reader() -> None:
        while not stop.is_set():
            r = tiered.alice.get(f"/experiments/{exp}/metrics/m/data", params={"startIndex": 0, "limit": 100_000})
            if r.status_code == 404:
                continue
            indices = [int(p["index"]) for p in r.json()["data"]]
            if indices != list(range(len(indices))):
                errors.append(f"a read saw {len(indices)} points, not 0..n-1 once each")

    background = [threading.Thread(target=f) for f in (sealer, sealer, reader)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in background + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in background:
        t.join()
    tiered.state.tiering.seal_due()
    assert errors == []
    points = tiered.alice.get(f"/experiments/{exp}/metrics/m/data", params={"startIndex": 0, "limit": 100_000})
    values = sorted(p["data"]["value"] for p in points.json()["data"])
    assert values == sorted(w * 1000 + v for w in range(3) for v in range(600))  # each point exactly once
    assert _sealed(tiered)["sealed_points"] >= 1800 - CHUNK - 10
    # A sealer that lost a race may have left an object nothing points to: the sweep (past its
    # grace) removes it, and fsck is clean.
    tiered.state.tiering.sweep(now=time.time() + 10 * 3600)
    assert tiered.state.tiering.fsck().clean


def test_a_crash_between_the_object_and_the_switch_leaves_an_orphan_the_sweep_removes(tiered: Api) -> None:
    exp = tiered.experiment()
    _write(tiered, exp, "loss", 0, 3 * CHUNK, random.Random(1))
    before = _reads(tiered, exp, "loss")
    tiering, store = tiered.state.tiering, tiered.state.store
    metric = store.get_metric(int(exp), "loss")
    assert metric is not None
    rows = store.unsealed_rows(int(metric["id"]), CHUNK)
    digest = put_bytes(tiering.segments.store, pack(rows))  # ... and the process dies here
    assert unpack(b"".join(tiering.segments.store.open(digest))) == [{**r, "segment": None} for r in rows]
    assert _reads(tiered, exp, "loss") == before  # nothing points to it: the rows still answer
    report = tiering.fsck()
    assert report.orphans == [digest] and not report.missing
    assert tiering.sweep() == []  # younger than the grace: a sealer may be about to switch to it
    assert tiering.sweep(now=time.time() + tiering.orphan_grace + 1) == [digest]
    assert tiering.fsck().clean
    assert tiering.seal_due() >= 2 and _reads(tiered, exp, "loss") == before and tiering.fsck().clean


def test_a_missing_object_is_an_error_that_names_fsck_never_an_empty_series(tiered: Api) -> None:
    exp = tiered.experiment()
    _write(tiered, exp, "loss", 0, 2 * CHUNK, random.Random(2))
    tiering = tiered.state.tiering
    assert tiering.seal_due() >= 1
    (_, _, _, digest), *_ = tiered.state.store.segment_ranges()
    tiering.segments.store.delete(digest)
    tiering.segments._cache.clear()
    r = tiered.alice.get(f"/experiments/{exp}/metrics/loss/data", params={"startIndex": 0, "limit": 10})
    error = r.json()["error"]
    assert r.status_code == 500 and "missing from the blob store" in error["message"], r.text
    assert "ml-dash serve fsck" in error["hint"]
    report = tiering.fsck()
    assert not report.clean and len(report.missing) == 1 and digest in report.missing[0]


@pytest.fixture
def archiving(tmp_path: Path, backend: dict[str, str]) -> Any:  # noqa: F811
    api = Api(make_state(tmp_path, backend, tiering={"interval": 0, "log_keep_lines": 50, "log_segment_lines": 40,
                                                     "log_archive_age": 0}))
    yield api
    api.close()


def _log_reads(api: Api, exp: str) -> list[Any]:
    get = api.alice.get
    out = []
    for query in ("limit=1000", "limit=7&offset=33", "limit=30&offset=95", "order=desc&limit=25",
                  "order=desc&limit=50&offset=80", "level=error,warn", "level=debug&limit=5&offset=3",
                  "search=50%25", "search=LINE 1", "search=línea", "startTime=2026-01-01T00:01:00Z",
                  "endTime=2026-01-01T00:00:30Z&order=desc", "level=info&search=_x&limit=3&offset=2"):
        r = get(f"/experiments/{exp}/logs?{query}")
        assert r.status_code == 200, r.text
        out.append(r.text)
    for query in ("limit=10", "limit=10&before=150", "limit=100&before=60", "after=-1&limit=7", "after=100&limit=20",
                  "level=error&limit=1000", "q=50%25_OFF", "q=%25", "q=LÍNEA&limit=3",
                  "from=2026-01-01T00:00:05Z&to=2026-01-01T00:01:07Z&limit=1000"):
        r = get(f"/ui/experiments/{exp}/logs?{query}")
        assert r.status_code == 200, r.text
        out.append(r.text)
    return out


def test_archived_log_lines_read_as_before_paged_filtered_and_searched(archiving: Api) -> None:
    exp = archiving.experiment()
    levels = ["info", "warn", "error", "debug"]
    lines = [{"level": levels[i % 4], "message": f"line {i}" + (" 50%_off" if i % 10 == 0 else "")
              + (" LÍNEA" if i % 7 == 0 else " línea") + (" a_x" if i % 3 == 0 else ""),
              "timestamp": None if i % 11 == 5 else f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.5Z",
              "metadata": {"i": i} if i % 2 else None} for i in range(230)]
    for first in range(0, 230, 23):  # by a writer, and 0.5.8's way (positions)
        key = "sequenceNumber" if first % 2 == 0 else "writerSeq"
        body = {"logs": [{**x, key: first + i} for i, x in enumerate(lines[first:first + 23])],
                **({"writerId": "w"} if key == "writerSeq" else {})}
        r = archiving.alice.post(f"/experiments/{exp}/logs", json=body)
        assert r.status_code == 201, r.text
    before = _log_reads(archiving, exp)
    tiering = archiving.state.tiering
    assert tiering.archive_due() == (230 - 50) // 40  # whole segments, the newest 50 stay
    assert tiering.archive_due() == 0
    archived = archiving.state.store.log_segment_ranges()
    assert [(a, b) for _, a, b, _ in archived] == [(0, 39), (40, 79), (80, 119), (120, 159)]
    assert _log_reads(archiving, exp) == before
    # A late retry of archived positions is recognised (nothing doubled), a different line refused.
    again = archiving.alice.post(f"/experiments/{exp}/logs", json={
        "logs": [{**x, "sequenceNumber": i} for i, x in enumerate(lines[:23])]})
    assert again.status_code == 201, again.text
    other = archiving.alice.post(f"/experiments/{exp}/logs", json={
        "logs": [{**lines[0], "message": "changed", "sequenceNumber": 0}]})
    assert other.status_code == 409, other.text
    assert _log_reads(archiving, exp) == before
    assert tiering.fsck().clean


def test_log_lines_older_than_the_age_are_archived_however_few(tmp_path: Path) -> None:
    api = Api(make_state(tmp_path, tiering={"interval": 0, "log_keep_lines": 1000, "log_segment_lines": 40,
                                            "log_archive_age": 3600}))
    try:
        exp = api.experiment()
        old = [{"message": f"old {i}", "timestamp": f"2020-01-01T00:00:{i:02d}Z"} for i in range(15)]
        new = [{"message": f"new {i}", "timestamp": "2999-01-01T00:00:00Z"} for i in range(5)]
        assert api.alice.post(f"/experiments/{exp}/logs", json={"logs": old + new}).status_code == 201
        before = _log_reads(api, exp)
        assert api.state.tiering.archive_due() == 1
        assert [(a, b) for _, a, b, _ in api.state.store.log_segment_ranges()] == [(0, 14)]
        assert _log_reads(api, exp) == before and api.state.tiering.fsck().clean
    finally:
        api.close()
