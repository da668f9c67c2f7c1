"""A lenient upload reads and parses each JSONL line once, as it sends it (counted, not timed).

The upload runs in this process against a real server; the parsers of ``records/blocks.py`` and
the record model's line parser are wrapped to count the lines that go through them.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ml_dash.records.blocks as blocks
from ml_dash.config.models import UploadConfig
from ml_dash.upload.run import upload
from tests.conftest import REAL_CLIENT_TREE
from tests.helpers.server import LiveServer, live_server
from tests.upload.conftest import Target

BASE = "vision/resnet-baseline"
POINTS = 25_000  # three blocks of the automatic batch size (10,000 points)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("one-pass") / "server") as srv:
        yield srv


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(REAL_CLIENT_TREE, dest)
    metric = dest / BASE / "metrics/train_loss/data.jsonl"
    with open(metric, "a") as f:  # long enough to take several blocks
        for i in range(50, POINTS):
            f.write(json.dumps({"index": i, "data": {"value": 1 / (i + 1), "step": i},
                                "createdAt": "2026-11-30T00:00:00.000000Z"}) + "\n")
    return dest


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Lines decoded in blocks, lines decoded alone, and lines through the record model."""
    seen: Counter[str] = Counter()
    decode_block, model_parse = blocks._decode_block, blocks.parse_line

    def counting_decode(lines: list[bytes], decoder: Any) -> Any:
        seen["block" if len(lines) > 1 else "line"] += len(lines)
        return decode_block(lines, decoder)

    def parse_line(raw: bytes, model: type) -> Any:
        seen["model"] += 1
        return model_parse(raw, model)

    monkeypatch.setattr(blocks, "_decode_block", counting_decode)
    monkeypatch.setattr(blocks, "parse_line", parse_line)
    return seen


def _jsonl_lines(tree: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in tree.rglob("*.jsonl"))


def _content(server: LiveServer, key: str) -> dict[str, Any]:
    target = Target(server, key)
    try:
        return target.content()[BASE]
    finally:
        target.http.close()


def _upload(server: LiveServer, tree: Path, tmp_path: Path, key: str, **extra: Any) -> int:
    cfg = UploadConfig(path=tree, remote=server.url, api_key=key, progress="none",
                       state_file=tmp_path / "state.json", **extra)
    return upload(cfg)


def test_a_lenient_upload_parses_each_line_once(server: LiveServer, tree: Path, tmp_path: Path,
                                                counted: Counter[str], capsys: pytest.CaptureFixture[str]) -> None:
    key = server.token("once", "once")
    assert _upload(server, tree, tmp_path, key) == 0
    assert counted == {"block": _jsonl_lines(tree)}  # every line once, in blocks; none alone, none by the model
    content = _content(server, key)
    assert len(content["metrics"]["train_loss"]) == POINTS and len(content["logs"]) == 7


def test_only_unusual_lines_are_parsed_again(server: LiveServer, tree: Path, tmp_path: Path,
                                             counted: Counter[str], capsys: pytest.CaptureFixture[str]) -> None:
    logs = tree / BASE / "logs/logs.jsonl"
    lines = logs.read_text().splitlines()
    upper = json.loads(lines[1])
    upper["level"] = "WARN"  # valid (the model lowers it) but not what the block decoder takes
    lines[1] = json.dumps(upper)
    logs.write_text("\n".join(lines) + "\n")
    metric = tree / BASE / "metrics/val_accuracy/data.jsonl"
    points = metric.read_text().splitlines()
    points[3] = "not json"  # the block is not JSON as a whole: its lines are parsed one by one
    metric.write_text("\n".join(points) + "\n")
    key = server.token("again", "again")
    assert _upload(server, tree, tmp_path, key, verbose=True) == 0
    total = _jsonl_lines(tree)
    # Two blocks did not decode whole (the logs, one metric): each of their lines once more on its own.
    assert counted["block"] == total and counted["line"] == len(points) + len(lines)
    assert counted["model"] == 2  # the upper-case level and the bad line: the model's verdict and message
    out = capsys.readouterr().out
    assert ("Skipped invalid lines:\n  ⚠ vision/resnet-baseline:\n"
            "      metric 'val_accuracy' has 1 invalid lines (e.g., [4]...) - will skip these\n"
            f"        {metric}:4: invalid JSON: Expecting value\n") in out
    content = _content(server, key)
    assert len(content["metrics"]["val_accuracy"]) == len(points) - 1
    assert ("warn", json.loads(lines[1])["message"], json.loads(lines[1]).get("metadata")) in content["logs"]
