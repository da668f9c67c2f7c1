"""Hydra's composition, remembered between commands.

Importing Hydra and OmegaConf and composing took ~0.6 s of every command's start: more than
everything else `ml-dash upload` does before its first request. The composition is a function of
its inputs alone (the packaged ``conf/``, the config.json and env layers, the profiles, the
overrides, the Hydra and OmegaConf releases), so its result is kept in
``~/.ml-dash/cache/compose/`` (``ML_DASH_CONFIG_DIR``) under a hash of all of them, and the next
command with the same inputs does not import Hydra at all.

* **Flags are set on top.** A flag (``--remote URL``, ``--skip-files``, the PATH) is an override
  of one leaf with a value Hydra gives back verbatim (``quote``), the last layer: the cached part
  is the composition of everything else, and the flags' values are set on it. So an upload to
  another server or of another tree still hits. (A ``key=value`` typed on the command line is
  Hydra's to read: it is part of the cached composition's inputs; one that touches a flag's key
  composes everything, uncached.)
* **Secrets never reach the disk**: a secret set by config.json or the environment is left out of
  the cached result (and out of the hash) and set again from its layer on a hit; a flag never is
  in it; a secret set by a profile or typed as ``api_key=...`` makes the composition uncached.
* **Nothing outside the inputs may matter**: a typed override or a profile that holds ``${`` (an
  interpolation, which may read anything) makes it uncached (config.json and env values are
  escaped before they reach Hydra, flags are quoted).
* Any problem with the cache (unwritable, corrupt, concurrent writers) is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_dash import __version__
from ml_dash.config.overrides import Override

__all__ = ["ComposeCache"]

KEEP = 32  # entries kept (the newest); each is a few kB
_SECRET = "<secret>"


def _module_stamp(name: str) -> list[Any]:
    """Where a package is installed and when: a new release changes it (found without importing it)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return [name, None]
    st = os.stat(spec.origin)
    return [spec.origin, st.st_mtime_ns, st.st_size]


def _get(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _has(tree: dict[str, Any], dotted: str) -> bool:
    try:
        _get(tree, dotted)
    except (KeyError, TypeError):
        return False
    return True


def _without(tree: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """A copy of ``tree`` with each of ``keys`` that it holds replaced by a placeholder."""
    copy = json.loads(json.dumps(tree))
    for key in keys:
        if _has(copy, key):
            _set(copy, key, _SECRET)
    return copy  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ComposeCache:
    path: Path  # the entry for these inputs
    base: list[Override]  # what Hydra composes: the overrides but the flags
    leaves: dict[str, Any]  # set on the composition: the secrets from config.json/env, then the flags
    hidden: list[str]  # the secrets from config.json/env: placeholders in the entry

    @classmethod
    def for_inputs(cls, *, config_dir: Path, conf_dir: Path, primary: str, overrides: list[Override],
                   trim: list[str], file_values: dict[str, Any], env_values: dict[str, Any],
                   profile_files: list[Path], secrets: list[str], base_sources: dict[str, str],
                   ) -> ComposeCache | None:
        """The cache entry of a composition, or None when it must not be cached. ``base_sources``:
        which layer sets each key below the flags (what the cached composition holds)."""
        flags = {o.key: o.value for o in overrides if o.value is not None}
        base = [o for o in overrides if o.value is None]
        for o in base:
            if "${" in o.text:
                return None
            if o.key != "profile" and any(f == o.key or f.startswith(o.key + ".") or o.key.startswith(f + ".")
                                          for f in flags):
                return None  # a typed override over a flag's key: their order is Hydra's to apply
        leaves: dict[str, Any] = {}
        try:
            for key in secrets:
                source = base_sources.get(key, "default")  # in the composition, under any flag
                if source.startswith("file "):
                    leaves[key] = _get(file_values, key)
                elif source.startswith("env "):
                    leaves[key] = _get(env_values, key)
                elif source != "default":
                    return None  # from a profile or typed as an override: not on disk
            profiles = []
            for p in sorted(profile_files):
                text = p.read_bytes()
                if b"${" in text:
                    return None
                profiles.append([str(p), hashlib.sha256(text).hexdigest()])
            conf = [[str(p.relative_to(conf_dir)), hashlib.sha256(p.read_bytes()).hexdigest()]
                    for p in sorted(conf_dir.rglob("*.yaml"))]
            inputs = [__version__, _module_stamp("hydra"), _module_stamp("omegaconf"), conf, primary,
                      [o.text for o in base] + trim, _without(file_values, secrets), _without(env_values, secrets),
                      profiles]
            digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=repr).encode()).hexdigest()
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return cls(config_dir / "cache" / "compose" / f"{digest[:40]}.json", base, {**leaves, **flags}, list(leaves))

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """The full configuration: ``data`` (the composition of ``base``) with the leaves set."""
        for key, value in self.leaves.items():
            _get(data, key)  # every leaf of the schema is in the packaged defaults
            _set(data, key, value)
        return data

    def load(self) -> dict[str, Any] | None:
        """The composition of ``base`` (secrets as placeholders), or None (a miss)."""
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def store(self, data: dict[str, Any]) -> None:
        """Keep ``data`` without the secrets; the oldest entries beyond ``KEEP`` go."""
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            text = json.dumps(_without(data, self.hidden))  # (the flags are not in it: not composed)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=directory)  # 0600
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)  # readers see the old entry or the new one, never half
            entries = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
            for old in entries[:-KEEP]:
                old.unlink(missing_ok=True)
        except (OSError, ValueError, TypeError):
            pass
