"""The dashboard in a real headless Chromium against a real ``ml-dash serve`` on 127.0.0.1.

One server per module, seeded once through the REST API (the way the SDK and ``ml-dash upload``
write): two namespaces, an experiment with a spike planted in 1,000,000 points, parameters, logs,
files, and a RUNNING experiment that the tests feed while the page is open.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ml_dash.api.client import ApiClient
from tests.helpers.browser import Dashboard, canvas_has_ink, open_dashboard, wait_for

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

SPIKE_AT = 612_345
SPIKE = 50.0
POINTS = 1_000_000
# A 1x1 PNG (red), the smallest image a browser decodes.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478da63f8cfc0"
                    "000003010100c9fe92ef0000000049454e44ae426082")
FILES = {"plots/pixel.png": PNG, "notes/config.json": b'{"model": {"depth": 18}, "lr": 0.1}',
         "notes/table.csv": b"epoch,loss\n0,1.5\n1,0.75\n", "README.md": b"# ResNet spike run\n\nA *planted* spike."}


@dataclass
class Seeded:
    dash: Dashboard
    alice: ApiClient
    bob_key: str
    alice_key: str
    spike_id: str
    live_id: str
    bob_id: str


def _points(start: int, stop: int) -> list[str]:
    out = []
    for i in range(start, stop):
        loss = SPIKE if i == SPIKE_AT else 1.0 + 0.1 * math.sin(i / 5000)
        out.append(f'{{"step":{i},"loss":{loss!r},"acc":{0.5 + i / (2 * POINTS)!r}}}')
    return out


def _upload(client: ApiClient, exp: str, path: str, content: bytes, tmp: Path) -> None:
    source = tmp / path.replace("/", "_")
    source.write_bytes(content)
    prefix, _, name = path.rpartition("/")
    client.upload_file(exp, source, prefix=prefix, filename=name, checksum=hashlib.sha256(content).hexdigest(),
                       size=len(content), content_type="application/octet-stream")


def _clip(tmp: Path) -> bytes:
    """Eight frames of H.264, as ``exp.files().save_video`` writes (imageio's own ffmpeg)."""
    import imageio.v3 as iio
    import numpy as np

    frames = np.zeros((8, 32, 32, 3), dtype=np.uint8)
    frames[:, :, :16, 0] = 255
    iio.imwrite(tmp / "clip.mp4", frames, fps=8, codec="libx264")
    return (tmp / "clip.mp4").read_bytes()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    tmp = tmp_path_factory.mktemp("dashboard")
    with open_dashboard(tmp / "server") as dash:
        alice_key, bob_key = dash.token("alice-key", "alice"), dash.token("bob-key", "bob")
        alice, bob = ApiClient(dash.url, alice_key), ApiClient(dash.url, bob_key)
        try:
            spike = alice.create_experiment("vision", {"name": "resnet-spike", "folder": "sweeps/lr",
                                                       "description": "the run with a spike", "tags": ["baseline"]})
            for start in range(0, POINTS, 200_000):
                alice.append_batch(spike["id"], "train", _points(start, min(POINTS, start + 200_000)), None,
                                   encoded=True)
            alice.merge_params(spike["id"], {"model": {"arch": "resnet18", "depth": 18}, "optim": {"lr": 0.1},
                                             "seed": 7})
            alice.append_logs(spike["id"], [
                {"timestamp": f"2026-11-30T05:00:{i:02d}Z", "level": level, "message": f"{level} line {i}",
                 "metadata": {"i": i}} for i, level in enumerate(["info", "debug", "warn", "error", "info"] * 4)])
            for path, content in {**FILES, "media/clip.mp4": _clip(tmp)}.items():
                _upload(alice, spike["id"], path, content, tmp)
            alice.set_status(spike["id"], "COMPLETED")
            live = alice.create_experiment("vision", {"name": "live-run"})
            alice.append_batch(live["id"], "val", [{"step": i, "loss": 1 / (i + 1)} for i in range(10)], None)
            other = bob.create_experiment("secret-project", {"name": "bobs-run"})
            bob.merge_params(other["id"], {"secret": "bob-only"})
            yield Seeded(dash, alice, bob_key, alice_key, spike["id"], live["id"], other["id"])
        finally:
            alice.close()
            bob.close()


def _exp_url(seeded: Seeded, exp: str, tab: str, query: str = "", ns: str = "alice", project: str = "vision") -> str:
    return f"{seeded.dash.url}/#/ns/{ns}/p/{project}/e/{exp}/{tab}{query}"


def _until(driver: WebDriver, predicate: Any, timeout: float = 10, what: str = "condition") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: predicate(d), message=f"{what} after {timeout} s")


