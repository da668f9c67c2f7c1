"""The dashboard's browse routes on data written through the API: namespaces, projects, folders,
the experiment table (filters, sort, paging, metric and param columns; 10,000 experiments), the
experiment document and its edits, the logs query, and inline file previews."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ml_dash.server.ids import new_id
from tests.server.conftest import Api

Row = dict[str, Any]


def _exp(api: Api, name: str, project: str = "vision", client: TestClient | None = None, **body: Any) -> str:
    return api.experiment(client, project=project, name=name, **body)


def _set(api: Api, exp: str, **columns: Any) -> None:
    """Set columns directly (times the API would only give as 'now')."""
    sets = ", ".join(f"{k} = ?" for k in columns)
    with api.state.store._tx() as cur:
        cur.execute(f"UPDATE experiments SET {sets} WHERE id = ?", (*columns.values(), int(exp)))


@pytest.fixture
def data(api: Api) -> dict[str, str]:
    """Alice: 'vision' with four runs in folders, 'nlp' with one; Bob: one run."""
    a = api.alice
    ids = {
        "a": _exp(api, "run-a", folder="/sweeps/lr", tags=["baseline", "gpu"], description="First try"),
        "b": _exp(api, "run-b", folder="sweeps", tags=["gpu"]),
        "c": _exp(api, "run-c", description="has 100%_weird chars"),
        "d": _exp(api, "run-d", folder="sweeps/lr/deep/", tags=["x_y"]),
        "n": _exp(api, "nlp-1", project="nlp"),
        "bob": _exp(api, "bob-run", client=api.bob),
    }
    a.patch(f"/experiments/{ids['a']}/status", json={"status": "COMPLETED"})
    a.patch(f"/experiments/{ids['b']}/status", json={"status": "FAILED"})
    a.post(f"/experiments/{ids['a']}/parameters", json={"data": {"lr": 0.1, "model": {"arch": "resnet", "depth": 50}}})
    a.post(f"/experiments/{ids['b']}/parameters", json={"data": {"lr": 0.01, "model.arch": "vit"}})
    batches = [[{"value": 1.0, "step": 0}, {"value": 0.5, "step": 1}], [{"value": 0.25, "step": 2}, {"step": 3}]]
    for batch in batches:
        a.post(f"/experiments/{ids['a']}/metrics/loss/append-batch", json={"dataPoints": batch})
    a.post(f"/experiments/{ids['a']}/metrics/train.acc/append-batch", json={"dataPoints": [{"top1": 0.9}]})
    r = a.post(f"/experiments/{ids['b']}/metrics/loss/append-batch",
               content=b'{"dataPoints": [{"value": NaN, "step": 0}]}', headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    _set(api, ids["a"], started_at="2026-01-01T00:00:00.000Z", ended_at="2026-01-01T00:01:40.000Z")
    _set(api, ids["b"], started_at="2026-01-01T00:00:00.000Z", ended_at="2026-01-01T00:00:10.000Z")
    return ids


def _table(api: Api, query: str = "", client: TestClient | None = None, project: str = "vision") -> Row:
    r = (client or api.alice).get(f"/ui/projects/{project}/experiments?{query}")
    assert r.status_code == 200, r.text
    return r.json()


def _names(doc: Row) -> list[str]:
    return [item["name"] for item in doc["items"]]


# --- namespaces, projects, folders ----------------------------------------------------------------------------
def test_namespaces_projects_and_folders(api: Api, data: dict[str, str]) -> None:
    assert api.alice.get("/ui/namespaces").json() == {
        "namespaces": [{"slug": "alice", "projects": 2, "experiments": 5}]}
    projects = api.alice.get("/ui/projects").json()["projects"]
    assert [p["name"] for p in projects] == ["vision", "nlp"]  # the most recently active first
    vision = projects[0]
    assert (vision["experiments"], vision["running"]) == (4, 2)
    assert vision["lastActivity"] == max(api.alice.get(f"/ui/experiments/{data[k]}").json()["experiment"]["updatedAt"]
                                         for k in "abcd")
    assert api.alice.get("/ui/projects?namespace=alice").status_code == 200
    assert api.alice.get("/ui/projects?namespace=bob").status_code == 403
    assert api.alice.get("/ui/projects/vision/folders").json() == {"folders": [
        {"path": "", "experiments": 1}, {"path": "sweeps", "experiments": 1},
        {"path": "sweeps/lr", "experiments": 1}, {"path": "sweeps/lr/deep", "experiments": 1}]}
    r = api.alice.get("/ui/projects/nope/folders")
    assert r.status_code == 404 and r.json()["error"]["hint"]


# --- the experiment table -------------------------------------------------------------------------------------
def test_table_sorts_filters_and_pages(api: Api, data: dict[str, str]) -> None:
    assert _names(_table(api)) == ["run-d", "run-c", "run-b", "run-a"]  # newest first by default
    assert _names(_table(api, "sort=name&order=asc")) == ["run-a", "run-b", "run-c", "run-d"]
    assert _names(_table(api, "sort=status&order=asc")) == ["run-a", "run-b", "run-c", "run-d"]
    assert _names(_table(api, "sort=duration&order=asc"))[2:] == ["run-b", "run-a"]  # RUNNING: ~0 s; 10 s, 100 s
    assert _names(_table(api, "sort=endedAt&order=asc")) == ["run-b", "run-a", "run-c", "run-d"]  # unknown last
    assert _names(_table(api, "sort=endedAt&order=desc"))[:2] == ["run-a", "run-b"]
    page = _table(api, "sort=name&order=asc&offset=1&limit=2")
    assert (page["total"], page["offset"], page["limit"], _names(page)) == (4, 1, 2, ["run-b", "run-c"])
    for query, names in (("status=RUNNING,failed", ["run-b", "run-c", "run-d"]),
                         ("tag=gpu", ["run-a", "run-b"]), ("tag=x_y,baseline", ["run-a", "run-d"]),
                         ("tag=x%25y", []), ("q=FIRST", ["run-a"]), ("q=100%25_", ["run-c"]), ("q=_", ["run-c", "run-d"]),
                         ("q=basel", ["run-a"]), ("folder=sweeps", ["run-b"]),
                         ("folder=sweeps&recursive=1", ["run-a", "run-b", "run-d"]), ("folder=/sweeps/lr/", ["run-a"]),
                         ("folder=sweep&recursive=1", []), ("folder=", ["run-c"]),
                         ("folder=&recursive=1", ["run-a", "run-b", "run-c", "run-d"]),
                         ("folder=sweeps&recursive=true&status=RUNNING&tag=x_y&q=RUN-D", ["run-d"])):
        doc = _table(api, f"sort=name&order=asc&{query}")
        assert (_names(doc), doc["total"]) == (names, len(names)), query
    for query in ("sort=bogus", "order=up", "limit=0", "limit=501", "offset=-1"):
        r = api.alice.get(f"/ui/projects/vision/experiments?{query}")
        assert r.status_code == 422 and r.json()["error"]["hint"], query


def test_table_rows_carry_times_latest_metrics_and_params(api: Api, data: dict[str, str]) -> None:
    doc = _table(api, "sort=name&order=asc&metrics=loss.value,train.acc.top1,loss.step,nope.x&"
                      "params=lr,model.arch,model.depth,missing")
    rows = {item["name"]: item for item in doc["items"]}
    a, b, c = rows["run-a"], rows["run-b"], rows["run-c"]
    assert a["metrics"] == {"loss.value": 0.25, "loss.step": 3, "train.acc.top1": 0.9}  # last point with the field
    assert b["metrics"] == {"loss.value": "NaN", "loss.step": 0}  # JSON has no NaN
    assert c["metrics"] == {} and c["params"] == {}
    assert a["params"] == {"lr": 0.1, "model.arch": "resnet", "model.depth": 50}
    assert b["params"] == {"lr": 0.01, "model.arch": "vit"}  # a flat dotted key reads the same
    assert doc["metricKeys"] == ["loss.step", "loss.value", "train.acc.top1"]
    assert doc["paramKeys"] == ["lr", "model.arch", "model.depth"]
    assert (a["id"], a["folder"], a["status"], a["tags"], a["description"]) == (
        data["a"], "sweeps/lr", "COMPLETED", ["baseline", "gpu"], "First try")
    assert (a["startedAt"], a["endedAt"], a["durationSeconds"]) == (
        "2026-01-01T00:00:00.000Z", "2026-01-01T00:01:40.000Z", 100.0)
    assert c["endedAt"] is None and 0 <= c["durationSeconds"] < 60 and c["createdAt"]  # RUNNING: until now


def _bulk(api: Api, project: str, n: int) -> list[Row]:
    """``n`` experiment rows in one transaction (what the API would make, 100x faster)."""
    api.experiment(project=project, name="seed")
    project_id = api.state.store.list_experiments(api.state.store.ensure_namespace("alice")["id"], project)[0][
        "project_id"]
    rng = random.Random(7)
    statuses, tags = ["RUNNING", "COMPLETED", "FAILED", "CANCELLED"], ["a", "b", "c", "d", "e"]
    rows = []
    for i in range(n):
        status = rng.choice(statuses)
        created = f"2026-01-{1 + i // 1000:02d}T{(i // 60) % 24:02d}:{i % 60:02d}:00.000Z"
        ended = None if status == "RUNNING" else f"2026-02-01T00:00:{rng.randrange(60):02d}.000Z"
        rows.append({"id": new_id(), "project_id": project_id, "name": f"exp-{rng.randrange(10**9):09d}-{i}",
                     "description": f"trial {i}", "tags": json.dumps(rng.sample(tags, rng.randrange(3))),
                     "bindrs": "[]", "folder": f"/grid/{i % 10}", "metadata": None, "status": status,
                     "write_protected": 0, "log_count": 0, "params": json.dumps({"lr": i}), "params_version": 1,
                     "created_at": created, "updated_at": created, "started_at": created, "ended_at": ended})
    columns = list(rows[0])
    with api.state.store._tx() as cur:
        cur.executemany(f"INSERT INTO experiments ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                        [tuple(r.values()) for r in rows])
    return rows


def test_ten_thousand_experiments_page_sorted_and_filtered(api: Api) -> None:
    rows = _bulk(api, "big", 10_000)
    timings = []

    def page(query: str) -> Row:
        start = time.perf_counter()
        doc = _table(api, query + "&params=lr", project="big")
        timings.append(time.perf_counter() - start)
        return doc

    by_name = sorted(rows, key=lambda r: r["name"])
    doc = page("sort=name&order=asc&offset=5000&limit=50")
    assert doc["total"] == 10_001 and _names(doc) == [r["name"] for r in by_name[5000:5050]]  # "seed" sorts last
    assert [item["params"]["lr"] for item in doc["items"]] == [json.loads(r["params"])["lr"] for r in by_name[5000:5050]]
    wanted = [r for r in rows if r["status"] in ("FAILED", "RUNNING") and "b" in json.loads(r["tags"])
              and r["folder"] == "/grid/3"]
    doc = page("status=FAILED,RUNNING&tag=b&folder=grid/3&sort=createdAt&order=desc&limit=50")
    expected = sorted(wanted, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    assert doc["total"] == len(wanted) and [i["id"] for i in doc["items"]] == [str(r["id"]) for r in expected[:50]]
    doc = page("q=TRIAL 99&sort=name&order=desc&limit=50")
    matches = sorted((r for r in rows if "trial 99" in r["description"]), key=lambda r: r["name"], reverse=True)
    assert doc["total"] == len(matches) == 111 and _names(doc) == [r["name"] for r in matches[:50]]
    doc = page("sort=duration&order=desc&status=COMPLETED&offset=100&limit=50")
    done = [r for r in rows if r["status"] == "COMPLETED"]
    assert doc["total"] == len(done)
    durations = [i["durationSeconds"] for i in doc["items"]]
    assert durations == sorted(durations, reverse=True) and len(durations) == 50
    page("folder=grid&recursive=1&sort=endedAt&order=asc&offset=9900&limit=50")
    print(f"\n10k experiments: {len(timings)} page requests, slowest {max(timings) * 1000:.1f} ms, "
          f"mean {sum(timings) / len(timings) * 1000:.1f} ms")
    assert max(timings) < 1.0


def test_table_query_on_every_backend(api_any: Api) -> None:
    api = api_any
    ids = {name: _exp(api, name, folder=folder, tags=tags, description=desc) for name, folder, tags, desc in (
        ("r1", "/g/a", ["x", "y_z"], "alpha 50%"), ("r2", "g", ["y_z"], None), ("r3", None, [], "beta"),
        ("r4", "g/a/b", ["x"], "gamma"))}
    api.alice.patch(f"/experiments/{ids['r2']}/status", json={"status": "FAILED"})
    _set(api, ids["r1"], started_at="2026-01-01T00:00:00.000Z", ended_at="2026-01-01T01:00:00.000Z",
         status="COMPLETED")
    api.alice.post(f"/experiments/{ids['r1']}/metrics/m/append-batch", json={"dataPoints": [{"v": 1}, {"v": 2}]})
    for query, names in (("", ["r1", "r2", "r3", "r4"]), ("tag=y_z", ["r1", "r2"]), ("tag=x", ["r1", "r4"]),
                         ("q=50%25", ["r1"]), ("q=Y_Z", ["r1", "r2"]), ("status=FAILED,COMPLETED", ["r1", "r2"]),
                         ("folder=g&recursive=1", ["r1", "r2", "r4"]), ("folder=", ["r3"]), ("folder=g/a", ["r1"])):
        doc = _table(api, f"sort=name&order=asc&{query}")
        assert (_names(doc), doc["total"]) == (names, len(names)), query
    doc = _table(api, "sort=duration&order=desc&metrics=m.v")
    assert _names(doc)[0] == "r1" and doc["items"][0]["durationSeconds"] == 3600.0
    assert doc["items"][0]["metrics"] == {"m.v": 2} and doc["metricKeys"] == ["m.v"]
    assert _names(_table(api, "sort=status&order=desc&limit=2&offset=1")) == ["r3", "r2"] or \
        _table(api, "sort=status&order=desc")["items"][0]["status"] == "RUNNING"
    assert api.alice.get("/ui/projects").json()["projects"][0]["running"] == 2
    assert [f["path"] for f in api.alice.get("/ui/projects/vision/folders").json()["folders"]] == \
        ["", "g", "g/a", "g/a/b"]


# --- one experiment -------------------------------------------------------------------------------------------
def _upload(api: Api, exp: str, name: str, content: bytes, ctype: str, prefix: str = "/") -> str:
    r = api.alice.post(f"/experiments/{exp}/files", files={"file": (name, content, ctype)}, data={"prefix": prefix})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_experiment_document_with_readme_and_counts(api: Api, data: dict[str, str]) -> None:
    exp = data["a"]
    doc = api.alice.get(f"/ui/experiments/{exp}").json()
    assert doc["readme"] is None and doc["project"] == "vision" and doc["namespace"] == "alice"
    _upload(api, exp, "README.md", b"# old", "text/markdown", "/docs")
    _upload(api, exp, "README.md", "# Run A\n\nnotes \u00e9".encode(), "text/markdown")
    api.alice.post(f"/experiments/{exp}/logs", json={"logs": [{"level": "info", "message": "hi"}]})
    doc = api.alice.get(f"/ui/experiments/{exp}").json()
    assert doc["readme"] == "# Run A\n\nnotes \u00e9"  # the newest README.md
    assert doc["counts"] == {"logs": 1, "metrics": 2, "files": 2}
    e = doc["experiment"]
    assert (e["id"], e["name"], e["folder"], e["status"], e["durationSeconds"]) == (
        exp, "run-a", "sweeps/lr", "COMPLETED", 100.0)
    assert api.alice.get("/ui/experiments/12345").status_code == 403


def test_edit_description_and_tags_with_clear_errors(api: Api, data: dict[str, str]) -> None:
    url = f"/ui/experiments/{data['a']}"
    r = api.alice.patch(url, json={"description": "better", "tags": [" new ", "new", "b"]})
    assert r.status_code == 200
    assert (r.json()["experiment"]["description"], r.json()["experiment"]["tags"]) == ("better", ["new", "b"])
    assert api.alice.patch(url, json={"tags": []}).json()["experiment"]["description"] == "better"  # untouched
    assert api.alice.patch(url, json={"description": None}).json()["experiment"]["description"] is None
    for body, where in (({"tags": [""]}, "tags.0"), ({"tags": ["x" * 101]}, "tags.0"), ({"tags": "a,b"}, "tags"),
                        ({"tags": None}, "tags"), ({"description": "x" * 10_001}, "description"),
                        ({"tags": ["x"] * 101}, "tags"), ({"name": "renamed"}, "name"), ({"tags": [1]}, "tags.0")):
        r = api.alice.patch(url, json=body)
        assert r.status_code == 422 and r.json()["error"]["message"].startswith(where), body
        assert r.json()["error"]["hint"]
    assert _table(api, "tag=new")["total"] == 0 and _table(api, "q=better")["total"] == 0


def test_logs_filter_search_time_range_and_paging(api: Api, data: dict[str, str]) -> None:
    exp = data["a"]
    levels = ["info", "warn", "error"]
    lines = [{"level": levels[i % 3], "message": f"line {i}" + (" 50%_off" if i % 10 == 0 else ""),
              "timestamp": f"2026-01-01T00:00:{i:02d}.500000Z", "metadata": {"i": i}} for i in range(30)]
    assert api.alice.post(f"/experiments/{exp}/logs", json={"logs": lines}).status_code == 201
    url = f"/ui/experiments/{exp}/logs"
    doc = api.alice.get(f"{url}?limit=10").json()
    assert [x["seq"] for x in doc["items"]] == list(range(29, 19, -1)) and doc["total"] == 30 and doc["next"] == 20
    assert doc["items"][0] == {"seq": 29, "timestamp": "2026-01-01T00:00:29.500000Z", "level": "error",
                               "message": "line 29", "metadata": {"i": 29}}
    doc = api.alice.get(f"{url}?limit=10&before=20").json()
    assert [x["seq"] for x in doc["items"]] == list(range(19, 9, -1)) and doc["next"] == 10
    assert api.alice.get(f"{url}?limit=10&before=10").json()["next"] is None
    doc = api.alice.get(f"{url}?level=error,WARN&limit=100").json()
    assert doc["total"] == 20 and {x["level"] for x in doc["items"]} == {"warn", "error"}
    doc = api.alice.get(f"{url}?q=50%25_OFF").json()
    assert [x["seq"] for x in doc["items"]] == [20, 10, 0] and doc["total"] == 3
    assert api.alice.get(f"{url}?q=%25").json()["total"] == 3  # '%' is a character, not a wildcard
    doc = api.alice.get(f"{url}?from=2026-01-01T00:00:05Z&to=2026-01-01T01:00:07%2B01:00").json()
    assert [x["seq"] for x in doc["items"]] == [6, 5]  # 00:00:07 +01:00 is before 00:00:07.5 UTC
    doc = api.alice.get(f"{url}?after=25").json()
    assert [x["seq"] for x in doc["items"]] == [26, 27, 28, 29] and doc["next"] is None
    doc = api.alice.get(f"{url}?after=-1&limit=5").json()
    assert [x["seq"] for x in doc["items"]] == [0, 1, 2, 3, 4] and doc["next"] == 4
    for query in ("level=loud", "from=yesterday", "limit=0", "before=-3"):
        r = api.alice.get(f"{url}?{query}")
        assert r.status_code == 422 and r.json()["error"]["hint"], query


def test_inline_download_for_previews_never_runs_uploaded_html(api: Api, data: dict[str, str]) -> None:
    exp = data["a"]
    png = _upload(api, exp, "plot.png", b"\x89PNG fake", "image/png")
    page = _upload(api, exp, "evil.html", b"<script>alert(1)</script>", "text/html")
    blob = _upload(api, exp, "model.bin", b"\x00\x01", "application/octet-stream")
    base = f"/experiments/{exp}/files"
    r = api.alice.get(f"{base}/{png}/download?inline=1")
    assert r.status_code == 200 and r.content == b"\x89PNG fake" and r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"].startswith('inline; filename="plot.png"')
    r = api.alice.get(f"{base}/{page}/download?inline=1")
    assert r.headers["content-type"].startswith("text/plain") and r.headers["content-disposition"].startswith("inline")
    assert "sandbox" in r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"
    r = api.alice.get(f"{base}/{blob}/download?inline=1")
    assert r.headers["content-disposition"].startswith("attachment")
    r = api.alice.get(f"{base}/{png}/download")
    assert r.headers["content-disposition"].startswith('attachment; filename="plot.png"')
    assert r.headers["content-type"] == "image/png"
