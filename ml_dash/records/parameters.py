"""``parameters.json``: the flattened hyper-parameters and their version."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from ml_dash.records.base import Record

__all__ = ["ParametersRecord", "flatten_params", "unflatten_params"]


class ParametersRecord(Record):
    """``{"version", "data", ["createdAt"], "updatedAt"}``.

    0.5.8 drops ``createdAt`` from version 2 on; a legacy file that is a bare flat
    object (no ``data`` key) is read as the data itself.
    """

    version: int = Field(1, ge=1)
    data: dict[str, Any] = Field(default_factory=dict)
    createdAt: str | None = None
    updatedAt: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_flat(cls, value: Any) -> Any:
        if isinstance(value, dict) and "data" not in value:
            return {"version": 1, "data": value}
        return value

    def to_json_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"version": self.version, "data": self.data}
        if self.createdAt is not None:
            doc["createdAt"] = self.createdAt
        doc["updatedAt"] = self.updatedAt
        return doc


def flatten_params(value: dict[str, Any], parent: str = "") -> dict[str, Any]:
    """``{"model": {"lr": 0.1}}`` → ``{"model.lr": 0.1}`` (lists, None, scalars kept)."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        full = f"{parent}.{key}" if parent else str(key)
        if isinstance(item, dict):
            flat.update(flatten_params(item, full))
        else:
            flat[full] = item
    return flat


def unflatten_params(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, item in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = item
    return nested
