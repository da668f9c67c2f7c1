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


def records_of(root: Path) -> dict[str, dict]:
    """The records of every experiment, keyed by [folder/]project/name, without ids,
    sequence numbers or side-file counters: what must survive any upload/download."""
    import hashlib

    out: dict[str, dict] = {}
    for exp_json in sorted(root.rglob("experiment.json")):
        d = exp_json.parent
        if "files" in d.relative_to(root).parts:
            continue
        exp = json.loads(exp_json.read_text())
        params = json.loads((d / "parameters.json").read_text())["data"] if (d / "parameters.json").exists() else {}
        logs_file = d / "logs/logs.jsonl"
        logs = [(x.get("timestamp"), x.get("level"), x["message"], x.get("metadata"))
                for x in map(json.loads, logs_file.read_text().splitlines())] if logs_file.exists() else []
        metrics = {}
        for data in sorted((d / "metrics").rglob("data.jsonl")):
            name = data.parent.relative_to(d / "metrics").as_posix()
            metrics[name] = [json.loads(x)["data"] for x in data.read_text().splitlines()]
        files = []
        manifest = d / "files/.files_metadata.json"
        if manifest.exists():
            for f in json.loads(manifest.read_text())["files"]:
                if f.get("deletedAt"):
                    continue
                blob = d / "files" / f["path"].lstrip("/") / f["id"] / f["filename"]
                files.append((f["path"], f["filename"], hashlib.sha256(blob.read_bytes()).hexdigest(),
                              f["checksum"]))
        out[d.relative_to(root).as_posix()] = {"name": exp["name"], "project": exp["project"],
                                               "folder": exp.get("folder"), "params": params, "logs": logs,
                                               "metrics": metrics, "files": sorted(files)}
    return out
