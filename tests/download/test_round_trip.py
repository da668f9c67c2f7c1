"""SDK local → ml-dash upload → ml-dash download into an empty dir: the same records."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REAL_CLIENT_TREE
from tests.helpers.cli import run_cli
from tests.helpers.trees import records_of
from tests.upload.conftest import Target, target  # noqa: F401 - fixture


def transfer(target: Target, source: Path, dest: Path, cwd: Path) -> None:  # noqa: F811
    up = run_cli("upload", str(source), "--remote", target.url, "--api-key", target.key, cwd=cwd)
    assert up.returncode == 0, up.stdout + up.stderr
    down = run_cli("download", str(dest), "--remote", target.url, "--api-key", target.key, cwd=cwd)
    assert down.returncode == 0, down.stdout + down.stderr


def test_round_trip_of_the_real_client_fixture(target: Target, tmp_path: Path) -> None:  # noqa: F811
    transfer(target, REAL_CLIENT_TREE, tmp_path / "down", tmp_path)
    assert records_of(tmp_path / "down") == records_of(REAL_CLIENT_TREE)
    original = json.loads((REAL_CLIENT_TREE / "vision/resnet-baseline/experiment.json").read_text())
    back = json.loads((tmp_path / "down/vision/resnet-baseline/experiment.json").read_text())
    for key in ("name", "project", "description", "tags", "bindrs", "folder", "metadata"):
        assert back[key] == original[key], key
    meta = json.loads((tmp_path / "down/vision/resnet-baseline/metrics/train_loss/metadata.json").read_text())
    assert (meta["description"], meta["tags"], meta["metadata"]) == ("training loss", ["loss"], {"unit": "nats"})


def test_round_trip_of_a_tree_our_sdk_wrote(target: Target, tmp_path: Path) -> None:  # noqa: F811
    ours = tmp_path / "ours"
    subprocess.run([sys.executable, str(FIXTURES / "make_real_client_fixture.py"), str(ours)], check=True,
                   capture_output=True, cwd=tmp_path)
    transfer(target, ours, tmp_path / "down", tmp_path)
    assert records_of(tmp_path / "down") == records_of(ours)


def test_download_completes_a_partial_local_copy_without_duplicates(target: Target, tmp_path: Path) -> None:  # noqa: F811
    transfer(target, REAL_CLIENT_TREE, tmp_path / "down", tmp_path)
    base = tmp_path / "down/vision/resnet-baseline"
    data = base / "metrics/train_loss/data.jsonl"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:20]))
    meta = json.loads((base / "metrics/train_loss/metadata.json").read_text())
    meta.update(totalDataPoints=20, nextIndex=20)
    (base / "metrics/train_loss/metadata.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(tmp_path / "down/nlp")
    again = run_cli("download", str(tmp_path / "down"), "--remote", target.url, "--api-key", target.key, cwd=tmp_path)
    assert again.returncode == 0, again.stdout
    assert "vision/resnet-baseline\n  ✓ Downloaded (0 params, 0 logs, 30 points, 0 files)" in again.stdout
    assert records_of(tmp_path / "down") == records_of(REAL_CLIENT_TREE)


@pytest.mark.parametrize("args", [(), ("--project", "vision")])
def test_list_as_json(target: Target, tmp_path: Path, args: tuple[str, ...]) -> None:  # noqa: F811
    run_cli("upload", str(REAL_CLIENT_TREE), "--remote", target.url, "--api-key", target.key, cwd=tmp_path)
    r = run_cli("list", "--remote", target.url, "--api-key", target.key, "--json", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    if not args:
        assert sorted(rows, key=lambda r: r["project"]) == [{"project": "nlp", "experiments": 1},
                                                           {"project": "vision", "experiments": 2}]
    else:
        assert sorted((x["experiment"], x["points"], x["logs"], x["files"]) for x in rows) == [
            ("resnet-baseline", 100, 7, 3), ("sweeps/2025/resnet-lr-sweep", 100, 7, 2)]
