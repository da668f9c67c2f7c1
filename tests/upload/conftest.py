from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import LiveServer, live_server


class Target:
    """A live server and an API key for one namespace; reads back what the server holds."""

    def __init__(self, server: LiveServer, key: str) -> None:
        self.server = server
        self.url = server.url
        self.key = key
        self.http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def experiments(self) -> dict[str, dict]:
        q = ("query { projects { slug } }")
        projects = [p["slug"] for p in self.http.post("/graphql", json={"query": q}).json()["data"]["projects"]]
        out = {}
        for project in projects:
            q = ("query E($p: String!) { experiments(projectSlug: $p) { id name status metadata "
                 "project { slug } } }")
            for e in self.http.post("/graphql", json={"query": q, "variables": {"p": project}}).json()["data"][
                    "experiments"]:
                out[f"{project}/{e['name']}"] = e
        return out

    def content(self) -> dict[str, dict]:
        """Everything the server holds, per experiment, in comparable form."""
        out = {}
        for key, e in self.experiments().items():
            exp_id = e["id"]
            logs = self.http.get(f"/experiments/{exp_id}/logs", params={"limit": 10000}).json()["logs"]
            metrics = {}
            for m in self.http.get(f"/experiments/{exp_id}/metrics").json()["metrics"]:
                data = self.http.get(f"/experiments/{exp_id}/metrics/{m['name']}/data",
                                     params={"limit": 100000}).json()["data"]
                metrics[m["name"]] = [p["data"] for p in data]
            files = sorted((f["path"], f["filename"], f["checksum"])
                           for f in self.http.get(f"/experiments/{exp_id}/files").json()["files"])
            out[key] = {"params": self.http.get(f"/experiments/{exp_id}/parameters").json()["data"],
                        "logs": [(x["level"], x["message"], x["metadata"]) for x in logs],
                        "metrics": metrics, "files": files}
        return out

    def file_copies(self) -> dict[tuple[str, str, str], int]:
        """Every file record the server ever made, live or replaced, per (experiment, path, name):
        a file uploaded twice shows as 2 even where the server kept only the newest live."""
        import sqlite3
        from collections import Counter

        conn = sqlite3.connect(self.server.data_dir / "ml-dash.db")
        try:
            rows = conn.execute("SELECT e.name, f.path, f.filename FROM files f JOIN experiments e "
                                "ON e.id = f.experiment_id").fetchall()
        finally:
            conn.close()
        return dict(Counter((name, path, filename) for name, path, filename in rows))

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    with live_server(tmp_path / "server", "log_requests=false") as server:
        t = Target(server, server.token("uploader", "alice"))
        yield t
        t.close()


def expected_content(root: Path) -> dict[str, dict]:
    """What one clean upload of ``root`` must leave on the server (from the local records)."""
    from tests.helpers.trees import records_of

    out = {}
    for rec in records_of(root).values():
        out[f"{rec['project']}/{rec['name']}"] = {
            "params": rec["params"], "logs": [(level, msg, meta) for _, level, msg, meta in rec["logs"]],
            "metrics": rec["metrics"], "files": sorted((p, f, c) for p, f, _, c in rec["files"])}
    return out


@pytest.fixture(params=["ml-dash serve", "0.5.8 routes only"])
def any_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Our server, and one that speaks only the 0.5.8 REST API (no /streams, no file dedup)."""
    with live_server(tmp_path / "server", "log_requests=false", plain=request.param != "ml-dash serve") as server:
        t = Target(server, server.token("uploader", "alice"))
        yield t
        t.close()


def resume_ends_with_one_clean_upload(target: Target, tree: Path, cwd: Path) -> None:
    """After kill -9s: a last ``--resume`` succeeds and the server holds exactly the tree, each file once."""
    from tests.helpers.cli import run_cli

    final = run_cli("upload", str(tree), "--remote", target.url, "--api-key", target.key, "--resume",
                    cwd=cwd, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    assert target.content() == expected_content(tree)
    assert set(target.file_copies().values()) == {1}  # no file was ever sent twice
