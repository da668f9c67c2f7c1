"""One test per adjacent pair of layers:
packaged defaults < ~/.ml-dash/config.json < ML_DASH_* env < profile < command line."""

from __future__ import annotations

from ml_dash.config.overrides import Override, parse_override
from ml_dash.config.resolve import resolve
from tests.config.conftest import Home


def ov(text: str) -> Override:
    return parse_override(text)


def test_default_when_nothing_is_set(home: Home) -> None:
    r = resolve("upload", [], env=home.env)
    assert (r.config.batch_size, r.sources["batch_size"]) == ("auto", "default")


def test_precedence_file_over_defaults(home: Home) -> None:
    home.config({"upload": {"batch_size": 250}})
    r = resolve("upload", [], env=home.env)
    assert (r.config.batch_size, r.sources["batch_size"]) == (250, "file config.json (upload.batch_size)")


def test_precedence_env_over_file(home: Home) -> None:
    home.config({"remote_url": "http://file:1", "upload": {"batch_size": 250}})
    r = resolve("upload", [], env={**home.env, "ML_DASH_BATCH_SIZE": "500", "ML_DASH_REMOTE": "http://env:2"})
    assert (r.config.batch_size, r.sources["batch_size"]) == (500, "env ML_DASH_BATCH_SIZE")
    assert (r.config.remote, r.sources["remote"]) == ("http://env:2", "env ML_DASH_REMOTE")


def test_precedence_profile_over_env(home: Home) -> None:
    home.profile("nightly", "batch_size: 1000\n")
    r = resolve("upload", [ov("profile=nightly")], env={**home.env, "ML_DASH_BATCH_SIZE": "500"})
    assert (r.config.batch_size, r.sources["batch_size"]) == (1000, "profile nightly")


def test_precedence_cli_over_profile(home: Home) -> None:
    home.profile("nightly", "batch_size: 1000\n")
    r = resolve("upload", [ov("profile=nightly"), Override("batch_size='7'", "batch_size", "cli --batch-size")],
                env=home.env)
    assert (r.config.batch_size, r.sources["batch_size"]) == (7, "cli --batch-size")


def test_cli_profile_replaces_the_env_profile(home: Home) -> None:
    home.profile("a", "batch_size: 11\n")
    home.profile("b", "workers: 3\n")
    r = resolve("upload", [ov("+profile=b")], env={**home.env, "ML_DASH_PROFILE": "a"})
    assert r.profiles == ["b"] and r.config.batch_size == "auto" and r.config.workers == 3


def test_env_profile_selects_when_cli_is_silent(home: Home) -> None:
    r = resolve("upload", [], env={**home.env, "ML_DASH_PROFILE": "ci"})
    assert r.profiles == ["ci"] and r.config.strict is True and r.sources["strict"] == "profile ci"


def test_profiles_stack_left_to_right(home: Home) -> None:
    home.profile("nightly", "strict: false\nskip:\n  files: true\n")
    r = resolve("upload", [ov("profile=[ci,nightly]")], env=home.env)
    assert (r.config.strict, r.config.skip.files, r.config.progress) == (False, True, "plain")


def test_profile_null_turns_the_env_profile_off(home: Home) -> None:
    r = resolve("upload", [ov("profile=null")], env={**home.env, "ML_DASH_PROFILE": "ci"})
    assert r.profiles == [] and r.config.strict is False


def test_api_key_beats_username_whatever_the_layer(home: Home) -> None:
    home.config({"api_key": "k"})
    r = resolve("upload", [ov("username=bob")], env=home.env)
    assert r.config.api_key.get_secret_value() == "k" and r.config.username == "bob"


def test_config_file_alias_keys_of_0_5_8(home: Home) -> None:
    home.config({"remote_url": "http://h:1/", "api_key": "k", "default_batch_size": 42})
    r = resolve("upload", [], env=home.env)
    assert (r.config.remote, r.config.batch_size) == ("http://h:1", 42)
    assert r.sources["batch_size"] == "file config.json (default_batch_size)"
