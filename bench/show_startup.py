"""`ml-dash show` start-up on a large tree: first start, then a restart on the same tree.

    .venv/bin/python bench/show_startup.py [--experiments 10] [--points 1000000]

Builds a tree of N experiments × P metric points. The metric files are written directly in the
0.5.8 format the SDK writes (``{"index": i, "data": {...}, "createdAt": "..."}`` per line, as
``MetricAppender`` formats it, plus metadata.json), not through the SDK's append loop, which
would take longer than the bench. Then times `ml-dash show --no-browser --port 0` from process
start until (a) the server answers and GET /ui/experiments lists all N experiments (browsable),
(b) every experiment's series holds at least 10% of its P points (all charts filling in), (c) the
series route reports all P points of every experiment (fully imported); stops it
(SIGTERM) and times the same for a restart on the same tree and private copy, which must not
import again (the restart's import requests are counted from its request log).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ML_DASH = str(REPO / ".venv" / "bin" / "ml-dash")
TS = "2026-11-23T00:00:00.000000Z"


def make_tree(root: Path, experiments: int, points: int) -> None:
    for e in range(experiments):
        d = root / "bench" / f"run-{e:02d}"
        (d / "metrics" / "loss").mkdir(parents=True, exist_ok=True)
        (d / "experiment.json").write_text(json.dumps({
            "name": d.name, "project": "bench", "description": None, "tags": [], "bindrs": [], "folder": None,
            "metadata": None, "created_at": f"2026-11-23T00:00:{e % 60:02d}.{e:06d}Z", "write_protected": False},
            indent=2))
        (d / "parameters.json").write_text(json.dumps({"version": 1, "data": {"lr": 0.1, "seed": e},
                                                       "createdAt": TS, "updatedAt": TS}, indent=2))
        with open(d / "metrics/loss/data.jsonl", "w") as f:
            for start in range(0, points, 100_000):
                f.write("".join(f'{{"index": {i}, "data": {{"value": {1.0 / (i + 1)!r}, "step": {i}}}, '
                                f'"createdAt": "{TS}"}}\n' for i in range(start, min(points, start + 100_000))))
        (d / "metrics/loss/metadata.json").write_text(json.dumps({
            "metricId": "local-metric-loss", "name": "loss", "description": None, "tags": [], "metadata": None,
            "totalDataPoints": points, "nextIndex": points, "createdAt": TS, "updatedAt": TS}, indent=2))


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _ids(url: str) -> list[str]:
    try:
        doc = _get(f"{url}/ui/projects/bench/experiments?limit=500")
    except OSError:  # the project is not there yet (404)
        return []
    return [str(r["id"]) for r in doc["items"]]


def _total(url: str, exp_id: str) -> int:
    try:
        doc = _get(f"{url}/experiments/{exp_id}/series")
    except OSError:
        return 0
    for metric in doc.get("metrics") or []:
        if metric["name"] == "loss":
            return int(metric["total"])
    return 0


def one_start(tree: Path, home: Path, experiments: int, points: int, timeout: float) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
    env["ML_DASH_CONFIG_DIR"] = str(home)
    log = home / f"show-{time.time_ns()}.log"
    started = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen([ML_DASH, "show", str(tree), "--no-browser", "--port", "0", "log_requests=true"],
                                env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    out: dict[str, float] = {}
    try:
        assert proc.stdout is not None
        url = None
        while url is None:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"ml-dash show did not start: {log.read_text()}")
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        out["listening"] = time.perf_counter() - started
        deadline = started + timeout
        ids: list[str] = []
        while time.perf_counter() < deadline:
            ids = _ids(url)
            if len(ids) >= experiments:
                break
            time.sleep(0.05)
        out["browsable"] = time.perf_counter() - started
        tenth = False
        while time.perf_counter() < deadline:
            totals = [_total(url, i) for i in ids]
            if not tenth and all(t * 10 >= points for t in totals):
                out["tenth"] = time.perf_counter() - started
                tenth = True
            if all(t >= points for t in totals):
                break
            time.sleep(0.25)
        out["imported"] = time.perf_counter() - started
        out.setdefault("tenth", out["imported"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    requests = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    out["imports"] = sum(1 for r in requests if r["method"] == "POST" and r["path"].endswith(("append-batch", "/logs")))
    return out


def show_startup(args: list[str]) -> list[str]:
    parser = argparse.ArgumentParser(prog="bench/show_startup.py")
    parser.add_argument("--experiments", type=int, default=10)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=600.0)
    ns = parser.parse_args(args)
    lines = []
    with tempfile.TemporaryDirectory(prefix="ml-dash-show-bench-") as tmp:
        tree, home = Path(tmp) / "tree", Path(tmp) / "home"
        home.mkdir()
        t = time.perf_counter()
        make_tree(tree, ns.experiments, ns.points)
        size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
        lines.append(f"tree: {ns.experiments} experiments x {ns.points:,} points ({size / 1e6:.0f} MB), written "
                     f"directly in the 0.5.8 format in {time.perf_counter() - t:.1f} s")
        first = one_start(tree, home, ns.experiments, ns.points, ns.timeout)
        again = one_start(tree, home, ns.experiments, ns.points, ns.timeout)
    lines.append(f"{'ml-dash show':34} {'first start':>12} {'restart':>12} {'restart/first':>14}")
    for key, label in (("listening", "server answers (s)"), ("browsable", f"all {ns.experiments} listed (s)"),
                       ("tenth", "every series >= 10% (s)"), ("imported", "every series complete (s)"),
                       ("imports", "import requests")):
        a, b = first[key], again[key]
        fmt = "{:>12.2f}" if key != "imports" else "{:>12.0f}"
        ratio = f"{b / a:>13.2f}x" if a else f"{'-':>14}"
        lines.append(f"{label:34} {fmt.format(a)} {fmt.format(b)} {ratio}")
    goal = "met" if first["browsable"] <= 10 else "NOT met"
    lines.append(f"goal: browsable within 10 s of start: {goal} ({first['browsable']:.1f} s)")
    total = ns.experiments * ns.points
    seconds = first["imported"] - first["browsable"]
    lines.append(f"first import: {total:,} points in {seconds:.1f} s after listing ({total / seconds:,.0f} points/s)")
    return lines


def main() -> int:
    for line in show_startup(sys.argv[1:]):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
