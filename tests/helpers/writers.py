"""Writers appending to one metric at once, and the check that every point arrived exactly once
(the scale-out and database-restart tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ml_dash.api.client import ApiClient, RetryPolicy

DEFAULT_RETRY = RetryPolicy(attempts=8, backoff=0.2, max_backoff=2)


def read_points(client: httpx.Client, exp: str, metric: str) -> list[dict[str, Any]]:
    """Every point of ``metric``, page by page."""
    out: list[dict[str, Any]] = []
    while True:
        r = client.get(f"/experiments/{exp}/metrics/{metric}/data", params={"startIndex": len(out), "limit": 10000})
        r.raise_for_status()
        body = r.json()
        out += [p["data"] for p in body["data"]]
        if not body["hasMore"]:
            return out


def write_concurrently(url: str, key: str, exp: str, writers: int, batches: int, size: int,
                       pace: float = 0.0, *, retry: RetryPolicy | None = None,
                       transport: Callable[[], httpx.BaseTransport] | None = None,
                       before: Callable[[int, int], None] | None = None) -> None:
    """``writers`` threads, each its own writer id, appending ``batches`` numbered batches to metric "m"
    (``pace`` seconds apart), with ``retry`` (default: ``DEFAULT_RETRY``) over ``transport()`` (default:
    httpx's own). ``before(writer, batch)`` runs before each batch is sent. A writer that fails (gave
    up retrying) is raised here once all have ended."""
    failed: list[BaseException] = []

    def write(w: int) -> None:
        try:
            with ApiClient(url, key, retry=retry or DEFAULT_RETRY,
                           transport=transport() if transport else None) as client:
                for b in range(batches):
                    if before is not None:
                        before(w, b)
                    points = [{"w": w, "i": b * size + i} for i in range(size)]
                    client.append_batch(exp, "m", points, None, writer_id=f"writer-{w}", writer_seqs=b * size)
                    time.sleep(pace)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            failed.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]


def exactly_once(points: list[dict[str, Any]], writers: int, total: int) -> None:
    seen = sorted((p["w"], p["i"]) for p in points)
    assert seen == [(w, i) for w in range(writers) for i in range(total)]  # each once: nothing lost or doubled
