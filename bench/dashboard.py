"""The dashboard's costs, side by side in one run.

    .venv/bin/python bench/dashboard.py [--sizes 1000000,10000000] [--points 1000] [--rounds 7]

**Series route.** For each size, one metric series (``{"loss", "step", "epoch"}`` points with a
few planted spikes) is written straight through the store (10,000-point appends, summaries kept
at ingest as in the server) into SQLite in a temp dir. Then, through the in-process app
(FastAPI's TestClient: routing, auth, the route and JSON encoding; no socket), it times
``GET .../series`` with ``--points`` buckets over the whole series, a zoom into 1% of it (x=step),
and a live tick (``since`` = the total before the last 50 points); against reading every point
of the series with the store's chunk reader, 100,000 points a call (what the 0.5.8 ``/data``
route does, without its JSON encoding). Medians of ``--rounds`` requests, after one warm-up.
Goals (issue 12): <= 50 ms for 10M points, >= 100x faster than the full read.

**Page draw.** A real ``ml-dash serve`` on 127.0.0.1 and headless Chromium (Debian's chromium and
chromium-driver): the time from navigation start until the metrics tab of an experiment with 20
metrics x 100,000 points has drawn its charts, beside the same page over 1,000-point metrics.
Goal: <= 1.5 s.

**Compare.** 100 runs x 1 metric on a real server: the compare view's one batch request against one
series request per run, and the time until headless Chromium has drawn the compare page (beside
the page for 2 runs). Goal: <= 1 s.

**``ml-dash show``.** Start-up on a tree of 10 experiments x 1M points: until the list shows them
all and until every series is imported; first start and restart (``bench/show_startup.py``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

KEY = "mld_bench_dashboard_key"
TICK = 50  # points of a live tick


def timed(fn: Callable[[], Any], rounds: int) -> float:
    """Median milliseconds of ``rounds`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def build(st: Any, experiment_id: int, n: int, batch: int = 10_000) -> float:
    """Write ``n`` points (spikes every ~1M); returns points/s of the store's ingest."""
    from ml_dash.server.fastjson import dumps_array_finite

    spent = 0.0
    for a in range(0, n, batch):
        pts = [{"loss": 1.0 / (1 + i * 1e-4) + (i % 97) * 1e-3, "step": 2 * i, "epoch": i // 50_000}
               for i in range(a, min(n, a + batch))]
        if a % 1_000_000 == 500_000:
            pts[123]["loss"] = 1e6
        start = time.perf_counter()
        st.store.append_points(experiment_id, "train", pts, None, None, None, None, encode=dumps_array_finite)
        spent += time.perf_counter() - start
    return n / spent


def measure(n: int, args: argparse.Namespace) -> str:
    """One series of ``n`` points in a fresh SQLite store: the table row of that size."""
    from fastapi.testclient import TestClient

    from ml_dash.api.auth import hash_api_key
    from ml_dash.config.models import ServeConfig
    from ml_dash.server.app import create_app
    from ml_dash.server.state import ServerState

    with tempfile.TemporaryDirectory(prefix="ml-dash-dash-") as tmp:
        st = ServerState(ServeConfig(data_dir=Path(tmp), log_requests=False))
        st.store.create_api_key("bench", "bench", hash_api_key(KEY))
        ns = st.store.ensure_namespace("bench")
        exp, _ = st.store.upsert_experiment(ns["id"], "bench", {"name": f"series-{n}"})
        experiment_id = int(exp["id"])
        before = n - TICK  # the last TICK points are a live tick's news
        rate = build(st, experiment_id, before)
        tail = [{"loss": 0.5, "step": 2 * i, "epoch": i // 50_000} for i in range(before, n)]
        st.store.append_points(experiment_id, "train", tail, None, None, None, None)
        metric = st.store.get_metric(experiment_id, "train")
        assert metric is not None and int(metric["total"]) == n
        metric_id = int(metric["id"])
        client = TestClient(create_app(st), headers={"Authorization": f"Bearer {KEY}"})
        url = f"/experiments/{experiment_id}/metrics/train/series"

        def get(**params: Any) -> Any:
            r = client.get(url, params={"y": "loss", "points": args.points, **params})
            r.raise_for_status()
            return r.json()

        doc = get()
        assert len(doc["x"]) <= args.points and max(doc["max"]) == 1e6, "a spike went missing"
        full = timed(get, args.rounds)
        zoom = timed(lambda: get(x="step", start=n - n // 100, end=n + n // 100), args.rounds)  # step = 2 x index
        tick = timed(lambda: get(since=before), args.rounds)

        start = time.perf_counter()
        seen = 0
        while seen < n:
            seen += len(st.store.read_points(metric_id, seen, 100_000))
        everything = (time.perf_counter() - start) * 1000
        client.close()
        st.close()
    return (f"{n:>12,}{rate:>12,.0f}{full:>11.1f}{zoom:>12.1f}{tick:>10.1f}{everything:>14,.0f}"
            f"{everything / full:>12,.0f}x")


def client_floor(rounds: int) -> float:
    """Milliseconds of an in-process request that does nothing (GET /health)."""
    from fastapi.testclient import TestClient

    from ml_dash.config.models import ServeConfig
    from ml_dash.server.app import create_app
    from ml_dash.server.state import ServerState

    with tempfile.TemporaryDirectory(prefix="ml-dash-dash-") as tmp:
        st = ServerState(ServeConfig(data_dir=Path(tmp), log_requests=False))
        with TestClient(create_app(st)) as client:
            floor = timed(lambda: client.get("/health").raise_for_status(), rounds)
        st.close()
    return floor


def series_bench(args: argparse.Namespace) -> list[str]:
    lines = [f"series route vs reading every point (SQLite, in-process TestClient, {args.points:,} buckets, "
             f"median of {args.rounds})",
             f"{'points':>12}{'ingest/s':>12}{'series ms':>11}{'zoom 1% ms':>12}{'since ms':>10}{'full read ms':>14}"
             f"{'full/series':>13}"]
    lines.extend(measure(n, args) for n in args.sizes)
    lines.append(f"(the TestClient's own cost, GET /health: {client_floor(args.rounds):.1f} ms of every figure above)")
    lines.append("goals: series <= 50 ms at 10M points, >= 100x faster than the full read")
    return lines


def page_draw(url: str, driver: Any, rounds: int, mark: str = "ml-dash:charts-drawn") -> float:
    """Median milliseconds from navigation start until the page's charts stood drawn (the
    ``ml-dash:charts-drawn`` mark the metrics tab sets), each round a fresh page load."""
    from selenium.webdriver.support.ui import WebDriverWait

    times = []
    for _ in range(rounds + 1):  # the first load warms the caches, as a user's second visit
        driver.get("about:blank")
        driver.get(url)
        drawn = WebDriverWait(driver, 60).until(lambda d: d.execute_script(
            "const m = performance.getEntriesByName(arguments[0]); return m.length ? m[0].startTime : null", mark))
        times.append(float(drawn))
    return statistics.median(times[1:])


def page_draw_bench(args: argparse.Namespace) -> list[str]:
    """A real ``ml-dash serve`` and headless Chromium: the metrics tab of an experiment with
    ``--page-metrics`` metrics of ``--page-points`` points each, against the same page over
    1,000-point metrics (the ratio says what long series cost the page)."""
    from ml_dash.api.client import ApiClient
    from tests.helpers.browser import Chrome, missing_browser
    from tests.helpers.server import live_server

    if missing_browser():
        return [f"page draw: skipped ({missing_browser()})"]
    lines = [f"experiment page drawn in headless Chromium ({args.page_metrics} metrics, real ml-dash serve on "
             f"127.0.0.1, median of {args.rounds} loads)",
             f"{'points/metric':>14}{'drawn ms':>10}"]
    with tempfile.TemporaryDirectory(prefix="ml-dash-page-") as tmp:
        with live_server(Path(tmp) / "server", "log_requests=false") as server:
            client = ApiClient(server.url, server.token("bench", "bench"))
            urls = {}
            for n in (1_000, args.page_points):
                exp = client.create_experiment("bench", {"name": f"page-{n}"})
                for m in range(args.page_metrics):
                    for a in range(0, n, 100_000):
                        pts = [f'{{"step":{i},"value":{math.sin(i / 997 + m) + (i % 89) * 1e-3!r}}}'
                               for i in range(a, min(n, a + 100_000))]
                        client.append_batch(exp["id"], f"metric-{m:02d}", pts, None, encoded=True)
                urls[n] = f"{server.url}/#/ns/bench/p/bench/e/{exp['id']}/metrics?x=step"
            client.close()
            chrome = Chrome()
            try:
                chrome.driver.get(server.dashboard_url)
                times = {n: page_draw(url, chrome.driver, args.rounds) for n, url in urls.items()}
            finally:
                chrome.quit()
    small, big = times[1_000], times[args.page_points]
    lines.append(f"{1_000:>14,}{small:>10.0f}")
    lines.append(f"{args.page_points:>14,}{big:>10.0f}   ({big / small:.2f}x the 1,000-point page)")
    lines.append("goal: the page drawn <= 1,500 ms")
    return lines


def compare_bench(args: argparse.Namespace) -> list[str]:
    """Compare of ``--compare-runs`` experiments x 1 metric on a real ``ml-dash serve``: the one
    batch request the compare view makes against one series request per run, then the time
    headless Chromium takes to draw the compare page (beside the same page for 2 runs)."""
    import httpx

    from ml_dash.api.client import ApiClient
    from tests.helpers.browser import Chrome, missing_browser
    from tests.helpers.server import live_server

    runs, n = args.compare_runs, args.compare_points
    lines = [f"compare of {runs} runs x 1 metric of {n:,} points (real ml-dash serve on 127.0.0.1, median of "
             f"{args.rounds})"]
    with tempfile.TemporaryDirectory(prefix="ml-dash-compare-") as tmp:
        with live_server(Path(tmp) / "server", "log_requests=false") as server:
            key = server.token("bench", "bench")
            client = ApiClient(server.url, key)
            ids = []
            for r in range(runs):
                exp = client.create_experiment("bench", {"name": f"run-{r:03d}", "folder": "sweep"})
                ids.append(exp["id"])
                client.append_batch(exp["id"], "train", [f'{{"step":{i},"loss":{math.exp(-i / (500 + r))!r}}}'
                                                         for i in range(n)], None, encoded=True)
            client.close()
            points = max(200, 20_000 // runs)  # what the compare view asks for with this many runs
            http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            body = {"points": points, "series": [{"experimentId": i, "metric": "train", "y": "loss", "x": "step"}
                                                 for i in ids]}
            batch = timed(lambda: http.post("/series", json=body).raise_for_status(), args.rounds)
            one_by_one = timed(lambda: [http.get(f"/experiments/{i}/metrics/train/series", params={
                "y": "loss", "x": "step", "points": points}).raise_for_status() for i in ids], args.rounds)
            http.close()
            lines.append(f"  series of all {runs} runs: one batch request {batch:.0f} ms, one request per run "
                         f"{one_by_one:.0f} ms ({one_by_one / batch:.1f}x)")
            if missing_browser():
                lines.append(f"  drawing: skipped ({missing_browser()})")
                return lines
            chrome = Chrome()
            try:
                chrome.driver.get(server.dashboard_url)
                base = f"{server.url}/#/ns/bench/p/bench/compare?m=train.loss&ids="
                two = page_draw(base + ",".join(ids[:2]), chrome.driver, args.rounds, "ml-dash:compare-drawn")
                many = page_draw(base + ",".join(ids), chrome.driver, args.rounds, "ml-dash:compare-drawn")
            finally:
                chrome.quit()
    lines.append(f"  compare page drawn: {runs} runs {many:.0f} ms, 2 runs {two:.0f} ms ({many / two:.2f}x)")
    lines.append("  goal: 100 runs x 1 metric drawn <= 1,000 ms")
    return lines


def show_bench(args: argparse.Namespace) -> list[str]:
    """``ml-dash show`` start-up on a 10 x 1M tree, first start and restart (bench/show_startup.py)."""
    from bench.show_startup import show_startup

    return show_startup(args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[1_000_000, 10_000_000],
                        help="series lengths, comma separated")
    parser.add_argument("--points", type=int, default=1000, help="buckets per series request")
    parser.add_argument("--rounds", type=int, default=7, help="requests per measurement (the median is shown)")
    parser.add_argument("--page-metrics", type=int, default=20, help="metrics on the page of the browser timing")
    parser.add_argument("--page-points", type=int, default=100_000, help="points per metric of that page")
    parser.add_argument("--compare-runs", type=int, default=100, help="runs of the compare timing")
    parser.add_argument("--compare-points", type=int, default=10_000, help="points per run of the compare timing")
    parser.add_argument("--skip", default="", help="sections to leave out, comma separated: "
                                                   "series,page,compare,show")
    args = parser.parse_args()
    # Each section measures one thing and returns its lines; they are printed together at the end.
    named: dict[str, Callable[[argparse.Namespace], list[str]]] = {
        "series": series_bench, "page": page_draw_bench, "compare": compare_bench, "show": show_bench}
    sections = [fn for name, fn in named.items() if name not in args.skip.split(",")]
    out: list[str] = []
    for section in sections:
        out.extend(section(args))
        out.append("")
    print("\n".join(out).rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
