"""Compose the layers with Hydra's Compose API, validate with pydantic, keep provenance.

Hydra is imported here only, and only when a command actually needs its configuration.
We never use ``@hydra.main``: it writes ``outputs/`` (with secrets in plain text), takes
over logging, may ``chdir`` and owns ``argv``; the Compose API does none of that.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ml_dash.config.commands import CommandSpec, get_spec
from ml_dash.config.keys import did_you_mean, leaves
from ml_dash.config.overrides import Override, normalise_profile
from ml_dash.config.sources import (
    Layer,
    ProfileSource,
    env_layer,
    escape_interpolation,
    file_layer,
    flatten,
    profiles,
)
from ml_dash.errors import ConfigError

__all__ = ["ConfigProblem", "ConfigValidationError", "Resolved", "resolve"]

# Hydra's own config groups, dropped from the composition: ~25 ms per compose, and none
# of them is used by the Compose API. (Internal names: tests/config/test_hydra_layer.py
# fails if a Hydra release renames them.)
HYDRA_TRIM = [f"~hydra/{g}" for g in ("job_logging", "hydra_logging", "launcher", "sweeper", "output",
                                       "help", "hydra_help", "env")]


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    problem: str
    source: str


class ConfigValidationError(ConfigError):
    """One or more invalid keys/values; ``problems`` are rendered as a table."""

    def __init__(self, problems: list[ConfigProblem], hint: str | None = None) -> None:
        first = problems[0]
        super().__init__(f"invalid configuration: {first.key}: {first.problem} (set by {first.source})", hint=hint)
        self.problems = problems


@dataclass
class Resolved:
    config: Any  # the frozen pydantic model of the command
    sources: dict[str, str]  # dotted key -> label of the layer that set it
    profiles: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _hydra_version_kwargs() -> dict[str, Any]:
    import hydra

    major, minor = (int(x) for x in hydra.__version__.split(".")[:2])
    # 1.3 warns without version_base (and falls back to 1.1 semantics, chdir included);
    # 1.4 warns *with* it.
    return {"version_base": "1.3"} if (major, minor) < (1, 4) else {}


def _store(cs: Any, **kw: Any) -> None:
    if "replace" in inspect.signature(cs.store).parameters:  # Hydra 1.4 warns without it
        kw["replace"] = True
    cs.store(**kw)


def _selected_profiles(overrides: list[Override], env: Mapping[str, str]) -> tuple[list[Override], list[str]]:
    """Apply ML_DASH_PROFILE unless the command line chooses; return overrides and names."""
    normalised = [normalise_profile(o) for o in overrides]
    chosen = [o for o in normalised if o.key == "profile"]
    if not chosen and env.get("ML_DASH_PROFILE"):
        names = [n.strip() for n in env["ML_DASH_PROFILE"].split(",") if n.strip()]
        value = names[0] if len(names) == 1 else "[" + ",".join(names) + "]"
        normalised.insert(0, Override(f"profile={value}", "profile", "env ML_DASH_PROFILE"))
        return normalised, names
    names: list[str] = []
    for o in chosen:
        if o.text.startswith("~"):
            names = []
            continue
        value = o.text.split("=", 1)[1].strip()
        names = [n.strip() for n in value.strip("[]").split(",") if n.strip()]
    return normalised, names


def _reject_duplicates(overrides: list[Override]) -> None:
    seen: dict[str, Override] = {}
    for o in overrides:
        if o.key in seen:
            first = seen[o.key]
            raise ConfigValidationError(
                [ConfigProblem(o.key, f"given twice ({first.label.removeprefix('cli ')} and "
                                      f"{o.label.removeprefix('cli ')})", "cli")],
                hint="give each key once")
        seen[o.key] = o


def _layer_node(layer: Layer) -> dict[str, Any]:
    result = escape_interpolation(layer.values)
    assert isinstance(result, dict)
    return result


def _redacted(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "**********")
    return text


def _hydra_problem(exc: Exception, spec: CommandSpec, overrides: list[Override], known: list[str],
                   available_profiles: list[str]) -> ConfigProblem:
    """Turn a Hydra exception into one row; never echo a value (it may be a secret)."""
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    if first.startswith("Could not override '"):
        key = first.split("'")[1]
        guess = did_you_mean(key, known)
        label = next((o.label for o in overrides if o.key == key), "cli")
        return ConfigProblem(key, f"unknown key for {spec.name}" + (f"; did you mean '{guess}'?" if guess else ""),
                             label)
    if "Could not find 'profile/" in first or "Could not find 'profile" in text:
        missing = text.split("profile/", 1)[1].split("'", 1)[0] if "profile/" in text else "?"
        label = next((o.label for o in overrides if o.key == "profile"), "cli")
        return ConfigProblem("profile", f"unknown profile '{missing}'; available: {', '.join(available_profiles)}",
                             label)
    culprit = next((o for o in overrides if o.text in text or o.key in first), None)
    key = culprit.key if culprit else "?"
    secrets = [o.text.split("=", 1)[-1] for o in overrides]
    detail = _redacted(" ".join(line.strip() for line in text.splitlines()[:2]), secrets)
    return ConfigProblem(key, f"cannot parse override: {detail}", culprit.label if culprit else "cli")


def resolve(
    command: str,
    overrides: Sequence[Override] = (),
    env: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Resolved:
    """The configuration of ``command``: defaults < config.json < env < profile < CLI."""
    env = dict(os.environ if env is None else env)
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    spec = get_spec(command)
    model: type[BaseModel] = spec.model()
    known = [leaf.key for leaf in leaves(model, spec.env_prefix)]
    file = file_layer(spec, env, _warn)
    envl = env_layer(spec, env, _warn)
    ovs, chosen = _selected_profiles(list(overrides), env)
    _reject_duplicates(ovs)
    available = profiles(env)
    chosen_sources: list[ProfileSource] = [available[n] for n in chosen if n in available]

    layered = _sources(known, file, envl, chosen_sources, spec)
    sources = _overridden(dict(layered), known, ovs)
    base_sources = _overridden(layered, known, [o for o in ovs if o.value is None])  # what the cache composes
    data = _composition(spec, model, ovs, file, envl, available, known, base_sources, env)

    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        for o in ovs:  # keys the schema does not know still get the label of what set them
            sources.setdefault(o.key, o.label)
        raise ConfigValidationError(_validation_rows(exc, sources, known, spec),
                                    hint=f"fix each value where the table says it was set; `ml-dash {spec.name} "
                                         "--help` lists every key and its allowed values") from None
    return Resolved(config=config, sources=sources, profiles=[s.name for s in chosen_sources], warnings=warnings)


def _sources(known: list[str], file: Layer, envl: Layer, chosen: list[ProfileSource],
             spec: CommandSpec) -> dict[str, str]:
    """``{dotted key: label of the layer that set it}``, below the command line."""
    sources = {key: "default" for key in known}
    for layer in (file, envl):
        sources.update(layer.sources)
    for source in chosen:
        for key in flatten(source.section(spec)):
            sources[key] = f"profile {source.name}"
    return sources


def _overridden(sources: dict[str, str], known: list[str], ovs: list[Override]) -> dict[str, str]:
    """``sources`` with the keys the command-line overrides set, labelled by them."""
    for o in ovs:
        if o.key != "profile":
            for key in known:
                if key == o.key or key.startswith(o.key + "."):
                    sources[key] = o.label
    return sources


def _composition(spec: CommandSpec, model: type[BaseModel], ovs: list[Override], file: Layer, envl: Layer,
                 available: Mapping[str, ProfileSource], known: list[str], base_sources: dict[str, str],
                 env: dict[str, str]) -> dict[str, Any]:
    """The composed data: from the composition cache when it has it (without Hydra), else Hydra's."""
    from ml_dash.config.commands import config_dir
    from ml_dash.config.compose_cache import ComposeCache
    from ml_dash.config.conf_dir import conf_dir

    cache = ComposeCache.for_inputs(
        config_dir=config_dir(env), conf_dir=conf_dir(), primary=spec.primary, overrides=ovs, trim=HYDRA_TRIM,
        file_values=file.values, env_values=envl.values, profile_files=[s.path for s in available.values()],
        secrets=[leaf.key for leaf in leaves(model, spec.env_prefix) if leaf.secret], base_sources=base_sources)
    if cache is None:
        return _compose(spec, ovs, file, envl, available, known)
    base = cache.load()
    if base is None:
        base = _compose(spec, cache.base, file, envl, available, known)
        cache.store(base)
    try:
        return cache.apply(base)
    except (KeyError, TypeError):  # an entry not of this schema (cannot be, but never an error)
        return _compose(spec, ovs, file, envl, available, known)


