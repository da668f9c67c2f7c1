"""`.dashrc` in the browser: declared charts, the editor with its YAML errors, a saved Compare view."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from ml_dash.api.client import ApiClient
from tests.browser.test_dashboard import PNG
from tests.helpers.browser import Dashboard, canvas_has_ink, open_dashboard, wait_for

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

DECLARED = """\
metrics:
  fields: ["train.*"]
charts:
  - ctype: line
    title: Both losses
    xKey: step
    yKeys: [train.loss, eval.loss]
  - ctype: line
    yKey: train.acc
    logY: true
  - ctype: image
    title: Samples
    nCols: 2
    nRows: 1
"""


@dataclass
class Seeded:
    dash: Dashboard
    key: str
    declared: str
    plain: str


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    tmp = tmp_path_factory.mktemp("dashrc")
    with open_dashboard(tmp / "server") as dash:
        key = dash.token("alice-key", "alice")
        client = ApiClient(dash.url, key)
        try:
            ids = []
            for name, lr in (("declared", 0.1), ("plain-a", 0.2), ("plain-b", 0.3)):
                exp = client.create_experiment("rc", {"name": name, "folder": "grid"})
                ids.append(exp["id"])
                client.merge_params(exp["id"], {"lr": lr})
                client.append_batch(exp["id"], "train", [{"step": s, "loss": math.exp(-lr * s / 20),
                                                          "acc": 1 - math.exp(-lr * s / 20)} for s in range(200)], None)
                client.append_batch(exp["id"], "eval", [{"step": s, "loss": 1.1 * math.exp(-lr * s / 20)}
                                                        for s in range(0, 200, 20)], None)
            for i in range(3):
                source = tmp / f"sample-{i}.png"
                source.write_bytes(PNG)
                client.upload_file(ids[0], source, prefix="samples", filename=source.name, size=len(PNG),
                                   checksum=hashlib.sha256(PNG).hexdigest(), content_type="image/png")
            r = httpx.put(f"{dash.url}/ui/experiments/{ids[0]}/dashrc", json={"text": DECLARED},
                          headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text
            yield Seeded(dash, key, ids[0], ids[1])
        finally:
            client.close()


def _until(driver: WebDriver, predicate: Any, timeout: float = 10, what: str = "condition") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: predicate(d), message=f"{what} after {timeout} s")


def test_an_experiments_dashrc_declares_its_charts(driver: WebDriver, seeded: Seeded) -> None:
    from selenium.webdriver.common.by import By

    seeded.dash.login(driver)
    driver.get(f"{seeded.dash.url}/#/ns/alice/p/rc/e/{seeded.declared}/metrics")
    wait_for(driver, "figure.declared[data-index='0'][data-drawn='1']", timeout=15)
    titles = [f.text.split("\n")[0] for f in driver.find_elements(By.CSS_SELECTOR, "figure.declared > figcaption")]
    assert titles == ["Both losses", "train.acc", "Samples"]
    # Two lines in the first chart, the values at the last x listed under it.
    assert len(driver.find_elements(By.CSS_SELECTOR, "figure.declared[data-index='0'] .readout .item")) == 2
    assert canvas_has_ink(driver, "figure.declared[data-index='1'] .plot")
    _until(driver, lambda d: d.execute_script(
        "return [...document.querySelectorAll('figure.declared.image img')].filter(i => i.naturalWidth).length") == 2,
        what="two images (nCols x nRows)")
    header = driver.find_element(By.ID, "header-metrics").text
    assert "train.loss" in header and "eval.loss" not in header
    driver.find_element(By.ID, "all-metrics").click()  # the automatic charts are one click away
    wait_for(driver, "figure.chart[data-key='eval.loss'][data-drawn='1']")


def test_the_editor_shows_a_yaml_error_with_its_line_then_saves(driver: WebDriver, seeded: Seeded,
                                                                 console: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    console.allow(r"422")
    seeded.dash.login(driver)
    driver.get(f"{seeded.dash.url}/#/ns/alice/p/rc/e/{seeded.plain}/metrics?m=train.loss")
    wait_for(driver, "figure.chart[data-drawn='1']")
    driver.find_element(By.ID, "dashrc-save-as").click()
    area = wait_for(driver, "#dashrc-text")
    assert "yKey: \"train.loss\"" in area.get_attribute("value")
    wait_for(driver, "#dashrc-preview figure[data-drawn='1']", timeout=10)  # the live preview
    text = area.get_attribute("value").replace('ctype: "line"', 'ctype: "lines"')
    area.clear()
    area.send_keys(text)
    error = wait_for(driver, "#dashrc-error .error")
    line = 1 + text.splitlines().index(next(x for x in text.splitlines() if '"lines"' in x))
    assert f"Line {line}:" in error.text and "did you mean" in error.text.lower(), error.text
    assert driver.find_element(By.ID, "dashrc-save").get_attribute("disabled") is not None
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(text.replace('"lines"', '"line"'))
    _until(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "#dashrc-error .error"), what="the error gone")
    driver.find_element(By.ID, "dashrc-save").click()
    wait_for(driver, "figure.declared[data-drawn='1']", timeout=10)
    r = httpx.get(f"{seeded.dash.url}/ui/experiments/{seeded.plain}/dashrc",
                  headers={"Authorization": f"Bearer {seeded.key}"})
    assert r.status_code == 200 and "train.loss" in r.json()["text"]


def test_a_saved_compare_view_reopens_from_its_folder(driver: WebDriver, seeded: Seeded) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    seeded.dash.login(driver)
    driver.get(f"{seeded.dash.url}/#/ns/alice/p/rc?folder=grid")
    wait_for(driver, "#compare-folder").click()
    wait_for(driver, "figure.chart[data-drawn='1']", timeout=15)
    Select(driver.find_element(By.ID, "group-by")).select_by_value("params.lr")
    driver.find_element(By.ID, "dashrc-save-as").click()
    area = wait_for(driver, "#dashrc-text")
    assert "groupBy: \"params.lr\"" in area.get_attribute("value")
    wait_for(driver, "#dashrc-preview figure[data-drawn='1']", timeout=10)
    driver.find_element(By.ID, "dashrc-save").click()
    # Saved: reopening the folder's compare view shows the saved charts and grouping.
    driver.get("about:blank")
    driver.get(f"{seeded.dash.url}/#/ns/alice/p/rc?folder=grid")
    wait_for(driver, "#compare-folder").click()
    wait_for(driver, "#compare-saved figure.saved[data-drawn='1']", timeout=15)
    assert driver.find_element(By.CSS_SELECTOR, "#compare-saved figure.saved").get_attribute("data-lines") == "3"
    assert "group=params.lr" in driver.current_url or Select(
        driver.find_element(By.ID, "group-by")).first_selected_option.get_attribute("value") == "params.lr"
