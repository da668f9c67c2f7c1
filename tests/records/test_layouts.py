"""Both layouts a user may have on disk are read: 0.5.8 (.ml-dash) and prefix (.dash, 0.6+)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_dash.errors import InvalidInputError
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
from ml_dash.records.identity import identify
from ml_dash.records.layout import ExperimentPaths, blob_relpath, experiment_dir
from tests.conftest import FIXTURES, REAL_CLIENT_TREE

PREFIX_TREE = FIXTURES / "real-client-0.6.27"


def identities(root: Path) -> list[tuple]:
    found = []
    for path in sorted(root.rglob("experiment.json")):
        ident = identify(root, path.parent, load_record(path, ExperimentRecord))
        found.append((ident.project, ident.name, ident.folder, ident.owner, ident.layout))
    return found


def test_0_5_8_layout_identities() -> None:
    assert identities(REAL_CLIENT_TREE) == [
        ("nlp", "bert-finetune", None, None, "0.5.8"),
        ("vision", "resnet-lr-sweep", "/sweeps/2025", None, "0.5.8"),
        ("vision", "resnet-baseline", None, None, "0.5.8"),
    ]


def test_prefix_layout_identities() -> None:
    assert identities(PREFIX_TREE) == [
        ("vision", "resnet-baseline", None, "alice", "prefix"),
        ("vision", "resnet-lr-sweep", "/sweeps/2025", "alice", "prefix"),
    ]


def test_every_record_of_the_real_0_6_27_tree_is_valid() -> None:
    for exp_json in PREFIX_TREE.rglob("experiment.json"):
        paths = ExperimentPaths(exp_json.parent)
        load_record(paths.experiment_json, ExperimentRecord)
        assert load_record(paths.parameters_json, ParametersRecord).version == 2
        assert not [r for _, r in iter_jsonl(paths.logs_jsonl, LogLine) if isinstance(r, Problem)]
        for data in paths.metrics_dir.rglob("data.jsonl"):
            points = [r for _, r in iter_jsonl(data, MetricPoint)]
            assert points and all(isinstance(p, MetricPoint) and "_ts" in p.data for p in points)
            load_record(data.parent / "metadata.json", MetricMetadata)
        (entry,) = load_record(paths.files_manifest, FilesManifest).files
        blob = paths.blob(entry.path, entry.id, entry.filename)
        assert blob.read_text() == "Training notes\n"
        assert entry.to_json_dict()["bindrs"] == []  # unknown keys survive a round trip


def test_experiment_dir_matches_0_5_8() -> None:
    root = Path("/r")
    assert experiment_dir(root, "vision", "e", "/sweeps/2025") == Path("/r/sweeps/2025/vision/e")
    assert experiment_dir(root, "vision", "e", None) == Path("/r/vision/e")


@pytest.mark.parametrize(("path", "file_id", "name"), [("/../..", "1", "x"), ("/a", "..", "x"), ("/a", "1", "../x"),
                                                       ("/a", "1", "a/b"), ("/a/./b", "1", "x")])
def test_blob_paths_cannot_leave_the_files_directory(path: str, file_id: str, name: str) -> None:
    with pytest.raises(InvalidInputError):
        blob_relpath(path, file_id, name)
