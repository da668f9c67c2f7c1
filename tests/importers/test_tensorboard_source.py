"""TensorBoard reader: real logdirs written with tensorboardX, checked against TensorBoard's own loader."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml_dash.errors import InvalidInputError
from ml_dash.importers import tensorboard_source
from ml_dash.importers.source import FileItem, LogLine, MissingExtraError, Point, Problem, Record, SourceRun

pytest.importorskip("tensorboard")
tbx = pytest.importorskip("tensorboardX")

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # noqa: E402
from tensorboard.compat.proto import summary_pb2  # noqa: E402
from tensorboard.plugins.image import metadata as image_metadata  # noqa: E402
from tensorboard.plugins.scalar import summary_v2 as scalar_v2  # noqa: E402
from tensorboard.plugins.text import summary_v2 as text_v2  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

HPARAMS = {"lr": 0.125, "batch": 32, "opt": "adam", "nesterov": True}


def _write_run(logdir: Path, steps: int, *, text: bool = True, image: bool = True, suffix: str = "") -> None:
    with tbx.SummaryWriter(str(logdir), filename_suffix=suffix) as w:
        for step in range(steps):
            w.add_scalar("loss", 1.0 / (step + 1), step)
            w.add_scalar("acc/train", step * 0.1, step)
        if text:
            w.add_text("notes", "hello **world**", 3)
        if image:
            w.add_image("sample", np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5), 7)
        w.add_histogram("weights", np.arange(10.0), 1)


def _event_files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if "tfevents" in p.name)


def _reference_scalars(run_dir: Path) -> list[tuple[str, float, int, float]]:
    """Every scalar as TensorBoard's own EventFileLoader (with its compat layers) reads it."""
    out, plugins = [], {}  # a tag's plugin comes from its first event (TF2 writes metadata only once)
    for path in _event_files(run_dir):
        for event in EventFileLoader(str(path)).Load():
            for v in event.summary.value:
                if plugins.setdefault(v.tag, v.metadata.plugin_data.plugin_name) == "scalars":
                    out.append((v.tag, tensor_util.make_ndarray(v.tensor).item(), event.step, event.wall_time))
    return out


def _points(records: list[Record]) -> list[tuple[str, float, int, float]]:
    return [(r.metric, r.data["value"], r.data["step"], r.data["timestamp"])
            for r in records if isinstance(r, Point)]


def _record_offsets(path: Path) -> list[int]:
    """Start byte of every record, from the TFRecord framing (8-byte length, 4 CRC, data, 4 CRC)."""
    data, offsets, pos = path.read_bytes(), [], 0
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack("<Q", data[pos:pos + 8])[0]
    return offsets


def _by_key(source: Path) -> dict[str, SourceRun]:
    return {r.key: r for r in tensorboard_source.runs(source)}


def test_module_import_does_not_import_tensorboard() -> None:
    code = ("import sys, ml_dash.importers.tensorboard_source; "
            "sys.exit(any(m.split('.')[0] in ('tensorboard', 'tensorboardX') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_reads_runs_scalars_text_images_hparams(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    _write_run(logdir / "a", 25)
    _write_run(logdir / "b" / "c", 7, text=False, image=False)
    with tbx.SummaryWriter(str(logdir / "b")) as w:
        w.add_hparams(HPARAMS, {"hparam/acc": 0.75}, name="hp")

    found = list(tensorboard_source.runs(logdir))
    assert [r.key for r in found] == ["a", "b", "b/c", "b/hp"]
    assert [r.name for r in found] == ["a", "b", "b-c", "b-hp"]
    assert [r.where for r in found] == [str(logdir / k) for k in ["a", "b", "b/c", "b/hp"]]
    assert all(r.project is None and r.metadata["tensorboard"]["run"] == r.key for r in found)

    for run in found:
        records = list(run.records())
        assert not [r for r in records if isinstance(r, Problem)]
        assert _points(records) == _reference_scalars(Path(run.where))

    a, hp = found[0], found[3]
    records = list(a.records())
    assert len(_points(records)) == 50
    [line] = [r for r in records if isinstance(r, LogLine)]
    assert line.message == "hello **world**" and line.level == "info"
    assert line.metadata == {"tag": "notes/text_summary", "step": 3}
    assert line.timestamp is not None and line.timestamp.endswith("Z") and len(line.timestamp) == 27
    [image] = [r for r in records if isinstance(r, FileItem)]
    assert (image.prefix, image.filename) == ("/images/sample", "step_7.png")
    assert image.data is not None and image.data.startswith(b"\x89PNG")
    assert a.metadata["tensorboard"]["skipped"] == {"histograms": 1}

    assert hp.params() == {"lr": 0.125, "batch": 32.0, "opt": "adam", "nesterov": True}  # kept by records()
    assert a.params() == {}
    assert [p.metric for p in hp.records() if isinstance(p, Point)] == ["hparam/acc"]
    assert _by_key(tmp_path / "logs")[hp.key].params() == hp.params()  # without records(): read for them


def test_logdir_itself_is_a_run(tmp_path: Path) -> None:
    logdir = tmp_path / "mylogs"
    _write_run(logdir, 3, text=False, image=False)
    [run] = tensorboard_source.runs(logdir)
    assert (run.key, run.name, run.where) == (".", "mylogs", str(logdir))


def test_tf2_tensor_summaries(tmp_path: Path) -> None:
    """TF2 writers store scalars/text/images as tensors, with the metadata only on a tag's first event."""
    first = {"s": True, "t": True}

    def summary(pb: Any, key: str) -> Any:
        if not first[key]:
            pb.value[0].ClearField("metadata")
        first[key] = False
        return tbx.proto.summary_pb2.Summary.FromString(pb.SerializeToString())

    images = [b"\x89PNG fake one", b"\xff\xd8\xff fake jpeg"]
    img = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag="pics", metadata=image_metadata.create_summary_metadata("pics", ""),
        tensor=tensor_util.make_tensor_proto([b"2", b"2", *images]))])
    with tbx.SummaryWriter(str(tmp_path)) as w:
        fw = w._get_file_writer()
        for step in range(5):
            fw.add_summary(summary(scalar_v2.scalar_pb("tf2/loss", np.float32(step / 3)), "s"), step)
            fw.add_summary(summary(text_v2.text_pb("log", f"step {step}"), "t"), step)
        fw.add_summary(tbx.proto.summary_pb2.Summary.FromString(img.SerializeToString()), 9)
    [run] = tensorboard_source.runs(tmp_path)
    records = list(run.records())
    assert _points(records) == _reference_scalars(tmp_path)
    assert [r.data["value"] for r in records if isinstance(r, Point)] == [np.float32(s / 3).item() for s in range(5)]
    assert [r.message for r in records if isinstance(r, LogLine)] == [f"step {s}" for s in range(5)]
    files = [r for r in records if isinstance(r, FileItem)]
    assert [(f.prefix, f.filename, f.data) for f in files] == [
        ("/images/pics", "step_9_0.png", images[0]), ("/images/pics", "step_9_1.jpg", images[1])]


