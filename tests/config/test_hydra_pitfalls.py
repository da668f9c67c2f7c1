"""One regression test per pitfall of shared/design/config-hydra.md §4 (numbered as there)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from ml_dash.config.overrides import Override, parse_override, quote
from ml_dash.config.resolve import HYDRA_TRIM, ConfigValidationError, resolve
from ml_dash.errors import ConfigError
from tests.config.conftest import Home


def ov(text: str) -> Override:
    return parse_override(text)


def test_1_a_typo_in_the_profile_name_is_an_error_not_a_silent_no_op(home: Home) -> None:
    with pytest.raises(ConfigValidationError) as info:
        resolve("upload", [ov("profile=cii")], env=home.env)
    (row,) = info.value.problems
    assert row.key == "profile" and "unknown profile 'cii'; available: ci, local" in row.problem


@pytest.mark.parametrize("text", ["profile=ci", "+profile=ci"])
def test_2_plus_profile_and_profile_both_select(home: Home, text: str) -> None:
    assert resolve("upload", [ov(text)], env=home.env).profiles == ["ci"]


@pytest.mark.parametrize("text", ["profile=null", "profile=none", "~profile"])
def test_2_profile_null_is_no_profile_not_a_bare_value_error(home: Home, text: str) -> None:
    assert resolve("upload", [ov(text)], env=home.env).profiles == []


def test_3_config_store_does_not_leak_user_profiles_between_runs(tmp_path: Path) -> None:
    first, second = Home(tmp_path / "a"), Home(tmp_path / "b")
    first.profile("mine", "batch_size: 5\n")
    assert resolve("upload", [ov("profile=mine")], env=first.env).config.batch_size == 5
    with pytest.raises(ConfigValidationError, match="unknown profile 'mine'"):
        resolve("upload", [ov("profile=mine")], env=second.env)


def test_4_a_user_profile_cannot_shadow_or_merge_into_a_builtin_one(home: Home) -> None:
    home.profile("ci", "strict: false\n")
    with pytest.raises(ConfigError, match="cannot be named like the built-in profile 'ci'"):
        resolve("upload", [], env=home.env)


def test_5_user_profiles_need_no_package_header_and_a_missing_dir_does_not_warn(home: Home) -> None:
    # (pytest turns warnings into errors: a UserWarning about a missing search path would fail here)
    assert resolve("upload", [], env={"ML_DASH_CONFIG_DIR": str(home.path / "nowhere")}).profiles == []
    home.profile("plain", "workers: 2\n")  # no "# @package _global_"
    assert resolve("upload", [ov("profile=plain")], env=home.env).config.workers == 2


def test_6_the_packaged_conf_is_found_and_composes(home: Home) -> None:
    from ml_dash.config.conf_dir import conf_dir

    assert (conf_dir() / "upload.yaml").is_file() and (conf_dir() / "profiles/ci.yaml").is_file()
    assert resolve("upload", [], env=home.env).config.path == Path(".ml-dash")


def test_7_env_values_are_strings_and_pydantic_types_them(home: Home) -> None:
    r = resolve("upload", [], env={**home.env, "ML_DASH_BATCH_SIZE": "500", "ML_DASH_SKIP__LOGS": "true"})
    assert r.config.batch_size == 500 and r.config.skip.logs is True
    with pytest.raises(ConfigValidationError) as info:
        resolve("upload", [], env={**home.env, "ML_DASH_BATCH_SIZE": "lots"})
    (row,) = info.value.problems
    assert (row.key, row.source) == ("batch_size", "env ML_DASH_BATCH_SIZE")


def test_8_hydra_hints_are_kept_not_cut_to_the_first_line(home: Home) -> None:
    with pytest.raises(ConfigValidationError) as info:
        resolve("upload", [ov("skp.logs=true")], env=home.env)
    assert "did you mean 'skip.logs'?" in info.value.problems[0].problem


@pytest.mark.parametrize("value", ["1.10", "123", "a,b", "http://h/x?a=b", "it's", "C:\\p\\", "${oc.env:HOME}",
                                   "null", "", "-3", "ünï"])
def test_9_quoted_values_keep_their_text_and_type(home: Home, value: str) -> None:
    r = resolve("upload", [Override(f"project={quote(value)}", "project", "cli --project")], env=home.env)
    assert r.config.project == value


def test_9_values_from_file_and_env_are_data_not_interpolations(home: Home) -> None:
    home.config({"api_key": "ab${oc.env:HOME}cd", "upload": {"project": "${nope}"}})
    r = resolve("upload", [], env=home.env)
    assert r.config.api_key.get_secret_value() == "ab${oc.env:HOME}cd" and r.config.project == "${nope}"


def test_10_no_chdir_no_files_no_logging_handlers(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    handlers = list(logging.getLogger().handlers)
    resolve("upload", [ov("profile=ci"), ov("api_key=TOPSECRET")], env=home.env)
    assert Path.cwd() == work and os.listdir(work) == []
    assert logging.getLogger().handlers == handlers


def test_11_profiles_are_read_without_resource_warnings(home: Home) -> None:
    # -W error is on for the suite; an unclosed profile file would raise here.
    home.profile("x", "workers: 9\n")
    assert resolve("upload", [ov("profile=x")], env=home.env).config.workers == 9


def test_hydra_internal_group_names_still_exist(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    # HYDRA_TRIM relies on Hydra's internal group names. Deleting a group that is not in
    # Hydra's defaults list is an error, so every resolve() in this suite proves the names
    # exist; this proves such a rename would be loud, not silently ignored.
    import ml_dash.config.resolve as resolve_module

    assert resolve("upload", [], env=home.env).config is not None
    monkeypatch.setattr(resolve_module, "HYDRA_TRIM", [*HYDRA_TRIM, "~hydra/no_such_group"])
    with pytest.raises(ConfigValidationError):
        resolve("upload", [], env=home.env)
