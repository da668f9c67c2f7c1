"""Our local trees and the real ml-dash 0.5.8 client's are interchangeable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ml_dash import Experiment
from ml_dash.records import LogLine, MetricPoint, ParametersRecord, Problem, iter_jsonl, load_record
from tests.compat.realclient import real_dry_run, require_real_client, run_real
from tests.conftest import FIXTURES

pytestmark = pytest.mark.compat

APPEND_SCRIPT = textwrap.dedent("""
    import sys
    from ml_dash import Experiment
    root, src = sys.argv[1], sys.argv[2]
    with Experiment(name="resnet-baseline", project="vision", local_path=root, description="reopened").run as exp:
        exp.log("appended by the other client", level="warn", by="other")
        exp.params.set(optim={"lr": 0.01}, extra=True)
        exp.metrics("train_loss").append(value=0.5, step=50)
        exp.metrics("train_loss").append_batch([{"value": 0.4, "step": 51}, {"value": 0.3, "step": 52}])
        exp.files(file_path=src, prefix="/late").save()
    """)

READ_SCRIPT = textwrap.dedent("""
    import json, sys
    from ml_dash import Experiment
    with Experiment(name="resnet-baseline", project="vision", local_path=sys.argv[1]).run as exp:
        m = exp.metrics("train_loss")
        print(json.dumps({
            "params": exp.params.get(),
            "indices": [int(p["index"]) for p in m.read(0, 1000)["data"]],
            "total": m.stats()["totalDataPoints"],
            "files": sorted(f["filename"] for f in exp.files().list()),
        }))
    """)


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The fixture script run once with our SDK and once with the real client."""
    require_real_client()
    base = tmp_path_factory.mktemp("trees")
    ours, theirs = base / "ours", base / "theirs"
    script = str(FIXTURES / "make_real_client_fixture.py")
    subprocess.run([sys.executable, script, str(ours)], check=True, capture_output=True, cwd=base)
    run_real(script, str(theirs), cwd=base)
    return ours, theirs


def test_real_upload_dry_run_discovers_our_tree_like_its_own(trees: tuple[Path, Path], tmp_path: Path) -> None:
    ours, theirs = trees
    mine, its = real_dry_run(ours, tmp_path), real_dry_run(theirs, tmp_path)
    assert mine == its
    assert mine == [
        "Found 3 experiment(s) to upload",
        "• nlp/bert-finetune (logs, params, 2 metrics, 3 files (0.0MB))",
        "• vision/resnet-baseline (logs, params, 2 metrics, 4 files (0.0MB))",
        "• vision/resnet-lr-sweep (logs, params, 2 metrics, 3 files (0.0MB))",
    ]


def _check_appended(root: Path) -> None:
    exp_dir = root / "vision/resnet-baseline"
    points = [r for _, r in iter_jsonl(exp_dir / "metrics/train_loss/data.jsonl", MetricPoint)]
    assert not [p for p in points if isinstance(p, Problem)]
    assert [p.index for p in points] == list(range(53))
    meta = json.loads((exp_dir / "metrics/train_loss/metadata.json").read_text())
    assert (meta["totalDataPoints"], meta["nextIndex"], meta["description"]) == (53, 53, "training loss")
    logs = [r for _, r in iter_jsonl(exp_dir / "logs/logs.jsonl", LogLine)]
    assert [x.sequenceNumber for x in logs] == list(range(8))
    assert logs[-1].message == "appended by the other client"
    assert (exp_dir / "logs/.log_sequence").read_text() == "8"
    params = load_record(exp_dir / "parameters.json", ParametersRecord)
    assert params.version == 3 and params.data["optim.lr"] == 0.01 and params.data["extra"] is True
    experiment = json.loads((exp_dir / "experiment.json").read_text())
    assert experiment["description"] == "reopened" and "updated_at" in experiment
    manifest = json.loads((exp_dir / "files/.files_metadata.json").read_text())["files"]
    late = manifest[-1]
    assert (late["path"], late["filename"]) == ("/late", "late.txt")
    assert (exp_dir / "files/late" / late["id"] / "late.txt").read_text() == "late\n"


def test_real_sdk_reopens_and_appends_to_our_experiment(trees: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "ours"
    shutil.copytree(trees[0], root)
    src = tmp_path / "late.txt"
    src.write_text("late\n")
    run_real("-c", APPEND_SCRIPT, str(root), str(src), cwd=tmp_path)
    _check_appended(root)
    # ... and our SDK reads what the real one appended.
    with Experiment(name="resnet-baseline", project="vision", local_path=root).run as exp:
        assert [p["index"] for p in exp.metrics("train_loss").read(0, 100)["data"]] == list(range(53))
        assert exp.metrics("train_loss").stats()["totalDataPoints"] == "53"


def test_our_sdk_reopens_and_appends_to_a_real_client_experiment(trees: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "theirs"
    shutil.copytree(trees[1], root)
    src = tmp_path / "late.txt"
    src.write_text("late\n")
    subprocess.run([sys.executable, "-c", APPEND_SCRIPT, str(root), str(src)], check=True, cwd=tmp_path)
    _check_appended(root)
    # ... and the real SDK reads what ours appended.
    seen = json.loads(run_real("-c", READ_SCRIPT, str(root), cwd=tmp_path).stdout)
    assert seen["indices"] == list(range(53)) and seen["total"] == "53"
    assert seen["params"]["optim.lr"] == 0.01
    assert seen["files"] == ["config.yaml", "late.txt", "notes.txt", "weights.bin"]
    assert real_dry_run(root, tmp_path)[2] == "• vision/resnet-baseline (logs, params, 2 metrics, 5 files (0.0MB))"
