"""The .dashrc routes: GET/PUT of a folder's and an experiment's, validate, the 422 with line and key,
namespace isolation, the owner's session (with CSRF), and the routes staying on without the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers.backends import backend, postgres_server, s3_server  # noqa: F401 - fixtures
from tests.server.conftest import ALICE_KEY, make_state
from tests.server.test_dashboard_auth import OWNER_TOKEN, Dash, dist, no_login_delay  # noqa: F401 - fixtures

GOOD = "# loss first\ncharts:\n  - ctype: line\n    yKey: train.loss\n"
BAD = "charts:\n  - ctype: line\n    yKey: a\n  - ctype: lin\n"


@pytest.fixture
def dash(tmp_path: Path, dist: Path) -> Iterator[Dash]:  # noqa: F811
    d = Dash(make_state(tmp_path, dashboard={"owner_token": OWNER_TOKEN}), dist)
    yield d
    d.close()


def test_a_folder_dashrc_is_stored_as_written_and_served_with_its_config(dash: Dash) -> None:
    alice = dash.bearer["alice"]
    dash.experiment("alice", "run-1")
    url = "/ui/dashrc?project=vision&folder=/sweeps/lr/"
    assert alice.get(url).status_code == 404
    r = alice.put(url, json={"text": GOOD})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["text"] == GOOD and doc["updatedAt"].endswith("Z")
    chart = doc["config"]["charts"][0]  # defaults filled in for the dashboard
    assert (chart["ctype"], chart["yKey"], chart["xKey"], chart["bins"], chart["logY"]) == (
        "line", "train.loss", "default", 200, False)
    assert alice.get("/ui/dashrc?project=vision&folder=sweeps/lr").json() == doc  # outer slashes do not matter
    assert alice.get("/ui/dashrc?project=vision&namespace=alice&folder=sweeps/lr").json() == doc
    assert alice.get("/ui/dashrc?project=vision").status_code == 404  # the root is another folder
    alice.put("/ui/dashrc?project=vision", json={"text": ""})
    items = alice.get("/ui/dashrc/folders?project=vision").json()["items"]
    assert [(i["folder"], i["text"]) for i in items] == [("", ""), ("sweeps/lr", GOOD)]
    assert alice.put("/ui/dashrc?project=nope", json={"text": GOOD}).status_code == 404
    assert alice.put("/ui/dashrc?project=vision&folder=a/../b", json={"text": GOOD}).json()["error"]["code"] == \
        "invalid"


def test_an_experiment_dashrc(dash: Dash) -> None:
    alice = dash.bearer["alice"]
    exp = dash.experiment("alice", "run-1")
    assert alice.get(f"/ui/experiments/{exp}/dashrc").status_code == 404
    assert alice.put(f"/ui/experiments/{exp}/dashrc", json={"text": GOOD}).status_code == 200
    again = alice.put(f"/ui/experiments/{exp}/dashrc", json={"text": GOOD + "metrics: {fields: [train*]}\n"})
    assert again.json()["config"]["metrics"] == {"fields": ["train*"]}
    assert alice.get(f"/ui/experiments/{exp}/dashrc").json()["text"].endswith("[train*]}\n")


def test_an_invalid_text_is_a_422_with_line_and_key_and_is_not_stored(dash: Dash) -> None:
    alice = dash.bearer["alice"]
    exp = dash.experiment("alice", "run-1")
    for method, url in (("PUT", f"/ui/experiments/{exp}/dashrc"), ("PUT", "/ui/dashrc?project=vision"),
                        ("POST", "/ui/dashrc/validate")):
        r = alice.request(method, url, json={"text": BAD})
        assert r.status_code == 422, url
        assert r.json() == {"error": {"code": "invalid", "message": "line 4: charts.1.ctype: 'lin' is not one of "
                                      "line, image, video", "hint": "did you mean 'line'? ctype is line, image or video",
                                      "line": 4, "key": "charts.1.ctype"}}
    syntax = alice.post("/ui/dashrc/validate", json={"text": "charts: [\n"}).json()["error"]
    assert syntax["line"] == 2 and syntax["key"] is None and "invalid YAML" in syntax["message"]
    assert alice.get(f"/ui/experiments/{exp}/dashrc").status_code == 404
    assert alice.get("/ui/dashrc?project=vision").status_code == 404
    ok = alice.post("/ui/dashrc/validate", json={"text": "charts:\n  - {ctype: image, nCols: 4}\n"})
    assert ok.status_code == 200 and ok.json()["config"]["charts"][0]["limit"] == 8
    assert alice.post("/ui/dashrc/validate", json={"txt": GOOD}).status_code == 422
    big = alice.post("/ui/dashrc/validate", json={"text": "#" * (256 * 1024 + 1)})
    assert big.status_code == 413 and big.json()["error"]["hint"]


def test_other_errors_keep_their_shape(dash: Dash) -> None:
    r = dash.bearer["alice"].get("/ui/experiments/0/dashrc")
    assert set(r.json()["error"]) == {"code", "message", "hint"}


def test_another_namespace_is_refused(dash: Dash) -> None:
    alice, bob = dash.bearer["alice"], dash.bearer["bob"]
    exp = dash.experiment("alice", "run-1")
    alice.put(f"/ui/experiments/{exp}/dashrc", json={"text": GOOD})
    alice.put("/ui/dashrc?project=vision", json={"text": GOOD})
    dash.experiment("bob", "run-1")  # bob has a project of the same name
    for method, url in (("GET", f"/ui/experiments/{exp}/dashrc"), ("PUT", f"/ui/experiments/{exp}/dashrc"),
                        ("GET", "/ui/dashrc?project=vision&namespace=alice"),
                        ("PUT", "/ui/dashrc?project=vision&namespace=alice")):
        r = bob.request(method, url, json={"text": "charts: []\n"} if method == "PUT" else None)
        assert r.status_code == 403, (method, url, r.text)
    assert bob.get("/ui/dashrc?project=vision").status_code == 404  # bob's own project has none
    assert alice.get("/ui/dashrc?project=vision").json()["text"] == GOOD
    assert dash.client().get("/ui/dashrc?project=vision&namespace=alice").status_code == 401


def test_the_owner_session_reads_and_writes_with_csrf(dash: Dash) -> None:
    exp = dash.experiment("alice", "run-1")
    owner = dash.owner()
    url = "/ui/dashrc?project=vision&namespace=alice&folder=sweeps"
    assert owner.put(url, json={"text": GOOD}).status_code == 403  # no X-CSRF-Token
    owner.headers["X-CSRF-Token"] = owner.get("/ui/session").json()["csrf"]
    assert owner.put(url, json={"text": GOOD}).status_code == 200
    assert owner.put("/ui/dashrc?project=vision", json={"text": GOOD}).json()["error"]["code"] == "invalid"
    assert owner.put(f"/ui/experiments/{exp}/dashrc", json={"text": GOOD}).status_code == 200
    assert owner.post("/ui/dashrc/validate", json={"text": GOOD}).status_code == 200
    alice = dash.bearer["alice"]
    assert alice.get("/ui/dashrc?project=vision&folder=sweeps").json()["text"] == GOOD
    assert alice.get(f"/ui/experiments/{exp}/dashrc").json()["text"] == GOOD
    session = dash.key_session(ALICE_KEY)  # an API key's session writes its namespace (CSRF header set)
    assert session.put(f"/ui/experiments/{exp}/dashrc", json={"text": ""}).status_code == 200


def test_a_stored_text_that_no_longer_validates_is_served_with_its_error(dash: Dash) -> None:
    from ml_dash.server.storage import dashrc as queries

    exp = dash.experiment("alice", "run-1")
    queries.put_experiment_dashrc(dash.state.store, int(exp), BAD)
    doc = dash.bearer["alice"].get(f"/ui/experiments/{exp}/dashrc").json()
    assert doc["text"] == BAD and doc["config"] is None
    assert (doc["error"]["line"], doc["error"]["key"]) == (4, "charts.1.ctype")


def test_the_routes_stay_on_without_the_dashboard(tmp_path: Path) -> None:
    d = Dash(make_state(tmp_path, dashboard={"enabled": False}), None)
    try:
        exp = d.experiment("alice", "run-1")
        alice: TestClient = d.bearer["alice"]
        assert alice.put(f"/ui/experiments/{exp}/dashrc", json={"text": GOOD}).status_code == 200
        assert alice.get("/ui/dashrc/folders?project=vision").json() == {"items": []}
    finally:
        d.close()


def test_the_queries_on_every_backend(backend: dict[str, str]) -> None:  # noqa: F811
    from ml_dash.server.storage import dashrc as queries
    from ml_dash.server.storage.registry import open_metadata_store

    store = open_metadata_store(backend["db"])
    try:
        ns = store.ensure_namespace("alice")
        exp, project = store.upsert_experiment(ns["id"], "vision", {"name": "e"})
        pid, eid = int(project["id"]), int(exp["id"])
        assert queries.folder_dashrc(store, pid, "a") is None and queries.experiment_dashrc(store, eid) is None
        queries.put_folder_dashrc(store, pid, "a", GOOD)
        queries.put_folder_dashrc(store, pid, "a", BAD)  # a second write replaces the first
        queries.put_folder_dashrc(store, pid, "", GOOD)
        queries.put_experiment_dashrc(store, eid, GOOD)
        queries.put_experiment_dashrc(store, eid, "")
        assert queries.folder_dashrc(store, pid, "a")["text"] == BAD
        assert [(r["folder"], r["text"]) for r in queries.folder_dashrcs(store, pid)] == [("", GOOD), ("a", BAD)]
        assert queries.experiment_dashrc(store, eid)["text"] == ""
    finally:
        store.close()


def test_error_details_never_replace_code_message_or_hint() -> None:
    import json

    from ml_dash.server.app import _error

    body = json.loads(_error(422, "invalid", "m", "h", {"code": "x", "hint": None, "line": 3}).body)
    assert body == {"error": {"code": "invalid", "message": "m", "hint": "h", "line": 3}}
