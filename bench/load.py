"""Training runs and uploads at once, through HAProxy onto 1, 2, 4 `ml-dash serve` processes.

    .venv/bin/python bench/load.py [--runs 64] [--metrics 10] [--hz 10] [--seconds 20] [--uploads 4]
                                   [--processes 1,2,4] [--clients 4] [--quick] [--work-dir DIR]

One pgserver PostgreSQL and one moto S3 server (a process) for the whole bench; for each process
count P a fresh database and a fresh bucket, P servers on them behind HAProxy
(tests/helpers/balancer.py), and then, all at once, through the balancer:

* --runs training runs through the real SDK in remote mode (write-ahead spool and background
  sender as a user gets them), spread over --clients OS processes (threads inside: the clients are
  not one GIL). Each logs --metrics metrics at --hz Hz for --seconds of real time (paced by the
  clock), a log line per tick, a small file at its start and one at its end;
* --uploads `ml-dash upload` of a local tree written with the SDK in local mode, each tree its own
  project;
* a reader asking every 0.5 s for the series of a running experiment's metric (GET .../series,
  1,000 buckets over the whole series: the dashboard's live chart).

Measured, from the common start of the runs and uploads to the last client's exit (the runs'
final flush included):

* points/s (points sent) and requests/s (counted in the servers' request logs, without HAProxy's
  health checks);
* p50/p99 of every HTTP attempt the SDK made, timed in the client processes around
  httpx.Client.send (sending to the whole answer read, the client's own wait for CPU included),
  and beside it the time inside the servers (their request logs);
* errors: HTTP >= 400 or a broken connection at the SDK, what the SDK says it could not send,
  failed runs or uploads, series errors;
* server CPU seconds (summed over the processes) and peak RSS (the largest VmHWM of one process);
  the CPU of the clients, PostgreSQL, moto and HAProxy; how late the runs' last ticks came;
* the series route's p50/p99 under the load.

Afterwards everything is read back through the API and compared with what was sent: every metric
point by its step (and its value and index), every log line, every file (name and sha256), of
every run and every uploaded experiment. Exits 1 if anything was lost, doubled or wrong.

The runs are paced, so their points/s is what they offer (runs x metrics x hz) unless they fall
behind; the uploads are not (upload s: the slowest one's wall time, its start-up included). On a
small machine the clients, the servers, PostgreSQL, moto and HAProxy share the same cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ML_DASH = Path(sys.executable).parent / "ml-dash"
MOTO = Path(sys.executable).parent / "moto_server"

from tests.helpers.balancer import free_port, haproxy, missing_haproxy, start_servers, stop_servers  # noqa: E402
from tests.helpers.server import LiveServer, descendants  # noqa: E402

DEFAULTS = dict(runs=64, metrics=10, hz=10.0, seconds=20.0, uploads=4, processes="1,2,4", clients=4,
                upload_experiments=4, upload_points=20_000, upload_lines=2_000)
QUICK = dict(runs=8, metrics=3, hz=10.0, seconds=5.0, uploads=1, processes="1,2", clients=2,
             upload_experiments=2, upload_points=2_000, upload_lines=200)
NAMESPACE, PROJECT = "bench", "load"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
SERIES_EVERY = 0.5
PG_MAX_CONNECTIONS = 400  # each server process holds a connection per worker thread (up to 40)


# --- what the clients send (the reader computes the same to check what is stored) --------------------------
def metric_value(run: int, metric: int, step: int) -> float:
    return round(math.exp(-step / 150.0) * (metric + 1) + run * 1e-3, 9)


def run_files(name: str) -> dict[str, bytes]:
    config = json.dumps({"run": name, "model": "resnet18", "lr": 3e-4}, indent=2).encode()
    weights = hashlib.sha256(name.encode()).digest() * 2048  # 64 kB
    return {"config.json": config, "weights.bin": weights}


def upload_files(project: str, experiment: str) -> dict[str, bytes]:
    return {"data.bin": hashlib.sha256(f"{project}/{experiment}".encode()).digest() * 4096}  # 128 kB


# --- the client processes -------------------------------------------------------------------------------------
class Timings:
    """Every HTTP attempt of this process: milliseconds, status (or exception), a few error texts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ms: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.errors: list[str] = []

    def add(self, ms: float, status: str, what: str) -> None:
        with self.lock:
            self.ms.append(round(ms, 2))
            self.statuses[status] += 1
            if not status.isdigit() or int(status) >= 400:
                if len(self.errors) < 20:
                    self.errors.append(f"{what}: {status}")

    def install(self) -> None:
        """Times ``httpx.Client.send`` (what the SDK's ApiClient calls for each attempt)."""
        import httpx

        original = httpx.Client.send
        timings = self

        def send(client: httpx.Client, request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
            start = time.perf_counter()
            what = f"{request.method} {request.url.path}"
            try:
                response = original(client, request, *args, **kwargs)
            except httpx.HTTPError as exc:
                timings.add((time.perf_counter() - start) * 1000, type(exc).__name__, what)
                raise
            timings.add((time.perf_counter() - start) * 1000, str(response.status_code), what)
            return response

        httpx.Client.send = send  # type: ignore[method-assign]


def train(spec: dict[str, Any], index: int, start_mono: float, said: Callable[[dict[str, Any]], None]) -> float:
    """One run: open, wait for the common start, tick at hz for seconds, files at start and end.
    Returns how late (s) its last tick came after the common start's schedule (0: it kept pace)."""
    from ml_dash import Experiment

    name = f"run-{index:04d}"
    exp = Experiment(name=name, project=PROJECT, remote=spec["url"], api_key=spec["key"], tags=["load"])
    files = run_files(name)
    with exp.run:
        said({"run": name, "id": exp.id})
        exp.params.set(run=index, model={"name": "resnet18"}, optim={"lr": 3e-4})
        metrics = [exp.metrics(f"m{j}") for j in range(spec["metrics"])]
        exp.files("artifacts").save(files["config.json"], "config.json")
        hz, ticks = spec["hz"], spec["ticks"]
        begin = max(start_mono, time.monotonic())
        for step in range(ticks):
            delay = begin + step / hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for j, metric in enumerate(metrics):
                metric.append(value=metric_value(index, j, step), step=step)
            exp.log(f"{name} step {step}", level="info", step=step)
        late = max(0.0, time.monotonic() - (start_mono + (ticks - 1) / hz))
        exp.files("artifacts").save(files["weights.bin"], "weights.bin")
    return late


def worker(spec_path: Path) -> int:
    """A client process: ``spec["runs"]`` runs in threads; the result as JSON to ``spec["out"]``."""
    spec = json.loads(spec_path.read_text())
    timings = Timings()
    timings.install()
    failed: dict[str, str] = {}
    late: list[float] = []
    out_lock = threading.Lock()

    def said(doc: dict[str, Any]) -> None:
        with out_lock:
            print(json.dumps(doc), flush=True)

    start_mono = time.monotonic() + (spec["start_at"] - time.time())

    def one(index: int) -> None:
        try:
            late.append(train(spec, index, start_mono, said))
        except Exception as exc:  # noqa: BLE001 - reported, counted as an error
            failed[f"run-{index:04d}"] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=one, args=(i,)) for i in spec["runs"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(spec["out"]).write_text(json.dumps({
        "ms": timings.ms, "statuses": timings.statuses, "errors": timings.errors, "failed": failed, "late": late,
        "cpu": usage.ru_utime + usage.ru_stime}))
    return 0


# --- processes: CPU and memory ----------------------------------------------------------------------------
def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process so far (0 if it is gone)."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def family_cpu(root: int) -> float:
    """CPU of ``root`` and its live descendants (PostgreSQL: the postmaster and its backends; a
    server with --workers: its workers). A child that exited in between is not counted."""
    return cpu_seconds(root) + sum(cpu_seconds(pid) for pid in descendants(root))


def peak_rss_mb(root: int) -> float:
    """The largest VmHWM (peak resident set) of ``root`` and its descendants, in MB."""
    peak = 0.0
    for pid in [root, *descendants(root)]:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        peak = max([peak] + [int(x.split()[1]) / 1024 for x in lines if x.startswith("VmHWM:")])
    return peak


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --- PostgreSQL and S3 for the whole bench ------------------------------------------------------------------
class Backends:
    """One pgserver (unix socket only) and one moto S3 server process on 127.0.0.1."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.pg: Any = None
        self.pg_uri = ""
        self.moto: subprocess.Popen[bytes] | None = None
        self.s3 = ""

    def start(self) -> None:
        xdg = self.work / "xdg"
        xdg.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(xdg)
        import pgserver

        pgdata = self.work / "pg"
        self.pg = pgserver.get_server(str(pgdata), cleanup_mode="stop")
        # P servers x up to 40 threads x one connection each: more than PostgreSQL's default 100
        self.pg.psql(f"ALTER SYSTEM SET max_connections = {PG_MAX_CONNECTIONS};")
        self.pg.cleanup()
        self.pg = pgserver.get_server(str(pgdata), cleanup_mode="stop")
        self.pg_uri = self.pg.get_uri()
        port = free_port()
        with open(self.work / "moto.log", "ab") as log:
            self.moto = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log,
                                         env={**os.environ, **AWS_ENV})
        self.s3 = f"http://127.0.0.1:{port}"
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.moto.poll() is None:
            try:
                httpx.get(self.s3, timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"moto's S3 server did not start: {(self.work / 'moto.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.moto is not None and self.moto.poll() is None:
            self.moto.terminate()
            try:
                self.moto.wait(10)
            except subprocess.TimeoutExpired:
                self.moto.kill()
                self.moto.wait()
        if self.pg is not None:
            self.pg.cleanup()

    def fresh(self, label: str) -> tuple[str, str]:
        """A new database and a new bucket: ``(db_url, blobs_url)``."""
        import boto3
        import psycopg

        name = f"load_{label}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.pg_uri, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        bucket = name.replace("_", "-")
        boto3.client("s3", endpoint_url=self.s3, aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket=bucket)
        return self.pg_uri.replace("/postgres?", f"/{name}?", 1), f"s3://{bucket}/blobs?endpoint_url={self.s3}"

    def connections(self, db_url: str) -> int:
        """Connections to that database now (the servers hold one per worker thread)."""
        import psycopg

        name = db_url.split("?", 1)[0].rsplit("/", 1)[1]
        with psycopg.connect(self.pg_uri, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
        return int(row[0]) if row else 0

    def pids(self) -> dict[str, int]:
        out = {"postgres": int(self.pg.get_pid())} if self.pg is not None else {}
        if self.moto is not None:
            out["moto"] = self.moto.pid
        return out


# --- upload trees ---------------------------------------------------------------------------------------------
@dataclass
class UploadSpec:
    experiments: int
    points: int
    lines: int

    def project(self, k: int) -> str:
        return f"upload-{k}"


def make_upload_tree(root: Path, k: int, spec: UploadSpec) -> None:
    """A local tree (SDK, local mode): experiments x (2 metrics, log lines, a file) in project upload-k."""
    from ml_dash import Experiment

    project = spec.project(k)
    for e in range(spec.experiments):
        name = f"exp-{e}"
        exp = Experiment(name=name, project=project, local_path=root)
        with exp.run:
            exp.params.set(upload=k, experiment=e)
            for j, metric in enumerate(("loss", "acc")):
                exp.metrics(metric).append_batch([{"value": metric_value(e, j, i), "step": i}
                                                  for i in range(spec.points)])
            for i in range(spec.lines):
                exp.log(f"{project}/{name} line {i}", level="info")
            for filename, data in upload_files(project, name).items():
                exp.files("data").save(data, filename)


# --- reading everything back ----------------------------------------------------------------------------------
@dataclass
class Check:
    lost: int = 0
    doubled: int = 0
    wrong: int = 0
    problems: list[str] = field(default_factory=list)

    def compare(self, what: str, expected: Counter[Any], stored: Counter[Any]) -> None:
        lost = sum((expected - stored).values())
        doubled = sum((stored - expected).values())
        self.lost += lost
        self.doubled += doubled
        if (lost or doubled) and len(self.problems) < 20:
            self.problems.append(f"{what}: {lost} lost, {doubled} doubled or unexpected")

    def add(self, other: Check) -> None:
        self.lost += other.lost
        self.doubled += other.doubled
        self.wrong += other.wrong
        self.problems += other.problems[: max(0, 20 - len(self.problems))]


class Reader:
    """Reads an experiment's records back through the balancer."""

    def __init__(self, url: str, key: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, empty: Any, **params: Any) -> Any:
        """The answer; ``empty`` when the server has no such thing (404: nothing of it arrived)."""
        r = self.http.get(path, params=params)
        if r.status_code == 404:
            return empty
        r.raise_for_status()
        return r.json()

    def points(self, exp: str, metric: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _ in range(10_000):  # bounded: pages of 100,000
            page = self._get(f"/experiments/{exp}/metrics/{metric}/data", {"data": [], "hasMore": False},
                             startIndex=len(out), limit=100_000)
            out += page["data"]
            if not page["hasMore"] or not page["data"]:
                break
        return out

    def logs(self, exp: str) -> list[str]:
        out: list[str] = []
        for _ in range(10_000):
            page = self._get(f"/experiments/{exp}/logs", {"logs": [], "hasMore": False}, limit=10_000,
                             offset=len(out))
            out += [x["message"] for x in page["logs"]]
            if not page["hasMore"] or not page["logs"]:
                break
        return out

    def files(self, exp: str) -> list[tuple[str, str]]:
        return [(f["filename"], f["checksum"]) for f in self._get(f"/experiments/{exp}/files", {"files": []})["files"]]

    def experiments(self, project: str) -> dict[str, str]:
        items = self._get(f"/ui/projects/{project}/experiments", {"items": []}, limit=500)["items"]
        return {x["name"]: x["id"] for x in items}

    def check(self, exp: str, label: str, metrics: dict[str, Callable[[int], float]], steps: int,
              messages: list[str], files: dict[str, bytes]) -> Check:
        """Every point (by step; its value and its index too), every log line, every file."""
        c = Check()
        for metric, value in metrics.items():
            stored = self.points(exp, metric)
            c.compare(f"{label} metric {metric}", Counter(range(steps)), Counter(int(p["data"]["step"])
                                                                                 for p in stored))
            c.wrong += sum(1 for p in stored if p["data"].get("value") != value(int(p["data"]["step"])))
            if sorted(int(p["index"]) for p in stored) != list(range(len(stored))):
                c.problems.append(f"{label} metric {metric}: indices are not 0..{len(stored) - 1}")
                c.wrong += 1
        c.compare(f"{label} logs", Counter(messages), Counter(self.logs(exp)))
        expected_files = Counter((n, hashlib.sha256(d).hexdigest()) for n, d in files.items())
        c.compare(f"{label} files", expected_files, Counter(self.files(exp)))
        return c


def verify(url: str, key: str, args: argparse.Namespace, run_ids: dict[str, str], upload: UploadSpec) -> Check:
    ticks = int(args.hz * args.seconds)
    jobs: list[Callable[[Reader], Check]] = []
    for index in range(args.runs):
        name = f"run-{index:04d}"

        def run_job(reader: Reader, index: int = index, name: str = name) -> Check:
            if not run_ids.get(name):  # never opened (or opened without reaching the server)
                c = Check(lost=ticks * (args.metrics + 1) + 2)
                c.problems.append(f"{name}: never opened")
                return c
            metrics = {f"m{j}": (lambda s, j=j: metric_value(index, j, s)) for j in range(args.metrics)}
            return reader.check(run_ids[name], name, metrics, ticks, [f"{name} step {s}" for s in range(ticks)],
                                run_files(name))

        jobs.append(run_job)
    for k in range(args.uploads):
        jobs.append(lambda reader, k=k: upload_check(reader, k, upload))
    total = Check()
    readers = [Reader(url, key) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(readers)) as pool:
            for c in pool.map(lambda ij: ij[1](readers[ij[0] % len(readers)]), enumerate(jobs)):
                total.add(c)
    finally:
        for r in readers:
            r.close()
    return total


def upload_check(reader: Reader, k: int, spec: UploadSpec) -> Check:
    project = spec.project(k)
    ids = reader.experiments(project)
    total = Check()
    for e in range(spec.experiments):
        name = f"exp-{e}"
        if name not in ids:
            total.lost += 2 * spec.points + spec.lines + 1
            total.problems.append(f"{project}/{name}: not on the server")
            continue
        metrics = {m: (lambda s, e=e, j=j: metric_value(e, j, s)) for j, m in enumerate(("loss", "acc"))}
        total.add(reader.check(ids[name], f"{project}/{name}", metrics, spec.points,
                               [f"{project}/{name} line {i}" for i in range(spec.lines)], upload_files(project, name)))
    return total


# --- the load ---------------------------------------------------------------------------------------------
class SeriesReader(threading.Thread):
    """GET the series of one running experiment's metric every 0.5 s until stopped (bounded)."""

    def __init__(self, url: str, key: str, first_id: Callable[[], str | None], limit: int) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.first_id, self.limit = url, key, first_id, limit
        self.stop = threading.Event()
        self.ms: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60) as c:
            for _ in range(self.limit):
                if self.stop.wait(SERIES_EVERY):
                    return
                exp = self.first_id()
                if exp is None:
                    continue
                start = time.perf_counter()
                try:
                    r = c.get(f"/experiments/{exp}/metrics/m0/series", params={"y": "value", "x": "step",
                                                                                "points": 1000})
                except httpx.HTTPError as exc:
                    self.errors.append(type(exc).__name__)
                    continue
                if r.status_code == 404:  # the run has not sent its first point yet
                    continue
                self.ms.append((time.perf_counter() - start) * 1000)
                if r.status_code != 200:
                    self.errors.append(f"{r.status_code}: {r.text[:200]}")


@dataclass
class Launched:
    workers: list[tuple[subprocess.Popen[str], Path, Path]] = field(default_factory=list)
    uploads: list[tuple[subprocess.Popen[bytes], Path, float]] = field(default_factory=list)
    run_ids: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first_id(self) -> str | None:
        with self.lock:
            return self.run_ids[self.order[0]] if self.order else None

    def read_ids(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                doc = json.loads(line)
                with self.lock:
                    self.run_ids[doc["run"]] = doc["id"]
                    self.order.append(doc["run"])

    def kill_all(self) -> None:
        """Whatever still runs (after an error or a timeout), by pid."""
        for proc in [w[0] for w in self.workers] + [u[0] for u in self.uploads]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def client_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "DREAMLAKE_"))}
    env.update({"ML_DASH_CONFIG_DIR": str(home), "ML_DASH_SPOOL_DIR": str(home / "spool"), "NO_COLOR": "1"})
    return env


