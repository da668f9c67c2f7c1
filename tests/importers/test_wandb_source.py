"""The W&B reader against runs written by the real wandb in offline mode.

The runs are written once per module in a subprocess (wandb's global state and its wandb-core
service stay out of pytest), then read back here and compared with what the writer logged and
with a separate, naive reading of the ``.wandb`` records.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml_dash.errors import InvalidInputError
from ml_dash.importers.source import FileItem, LogLine, MissingExtraError, Point, Problem, SourceRun
from ml_dash.importers.wandb_source import runs

pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")

pytestmark = pytest.mark.slow

WRITER = r"""
import json, math, os, sys
from pathlib import Path

out = Path(sys.argv[1])
import wandb

def children():
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                pids.append(int(d.name))
        except OSError:
            pass
    return pids

config = {"lr": 0.01, "model": {"layers": 3, "act": "relu"}, "seeds": [1, 2]}
run = wandb.init(mode="offline", dir=out, project="proj", name="full run", config=config,
                 notes="the notes", tags=["t1", "t2"], group="g", job_type="train")
logged = []
for i in range(400):  # ~200 KiB of records: several 32 KiB blocks
    row = {"loss": 1.0 / (i + 1), "acc": i, "train": {"lr": 0.5 * i}, "word": "w%d" % i}
    if i == 7:
        row["loss"] = math.nan
    run.log(row)
    logged.append(row)
print("hello stdout\nsecond line")
print("to stderr", file=sys.stderr)
sys.stdout.write("progress 10%\rprogress 50%\rprogress 100%\n")
sys.stdout.write("no newline at the end")
sys.stdout.flush()
run.config.update({"late": "yes"})
run.summary["best"] = 0.25
run.summary["deep"] = {"a": 1}
(Path(run.dir) / "sub").mkdir()
(Path(run.dir) / "sub" / "notes.txt").write_text("in a subdir")
(Path(out) / "saved.txt").write_text("saved")
wandb.save(str(Path(out) / "saved.txt"), base_path=str(out), policy="now")
first = {"id": run.id, "dir": str(Path(run.dir).parent), "config": dict(config, late="yes"),
         "logged": logged}
pids = children()
run.finish()

run = wandb.init(mode="offline", dir=out, project="proj", name="failing")
run.log({"x": 1})
second = {"id": run.id, "dir": str(Path(run.dir).parent)}
pids += children()
run.finish(exit_code=1)

# An offline resume of the first run writes a second directory with the same run id.
run = wandb.init(mode="offline", dir=out, project="proj", id=first["id"], resume="allow")
run.log({"loss": 9.0})
resumed = {"dir": str(Path(run.dir).parent)}
pids += children()
run.finish()
wandb.teardown()
(out / "expected.json").write_text(json.dumps(
    {"first": first, "second": second, "resumed": resumed, "pids": pids}, allow_nan=True))
