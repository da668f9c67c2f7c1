"""Smoke run of ``bench/tiered.py`` with tiny sizes: it runs end to end and prints its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.server import REPO


@pytest.mark.slow
def test_the_tiered_bench_runs_on_a_tiny_metric(tmp_path: Path) -> None:
    """30,000 points sealed by 1,000 (~30 s here): ingest, sizes and reads, the pages identical after sealing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "DREAMLAKE_"))}
    out = subprocess.run([sys.executable, str(REPO / "bench" / "tiered.py"), "--points", "30000", "--chunk-size", "1000",
                          "--rounds", "1", "--reads", "3", "--work-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    for line in ("off (tiering.interval=0)", "on (every 1 s)", "database", "blob store (segments)", "series, warm",
                 "zoom 1%, a new window each time", "live tick", "full read, data route by 10,000", "goals:"):
        assert line in out.stdout, out.stdout
    assert "every page identical" in out.stdout, out.stdout
    assert "3 (3)" in out.stdout, out.stdout  # after: every chunk row (3 appends of 10,000) sealed
