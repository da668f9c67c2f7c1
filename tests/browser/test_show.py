"""``ml-dash show`` in a real headless Chromium: no login, and a script's new points appear live."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ml_dash import Experiment
from tests.helpers.browser import canvas_has_ink, wait_for
from tests.show.helpers import live_show, snapshot

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser


def _until(driver: WebDriver, predicate: Any, timeout: float = 10, what: str = "condition") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: predicate(d), message=f"{what} after {timeout} s")


def test_show_a_tree_while_a_script_appends(driver: WebDriver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    tree = tmp_path / ".ml-dash"
    exp = Experiment(name="training", project="laptop", local_path=str(tree), folder="/runs")
    exp.run.start()  # a training script still running: the experiment stays open
    try:
        loss = exp.metrics("loss")
        loss.append_batch([{"value": 1.0 / (i + 1), "step": i} for i in range(100)])
        exp.log("epoch 1 done")
        with live_show(tree, tmp_path / "home") as show:
            show.read_line(r"imported 1 experiment")
            driver.get(show.url + "/")  # no login, no token
            wait_for(driver, "#read-only")
            wait_for(driver, "a[href='#/ns/local/p/laptop']").click()
            wait_for(driver, "table.experiments a").click()
            driver.find_element(By.ID, "tab-metrics").click()
            caption = "figure.chart[data-key='loss.value'] figcaption"
            wait_for(driver, "figure.chart[data-key='loss.value'][data-drawn='1']")
            assert "100 points" in driver.find_element(By.CSS_SELECTOR, caption).text
            assert canvas_has_ink(driver, "figure.chart[data-key='loss.value'] .plot")
            before = snapshot(tree)
            loss.append_batch([{"value": 0.001, "step": 100 + i} for i in range(40)])
            _until(driver, lambda d: "140 points" in d.find_element(By.CSS_SELECTOR, caption).text, timeout=8,
                   what="the script's new points on the chart")
            assert not driver.find_elements(By.ID, "dashrc-save-as")  # read-only: nothing to save
            driver.get("about:blank")
        # show only read: what changed in the tree is what the script wrote (its metric and logs).
        after = snapshot(tree)
        changed = {p for p in after if before.get(p) != after[p]}
        assert "runs/laptop/training/metrics/loss/data.jsonl" in changed
        assert all(p.split("/")[3:4] in (["metrics"], ["logs"]) for p in changed), changed
    finally:
        exp.run.complete()
