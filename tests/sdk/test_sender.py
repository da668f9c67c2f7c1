"""The background sender against a real server, with a tiny queue, a slow network and a
stream the server refuses: nothing is dropped, one stream never holds up another, and
the exit report counts exactly what the server did not acknowledge."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml_dash.api.client import ApiClient, RetryPolicy
from ml_dash.sdk.backends.remote import RemoteBackend
from ml_dash.sdk.sender import Sender, SenderSettings
from tests.helpers.server import LiveServer, live_server


class FaultyTransport(httpx.BaseTransport):
    """The real transport to the real server, slowed down, and answering ``status`` itself for
    requests whose path contains one of ``refuse`` (the faults the real server would not make)."""

    def __init__(self, delay: float = 0.0, refuse: dict[str, int] | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.delay = delay
        self.refuse = dict(refuse or {})
        self.calls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        time.sleep(self.delay)
        for fragment, status in self.refuse.items():
            if fragment in request.url.path:
                return httpx.Response(status, json={"error": {"code": "x", "message": f"refused {fragment}"}})
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with live_server(tmp_path_factory.mktemp("server"), "log_requests=false") as s:
        yield s, s.token("k", "alice")


def open_sender(server: tuple[LiveServer, str], name: str, transport: FaultyTransport,
                **settings: Any) -> tuple[Sender, ApiClient, str]:
    live, key = server
    client = ApiClient(live.url, key, transport=transport, retry=RetryPolicy(attempts=1, backoff=0.01))
    exp_id = str(client.create_experiment("p", {"name": name})["id"])
    defaults: dict[str, Any] = {"flush_interval": 0.01, "log_batch": 3, "metric_batch": 4, "max_pending": 5,
                                "close_timeout": 5.0}
    return Sender(client, exp_id, SenderSettings(**{**defaults, **settings}), writer_id="run-test"), client, exp_id


def stored(server: tuple[LiveServer, str], exp_id: str) -> tuple[list[str], dict[str, list[dict]]]:
    live, key = server
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}) as c:
        logs = [x["message"] for x in c.get(f"/experiments/{exp_id}/logs", params={"limit": 10000}).json()["logs"]]
        metrics = {}
        for m in c.get(f"/experiments/{exp_id}/metrics").json()["metrics"]:
            data = c.get(f"/experiments/{exp_id}/metrics/{m['name']}/data", params={"limit": 10000}).json()["data"]
            metrics[m["name"]] = [p["data"] for p in data]
    return logs, metrics


def produce(sender: Sender, n: int, metrics: tuple[str, ...] = ("a", "b")) -> None:
    for i in range(n):
        sender.log(i, {"level": "info", "message": f"line {i}"})
        for name in metrics:
            sender.points(name, i, [{"i": i}], None)


def test_a_tiny_queue_and_a_slow_server_lose_nothing(server: tuple[LiveServer, str]) -> None:
    transport = FaultyTransport(delay=0.003)
    sender, client, exp_id = open_sender(server, "slow", transport)
    produce(sender, 120)  # 360 records through a queue of 5: the producer waits, never drops
    assert sender.close() is True
    assert sender.unsent() == {} and sender.failures == []
    logs, metrics = stored(server, exp_id)
    assert logs == [f"line {i}" for i in range(120)]
    assert metrics == {"a": [{"i": i} for i in range(120)], "b": [{"i": i} for i in range(120)]}
    client.close()


def test_a_refused_stream_never_blocks_the_others_and_is_reported_exactly(
        server: tuple[LiveServer, str], capsys: pytest.CaptureFixture[str]) -> None:
    transport = FaultyTransport(refuse={"/metrics/a/": 422})
    sender, client, exp_id = open_sender(server, "refused", transport)
    produce(sender, 30)
    assert sender.close() is False
    logs, metrics = stored(server, exp_id)
    assert logs == [f"line {i}" for i in range(30)]
    assert metrics == {"b": [{"i": i} for i in range(30)]}  # metric "a" was refused, "b" went on
    assert sender.unsent() == {"metric 'a'": 30}
    assert sum(f.count for f in sender.failures) == 30 and {f.stream for f in sender.failures} == {"metric 'a'"}
    backend = RemoteBackend(server[0].url, server[1], SenderSettings())
    backend.report_unsent(sender, hint="they are in the local tree")
    err = capsys.readouterr().err
    assert f"ml-dash: 30 record(s) did not reach {server[0].url} (metric 'a': 30)" in err
    assert "refused by the server: metric 'a': 30 record(s) refused (writer numbers 0..29): refused /metrics/a/" in err
    assert err.count("refused by the server") == 1
    client.close()
    backend.client.close()


def test_a_stream_the_server_keeps_failing_stays_queued_while_the_others_flow(
        server: tuple[LiveServer, str]) -> None:
    transport = FaultyTransport(refuse={"/metrics/a/": 503})
    sender, client, exp_id = open_sender(server, "flaky", transport, max_pending=1000)
    produce(sender, 20)
    assert sender.flush(timeout=1.0) is False
    logs, metrics = stored(server, exp_id)
    assert len(logs) == 20 and metrics == {"b": [{"i": i} for i in range(20)]}
    assert sender.unsent() == {"metric 'a'": 20} and sender.failures == []  # kept, not dropped
    assert sender.last_error is not None and "metric 'a'" in sender.last_error
    transport.refuse.clear()  # the server recovers: the queued points arrive, once
    assert sender.close() is True
    assert stored(server, exp_id)[1]["a"] == [{"i": i} for i in range(20)]
    client.close()


def test_back_pressure_waits_for_the_server_instead_of_dropping(server: tuple[LiveServer, str]) -> None:
    transport = FaultyTransport(refuse={"/logs": 503})
    sender, client, exp_id = open_sender(server, "pressure", transport, max_pending=5)
    done = threading.Event()

    def producer() -> None:
        for i in range(10):
            sender.log(i, {"level": "info", "message": f"line {i}"})
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.5)
    assert not done.is_set() and sender.pending == 5  # the producer waits at a full queue
    transport.refuse.clear()
    thread.join(timeout=10)
    assert done.is_set() and sender.close() is True
    assert stored(server, exp_id)[0] == [f"line {i}" for i in range(10)]
    client.close()


def test_replayed_batches_are_applied_once(server: tuple[LiveServer, str], tmp_path: Path) -> None:
    """The same writer numbers sent again (a retry whose answer was lost) change nothing."""
    transport = FaultyTransport()
    sender, client, exp_id = open_sender(server, "replay", transport)
    produce(sender, 10, metrics=("a",))
    assert sender.close() is True
    again, _, _ = open_sender(server, "replay", transport)  # same writer id: a replay of the whole run
    produce(again, 12, metrics=("a",))
    assert again.close() is True
    logs, metrics = stored(server, exp_id)
    assert logs == [f"line {i}" for i in range(12)] and metrics["a"] == [{"i": i} for i in range(12)]
    client.close()
