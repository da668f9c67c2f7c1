"""The REST API, route by route, with the response shapes the 0.5.8 client reads."""

from __future__ import annotations

import hashlib

from tests.server.conftest import Api


def upload(api: Api, exp: str, content: bytes, filename: str = "w.bin", prefix: str = "/models", **fields: str):
    data = {"prefix": prefix, "checksum": hashlib.sha256(content).hexdigest(), "sizeBytes": str(len(content)),
            **fields}
    return api.alice.post(f"/experiments/{exp}/files", data=data,
                          files={"file": (filename, content, "application/octet-stream")})


def test_create_experiment_response_shape(api_any: Api) -> None:
    r = api_any.alice.post("/projects/vision/experiments", json={
        "name": "run-1", "description": "d", "tags": ["a"], "bindrs": ["b"], "folder": "/sweeps/2025",
        "metadata": {"gpu": "A100"}})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"experiment", "project", "folder", "namespace"}
    exp = body["experiment"]
    assert {"id", "name", "projectId", "description", "tags", "bindrs", "folderId", "metadata", "status",
            "writeProtected", "createdAt", "updatedAt", "startedAt", "endedAt"} <= set(exp)
    assert (exp["status"], exp["tags"], exp["metadata"], exp["folder"]) == ("RUNNING", ["a"], {"gpu": "A100"},
                                                                          "/sweeps/2025")
    assert isinstance(exp["id"], str) and body["namespace"]["slug"] == "alice"
    assert body["folder"]["path"] == "/sweeps/2025"
    again = api_any.alice.post("/projects/vision/experiments", json={"name": "run-1"}).json()["experiment"]
    assert again["id"] == exp["id"] and again["description"] == "d"  # upsert keeps what it is not told


def test_status_params_and_logs(api_any: Api) -> None:
    exp = api_any.experiment()
    assert api_any.alice.patch(f"/experiments/{exp}/status", json={"status": "COMPLETED"}).json()[
        "experiment"]["status"] == "COMPLETED"
    r = api_any.alice.post(f"/experiments/{exp}/parameters", json={"data": {"lr": 0.1, "model.depth": 18}})
    assert r.json()["version"] == 1 and r.json()["data"] == {"lr": 0.1, "model.depth": 18}
    assert api_any.alice.get(f"/experiments/{exp}/parameters").json()["data"]["lr"] == 0.1
    logs = [{"timestamp": "2026-01-01T00:00:00Z", "level": "INFO", "message": f"m{i}", "metadata": {"i": i}}
            for i in range(5)]
    assert api_any.alice.post(f"/experiments/{exp}/logs", json={"logs": logs}).json() == {
        "created": 5, "startSequence": 0, "endSequence": 4, "experimentId": exp, "duplicates": 0}
    page = api_any.alice.get(f"/experiments/{exp}/logs?limit=2&offset=2&orderBy=sequenceNumber&order=asc").json()
    assert [x["message"] for x in page["logs"]] == ["m2", "m3"] and page["hasMore"] is True
    assert page["logs"][0]["level"] == "info"


def test_metrics_append_read_stats_list_and_chunks(api_any: Api) -> None:
    exp = api_any.experiment()
    one = api_any.alice.post(f"/experiments/{exp}/metrics/train/loss/append",
                             json={"data": {"value": 1.0}, "description": "d", "tags": ["t"]}).json()
    assert (one["index"], one["bufferedDataPoints"]) == ("0", "1")
    points = [{"value": i, "step": i} for i in range(1, 25000)]
    batch = api_any.alice.post(f"/experiments/{exp}/metrics/train/loss/append-batch", json={"dataPoints": points})
    assert batch.status_code == 200, batch.text
    assert {k: batch.json()[k] for k in ("startIndex", "endIndex", "count")} == {
        "startIndex": "1", "endIndex": "24999", "count": 24999}
    data = api_any.alice.get(f"/experiments/{exp}/metrics/train/loss/data?startIndex=10&limit=3").json()
    assert [p["index"] for p in data["data"]] == ["10", "11", "12"] and data["hasMore"] is True
    assert data["data"][0]["data"] == {"value": 10, "step": 10}
    stats = api_any.alice.get(f"/experiments/{exp}/metrics/train/loss/stats").json()
    assert (stats["totalDataPoints"], stats["totalChunks"], stats["bufferedDataPoints"]) == ("25000", 2, "5000")
    assert (stats["description"], stats["tags"]) == ("d", ["t"])
    chunk = api_any.alice.get(f"/experiments/{exp}/metrics/train/loss/chunks/1").json()
    assert (chunk["startIndex"], len(chunk["data"])) == ("10000", 10000)
    buffer = api_any.alice.get(f"/experiments/{exp}/metrics/train/loss/data?bufferOnly=true").json()
    assert (buffer["startIndex"], len(buffer["data"])) == ("20000", 5000)
    listed = api_any.alice.get(f"/experiments/{exp}/metrics").json()["metrics"]
    assert [(m["name"], m["totalDataPoints"]) for m in listed] == [("train/loss", "25000")]


