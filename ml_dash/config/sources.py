"""The layers below the command line, each as plain data plus where each key came from.

``packaged defaults < ~/.ml-dash/config.json < ML_DASH_* env < profile < command line``

Values from the file and the environment are data: they enter Hydra as ConfigStore
nodes (never as override strings) with ``${`` escaped, so nothing in them is parsed as
override grammar or resolved as an interpolation.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_dash.config.commands import GLOBAL_ENV, SPECS, CommandSpec, config_dir
from ml_dash.config.keys import did_you_mean, leaves
from ml_dash.errors import ConfigError

__all__ = ["Layer", "ProfileSource", "env_layer", "escape_interpolation", "file_layer", "profiles", "set_nested"]

Warn = Callable[[str], None]

# Top-level config.json keys other ml-dash commands and versions use (0.5.8 `list` reads namespace).
SHARED_FILE_KEYS = {"namespace"}


@dataclass
class Layer:
    """Nested values and ``{dotted key: label}`` for provenance."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def set_nested(target: dict[str, Any], dotted: str, value: Any) -> None:
    node = target
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def flatten(values: Mapping[str, Any], parent: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{parent}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def escape_interpolation(value: Any) -> Any:
    """``${`` → ``\\${`` in every string, so OmegaConf keeps it literally."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, dict):
        return {k: escape_interpolation(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_interpolation(v) for v in value]
    return value


def _known_keys(spec: CommandSpec) -> list[str]:
    return [leaf.key for leaf in leaves(spec.model(), spec.env_prefix)]


# --- ~/.ml-dash/config.json ------------------------------------------------------------------
def read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}",
                          hint="make it readable by you (chmod 600), or set ML_DASH_CONFIG_DIR to another directory") from None
    try:
        data = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}",
                          hint="fix the file, or move it away to run without it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level",
                          hint='write the settings as {"remote_url": "...", "api_key": "..."}, or move the file away')
    return data


def file_layer(spec: CommandSpec, env: Mapping[str, str], warn: Warn) -> Layer:
    path = config_dir(dict(env)) / "config.json"
    data = read_config_file(path)
    layer = Layer()
    if not data:
        return layer
    label = f"file {path.name}"
    known = _known_keys(spec)
    sections = {s.file_section for s in SPECS.values()}
    for key, value in data.items():
        if key in spec.file_aliases:
            target = spec.file_aliases[key]
            set_nested(layer.values, target, value)
            layer.sources[target] = f"{label} ({key})" if key != target else label
        elif key == spec.file_section:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: \"{key}\" must be an object of {spec.name} settings",
                                  hint=f'e.g. "{key}": {{"workers": 4}}; `ml-dash {spec.name} --help` lists the keys')
            for dotted, item in flatten(value).items():
                set_nested(layer.values, dotted, item)
                layer.sources[dotted] = f"{label} ({key}.{dotted})"
        elif key not in sections and key not in SHARED_FILE_KEYS and not any(
                key in s.file_aliases for s in SPECS.values()):
            # The file is shared with other commands and client versions: warn, don't fail.
            guess = did_you_mean(key, [*spec.file_aliases, *known, *sections])
            warn(f"{path}: unknown key '{key}' ignored" + (f" (did you mean '{guess}'?)" if guess else ""))
    if "api_key" in data and os.name == "posix":
        mode = path.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            warn(f"{path} holds an api_key and is readable by other users; run: chmod 600 {path}")
    return layer


# --- ML_DASH_* environment ---------------------------------------------------------------------
def known_env_names() -> set[str]:
    names = set(GLOBAL_ENV)
    for spec in SPECS.values():
        names.update(leaf.env for leaf in leaves(spec.model(), spec.env_prefix))
        names.update(spec.env_aliases)
    return names


def env_layer(spec: CommandSpec, env: Mapping[str, str], warn: Warn) -> Layer:
    layer = Layer()
    by_env = {leaf.env: leaf.key for leaf in leaves(spec.model(), spec.env_prefix)}
    by_env.update(spec.env_aliases)
    known = known_env_names()
    for name in sorted(env):
        if not name.startswith("ML_DASH_"):
            continue
        if name in by_env:
            key = by_env[name]
            if key in layer.sources:  # canonical name and alias both set: the canonical one wins
                if name in spec.env_aliases:
                    continue
            set_nested(layer.values, key, env[name])
            layer.sources[key] = f"env {name}"
        elif name not in known:
            guess = did_you_mean(name, sorted(known))
            warn(f"environment variable {name} is not an ml-dash setting and is ignored"
                 + (f" (did you mean {guess}?)" if guess else ""))
    return layer


# --- profiles ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProfileSource:
    name: str
    path: Path
    builtin: bool

    def section(self, spec: CommandSpec) -> dict[str, Any]:
        """The part of the profile for ``spec``: its section, or the whole file for upload."""
        from omegaconf import OmegaConf

        try:
            node = OmegaConf.create(self.path.read_text())
        except Exception as exc:  # yaml.YAMLError, OmegaConf errors: one message, file named
            raise ConfigError(f"{self.path}: invalid YAML: {str(exc).splitlines()[0]}",
                              hint="fix the profile, or remove it to run without it") from None
        data = OmegaConf.to_container(node, resolve=False)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: a profile must be a mapping of keys to values",
                              hint="write one `key: value` per line, e.g. `workers: 4`")
        sections = {s.file_section for s in SPECS.values()}
        if any(k in sections for k in data):
            section = data.get(spec.file_section) or {}
            if not isinstance(section, dict):
                raise ConfigError(f"{self.path}: section '{spec.file_section}' must be a mapping",
                                  hint=f"indent the {spec.file_section} settings below `{spec.file_section}:`, "
                                       "one `key: value` per line")
            return section
        return data if spec.name == "upload" else {}


def builtin_profiles_dir() -> Path:
    from ml_dash.config.conf_dir import conf_dir

    return conf_dir() / "profiles"


def profiles(env: Mapping[str, str]) -> dict[str, ProfileSource]:
    """Built-in profiles (conf/profiles) and the user's (~/.ml-dash/profiles), by name."""
    found = {p.stem: ProfileSource(p.stem, p, True) for p in sorted(builtin_profiles_dir().glob("*.yaml"))}
    user_dir = config_dir(dict(env)) / "profiles"
    for path in sorted(user_dir.glob("*.yaml")) if user_dir.is_dir() else []:
        if path.stem in found:
            raise ConfigError(f"{path}: a user profile cannot be named like the built-in profile '{path.stem}'",
                              hint=f"rename it, e.g. {path.with_stem('my-' + path.stem).name}")
        found[path.stem] = ProfileSource(path.stem, path, False)
    return found
