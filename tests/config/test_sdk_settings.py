"""The SDK chooses local / remote / hybrid from explicit arguments, then the environment."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from ml_dash.config.sdk import MLDashConfigWarning, choose_mode
from ml_dash.errors import ConfigError
from tests.config.conftest import Home


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, home: Home) -> pytest.MonkeyPatch:
    monkeypatch.setenv("ML_DASH_CONFIG_DIR", str(home.path))
    return monkeypatch


def test_nothing_set_means_local_in_dot_ml_dash(env: pytest.MonkeyPatch) -> None:
    c = choose_mode(None, None, None, None)
    assert (c.mode, c.local_path, c.remote) == ("local", Path(".ml-dash"), None)


def test_ml_dash_local_path_selects_local(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("ML_DASH_LOCAL_PATH", str(tmp_path))
    assert choose_mode(None, None, None, None).local_path == tmp_path


def test_ml_dash_remote_selects_remote_and_with_a_path_hybrid(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("ML_DASH_REMOTE", "http://127.0.0.1:8000")
    env.setenv("ML_DASH_API_KEY", "k")
    c = choose_mode(None, None, None, None)
    assert (c.mode, c.remote, c.api_key) == ("remote", "http://127.0.0.1:8000", "k")
    env.setenv("ML_DASH_LOCAL_PATH", str(tmp_path))
    assert choose_mode(None, None, None, None).mode == "hybrid"


def test_dreamlake_names_of_the_seed_docs(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("DREAMLAKE_API_URL", "http://127.0.0.1:1")
    env.setenv("DREAMLAKE_API_KEY", "dk")
    env.setenv("DREAMLAKE_LOCAL_PATH", str(tmp_path))
    c = choose_mode(None, None, None, None)
    assert (c.mode, c.remote, c.api_key, c.local_path) == ("hybrid", "http://127.0.0.1:1", "dk", tmp_path)


def test_ml_dash_names_beat_dreamlake_names(env: pytest.MonkeyPatch) -> None:
    env.setenv("DREAMLAKE_API_URL", "http://127.0.0.1:1")
    env.setenv("ML_DASH_REMOTE", "http://127.0.0.1:2")
    assert choose_mode(None, None, None, None).remote == "http://127.0.0.1:2"


def test_explicit_arguments_win_over_the_environment(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("ML_DASH_REMOTE", "http://127.0.0.1:2")
    c = choose_mode(None, tmp_path, None, None)
    assert (c.mode, c.remote) == ("local", None)


def test_config_json_alone_never_makes_a_script_remote(env: pytest.MonkeyPatch, home: Home) -> None:
    home.config({"remote_url": "http://127.0.0.1:3", "api_key": "filekey"})
    assert choose_mode(None, None, None, None).mode == "local"
    env.setenv("ML_DASH_MODE", "remote")  # ... but supplies URL and key once a mode is chosen
    c = choose_mode(None, None, None, None)
    assert (c.mode, c.remote, c.api_key) == ("remote", "http://127.0.0.1:3", "filekey")


def test_remote_mode_without_a_url_is_a_config_error(env: pytest.MonkeyPatch) -> None:
    env.setenv("ML_DASH_MODE", "remote")
    with pytest.raises(ConfigError, match="ML_DASH_MODE=remote needs a server URL"):
        choose_mode(None, None, None, None)


def test_environment_matching_is_case_sensitive(env: pytest.MonkeyPatch) -> None:
    env.setenv("ml_dash_remote", "http://127.0.0.1:9")
    assert choose_mode(None, None, None, None).mode == "local"


def test_misspelt_variable_warns(env: pytest.MonkeyPatch) -> None:
    env.setenv("ML_DASH_REMOT", "http://127.0.0.1:9")
    with pytest.warns(MLDashConfigWarning, match="ML_DASH_REMOT is not an ml-dash setting.*ML_DASH_REMOTE"):
        assert choose_mode(None, None, None, None).mode == "local"


def test_bad_mode_value_is_a_config_error(env: pytest.MonkeyPatch) -> None:
    env.setenv("ML_DASH_MODE", "cloud")
    with pytest.raises(ConfigError, match="ML_DASH_MODE"):
        choose_mode(None, None, None, None)


def test_training_script_logs_where_the_environment_says(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ml_dash import Experiment

    env.setenv("ML_DASH_LOCAL_PATH", str(tmp_path / "runs"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Experiment(name="e", project="p").run as exp:
            exp.log("hello")
    assert (tmp_path / "runs/p/e/logs/logs.jsonl").exists()
