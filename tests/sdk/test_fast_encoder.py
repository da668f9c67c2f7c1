"""The fast JSON paths write exactly what ``json.dumps`` (as 0.5.8 calls it) writes."""

from __future__ import annotations

import enum
import json
import math
import random
import sys
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ml_dash.errors import InvalidInputError
from ml_dash.records import clock, jsonio
from ml_dash.records.layout import ExperimentPaths
from ml_dash.records.logs import format_log_line
from ml_dash.sdk import appenders

SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, -5e-324, 1e-7, 1e16, 1e22,
                  0.1, 1 / 3, 2.0**53, sys.float_info.max, sys.float_info.min, 123456789.123456789, 1e-5, 1e15]
SPECIAL_INTS = [0, -1, 2**53 + 1, 2**63, -(2**64), 10**30, 10**300, 10**400]
KEY_CHARS = ["a", "b", "z", "_", ".", "/", " ", '"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "ü", "λ", "€",
             "\u2028", "\ud83d\ude00", "😀", "\uffff", "日", "%", "%s", "%(x)s", "}, {", "{"]


class FloatSub(float):
    def __repr__(self) -> str:
        return "nope"


class IntSub(int):
    def __repr__(self) -> str:
        return "nope"


class Color(enum.IntEnum):
    RED = 1


class ItemsDict(dict):  # type: ignore[type-arg]
    """json.dumps asks a dict subclass for its items(); the fast path must not bypass that."""

    def items(self) -> Any:
        return [("overridden", 1)]


def random_text(rng: random.Random, longest: int = 8) -> str:
    return "".join(rng.choice(KEY_CHARS) for _ in range(rng.randrange(0, longest)))


