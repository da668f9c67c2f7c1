"""The browser harness itself, on a static page of its own (no ml-dash server involved)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import ConsoleGuard
from tests.helpers.browser import canvas_has_ink, canvas_ink, console_errors, wait_for

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>harness</title></head>
<body>
<canvas id="line" width="200" height="100"></canvas>
<canvas id="blank" width="200" height="100"></canvas>
<div id="chart"><canvas width="50" height="50"></canvas><canvas id="inner" width="50" height="50"></canvas></div>
<script>
  const ctx = document.getElementById("line").getContext("2d");
  ctx.strokeStyle = "rgb(255, 0, 0)";
  ctx.lineWidth = 3;
  ctx.beginPath(); ctx.moveTo(0, 90); ctx.lineTo(200, 10); ctx.stroke();
  const inner = document.getElementById("inner").getContext("2d");
  inner.fillStyle = "rgb(0, 0, 255)";
  inner.fillRect(10, 10, 5, 5);
  if (location.hash === "#error") console.error("harness: planted error");
  setTimeout(() => document.body.insertAdjacentHTML("beforeend", '<p id="late">late</p>'), 300);
</script>
</body></html>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


@pytest.fixture
def page_url(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "index.html").write_text(PAGE)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_canvas_ink_tells_drawn_from_blank(driver: WebDriver, page_url: str) -> None:
    driver.get(page_url)
    wait_for(driver, "#line")
    assert canvas_has_ink(driver, "#line")
    assert not canvas_has_ink(driver, "#blank")
    assert canvas_has_ink(driver, "#line", color=(255, 0, 0))
    assert not canvas_has_ink(driver, "#line", color=(0, 0, 255))
    # An element holding canvases (as uPlot's div does) counts the ink of all of them.
    assert canvas_ink(driver, "#chart") == 25
    assert canvas_ink(driver, "#chart", color=(0, 0, 255)) == 25
    assert canvas_ink(driver, "#nothing-here") == -1
    assert console_errors(driver) == []


def test_wait_for_waits_for_late_elements(driver: WebDriver, page_url: str) -> None:
    driver.get(page_url)
    assert wait_for(driver, "#late", timeout=5).text == "late"
    from selenium.common.exceptions import TimeoutException

    with pytest.raises(TimeoutException, match="never"):
        wait_for(driver, "#never", timeout=0.5)


@pytest.mark.allow_console_error(r"harness: planted error")
def test_console_errors_sees_console_error(driver: WebDriver, page_url: str, console: ConsoleGuard) -> None:
    driver.get(page_url + "#error")
    wait_for(driver, "#late")
    errors = console_errors(driver)
    assert [e["level"] for e in errors] == ["SEVERE"]
    assert "harness: planted error" in errors[0]["message"]
    assert console_errors(driver) == errors, "reading does not consume: the after-test check sees them too"
    # Without the marker's pattern the after-test check would fail on exactly this entry.
    assert ConsoleGuard([]).unexpected(errors) == errors
    assert console.unexpected(errors) == []


def test_each_test_starts_clean(driver: WebDriver) -> None:
    """The previous test's page, errors and cookies are gone."""
    assert driver.current_url == "about:blank"
    assert console_errors(driver) == []
