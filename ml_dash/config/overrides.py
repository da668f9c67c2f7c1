"""Hydra override strings: quoting values, reading keys back, normalising profile selection.

No Hydra import here: this runs for every command line, including ``--help``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["OVERRIDE_RE", "Override", "is_override", "normalise_profile", "quote"]

# key=value, +key=value, ++key=value, key@pkg=value, or ~key
OVERRIDE_RE = re.compile(r"^(?P<op>\+\+|\+|~)?(?P<key>[A-Za-z_][\w\-]*(?:\.[A-Za-z_][\w\-]*)*)(?:@[\w.]+)?(?P<eq>=|$)")


@dataclass(frozen=True)
class Override:
    """One override for Hydra, with the key it sets and where it came from (for provenance)."""

    text: str
    key: str
    label: str
    # What Hydra gives back for the value when that is known without Hydra (a flag's: quoted
    # verbatim, or true): the composition cache sets it on the cached rest (compose_cache.py).
    value: str | bool | None = None


def is_override(arg: str) -> bool:
    m = OVERRIDE_RE.match(arg)
    return bool(m) and (m.group("eq") == "=" or m.group("op") == "~")


def parse_override(arg: str, label: str | None = None) -> Override:
    m = OVERRIDE_RE.match(arg)
    assert m is not None
    key = m.group("key")
    return Override(text=arg, key=key, label=label or f"cli {key}=…")


def quote(value: str) -> str:
    """Quote a string so Hydra's override grammar gives it back verbatim, as a string.

    Backslashes before a quote, ``${`` or the end are doubled; ``'`` and ``${`` are
    escaped. (Checked by round trip: ``a,b``, ``http://h/x?a=b``, ``it's``, ``C:\\p\\``,
    ``${oc.env:HOME}``, ``''``, ``null``, ``1.10``, ...)
    """
    value = re.sub(r"(\\+)(?=('|\$\{|$))", lambda m: m.group(1) * 2, value)
    return "'" + value.replace("'", "\\'").replace("${", "\\${") + "'"


def normalise_profile(ov: Override) -> Override:
    """``+profile=X`` → ``profile=X`` (the group is declared); ``profile=null`` → ``~profile``."""
    if ov.key != "profile":
        return ov
    text = ov.text.lstrip("+")
    if text in ("profile=null", "profile=none", "profile=", "profile=~"):
        text = "~profile"
    return Override(text=text, key="profile", label=ov.label)