def niced(args: argparse.Namespace) -> list[str]:
    """The clients stand in for training machines and laptops elsewhere: on this one machine they
    run at a lower priority (``nice``, which execs: the pid stays the client's), so they take the
    CPU the servers leave instead of starving them. ``--client-nice 0`` runs them as equals."""
    return ["nice", "-n", str(args.client_nice)] if args.client_nice else []


def launch(args: argparse.Namespace, url: str, key: str, rdir: Path, trees: Path, start_at: float) -> Launched:
    out = Launched()
    clients = max(1, min(args.clients, args.runs))
    for w in range(clients):
        spec = {"url": url, "key": key, "runs": list(range(w, args.runs, clients)), "metrics": args.metrics,
                "hz": args.hz, "ticks": int(args.hz * args.seconds), "start_at": start_at,
                "out": str(rdir / f"worker-{w}.json")}
        spec_path = rdir / f"worker-{w}.spec.json"
        spec_path.write_text(json.dumps(spec))
        err = rdir / f"worker-{w}.stderr"
        with open(err, "w") as stderr:
            proc = subprocess.Popen([*niced(args), sys.executable, __file__, "--worker", str(spec_path)],
                                    stdout=subprocess.PIPE,
                                    stderr=stderr, text=True, env=client_env(rdir / f"home-{w}"), cwd=rdir)
        out.workers.append((proc, Path(spec["out"]), err))
        threading.Thread(target=out.read_ids, args=(proc,), daemon=True).start()
    for k in range(args.uploads):
        udir = rdir / f"upload-{k}"
        udir.mkdir()
        log = udir / "upload.log"
        delay = max(0.0, start_at - time.time())
        with open(log, "wb") as f:
            upload = shlex.join([*niced(args), str(ML_DASH), "upload", str(trees / f"tree-{k}"), "--remote", url, "--api-key", key,
                                 "--progress", "none", "--state-file", str(udir / "state.json")])
            cmd = f"sleep {delay:.3f}; exec {upload}"  # starts with the runs; exec: the pid is the upload's
            proc = subprocess.Popen(["/bin/sh", "-c", cmd], stdout=f, stderr=subprocess.STDOUT,
                                    env=client_env(trees / f"home-{k}"), cwd=udir)
        out.uploads.append((proc, log, start_at))
    return out