def test_nan_and_infinity_survive(api_any: Api) -> None:
    exp = api_any.experiment()
    body = '{"dataPoints": [{"loss": NaN, "x": Infinity}]}'
    r = api_any.alice.post(f"/experiments/{exp}/metrics/m/append-batch", content=body,
                           headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    raw = api_any.alice.get(f"/experiments/{exp}/metrics/m/data").text
    assert "NaN" in raw and "Infinity" in raw


def test_files_upload_list_meta_download_update_delete(api_any: Api) -> None:
    exp = api_any.experiment()
    content = bytes(range(256)) * 100
    r = upload(api_any, exp, content, description="ckpt", tags="a,b", metadata='{"epoch": 3}')
    assert r.status_code == 201, r.text
    f = r.json()
    assert (f["path"], f["filename"], f["sizeBytes"], f["tags"], f["metadata"]) == (
        "/models", "w.bin", len(content), ["a", "b"], {"epoch": 3})
    assert api_any.alice.get(f"/experiments/{exp}/files?prefix=/models").json()["total"] == 1
    assert api_any.alice.get(f"/experiments/{exp}/files?tags=zzz").json()["files"] == []
    assert api_any.alice.get(f"/experiments/{exp}/files/{f['id']}").json()["checksum"] == f["checksum"]
    assert api_any.alice.get(f"/experiments/{exp}/files/{f['id']}/download").content == content
    assert api_any.alice.patch(f"/experiments/{exp}/files/{f['id']}", json={"description": "new"}).json()[
        "description"] == "new"
    deleted = api_any.alice.delete(f"/experiments/{exp}/files/{f['id']}").json()
    assert deleted["id"] == f["id"] and deleted["deletedAt"]
    assert api_any.alice.get(f"/experiments/{exp}/files").json()["files"] == []


def test_streams_report_how_far_everything_got(api: Api) -> None:
    exp = api.experiment()
    api.alice.post(f"/experiments/{exp}/logs", json={"logs": [{"message": "a"}, {"message": "b"}]})
    api.alice.post(f"/experiments/{exp}/metrics/loss/append-batch", json={"dataPoints": [{"v": 1}] * 7})
    api.alice.post(f"/experiments/{exp}/parameters", json={"data": {"lr": 1}})
    upload(api, exp, b"abc")
    s = api.alice.get(f"/experiments/{exp}/streams").json()
    assert (s["logs"], s["metrics"], s["parameters"], s["parametersVersion"]) == (2, {"loss": 7}, {"lr": 1}, 1)
    assert [(f["path"], f["filename"], f["sizeBytes"]) for f in s["files"]] == [("/models", "w.bin", 3)]


def test_graphql_queries_of_list_and_download(api: Api) -> None:
    exp = api.experiment(metadata={"k": 1})
    api.experiment(project="nlp", name="bert")
    api.alice.post(f"/experiments/{exp}/metrics/loss/append-batch", json={"dataPoints": [{"v": 1}] * 3})
    q = "query Projects($namespaceSlug: String!) { projects(namespaceSlug: $namespaceSlug) { id name slug } }"
    projects = api.alice.post("/graphql", json={"query": q, "variables": {"namespaceSlug": "alice"}}).json()
    assert [p["slug"] for p in projects["data"]["projects"]] == ["vision", "nlp"]
    assert set(projects["data"]["projects"][0]) == {"id", "name", "slug"}  # only what was selected
    q = ("query Experiments($namespaceSlug: String!, $projectSlug: String!, $status: ExperimentStatus) { "
         "experiments(namespaceSlug: $namespaceSlug, projectSlug: $projectSlug, status: $status) { id name status "
         "metadata project { slug } logMetadata { totalLogs } metrics { name metricMetadata { totalDataPoints } } "
         "files { id filename } parameters { id data } } }")
    r = api.alice.post("/graphql", json={"query": q, "variables": {"namespaceSlug": "alice", "projectSlug": "vision",
                                                                   "status": None}}).json()
    (e,) = r["data"]["experiments"]
    assert (e["name"], e["metadata"], e["project"], e["logMetadata"]) == ("run-1", {"k": 1}, {"slug": "vision"},
                                                                          {"totalLogs": 0})
    assert e["metrics"] == [{"name": "loss", "metricMetadata": {"totalDataPoints": 3}}]


def test_health_needs_no_token(api: Api) -> None:
    assert api.anon.get("/health").json()["status"] == "ok"
