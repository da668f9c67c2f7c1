"""Files: `ml-dash upload` vs the real ml-dash 0.5.8 `ml-dash upload`, side by side in one run.

    .venv/bin/python bench/upload_files.py [--scale 1.0] [--skip-2gb] [--small 1000]

Each client gets a fresh `ml-dash serve` and uploads with `--skip-metrics --skip-logs --skip-params`:

* tree M's files: 10 experiments × 2 × 10 MB (times --scale), wall time, the ratio, MB/s beside
  what the server's blob store writes on its own (stage + hash + commit, no HTTP), over the whole
  run and over what is left once ours' fixed cost is taken out (the same upload again, when
  nothing is sent: start-up, scanning, the experiments); CPU seconds of each client and server;
* 1,000 × 10 kB files in one experiment (--small), wall time and the ratio;
* one 2 GB file (ours only, --skip-2gb to leave it out): the peak RSS of our client and of the
  server process.

``main(argv)`` returns the results as a dict too, so bench/upload.py can call it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OURS = REPO / ".venv" / "bin" / "ml-dash"
THEIRS = REPO / ".venv-ml-dash-0.5.8" / "bin" / "ml-dash"
TS = "2026-11-23T00:00:00.000000Z"
MB = 1024 * 1024

from tests.helpers.server import live_server  # noqa: E402

__all__ = ["main"]


def _experiment(root: Path, name: str) -> Path:
    d = root / "bench" / name
    for sub in ("logs", "metrics", "files"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "experiment.json").write_text(json.dumps({"name": name, "project": "bench", "description": None,
                                                   "tags": [], "bindrs": [], "folder": None, "metadata": None,
                                                   "created_at": TS, "write_protected": False}, indent=2))
    return d


def _entry(d: Path, file_id: str, path: str, name: str, size: int, checksum: str) -> dict[str, Any]:
    return {"id": file_id, "experimentId": f"bench/{d.name}", "path": path, "filename": name, "description": None,
            "tags": [], "contentType": "application/octet-stream", "sizeBytes": size, "checksum": checksum,
            "metadata": None, "uploadedAt": TS, "updatedAt": TS, "deletedAt": None}


def make_files_tree(root: Path, experiments: int, files: int, size: int, name: str = "run") -> int:
    """A tree in the 0.5.8 format holding only files (random content); returns the bytes written."""
    from ml_dash.records.clock import new_file_id

    total = 0
    for e in range(experiments):
        d = _experiment(root, f"{name}-{e:02d}")
        entries = []
        for k in range(files):
            file_id = new_file_id()
            blob = d / "files/checkpoints" / file_id / f"f-{k:05d}.bin"
            blob.parent.mkdir(parents=True)
            data = os.urandom(size)
            blob.write_bytes(data)
            total += size
            entries.append(_entry(d, file_id, "/checkpoints", blob.name, size, hashlib.sha256(data).hexdigest()))
        (d / "files/.files_metadata.json").write_text(json.dumps({"files": entries}, indent=2))
    return total


def make_big_file_tree(root: Path, size: int) -> None:
    """One experiment with one large file: a random 1 MB block repeated with a counter in front
    (every block differs, nothing is sparse or trivially compressible, and it is cheap to write)."""
    from ml_dash.records.clock import new_file_id

    d = _experiment(root, "big")
    file_id = new_file_id()
    blob = d / "files/checkpoints" / file_id / "big.bin"
    blob.parent.mkdir(parents=True)
    block = bytearray(os.urandom(MB))
    digest = hashlib.sha256()
    written = 0
    with open(blob, "wb") as f:
        while written < size:
            block[:8] = written.to_bytes(8, "little")
            chunk = bytes(block[: min(MB, size - written)])
            digest.update(chunk)
            f.write(chunk)
            written += len(chunk)
    entries = [_entry(d, file_id, "/checkpoints", blob.name, size, digest.hexdigest())]
    (d / "files/.files_metadata.json").write_text(json.dumps({"files": entries}, indent=2))


def run_client(cli: Path, tree: Path, url: str, token_args: list[str], extra: list[str], cwd: Path) -> dict[str, Any]:
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
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime}


def _server_peak_mb(pid: int) -> float:
    """The server's peak RSS so far (VmHWM), read before it is stopped."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu(pid: int) -> float:
    """CPU seconds the process used so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stored(server: Any) -> int:
    """Bytes of blobs the server holds (a check that the upload really happened)."""
    blobs = server.data_dir / "blobs"
    return sum(p.stat().st_size for p in blobs.rglob("*") if p.is_file() and ".staging" not in p.parts)


def upload(name: str, tree: Path, work: Path, label: str, again: bool = False) -> dict[str, Any]:
    """One upload to a fresh server; ``again``: then the same upload once more (ours: nothing is sent,
    so its wall time is the run's fixed cost: start-up, scanning, experiments, the server's answers)."""
    cli = OURS if name == "ours" else THEIRS
    with live_server(work / f"srv-{name}-{label}") as server:
        token = ["--api-key", server.token("bench", "alice")] if name == "ours" else ["--username", "alice"]
        flags = ["--skip-metrics", "--skip-logs", "--skip-params"]
        if name == "ours":
            flags += ["--progress", "none"]
        log = server.data_dir / "server.log"
        before = len(log.read_text().splitlines())
        cpu = _cpu(server.process.pid)
        r = run_client(cli, tree, server.url, token, flags, work)
        time.sleep(0.2)
        r["server_cpu"] = _cpu(server.process.pid) - cpu
        r["requests"] = sum(1 for line in log.read_text().splitlines()[before:] if line.startswith("{"))
        r["server_rss_mb"] = _server_peak_mb(server.process.pid)
        r["stored"] = _stored(server)
        if again:
            r["again"] = run_client(cli, tree, server.url, token, flags, work)
    return r


def both(tree: Path, work: Path, label: str, size: int) -> dict[str, dict[str, Any]]:
    out = {name: upload(name, tree, work, label, again=name == "ours") for name in ("ours", "0.5.8")}
    for name, r in out.items():  # a client that stored less did not do the work it is timed for
        if r["stored"] != size:
            raise SystemExit(f"{name}: the server holds {r['stored']:,} bytes of blobs, {size:,} were uploaded")
    return out


def blob_store_rate(tree: Path, work: Path) -> float:
    """Bytes/s the server's file blob store writes on its own (stage + hash + commit)."""
    from ml_dash.server.storage.blobs import FileBlobStore

    store = FileBlobStore(work / "blob-rate")
    total, start = 0, time.perf_counter()
    for path in tree.rglob("*.bin"):
        staged = store.stage(10**12)
        with open(path, "rb") as f:
            while chunk := f.read(MB):
                staged.write(chunk)
        store.commit(staged, staged.finish())
        total += path.stat().st_size
    seconds = time.perf_counter() - start
    shutil.rmtree(work / "blob-rate", ignore_errors=True)
    return total / seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of tree M's file size (1.0 = 10 MB)")
    parser.add_argument("--small", type=int, default=1000, help="how many 10 kB files in one experiment")
    parser.add_argument("--big-mb", type=int, default=2048, help="size of the one large file (MB)")
    parser.add_argument("--skip-2gb", action="store_true", help="leave out the large file")
    parser.add_argument("--only", choices=("m", "small", "big"), help="run one part only")
    args = parser.parse_args(argv)
    if not THEIRS.exists():
        raise SystemExit(f"the real ml-dash 0.5.8 is not installed at {THEIRS}: run scripts/setup.sh")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ml-dash-bench-files-") as tmp:
        work = Path(tmp)
        if args.only in (None, "m"):
            tree = work / "tree-m"
            size = make_files_tree(tree, 10, 2, int(10 * MB * args.scale))
            res = both(tree, work, "m", size)
            out["m"] = {**res, "bytes": size, "blob_rate": blob_store_rate(tree, work)}
            shutil.rmtree(tree)
        if args.only in (None, "small"):
            tree = work / "tree-small"
            size = make_files_tree(tree, 1, args.small, 10 * 1000, name="small")
            out["small"] = {**both(tree, work, "small", size), "bytes": size, "files": args.small}
            shutil.rmtree(tree)
        if args.only in (None, "big") and not args.skip_2gb:
            need = 2 * args.big_mb * MB + 512 * MB  # the tree and the server's copy
            free = shutil.disk_usage(work).free
            if free < need:
                out["big"] = {"skipped": f"{free / 2**30:.1f} GB free, {need / 2**30:.1f} GB needed"}
            else:
                tree = work / "tree-big"
                make_big_file_tree(tree, args.big_mb * MB)
                r = upload("ours", tree, work, "big")
                if r["stored"] != args.big_mb * MB:
                    raise SystemExit(f"ours: the server holds {r['stored']:,} bytes, not the large file")
                out["big"] = {"ours": r, "bytes": args.big_mb * MB, "blob_rate": blob_store_rate(tree, work)}
                shutil.rmtree(tree)
    report(out)
    return out