@dataclass
class Snapshot:
    cpu: dict[str, float]
    requests: list[list[float]]  # per server: the ms of each request logged so far
    clients_cpu: float
    at: float

    def since(self, before: Snapshot) -> list[float]:
        """The ms of the requests logged after ``before``, all servers."""
        return [ms for now, then in zip(self.requests, before.requests, strict=True) for ms in now[len(then):]]


def server_requests(server: LiveServer) -> list[float]:
    """The time in the server (ms) of each request in its log so far, without HAProxy's health checks."""
    out = []
    for line in server.log.splitlines():
        if line.startswith("{") and '"path": "/health"' not in line:
            try:
                out.append(float(json.loads(line)["ms"]))
            except (ValueError, KeyError):
                out.append(float("nan"))
    return out


def snapshot(servers: list[LiveServer], others: dict[str, int]) -> Snapshot:
    cpu = {"servers": sum(family_cpu(s.process.pid) for s in servers)}
    cpu.update({name: (family_cpu(pid) if name == "postgres" else cpu_seconds(pid)) for name, pid in others.items()})
    return Snapshot(cpu=cpu, requests=[server_requests(s) for s in servers], clients_cpu=children_cpu(),
                    at=time.monotonic())


def wait_all(procs: list[subprocess.Popen[Any]], timeout: float) -> list[float]:
    """Polls until every process has exited (killed at the deadline): when each ended (time.time())."""
    ended = [0.0] * len(procs)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(ended):
        for i, proc in enumerate(procs):
            if not ended[i] and proc.poll() is not None:
                ended[i] = time.time()
        time.sleep(0.05)
    for i, proc in enumerate(procs):
        if not ended[i]:
            proc.kill()
            proc.wait()
            ended[i] = time.time()
    return ended