def test_login_through_the_printed_url_then_find_an_experiment(driver: WebDriver, seeded: Seeded) -> None:
    from selenium.webdriver.common.by import By

    seeded.dash.login(driver)
    assert "token" not in driver.current_url  # the address bar was cleaned
    cookie = driver.get_cookie("ml_dash_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    wait_for(driver, "table.grid a[href='#/ns/alice']").click()  # the owner sees every namespace
    wait_for(driver, "table.grid a[href='#/ns/alice/p/vision']").click()
    wait_for(driver, "#search").send_keys("spike")
    _until(driver, lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, "table.experiments tbody a")]
           == ["resnet-spike"], what="only the searched experiment")
    driver.find_element(By.LINK_TEXT, "resnet-spike").click()
    wait_for(driver, "#exp-status")
    assert "COMPLETED" in driver.find_element(By.ID, "exp-status").text
    # The overview: README rendered, tags shown, folder named.
    assert wait_for(driver, ".readme h1").text == "ResNet spike run"
    assert "baseline" in driver.find_element(By.ID, "tags").text
    assert "sweeps/lr" in driver.find_element(By.CSS_SELECTOR, "dl.facts").text


def test_charts_are_drawn_and_the_planted_spike_is_visible(driver: WebDriver, seeded: Seeded) -> None:
    seeded.dash.login(driver)
    driver.get(_exp_url(seeded, seeded.spike_id, "metrics", "?x=step&m=train.loss,train.acc"))
    figure = "figure.chart[data-key='train.loss'][data-drawn='1']"
    wait_for(driver, figure, timeout=20)
    wait_for(driver, "figure.chart[data-key='train.acc'][data-drawn='1']")
    assert canvas_has_ink(driver, f"{figure} .plot")
    caption = driver.find_element("css selector", f"{figure} figcaption").text
    assert "max 50 " in caption and "1,000,000 points" in caption
    # Blue ink (the min/max band) in the top third of the plot stands only where the spike is.
    columns = driver.execute_script("""
        const c = document.querySelector(arguments[0] + ' canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, Math.floor(c.height / 3)).data;
        const cols = new Set();
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] > 20 && d[i + 2] - d[i] > 60) cols.add((i / 4) % c.width);
        }
        return [[...cols].sort((a, b) => a - b), c.width];""", figure)
    ink, width = columns
    assert ink, "no spike drawn near the top of the chart"
    plot_left = 60 * driver.execute_script("return devicePixelRatio")  # the y-axis is on the left
    where = (sum(ink) / len(ink) - plot_left) / (width - plot_left)
    assert abs(where - SPIKE_AT / POINTS) < 0.04, (where, ink[:5], ink[-5:])
    assert ink[-1] - ink[0] < 0.03 * width  # one narrow spike, not a broad band


def test_zoom_asks_for_finer_buckets_and_lives_in_the_url(driver: WebDriver, seeded: Seeded) -> None:
    seeded.dash.login(driver)
    lo, hi = SPIKE_AT - 500, SPIKE_AT + 500
    driver.get(_exp_url(seeded, seeded.spike_id, "metrics", f"?x=step&m=train.loss&zoom={lo},{hi}"))
    figure = wait_for(driver, "figure.chart[data-key='train.loss'][data-drawn='1']", timeout=20)
    # 1,001 points in the window: at most 1,000 buckets, each of one or two points.
    assert 500 <= int(figure.get_attribute("data-buckets")) <= 1000
    assert canvas_has_ink(driver, "figure.chart[data-key='train.loss'] .plot")
    driver.find_element("id", "reset-zoom").click()
    _until(driver, lambda d: "zoom=" not in d.current_url, what="zoom cleared from the URL")


def test_parameters_are_grouped_and_searchable(driver: WebDriver, seeded: Seeded) -> None:
    from selenium.webdriver.common.by import By

    seeded.dash.login(driver)
    driver.get(_exp_url(seeded, seeded.spike_id, "params"))
    wait_for(driver, ".param-group")
    groups = [g.text for g in driver.find_elements(By.CSS_SELECTOR, ".param-group h3")]
    assert groups == ["(top level)", "model", "optim"]
    driver.find_element(By.ID, "param-search").send_keys("depth")
    _until(driver, lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, ".params th")] == ["model.depth"],
           what="only model.depth")