def test_same_sequence_twice_and_growth_appends(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _write_run(run_dir, 40)
    [path] = _event_files(run_dir)
    full = path.read_bytes()
    cut = _record_offsets(path)[30]  # as if the writer had only flushed 30 records so far
    path.write_bytes(full[:cut])
    [run] = tensorboard_source.runs(tmp_path)
    before = list(run.records())
    assert before == list(run.records())  # stable

    path.write_bytes(full)  # more events appended to the last file
    grown = list(run.records())
    assert len(grown) > len(before) and grown[:len(before)] == before

    _write_run(run_dir, 5, suffix=".z")  # a new, later file
    assert _event_files(run_dir)[-1].name.endswith(".z")
    newer = list(run.records())
    assert len(newer) > len(grown) and newer[:len(grown)] == grown
    assert _points(newer) == _reference_scalars(run_dir)


def _problems(records: list[Record]) -> list[Problem]:
    return [r for r in records if isinstance(r, Problem)]


def test_truncated_file_is_a_problem_and_the_rest_is_read(tmp_path: Path) -> None:
    _write_run(tmp_path / "a", 20, text=False, image=False)
    _write_run(tmp_path / "a", 5, text=False, image=False, suffix=".z")
    _write_run(tmp_path / "b", 6, text=False, image=False)
    first, second = _event_files(tmp_path / "a")
    offsets = _record_offsets(first)
    first.write_bytes(first.read_bytes()[:offsets[10] + 9])  # cut inside record 11's header

    runs = _by_key(tmp_path)
    records = list(runs["a"].records())
    [problem] = _problems(records)
    assert problem.where == str(first) and problem.position == f"byte {offsets[10]}"
    assert "truncated" in problem.message
    # records 1..10 of the first file (file_version + 9 scalars), then all of the second file
    assert _points(records) == _reference_scalars(tmp_path / "a")
    assert len(_points(records)) == 9 + 10
    assert records.index(problem) == 9  # reported where the file stopped, before the next file's records
    assert len(_points(list(runs["b"].records()))) == 12

    # cut inside a record's data: the header announces more bytes than the file has
    first.write_bytes(first.read_bytes()[:offsets[5] + 20])
    [problem] = _problems(list(runs["a"].records()))
    assert problem.position == f"byte {offsets[5]}" and "truncated" in problem.message


def test_flipped_bytes_fail_the_crc(tmp_path: Path) -> None:
    _write_run(tmp_path, 20, text=False, image=False)
    _write_run(tmp_path, 3, text=False, image=False, suffix=".z")
    first = _event_files(tmp_path)[0]
    offsets = _record_offsets(first)
    data = bytearray(first.read_bytes())
    data[offsets[4] + 14] ^= 0xFF  # inside record 5's data
    first.write_bytes(bytes(data))
    [run] = tensorboard_source.runs(tmp_path)
    records = list(run.records())
    [problem] = _problems(records)
    assert (problem.where, problem.position) == (str(first), f"byte {offsets[4]}")
    assert "CRC" in problem.message and "damaged" in problem.message
    assert len(_points(records)) == 3 + 6  # records 2..4 of the damaged file, all of the next

    data[offsets[4] + 14] ^= 0xFF
    data[offsets[7] + 2] ^= 0xFF  # inside record 8's length
    first.write_bytes(bytes(data))
    [problem] = _problems(list(run.records()))
    assert problem.position == f"byte {offsets[7]}" and "length CRC" in problem.message


def test_missing_library_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_run(tmp_path, 1, text=False, image=False)
    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing.event_file_loader", None)
    with pytest.raises(MissingExtraError) as info:
        tensorboard_source.runs(tmp_path)
    assert "ml-dash[import-tensorboard]" in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_not_a_logdir(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "x"
    if kind == "file":
        source.write_text("not a logdir")
    elif kind == "empty":
        (source / "sub").mkdir(parents=True)
        (source / "sub" / "notes.txt").write_text("no events here")
    with pytest.raises(InvalidInputError) as info:
        tensorboard_source.runs(source)
    assert str(source) in info.value.message and info.value.hint