def random_key(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(["value", "step", "epoch", "loss", "train/acc", "lr", "x"]) + str(rng.randrange(50))
    return random_text(rng, 6)


def random_number(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(SPECIAL_FLOATS)
    if kind == 1:
        return rng.uniform(-1e6, 1e6)
    if kind == 2:
        return math.ldexp(rng.random(), rng.randrange(-1070, 1020)) * rng.choice([1, -1])
    if kind == 3:
        return rng.choice(SPECIAL_INTS + [rng.randrange(-(2**70), 2**70)])
    if kind == 4:
        return rng.randrange(-1000, 1000)
    return float(rng.randrange(-5, 5))


def random_scalar(rng: random.Random) -> Any:
    kind = rng.randrange(5)
    if kind < 3:
        return random_number(rng)
    if kind == 3:
        return rng.choice([True, False, None])
    return random_text(rng)


def odd_value(rng: random.Random) -> Any:
    """Values the flat encoder must leave to json.dumps (and ones that put "}, {" where a cut goes)."""
    return rng.choice([
        FloatSub(rng.uniform(-10, 10)), IntSub(rng.randrange(100)), Color.RED, [1, 2.5], (1, 2), {"n": 1},
        [{"a": 1}, {"b": 2}], "}, {", "x}, {y", [{}, {}], {"n": {"m": [1.5, None]}}, [], {}, "\n}, {\n",
        [[{"index": 1}], {"c": math.nan}],
    ])


def random_record(rng: random.Random) -> dict[Any, Any]:
    record: dict[Any, Any] = {}
    for _ in range(rng.randrange(0, 8)):
        record[random_key(rng)] = random_scalar(rng) if rng.random() < 0.85 else odd_value(rng)
    if rng.random() < 0.05:  # keys json.dumps converts: numbers, bools, None
        record[rng.choice([1, 2.5, True, None, -0.0, math.inf])] = rng.randrange(10)
    return record


def column_kind(rng: random.Random) -> Any:
    """One column's values: the kinds the training loops log, alone or mixed."""
    return rng.choice([
        lambda: rng.uniform(-1, 1), lambda: rng.randrange(10**6), lambda: random_number(rng),
        lambda: random_scalar(rng),
        lambda: rng.choice([True, False]), lambda: rng.choice([True, None]), lambda: random_text(rng),
        lambda: rng.choice([rng.uniform(-1, 1), math.nan, math.inf, -math.inf]),
        lambda: rng.choice([rng.uniform(-1, 1), None]),
    ])


def flat_batch(rng: random.Random) -> list[dict[str, Any]]:
    keys = list(dict.fromkeys(random_key(rng) for _ in range(rng.randrange(0, 6))))
    kinds = {key: column_kind(rng) for key in keys}
    return [{key: kinds[key]() for key in keys} for _ in range(rng.randrange(1, 60))]


def encode_with(flat: tuple[str, list[Any]], count: int) -> list[str]:
    template, columns = flat
    return [template % row for row in zip(*columns, strict=True)] if columns else [template] * count


# --- the encoders --------------------------------------------------------------------------------------------
def test_dumps_line_equals_json_dumps_on_random_records() -> None:
    rng = random.Random(20261130)
    for _ in range(12_000):
        record = random_record(rng)
        assert jsonio.dumps_line(record) == json.dumps(record)


def test_flat_columns_equal_json_dumps_on_random_flat_batches() -> None:
    rng = random.Random(7)
    for _ in range(3_000):
        batch = flat_batch(rng)
        flat = jsonio.flat_columns(batch)
        assert flat is not None, batch  # every record of str keys and scalar values takes the fast path
        assert encode_with(flat, len(batch)) == [json.dumps(p) for p in batch]


def test_flat_columns_equal_json_dumps_or_decline_on_random_records() -> None:
    rng = random.Random(11)
    taken = 0
    for _ in range(6_000):
        record = random_record(rng)
        batch = [record, dict(record)] if rng.random() < 0.5 else [record]
        flat = jsonio.flat_columns(batch)
        if flat is not None:
            taken += 1
            assert encode_with(flat, len(batch)) == [json.dumps(p) for p in batch]
    assert taken > 1_000


@pytest.mark.parametrize("batch", [
    [{"a": 1}, {"b": 1}],  # different keys
    [{"a": 1, "b": 2}, {"b": 2, "a": 1}],  # same keys, other order: other bytes
    [{"a": 1}, {"a": 1, "b": 2}],
    [{"a": 1}, ["a"]],  # not a dict, though tuple() of it matches the keys
    [{"a": FloatSub(1.5)}], [{"a": IntSub(3)}], [{"a": Color.RED}],
    [{"a": [1]}], [{"a": (1,)}], [{"a": {"b": 1}}], [{"a": 1.5}, {"a": [1]}],
    [{1: 1}], [{None: 1}], [{True: 1}], [{2.5: 1}],
    [OrderedDict(a=1)], [ItemsDict(a=1)], [{"a": 1}, ItemsDict(a=1)],
    [], ["not a dict"],
])
def test_flat_columns_decline_what_json_dumps_treats_otherwise(batch: list[Any]) -> None:
    assert jsonio.flat_columns(batch) is None


def test_flat_templates_escape_keys_and_percent_signs() -> None:
    keys = ("%", "%s", "%(x)s", '"', "\\", "é", "😀", "\n", "}, {")
    batch = [dict.fromkeys(keys, 1.5), dict.fromkeys(keys, math.nan)]
    flat = jsonio.flat_columns(batch)
    assert flat is not None
    assert encode_with(flat, 2) == [json.dumps(p) for p in batch]
    assert jsonio.flat_template(("a", 1)) is None
    assert jsonio.flat_template(()) == "{}"


def test_batches_of_random_records_are_cut_exactly() -> None:
    rng = random.Random(13)
    for _ in range(1_500):
        batch = [random_record(rng) for _ in range(rng.randrange(0, 12))]
        assert jsonio.dumps_lines(batch) == [json.dumps(p) for p in batch]
    tricky = [{"s": "}, {"}, {"t": [{"a": 1}, {"b": 2}]}, {}, {"u": "\n"}, OrderedDict(v=1), ItemsDict(w=2)]
    assert jsonio.dumps_lines(tricky) == [json.dumps(p) for p in tricky]
    assert jsonio.dumps_lines([[{"a": 1}, {"b": 2}], {"c": 3}]) == ['[{"a": 1}, {"b": 2}]', '{"c": 3}']


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": {1, 2}}, {(1, 2): 3}, {"x": b"bytes"}, {"x": 10**5000}])
def test_unserialisable_records_raise_as_before(bad: dict[Any, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        json.dumps(bad)
    with pytest.raises(InvalidInputError, match="metric point is not JSON-serialisable"):
        jsonio.dumps_line(bad, "metric point")
    with pytest.raises(InvalidInputError, match="metric point #1 is not JSON-serialisable"):
        jsonio.dumps_lines([{"ok": 1}, bad, {"ok": 2}], "metric point")


def test_cycles_fall_back_to_json_dumps_error() -> None:
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    with pytest.raises(InvalidInputError, match="Circular reference"):
        jsonio.dumps_line(cyclic)
    with pytest.raises(InvalidInputError, match="#0 .*Circular reference"):
        jsonio.dumps_lines([cyclic, {"b": 2}])
    assert jsonio.flat_columns([cyclic]) is None
    # the encoder keeps no state from a failed call
    assert jsonio.dumps_line({"a": [1, 2]}) == '{"a": [1, 2]}'


def test_non_dict_values_fall_back() -> None:
    for value in ["}, {", 1.5, math.nan, None, [1, "a"], ("t",), OrderedDict(a=1), True, 10**30]:
        assert jsonio.dumps_line(value) == json.dumps(value)


def test_log_lines_equal_json_dumps() -> None:
    rng = random.Random(17)
    for seq in range(3_000):
        message = random_text(rng, 20)
        metadata = random_record(rng) or None
        timestamp = rng.choice([clock.utc_now_iso(), "2026-11-22T16:57:37Z", random_text(rng)])
        level = rng.choice(["info", "warn", "error", "debug", "fatal", random_text(rng)])
        entry: dict[str, Any] = {"sequenceNumber": seq, "timestamp": timestamp, "level": level, "message": message}
        if metadata:
            entry["metadata"] = metadata
        assert format_log_line(seq, timestamp, level, message, metadata) == json.dumps(entry) + "\n"


# --- the clock -----------------------------------------------------------------------------------------------
def test_timestamps_match_datetime() -> None:
    for _ in range(2_000):
        before = datetime.now(timezone.utc).replace(tzinfo=None)
        stamp = clock.utc_now_iso()
        after = datetime.now(timezone.utc).replace(tzinfo=None)
        parsed = datetime.fromisoformat(stamp[:-1])
        assert stamp.endswith("Z") and before <= parsed <= after
        assert stamp == parsed.isoformat() + "Z"
    for micros in [0, 1, 999_999, 1_000_000, 1_764_000_000_000_000, 1_764_000_000_123_456, 253_402_300_799_999_999]:
        sec, us = divmod(micros, 1_000_000)
        expected = datetime.fromtimestamp(sec, timezone.utc).replace(microsecond=us, tzinfo=None).isoformat() + "Z"
        for extra_ns in (0, 1, 999):  # floored to the microsecond, as datetime.now does
            assert clock.utc_iso_from_ns(micros * 1000 + extra_ns) == expected


# --- what the appenders write --------------------------------------------------------------------------------
def fake_clock(monkeypatch: pytest.MonkeyPatch, readings: list[int]) -> list[int]:
    """Make the appenders' clock return ``readings`` (ns) in turn; returns what is left of them."""
    left = list(readings)

    def time_ns() -> int:
        return left.pop(0)

    monkeypatch.setattr(appenders, "_time_ns", time_ns)  # batches
    monkeypatch.setattr(clock, "_time_ns", time_ns)  # single appends (utc_now_iso)
    return left


def expected_lines(points: list[Any], start: int, stamps_ns: list[int]) -> list[str]:
    return [json.dumps({"index": start + i, "data": p, "createdAt": clock.utc_iso_from_ns(ns)}) + "\n"
            for i, (p, ns) in enumerate(zip(points, stamps_ns, strict=True))]


S = 1_764_000_000_000_000_000  # a whole second, in ns


@pytest.mark.parametrize("stamps_ns", [
    [S + 1_000, S + 2_500, S + 999_999_999],  # one second
    [S + 999_999_000, S + 1_000_000_000, S + 1_000_001_000],  # across a second, one on it (no fraction)
    [S, S + 5_000, S + 7_000],  # the first on the second
    [S + 5_000, S + 4_000, S - 1_000],  # the clock stepped back
    [S + 1_000, S + 1_000, S + 1_999],  # one microsecond for all
])
@pytest.mark.parametrize("shape", ["flat", "mixed", "nested"])
def test_batch_lines_are_0_5_8_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stamps_ns: list[int],
                                     shape: str) -> None:
    points: list[dict[str, Any]] = {
        "flat": [{"value": 0.5, "step": 1}, {"value": math.nan, "step": 2}, {"value": -0.0, "step": 10**30}],
        "mixed": [{"value": 0.5, "ok": True, "s": "é%s"}, {"value": None, "ok": False, "s": "}, {"},
                  {"value": 1e16, "ok": None, "s": ""}],
        "nested": [{"value": 0.5, "step": 1}, {"value": [1, 2], "ü": -0.0}, {"s": {"t": "}, {"}}],
    }[shape]
    fake_clock(monkeypatch, [S - 7_000] + stamps_ns)  # the first reading: the one-point append before
    appender = appenders.MetricAppender(ExperimentPaths(tmp_path), "loss")
    first = appender.append({"warm": 1}, None, None, None)
    assert first["index"] == "0"
    result = appender.append_batch(points, None, None, None)
    assert (result["startIndex"], result["endIndex"], result["count"], result["bufferedDataPoints"]) == \
        ("1", "3", 3, "4")
    appender.close()
    lines = (tmp_path / "metrics" / "loss" / "data.jsonl").read_text().splitlines(keepends=True)
    assert lines == expected_lines([{"warm": 1}], 0, [S - 7_000]) + expected_lines(points, 1, stamps_ns)
    meta = json.loads((tmp_path / "metrics" / "loss" / "metadata.json").read_text())
    assert (meta["totalDataPoints"], meta["nextIndex"]) == (4, 4)
    assert meta["updatedAt"] == clock.utc_iso_from_ns(stamps_ns[-1])


def test_random_batches_write_0_5_8_lines(tmp_path: Path) -> None:
    rng = random.Random(19)
    appender = appenders.MetricAppender(ExperimentPaths(tmp_path), "m")
    expected_data: list[Any] = []
    for _ in range(300):
        batch = flat_batch(rng) if rng.random() < 0.7 else [random_record(rng) for _ in range(rng.randrange(1, 9))]
        encoded: list[str] | None = [] if rng.random() < 0.3 else None
        appender.append_batch(batch, None, None, None, encoded)
        if encoded is not None:
            assert encoded == [json.dumps(p) for p in batch]
        expected_data.extend(batch)
    appender.close()
    lines = (tmp_path / "metrics" / "m" / "data.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) == len(expected_data)
    stamps = []
    for index, (line, data) in enumerate(zip(lines, expected_data, strict=True)):
        stamp = json.loads(line)["createdAt"]
        assert line == json.dumps({"index": index, "data": data, "createdAt": stamp}) + "\n"
        assert stamp == datetime.fromisoformat(stamp[:-1]).isoformat() + "Z"
        stamps.append(datetime.fromisoformat(stamp[:-1]))
    assert stamps == sorted(stamps)


def test_single_appends_write_0_5_8_lines(tmp_path: Path) -> None:
    rng = random.Random(23)
    appender = appenders.MetricAppender(ExperimentPaths(tmp_path), "m")
    records = [random_record(rng) or {"x": 1} for _ in range(500)]
    for i, record in enumerate(records):
        encoded: list[str] = []
        assert appender.append(record, None, None, None, encoded)["index"] == str(i)
        assert encoded == [json.dumps(record)]
    appender.close()
    lines = (tmp_path / "metrics" / "m" / "data.jsonl").read_text().splitlines(keepends=True)
    for index, (line, data) in enumerate(zip(lines, records, strict=True)):
        stamp = json.loads(line)["createdAt"]
        assert line == json.dumps({"index": index, "data": data, "createdAt": stamp}) + "\n"


@pytest.mark.parametrize("bad", [[{"x": 1}, {"x": 10**5000}], [{"x": 1.5}, {"x": 10**5000}],
                                 [{"x": "a"}, {"x": 10**5000}], [{"x": 1}, {"x": object()}]])
def test_a_refused_batch_writes_nothing_and_counts_nothing(tmp_path: Path, bad: list[Any]) -> None:
    appender = appenders.MetricAppender(ExperimentPaths(tmp_path), "m")
    appender.append_batch([{"x": 0}], None, None, None)
    with pytest.raises(InvalidInputError, match="metric point #1 is not JSON-serialisable"):
        appender.append_batch(bad, None, None, None)
    assert appender.append_batch([{"x": 2}], None, None, None)["startIndex"] == "1"
    appender.close()
    lines = (tmp_path / "metrics" / "m" / "data.jsonl").read_text().splitlines()
    assert [json.loads(line)["data"] for line in lines] == [{"x": 0}, {"x": 2}]


def test_each_point_of_a_batch_reads_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter(range(S + 1_000, S + 10**9, 1_000))
    monkeypatch.setattr(appenders, "_time_ns", lambda: next(readings))
    appender = appenders.MetricAppender(ExperimentPaths(tmp_path), "m")
    appender.append_batch([{"v": i} for i in range(50)], None, None, None)
    appender.close()
    stamps = [json.loads(line)["createdAt"] for line in (tmp_path / "metrics/m/data.jsonl").read_text().splitlines()]
    assert len(set(stamps)) == 50 and stamps == sorted(stamps)


def test_a_batch_longer_than_one_format_run(tmp_path: Path) -> None:
    count = appenders._FORMAT_RUN * 2 + 345
    points = [{"value": i / 7, "step": i, "ok": i % 3 == 0} for i in range(count)]
    appender = appenders.MetricAppender(ExperimentPaths(tmp_path), "m")
    assert appender.append_batch(points, None, None, None)["endIndex"] == str(count - 1)
    appender.close()
    lines = (tmp_path / "metrics/m/data.jsonl").read_text().splitlines(keepends=True)
    stamps = [json.loads(line)["createdAt"] for line in lines]
    assert lines == [json.dumps({"index": i, "data": p, "createdAt": stamp}) + "\n"
                     for i, (p, stamp) in enumerate(zip(points, stamps, strict=True))]
