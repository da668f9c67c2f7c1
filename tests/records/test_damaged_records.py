"""Every record model refuses damaged input with a message naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_dash.errors import RecordError
from ml_dash.records import (
    ExperimentRecord,
    FilesManifest,
    LogLine,
    MetricMetadata,
    MetricPoint,
    ParametersRecord,
    Problem,
    iter_jsonl,
    load_record,
)

GOOD_LOG = '{"sequenceNumber": 0, "timestamp": "2026-11-22T16:57:37.635370Z", "level": "info", "message": "ok"}'
GOOD_POINT = '{"index": 0, "data": {"value": 1.0}, "createdAt": "2026-11-22T16:57:37.640258Z"}'


def problems(path: Path, model: type) -> list[str]:
    return [str(r) for _, r in iter_jsonl(path, model) if isinstance(r, Problem)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"sequenceNumber": 1, "level": "info"', "invalid JSON"),
        ("", "blank line"),
        ('{"sequenceNumber": 1, "level": "info"}', "message: required key is missing"),
        ('{"message": "x", "level": "verbose"}', "level: Value error, must be one of"),
        ('["not", "an", "object"]', "expected a JSON object, got an array"),
        ('{"message": "x", "sequenceNumber": -1}', "sequenceNumber: Input should be greater than or equal to 0"),
        ('{"message": "x", "metadata": [1]}', "metadata: Input should be a valid dictionary"),
    ],
)
def test_log_line_damage_names_file_and_line(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "logs.jsonl"
    path.write_text(f"{GOOD_LOG}\n{line}\n{GOOD_LOG}\n")
    found = problems(path, LogLine)
    assert len(found) == 1
    assert found[0].startswith(f"{path}:2: ")
    assert expected in found[0]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"index": 3, "createdAt": "x"}', "data: required key is missing"),
        ('{"index": 3, "data": 5}', "data: Input should be a valid dictionary"),
        ('{"index": "three", "data": {}}', "index: Input should be a valid integer"),
        ("{index: 3}", "invalid JSON"),
    ],
)
def test_metric_point_damage_names_file_and_line(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(f"{GOOD_POINT}\n{GOOD_POINT}\n{line}\n")
    found = problems(path, MetricPoint)
    assert found == [f"{path}:3: {found[0].split(': ', 1)[1]}"]
    assert expected in found[0]


def test_truncated_last_line_is_reported_as_truncated(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(f"{GOOD_POINT}\n" + GOOD_POINT[:30])
    (only,) = problems(path, MetricPoint)
    assert only.startswith(f"{path}:2: truncated last line")


def test_valid_lines_around_damage_are_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(f"{GOOD_POINT}\nnot json\n{GOOD_POINT}\n\n{GOOD_POINT}\n")
    results = list(iter_jsonl(path, MetricPoint))
    assert [n for n, r in results if isinstance(r, MetricPoint)] == [1, 3, 5]
    assert [n for n, r in results if isinstance(r, Problem)] == [2, 4]


def test_nan_and_infinity_points_are_accepted(tmp_path: Path) -> None:
    # 0.5.8 writes json.dumps(float("nan")) as NaN; diverging losses are real data, not damage.
    path = tmp_path / "data.jsonl"
    path.write_text('{"index": 0, "data": {"loss": NaN, "x": Infinity}, "createdAt": "t"}\n')
    ((_, rec),) = list(iter_jsonl(path, MetricPoint))
    assert isinstance(rec, MetricPoint) and rec.data["x"] == float("inf")


def test_prefix_layout_point_with_ts_is_read(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"index":0,"data":{"v":1},"createdAt":"2026-01-01T00:00:00Z","_ts":1767225600.5}\n')
    ((_, rec),) = list(iter_jsonl(path, MetricPoint))
    assert isinstance(rec, MetricPoint) and rec.ts == 1767225600.5


@pytest.mark.parametrize(
    ("model", "text", "expected"),
    [
        (ExperimentRecord, '{"name": "a"}', "project: required key is missing"),
        (ExperimentRecord, '{"project": "p"}', "name: required key is missing"),
        (ExperimentRecord, '{"name": "a/b", "project": "p"}', "name: Value error, must be a single path segment"),
        (ExperimentRecord, '{"name": "a",\n "project": }', ":2: invalid JSON"),
        (ParametersRecord, '["a"]', "expected a JSON object, got an array"),
        (ParametersRecord, '{"version": 2, "data": [1, 2]}', "data: Input should be a valid dictionary"),
        (ParametersRecord, '{"version": 0, "data": {}}', "version: Input should be greater than or equal to 1"),
        (MetricMetadata, '{"name": "x"}', "metricId: required key is missing"),
        (MetricMetadata, '{"metricId": "m", "name": "x", "totalDataPoints": -3}', "totalDataPoints"),
        (FilesManifest, '{"7353821829828676": {"filename": "a"}}', ""),
        (FilesManifest, '{"files": {"id": "1"}}', "files: Input should be a valid list"),
        (FilesManifest, '{"files": [{"id": "1", "filename": "a", "sizeBytes": 1, "checksum": "zz"}]}',
         "files.0.checksum: Value error, must be a lowercase sha256"),
        (FilesManifest, '{"files": [{"id": "1", "filename": "../../x", "sizeBytes": 1, "checksum": "' + "a" * 64 + '"}]}',
         "files.0.filename: Value error, must be a plain name"),
        (FilesManifest, '{"files": [{"id": "1", "path": "/../../etc", "filename": "x", "sizeBytes": 1, "checksum": "'
         + "a" * 64 + '"}]}', "files.0.path: Value error, must not contain"),
    ],
)
def test_json_record_damage_names_the_file(tmp_path: Path, model: type, text: str, expected: str) -> None:
    path = tmp_path / "record.json"
    path.write_text(text)
    if model is FilesManifest and not expected:
        # The 0.5.8 validator's imagined shape ({id: info}) has no "files" key: it is
        # an empty manifest plus unknown keys, which must not pass as a list of files.
        assert load_record(path, FilesManifest).files == []
        return
    with pytest.raises(RecordError) as info:
        load_record(path, model)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_record_file_is_a_record_error(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="file is missing"):
        load_record(tmp_path / "experiment.json", ExperimentRecord)


def test_legacy_flat_parameters_file_is_its_own_data(tmp_path: Path) -> None:
    path = tmp_path / "parameters.json"
    path.write_text('{"lr": 0.1, "model.depth": 18}')
    assert load_record(path, ParametersRecord).data == {"lr": 0.1, "model.depth": 18}


def test_every_record_of_the_real_tree_is_valid(real_tree: Path) -> None:
    for path in real_tree.rglob("*"):
        if path.name.endswith(".jsonl"):
            model = LogLine if path.parent.name == "logs" else MetricPoint
            assert not problems(path, model), path
    for path in real_tree.rglob("experiment.json"):
        load_record(path, ExperimentRecord)
    for path in real_tree.rglob("parameters.json"):
        assert load_record(path, ParametersRecord).version == 2
    for path in real_tree.rglob("metadata.json"):
        assert load_record(path, MetricMetadata).totalDataPoints == 50
    for path in real_tree.rglob(".files_metadata.json"):
        assert load_record(path, FilesManifest).files
