from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REAL_CLIENT_TREE = FIXTURES / "real-client-0.5.8"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ambient ML_DASH_* / DREAMLAKE_* settings, a private config dir, plain output."""
    for key in list(os.environ):
        if key.startswith(("ML_DASH_", "DREAMLAKE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ML_DASH_CONFIG_DIR", str(tmp_path / "config-home"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    yield


@pytest.fixture
def real_tree(tmp_path: Path) -> Path:
    """A writable copy of the tree the real ml-dash 0.5.8 SDK wrote."""
    dest = tmp_path / "real-client-0.5.8"
    shutil.copytree(REAL_CLIENT_TREE, dest)
    return dest
