"""`ml-dash upload` vs the real ml-dash 0.5.8 `ml-dash upload`, side by side in one run.

    .venv/bin/python bench/upload.py [--scale 1.0] [--batch-size N] [--no-small-files]

Tree M: 10 experiments × (2 metrics × 50,000 points, 5,000 log lines, 2 × 10 MB files)
(times --scale). Each client first runs once with --dry-run (untimed: the state any earlier
command leaves, such as our composition cache), then uploads into a fresh `ml-dash serve` on 127.0.0.1: the whole
tree, then records only (--skip-files), then files only; ours also strict vs lenient. Prints
wall time, requests, client and server CPU seconds, peak RSS and the ratios, our peak RSS for
a tree and one 10× larger, and (bench/upload_files.py) 1,000 small files and the blob store.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OURS = REPO / ".venv" / "bin" / "ml-dash"
THEIRS = REPO / ".venv-ml-dash-0.5.8" / "bin" / "ml-dash"

from bench.upload_files import run_client  # noqa: E402
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process so far (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_in(log: Path, start: int) -> int:
    return sum(1 for line in log.read_text().splitlines()[start:] if line.startswith("{"))


def upload(name: str, tree: Path, work: Path, label: str, extra: list[str], batch: int | None) -> dict:
    """One client into a fresh server: wall, client CPU and RSS, server CPU, requests."""
    cli = OURS if name.startswith("ours") else THEIRS
    with live_server(work / f"srv-{name}-{label}") as server:
        token = ["--api-key", server.token("bench", "alice")] if cli is OURS else ["--username", "alice"]
        log = server.data_dir / "server.log"
        before = len(log.read_text().splitlines())
        flags = (["--batch-size", str(batch)] if batch else []) + extra + (
            ["--progress", "none"] if cli is OURS else [])
        server_cpu = cpu_seconds(server.process.pid)
        r = run_client(cli, tree, server.url, token, flags, work)
        time.sleep(0.2)  # the last request's log line
        r["server_cpu"] = cpu_seconds(server.process.pid) - server_cpu
        r["requests"] = requests_in(log, before)
    return r


PARTS = {"total": [], "records": ["--skip-files"], "files": ["--skip-metrics", "--skip-logs", "--skip-params"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full tree (1.0 = tree M)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="the same for both clients (default: each client's own: ours auto, 0.5.8 100)")
    parser.add_argument("--no-small-files", action="store_true", help="skip bench/upload_files.py's part")
    parser.add_argument("--only-ours", action="store_true", help="skip the 0.5.8 client (no ratios)")
    args = parser.parse_args()
    if not THEIRS.exists():
        print(f"the real ml-dash 0.5.8 is not installed at {THEIRS}: run scripts/setup.sh", file=sys.stderr)
        return 1
    s = args.scale
    spec = dict(experiments=10, points=int(50_000 * s), logs=int(5_000 * s), files=2, file_mb=10 * s)
    clients = ("ours",) if args.only_ours else ("ours", "0.5.8")
    with tempfile.TemporaryDirectory(prefix="ml-dash-bench-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        make_tree(tree, **spec)
        points = spec["experiments"] * 2 * spec["points"]
        lines = spec["experiments"] * spec["logs"]
        file_bytes = sum(p.stat().st_size for p in tree.rglob("*.bin"))
        # A first dry run of each client (not timed): what any user's earlier command left behind, e.g.
        # our composition cache in ~/.ml-dash/cache (HOME is the work directory), warm for the runs below.
        for c in clients:
            cli = OURS if c == "ours" else THEIRS
            run_client(cli, tree, "http://127.0.0.1:9", ["--api-key", "warm-up"], ["--dry-run"], work)
        res = {(c, part): upload(c, tree, work, part, flags, args.batch_size)
               for part, flags in PARTS.items() for c in clients}
        res[("ours strict", "records")] = upload("ours-strict", tree, work, "strict", ["--skip-files", "--strict"],
                                                 args.batch_size)
        small, large = work / "small", work / "large"
        make_tree(small, 1, int(20_000 * s) or 1000, 1000, 1, 1)
        make_tree(large, 10, int(20_000 * s) or 1000, 1000, 1, 1)
        rss = {n: upload("ours", t, work, f"rss-{n}", [], None)["rss_mb"] for n, t in (("1x", small), ("10x", large))}
    print(f"tree M x {s}: {spec['experiments']} experiments, {points:,} metric points, {lines:,} log lines, "
          f"{file_bytes / 2**20:,.0f} MB of files (batch size: {args.batch_size or 'each client default'})")
    print(f"{'':14}{'client':>8}{'wall s':>9}{'ratio':>8}{'requests':>10}{'client CPU':>12}{'server CPU':>12}"
          f"{'peak RSS MB':>13}")
    for part in PARTS:
        for c in (*clients, *(("ours strict",) if part == "records" else ())):
            r = res[(c, part)]
            ratio = res[("0.5.8", part)]["seconds"] / r["seconds"] if ("0.5.8", part) in res else 0
            shown = f"{ratio:>7.1f}x" if c != "0.5.8" and ratio else f"{'':>8}"
            print(f"{part:14}{c:>8}{r['seconds']:>9.2f}{shown}{r['requests']:>10,}{r['cpu']:>12.2f}"
                  f"{r['server_cpu']:>12.2f}{r['rss_mb']:>13.0f}")
    rec = res[("ours", "records")]
    print(f"records: {(points + lines) / rec['seconds']:,.0f} records/s ours"
          + (f", {(points + lines) / res[('0.5.8', 'records')]['seconds']:,.0f} 0.5.8" if len(clients) > 1 else ""))
    print(f"strict / lenient (records): {res[('ours strict', 'records')]['seconds'] / rec['seconds']:.2f}x "
          f"(goal <= 1.3x)")
    files = res[("ours", "files")]
    print(f"files: {file_bytes / files['seconds'] / 2**20:,.1f} MB/s ours")
    print(f"our peak RSS: {rss['1x']:.0f} MB for a tree, {rss['10x']:.0f} MB for one 10x larger "
          f"({rss['10x'] / rss['1x']:.2f}x)")
    if not args.no_small_files:
        sys.stdout.flush()
        from bench.upload_files import main as files_main

        files_main(["--skip-2gb"] if s < 1 else [])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
