"""Headless Chromium for the dashboard tests: Debian's chromium driven through its chromedriver.

Nothing is downloaded: the driver path is given, so Selenium Manager never runs (it would try
the network). ``scripts/setup.sh`` installs the two Debian packages.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.helpers.server import REPO, LiveServer, live_server

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = REPO / ".cache" / "screenshots"
CHROME_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-quic",
)


def missing_browser() -> str | None:
    """Why a browser cannot be started here, with the fix; None when it can."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (f"missing {', '.join(missing)}: run scripts/setup.sh as root, or "
                "apt-get install chromium chromium-driver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]' (or run scripts/setup.sh)"
    return None


class Chrome:
    """One headless Chromium with a fresh profile; ``quit`` also ends any process left behind."""

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        self.profile = Path(tempfile.mkdtemp(prefix="ml-dash-chromium-"))
        options = Options()
        options.binary_location = CHROMIUM
        for arg in CHROME_ARGS:
            options.add_argument(arg)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            self.driver: WebDriver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        except BaseException:
            self._kill_leftovers()
            shutil.rmtree(self.profile, ignore_errors=True)
            raise

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            self._kill_leftovers()
            shutil.rmtree(self.profile, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """Chromium processes of *this* profile that outlived the driver (found by their
        command line, which names our unique profile directory; ended by pid)."""
        marker = f"--user-data-dir={self.profile}".encode()
        for pid in _pids_with_arg(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _pids_with_arg(arg: bytes) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if arg in (entry / "cmdline").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:  # the process ended while we looked
            continue
    return pids


# Console messages seen per driver since the last reset: chromedriver hands each entry out once,
# so reading them here (not in each caller) lets a test and the zero-errors check both see them.
_seen: weakref.WeakKeyDictionary[Any, list[dict[str, Any]]] = weakref.WeakKeyDictionary()


def browser_log(driver: WebDriver) -> list[dict[str, Any]]:
    """Every console/network message of the page since ``clear_console`` (level, message, source)."""
    entries = _seen.setdefault(driver, [])
    entries.extend(driver.get_log("browser"))
    return entries


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """The SEVERE entries: ``console.error``, uncaught exceptions, failed resource loads."""
    return [e for e in browser_log(driver) if e.get("level") == "SEVERE"]


def clear_console(driver: WebDriver) -> None:
    driver.get_log("browser")
    _seen[driver] = []


def wait_for(driver: WebDriver, css: str, timeout: float = 10, visible: bool = True) -> WebElement:
    """The first element matching ``css`` once it is there (and displayed, unless ``visible=False``)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    located = (By.CSS_SELECTOR, css)
    condition = ec.visibility_of_element_located(located) if visible else ec.presence_of_element_located(located)
    return WebDriverWait(driver, timeout).until(condition, message=f"no element {css!r} after {timeout} s")


# Counts the pixels of the canvases at `css` (a canvas, or canvases inside the element, e.g. uPlot's
# div) that differ from the canvas's top-left pixel (its background), or that are within `tol` of
# `color` when one is given. WebGL canvases are copied into a 2D canvas first.
_INK_JS = """
const [css, color, tol] = arguments;
const root = document.querySelector(css);
if (!root) return -1;
const canvases = root.tagName === "CANVAS" ? [root] : [...root.querySelectorAll("canvas")];
let ink = 0;
for (const c of canvases) {
  if (!c.width || !c.height) continue;
  let ctx = c.getContext("2d");
  if (!ctx) {
    const copy = document.createElement("canvas");
    copy.width = c.width; copy.height = c.height;
    ctx = copy.getContext("2d");
    ctx.drawImage(c, 0, 0);
  }
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const ref = color ? [color[0], color[1], color[2], 255] : [d[0], d[1], d[2], d[3]];
  const t = color ? tol : 0;
  for (let i = 0; i < d.length; i += 4) {
    const near = Math.abs(d[i] - ref[0]) <= t && Math.abs(d[i + 1] - ref[1]) <= t &&
      Math.abs(d[i + 2] - ref[2]) <= t && Math.abs(d[i + 3] - ref[3]) <= t;
    if (color ? near : !near) ink++;
  }
}
return ink;
"""


def canvas_ink(driver: WebDriver, css: str, color: tuple[int, int, int] | None = None, tolerance: int = 24) -> int:
    """How many canvas pixels carry ink (see ``_INK_JS``); -1 when nothing matches ``css``."""
    return int(driver.execute_script(_INK_JS, css, list(color) if color else None, tolerance))


def canvas_has_ink(driver: WebDriver, css: str, color: tuple[int, int, int] | None = None) -> bool:
    """Whether anything was drawn on the canvas(es) at ``css`` (in ``color``, when given)."""
    return canvas_ink(driver, css, color) > 0


def screenshot_path(test_name: str) -> Path:
    return SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', test_name)}.png"


@dataclass
class Dashboard:
    """A live ``ml-dash serve`` for browser tests."""

    server: LiveServer

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return self.server.url

    @property
    def login_url(self) -> str:
        """The owner's login URL the server printed (``.../?token=...``)."""
        assert self.server.dashboard_url, "ml-dash serve printed no dashboard URL (is the dashboard disabled?)"
        return self.server.dashboard_url

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def token(self, name: str, namespace: str) -> str:
        """A new API key of ``namespace`` (for the SDK, or the login page)."""
        return self.server.token(name, namespace)

    def login(self, driver: WebDriver, timeout: float = 10) -> None:
        """Opens the owner's URL and waits until the token is gone from the address bar."""
        from selenium.webdriver.support.ui import WebDriverWait

        driver.get(self.login_url)
        WebDriverWait(driver, timeout).until(lambda d: "token=" not in d.current_url,
                                             message=f"still at {driver.current_url} after {timeout} s")


@contextmanager
def open_dashboard(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[Dashboard]:
    """A dashboard server on 127.0.0.1 (any free port) over ``data_dir``; stopped at the end."""
    with live_server(data_dir, *extra, env=env) as server:
        yield Dashboard(server)
