"""Dashboard logins: the printed owner URL, API-key sessions, logout, expiry, forged cookies, CSRF,
namespace isolation by URL guessing, the dashboard switched off, and the served page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ml_dash.server.app import create_app
from ml_dash.server.state import ServerState
from ml_dash.server.ui import session as ui_session
from tests.helpers.server import live_server
from tests.server.conftest import ALICE_KEY, BOB_KEY, make_state

OWNER_TOKEN = "owner-token-for-tests-0123456789"
INDEX = "<!doctype html><title>ml-dash</title><script type=module src=/assets/app.js></script>"


@pytest.fixture(autouse=True)
def no_login_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui_session, "FAILED_DELAY", 0.0)
    monkeypatch.setattr(ui_session, "_failures", type(ui_session._failures)())


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets" / "fonts").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "app.js").write_text("console.log('ml-dash')")
    (root / "assets" / "app.css").write_text("body{}")
    (root / "assets" / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "assets" / "fonts" / "inter.woff2").write_bytes(b"wOF2")
    (tmp_path / "secret.txt").write_text("not an asset")
    (root / "assets" / "escape.txt").symlink_to(tmp_path / "secret.txt")
    return root


class Dash:
    def __init__(self, st: ServerState, dist: Path | None) -> None:
        self.state = st
        self.app = create_app(st, dist_dir=dist)
        self.bearer = {name: TestClient(self.app, headers={"Authorization": f"Bearer {key}"},
                                        raise_server_exceptions=False)
                       for name, key in (("alice", ALICE_KEY), ("bob", BOB_KEY))}
        self._clients: list[TestClient] = list(self.bearer.values())

    def client(self) -> TestClient:
        c = TestClient(self.app, raise_server_exceptions=False)
        self._clients.append(c)
        return c

    def owner(self) -> TestClient:
        c = self.client()
        assert c.get(f"/?token={OWNER_TOKEN}", follow_redirects=False).status_code == 303
        return c

    def key_session(self, key: str) -> TestClient:
        c = self.client()
        r = c.post("/ui/login", json={"apiKey": key})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf"]
        return c

    def experiment(self, who: str, name: str, project: str = "vision") -> str:
        r = self.bearer[who].post(f"/projects/{project}/experiments", json={"name": name})
        assert r.status_code == 201, r.text
        return str(r.json()["experiment"]["id"])

    def close(self) -> None:
        for c in self._clients:
            c.close()
        self.state.close()


@pytest.fixture
def dash(tmp_path: Path, dist: Path) -> Iterator[Dash]:
    d = Dash(make_state(tmp_path, dashboard={"owner_token": OWNER_TOKEN}), dist)
    yield d
    d.close()


def _cookie(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    assert header.startswith(f"{ui_session.COOKIE}=")
    return header


# --- logging in -------------------------------------------------------------------------------------------
def test_printed_token_logs_in_as_owner_with_a_strict_httponly_cookie_and_cleans_the_address(dash: Dash) -> None:
    c = dash.client()
    r = c.get(f"/?token={OWNER_TOKEN}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
    cookie = _cookie(r).lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "max-age=43200" in cookie and "secure" not in cookie  # 12 h by default; http here
    doc = c.get("/ui/session").json()
    assert doc["owner"] is True and doc["namespace"] is None
    assert doc["namespaces"] == ["alice", "bob"]
    assert doc["pollSeconds"] == 2.0 and doc["maxSeriesPoints"] == 5000
    assert len(doc["csrf"]) >= 32 and doc["expiresAt"].endswith("Z")


def test_the_cookie_is_secure_behind_https(dash: Dash) -> None:
    with TestClient(dash.app, base_url="https://testserver") as c:
        r = c.get(f"/?token={OWNER_TOKEN}", follow_redirects=False)
        assert "; secure" in _cookie(r).lower()


def test_a_wrong_token_lands_on_the_login_page_without_a_cookie(dash: Dash) -> None:
    r = dash.client().get("/?token=guess", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/#/login?error=bad-token"
    assert "set-cookie" not in r.headers


def test_a_random_owner_token_is_made_per_start_and_compared_exactly(tmp_path: Path) -> None:
    st = make_state(tmp_path)
    try:
        assert len(st.owner_token) >= 32
        assert st.owner_token_matches(st.owner_token) and not st.owner_token_matches(st.owner_token[:-1])
    finally:
        st.close()


def test_api_key_login_sees_only_its_namespace(dash: Dash) -> None:
    c = dash.client()
    r = c.post("/ui/login", json={"apiKey": ALICE_KEY})
    assert r.status_code == 200
    assert "samesite=strict" in _cookie(r).lower()
    doc = r.json()
    assert (doc["owner"], doc["namespace"], doc["namespaces"]) == (False, "alice", ["alice"])
    assert c.get("/ui/session").json()["csrf"] == doc["csrf"]


def test_token_login_by_post_and_refused_logins(dash: Dash) -> None:
    c = dash.client()
    assert c.post("/ui/login", json={"token": OWNER_TOKEN}).json()["owner"] is True
    for body in ({"apiKey": "mld_wrong"}, {"token": "wrong"}):
        r = dash.client().post("/ui/login", json=body)
        assert r.status_code == 401 and r.json()["error"]["hint"]
        assert "set-cookie" not in r.headers
    for body in ({}, {"apiKey": ALICE_KEY, "token": OWNER_TOKEN}, {"apiKey": ALICE_KEY, "extra": 1}):
        assert dash.client().post("/ui/login", json=body).status_code == 422


def test_many_failed_logins_are_refused_for_a_while(dash: Dash, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui_session, "MAX_FAILURES", 3)
    c = dash.client()
    for _ in range(3):
        assert c.post("/ui/login", json={"token": "guess"}).status_code == 401
    r = c.post("/ui/login", json={"token": OWNER_TOKEN})  # even the right one: no oracle while throttled
    assert r.status_code == 429 and r.json()["error"]["hint"]


def test_without_a_session_the_dashboard_says_how_to_log_in(dash: Dash) -> None:
    r = dash.client().get("/ui/session")
    assert r.status_code == 401 and "ml-dash serve" in r.json()["error"]["hint"]


# --- a session ends -----------------------------------------------------------------------------------------
def test_logout_revokes_the_session_and_the_old_cookie_is_refused(dash: Dash) -> None:
    exp = dash.experiment("alice", "run-1")
    c = dash.key_session(ALICE_KEY)
    old = c.cookies[ui_session.COOKIE]
    assert c.get(f"/experiments/{exp}/parameters").status_code == 200
    assert c.post("/ui/logout", headers={"X-CSRF-Token": ""}).status_code == 403  # logout needs the CSRF header too
    r = c.post("/ui/logout")
    assert r.status_code == 200 and "max-age=0" in _cookie(r).lower()
    replay = dash.client()
    replay.cookies.set(ui_session.COOKIE, old)
    assert replay.get("/ui/session").status_code == 401
    r = replay.get(f"/experiments/{exp}/parameters")
    assert r.status_code == 401 and "log in again" in r.json()["error"]["hint"]


def test_an_expired_session_is_refused(dash: Dash) -> None:
    c = dash.key_session(ALICE_KEY)
    assert c.get("/ui/session").status_code == 200
    with dash.state.store._tx() as cur:
        cur.execute("UPDATE ui_sessions SET expires_at = ?", ("2020-01-01T00:00:00.000Z",))
    assert c.get("/ui/session").status_code == 401
    assert c.get("/ui/projects").status_code == 401


def test_forged_and_altered_cookies_are_refused(dash: Dash) -> None:
    good = dash.key_session(ALICE_KEY).cookies[ui_session.COOKIE]
    session_id, signature = good.split(".")
    other = dash.key_session(BOB_KEY).cookies[ui_session.COOKIE].split(".")[0]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    for value in (f"{session_id}.{flipped}", f"{other}.{signature}", session_id, f"{session_id}.", "x.y.z", "garbage"):
        c = dash.client()
        c.cookies.set(ui_session.COOKIE, value)
        assert c.get("/ui/session").status_code == 401, value
        assert c.get("/ui/namespaces").status_code == 401, value


# --- CSRF ---------------------------------------------------------------------------------------------------
def test_cookie_writes_need_the_csrf_header_bearer_writes_do_not(dash: Dash) -> None:
    exp = dash.experiment("alice", "run-1")
    c = dash.key_session(ALICE_KEY)
    csrf = c.headers.pop("X-CSRF-Token")
    for method, url, body in (("POST", "/projects/vision/experiments", {"name": "run-2"}),
                              ("PATCH", f"/ui/experiments/{exp}", {"description": "x"}),
                              ("POST", f"/experiments/{exp}/parameters", {"data": {"lr": 1}})):
        for headers in ({}, {"X-CSRF-Token": "wrong"}):
            r = c.request(method, url, json=body, headers=headers)
            assert r.status_code == 403 and r.json()["error"]["hint"], (method, url)
        assert c.request(method, url, json=body, headers={"X-CSRF-Token": csrf}).status_code in (200, 201)
    assert c.get(f"/experiments/{exp}/parameters").json()["data"] == {"lr": 1}  # reads need no header
    assert dash.bearer["alice"].post(f"/experiments/{exp}/parameters", json={"data": {"lr": 2}}).status_code == 200


# --- who sees what --------------------------------------------------------------------------------------------
def _fill(dash: Dash, who: str, name: str) -> tuple[str, str]:
    exp = dash.experiment(who, name)
    c = dash.bearer[who]
    c.post(f"/experiments/{exp}/parameters", json={"data": {"secret_param": f"{who}-only"}})
    c.post(f"/experiments/{exp}/logs", json={"logs": [{"level": "info", "message": f"{who}-log-line",
                                                         "timestamp": "2026-01-01T00:00:00Z"}]})
    c.post(f"/experiments/{exp}/metrics/loss/append-batch", json={"dataPoints": [{"value": 1.5}]})
    r = c.post(f"/experiments/{exp}/files", files={"file": ("notes.txt", f"{who}-file".encode(), "text/plain")},
               data={"prefix": "/"})
    assert r.status_code == 201, r.text
    return exp, r.json()["id"]


def test_the_owner_reads_every_namespace(dash: Dash) -> None:
    alice_exp, _ = _fill(dash, "alice", "a-run")
    bob_exp, bob_file = _fill(dash, "bob", "b-run")
    owner = dash.owner()
    assert [n["slug"] for n in owner.get("/ui/namespaces").json()["namespaces"]] == ["alice", "bob"]
    assert owner.get("/ui/projects?namespace=bob").json()["projects"][0]["name"] == "vision"
    assert owner.get("/ui/projects").status_code == 422  # the owner names the namespace
    for exp, who in ((alice_exp, "alice"), (bob_exp, "bob")):
        assert owner.get(f"/experiments/{exp}/parameters").json()["data"] == {"secret_param": f"{who}-only"}
        assert owner.get(f"/ui/experiments/{exp}").json()["namespace"] == who
        assert owner.get(f"/ui/experiments/{exp}/logs").json()["items"][0]["message"] == f"{who}-log-line"
    assert owner.get(f"/experiments/{bob_exp}/files/{bob_file}/download").content == b"bob-file"
    assert owner.get("/experiments/123/parameters").status_code == 404
    # The owner has no namespace to write into: REST writes need an API key (dashboard edits work).
    csrf = owner.get("/ui/session").json()["csrf"]
    r = owner.post("/projects/vision/experiments", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403 and "API key" in r.json()["error"]["hint"]
    r = owner.patch(f"/ui/experiments/{bob_exp}", json={"tags": ["seen"]}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["experiment"]["tags"] == ["seen"]


def test_a_key_session_never_reaches_another_namespace_by_url_guessing(dash: Dash) -> None:
    _fill(dash, "alice", "a-run")
    bob_exp, bob_file = _fill(dash, "bob", "b-run")
    alice = dash.key_session(ALICE_KEY)
    guesses = [f"/experiments/{bob_exp}/parameters", f"/experiments/{bob_exp}/metrics",
               f"/experiments/{bob_exp}/metrics/loss/data", f"/experiments/{bob_exp}/metrics/loss/stats",
               f"/experiments/{bob_exp}/logs", f"/experiments/{bob_exp}/files",
               f"/experiments/{bob_exp}/files/{bob_file}", f"/experiments/{bob_exp}/files/{bob_file}/download",
               f"/experiments/{bob_exp}/files/{bob_file}/download?inline=1", f"/experiments/{bob_exp}/streams",
               f"/experiments/{bob_exp}/series", f"/experiments/{bob_exp}/metrics/loss/series?y=value",
               f"/ui/experiments/{bob_exp}", f"/ui/experiments/{bob_exp}/logs",
               "/ui/projects?namespace=bob", "/ui/projects/vision/folders?namespace=bob",
               "/ui/projects/vision/experiments?namespace=bob"]
    for url in guesses:
        r = alice.get(url)
        assert r.status_code in (403, 404), (url, r.status_code)
        assert "bob-" not in r.text and "b-run" not in r.text, url
    for method, url, body in (("PATCH", f"/ui/experiments/{bob_exp}", {"description": "pwned"}),
                              ("POST", f"/experiments/{bob_exp}/parameters", {"data": {"x": 1}}),
                              ("PATCH", f"/experiments/{bob_exp}/status", {"status": "FAILED"}),
                              ("DELETE", f"/experiments/{bob_exp}/files/{bob_file}", None)):
        assert alice.request(method, url, json=body).status_code == 403, url
    assert [n["slug"] for n in alice.get("/ui/namespaces").json()["namespaces"]] == ["alice"]
    assert alice.get("/ui/session").json()["namespaces"] == ["alice"]
    assert dash.bearer["bob"].get(f"/ui/experiments/{bob_exp}").json()["experiment"]["description"] is None


# --- switched off -------------------------------------------------------------------------------------------
def test_a_disabled_dashboard_serves_no_page_no_login_and_ignores_cookies(tmp_path: Path, dist: Path) -> None:
    d = Dash(make_state(tmp_path, dashboard={"enabled": False, "owner_token": OWNER_TOKEN}), dist)
    try:
        c = d.client()
        for method, url in (("GET", "/"), ("GET", f"/?token={OWNER_TOKEN}"), ("GET", "/assets/app.js"),
                            ("GET", "/ui/session"), ("POST", "/ui/login"), ("GET", "/ui/namespaces")):
            r = c.request(method, url, json={"token": OWNER_TOKEN} if method == "POST" else None)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", url
        exp = d.experiment("alice", "run-1")  # the REST API is unchanged
        c.cookies.set(ui_session.COOKIE, "anything.at-all")
        assert c.get(f"/experiments/{exp}/parameters").status_code == 401
    finally:
        d.close()


# --- the page -----------------------------------------------------------------------------------------------
def test_the_built_page_and_its_assets_are_served_with_strict_headers(dash: Dash) -> None:
    c = dash.client()
    r = c.get("/")
    assert r.status_code == 200 and r.text == INDEX and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-content-type-options"] == "nosniff"
    csp = r.headers["content-security-policy"]
    for part in ("default-src 'self'", "img-src 'self' data: blob:", "media-src 'self' blob:",
                 "style-src 'self' 'unsafe-inline'", "object-src 'none'", "frame-ancestors 'none'"):
        assert part in csp
    for path, ctype in (("app.js", "text/javascript"), ("app.css", "text/css"), ("logo.svg", "image/svg+xml"),
                        ("fonts/inter.woff2", "font/woff2")):
        r = c.get(f"/assets/{path}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype), path
        assert r.headers["x-content-type-options"] == "nosniff"
    assert c.get("/assets/app.js?v=1").headers["cache-control"].startswith("public, max-age=31536000")
    etag = c.get("/assets/app.js").headers["etag"]
    assert c.get("/assets/app.js", headers={"If-None-Match": etag}).status_code == 304


def test_asset_paths_cannot_leave_the_assets_directory(dash: Dash) -> None:
    c = dash.client()
    for path in ("/assets/../index.html", "/assets/..%2Findex.html", "/assets/%2e%2e/%2e%2e/secret.txt",
                 "/assets/fonts/../../index.html", "/assets/escape.txt", "/assets//etc/passwd",
                 "/assets/%2Fetc%2Fpasswd", "/assets/..%5C..%5Csecret.txt", "/assets/", "/assets/fonts"):
        r = c.get(path)
        assert r.status_code == 404 and "not an asset" not in r.text and "<title>" not in r.text, path


def test_a_missing_build_answers_a_readable_page_saying_how_to_build(tmp_path: Path) -> None:
    d = Dash(make_state(tmp_path), tmp_path / "no-dist")
    try:
        r = d.client().get("/")
        assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
        assert "bash scripts/setup.sh" in r.text and "apt-get install nodejs npm" in r.text
        assert "content-security-policy" in r.headers
    finally:
        d.close()


def test_unknown_paths_stay_json_404(dash: Dash) -> None:
    r = dash.client().get("/no/such/page")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# --- the printed URL ----------------------------------------------------------------------------------------
def test_ml_dash_serve_prints_a_dashboard_url_that_logs_in(tmp_path: Path) -> None:
    with live_server(tmp_path / "srv") as server:
        url = server.dashboard_url
        assert url is not None and re.fullmatch(re.escape(server.url) + r"/\?token=[A-Za-z0-9_\-]{24,}", url)
        r = httpx.get(url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookies: Any = {ui_session.COOKIE: r.cookies[ui_session.COOKIE]}
        with httpx.Client(base_url=server.url, cookies=cookies) as c:
            assert c.get("/ui/session").json()["owner"] is True
        assert httpx.get(url.split("=")[0] + "=wrong", follow_redirects=False).headers["location"] == \
            "/#/login?error=bad-token"
