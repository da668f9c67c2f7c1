"""One SDK suite, three backends (local tree, live server, both): the same read-backs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ml_dash import Experiment
from tests.helpers.server import LiveServer, live_server

_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    with live_server(tmp_path_factory.mktemp("sdk-server")) as s:
        yield s, s.token("sdk", "alice")


@pytest.fixture(params=["local", "remote", "hybrid"])
def make(request: pytest.FixtureRequest, tmp_path: Path, server: tuple[LiveServer, str]):
    live, key = server

    def factory(**kw: object) -> Experiment:
        kw.setdefault("name", f"run-{next(_names)}")
        kw.setdefault("project", "suite")
        if request.param in ("remote", "hybrid"):
            kw.update(remote=live.url, api_key=key)
        if request.param in ("local", "hybrid"):
            kw["local_path"] = tmp_path / "tree"
        return Experiment(**kw)  # type: ignore[arg-type]

    factory.mode = request.param  # type: ignore[attr-defined]
    return factory


def test_params_read_back(make) -> None:
    with make().run as exp:
        exp.params.set(model={"name": "r18", "layers": {"depth": 18}}, lr=0.1, tags=["a"], none=None)
        exp.params.set(lr=0.05)
        assert exp.params.get() == {"model.name": "r18", "model.layers.depth": 18, "lr": 0.05, "tags": ["a"],
                                    "none": None}
        assert exp.params.get(flatten=False)["model"] == {"name": "r18", "layers": {"depth": 18}}
    assert exp.mode == make.mode


def test_metrics_read_back(make) -> None:
    with make().run as exp:
        loss = exp.metrics("loss", description="train loss", tags=["t"], metadata={"unit": "nats"})
        for i in range(5):
            loss.append(value=1.0 / (i + 1), step=i)
        loss.append_batch([{"value": 0.1, "step": 5}, {"value": 0.05, "step": 6}])
        exp.metrics("acc").log(acc=0.9)
        read = loss.read(start_index=2, limit=3)
        assert [(p["index"], p["data"]["step"]) for p in read["data"]] == [(2, 2), (3, 3), (4, 4)]
        assert read["hasMore"] is True
        assert loss.read(start_index=5, limit=100)["hasMore"] is False
        stats = loss.stats()
        assert (str(stats["totalDataPoints"]), stats["description"], stats["tags"]) == ("7", "train loss", ["t"])
        assert sorted(m["name"] for m in loss.list_all()) == ["acc", "loss"]
        assert exp.metrics("never").read()["data"] == []


def test_files_round_trip(make, tmp_path: Path) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("hello\n")
    with make().run as exp:
        saved = exp.files(file_path=str(src), prefix="/docs", tags=["a"], description="d").save()
        exp.files("models").save(b"\x00\x01\x02", "w.bin")
        assert sorted(f["filename"] for f in exp.files().list()) == ["notes.txt", "w.bin"]
        assert [f["filename"] for f in exp.files(prefix="/docs").list()] == ["notes.txt"]
        out = exp.files(file_id=saved["id"], dest_path=str(tmp_path / "copy.txt")).download()
        assert Path(out).read_text() == "hello\n"
        assert exp.files(file_id=saved["id"], description="new").update()["description"] == "new"
        exp.files(file_id=saved["id"]).delete()
        assert [f["filename"] for f in exp.files().list()] == ["w.bin"]


def test_status_reaches_the_server(make, server: tuple[LiveServer, str]) -> None:
    live, key = server
    exp = make()
    with pytest.raises(RuntimeError), exp.run:
        exp.log("about to fail")
        raise RuntimeError("boom")
    ok = make()
    with ok.run:
        ok.log("fine")
    if make.mode == "local":
        assert exp.id is None
        return
    q = "query E($p: String!) { experiments(projectSlug: $p) { id status } }"
    rows = httpx.post(f"{live.url}/graphql", json={"query": q, "variables": {"p": "suite"}},
                      headers={"Authorization": f"Bearer {key}"}).json()["data"]["experiments"]
    status = {r["id"]: r["status"] for r in rows}
    assert (status[exp.id], status[ok.id]) == ("FAILED", "COMPLETED")
