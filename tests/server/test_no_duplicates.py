"""Retries and resumes cannot duplicate data: positions make appends idempotent."""

from __future__ import annotations

from tests.server.conftest import Api


def test_a_retried_metric_batch_is_not_stored_twice(api_any: Api) -> None:
    exp = api_any.experiment()
    body = {"dataPoints": [{"v": i} for i in range(100)], "startIndex": 0}
    first = api_any.alice.post(f"/experiments/{exp}/metrics/loss/append-batch", json=body).json()
    retry = api_any.alice.post(f"/experiments/{exp}/metrics/loss/append-batch", json=body).json()
    assert (first["inserted"], retry["inserted"]) == (100, 0)
    overlap = {"dataPoints": [{"v": i} for i in range(50, 150)], "startIndex": 50}
    assert api_any.alice.post(f"/experiments/{exp}/metrics/loss/append-batch", json=overlap).json()["inserted"] == 50
    stats = api_any.alice.get(f"/experiments/{exp}/metrics/loss/stats").json()
    assert stats["totalDataPoints"] == "150"
    values = [p["data"]["v"] for p in api_any.alice.get(f"/experiments/{exp}/metrics/loss/data?limit=1000").json()[
        "data"]]
    assert values == list(range(150))


def test_a_gap_is_refused_with_a_hint(api: Api) -> None:
    exp = api.experiment()
    r = api.alice.post(f"/experiments/{exp}/metrics/loss/append-batch", json={"dataPoints": [{"v": 1}], "startIndex": 5})
    assert r.status_code == 409 and "resume from the server's count" in r.json()["error"]["hint"]


def test_retried_logs_with_sequence_numbers_are_not_stored_twice(api_any: Api) -> None:
    exp = api_any.experiment()
    logs = {"logs": [{"message": f"m{i}", "sequenceNumber": i} for i in range(10)]}
    assert api_any.alice.post(f"/experiments/{exp}/logs", json=logs).json()["created"] == 10
    assert api_any.alice.post(f"/experiments/{exp}/logs", json=logs).json()["created"] == 0
    page = api_any.alice.get(f"/experiments/{exp}/logs?limit=100").json()
    assert [x["message"] for x in page["logs"]] == [f"m{i}" for i in range(10)]


def test_clients_without_positions_still_append_at_the_end(api: Api) -> None:
    exp = api.experiment()
    for _ in range(2):  # what 0.5.8 sends: no positions, so a re-upload appends again (its documented defect)
        api.alice.post(f"/experiments/{exp}/metrics/m/append-batch", json={"dataPoints": [{"v": 1}] * 3})
    assert api.alice.get(f"/experiments/{exp}/metrics/m/stats").json()["totalDataPoints"] == "6"


def test_re_uploading_the_same_file_keeps_one_record_and_one_blob(api: Api) -> None:
    exp = api.experiment()
    ids = {api.alice.post(f"/experiments/{exp}/files", data={"prefix": "/m"},
                          files={"file": ("w.bin", b"same", "application/octet-stream")}).json()["id"] for _ in range(3)}
    assert len(ids) == 1
    assert api.alice.get(f"/experiments/{exp}/files").json()["total"] == 1


def test_re_sending_parameters_does_not_bump_the_version(api: Api) -> None:
    exp = api.experiment()
    for _ in range(3):
        r = api.alice.post(f"/experiments/{exp}/parameters", json={"data": {"lr": 0.1}}).json()
    assert r["version"] == 1
