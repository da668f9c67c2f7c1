"""The declarative layer end to end through the console script, with exact output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.config.conftest import Home
from tests.helpers.build import build_tree
from tests.helpers.cli import run_cli


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "tree")


def test_overrides_filter_and_skip_in_a_dry_run(tree: Path, home: Home) -> None:
    r = run_cli("upload", str(tree), "project=deep-learning", "skip.logs=true", "--dry-run", env=home.env)
    assert r.returncode == 0, r.stderr
    assert "Found 2 experiment(s) to upload" in r.stdout
    table = r.stdout.split("Plan (batch size auto: 1000 log lines, 10000 metric points):\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[:3] for line in table] == [
        ["experiment", "params", "log"], ["deep-learning/exp1", "2", "0"], ["sweeps/deep-learning/exp2", "2", "0"],
        ["total", "4", "0"]]
    assert "other/exp3" not in r.stdout


def test_ci_profile_makes_the_dry_run_strict(tree: Path, home: Home, tmp_path: Path) -> None:
    ok = run_cli("upload", str(tree), "+profile=ci", "--dry-run", env=home.env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    with (tree / "other/exp3/logs/logs.jsonl").open("a") as f:
        f.write("not json\n")
    bad = run_cli("upload", str(tree), "+profile=ci", "--dry-run", env=home.env, cwd=tmp_path)
    assert bad.returncode == 1
    assert "  ✗ other/exp3:\n      logs.jsonl has 1 invalid lines (e.g., [4]...)\n" in bad.stdout
    assert bad.stderr.strip() == "Error: Validation failed in --strict mode"
    assert '"status": "invalid"' in (tmp_path / "ml-dash-report.json").read_text()  # the ci profile reports


def test_a_run_configured_only_by_config_json(tree: Path, home: Home, tmp_path: Path) -> None:
    home.config({"remote_url": "http://127.0.0.1:9", "api_key": "k",
                 "upload": {"path": str(tree), "project": "other", "dry_run": True}})
    r = run_cli("upload", env=home.env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Found 1 experiment(s) to upload" in r.stdout and "other/exp3" in r.stdout


def test_unknown_key_is_a_table_row_with_a_hint_and_exit_2(home: Home) -> None:
    r = run_cli("upload", "skp.logs=true", env=home.env)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == (
        "Error: invalid configuration (1 problem)\n"
        "  key       problem                                            set by\n"
        "  skp.logs  unknown key for upload; did you mean 'skip.logs'?  cli skp.logs=…\n"
        "Hint: see `ml-dash upload --help` for every key\n")


def test_invalid_values_name_the_layer_that_set_them(home: Home) -> None:
    home.config({"upload": {"workers": 0}})
    r = run_cli("upload", "--batch-size", "-3", env={**home.env, "ML_DASH_PROGRESS": "fancy"})
    assert r.returncode == 2
    rows = [line.split()[0] for line in r.stderr.splitlines()[2:] if line.startswith("  ")]
    assert sorted(rows) == ["batch_size", "progress", "workers"]
    assert "file config.json (upload.workers)" in r.stderr and "env ML_DASH_PROGRESS" in r.stderr
    assert "cli --batch-size" in r.stderr


def test_the_same_key_twice_is_refused(home: Home) -> None:
    r = run_cli("upload", "--project", "a", "project=b", env=home.env)
    assert r.returncode == 2 and "project  given twice (--project and project=…)" in r.stderr


def test_config_show_lists_every_value_with_its_source(home: Home) -> None:
    home.config({"remote_url": "http://file:1", "api_key": "SECRET-FROM-FILE"})
    r = run_cli("config", "show", "--batch-size", "50", "+profile=ci",
                env={**home.env, "ML_DASH_REMOTE": "http://env:2"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Configuration of `ml-dash upload` (profiles: ci)"
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[2:]}
    assert rows["remote"] == ["'http://env:2'", "env ML_DASH_REMOTE"]
    assert rows["api_key"] == ["'**********'", "file config.json"]
    assert rows["batch_size"] == ["50", "cli --batch-size"]
    assert rows["strict"] == ["true", "profile ci"]
    assert rows["workers"] == ["4", "default"]


def test_upload_help_is_generated_from_the_schema(home: Home) -> None:
    r = run_cli("upload", "--help", env=home.env)
    assert r.returncode == 0
    for fragment in ("skip.logs", "--skip-logs", "ML_DASH_SKIP__LOGS", "batch_size", "--batch-size", "100",
                     "ML_DASH_API_KEY", "Profiles: ci (built-in), local (built-in)", "Precedence: defaults <"):
        assert fragment in r.stdout, fragment


def test_misspelt_environment_variable_is_a_warning(home: Home) -> None:
    r = run_cli("config", "show", env={**home.env, "ML_DASH_BATCH_SZE": "5"})
    assert r.returncode == 0
    assert ("Warning: environment variable ML_DASH_BATCH_SZE is not an ml-dash setting and is ignored "
            "(did you mean ML_DASH_BATCH_SIZE?)") in r.stderr


def test_bash_completion_completes_commands_flags_keys_and_profiles(home: Home, tmp_path: Path) -> None:
    script = run_cli("--completion", "bash", env=home.env).stdout
    home.profile("nightly", "workers: 2\n")
    bin_dir = Path(__import__("sys").executable).parent

    def complete(*words: str) -> list[str]:
        prog = (f"{script}\nCOMP_WORDS=(ml-dash {' '.join(words)}); COMP_CWORD={len(words)}; "
                "_ml_dash_complete; printf '%s\\n' \"${COMPREPLY[@]}\"")
        out = subprocess.run(["bash", "-c", prog], capture_output=True, text=True,
                             env={"PATH": f"{bin_dir}:/usr/bin:/bin", **home.env})
        return out.stdout.split()

    assert complete("up") == ["upload"]
    assert complete("upload", "--skip-l") == ["--skip-logs"]
    assert complete("upload", "skip.m") == ["skip.metrics="]
    assert complete("upload", "+profile=") == ["+profile=ci", "+profile=local", "+profile=nightly"]
    assert sorted(complete("upload", "strict=")) == ["strict=false", "strict=true"]


def test_state_and_report_paths_expand_a_quoted_tilde(home: Home) -> None:
    r = run_cli("config", "show", "--state-file", "~/state.json", env={**home.env, "HOME": "/home/u"})
    line = next(x for x in r.stdout.splitlines() if x.split()[0] == "state_file")
    assert "'/home/u/state.json'" in line


def test_json_config_file_with_a_syntax_error_names_file_and_line(home: Home) -> None:
    (home.path / "config.json").write_text('{\n  "remote_url": "x",\n}')
    r = run_cli("config", "show", env=home.env)
    assert r.returncode == 2
    assert r.stderr.startswith(f"Error: {home.path / 'config.json'}:3: invalid JSON: ")

