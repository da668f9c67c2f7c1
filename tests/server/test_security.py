"""Authentication, namespace isolation, hostile names and bodies: never a 500, nothing leaked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ml_dash.api.auth import LEGACY_SECRET, make_username_token
from tests.server.conftest import Api, make_state


def test_no_token_and_bad_tokens_are_401(api: Api) -> None:
    exp = api.experiment()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer " + make_username_token("alice", secret="not-the-server-secret")}):
        r = api.anon.get(f"/experiments/{exp}/parameters", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthenticated"


def test_another_namespace_gets_403_on_every_route_and_sees_nothing(api: Api) -> None:
    exp = api.experiment(metadata={"secret-ish": "alice only"})
    api.alice.post(f"/experiments/{exp}/metrics/loss/append-batch", json={"dataPoints": [{"v": 1}]})
    file_id = api.alice.post(f"/experiments/{exp}/files", data={"prefix": "/"},
                             files={"file": ("a.txt", b"alice", "text/plain")}).json()["id"]
    calls = [("get", f"/experiments/{exp}/parameters", None), ("post", f"/experiments/{exp}/parameters", {"data": {}}),
             ("post", f"/experiments/{exp}/logs", {"logs": [{"message": "x"}]}), ("get", f"/experiments/{exp}/logs", None),
             ("patch", f"/experiments/{exp}/status", {"status": "FAILED"}),
             ("post", f"/experiments/{exp}/metrics/loss/append", {"data": {"v": 1}}),
             ("get", f"/experiments/{exp}/metrics/loss/data", None), ("get", f"/experiments/{exp}/metrics", None),
             ("get", f"/experiments/{exp}/metrics/loss/stats", None), ("get", f"/experiments/{exp}/streams", None),
             ("get", f"/experiments/{exp}/files", None), ("get", f"/experiments/{exp}/files/{file_id}/download", None),
             ("delete", f"/experiments/{exp}/files/{file_id}", None)]
    for method, path, body in calls:
        r = getattr(api.bob, method)(path, **({"json": body} if body is not None else {}))
        assert r.status_code == 403, (method, path, r.text)
        assert "alice only" not in r.text and "loss" not in r.text
    r = api.bob.post(f"/experiments/{exp}/metrics/loss/append-batch", json={"dataPoints": [{"v": 2}]})
    assert r.status_code == 403
    q = "query P($namespaceSlug: String!) { projects(namespaceSlug: $namespaceSlug) { slug } }"
    r = api.bob.post("/graphql", json={"query": q, "variables": {"namespaceSlug": "alice"}}).json()
    assert r["data"] is None and "not accessible" in r["errors"][0]["message"]
    # ... and bob's own view is empty: same project name, different namespace.
    assert api.bob.post("/graphql", json={"query": q, "variables": {"namespaceSlug": "bob"}}).json()["data"] == {
        "projects": []}
    assert api.alice.get(f"/experiments/{exp}/metrics/loss/stats").json()["totalDataPoints"] == "1"


def test_legacy_username_tokens_only_when_allowed(tmp_path: Path) -> None:
    token = make_username_token("carol", secret=LEGACY_SECRET)
    on_loopback = Api(make_state(tmp_path / "a"))  # host 127.0.0.1: accepted by default
    assert on_loopback.anon.post("/projects/p/experiments", json={"name": "e"},
                                 headers={"Authorization": f"Bearer {token}"}).status_code == 201
    on_loopback.close()
    public = Api(make_state(tmp_path / "b", host="0.0.0.0"))  # not loopback: refused unless opted in
    r = public.anon.post("/projects/p/experiments", json={"name": "e"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "legacy_username_tokens" in r.json()["error"]["hint"]
    own = make_username_token("carol", secret=public.state.secret)  # signed with the server's own secret: fine
    assert public.anon.post("/projects/p/experiments", json={"name": "e"},
                            headers={"Authorization": f"Bearer {own}"}).status_code == 201
    public.close()


@pytest.mark.parametrize(("filename", "prefix"), [("../../etc/passwd", "/"), ("a/b.txt", "/"), ("..", "/"),
                                                  ("ok.txt", "/../../x"), ("ok.txt", "/a/./b")])
def test_file_names_cannot_escape(api: Api, filename: str, prefix: str, tmp_path: Path) -> None:
    exp = api.experiment()
    r = api.alice.post(f"/experiments/{exp}/files", data={"prefix": prefix},
                       files={"file": (filename, b"x", "text/plain")})
    assert r.status_code == 422, r.text
    staged = list((api.state.data_dir / "staging").glob("*")) if (api.state.data_dir / "staging").exists() else []
    assert staged == []  # nothing left half-written


def test_blobs_are_stored_by_content_never_by_name(api: Api) -> None:
    exp = api.experiment()
    content = b"the content"
    r = api.alice.post(f"/experiments/{exp}/files", data={"prefix": "/etc"},
                       files={"file": ("passwd", content, "text/plain")})
    assert r.status_code == 201
    blob_root = Path(api.state.blobs_url.removeprefix("file://"))
    stored = [p for p in blob_root.rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [hashlib.sha256(content).hexdigest()]


def test_wrong_checksum_is_refused_and_nothing_is_kept(api: Api) -> None:
    exp = api.experiment()
    r = api.alice.post(f"/experiments/{exp}/files", data={"checksum": "0" * 64},
                       files={"file": ("a.bin", b"abc", "application/octet-stream")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "checksum_mismatch"
    assert api.alice.get(f"/experiments/{exp}/files").json()["files"] == []


def test_oversized_bodies_are_413(tmp_path: Path) -> None:
    api = Api(make_state(tmp_path, limits={"max_json_bytes": 1000, "max_file_bytes": 2000}))
    exp = api.experiment()
    r = api.alice.post(f"/experiments/{exp}/metrics/m/append-batch", json={"dataPoints": [{"v": 1}] * 500})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = api.alice.post(f"/experiments/{exp}/files", files={"file": ("big.bin", b"x" * 5000, "application/octet-stream")})
    assert r.status_code == 413
    assert api.alice.get(f"/experiments/{exp}/files").json()["files"] == []
    api.close()


@pytest.mark.parametrize(("path", "body", "needle"), [
    ("/projects/p/experiments", {"name": ""}, "name"),
    ("/projects/p/experiments", {"tags": "x"}, "name"),
    ("/projects/p/experiments", {"name": "a/b"}, "name"),
    ("/projects/p/experiments", {"name": "e", "tags": "not-a-list"}, "tags"),
    ("LOGS", {"logs": []}, "logs"),
    ("LOGS", {"logs": [{"level": "info"}]}, "message"),
    ("LOGS", {"logs": [{"message": "x", "level": "loud"}]}, "level"),
    ("BATCH", {"dataPoints": []}, "dataPoints"),
    ("BATCH", {"dataPoints": [1, 2]}, "dataPoints.0"),
    ("BATCH", {"dataPoints": [{"v": 1}], "startIndex": -1}, "startIndex"),
    ("BATCH", ["not", "an", "object"], "body"),
    ("STATUS", {"status": "DONE"}, "status"),
])
def test_bad_bodies_are_422_naming_the_field(api: Api, path: str, body: object, needle: str) -> None:
    exp = api.experiment()
    target = {"LOGS": f"/experiments/{exp}/logs", "BATCH": f"/experiments/{exp}/metrics/m/append-batch",
              "STATUS": f"/experiments/{exp}/status"}.get(path, path)
    method = api.alice.patch if path == "STATUS" else api.alice.post
    r = method(target, json=body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]["message"]


def test_malformed_json_is_422_not_500(api: Api) -> None:
    exp = api.experiment()
    for path in (f"/experiments/{exp}/metrics/m/append-batch", f"/experiments/{exp}/logs", "/projects/p/experiments"):
        r = api.alice.post(path, content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422, (path, r.text)
