"""Smoke run of ``bench/import.py`` with tiny sources: every source made, read, imported, re-imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.server import REPO


@pytest.mark.slow
def test_the_import_bench_runs_on_tiny_sources(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "DREAMLAKE_"))}
    (tmp_path / "tmp").mkdir()
    env.update(HOME=str(tmp_path / "home"), WANDB_SILENT="true", TMPDIR=str(tmp_path / "tmp"))
    out = subprocess.run([sys.executable, str(REPO / "bench" / "import.py"), "--scalars", "2000", "--keep",
                          str(tmp_path / "sources")], capture_output=True, text=True, timeout=600, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line[:1].isalpha()}
    assert not [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("ml-dash-bench-import-")]
    for source in ("tensorboard", "mlflow", "wandb"):
        assert rows[source][1] == "2,000", out.stdout  # the bench asserts every count equals this
        assert rows[source][7].endswith("x"), out.stdout
