"""The SDK's local mode, call by call, against the files it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_dash import Experiment, ExperimentStateError, InvalidInputError, MLDashError


def open_exp(root: Path, **kw: object) -> Experiment:
    kw.setdefault("name", "run-1")
    kw.setdefault("project", "proj")
    return Experiment(local_path=root, **kw).run.start()  # type: ignore[arg-type]


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_params_merge_bump_version_and_read_back(tmp_path: Path) -> None:
    exp = open_exp(tmp_path)
    exp.params.set(model={"name": "r18", "layers": {"depth": 18}}, lr=0.1)
    exp.params.set(lr=0.05, extra=None)
    doc = json.loads((exp.dir / "parameters.json").read_text())
    assert list(doc) == ["version", "data", "updatedAt"]
    assert doc["version"] == 2
    assert exp.params.get() == {"model.name": "r18", "model.layers.depth": 18, "lr": 0.05, "extra": None}
    assert exp.params.get(flatten=False)["model"] == {"name": "r18", "layers": {"depth": 18}}
    exp.params.set()  # empty: no write, no version bump
    assert json.loads((exp.dir / "parameters.json").read_text())["version"] == 2


def test_logs_levels_metadata_and_fluent_form(tmp_path: Path) -> None:
    exp = open_exp(tmp_path)
    exp.log("plain")
    exp.log("loud", level="WARN", step=3)
    exp.log(metadata={"epoch": 1}).error("boom", code=2)
    exp.run.complete()
    got = lines(exp.dir / "logs/logs.jsonl")
    assert [(g["sequenceNumber"], g["level"], g["message"]) for g in got] == [
        (0, "info", "plain"), (1, "warn", "loud"), (2, "error", "boom")]
    assert "metadata" not in got[0] and got[2]["metadata"] == {"epoch": 1, "code": 2}
    assert (exp.dir / "logs/.log_sequence").read_text() == "3"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.log("x", level="verbose"), "invalid log level 'verbose'"),
        (lambda e: e.metrics("m").append_batch([]), "data_points cannot be empty"),
        (lambda e: e.metrics("m").append(), "metric point is empty"),
        (lambda e: e.metrics("m").append(v=object()), "metric point is not JSON-serialisable"),
        (lambda e: e.log("x", blob=object()), "log metadata is not JSON-serialisable"),
        (lambda e: e.params.set(x={1, 2}), "parameters is not JSON-serialisable"),
        (lambda e: e.files(file_path="/no/such/file").save(), "file not found: /no/such/file"),
        (lambda e: e.files().save(), "file_path is required for save()"),
        (lambda e: e.files(file_id="123").download(), "file 123 not found"),
        (lambda e: e.metrics("../escape"), "metric name '../escape' would leave"),
    ],
)
def test_bad_input_raises_one_documented_error(tmp_path: Path, call, message: str) -> None:
    exp = open_exp(tmp_path)
    with pytest.raises(InvalidInputError) as info:
        call(exp)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)  # code written for 0.5.8 still catches it


def test_nothing_can_be_written_to_a_closed_experiment(tmp_path: Path) -> None:
    exp = Experiment(name="e", project="p", local_path=tmp_path)
    with pytest.raises(ExperimentStateError, match="not open"):
        exp.log("too early")
    with exp.run:
        pass
    with pytest.raises(ExperimentStateError):
        exp.metrics("m").append(v=1)


@pytest.mark.parametrize("bad", [{"name": "a/b", "project": "p"}, {"name": "e", "project": ".."}, {"name": "e"}])
def test_bad_experiment_names_are_refused(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(MLDashError):
        Experiment(local_path=tmp_path, **bad)


def test_metrics_append_batch_read_stats_and_list(tmp_path: Path) -> None:
    exp = open_exp(tmp_path)
    loss = exp.metrics("loss", description="d", tags=["t"], metadata={"unit": "nats"})
    assert loss.append(value=1.0, step=0)["index"] == "0"
    result = loss.append_batch([{"value": 0.5, "step": 1}, {"value": 0.25, "step": 2}])
    assert (result["startIndex"], result["endIndex"], result["count"]) == ("1", "2", 2)
    exp.metrics("train").log(acc=0.9)  # the seed's spelling
    exp.metrics.append(value=3)  # unnamed -> metrics/None
    read = loss.read(start_index=1, limit=5)
    assert [p["index"] for p in read["data"]] == [1, 2] and read["hasMore"] is False
    assert loss.read(start_index=0, limit=1)["hasMore"] is True
    stats = loss.stats()
    assert (stats["totalDataPoints"], stats["description"], stats["metadata"]) == ("3", "d", {"unit": "nats"})
    names = sorted(str(m["name"]) for m in loss.list_all())
    assert names == ["None", "loss", "train"]
    meta = json.loads((exp.dir / "metrics/loss/metadata.json").read_text())
    assert (meta["totalDataPoints"], meta["nextIndex"]) == (3, 3)


def test_metric_description_is_kept_from_creation(tmp_path: Path) -> None:
    exp = open_exp(tmp_path)
    exp.metrics("m", description="first").append(v=1)
    exp.metrics("m", description="second").append(v=2)
    assert exp.metrics("m").stats()["description"] == "first"


def test_nested_metric_names_become_directories(tmp_path: Path) -> None:
    exp = open_exp(tmp_path)
    exp.metrics("train/loss").append(v=1)
    exp.flush()
    assert (exp.dir / "metrics/train/loss/data.jsonl").exists()


def test_files_save_list_download_update_delete(tmp_path: Path) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("hello")
    exp = open_exp(tmp_path / "root")
    saved = exp.files(file_path=str(src), prefix="/docs", tags=["a"], metadata={"k": 1}).save()
    blob = exp.dir / "files/docs" / saved["id"] / "notes.txt"
    assert blob.read_text() == "hello" and saved["contentType"] == "text/plain" and saved["sizeBytes"] == 5
    assert [f["filename"] for f in exp.files(prefix="/docs").list()] == ["notes.txt"]
    assert exp.files(tags=["zzz"]).list() == []
    out = exp.files(file_id=saved["id"], dest_path=str(tmp_path / "copy.txt")).download()
    assert Path(out).read_text() == "hello"
    updated = exp.files(file_id=saved["id"], description="new").update()
    assert updated["description"] == "new" and updated["tags"] == ["a"]
    deleted = exp.files(file_id=saved["id"]).delete()
    assert deleted["deletedAt"] and exp.files().list() == []
    assert blob.exists()  # soft delete keeps the blob, as 0.5.8


def test_saving_same_path_and_name_replaces_the_old_file(tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"1")
    exp = open_exp(tmp_path / "root")
    first = exp.files(file_path=str(src), prefix="/m").save()
    src.write_bytes(b"22")
    second = exp.files(file_path=str(src), prefix="/m").save()
    assert [f["id"] for f in exp.files().list()] == [second["id"]]
    assert not (exp.dir / "files/m" / first["id"]).exists()


def test_seed_file_forms(tmp_path: Path) -> None:
    exp = open_exp(tmp_path / "root")
    a = exp.files("models").save(b"\x00\x01", "model.pth")
    b = exp.files("models").save({"w": [1, 2]}, "state.pkl")
    c = exp.files(prefix="/cfg").save_json({"lr": 0.1}, "config.json")
    src = tmp_path / "ckpt.bin"
    src.write_bytes(b"abc")
    d = exp.files(str(src), prefix="/ckpt").save()
    assert [(x["path"], x["filename"]) for x in (a, b, c, d)] == [
        ("/models", "model.pth"), ("/models", "state.pkl"), ("/cfg", "config.json"), ("/ckpt", "ckpt.bin")]
    assert (exp.dir / "files/models" / a["id"] / "model.pth").read_bytes() == b"\x00\x01"


def test_prefix_form_uses_the_0_5_8_layout(tmp_path: Path) -> None:
    exp = Experiment(prefix="alice/vision/sweeps/2025/lr-0.1", local_path=tmp_path / ".dash/alice/vision/sweeps/2025/lr-0.1")
    with exp.run:
        exp.log("hi")
    assert exp.dir == tmp_path / ".dash/sweeps/2025/vision/lr-0.1"
    doc = json.loads((exp.dir / "experiment.json").read_text())
    assert (doc["name"], doc["project"], doc["folder"]) == ("lr-0.1", "vision", "/sweeps/2025")
    assert exp.owner == "alice"


def test_reopen_continues_numbering_and_records_update(tmp_path: Path) -> None:
    with Experiment(name="e", project="p", local_path=tmp_path, tags=["a"]).run as exp:
        exp.log("one")
        exp.metrics("m").append(v=1)
    with Experiment(name="e", project="p", local_path=tmp_path, description="later").run as exp:
        exp.log("two")
        exp.metrics("m").append(v=2)
    doc = json.loads((exp.dir / "experiment.json").read_text())
    assert doc["tags"] == ["a"] and doc["description"] == "later" and "updated_at" in doc
    assert [x["sequenceNumber"] for x in lines(exp.dir / "logs/logs.jsonl")] == [0, 1]
    assert [x["index"] for x in lines(exp.dir / "metrics/m/data.jsonl")] == [0, 1]


def test_decorator_and_failure_status(tmp_path: Path) -> None:
    exp = Experiment(name="e", project="p", local_path=tmp_path)

    @exp.run
    def train(e: Experiment, n: int) -> int:
        e.log(f"n={n}")
        return n * 2

    assert train(4) == 8
    with pytest.raises(ZeroDivisionError), exp.run:
        exp.log("about to fail")
        1 / 0  # noqa: B018
    assert len(lines(exp.dir / "logs/logs.jsonl")) == 2


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    with Experiment(name="e", project="p", local_path=tmp_path / "root").run as exp:
        exp.params.set(a=1)
        exp.params.set(a=2)
        exp.metrics("m").append(v=1)
        exp.files(file_path=str(src)).save()
    leftovers = [p for p in (tmp_path / "root").rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert leftovers == []