def test_logs_filter_by_level_and_text(driver: WebDriver, seeded: Seeded) -> None:
    from selenium.webdriver.common.by import By

    seeded.dash.login(driver)
    driver.get(_exp_url(seeded, seeded.spike_id, "logs"))
    wait_for(driver, "table.logs tbody tr")
    messages = [m.text for m in driver.find_elements(By.CSS_SELECTOR, "table.logs .message")]
    assert len(messages) == 20 and messages[0] == "info line 19"  # newest first
    assert '{"i":19}' in driver.find_element(By.CSS_SELECTOR, "table.logs .meta").text
    driver.find_element(By.ID, "level-error").click()
    _until(driver, lambda d: {m.text for m in d.find_elements(By.CSS_SELECTOR, "table.logs .message")}
           == {f"error line {i}" for i in (3, 8, 13, 18)}, what="only error lines")
    assert "level=error" in driver.current_url
    driver.find_element(By.ID, "log-search").send_keys("line 1")
    _until(driver, lambda d: [m.text for m in d.find_elements(By.CSS_SELECTOR, "table.logs .message")]
           == ["error line 18", "error line 13"], what="error lines matching 'line 1'")


def test_files_preview_and_download(driver: WebDriver, seeded: Seeded) -> None:
    from selenium.webdriver.common.by import By

    seeded.dash.login(driver)
    driver.get(_exp_url(seeded, seeded.spike_id, "files"))
    wait_for(driver, "a[data-file='plots/pixel.png']").click()
    _until(driver, lambda d: d.execute_script(
        "const i = document.querySelector('#file-view img'); return i && i.complete && i.naturalWidth"),
        what="the image preview")
    wait_for(driver, "a[data-file='media/clip.mp4']").click()
    duration = _until(driver, lambda d: d.execute_script(
        "const v = document.querySelector('#file-view video'); return v && v.readyState >= 1 && v.duration"),
        what="the video's metadata")
    assert duration == pytest.approx(1.0, abs=0.2)  # 8 frames at 8 fps
    wait_for(driver, "a[data-file='notes/config.json']").click()
    _until(driver, lambda d: '"depth": 18' in d.find_element(By.ID, "file-view").text, what="pretty JSON")
    wait_for(driver, "a[data-file='notes/table.csv']").click()
    _until(driver, lambda d: [c.text for c in d.find_elements(By.CSS_SELECTOR, "table.csv td")]
           == ["0", "1.5", "1", "0.75"], what="the CSV table")
    # The download link gives the exact bytes (checked by their sha256 in the page).
    href = wait_for(driver, "#download").get_attribute("href")
    digest = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then((r) => r.arrayBuffer()).then((b) => crypto.subtle.digest('SHA-256', b))
          .then((h) => done([...new Uint8Array(h)].map((x) => x.toString(16).padStart(2, '0')).join('')));""", href)
    assert digest == hashlib.sha256(FILES["notes/table.csv"]).hexdigest()


def test_a_running_experiment_updates_live(driver: WebDriver, seeded: Seeded) -> None:
    from selenium.webdriver.common.by import By

    seeded.dash.login(driver)
    driver.get(_exp_url(seeded, seeded.live_id, "metrics", "?x=step"))
    caption = "figure.chart[data-key='val.loss'] figcaption"
    wait_for(driver, "figure.chart[data-key='val.loss'][data-drawn='1']")
    assert "10 points" in driver.find_element(By.CSS_SELECTOR, caption).text
    assert "RUNNING" in driver.find_element(By.ID, "exp-status").text
    seeded.alice.append_batch(seeded.live_id, "val", [{"step": i, "loss": 1 / (i + 1)} for i in range(10, 25)], None)
    _until(driver, lambda d: "25 points" in d.find_element(By.CSS_SELECTOR, caption).text, timeout=8,
           what="the chart's new points")
    # Logs arrive on the logs tab without a reload, then the status changes.
    driver.find_element(By.ID, "tab-logs").click()
    wait_for(driver, "#log-status")
    seeded.alice.append_logs(seeded.live_id, [{"timestamp": "2026-11-30T06:00:00Z", "level": "info",
                                              "message": "epoch 3 done"}])
    _until(driver, lambda d: "epoch 3 done" in d.find_element(By.CSS_SELECTOR, "table.logs").text, timeout=8,
           what="the new log line")
    seeded.alice.set_status(seeded.live_id, "COMPLETED")
    _until(driver, lambda d: "COMPLETED" in d.find_element(By.ID, "exp-status").text, timeout=8,
           what="the new status")


def test_an_api_key_login_never_reaches_another_namespace(driver: WebDriver, seeded: Seeded, console: Any) -> None:
    from selenium.webdriver.common.by import By

    driver.get(seeded.dash.url + "/#/login")
    wait_for(driver, "#api-key").send_keys(seeded.alice_key)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait_for(driver, "a[href='#/ns/alice/p/vision']")
    assert driver.find_elements(By.CSS_SELECTOR, "#who select") == []  # no namespace switcher
    # Guessing bob's experiment by URL: a readable refusal in place, none of bob's data.
    console.allow(r"403|Forbidden")
    for url in (_exp_url(seeded, seeded.bob_id, "params", ns="bob", project="secret-project"),
                _exp_url(seeded, seeded.bob_id, "params", ns="alice", project="vision")):
        driver.get("about:blank")
        driver.get(url)
        wait_for(driver, ".error")
        assert "bob-only" not in driver.page_source
    status = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/experiments/' + arguments[0] + '/parameters').then((r) => done(r.status));""", seeded.bob_id)
    assert status == 403