def wait_for(launched: Launched, args: argparse.Namespace) -> dict[str, Any]:
    """Waits (bounded) for every client; what they report, and when the last one ended."""
    procs = [w[0] for w in launched.workers] + [u[0] for u in launched.uploads]
    ended = wait_all(procs, args.seconds + 300)
    result: dict[str, Any] = {"ms": [], "statuses": Counter(), "errors": [], "failed": {}, "unsent": 0, "sdk_said": [],
                              "uploads_failed": 0, "upload_s": 0.0, "ended": max(ended), "late": [], "cpu": 0.0}
    for proc, out, err in launched.workers:
        stderr = err.read_text(errors="replace")
        # what the SDK says at the end or when it gives up on the server (records left in the spool)
        result["unsent"] += sum(1 for line in stderr.splitlines() if line.startswith("ml-dash:"))
        result["sdk_said"] += [line for line in stderr.splitlines() if line.startswith("ml-dash:")][:3]
        if proc.returncode != 0 or not out.exists():
            result["failed"][f"client pid {proc.pid}"] = f"exit {proc.returncode}: {stderr[-500:]}"
            continue
        doc = json.loads(out.read_text())
        result["ms"] += doc["ms"]
        result["statuses"].update(doc["statuses"])
        result["errors"] += doc["errors"]
        result["failed"].update(doc["failed"])
        result["late"] += doc["late"]
        result["cpu"] += doc["cpu"]
    for (proc, log, started), end in zip(launched.uploads, ended[len(launched.workers):], strict=True):
        result["upload_s"] = max(result["upload_s"], end - started)
        if proc.returncode != 0:
            result["uploads_failed"] += 1
            result["errors"].append(f"upload exit {proc.returncode}: {log.read_text(errors='replace')[-500:]}")
    return result


