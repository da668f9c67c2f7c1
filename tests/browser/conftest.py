"""Browser tests: one headless Chromium for the session, a clean page per test, zero console
errors unless a test says which one it expects, and a screenshot of every failure."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers.browser import (
    Chrome,
    Dashboard,
    browser_log,
    clear_console,
    console_errors,
    missing_browser,
    open_dashboard,
    screenshot_path,
)

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_console_error(pattern, ...): console errors matching these "
                                       "regular expressions do not fail the test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def _chrome() -> Iterator[WebDriver]:
    why = missing_browser()
    if why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot run under CI=true: {why}", pytrace=False)
        pytest.skip(why)
    chrome = Chrome()
    try:
        yield chrome.driver
    finally:
        chrome.quit()


@pytest.fixture
def driver(_chrome: WebDriver) -> WebDriver:
    """The session's Chromium on a blank page, without cookies or console messages of earlier tests."""
    _chrome.get("about:blank")
    _chrome.execute_cdp_cmd("Network.clearBrowserCookies", {})
    clear_console(_chrome)
    return _chrome


class ConsoleGuard:
    """Which console errors a test expects (marker ``allow_console_error`` or ``allow()``)."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = list(patterns)

    def allow(self, pattern: str) -> None:
        self.patterns.append(pattern)

    def unexpected(self, errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in errors if not any(re.search(p, str(e.get("message", ""))) for p in self.patterns)]


@pytest.fixture
def console(request: pytest.FixtureRequest) -> ConsoleGuard:
    patterns = [p for m in request.node.iter_markers("allow_console_error") for p in m.args]
    return ConsoleGuard(patterns)


@pytest.fixture(autouse=True)
def _no_console_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that drove the browser: no console errors but the expected ones."""
    if "driver" not in request.fixturenames:
        yield
        return
    guard: ConsoleGuard = request.getfixturevalue("console")
    drv: WebDriver = request.getfixturevalue("driver")
    yield
    call = getattr(request.node, "rep_call", None)
    if call is not None and call.failed:
        return  # the test's own failure says more; its errors are in its screenshot and report
    bad = guard.unexpected(console_errors(drv))
    if bad:
        lines = "\n".join(f"  {e.get('source', '?')}: {e.get('message')}" for e in bad)
        pytest.fail(f"{len(bad)} console error(s) in the browser:\n{lines}\n"
                    "(expected ones: @pytest.mark.allow_console_error(regex) or console.allow(regex))",
                    pytrace=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)
    drv = getattr(item, "funcargs", {}).get("driver")
    # A failing test: its screenshot. (A failure in teardown is the console check, which lists the
    # errors itself; by then the page is gone and, after the last test, the browser too.)
    if report.failed and report.when == "call" and drv is not None:
        report.sections.append(("browser", _screenshot(item, drv)))
    return report


def _screenshot(item: pytest.Item, drv: WebDriver) -> str:
    path = screenshot_path(item.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        drv.save_screenshot(str(path))
        shown = f"screenshot: {path} (page {drv.current_url})"
        errors = [str(e.get("message")) for e in console_errors(drv)]
    except Exception as err:  # the browser may be what failed
        return f"no screenshot ({err.__class__.__name__}: {err})"
    if errors:
        shown += "\nconsole errors:\n" + "\n".join(f"  {m}" for m in errors)
    print(f"\n{shown}")  # also in the captured output, next to what the test printed
    return shown


@pytest.fixture
def dashboard(driver: WebDriver, tmp_path: Path) -> Iterator[Dashboard]:
    """A real ``ml-dash serve`` on 127.0.0.1 over a fresh data dir (``.login(driver)`` signs in as owner)."""
    with open_dashboard(tmp_path / "server") as dash:
        try:
            yield dash
        finally:
            # Keep what the page logged, then leave it so its polling stops before the server does.
            browser_log(driver)
            driver.get("about:blank")
