"""What every record model shares: strictness rules and error rendering."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Record", "describe_validation_error"]


class Record(BaseModel):
    """Base of the on-disk record models.

    Unknown keys are kept (``extra="allow"``): newer clients add keys (``_ts``,
    ``bindrs`` on files, ``prefix``) and a record must survive a round trip.
    Input is never echoed in errors: records can hold secrets in metadata.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, hide_input_in_errors=True)


def describe_validation_error(exc: ValidationError) -> str:
    """One line: ``key: problem`` for the first error, plus a count of the others."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if first["type"] == "missing":
        msg = "required key is missing"
    text = f"{loc}: {msg}" if loc else msg
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text


def type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )
