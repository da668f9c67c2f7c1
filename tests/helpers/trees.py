"""Compare experiment trees record for record, ignoring what must differ (timestamps, ids)."""

from __future__ import annotations

import json
import re
from pathlib import Path

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
FILE_ID = re.compile(r"^\d{12,20}$")


def _file_ids(root: Path) -> dict[str, str]:
    """Map every file id to a stable placeholder: experiment dir + position in its manifest."""
    mapping: dict[str, str] = {}
    for manifest in sorted(root.rglob(".files_metadata.json")):
        exp = manifest.parent.parent.relative_to(root).as_posix()
        for i, entry in enumerate(json.loads(manifest.read_text())["files"]):
            mapping[entry["id"]] = f"<file {exp}#{i}>"
    return mapping


def normalise_tree(root: Path) -> dict[str, str]:
    """``{relative path with ids replaced: text with ids and timestamps replaced}``."""
    ids = _file_ids(root)
    result: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        parts = [ids.get(part, part) if FILE_ID.match(part) else part for part in path.relative_to(root).parts]
        data = path.read_bytes()
        try:
            text = data.decode()
        except UnicodeDecodeError:
            text = f"<binary {data.hex()}>"
        text = TIMESTAMP.sub("<ts>", text)
        for file_id, placeholder in ids.items():
            text = text.replace(file_id, placeholder)
        result["/".join(parts)] = text
    return result


def assert_same_tree(produced: Path, expected: Path) -> None:
    got, want = normalise_tree(produced), normalise_tree(expected)
    assert sorted(got) == sorted(want), "file sets differ"
    for name in want:
        assert got[name] == want[name], f"{name} differs"
