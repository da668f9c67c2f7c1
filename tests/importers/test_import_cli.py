"""``ml-dash import`` as a user types it: help, bad input, a missing extra, configuration layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import run_cli


def test_help_lists_the_sources_and_every_key() -> None:
    result = run_cli("import", "--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("usage: ml-dash import tensorboard|mlflow|wandb SOURCE [--to PATH | --remote URL ...] "
                        "[--project P] [--folder F] [--dry-run] [--strict] [key=value ...]")
    for key in ("to ", "project ", "folder ", "dry_run ", "strict ", "batch_size ", "remote ", "api_key "):
        assert any(line.lstrip().startswith(key) for line in lines), key
    assert "import" in run_cli("--help").stdout


@pytest.mark.parametrize(("args", "error", "hint"), [
    (("svn", "x"), "Error: ml-dash import: unknown source 'svn'",
     "Hint: choose one of: tensorboard, mlflow, wandb (see ml-dash import --help)"),
    (("tensorboard",), "Error: no TensorBoard logdir given", "Hint: ml-dash import tensorboard SOURCE"),
    (("tensorboard", "/nonexistent/logs"), "Error: TensorBoard logdir not found: /nonexistent/logs",
     "Hint: give the path of the source to import (see ml-dash import --help)"),
    (("mlflow", "x", "batch_size=0"), "Error: invalid configuration (1 problem)", None),
    (("wandb", "a", "b"), "Error: ml-dash import: more than one path given: a b", None),
])
def test_bad_command_lines_get_one_line_and_a_hint(args: tuple[str, ...], error: str, hint: str | None) -> None:
    result = run_cli("import", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == error
    if hint is not None:
        assert lines[-1] == hint
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("kind", "library", "extra"), [
    ("tensorboard", "tensorboard", "import-tensorboard"),
    ("mlflow", "mlflow", "import-mlflow"),
    ("wandb", "wandb", "import-wandb"),
])
def test_a_missing_reader_library_names_its_extra(tmp_path: Path, kind: str, library: str, extra: str) -> None:
    # A package of that name that fails to import stands in for one that is not installed.
    (tmp_path / "block" / library).mkdir(parents=True)
    (tmp_path / "block" / library / "__init__.py").write_text("raise ImportError('not installed (test)')\n")
    (tmp_path / "src").mkdir()
    result = run_cli("import", kind, str(tmp_path / "src"), env={"PYTHONPATH": str(tmp_path / "block")})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: reading ") and f"needs the '{library}' package" in lines[0], lines
    assert lines[-1] == f"Hint: pip install 'ml-dash[{extra}]'"
    assert not (tmp_path / "src" / ".ml-dash").exists()


def test_keys_come_from_every_layer(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").write_text('{"import": {"folder": "/from-file", "batch_size": 500}}')
    env = {"ML_DASH_CONFIG_DIR": str(home), "ML_DASH_IMPORT_PROJECT": "from-env", "ML_DASH_REMOTE":
           "http://127.0.0.1:9"}
    result = run_cli("config", "show", "--for", "import", "--to", str(tmp_path / "t"), "+profile=ci", env=env)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert rows["folder"][1:] == ["'/from-file'", "file", "config.json", "(import.folder)"]
    assert rows["batch_size"][1:] == ["500", "file", "config.json", "(import.batch_size)"]
    assert rows["project"][1:] == ["'from-env'", "env", "ML_DASH_IMPORT_PROJECT"]
    assert rows["remote"][1:] == ["'http://127.0.0.1:9'", "env", "ML_DASH_REMOTE"]
    assert rows["strict"][1:] == ["true", "profile", "ci"]
    assert rows["to"][2:] == ["cli", "--to"]


def test_completion_offers_the_sources_then_the_keys() -> None:
    assert run_cli("__complete", "import", "").stdout.split() == ["mlflow", "tensorboard", "wandb"]
    assert run_cli("__complete", "import", "t").stdout.split() == ["tensorboard"]
    assert run_cli("__complete", "import", "wandb", "--dr").stdout.split() == ["--dry-run"]
    assert "import" in run_cli("__complete", "im").stdout.split()
