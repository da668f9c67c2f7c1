from __future__ import annotations

import json
from pathlib import Path

import pytest


class Home:
    """A private ~/.ml-dash: config.json and profiles, plus the env that points at it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {"ML_DASH_CONFIG_DIR": str(self.path)}

    def config(self, data: dict) -> Path:
        target = self.path / "config.json"
        target.write_text(json.dumps(data))
        target.chmod(0o600)
        return target

    def profile(self, name: str, text: str) -> Path:
        (self.path / "profiles").mkdir(exist_ok=True)
        target = self.path / "profiles" / f"{name}.yaml"
        target.write_text(text)
        return target


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")