def test_keyboard_tabs_theme_and_a_readable_error(driver: WebDriver, seeded: Seeded, console: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    seeded.dash.login(driver)
    driver.get(_exp_url(seeded, seeded.spike_id, "overview"))
    tab = wait_for(driver, "#tab-overview")
    tab.send_keys(Keys.ARROW_RIGHT)
    _until(driver, lambda d: d.current_url.endswith("/params"), what="the arrow key moving to parameters")
    theme = driver.execute_script("return document.documentElement.dataset.theme")
    driver.find_element(By.ID, "theme").click()
    assert driver.execute_script("return document.documentElement.dataset.theme") != theme
    driver.find_element(By.ID, "theme").click()
    # An experiment that does not exist: a message in place, never a blank page.
    console.allow(r"404 \(Not Found\)")
    driver.get("about:blank")
    driver.get(_exp_url(seeded, "999999", "metrics"))
    assert "experiment 999999 does not exist" in wait_for(driver, ".error").text


def test_ten_thousand_experiments_page_through(driver: WebDriver, seeded: Seeded) -> None:
    import sqlite3

    from selenium.webdriver.common.by import By

    db = seeded.dash.data_dir / "ml-dash.db"
    with sqlite3.connect(db, timeout=30) as conn:
        project = conn.execute("SELECT p.id FROM projects p JOIN namespaces n ON n.id = p.namespace_id "
                               "WHERE n.slug = 'alice' AND p.name = 'vision'").fetchone()[0]
        rows = [(10**15 + i, project, f"sweep-{i:05d}", None, json.dumps(["sweep"]), "[]", "grid", None,
                 "COMPLETED" if i % 3 else "FAILED", 0, 0, None, 0, None, None,
                 f"2026-10-01T00:{i // 600 % 60:02d}:{i // 10 % 60:02d}Z", "2026-10-02T00:00:00Z", None, None)
                for i in range(10_000)]
        columns = ("id, project_id, name, description, tags, bindrs, folder, metadata, status, write_protected, "
                   "log_count, params, params_version, params_created_at, params_updated_at, created_at, "
                   "updated_at, started_at, ended_at")
        conn.executemany(f"INSERT INTO experiments ({columns}) VALUES ({','.join('?' * 19)})", rows)
    seeded.dash.login(driver)
    driver.get(f"{seeded.dash.url}/#/ns/alice/p/vision?folder=grid&sort=name&order=asc")
    started = time.monotonic()
    _until(driver, lambda d: "1–50 of 10,000" in d.find_element(By.CSS_SELECTOR, ".pager").text, timeout=15,
           what="the first page of 10,000")
    assert time.monotonic() - started < 10
    names = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.experiments tbody td:nth-child(2) a")]
    assert names[:2] == ["sweep-00000", "sweep-00001"] and len(names) == 50
    driver.find_element(By.XPATH, "//button[contains(., 'Older')]").click()
    _until(driver, lambda d: "51–100 of 10,000" in d.find_element(By.CSS_SELECTOR, ".pager").text,
           what="the second page")
    driver.find_element(By.ID, "status-FAILED").click()
    _until(driver, lambda d: "of 3,334" in d.find_element(By.CSS_SELECTOR, ".pager").text, what="FAILED only")