def _compose(spec: CommandSpec, ovs: list[Override], file: Layer, envl: Layer,
             available: Mapping[str, ProfileSource], known: list[str]) -> dict[str, Any]:
    """Hydra's composition of the layers (the only place Hydra is imported)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ml_dash.config.conf_dir import conf_dir

    cs = ConfigStore.instance()
    _store(cs, name="_file_", node=_layer_node(file))
    _store(cs, name="_env_", node=_layer_node(envl))
    cs.repo.pop("profile", None)  # ConfigStore is process-wide: forget the last run's profiles
    for name, source in available.items():
        _store(cs, group="profile", name=name, node=source.section(spec), package="_global_")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), job_name="ml-dash", **_hydra_version_kwargs()):
            cfg = compose(spec.primary, overrides=[o.text for o in ovs] + HYDRA_TRIM)
        data = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise ConfigValidationError([_hydra_problem(exc, spec, ovs, known, sorted(available))],
                                    hint=f"see `ml-dash {spec.name} --help` for every key") from None
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(data, dict)
    return data  # type: ignore[return-value]


def _key_of(loc: tuple[object, ...], known: list[str]) -> str:
    """The config key of an error location, without pydantic's union-member parts
    (``batch_size.constrained-int`` → ``batch_size``)."""
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in known or any(k.startswith(candidate + ".") for k in known):
            return candidate
    return ".".join(parts)


def _validation_rows(exc: ValidationError, sources: dict[str, str], known: list[str],
                     spec: CommandSpec) -> list[ConfigProblem]:
    secret_keys = {leaf.key for leaf in leaves(spec.model(), spec.env_prefix) if leaf.secret}
    problems: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        key = _key_of(err["loc"], known)
        if err["type"] == "extra_forbidden":
            guess = did_you_mean(key, known)
            problem = f"unknown key for {spec.name}" + (f"; did you mean '{guess}'?" if guess else "")
        else:
            problem = err["msg"].removeprefix("Value error, ")
        if key in secret_keys:
            problem = problem.split(" (got")[0]
        problems.setdefault(key, []).append(problem)
    rows = []
    for key, found in problems.items():
        # A union (a number or 'auto') fails once per member: say it once.
        problem = found[0] + "".join(", or " + p.removeprefix("Input should be ") for p in found[1:])
        source = sources.get(key) or next((v for k, v in sources.items() if key.startswith(k + ".")), "cli")
        rows.append(ConfigProblem(key, problem, source))
    return rows
