"""A source reader for tests of the writer: runs described by a JSON file, records computed.

``{"runs": [{"key": "a", "points": 1000, "metrics": 2, "logs": 5, "files": 1, "bad": [3]}]}``
gives run ``a`` with ``points`` points per metric, ``logs`` lines, ``files`` small files and a
Problem after the records numbered in ``bad``. Growing a number grows the run at the end of
each stream, as the real readers promise. ``python -m tests.importers.synthetic SPEC TREE``
imports it (the kill -9 and concurrency tests run this in child processes).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ml_dash.importers.source import FileItem, LogLine, Point, Problem, Record, SourceRun


def value(metric: int, i: int) -> float:
    return metric + i * 0.5


class SyntheticRun(SourceRun):
    spec: dict[str, Any]

    def params(self) -> dict[str, Any]:
        return {"model": {"name": "mlp", "depth": 3}, "lr": 0.1, **self.spec.get("params", {})}

    def records(self) -> Iterator[Record]:
        spec = self.spec
        bad = set(spec.get("bad", []))
        n = 0
        for i in range(spec.get("points", 0)):
            for m in range(spec.get("metrics", 1)):
                yield Point(f"train/m{m}", {"value": value(m, i), "step": i, "timestamp": 1.7e9 + i})
                n += 1
                if n in bad:
                    yield Problem(self.where, f"record {n}", "bad record")
            if i % 100 == 0 and i // 100 < spec.get("logs", 0):
                yield LogLine(f"step {i}", "info", "2026-11-30T12:00:00.000000Z", {"step": i})
        for f in range(spec.get("files", 0)):
            yield FileItem(prefix="/files", filename=f"f{f}.txt", data=f"file {f}\n".encode())


def runs(source: Path) -> Iterator[SourceRun]:
    for spec in json.loads(Path(source).read_text())["runs"]:
        run = SyntheticRun(key=spec["key"], name=spec.get("name", spec["key"]), where=str(source),
                           project=spec.get("project"), metadata={"status": spec.get("status", "COMPLETED")})
        run.spec = spec
        yield run


if __name__ == "__main__":
    from ml_dash.importers.writer import Target, import_run

    spec_path, tree = Path(sys.argv[1]), Path(sys.argv[2])
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    for run in runs(spec_path):
        import_run("synthetic", run, Target(tree, run.project or "p", run.name, None), batch)
