"""``records/blocks.py`` decides exactly what ``iter_jsonl`` decides, a block at a time, and
``read_blocks`` splits any file into the same lines with exact offsets."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

import ml_dash.records.blocks as blocks
from ml_dash.records.blocks import check_log_lines, check_metric_lines, read_blocks
from ml_dash.records.logs import LogLine
from ml_dash.records.metrics import MetricPoint
from ml_dash.records.read import iter_jsonl

POINT_LINES = [
    '{"index": 0, "data": {"value": 1.0, "step": 0}, "createdAt": "2026-11-30T00:00:00.000000Z"}',
    '{"index": 1, "data": {"value": NaN, "step": 1}, "createdAt": "x"}',  # NaN: the model takes it
    '{"index": 2, "data": {"value": Infinity}}',
    '{"index": "3", "data": {"v": 3}}',  # an index as a string: the model coerces it
    '{"index": -1, "data": {"v": 1}}',  # negative index: invalid
    '{"data": []}',  # data not an object: invalid
    '{"data": "text"}',
    '{"data": null}',
    '{"createdAt": "x"}',  # no data
    '',  # blank
    '   ',
    'not json',
    '[1, 2]',
    '{"data": {"big": 123456789012345678901234567890, "tiny": 1e-320, "huge": 1e400, "neg": -0.0}}',
    '{"data": {"s": "caf\\u00e9 \\"quoted\\" \\ud83d\\ude00", "nested": {"a": [1, {"b": null}]}}, "_ts": 5}',
    '{"data": {"lone": "\\ud800"}}',  # a lone surrogate: json takes it, msgspec does not
    '{"data": {"a": 1}, "data": {"b": 2}}',  # duplicate keys: the last one wins, as in json
    '{"data": {"a": 1}, "extra": {"kept": true}}',
    '{"data": {"a": 1}, "_ts": "soon"}',  # _ts not a number: invalid
    '{"data": {"a": 1}, "index": true}',
    '{"data": {"a": 1}, "index": 5.0}',
    '{"data": {"a": 1}}, {"data": {"b": 2}}',  # two values on one line: invalid
]

LOG_LINES = [
    '{"sequenceNumber": 0, "timestamp": "t", "level": "info", "message": "hello"}',
    '{"sequenceNumber": 1, "timestamp": "t", "level": "WARN", "message": "upper case level"}',
    '{"level": "nope", "message": "unknown level"}',
    '{"message": "no level, no time"}',
    '{"message": "with metadata", "metadata": {"step": 3, "loss": NaN}}',
    '{"message": "empty metadata", "metadata": {}}',
    '{"message": 5}',
    '{"level": "info"}',
    '{"message": "m", "metadata": [1]}',
    '{"message": "m", "sequenceNumber": -2}',
    '{"message": "m", "timestamp": 5}',
    '',
    '{"message": "caf\\u00e9", "level": "debug"}',
    '{"message": "a"}, {"message": "b"}',
]


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN == NaN as text


def _reference(path: Path, model: type) -> tuple[list[Any], list[tuple[int, str]]]:
    records, problems = [], []
    for number, rec in iter_jsonl(path, model):
        if hasattr(rec, "message") and not isinstance(rec, LogLine):
            problems.append((number, rec.message))
        elif isinstance(rec, MetricPoint):
            records.append(rec.data)
        else:
            entry = {"timestamp": rec.timestamp, "level": rec.level, "message": rec.message}
            if rec.metadata:
                entry["metadata"] = rec.metadata
            records.append(entry)
    return records, problems


def _blocked(path: Path, check: Any, per: int) -> tuple[list[Any], list[tuple[int, str]]]:
    records, problems, line = [], [], 1
    for lines, _, partial in read_blocks(path, per):
        block = check(lines, line, path, partial)
        line += len(lines)
        records += [json.loads(bytes(r)) if not isinstance(r, dict) else r for r in block.records]
        problems += [(p.line, p.message) for p in block.problems]
    return records, problems


@pytest.mark.parametrize("per", [1, 3, 1000])
@pytest.mark.parametrize("seed", range(8))
def test_metric_blocks_decide_as_the_model(tmp_path: Path, seed: int, per: int) -> None:
    rng = random.Random(seed)
    lines = [rng.choice(POINT_LINES) if rng.random() < 0.3 else POINT_LINES[0] for _ in range(40)]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + ("\n" if seed % 2 else "\n" + '{"index": 9, "data": {"v"'))  # torn last
    ref = _reference(path, MetricPoint)
    got = _blocked(path, check_metric_lines, per)
    assert _same(got[0], ref[0]) and got[1] == ref[1]


@pytest.mark.parametrize("per", [1, 4, 1000])
@pytest.mark.parametrize("seed", range(8))
def test_log_blocks_decide_as_the_model(tmp_path: Path, seed: int, per: int) -> None:
    rng = random.Random(seed)
    lines = [rng.choice(LOG_LINES) if rng.random() < 0.4 else LOG_LINES[0] for _ in range(40)]
    path = tmp_path / "logs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    ref = _reference(path, LogLine)
    got = _blocked(path, check_log_lines, per)
    assert _same(got[0], ref[0]) and got[1] == ref[1]


def test_invalid_utf8_in_a_point_is_refused_as_the_model_does(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"data": {"a": 1}}\n{"data": {"a": "\xff"}}\n')
    ref, got = _reference(path, MetricPoint), _blocked(path, check_metric_lines, 100)
    assert got == ([{"a": 1}], ref[1]) and len(ref[1]) == 1


@pytest.mark.parametrize("seed", range(30))
def test_read_blocks_splits_like_split_with_exact_offsets(tmp_path: Path, seed: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "READ_CHUNK", 64)
    monkeypatch.setattr(blocks, "MAX_LINE_BYTES", 100)
    rng = random.Random(seed)
    lines = [b"x" * rng.choice([0, 1, 5, 63, 64, 65, 99, 100, 101, 150, 300]) for _ in range(rng.randint(0, 30))]
    data = b"\n".join(lines) + rng.choice([b"\n", b"", b"\nabc"])
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    for partial_last in (True, False):
        for per in (1, 3, 1000):
            expected = data.split(b"\n") if data else []
            torn = bool(data) and not data.endswith(b"\n")
            if not torn or not partial_last:
                expected = expected[:-1]
            got, ends = [], [0]
            for part, end, partial in read_blocks(path, per, partial_last=partial_last):
                got += part
                ends.append(end)
                assert partial == (torn and partial_last and end == len(data))
            assert len(got) == len(expected)
            for g, e in zip(got, expected, strict=True):
                assert g == e if len(e) <= 100 else (len(g) > 100 and e.startswith(g))  # long lines cut, not held
            assert ends[-1] == (len(data) if partial_last else len(data) - (len(data.rsplit(b"\n", 1)[-1])
                                                                            if torn else 0))


def test_read_blocks_from_an_offset(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"a\nbb\nccc\n")
    assert list(read_blocks(path, 10, 2)) == [([b"bb", b"ccc"], 9, False)]
