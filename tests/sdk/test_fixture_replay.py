"""Our SDK, driven by the very script that made the real-client fixture, writes the same tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import FIXTURES, REAL_CLIENT_TREE
from tests.helpers.trees import assert_same_tree, normalise_tree


def test_replaying_the_fixture_script_gives_the_real_client_tree(tmp_path: Path) -> None:
    out = tmp_path / "ours"
    subprocess.run([sys.executable, "-W", "error", str(FIXTURES / "make_real_client_fixture.py"), str(out)],
                   check=True, capture_output=True, cwd=tmp_path)
    assert_same_tree(out, REAL_CLIENT_TREE)


def test_normalisation_still_sees_real_differences(tmp_path: Path, real_tree: Path) -> None:
    # The comparison must not be blind: change one value in a copy and it must differ.
    log = real_tree / "vision/resnet-baseline/logs/logs.jsonl"
    log.write_text(log.read_text().replace("Experiment started", "Experiment begun"))
    assert normalise_tree(real_tree) != normalise_tree(REAL_CLIENT_TREE)