def report(out: dict[str, Any]) -> None:
    print(f"{'':34}{'ours':>10}{'0.5.8':>10}{'ratio':>9}")
    if "m" in out:
        m = out["m"]
        o, t = m["ours"], m["0.5.8"]
        print(f"tree M files ({m['bytes'] / MB:.0f} MB, 10 exps × 2)")
        print(f"{'  wall s':34}{o['seconds']:>10.2f}{t['seconds']:>10.2f}{t['seconds'] / o['seconds']:>8.1f}x")
        print(f"{'  MB/s':34}{m['bytes'] / o['seconds'] / MB:>10.1f}{m['bytes'] / t['seconds'] / MB:>10.1f}")
        print(f"{'  requests':34}{o['requests']:>10,}{t['requests']:>10,}")
        print(f"{'  client peak RSS MB':34}{o['rss_mb']:>10.0f}{t['rss_mb']:>10.0f}")
        print(f"{'  CPU s client / server':34}{o['cpu']:>5.1f}/{o['server_cpu']:<4.1f}{t['cpu']:>5.1f}/{t['server_cpu']:<4.1f}")
        rate = m["bytes"] / o["seconds"]
        fixed = o["again"]["seconds"]
        moving = m["bytes"] / max(o["seconds"] - fixed, 1e-3)
        print(f"  blob store alone writes {m['blob_rate'] / MB:.1f} MB/s: ours reaches {100 * rate / m['blob_rate']:.0f}%"
              f" over the whole run (goal ≥ 80%)")
        print(f"  ours again, nothing to send: {fixed:.2f} s (start-up, scan, experiments); the {o['seconds'] - fixed:.2f} s"
              f" left move {moving / MB:.1f} MB/s = {100 * moving / m['blob_rate']:.0f}% of the blob store")
    if "small" in out:
        s = out["small"]
        o, t = s["ours"], s["0.5.8"]
        print(f"{s['files']:,} small files (10 kB, one experiment)")
        print(f"{'  wall s':34}{o['seconds']:>10.2f}{t['seconds']:>10.2f}{t['seconds'] / o['seconds']:>8.1f}x"
              "  (goal ≥ 10x)")
        print(f"{'  requests':34}{o['requests']:>10,}{t['requests']:>10,}")
        print(f"{'  CPU s client / server':34}{o['cpu']:>5.1f}/{o['server_cpu']:<4.1f}{t['cpu']:>5.1f}/{t['server_cpu']:<4.1f}")
        print(f"  ours again, nothing to send: {o['again']['seconds']:.2f} s")
    if "big" in out:
        b = out["big"]
        if "skipped" in b:
            print(f"one large file: skipped ({b['skipped']})")
        else:
            o = b["ours"]
            print(f"one {b['bytes'] / MB / 1024:.1f} GB file (ours)")
            rate = b["bytes"] / o["seconds"]
            print(f"{'  wall s':34}{o['seconds']:>10.2f}   {rate / MB:.1f} MB/s = {100 * rate / b['blob_rate']:.0f}% of "
                  f"the blob store alone ({b['blob_rate'] / MB:.1f} MB/s)")
            print(f"{'  client peak RSS MB':34}{o['rss_mb']:>10.0f}  (goal < 150)")
            print(f"{'  server peak RSS MB':34}{o['server_rss_mb']:>10.0f}  (goal < 150)")


if __name__ == "__main__":
    main()
