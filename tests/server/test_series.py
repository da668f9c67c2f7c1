"""The series API against a brute-force reference: buckets, exact min/max, zoom, since, NaN/±Inf."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from ml_dash.server.fastjson import dumps_array
from ml_dash.server.storage import summaries
from tests.server.conftest import Api

INF = float("inf")
RAW_MIN = 4096  # selections up to max(8 x points, 4096) points are read whole (see summaries.py)


# --- helpers -------------------------------------------------------------------------------------------
def store_append(api: Api, exp: str, name: str, points: list[dict[str, Any]], sizes: list[int]) -> None:
    """Append straight through the store (fast), in batches of the given sizes (cycled)."""
    pos, k = 0, 0
    while pos < len(points):
        n = sizes[k % len(sizes)]
        api.state.store.append_points(int(exp), name, points[pos:pos + n], None, None, None, None, encode=dumps_array)
        pos, k = pos + n, k + 1


def make_points(rng: random.Random, n: int, x: str = "monotone") -> list[dict[str, Any]]:
    pts: list[dict[str, Any]] = []
    for i in range(n):
        step = 3 * i + 10 if x == "monotone" else rng.randrange(0, 1000)
        p: dict[str, Any] = {"loss": rng.random(), "step": step}
        r = rng.random()
        if r < 0.01:
            p["loss"] = rng.choice([1e6, -1e6, 777.5])  # spikes
        elif r < 0.015:
            p["loss"] = rng.choice([math.nan, INF, -INF])
        elif r < 0.02:
            del p["loss"]  # a point without the field
        elif r < 0.022:
            p["loss"] = "n/a"  # not a number: ignored
        pts.append(p)
    return pts


def _x_of(i: int, p: dict[str, Any], x: str) -> Any:
    if x == "index":
        return i
    v = p.get(x)
    return v if isinstance(v, (int, float)) and -INF < v < INF else None


def reference(pts: list[dict[str, Any]], y: str, x: str = "index", points: int = 1000, start: float | None = None,
              end: float | None = None, since: int | None = None) -> dict[str, Any]:
    """The documented semantics, computed point by point."""
    lo_x = -INF if start is None else start
    hi_x = INF if end is None else end
    window = start is not None or end is not None
    sel = []
    for i in range(since or 0, len(pts)):
        xv = _x_of(i, pts[i], x)
        if window and (xv is None or not lo_x <= xv <= hi_x):
            continue
        yv = pts[i].get(y)
        sel.append((i, xv, yv if isinstance(yv, (int, float)) else None))
    with_y = [s for s in sel if s[2] is not None]
    out: dict[str, list[Any]] = {k: [] for k in ("x", "y", "min", "max", "count", "nonFinite")}
    raw = len(sel) <= max(8 * points, RAW_MIN)
    if raw and len(with_y) <= points:
        for _, xv, yv in with_y:
            fin = -INF < yv < INF
            for k, v in (("x", xv), ("y", yv if fin else None), ("min", yv if fin else None),
                         ("max", yv if fin else None), ("count", 1), ("nonFinite", 0 if fin else 1)):
                out[k].append(v)
        return {**out, "exact": True}
    first, last = sel[0][0], sel[-1][0]
    step = 1
    if not raw:
        level = 0
        while level < summaries.TOP and (last - first + 1) / summaries.SIZES[level] > 8 * points:
            level += 1
        step = summaries.SIZES[level]
    width = max(step, math.ceil(math.ceil((last - first + 1) / points) / step) * step)
    while last // width - first // width + 1 > points:
        width += step
    cells: dict[int, list[tuple[Any, Any]]] = {}
    for i, xv, yv in sel:
        cells.setdefault(i // width, []).append((xv, yv))
    for key in sorted(cells):
        xs = [v for v, _ in cells[key] if v is not None]
        ys = [v for _, v in cells[key] if v is not None]
        if not ys:
            continue
        fin = [v for v in ys if -INF < v < INF]
        out["x"].append(sum(xs) / len(xs) if xs else None)
        out["y"].append(sum(fin) / len(fin) if fin else None)
        out["min"].append(min(fin) if fin else None)
        out["max"].append(max(fin) if fin else None)
        out["count"].append(len(ys))
        out["nonFinite"].append(len(ys) - len(fin))
    return {**out, "exact": False}


def strict_json(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in the answer: not JSON")

    return json.loads(text, parse_constant=refuse)


def series(api: Api, exp: str, name: str = "train", client: Any = None, **params: Any) -> dict[str, Any]:
    r = (client or api.alice).get(f"/experiments/{exp}/metrics/{name}/series", params=params)
    assert r.status_code == 200, r.text
    return strict_json(r.text)


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return a == pytest.approx(b, rel=1e-9, abs=1e-9)


def check(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["exact"] == want["exact"]
    assert got["count"] == want["count"]
    assert got["nonFinite"] == want["nonFinite"]
    assert got["min"] == want["min"]  # exact, not approximately
    assert got["max"] == want["max"]
    assert all(close(a, b) for a, b in zip(got["y"], want["y"], strict=True)), "y means differ"
    assert all(close(a, b) for a, b in zip(got["x"], want["x"], strict=True)), "x means differ"


# --- against the reference -----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_buckets_match_the_reference(api: Api, seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(30_000, 45_000)  # not a multiple of any block size
    pts = make_points(rng, n)
    exp = api.experiment(name=f"run-{seed}")
    store_append(api, exp, "train", pts, [1, 7, 1000, 3, 513, 10_000, 1, 2047])
    for points in (7, 50, 300, 1000):
        check(series(api, exp, y="loss", points=points), reference(pts, "loss", points=points))
    check(series(api, exp, y="loss", x="step", points=200), reference(pts, "loss", x="step", points=200))
    # zoom by index and by a monotone x; block-unaligned edges
    a, b = rng.randrange(0, n // 2), rng.randrange(n // 2, n)
    check(series(api, exp, y="loss", points=40, start=a, end=b), reference(pts, "loss", points=40, start=a, end=b))
    check(series(api, exp, y="loss", x="step", points=40, start=3 * a + 11.5, end=3 * b),
          reference(pts, "loss", x="step", points=40, start=3 * a + 11.5, end=3 * b))
    check(series(api, exp, y="loss", points=100, start=a, end=a + 700),
          reference(pts, "loss", points=100, start=a, end=a + 700))
    # since: what follows a cursor
    c = rng.randrange(1, n)
    check(series(api, exp, y="loss", points=100, since=c), reference(pts, "loss", points=100, since=c))


def test_spike_is_the_max_of_its_bucket_and_bucket_boundaries(api: Api) -> None:
    n = 100_003
    pts = [{"loss": 0.5 + 0.001 * (i % 10), "step": i} for i in range(n)]
    pts[77_777]["loss"] = 1e9
    pts[5]["loss"] = -1e9
    exp = api.experiment()
    store_append(api, exp, "train", pts, [10_000])
    doc = series(api, exp, y="loss", points=100)
    want = reference(pts, "loss", points=100)
    check(doc, want)
    assert not doc["exact"] and len(doc["x"]) <= 100
    assert sum(doc["count"]) == n and doc["total"] == n == doc["cursor"]
    assert max(doc["max"]) == 1e9 and min(doc["min"]) == -1e9
    # buckets are consecutive index runs of one width, aligned on multiples of it (the last one partial)
    width = round(doc["count"][0])
    assert width % summaries.B0 == 0 and all(c == width for c in doc["count"][:-1])
    assert doc["x"][0] == (width - 1) / 2
    assert doc["last"] == {"x": n - 1, "y": pts[-1]["loss"]}


def test_non_monotone_x_and_zoom(api: Api) -> None:
    rng = random.Random(7)
    pts = make_points(rng, 20_000, x="random")
    exp = api.experiment()
    store_append(api, exp, "train", pts, [999, 1, 4000])
    for params in ({"points": 100}, {"points": 100, "start": 100, "end": 300}, {"points": 64, "start": 100, "end": 800},
                   {"points": 5000, "start": 500, "end": 510}, {"points": 30, "start": 990}):
        want = reference(pts, "loss", x="step", **params)  # type: ignore[arg-type]
        check(series(api, exp, y="loss", x="step", **params), want)


def test_zoom_into_few_points_is_exact(api: Api) -> None:
    pts = [{"loss": float(i % 17), "step": 2 * i} for i in range(50_000)]
    exp = api.experiment()
    store_append(api, exp, "train", pts, [5000])
    doc = series(api, exp, y="loss", x="step", start=20_000, end=20_020, points=1000)
    assert doc["exact"] and doc["x"] == list(range(20_000, 20_021, 2))
    assert doc["y"] == doc["min"] == doc["max"] == [float(i % 17) for i in range(10_000, 10_011)]
    assert doc["count"] == [1] * 11


def test_nan_and_infinity(api: Api) -> None:
    exp = api.experiment()
    body = '{"dataPoints": [{"loss": 1.0}, {"loss": NaN}, {"loss": Infinity}, {"loss": -Infinity}, {"loss": 2.0}]}'
    r = api.alice.post(f"/experiments/{exp}/metrics/train/append-batch", content=body)
    assert r.status_code == 200, r.text
    doc = series(api, exp, y="loss")
    assert doc["exact"] and doc["y"] == [1.0, None, None, None, 2.0] and doc["nonFinite"] == [0, 1, 1, 1, 0]
    doc = series(api, exp, y="loss", points=2)  # buckets [0, 3) and [3, 5)
    assert doc["y"] == [1.0, 2.0] and doc["count"] == [3, 2] and doc["nonFinite"] == [2, 1]
    doc = series(api, exp, y="loss", points=1)
    assert doc["min"] == [1.0] and doc["max"] == [2.0] and doc["nonFinite"] == [3]
    # a bucket of only non-finite values is a gap
    body = '{"dataPoints": [{"loss": NaN}, {"loss": NaN}]}'
    api.alice.post(f"/experiments/{exp}/metrics/gaps/append-batch", content=body).raise_for_status()
    doc = series(api, exp, "gaps", y="loss", points=1)
    assert doc["y"] == doc["min"] == doc["max"] == [None] and doc["count"] == [2]
    assert doc["last"] == {"x": 1, "y": None}
    fields = strict_json(api.alice.get(f"/experiments/{exp}/series").text)["metrics"]
    assert {m["name"]: m["fields"]["loss"]["count"] for m in fields} == {"train": 5, "gaps": 2}


def test_since_follows_a_running_series(api: Api) -> None:
    exp = api.experiment()
    url = f"/experiments/{exp}/metrics/train/append-batch"
    api.alice.post(url, json={"dataPoints": [{"loss": float(i)} for i in range(3000)]}).raise_for_status()
    doc = series(api, exp, y="loss", points=100)
    assert doc["cursor"] == 3000 and not doc["exact"]
    api.alice.post(url, json={"dataPoints": [{"loss": 5000.0}, {"loss": 5001.0}]}).raise_for_status()
    tail = series(api, exp, y="loss", points=100, since=doc["cursor"])
    assert tail["exact"] and tail["x"] == [3000, 3001] and tail["y"] == [5000.0, 5001.0]
    assert tail["cursor"] == tail["total"] == 3002 and tail["last"] == {"x": 3001, "y": 5001.0}
    nothing = series(api, exp, y="loss", since=3002)
    assert nothing["x"] == [] and nothing["cursor"] == 3002
    assert series(api, exp, y="loss", since=10**9)["x"] == []


def test_since_reads_only_new_chunks_by_primary_key(api: Api) -> None:
    exp = api.experiment()
    api.state.store.append_points(int(exp), "train", [{"loss": 1.0}], None, None, None, None)
    store = api.state.store
    with store._tx(write=False) as cur:
        for sql, args in ((summaries.CHUNK_AT, (1, 5)), (summaries.CHUNKS_FROM, (1, 5, 9)),
                          (summaries.ROWS, (1, 0, 1, 2))):
            plan = " ".join(str(r["detail"]) for r in cur.all("EXPLAIN QUERY PLAN " + sql, args))
            assert "USING" in plan and ("PRIMARY KEY" in plan or "autoindex" in plan), plan
            assert "SCAN" not in plan.replace("SCAN CONSTANT", ""), plan


def test_empty_missing_field_unknown_metric_and_cap(api: Api) -> None:
    exp = api.experiment()
    api.state.store.append_points(int(exp), "empty", [], None, None, None, None)
    doc = series(api, exp, "empty", y="loss")
    assert doc["x"] == doc["y"] == [] and doc["total"] == 0 and doc["last"] is None
    api.alice.post(f"/experiments/{exp}/metrics/train/append-batch",
                   json={"dataPoints": [{"loss": 1.0}] * 10}).raise_for_status()
    doc = series(api, exp, y="accuracy")
    assert doc["x"] == doc["count"] == [] and doc["total"] == 10 and doc["last"] is None
    r = api.alice.get(f"/experiments/{exp}/metrics/nope/series", params={"y": "loss"})
    assert r.status_code == 404 and r.json()["error"]["hint"]
    r = api.alice.get(f"/experiments/{exp}/metrics/train/series", params={"y": "loss", "points": 5001})
    assert r.status_code == 422 and "5000" in r.json()["error"]["hint"]
    r = api.alice.get(f"/experiments/{exp}/metrics/train/series")
    assert r.status_code == 422 and r.json()["error"]["hint"]
    r = api.bob.get(f"/experiments/{exp}/metrics/train/series", params={"y": "loss"})
    assert r.status_code == 403


def test_metric_names_with_slashes_and_route_order(api: Api) -> None:
    exp = api.experiment()
    for name in ("train/loss", "a/series", "data"):
        api.alice.post(f"/experiments/{exp}/metrics/{name}/append-batch",
                       json={"dataPoints": [{"value": 1.5}]}).raise_for_status()
        assert series(api, exp, name, y="value")["y"] == [1.5]
    r = api.alice.get(f"/experiments/{exp}/metrics/a/series/data")
    assert r.status_code == 200 and r.json()["data"][0]["data"] == {"value": 1.5}


def test_batch_and_index(api: Api) -> None:
    mine = api.experiment()
    theirs = api.experiment(api.bob, name="bob-run")
    for exp, client in ((mine, api.alice), (theirs, api.bob)):
        client.post(f"/experiments/{exp}/metrics/train/append-batch",
                    json={"dataPoints": [{"loss": 0.5, "step": 1, "epoch": 0, "acc": 3}]}).raise_for_status()
    r = api.alice.post("/series", json={"points": 10, "series": [
        {"experimentId": mine, "metric": "train", "y": "loss", "x": "step"},
        {"experimentId": theirs, "metric": "train", "y": "loss"},
        {"experimentId": mine, "metric": "nope", "y": "loss"}]})
    assert r.status_code == 200, r.text
    items = strict_json(r.text)["series"]
    assert items[0]["x"] == [1] and items[0]["y"] == [0.5]
    assert items[1]["error"]["code"] == "forbidden" and items[1]["error"]["hint"]
    assert items[2]["error"]["code"] == "not_found"
    r = api.alice.post("/series", json={"points": 10**6, "series": [{"experimentId": mine, "metric": "t", "y": "v"}]})
    assert r.status_code == 422
    index = strict_json(api.alice.get(f"/experiments/{mine}/series").text)
    assert index == {"metrics": [{"name": "train", "total": 1, "xFields": ["step", "epoch", "timestamp", "index", "acc",
                                                                            "loss"],
                                  "fields": {f: {"count": 1, "min": v, "max": v, "last": v} for f, v in
                                             (("acc", 3), ("epoch", 0), ("loss", 0.5), ("step", 1))}}]}
    assert api.alice.get(f"/experiments/{theirs}/series").status_code == 403


def test_timestamp_x_is_the_field_or_the_storage_time(api: Api) -> None:
    exp = api.experiment()
    url = f"/experiments/{exp}/metrics/{{}}/append-batch"
    api.alice.post(url.format("timed"), json={"dataPoints": [{"loss": 1.0, "timestamp": 100.5},
                                                             {"loss": 2.0, "timestamp": 101.5}]}).raise_for_status()
    api.alice.post(url.format("plain"), json={"dataPoints": [{"loss": 1.0}, {"loss": 2.0}]}).raise_for_status()
    assert series(api, exp, "timed", y="loss", x="timestamp")["x"] == [100.5, 101.5]
    doc = series(api, exp, "plain", y="loss", x="timestamp")
    import time

    assert all(abs(x - time.time()) < 60 for x in doc["x"])


def test_lazy_backfill_of_series_without_summaries(api: Api) -> None:
    rng = random.Random(11)
    pts = make_points(rng, 9000)
    exp = api.experiment()
    store_append(api, exp, "train", pts[:6000], [1, 500, 3000])
    store = api.state.store
    metric = store.get_metric(int(exp), "train")
    assert metric is not None
    want = reference(pts[:6000], "loss", points=50)
    for damage in ("UPDATE metrics SET summarized = 0 WHERE id = ?",  # as a database from before migration 5
                   "DELETE FROM metric_summaries WHERE metric_id = ?"):
        with store._tx() as cur:
            cur.execute("DELETE FROM metric_summaries WHERE metric_id = ?", (metric["id"],))
            cur.execute(damage, (metric["id"],))
        store_append(api, exp, "other", [{"v": 1}], [1])  # other series are unaffected
        check(series(api, exp, y="loss", points=50), want)
        with store._tx(write=False) as cur:
            assert summaries.covered(cur, metric["id"]) == 6000
    # a series left behind (appends while not summarised) catches up on read, then keeps up at ingest
    with store._tx() as cur:
        cur.execute("UPDATE metrics SET summarized = 0 WHERE id = ?", (metric["id"],))
    store_append(api, exp, "train", pts[6000:7000], [333])
    assert store.get_metric(int(exp), "train")["summarized"] == 0  # type: ignore[index]
    check(series(api, exp, y="loss", points=50), reference(pts[:7000], "loss", points=50))
    store_append(api, exp, "train", pts[7000:], [1, 900])
    check(series(api, exp, y="loss", points=50), reference(pts, "loss", points=50))
    assert store.get_metric(int(exp), "train")["summarized"] == 9000  # type: ignore[index]


def test_deterministic(api: Api) -> None:
    pts = make_points(random.Random(5), 20_000)
    exp = api.experiment()
    store_append(api, exp, "train", pts, [777])
    for params in ({"points": 33}, {"points": 1000, "since": 19_500}, {"x": "step", "start": 999, "end": 31_000}):
        texts = {api.alice.get(f"/experiments/{exp}/metrics/train/series", params={"y": "loss", **params}).text
                 for _ in range(3)}
        assert len(texts) == 1


def test_a_spike_in_a_million_points(api: Api) -> None:
    n, spike = 1_000_000, 654_321
    rng = random.Random(3)
    base = [rng.random() for _ in range(n)]
    base[spike] = 1e12
    exp = api.experiment()
    store = api.state.store
    for a in range(0, n, 50_000):
        store.append_points(int(exp), "train", [{"loss": v} for v in base[a:a + 50_000]], None, None, None, None,
                            encode=dumps_array)
    doc = series(api, exp, y="loss", points=1000)
    assert len(doc["x"]) <= 1000 and sum(doc["count"]) == n
    k = doc["max"].index(1e12)
    width = doc["count"][0]
    assert k == spike // width and doc["x"][k] == pytest.approx((k + 0.5) * width - 0.5)
    assert sorted(doc["max"])[-2] < 1


def test_series_on_every_backend(api_any: Api) -> None:
    rng = random.Random(21)
    pts = make_points(rng, 12_345)
    exp = api_any.experiment()
    store_append(api_any, exp, "train", pts, [1, 4000, 17])
    check(series(api_any, exp, y="loss", points=20), reference(pts, "loss", points=20))
    check(series(api_any, exp, y="loss", x="step", points=20, start=5000, end=20_000),
          reference(pts, "loss", x="step", points=20, start=5000, end=20_000))
    check(series(api_any, exp, y="loss", since=12_000), reference(pts, "loss", since=12_000))
    with api_any.state.store._tx() as cur:
        cur.execute("DELETE FROM metric_summaries")
    check(series(api_any, exp, y="loss", points=20), reference(pts, "loss", points=20))