@contextmanager
def cluster(backends: Backends, processes: int, rdir: Path) -> Iterator[tuple[list[LiveServer], Any, str, str]]:
    db, blobs = backends.fresh(f"p{processes}")
    servers = start_servers(processes, db, blobs, rdir, env=AWS_ENV)
    try:
        key = servers[0].token("bench", NAMESPACE)
        # checks every second (not 200 ms): each one costs the server a database ping and an S3 request
        with haproxy([("127.0.0.1", s.port) for s in servers], rdir / "haproxy", check_interval_ms=1000) as lb:
            yield servers, lb, key, db
    finally:
        stop_servers(servers)


def one_round(backends: Backends, processes: int, args: argparse.Namespace, work: Path, trees: Path,
              upload: UploadSpec) -> dict[str, Any]:
    rdir = work / f"round-{processes}"
    rdir.mkdir()
    with cluster(backends, processes, rdir) as (servers, lb, key, db), ExitStack() as stack:
        others = {**backends.pids(), "haproxy": lb.process.pid}
        clients_cpu = children_cpu()
        start_at = time.time() + 2.5  # the clients import the SDK and open their runs meanwhile
        launched = launch(args, lb.url, key, rdir, trees, start_at)
        stack.callback(launched.kill_all)
        time.sleep(max(0.0, start_at - time.time()))
        before = snapshot(servers, others)  # the load starts: the runs tick, the uploads start
        reader = SeriesReader(lb.url, key, launched.first_id, limit=int((args.seconds + 400) / SERIES_EVERY))
        reader.start()
        clients = wait_for(launched, args)
        reader.stop.set()
        reader.join(60)
        time.sleep(0.3)  # the last requests' log lines
        after = snapshot(servers, others)
        connections = backends.connections(db)
        check = verify(lb.url, key, args, launched.run_ids, upload)
        rss = max(peak_rss_mb(s.process.pid) for s in servers)
    in_server = after.since(before)
    wall = clients["ended"] - start_at  # from the first tick to the last client's exit (final flush included)
    points = args.runs * args.metrics * int(args.hz * args.seconds) + args.uploads * upload.experiments * 2 * upload.points
    errors = (sum(n for status, n in clients["statuses"].items() if not status.isdigit() or int(status) >= 400)
              + clients["unsent"] + len(clients["failed"]) + clients["uploads_failed"] + len(reader.errors))
    return {"processes": processes, "wall": wall, "points_s": points / wall,
            "requests_s": len(in_server) / wall, "server_p50": percentile(in_server, 50),
            "server_p99": percentile(in_server, 99), "p50": percentile(clients["ms"], 50),
            "p99": percentile(clients["ms"], 99), "sdk_requests": len(clients["ms"]), "errors": errors,
            "server_cpu": after.cpu["servers"] - before.cpu["servers"], "rss": rss,
            "series_p50": percentile(reader.ms, 50), "series_p99": percentile(reader.ms, 99),
            "series_n": len(reader.ms), "lost": check.lost, "doubled": check.doubled, "wrong": check.wrong,
            "problems": check.problems, "upload_s": clients["upload_s"],
            "other_cpu": {k: after.cpu[k] - before.cpu[k] for k in others},
            "clients_cpu": after.clients_cpu - clients_cpu,  # from their start (imports, opening the runs)
            "runs_cpu": clients["cpu"], "connections": connections, "late_mean": statistics.fmean(clients["late"]) if clients["late"] else 0.0,
            "late_max": max(clients["late"], default=0.0),
            "error_detail": {"sdk statuses": dict(clients["statuses"]), "sdk messages": clients["unsent"],
                             "sdk said": clients["sdk_said"][:3],
                             "failed": clients["failed"], "uploads failed": clients["uploads_failed"],
                             "series": reader.errors[:5], "examples": clients["errors"][:5]}}


