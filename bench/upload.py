"""`ml-dash upload` vs the real ml-dash 0.5.8 `ml-dash upload`, side by side in one run.

    .venv/bin/python bench/upload.py [--scale 1.0] [--batch-size 100]

Generates a tree of 10 experiments × (2 metrics × 50,000 points, 5,000 log lines,
2 × 10 MB files) (times --scale), starts a fresh `ml-dash serve` for each client, and
uploads: metrics+logs (files skipped), then files only. Prints wall time, requests,
peak RSS and the ratio, the file throughput beside what the server's blob store can
write on its own, and our peak RSS for a tree 10× larger than a small one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OURS = REPO / ".venv" / "bin" / "ml-dash"
THEIRS = REPO / ".venv-ml-dash-0.5.8" / "bin" / "ml-dash"

from tests.helpers.server import live_server  # noqa: E402


def make_tree(root: Path, experiments: int, points: int, logs: int, files: int, file_mb: float) -> None:
    """Writes the tree directly in the 0.5.8 format (the SDK would take longer than the bench)."""
    from ml_dash.records.clock import new_file_id

    ts = "2026-11-23T00:00:00.000000Z"
    for e in range(experiments):
        d = root / "bench" / f"run-{e:02d}"
        for sub in ("logs", "metrics", "files"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "experiment.json").write_text(json.dumps({"name": d.name, "project": "bench", "description": None,
                                                       "tags": [], "bindrs": [], "folder": None, "metadata": None,
                                                       "created_at": ts, "write_protected": False}, indent=2))
        (d / "parameters.json").write_text(json.dumps({"version": 1, "data": {"lr": 0.1, "seed": e},
                                                       "createdAt": ts, "updatedAt": ts}, indent=2))
        with open(d / "logs/logs.jsonl", "w") as f:
            for i in range(logs):
                f.write(json.dumps({"sequenceNumber": i, "timestamp": ts, "level": "info",
                                    "message": f"step {i} done", "metadata": {"step": i}}) + "\n")
        (d / "logs/.log_sequence").write_text(str(logs))
        for m in ("train_loss", "val_loss"):
            md = d / "metrics" / m
            md.mkdir(exist_ok=True)
            with open(md / "data.jsonl", "w") as f:
                for i in range(points):
                    f.write(json.dumps({"index": i, "data": {"value": 1.0 / (i + 1), "step": i, "epoch": i // 1000},
                                        "createdAt": ts}) + "\n")
            (md / "metadata.json").write_text(json.dumps({
                "metricId": f"local-metric-{m}", "name": m, "description": None, "tags": [], "metadata": None,
                "totalDataPoints": points, "nextIndex": points, "createdAt": ts, "updatedAt": ts}, indent=2))
        entries = []
        for k in range(files):
            file_id = new_file_id()
            blob = d / "files/checkpoints" / file_id / f"ckpt-{k}.bin"
            blob.parent.mkdir(parents=True)
            data = os.urandom(int(file_mb * 1024 * 1024))
            blob.write_bytes(data)
            entries.append({"id": file_id, "experimentId": f"bench/{d.name}", "path": "/checkpoints",
                            "filename": blob.name, "description": None, "tags": [],
                            "contentType": "application/octet-stream", "sizeBytes": len(data),
                            "checksum": hashlib.sha256(data).hexdigest(), "metadata": None, "uploadedAt": ts,
                            "updatedAt": ts, "deletedAt": None})
        (d / "files/.files_metadata.json").write_text(json.dumps({"files": entries}, indent=2))


def run_client(cli: Path, tree: Path, url: str, token_args: list[str], extra: list[str], cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
    env.update(HOME=str(cwd), COLUMNS="120", TERM="dumb", NO_COLOR="1")
    start = time.perf_counter()
    proc = subprocess.Popen([str(cli), "upload", str(tree), "--remote", url, *token_args, *extra], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stdout:
        proc.stdout.close()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cli} failed ({proc.returncode}):\n{out[-3000:]}")
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024}


def requests_in(log: Path, start: int) -> int:
    return sum(1 for line in log.read_text().splitlines()[start:] if line.startswith("{"))


def upload_both(tree: Path, work: Path, batch: int | None, extra: list[str], label: str) -> dict[str, dict]:
    results = {}
    for name, cli in (("ours", OURS), ("0.5.8", THEIRS)):
        with live_server(work / f"srv-{name}-{label}") as server:
            token = ["--api-key", server.token("bench", "alice")] if name == "ours" else ["--username", "alice"]
            log = server.data_dir / "server.log"
            before = len(log.read_text().splitlines())
            flags = (["--batch-size", str(batch)] if batch else []) + extra + (
                ["--progress", "none"] if name == "ours" else [])
            r = run_client(cli, tree, server.url, token, flags, work)
            time.sleep(0.2)
            r["requests"] = requests_in(log, before)
            results[name] = r
    return results


def blob_store_rate(tree: Path, work: Path) -> float:
    """Bytes/s the server's file blob store writes on its own (stage + hash + commit)."""
    from ml_dash.server.storage.blobs import FileBlobStore

    store = FileBlobStore(work / "blob-rate")
    total, start = 0, time.perf_counter()
    for path in tree.rglob("*.bin"):
        staged = store.stage(10**12)
        with open(path, "rb") as f:
            while chunk := f.read(1024 * 1024):
                staged.write(chunk)
        store.commit(staged, staged.finish())
        total += path.stat().st_size
    return total / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full tree (1.0 = the spec)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="the same for both clients (default: each client's own: ours auto, 0.5.8 100)")
    args = parser.parse_args()
    if not THEIRS.exists():
        print(f"the real ml-dash 0.5.8 is not installed at {THEIRS}: run scripts/setup.sh", file=sys.stderr)
        return 1
    s = args.scale
    spec = dict(experiments=10, points=int(50_000 * s), logs=int(5_000 * s), files=2, file_mb=10 * s)
    with tempfile.TemporaryDirectory(prefix="ml-dash-bench-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        make_tree(tree, **spec)
        points = spec["experiments"] * 2 * spec["points"]
        file_bytes = sum(p.stat().st_size for p in tree.rglob("*.bin"))
        records = upload_both(tree, work, args.batch_size, ["--skip-files"], "records")
        files = upload_both(tree, work, args.batch_size, ["--skip-metrics", "--skip-logs", "--skip-params"], "files")
        blob_rate = blob_store_rate(tree, work)
        small, large = work / "small", work / "large"
        make_tree(small, 1, int(20_000 * s) or 1000, 1000, 1, 1)
        make_tree(large, 10, int(20_000 * s) or 1000, 1000, 1, 1)
        rss = {}
        for name, t in (("1x", small), ("10x", large)):
            with live_server(work / f"srv-rss-{name}") as server:
                rss[name] = run_client(OURS, t, server.url, ["--api-key", server.token("b", "alice")],
                                       ["--progress", "none"], work)["rss_mb"]
    print(f"upload of {spec['experiments']} experiments: {points:,} metric points, "
          f"{spec['experiments'] * spec['logs']:,} log lines, {file_bytes / 2**20:,.0f} MB of files "
          f"(batch size: {args.batch_size or 'each client default'})")
    print(f"{'':28}{'ours':>12}{'0.5.8':>12}{'ratio':>9}")
    for label, res, unit in (("metrics+logs+params", records, points), ("files", files, file_bytes)):
        o, t = res["ours"], res["0.5.8"]
        print(f"{label + ' wall s':28}{o['seconds']:>12.2f}{t['seconds']:>12.2f}{t['seconds'] / o['seconds']:>8.1f}x")
        print(f"{'  requests':28}{o['requests']:>12,}{t['requests']:>12,}")
        print(f"{'  peak RSS MB':28}{o['rss_mb']:>12.0f}{t['rss_mb']:>12.0f}")
        if label == "files":
            rate = unit / o["seconds"]
            print(f"{'  file MB/s':28}{rate / 2**20:>12.1f}{unit / t['seconds'] / 2**20:>12.1f}")
            print(f"  blob store alone writes {blob_rate / 2**20:.1f} MB/s: ours reaches {100 * rate / blob_rate:.0f}%")
        else:
            print(f"{'  metric points/s':28}{unit / o['seconds']:>12,.0f}{unit / t['seconds']:>12,.0f}")
    print(f"our peak RSS: {rss['1x']:.0f} MB for a tree, {rss['10x']:.0f} MB for one 10x larger "
          f"({rss['10x'] / rss['1x']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
