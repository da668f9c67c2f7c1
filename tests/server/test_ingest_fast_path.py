"""The ingest fast paths (metric points read as columns, log lines read as columns) answer, store
and summarise exactly as the general paths do, and refuse nothing the general paths accept.

Every scenario runs twice on fresh servers, once as is and once with the fast paths switched off,
and everything the client can see is compared: responses (status and body), points and lines
read back, and the series the dashboard reads from the summaries.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ml_dash.server.fastjson import FlatPoints, flat_points, split_first_array
from ml_dash.server.routes import records
from tests.server.conftest import Api, make_state

NAN, INF = float("nan"), float("inf")


# --- flat_points ---------------------------------------------------------------------------------
def _same(got: FlatPoints, text: bytes) -> bool:
    want = orjson.loads(text)
    dicts = got.dicts()
    kinds = [type(v) for p in dicts for v in p.values()]
    return dicts == want and kinds == [type(v) for p in want for v in p.values()] and orjson.loads(got.text) == want


POINTS = [{"value": (i * 0.001) % 7, "step": i, "epoch": i // 100} for i in range(1000)]


@pytest.mark.parametrize("text", [
    orjson.dumps(POINTS),  # orjson, httpx
    json.dumps(POINTS).encode(),  # json.dumps, requests (0.5.8)
    ("[" + ",".join(json.dumps(p) for p in POINTS) + "]").encode(),  # the SDK: stored lines joined
    b'[{"a":1}]',
    b'[{"a":-0.0},{"a":-5},{"a":12345678901234567890123},{"a":0.1}]',
    '[{"é":1},{"é":2}]'.encode(),
    b'[{"a":1 },{"a":2 }]',
    b'[{"a" :1,"b" :2},{"a" :3,"b" :4}]',
    b'[{"a":1e5}]', b'[{"a":1E5},{"a":-2.5e-07},{"a":1e+300},{"a":1e-400}]', b'[{"top1":1,"e":2e2,"1e5":3}]',
    b'[{"loss/val@5":0.1},{"loss/val@5":2}]',
    ("[" + ", ".join(json.dumps({"loss": 1 / (i + 1), "lr": 1e-4 * 0.9 ** i, "step": i}) for i in range(2000))
     + "]").encode(),  # json.dumps writes small and large floats with an exponent
])
def test_flat_points_reads_flat_numeric_points_as_columns(text: bytes) -> None:
    got = flat_points(text)
    assert got is not None and _same(got, text)
    assert " " not in got.text  # stored without whitespace


@pytest.mark.parametrize("text", [
    b'[{"a":1e400}]', b'[{"a":1},{"a":-1e309}]', b'[{"a":e5}]', b'[{"a":1e}]', b'[{"a":1},{"a":}e5]',
    b'[{"a":1},{"a":\x01:2}]', b'[{"a":1},{\x01:2}]', b'[{"a":1},{"\\u0001":2}]', b'[{"a\\"b":1}]',
    b'[{"a":1},{"x\\"a":2}]', b'[{"a":1,"b":2},{"b":3,"a":4}]', b'[{"a":NaN}]', b'[{"a":1},{"a":Infinity}]', b'[{"a":1},{"a":-Infinity}]',
    b'[{"a":1},{"a":true}]', b'[{"a":1},{"a":null}]', b'[{"a":1},{"a":"1"}]', b'[{"a":1},{"a":[1]}]',
    b'[{"a":1},{"a":{}}]', b'[{"a":1},{"b":1}]', b'[{"a":1,"b":2},{"a":1}]',
    b'[{"a":1},{"a":1,"b":2}]', b'[{"a b":1}]', b'[{"\\u0061":1}]', b'[{"a":1,"a":2}]',
    b'[{}]', b'[{},{}]', b'[]', b'[1]', b'[{"a":1},[1]]', b'[{"a":1}{"a":2}]', b'[{"a":1},,{"a":2}]',
    b'[{"a":1,}]', b'[{"a":1 2}]', b'[{"a":1.}]', b'[{"a":01}]', b'[{"a":-}]', b'[{"a":}]', b'[{"a":1},{"a":2},]',
    b'[ {"a":1}]', b'[{"a":1} ]', b'[{"a":1},{"a ":2}]', b'[{"a":1},{"a":2, "b": 3}]', b'[{"a":1},{"a":}3]',
    b'[{"a":1},{"a4":},{"a":3}]', b'[{"a":1},{1"a":},{"a":3}]', b'[{"a":1},{"a":2},3{"a":}]', b'[{"a":1}5,{"a":2}]',
    b'[{"a":1},{"a":2}5]', b'[{"ab":1},{"a5b":2}]', b'[{"a":1,"b":2},{"a":3,"b":}4]', b'[{"a":\r1}]',
    json.dumps(POINTS, indent=1).encode(),
])
def test_flat_points_leaves_everything_else_to_the_general_parser(text: bytes) -> None:
    assert flat_points(text) is None


def test_flat_points_never_accepts_a_wrong_reading_of_a_mutated_array() -> None:
    rng = random.Random(7)
    bases = [b'[{"loss":0.5,"acc":1},{"loss":-2.25,"acc":30},{"loss":7,"acc":-0.125}]',
             b'[{"loss": 0.5, "acc": 1}, {"loss": -2.25, "acc": 30}]', b'[{"a":1},{"a":2},{"a":3}]',
             b'[{"e1":1e-05,"lr":2E+3},{"e1":-2.5e7,"lr":0.1},{"e1":7,"lr":1e0}]']
    alphabet = b'{}[]:,"0123456789.+-eE \n\t\rlosacNIn\\u\x01\x02'
    accepted = 0
    for _ in range(30_000):
        text = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(text) + 1)
            op = rng.random()
            if op < 0.35:
                del text[min(i, len(text) - 1)]
            elif op < 0.7:
                text.insert(i, rng.choice(alphabet))
            elif op < 0.85:
                text[min(i, len(text) - 1)] = rng.choice(alphabet)
            else:
                a, b = sorted((rng.randrange(len(text)), rng.randrange(len(text))))
                text[i:i] = text[a:b]
        got = flat_points(bytes(text))
        if got is not None:
            accepted += 1
            assert _same(got, bytes(text)), bytes(text)  # (orjson.loads raises if the text is not JSON)
    assert accepted > 300  # the mutations that stay valid do go through


def test_split_first_array() -> None:
    assert split_first_array(b'{"dataPoints":[{"a":1}],"startIndex":3}', b"dataPoints") == \
        (b'[{"a":1}]', b'{"startIndex":3}')
    assert split_first_array(b'{"dataPoints": [{"a": 1}], "w": "x"}', b"dataPoints") == (b'[{"a": 1}]', b'{"w": "x"}')
    assert split_first_array(b'{"dataPoints":[{"a":1}]}', b"dataPoints") == (b'[{"a":1}]', b"}")
    for body in (b'{"dataPoints":[{"a":1}] x', b'{"startIndex":0,"dataPoints":[]}', b' {"dataPoints":[]}',
                 b'{"dataPoints":{"a":1}}', b'{"dataPoints":[{"a":1}', b'{"dataPoints":[{"a":1}],}',
                 b'{"dataPoints":[{"a":1}] , }', b'{"dataPoints":[{"a":1}]"x":1}'):
        assert split_first_array(body, b"dataPoints") is None


# --- the same answers with and without the fast paths ------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[bool], Api]]:
    """``make(fast)``: a fresh server, with the fast paths or without (each on its own database)."""
    made: list[Api] = []

    def make(fast: bool) -> Api:
        where = tmp_path / ("fast" if fast else "general")
        if request.param == "sqlite":
            stores = {"db": f"sqlite:///{where / 'meta.db'}", "blobs": f"file://{where / 'blobs'}"}
        else:
            from tests.helpers.backends import fresh_postgres_db

            stores = {"db": fresh_postgres_db(request.getfixturevalue("postgres_server")),
                      "blobs": f"file://{where / 'blobs'}"}
        api = Api(make_state(where, stores))
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


def _run(make: Callable[[bool], Api], fast: bool, monkeypatch: pytest.MonkeyPatch,
         scenario: Callable[[Api, str], list[Any]]) -> tuple[list[Any], int]:
    """What the scenario saw, with the server's ids made neutral; and how often a fast path served."""
    taken = [0]
    with monkeypatch.context() as patch:
        if fast:
            for name in ("flat_points", "_fast_logs"):
                real = getattr(records, name)

                def counted(*args: Any, _real: Callable[..., Any] = real) -> Any:
                    out = _real(*args)
                    taken[0] += out is not None
                    return out

                patch.setattr(records, name, counted)
        else:
            patch.setattr(records, "flat_points", lambda *a: None)
            patch.setattr(records, "_fast_logs", lambda *a: None)
        api = make(fast)
        exp = api.experiment()
        seen = scenario(api, exp)
    text = re.sub(r'(\\?")\d{15,}(\\?")', r"\1ID\2", json.dumps(seen, sort_keys=True))  # the server's ids
    # times of the server (what the client sent is dated 2026-01-01)
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", lambda m: m[0] if m[0].startswith("2026-01-01") else "T", text)
    return json.loads(text), taken[0]


