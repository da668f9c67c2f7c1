"""Every ml-dash error carries a hint (README: "Every error is an ml_dash.MLDashError with a
hint"): an AST scan of ml_dash/ for every construction of an MLDashError subclass that gives
no ``hint``. Sites where a hint is truly impossible (or not ours to edit yet) are listed below,
each with its reason."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ml_dash"

# Classes whose constructor has no ``hint`` parameter because it builds the hint itself.
BUILD_THEIR_OWN_HINT = {
    "ChecksumMismatchError": "always 'the file changed or was damaged after it was saved; restore it, ...'",
}

# (file, enclosing function, class): why this site may construct the error without a hint.
ALLOWED: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True)
class Site:
    file: str
    line: int
    function: str
    cls: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.cls}(...) without hint= (in {self.function or '<module>'})"


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _trees() -> dict[str, ast.Module]:
    return {p.relative_to(PACKAGE.parent).as_posix(): ast.parse(p.read_text(), str(p))
            for p in sorted(PACKAGE.rglob("*.py"))}


def _our_classes(trees: dict[str, ast.Module]) -> dict[str, int | None]:
    """Every MLDashError subclass defined in ml_dash/ → the positional index of ``hint`` in its
    constructor (``None``: keyword-only, or no ``hint`` parameter at all)."""
    defs = {n.name: n for t in trees.values() for n in ast.walk(t) if isinstance(n, ast.ClassDef)}
    bases: dict[str, str | None] = {"MLDashError": None}
    changed = True
    while changed:
        changed = False
        for name, node in defs.items():
            if name not in bases:
                parent = next((b for b in map(_name, node.bases) if b in bases), None)
                if parent is not None:
                    bases[name], changed = parent, True

    def hint_position(name: str | None) -> int | None:
        while name is not None:
            init = next((n for n in defs[name].body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            if init is not None:
                positional = [a.arg for a in init.args.posonlyargs + init.args.args][1:]  # without self
                return positional.index("hint") if "hint" in positional else None
            name = bases[name]
        return None

    return {name: hint_position(name) for name in bases}


def _has_hint_parameter(trees: dict[str, ast.Module], cls: str) -> bool:
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == cls:
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        args = item.args
                        return "hint" in [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
                return True  # inherits MLDashError's
    raise AssertionError(cls)


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def hintless_sites() -> tuple[list[Site], int]:
    """Every construction of one of our errors without a (non-None) hint, and how many were scanned."""
    trees = _trees()
    classes = _our_classes(trees)
    found: list[Site] = []
    scanned = 0
    for file, tree in trees.items():
        stack: list[tuple[ast.AST, list[str]]] = [(tree, [])]
        while stack:
            node, scope = stack.pop()
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                scope = [*scope, node.name]
            if isinstance(node, ast.Call) and _name(node.func) in classes:
                cls = str(_name(node.func))
                scanned += 1
                keyword = next((k.value for k in node.keywords if k.arg == "hint"), None)
                position = classes[cls]
                given = keyword if keyword is not None else (
                    node.args[position] if position is not None and len(node.args) > position else None)
                if (given is None or _is_none(given)) and cls not in BUILD_THEIR_OWN_HINT:
                    found.append(Site(file, node.lineno, ".".join(scope), cls))
            stack.extend((child, scope) for child in ast.iter_child_nodes(node))
    return sorted(found, key=lambda s: (s.file, s.line)), scanned


def test_every_error_raised_in_ml_dash_has_a_hint() -> None:
    sites, scanned = hintless_sites()
    assert scanned > 100, f"the scan found only {scanned} constructions of ml-dash errors; is it still working?"
    missing = [s for s in sites if (s.file, s.function, s.cls) not in ALLOWED]
    assert not missing, ("ml-dash errors without a hint (add hint='what to do next'):\n"
                         + "\n".join(map(str, missing)))


def test_the_allow_list_has_no_stale_entries() -> None:
    sites = {(s.file, s.function, s.cls) for s in hintless_sites()[0]}
    stale = [f"{file} {function} {cls}" for file, function, cls in ALLOWED if (file, function, cls) not in sites]
    assert not stale, "these sites have a hint now; remove them from ALLOWED:\n" + "\n".join(stale)


def test_only_the_listed_classes_build_their_own_hint() -> None:
    trees = _trees()
    classes = _our_classes(trees)
    assert {"InvalidInputError", "ExperimentStateError", "RecordError", "ConfigError", "StorageError", "ApiError",
            "ServerError", "ServerUnreachable", "ChecksumMismatchError"} <= set(classes)
    assert classes["ServerError"] == 2  # ServerError(code, message, hint)
    without = {cls for cls in classes if not _has_hint_parameter(trees, cls)}
    assert without == set(BUILD_THEIR_OWN_HINT)
