"""Appends run in at most ``serve.limits.ingest_threads`` threads per process; reads never wait for them."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.server.conftest import ALICE_KEY, Api, make_state


def test_appends_wait_for_an_ingest_thread_and_reads_do_not(tmp_path: Path) -> None:
    api = Api(make_state(tmp_path, limits={"ingest_threads": 2}))
    try:
        exp = api.experiment()
        url = f"/experiments/{exp}/metrics/loss/append-batch"
        assert api.alice.post(url, json={"dataPoints": [{"value": 0.5, "step": 0}]}).status_code == 200
        store = api.state.store
        real, lock, release = store.append_points, threading.Lock(), threading.Event()
        inside, most = [0], [0]

        def held(*args: Any, **kwargs: Any) -> Any:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            release.wait(60)
            try:
                return real(*args, **kwargs)
            finally:
                with lock:
                    inside[0] -= 1

        store.append_points = held  # type: ignore[method-assign]
        # One event loop for every request, as in a server process (entering the client starts it).
        with TestClient(api.app, headers={"Authorization": f"Bearer {ALICE_KEY}"}) as alice, \
                ThreadPoolExecutor(8) as pool:
            appends = [pool.submit(alice.post, url, json={"dataPoints": [{"value": i, "step": i}],
                                                              "writerId": f"w{i}", "writerSeq": 0})
                       for i in range(1, 9)]
            deadline = time.monotonic() + 30
            while inside[0] < 2:
                assert time.monotonic() < deadline, "no append reached the store"
                time.sleep(0.01)
            # Both ingest threads are held and six appends wait for one: reads still answer.
            series = alice.get(f"/experiments/{exp}/metrics/loss/series", params={"y": "value", "x": "step"})
            logs = alice.get(f"/experiments/{exp}/logs")
            assert not any(a.done() for a in appends)
            assert (series.status_code, logs.status_code) == (200, 200), series.text + logs.text
            release.set()
            assert [a.result().status_code for a in appends] == [200] * 8
        assert most[0] == 2  # never more than the limit at once
        read = api.alice.get(f"/experiments/{exp}/metrics/loss/data", params={"limit": 100}).json()
        assert sorted(p["data"]["step"] for p in read["data"]) == list(range(9))  # every append, once
    finally:
        api.close()
