"""Walk a config model into its leaves: dotted key, type, default, help, flags, env var.

Everything user-facing that names a key (``--help``, env vars, completion, errors,
``config show``) is derived from this one walk, so a new field shows up everywhere.
"""

from __future__ import annotations

import difflib
import functools
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

__all__ = ["ENV_PREFIX", "Leaf", "did_you_mean", "env_name", "leaves"]

ENV_PREFIX = "ML_DASH_"


@dataclass(frozen=True)
class Leaf:
    key: str  # dotted: "skip.logs"
    annotation: Any
    default: Any
    description: str
    flags: tuple[str, ...]
    secret: bool
    env: str  # "ML_DASH_SKIP__LOGS"

    @property
    def is_bool(self) -> bool:
        return self.annotation is bool

    @property
    def type_name(self) -> str:
        ann = self.annotation
        origin = typing.get_origin(ann)
        if origin is typing.Literal:
            return "|".join(str(a) for a in typing.get_args(ann))
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if args and origin is not None:
            ann = args[0]
        if ann is SecretStr:
            return "secret"
        return getattr(ann, "__name__", str(ann)).lower()


def env_name(key: str, prefix: str = ENV_PREFIX) -> str:
    return prefix + key.upper().replace(".", "__")


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


@functools.cache
def leaves(model: type[BaseModel], prefix: str = ENV_PREFIX) -> tuple[Leaf, ...]:
    out: list[Leaf] = []

    def walk(m: type[BaseModel], parent: str) -> None:
        for name, field in m.model_fields.items():
            key = f"{parent}{name}"
            sub = _submodel(field.annotation)
            if sub is not None:
                walk(sub, key + ".")
                continue
            out.append(_leaf(key, field, prefix))

    walk(model, "")
    return tuple(out)


def _leaf(key: str, field: FieldInfo, prefix: str) -> Leaf:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    raw_flags = extra.get("flags", [])
    default = None if field.default_factory is not None and field.default is None else field.default
    if field.default_factory is not None:
        default = field.default_factory()  # type: ignore[call-arg]
    return Leaf(key=key, annotation=field.annotation, default=default, description=field.description or "",
                flags=tuple(str(f) for f in raw_flags) if isinstance(raw_flags, list) else (),
                secret=bool(extra.get("secret")) or field.annotation in (SecretStr, SecretStr | None),
                env=env_name(key, prefix))


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...]) -> str | None:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return match[0] if match else None
