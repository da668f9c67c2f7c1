"""Comparing runs of a sweep in a real headless Chromium against a real ``ml-dash serve``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from ml_dash.api.client import ApiClient
from tests.helpers.browser import Dashboard, canvas_has_ink, open_dashboard, wait_for

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

RUNS = [("lr0.1-s1", 0.1, 1), ("lr0.1-s2", 0.1, 2), ("lr0.3-s1", 0.3, 1)]


@dataclass
class Sweep:
    dash: Dashboard
    ids: dict[str, str]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    with open_dashboard(tmp_path_factory.mktemp("compare") / "server") as dash:
        client = ApiClient(dash.url, dash.token("alice-key", "alice"))
        ids = {}
        try:
            for name, lr, seed in RUNS:
                exp = client.create_experiment("sweep", {"name": name, "folder": "lr-sweep"})
                ids[name] = exp["id"]
                client.merge_params(exp["id"], {"lr": lr, "seed": seed, "model": "resnet18"})
                client.append_batch(exp["id"], "train", [
                    {"step": s, "loss": math.exp(-lr * s / 50) + 0.01 * seed, "acc": 1 - math.exp(-lr * s / 50)}
                    for s in range(500)], None)
                client.set_status(exp["id"], "COMPLETED")
            other = client.create_experiment("sweep", {"name": "elsewhere"})
            client.append_batch(other["id"], "train", [{"step": 0, "loss": 1.0}], None)
            yield Sweep(dash, ids)
        finally:
            client.close()


def _until(driver: WebDriver, predicate: Any, timeout: float = 10, what: str = "condition") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: predicate(d), message=f"{what} after {timeout} s")


def _texts(driver: WebDriver, css: str) -> list[str]:
    return [e.text for e in driver.find_elements("css selector", css)]


def test_tick_three_runs_and_compare_them(driver: WebDriver, sweep: Sweep) -> None:
    from selenium.webdriver.common.by import By

    sweep.dash.login(driver)
    driver.get(f"{sweep.dash.url}/#/ns/alice/p/sweep?sort=name&order=asc")
    wait_for(driver, "table.experiments tbody tr")
    for name, _, _ in RUNS:
        driver.find_element(By.CSS_SELECTOR, f"input[aria-label='Compare {name}']").click()
    button = driver.find_element(By.ID, "compare")
    assert button.text == "Compare 3 runs"
    button.click()
    figure = "figure.chart[data-key='train.loss'][data-drawn='1']"
    wait_for(driver, figure, timeout=15)
    assert driver.find_element(By.CSS_SELECTOR, figure).get_attribute("data-lines") == "3"
    assert canvas_has_ink(driver, f"{figure} .plot")
    assert [t.split("\n")[0].split(" ")[0] for t in _texts(driver, "#compare-legend li")] == [n for n, _, _ in RUNS]
    # Every line's value at the last x is listed under the chart, in the run's colour.
    readout = _texts(driver, f"{figure} .readout .item")
    assert len(readout) == 3 and all(r.split()[-1] != "–" for r in readout), readout
    # The runs' colours are stable: legend and readout agree.
    legend_colors = [e.get_attribute("style") for e in driver.find_elements(By.CSS_SELECTOR, "#compare-legend .swatch")]
    readout_colors = [e.get_attribute("style") for e in driver.find_elements(By.CSS_SELECTOR, f"{figure} .swatch")]
    assert legend_colors == readout_colors


def test_group_by_a_parameter_draws_a_band_per_group(driver: WebDriver, sweep: Sweep) -> None:
    from selenium.webdriver.support.select import Select

    sweep.dash.login(driver)
    ids = ",".join(sweep.ids[n] for n, _, _ in RUNS)
    driver.get(f"{sweep.dash.url}/#/ns/alice/p/sweep/compare?ids={ids}&m=train.loss")
    wait_for(driver, "figure.chart[data-drawn='1']", timeout=15)
    Select(driver.find_element("id", "group-by")).select_by_value("params.lr")
    _until(driver, lambda d: d.find_element("css selector", "figure.chart[data-drawn='1']").get_attribute(
        "data-lines") == "2", what="two groups")
    labels = [r.split(" (")[0] for r in _texts(driver, "figure.chart .readout .item")]
    assert labels == ["lr=0.1", "lr=0.3"]
    assert "group=params.lr" in driver.current_url
    assert canvas_has_ink(driver, "figure.chart .plot")
    Select(driver.find_element("id", "band")).select_by_value("std")
    _until(driver, lambda d: "band=std" in d.current_url, what="the std band in the URL")


def test_parameters_differences_only_and_the_summary_plots(driver: WebDriver, sweep: Sweep) -> None:
    from selenium.webdriver.common.by import By

    sweep.dash.login(driver)
    driver.get(f"{sweep.dash.url}/#/ns/alice/p/sweep?folder=lr-sweep")
    wait_for(driver, "#compare-folder").click()  # the folder's three runs, not the one outside it
    wait_for(driver, "table.params-diff")
    assert len(_texts(driver, "#compare-legend li")) == 3
    assert _texts(driver, "table.params-diff tbody th") == ["lr", "model", "seed"]
    driver.find_element(By.ID, "diff-only").click()
    _until(driver, lambda d: _texts(d, "table.params-diff tbody th") == ["lr", "seed"], what="differences only")
    assert "diff=1" in driver.current_url
    wait_for(driver, "#scatter[data-drawn='1']")
    wait_for(driver, "#parallel[data-drawn='1']")
    assert canvas_has_ink(driver, "#scatter") and canvas_has_ink(driver, "#parallel")


def test_running_runs_update_the_compare_charts_live(driver: WebDriver, sweep: Sweep) -> None:
    client = ApiClient(sweep.dash.url, sweep.dash.token("live-key", "alice"))
    try:
        ids = []
        for name in ("live-a", "live-b"):  # created and left RUNNING, as a training script would
            exp = client.create_experiment("live", {"name": name})
            ids.append(exp["id"])
            client.append_batch(exp["id"], "train", [{"step": s, "loss": 1 / (s + 1)} for s in range(20)], None)
        sweep.dash.login(driver)
        driver.get(f"{sweep.dash.url}/#/ns/alice/p/live/compare?ids={','.join(ids)}&m=train.loss")
        figure = wait_for(driver, "figure.chart[data-key='train.loss'][data-drawn='1']", timeout=15)
        assert figure.get_attribute("data-lines") == "2"
        before = _texts(driver, "figure.chart .readout .item")  # the last value of each line
        client.append_batch(ids[1], "train", [{"step": s, "loss": 5.0} for s in range(20, 30)], None)
        _until(driver, lambda d: _texts(d, "figure.chart .readout .item") != before
               and _texts(d, "figure.chart .readout .item")[1].split()[-1] == "5", timeout=8,
               what="live-b's new last value")
    finally:
        client.close()
