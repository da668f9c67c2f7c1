"""The composition cache (config/compose_cache.py): a hit gives exactly what Hydra composes, without
Hydra; any change of an input composes again; secrets never reach the disk."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ml_dash.config.resolve as resolve_module
from ml_dash.config.overrides import Override, parse_override, quote
from ml_dash.config.resolve import Resolved, resolve
from tests.config.conftest import Home

Scenario = Callable[[Home], tuple[str, list[Override], dict[str, str]]]


@pytest.fixture
def composes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commands Hydra composed, in order."""
    calls: list[str] = []
    real = resolve_module._compose

    def counting(spec: Any, *args: Any) -> dict[str, Any]:
        calls.append(spec.name)
        return real(spec, *args)

    monkeypatch.setattr(resolve_module, "_compose", counting)
    return calls


def _seen(r: Resolved) -> tuple[Any, ...]:
    dumped = r.config.model_dump(mode="json")
    secrets = {k: v.get_secret_value() for k, v in r.config if hasattr(v, "get_secret_value")}
    return dumped, secrets, r.sources, r.profiles


def _entries(home: Home) -> list[Path]:
    return sorted((home.path / "cache" / "compose").glob("*.json"))


SCENARIOS: dict[str, Scenario] = {
    "defaults": lambda h: ("upload", [], h.env),
    "file": lambda h: (h.config({"remote_url": "http://file:1", "upload": {"batch_size": 250}}) and
                       ("upload", [], h.env)),
    "env over file": lambda h: (h.config({"upload": {"batch_size": 250}}) and
                                ("upload", [], {**h.env, "ML_DASH_BATCH_SIZE": "500"})),
    "profile": lambda h: (h.profile("nightly", "batch_size: 1000\nskip:\n  files: true\n") and
                          ("upload", [parse_override("profile=[ci,nightly]")], h.env)),
    "cli": lambda h: ("upload", [Override("batch_size='7'", "batch_size", "cli --batch-size")], h.env),
    "secret in file": lambda h: (h.config({"api_key": "file-secret-123", "remote_url": "http://x:1"}) and
                                 ("upload", [], h.env)),
    "secret in env": lambda h: ("download", [], {**h.env, "ML_DASH_API_KEY": "env-secret-456"}),
    "server": lambda h: ("serve", [parse_override("port=9001")], h.env),
    "secret flag": lambda h: ("upload", [Override(f"api_key={quote('fl@g ${x}')}", "api_key", "cli --api-key",
                                                  "fl@g ${x}")], h.env),
}


def _flag(value: str) -> Override:
    return Override(f"api_key={quote(value)}", "api_key", "cli --api-key", value)


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_hit_gives_what_hydra_composes_without_hydra(name: str, home: Home, composes: list[str]) -> None:
    command, overrides, env = SCENARIOS[name](home)
    first = resolve(command, overrides, env=env)
    assert composes == [command] and len(_entries(home)) == 1
    second = resolve(command, overrides, env=env)
    assert composes == [command]  # the second came from the cache
    assert _seen(second) == _seen(first)


def test_secrets_never_reach_the_disk_and_come_back_from_their_layer(home: Home, composes: list[str]) -> None:
    home.config({"api_key": "file-secret-123"})
    env = {**home.env, "ML_DASH_REMOTE": "http://x:1"}
    assert resolve("upload", [], env=env).config.api_key.get_secret_value() == "file-secret-123"
    hit = resolve("upload", [], env={**env, "ML_DASH_API_KEY": "env-secret-456"})  # env wins over the file
    assert hit.config.api_key.get_secret_value() == "env-secret-456"
    again = resolve("upload", [], env={**env, "ML_DASH_API_KEY": "another-789"})
    assert again.config.api_key.get_secret_value() == "another-789"
    assert composes == ["upload", "upload"]  # the secret's value is not an input; where it is set is
    stored = "".join(p.read_text() for p in _entries(home))
    assert "file-secret" not in stored and "env-secret" not in stored and "789" not in stored and "http://x:1" in stored
    assert all(p.stat().st_mode & 0o077 == 0 for p in _entries(home))


def test_a_secret_flag_is_set_again_from_the_flag(home: Home, composes: list[str]) -> None:
    home.config({"api_key": "file-secret-123"})
    assert resolve("upload", [_flag("flag-secret-1")], env=home.env).config.api_key.get_secret_value() == \
        "flag-secret-1"
    assert resolve("upload", [_flag("flag-secret-2")], env=home.env).config.api_key.get_secret_value() == \
        "flag-secret-2"
    assert resolve("upload", [], env=home.env).config.api_key.get_secret_value() == "file-secret-123"
    assert composes == ["upload"]  # flags are set on the cached rest: one entry for all three
    stored = "".join(p.read_text() for p in _entries(home))
    assert "secret-" not in stored


def test_a_secret_typed_as_override_or_from_a_profile_is_not_cached(home: Home, composes: list[str]) -> None:
    resolve("upload", [parse_override("api_key=cli-secret")], env=home.env)
    home.profile("keyed", "api_key: profile-secret\n")
    resolve("upload", [parse_override("profile=keyed")], env=home.env)
    assert _entries(home) == []