"""


def write_runs(out: Path) -> dict[str, Any]:
    """Run WRITER with the real wandb in a subprocess, everything of wandb's kept below ``out``'s parent."""
    home = out.parent / (out.name + "-home")
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(out), HOME=str(home),
               WANDB_CONFIG_DIR=str(home / "config"), WANDB_CACHE_DIR=str(home / "cache"),
               WANDB_DATA_DIR=str(home / "data"))
    subprocess.run([sys.executable, "-c", WRITER, str(out)], env=env, cwd=out, check=True, timeout=300,
                   capture_output=True)
    expected = json.loads((out / "expected.json").read_text())
    (out / "expected.json").unlink()
    expected["out"] = out
    return expected  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return write_runs(tmp_path_factory.mktemp("wandb_src"))


def test_no_wandb_core_left_running(made: dict[str, Any]) -> None:
    assert made["pids"], "the writer should have seen its wandb-core service"
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in made["pids"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in made["pids"])


# --- an independent, naive reading of the records ------------------------------------------------


def naive(path: Path) -> Iterator[tuple[int, int, Any]]:
    """(first byte, end byte, Record) per record; no checks, whole file in memory."""
    data = path.read_bytes()
    pos, parts, start = 7, b"", 0
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind in (1, 2):
            start, parts = pos, b""
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(parts)
            yield start, pos, rec


def key(item: Any) -> str:
    return "/".join(item.nested_key) or item.key


def naive_points(path: Path, skip: range = range(0)) -> list[tuple[str, Any, Any, Any]]:
    out = []
    for start, end, rec in naive(path):
        if rec.WhichOneof("record_type") != "history" or (start < skip.stop and end > skip.start):
            continue
        items = {key(i): json.loads(i.value_json) for i in rec.history.item}
        for i in rec.history.item:
            v = items[key(i)]
            if not key(i).startswith("_") and type(v) in (int, float):
                out.append((key(i), v, items["_step"], items["_timestamp"]))
    return out


def points(run: SourceRun) -> list[tuple[str, Any, Any, Any]]:
    return [(r.metric, r.data["value"], r.data["step"], r.data["timestamp"])
            for r in run.records() if isinstance(r, Point)]


def same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    """Equal, with NaN equal to NaN."""
    def fix(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in r) for r in rows]
    return fix(a) == fix(b)


def by_key(made: dict[str, Any], source: Path | None = None) -> dict[str, SourceRun]:
    return {r.key: r for r in runs(source or made["out"])}


def log_file(run_dir: str | Path) -> Path:
    return next(Path(run_dir).glob("run-*.wandb"))


# --- mapping -------------------------------------------------------------------------------------


def test_runs_and_metadata(made: dict[str, Any]) -> None:
    first, second = made["first"], made["second"]
    found = by_key(made)
    resumed_key = f"{first['id']}/{Path(made['resumed']['dir']).name}"
    assert set(found) == {first["id"], second["id"], resumed_key}

    run = found[first["id"]]
    assert (run.name, run.project, run.description, run.tags) == ("full run", "proj", "the notes", ["t1", "t2"])
    assert run.where == first["dir"]
    meta = run.metadata
    assert meta["status"] == "COMPLETED"
    w = meta["wandb"]
    assert (w["run_id"], w["project"], w["group"], w["job_type"], w["exit_code"]) == (
        first["id"], "proj", "g", "train", 0)
    assert w["start_time"].endswith("Z") and w["start_time"][:2] == "20"
    assert "exit" not in w

    # The summary: replay every summary record independently (last value wins, nested keys nest).
    summary: dict[str, Any] = {}
    for _, _, rec in naive(log_file(first["dir"])):
        for u in rec.summary.update if rec.WhichOneof("record_type") == "summary" else ():
            node = summary
            path = list(u.nested_key) or [u.key]
            for k in path[:-1]:
                node = node.setdefault(k, {})
            node[path[-1]] = json.loads(u.value_json)
    assert json.dumps(w["summary"], sort_keys=True) == json.dumps(summary, sort_keys=True)
    last = first["logged"][-1]
    assert w["summary"]["best"] == 0.25 and w["summary"]["deep"] == {"a": 1}
    assert (w["summary"]["acc"], w["summary"]["train"]["lr"], w["summary"]["word"]) == (
        last["acc"], last["train"]["lr"], last["word"])

    failed = found[second["id"]]
    assert (failed.name, failed.metadata["status"], failed.metadata["wandb"]["exit_code"]) == ("failing", "FAILED", 1)

    resumed = found[resumed_key]
    assert resumed.name == first["id"]  # an offline resume does not know the display name
    assert points(resumed) == [("loss", 9, 0, points(resumed)[0][3])]


def test_params(made: dict[str, Any]) -> None:
    run = by_key(made)[made["first"]["id"]]
    assert run.params() == made["first"]["config"]


def test_points_match_log_and_records(made: dict[str, Any]) -> None:
    first = made["first"]
    got = points(by_key(made)[first["id"]])
    assert same(got, naive_points(log_file(first["dir"])))
    # ... and what the writer logged: numbers only, nested keys joined with "/".
    want = []
    for step, row in enumerate(first["logged"]):
        want += [("loss", row["loss"], step), ("acc", row["acc"], step), ("train/lr", row["train"]["lr"], step)]
    assert sorted(map(repr, [(m, float(v), s) for m, v, s, _ in got])) == sorted(
        map(repr, [(m, float(v), s) for m, v, s in want]))
    assert all(isinstance(t, float) and t > 1e9 for *_, t in got)


def test_console_lines_match_output_log(made: dict[str, Any]) -> None:
    first = made["first"]
    lines = [r for r in by_key(made)[first["id"]].records() if isinstance(r, LogLine)]
    written = (Path(first["dir"]) / "files" / "output.log").read_text().splitlines()
    assert [line.message for line in lines] == written
    assert "progress 100%" in written and "no newline at the end" in written  # flushed: the run exited
    err = [line for line in lines if line.level == "error"]
    assert [line.message for line in err] == ["to stderr"] and err[0].metadata == {"stream": "stderr"}
    assert all(line.metadata == {"stream": "stdout"} for line in lines if line.level == "info")
    assert all(line.timestamp and line.timestamp.endswith("Z") for line in lines)


def test_files(made: dict[str, Any]) -> None:
    first = made["first"]
    files_dir = Path(first["dir"]) / "files"
    items = [r for r in by_key(made)[first["id"]].records() if isinstance(r, FileItem | Problem)]
    assert all(isinstance(r, FileItem) for r in items), items
    on_disk = sorted(p.relative_to(files_dir) for p in files_dir.rglob("*") if p.is_file())
    assert sorted(Path(r.prefix.removeprefix("/wandb").lstrip("/"), r.filename) for r in items) == on_disk
    assert {(r.prefix, r.filename) for r in items} >= {("/wandb", "saved.txt"), ("/wandb/sub", "notes.txt"),
                                                       ("/wandb", "output.log")}
    assert all(r.path and r.path.is_file() for r in items)


def test_source_forms(made: dict[str, Any]) -> None:
    first = made["first"]
    out = made["out"]
    assert (out / "wandb" / "latest-run").is_symlink()
    everything = [r.key for r in runs(out)]
    assert everything == [r.key for r in runs(out / "wandb")]
    assert len(everything) == len(set(everything)) == 3
    assert [r.key for r in runs(Path(first["dir"]))] == [first["id"]]
    assert [r.key for r in runs(log_file(first["dir"]))] == [first["id"]]


def test_not_a_source(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    for bad in (tmp_path, tmp_path / "file.txt", tmp_path / "missing"):
        with pytest.raises(InvalidInputError):
            runs(bad)


def test_missing_library(made: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb.proto.wandb_internal_pb2", None)
    with pytest.raises(MissingExtraError) as exc:
        runs(made["out"])
    assert "ml-dash[import-wandb]" in str(exc.value)


def test_import_does_not_import_wandb() -> None:
    code = "import sys, ml_dash.importers.wandb_source; assert 'wandb' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- stability, growth, damage ------------------------------------------------------------------


def copy_run(made: dict[str, Any], tmp_path: Path) -> tuple[Path, Path]:
    run_dir = tmp_path / "wandb" / Path(made["first"]["dir"]).name
    shutil.copytree(made["first"]["dir"], run_dir, symlinks=True)
    return run_dir, log_file(run_dir)


def stream(run: SourceRun) -> list[Any]:
    return [r for r in run.records() if isinstance(r, Point | LogLine)]


def test_stable_order_and_growth(made: dict[str, Any], tmp_path: Path) -> None:
    run_dir, log = copy_run(made, tmp_path)
    full = stream(next(runs(run_dir)))
    assert repr(full) == repr(stream(next(runs(run_dir))))
    # A run caught while it was being written: the file cut at record boundaries. What the
    # shorter file gives must be a prefix of what the whole file gives.
    ends = [end for _, end, _ in naive(log)]
    data = log.read_bytes()
    for end in (ends[len(ends) // 3], ends[-2]):
        log.write_bytes(data[:end])
        run = next(runs(run_dir))
        part = stream(run)
        assert 0 < len(part) <= len(full) and repr(part) == repr(full[: len(part)])
        assert not any(isinstance(r, Problem) for r in run.records())
        assert run.metadata["status"] == "FAILED" and run.metadata["wandb"]["exit"] is None  # no exit record


def test_corrupt_block(made: dict[str, Any], tmp_path: Path) -> None:
    run_dir, log = copy_run(made, tmp_path)
    data = bytearray(log.read_bytes())
    assert len(data) > 3 * 32768
    block = range(32768, 2 * 32768)
    naive_all = naive_points(log)
    data[block.start + 500 : block.start + 510] = b"\xff" * 10
    shutil.copy(log, log.with_name("orig"))
    log.write_bytes(bytes(data))
    run = next(runs(run_dir))
    problems = [r for r in run.records() if isinstance(r, Problem)]
    assert len(problems) == 1 and problems[0].where == str(log)
    offset = int(problems[0].position.split()[1])
    assert block.start <= offset <= block.start + 500 and "record" in problems[0].position
    # Lost: every record touching block 1 from the bad chunk on; read: all before, all after.
    want = naive_points(log.with_name("orig"), skip=range(offset, block.stop))
    got = points(run)
    assert same(got, want) and len(want) < len(naive_all)
    assert got[-1][2] == made["first"]["logged"].__len__() - 1  # read on to the last step


def test_truncated_tail(made: dict[str, Any], tmp_path: Path) -> None:
    run_dir, log = copy_run(made, tmp_path)
    ends = [end for _, end, _ in naive(log)]
    data = log.read_bytes()
    cut = ends[len(ends) // 2] + 20  # inside the next record
    want = naive_points(log, skip=range(ends[len(ends) // 2], len(data)))
    log.write_bytes(data[:cut])
    run = next(runs(run_dir))
    problems = [r for r in run.records() if isinstance(r, Problem)]
    assert len(problems) == 1 and "truncated" in problems[0].message
    assert int(problems[0].position.split()[1]) == ends[len(ends) // 2]
    assert same(points(run), want)


def test_bad_header_still_imports_files(made: dict[str, Any], tmp_path: Path) -> None:
    run_dir, log = copy_run(made, tmp_path)
    log.write_bytes(b"garbage" + log.read_bytes()[7:])
    run = next(runs(run_dir))
    records = list(run.records())
    assert isinstance(records[0], Problem) and records[0].position.startswith("byte 0 ")
    assert not any(isinstance(r, Point | LogLine) for r in records)
    assert any(isinstance(r, FileItem) and r.filename == "output.log" for r in records)
    assert run.key == made["first"]["id"]  # from the file name


def test_missing_named_file(made: dict[str, Any], tmp_path: Path) -> None:
    run_dir, _ = copy_run(made, tmp_path)
    (run_dir / "files" / "requirements.txt").unlink()
    records = list(next(runs(run_dir)).records())
    problems = [r for r in records if isinstance(r, Problem)]
    assert len(problems) == 1 and "requirements.txt" in problems[0].message
    assert any(isinstance(r, FileItem) for r in records)
