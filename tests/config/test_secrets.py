"""A planted secret never appears in any output, error, state file or report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.conftest import Home
from tests.helpers.build import build_tree
from tests.helpers.cli import run_cli

SECRET = "sk-PLANTED-7f3a9c1e5b"


def files_text(directory: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "args",
    [
        ("config", "show"),
        ("config", "show", f"--api-key={SECRET}"),
        ("config", "show", f"api_key={SECRET}"),
        ("config", "show", f"api_ky={SECRET}"),  # a typo of api_key is an unknown key: redacted too
        ("config", "show", f"+api_ky={SECRET}"),
        ("config", "show", f"+api_key.x={SECRET}"),
        ("config", "show", f"api_key={SECRET}", "--batch-size", "-1"),
        ("config", "show", f"--api-key={SECRET}", "workers=[1,2"),
        ("upload", "--dry-run", "--api-key", SECRET, "--remote", "http://127.0.0.1:9"),
        ("upload", "--api-key", SECRET),  # no remote: a configuration error
        ("upload", "--help"),
    ],
)
def test_secret_never_echoed(args: tuple[str, ...], home: Home, tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree")
    home.config({"api_key": SECRET, "upload": {"path": str(tree)}})
    work = tmp_path / "work"
    work.mkdir()
    r = run_cli(*args, env={**home.env, "ML_DASH_API_KEY": SECRET}, cwd=work)
    assert SECRET not in r.stdout + r.stderr
    assert SECRET not in files_text(work)
    assert "Traceback" not in r.stderr