def test_an_interpolation_is_never_cached(home: Home, composes: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHERE", "http://a:1")  # oc.env reads the process's environment
    env = home.env
    assert resolve("upload", [parse_override("remote=${oc.env:WHERE}")], env=env).config.remote == "http://a:1"
    assert _entries(home) == []
    home.profile("interp", "project: ${oc.env:WHERE}\n")
    resolve("upload", [parse_override("profile=interp")], env=env)
    assert _entries(home) == []


@pytest.mark.parametrize("change", ["profile file", "config.json", "env", "override", "conf"])
def test_any_change_of_an_input_composes_again(change: str, home: Home, composes: list[str],
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home.profile("nightly", "batch_size: 1000\n")
    home.config({"upload": {"workers": 3}})
    env, ovs = dict(home.env), [parse_override("profile=nightly")]
    resolve("upload", ovs, env=env)
    if change == "profile file":
        home.profile("nightly", "batch_size: 2000\n")
    elif change == "config.json":
        home.config({"upload": {"workers": 5}})
    elif change == "env":
        env["ML_DASH_WORKERS"] = "6"
    elif change == "override":
        ovs.append(parse_override("strict=true"))
    else:  # a new release's packaged defaults
        import shutil

        from ml_dash.config import conf_dir as conf_module

        copy = tmp_path / "conf"
        shutil.copytree(conf_module.conf_dir(), copy)
        (copy / "upload.yaml").write_text((copy / "upload.yaml").read_text().replace("attempts: 6", "attempts: 9"))
        monkeypatch.setattr(conf_module, "conf_dir", lambda: copy)
    r = resolve("upload", ovs, env=env)
    assert composes == ["upload", "upload"]
    assert (r.config.batch_size, r.config.workers, r.config.strict, r.config.retry.attempts) == {
        "profile file": (2000, 3, False, 6), "config.json": (1000, 5, False, 6), "env": (1000, 6, False, 6),
        "override": (1000, 3, True, 6), "conf": (1000, 3, False, 9)}[change]


def test_a_corrupt_or_unwritable_cache_is_a_miss(home: Home, composes: list[str]) -> None:
    first = resolve("upload", [], env=home.env)
    (entry,) = _entries(home)
    entry.write_text("{not json")
    assert _seen(resolve("upload", [], env=home.env)) == _seen(first)
    entry.write_text(json.dumps(["a list"]))
    assert _seen(resolve("upload", [], env=home.env)) == _seen(first)
    assert composes == ["upload"] * 3
    import shutil

    shutil.rmtree(home.path / "cache")
    (home.path / "cache").write_text("")  # no directory can be made there (as root too)
    assert _seen(resolve("upload", [], env=home.env)) == _seen(first)
    assert _seen(resolve("upload", [], env=home.env)) == _seen(first)
    assert composes == ["upload"] * 5


def test_the_second_command_does_not_import_hydra(home: Home) -> None:
    code = ("import sys; from ml_dash.config.resolve import resolve; resolve('upload', []); "
            "print('hydra' in sys.modules, 'omegaconf' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code], env={**home.env, "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, check=True).stdout.split() for _ in range(2)]
    assert runs == [["True", "True"], ["False", "False"]]


def test_flags_are_set_on_the_cached_rest_as_hydra_sets_them(home: Home, composes: list[str]) -> None:
    other = Home(home.path.parent / "other")  # no cache entry there yet: Hydra composes everything
    for h in (home, other):
        h.profile("nightly", "batch_size: 1000\nremote: http://profile:1\n")
    runs = [["--remote", "http://b:2", "--batch-size", "250", "-v", "--skip-files", "profile=nightly", "/data/b"],
            ["--remote", "http://a:1", "--skip-files", "profile=nightly", "/data/tree"],
            ["profile=nightly"],  # the entry the flags' runs made holds the layers' values, not the flags'
            ["--skip-files", "profile=nightly", "strict=true"]]
    for argv in runs:
        ovs = _flags(argv)
        cached = resolve("upload", ovs, env=home.env)
        fresh = resolve("upload", ovs, env=other.env)
        for p in _entries(other):
            p.unlink()
        assert _seen(cached) == _seen(fresh)
    assert len(composes) == 2 + 4  # one entry for the first three runs, one for the fourth; 4 fresh


def _flags(argv: list[str]) -> list[Override]:
    from ml_dash.config.commands import get_spec
    from ml_dash.config.flags import parse_command_line
    from ml_dash.config.keys import leaves

    spec = get_spec("upload")
    return parse_command_line("ml-dash upload", argv, leaves(spec.model(), spec.env_prefix)).overrides


def test_a_typed_override_over_a_flag_key_composes_everything(home: Home, composes: list[str]) -> None:
    ovs = [Override("skip.files=true", "skip.files", "cli --skip-files", True), parse_override("skip={logs:true}")]
    r = resolve("upload", ovs, env=home.env)
    assert _entries(home) == [] and composes == ["upload"]
    assert (r.config.skip.files, r.config.skip.logs) == (True, True)  # Hydra merged the dict into the flag's