# --- output ---------------------------------------------------------------------------------------------------
COLUMNS = ("processes", "points/s", "requests/s", "p50 ms", "p99 ms", "errors", "server CPU s", "peak RSS MB",
           "series p50/p99 ms", "lost", "doubled", "wall s", "upload s", "in-server p50/p99 ms")


def print_table(rows: list[dict[str, Any]]) -> None:
    cells = [COLUMNS] + [(
        str(r["processes"]), f"{r['points_s']:,.0f}", f"{r['requests_s']:,.0f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}",
        str(r["errors"]), f"{r['server_cpu']:.1f}", f"{r['rss']:.0f}", f"{r['series_p50']:.0f}/{r['series_p99']:.0f}",
        str(r["lost"]), str(r["doubled"]), f"{r['wall']:.1f}", f"{r['upload_s']:.1f}",
        f"{r['server_p50']:.0f}/{r['server_p99']:.0f}") for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for n, row in enumerate(cells):
        print(" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def print_report(rows: list[dict[str, Any]], args: argparse.Namespace, upload: UploadSpec) -> None:
    ticks = int(args.hz * args.seconds)
    print(f"\n{args.runs} runs x {args.metrics} metrics at {args.hz:g} Hz for {args.seconds:g} s "
          f"({args.runs * args.metrics * ticks:,} points, {args.runs * ticks:,} log lines, {args.runs * 2} files) "
          f"in {max(1, min(args.clients, args.runs))} client processes, plus {args.uploads} upload(s) of "
          f"{upload.experiments} experiments x (2 x {upload.points:,} points, {upload.lines:,} lines, 1 file) "
          f"({args.uploads * upload.experiments * 2 * upload.points:,} points), "
          f"plus the series of one running metric every {SERIES_EVERY:g} s; through HAProxy; "
          f"clients at nice {args.client_nice}")
    print_table(rows)
    base = rows[0]
    for r in rows[1:]:
        print(f"scaling {r['processes']} / {base['processes']} process(es): points/s {r['points_s'] / base['points_s']:.2f}x, "
              f"requests/s {r['requests_s'] / base['requests_s']:.2f}x, upload time {r['upload_s'] / base['upload_s']:.2f}x, "
              f"SDK p99 {r['p99'] / base['p99']:.2f}x, series p99 {r['series_p99'] / base['series_p99']:.2f}x")
    for r in rows:
        other = ", ".join(f"{k} {v:.1f}" for k, v in r["other_cpu"].items())
        print(f"P={r['processes']}: CPU s besides the servers: the run clients {r['runs_cpu']:.1f}, the uploads "
              f"{r['clients_cpu'] - r['runs_cpu']:.1f}, {other}; {r['sdk_requests']:,} SDK requests timed, "
              f"{r['series_n']} series reads; the runs' last tick late by {r['late_mean']:.1f} s on average, "
              f"{r['late_max']:.1f} s at most (0: they kept pace); PostgreSQL connections held at the end: "
              f"{r['connections']}; values wrong: {r['wrong']}")
        if r["errors"]:
            print(f"  errors: {json.dumps(r['error_detail'])[:1500]}")
        for problem in r["problems"][:10]:
            print(f"  {problem}")
    print(f"os.cpu_count() = {os.cpu_count()}: the clients, the servers, PostgreSQL, moto and HAProxy all share "
          "these cores, so scaling with server processes is bounded by them (more processes add no CPU).\n"
          "p50/p99: every HTTP attempt of the SDK, timed around httpx.Client.send in the client processes (it "
          "includes the client's own wait for CPU); in-server: the servers' request logs (time inside the app). "
          "Runs are paced: their points/s is what they offer unless they fall behind (see 'late').")
    lost, doubled, wrong = (sum(r[k] for r in rows) for k in ("lost", "doubled", "wrong"))
    print(f"read back through the API: lost={lost} doubled={doubled} (points with a wrong value or index: {wrong})")


# --- main -----------------------------------------------------------------------------------------------------
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, help=f"training runs (default {DEFAULTS['runs']})")
    parser.add_argument("--metrics", type=int, help=f"metrics per run (default {DEFAULTS['metrics']})")
    parser.add_argument("--hz", type=float, help=f"ticks per second of each run (default {DEFAULTS['hz']:g})")
    parser.add_argument("--seconds", type=float, help=f"seconds each run ticks (default {DEFAULTS['seconds']:g})")
    parser.add_argument("--uploads", type=int, help=f"concurrent `ml-dash upload`s (default {DEFAULTS['uploads']})")
    parser.add_argument("--processes", help=f"server process counts, one round each (default {DEFAULTS['processes']})")
    parser.add_argument("--clients", type=int, help=f"client OS processes hosting the runs (default {DEFAULTS['clients']})")
    parser.add_argument("--upload-experiments", type=int, help="experiments per upload tree")
    parser.add_argument("--upload-points", type=int, help="points per metric of an uploaded experiment")
    parser.add_argument("--upload-lines", type=int, help="log lines of an uploaded experiment")
    parser.add_argument("--client-nice", type=int, default=10,
                        help="the clients' nice value (default 10: they stand in for other machines; 0: equals)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    parser.add_argument("--work-dir", type=Path, help="keep everything here (default: a temporary directory, removed)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.processes = [int(p) for p in str(args.processes).split(",") if p.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.worker is not None:
        return worker(args.worker)
    why = missing_haproxy()
    if why:
        print(why, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ml-dash-load-")) if args.work_dir is None else args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    for name in [k for k in os.environ if k.startswith(("ML_DASH_", "DREAMLAKE_"))]:
        del os.environ[name]  # no ambient settings (the SDK writing the upload trees reads them)
    os.environ["ML_DASH_CONFIG_DIR"] = str(work / "home")
    upload = UploadSpec(args.upload_experiments, args.upload_points, args.upload_lines)
    backends = Backends(work)
    rows = []
    try:
        trees = work / "trees"
        for k in range(args.uploads):
            make_upload_tree(trees / f"tree-{k}", k, upload)
            # untimed, once: what an earlier command leaves (the composition cache of this environment)
            subprocess.run([str(ML_DASH), "upload", str(trees / f"tree-{k}"), "--dry-run", "--progress", "none"],
                           env=client_env(trees / f"home-{k}"), cwd=trees, capture_output=True, check=True,
                           timeout=120)
        backends.start()
        for processes in args.processes:
            print(f"round: {processes} server process(es) ...", file=sys.stderr, flush=True)
            rows.append(one_round(backends, processes, args, work, trees, upload))
    finally:
        backends.stop()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print_report(rows, args, upload)
    return 1 if any(r["lost"] or r["doubled"] or r["wrong"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