def _post(api: Api, path: str, body: bytes | str, content_type: str = "application/json") -> list[Any]:
    r = api.alice.post(path, content=body, headers={"Content-Type": content_type})
    return [r.status_code, r.text]


def _points_text(points: list[dict[str, Any]], style: str) -> str:
    if style == "compact":
        return orjson.dumps(points).decode()
    if style == "sdk":
        return "[" + ",".join(json.dumps(p) for p in points) + "]"
    return json.dumps(points)


def _metrics_scenario(api: Api, exp: str) -> list[Any]:
    rng = random.Random(3)
    base = f"/experiments/{exp}/metrics"
    pts = [{"loss": rng.random() * 3, "step": 10 * i, "epoch": i // 700} for i in range(6000)]
    seen: list[Any] = []

    def batch(name: str, points: list[dict[str, Any]], style: str = "compact", **rest: Any) -> None:
        body = f'{{"dataPoints":{_points_text(points, style)}{"," if rest else ""}{json.dumps(rest)[1:-1]}}}'
        seen.append(_post(api, f"{base}/{name}/append-batch", body))

    # by position: in order (three encodings), a retry, an overlapping retry, a conflict, a gap
    batch("pos", pts[:1000], startIndex=0, description="d", tags=["t"], metadata={"m": 1})
    batch("pos", pts[1000:2500], "spaced", startIndex=1000)
    batch("pos", pts[2500:3000], "sdk", startIndex=2500)
    batch("pos", pts[2500:3000], "sdk", startIndex=2500)  # retried: all duplicates
    batch("pos", pts[2800:3600], startIndex=2800)  # 200 known + 600 new
    batch("pos", [{**p, "loss": -1.0} for p in pts[3000:3100]], startIndex=3000)  # 409: other content
    batch("pos", pts[5000:5100], startIndex=5000)  # 409: gap
    batch("pos", pts[3600:4000])  # 0.5.8: at the end
    # as a writer: follow-on numbers, a retry, numbers not following on, partly new
    batch("wr", pts[:2000], writerId="w1", writerSeq=0)
    batch("wr", pts[:2000], writerId="w1", writerSeq=0)
    batch("wr", pts[2000:2010], writerId="w1", writerSeqs=[2000 + 3 * i for i in range(10)])
    batch("wr", pts[1990:2100], "spaced", writerId="w1", writerSeq=1990)
    batch("wr", pts[3000:3100], writerId="w2", writerSeq=0)  # a second writer on the same series
    # what the general path keeps for itself: NaN/Infinity, exponents, mixed fields, strings, nested
    nan = [{"loss": NAN if i % 3 == 0 else INF if i % 3 == 1 else -INF, "step": i} for i in range(30)]
    seen.append(_post(api, f"{base}/odd/append-batch", '{"dataPoints": ' + json.dumps(nan) + "}"))
    batch("odd", [{"loss": 1e-05 * i, "step": i} for i in range(50)])
    batch("odd", [{"loss": 0.5, "step": i} if i % 2 else {"acc": 0.25, "step": i} for i in range(40)])
    batch("odd", [{"loss": 0.5, "tag": "x"}, {"loss": 1.5, "tag": None}, {"loss": True}])
    batch("odd", [{"loss": 0.5, "top1": 2, "step": 1}, {"loss": 0.25, "top1": 3, "step": 2}])
    batch("odd", [{"loss": {"a": 1}}, {"loss": [1, 2]}])
    # bodies that are refused, with the same messages
    for body in ('{"dataPoints":[{"a":1}]', '{"dataPoints":[]}', '{"dataPoints":[{"a":1},2]}', '[{"a":1}]',
                 '{"dataPoints":[{"a":1}],"writerId":"w"}', '{"dataPoints":[{"a":1}],"startIndex":-1}',
                 '{"dataPoints":[{"a":1}],"writerId":"w","writerSeqs":[1,2]}', '{"dataPoints":[{"a":1}]}}',
                 '{"dataPoints":[{"a":1}],"writerId":"w","writerSeq":0,"writerSeqs":[0]}',
                 '{"dataPoints":[{"a":1}],"writerId":"bad id","writerSeq":0}', '{"dataPoints":[{"a":1}],"tags":"x"}',
                 '{"dataPoints":[{"a":1}],"dataPoints":[{"b":2}]}', '{"dataPoints":[{"a":1}],"x":NaN}',
                 '{"dataPoints":[{"a":1}],}', '{"dataPoints":[{"a":1}],"startIndex":0,}'):
        seen.append(_post(api, f"{base}/bad/append-batch", body))
    # everything read back: points, stats, list, series
    for name in ("pos", "wr", "odd", "bad"):
        seen.append(api.alice.get(f"{base}/{name}/data", params={"limit": 100_000}).text)
        seen.append(api.alice.get(f"{base}/{name}/stats").text)
        for y, x, points in (("loss", "index", 1000), ("loss", "step", 50), ("step", "index", 7), ("acc", "index", 9)):
            doc = api.alice.get(f"{base}/{name}/series", params={"y": y, "x": x, "points": points})
            seen.append([doc.status_code, doc.text])
    seen.append(api.alice.get(f"{base}").text)
    seen.append(api.alice.get(f"/experiments/{exp}/series").text)
    return seen


def _same_as_general(servers: Callable[[bool], Api], monkeypatch: pytest.MonkeyPatch,
                     scenario: Callable[[Api, str], list[Any]], min_taken: int) -> None:
    """``scenario`` with the fast paths on and off: the same answers, item by item, and at least
    ``min_taken`` requests took the fast path (none with it off)."""
    fast, taken = _run(servers, True, monkeypatch, scenario)
    general, none = _run(servers, False, monkeypatch, scenario)
    assert none == 0 and taken >= min_taken
    for i, (a, b) in enumerate(zip(fast, general, strict=True)):
        assert a == b, f"item {i} differs"


def test_metric_appends_answer_store_and_summarise_as_the_general_path(
        servers: Callable[[bool], Api], monkeypatch: pytest.MonkeyPatch) -> None:
    _same_as_general(servers, monkeypatch, _metrics_scenario, 12)  # the common batches do take the fast path


def test_what_is_read_back_is_what_was_sent(api: Api) -> None:
    exp = api.experiment()
    rng = random.Random(5)
    sent = [{"v": rng.uniform(-1e6, 1e6), "i": rng.randrange(-10**15, 10**15), "z": -0.0} for _ in range(3000)]
    for style, start in (("compact", 0), ("spaced", 1000), ("sdk", 2000)):
        body = f'{{"dataPoints":{_points_text(sent[start:start + 1000], style)},"startIndex":{start}}}'
        assert records.flat_points(split_first_array(body.encode(), b"dataPoints")[0]) is not None
        assert api.alice.post(f"/experiments/{exp}/metrics/m/append-batch", content=body).status_code == 200
    got = api.alice.get(f"/experiments/{exp}/metrics/m/data", params={"limit": 5000}).json()["data"]
    assert [p["data"] for p in got] == sent
    assert [math.copysign(1, p["data"]["z"]) for p in got] == [-1.0] * 3000  # -0.0 stays -0.0
    with api.state.store._tx(write=False) as cur:
        texts = [r["data"] for r in cur.all("SELECT data FROM metric_chunks ORDER BY start_idx")]
    assert len(texts) == 3 and not any(" " in t for t in texts)  # one compact chunk row per batch


def _logs_scenario(api: Api, exp: str) -> list[Any]:
    path = f"/experiments/{exp}/logs"
    lines = [{"timestamp": f"2026-01-01T00:00:{i % 60:02d}.{i:03d}Z", "level": ("info", "WARN", "Error")[i % 3],
              "message": f"step {i} \u00e9 \"quoted\" \\ {'x' * (i % 50)}"} for i in range(3000)]
    seen: list[Any] = []

    def post(body: Any, content_type: str = "application/json") -> None:
        seen.append(_post(api, path, body if isinstance(body, str) else json.dumps(body), content_type))

    post({"logs": [{**e, "sequenceNumber": i} for i, e in enumerate(lines[:1000])]})
    post({"logs": [{**e, "sequenceNumber": i} for i, e in enumerate(lines[:1000])]})  # retried
    post({"logs": [{**e, "sequenceNumber": 900 + i} for i, e in enumerate(lines[900:1100])]})  # overlapping
    post({"logs": [{**e, "sequenceNumber": 1000, "message": "other"} for e in lines[:1]]})  # 409
    post({"logs": [{**e, "sequenceNumber": 5000} for e in lines[:1]]})  # 409: gap
    post({"logs": [{"message": e["message"]} for e in lines[1100:1200]]})  # 0.5.8: no position, no level
    post({"logs": [{**e, "timestamp": None, "metadata": {"k": i, "nested": {"a": [1, 2]}}}
                   for i, e in enumerate(lines[1200:1300])]})
    post({"logs": [{**e, "writerSeq": i} for i, e in enumerate(lines[1300:2300])], "writerId": "w1"})
    post({"logs": [{**e, "writerSeq": i} for i, e in enumerate(lines[1300:2300])], "writerId": "w1"})  # retried
    post({"logs": [{**e, "writerSeq": 990 + 5 * i} for i, e in enumerate(lines[2300:2400])], "writerId": "w1"})
    post({"logs": [{**e, "writerSeq": i, "extra": [1]} for i, e in enumerate(lines[2400:2500])], "writerId": "w2"})
    post({"logs": [{"message": "m", "sequenceNumber": "3001"}, {"message": "n", "sequenceNumber": 3002.0}]})
    post('{"logs": [{"message": "nan", "metadata": {"x": NaN}}]}')
    # refused, with the same messages
    for body in ('{"logs": [{"message": "m"}]', '{"logs": []}', '{"logs": [{"level": "info"}]}', '{"logs": [1]}',
                 '{"logs": [{"message": 5}]}', '{"logs": [{"message": "m", "level": "loud"}]}',
                 '{"logs": [{"message": "m", "level": null}]}', '{"logs": [{"message": "m"}], "writerId": "w"}',
                 '{"logs": [{"message": "m", "writerSeq": 1}], "writerId": "bad id"}',
                 '{"logs": [{"message": "m", "writerSeq": 1}], "writerId": "w\\n"}',
                 '{"logs": [{"message": "m", "sequenceNumber": -1}]}', '{"logs": [{"message": "m", "writerSeq": -1}]}',
                 '{"logs": [{"message": "m", "metadata": [1]}]}', '{"logs": [{"message": "m", "timestamp": 5}]}',
                 '[]', '{"logs": [{"message": "m", "sequenceNumber": true}]}'):
        post(body)
    post('{"logs": [{"message": "m"}]}', "text/plain")
    for params in ({"limit": 10_000}, {"limit": 10_000, "order": "desc", "level": "warn,error"}, {"search": "step 12"}):
        seen.append(api.alice.get(path, params=params).text)
    seen.append(api.alice.get(f"/experiments/{exp}/streams").text)
    return seen


def test_log_appends_answer_and_store_as_the_general_path(
        servers: Callable[[bool], Api], monkeypatch: pytest.MonkeyPatch) -> None:
    _same_as_general(servers, monkeypatch, _logs_scenario, 9)
