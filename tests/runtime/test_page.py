"""The page to try a model (runtime/zoo_runtime/server/page/), in a real headless browser:
Debian's chromium and chromedriver through selenium (never a browser selenium downloads), the
real `zoo serve` in a subprocess on 127.0.0.1 with a tagger and a forecaster trained here.

With ZOO_PAGE_SCREENSHOT=FILE.png the test saves a screenshot of the page there;
benchmarks/page_screenshot.py makes the one in docs/images/ with the recipe models.

The helpers `chrome` and `ask` are also the screenshot script's (one home for driving the page).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Server, request, zoo_serve

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT = 30  # seconds: the longest the page may take to list models or draw an answer
SCREENSHOT = "ZOO_PAGE_SCREENSHOT"

pytestmark = pytest.mark.slow  # trains two models, starts a server and a browser: ~10 s


def chrome(width: int = 1100, height: int = 900) -> Any:
    """A headless chromium driven by the system's chromedriver; selenium-manager is kept
    offline, so nothing is downloaded. A missing browser is a plain skip, which CI's skip
    policy (tests/skips.py) does not allow: CI installs both."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(program):
            pytest.skip(f"{program} is missing: apt-get install chromium chromium-driver")
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def ask(driver: Any, url: str, model: str, text: str, options: dict | None = None) -> Any:
    """Open the page (once), pick `model`, type `text` (and `options` in their fields), submit
    with Ctrl+Enter as a user would, and wait until the answer or an error line is drawn;
    returns the answer element."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    if not driver.current_url.startswith(url):
        driver.get(url + "/")
    wait = WebDriverWait(driver, WAIT)
    wait.until(lambda d: d.find_element(By.ID, "model").is_enabled())
    Select(driver.find_element(By.ID, "model")).select_by_value(model)
    if options:
        if driver.find_element(By.ID, "options").get_attribute("open") is None:
            driver.find_element(By.CSS_SELECTOR, "#options summary").click()
        for name, value in options.items():
            field = driver.find_element(By.ID, f"option-{name}")
            field.clear()
            field.send_keys(str(value))
    box = driver.find_element(By.ID, "inputs")
    box.clear()
    box.send_keys(text)
    box.send_keys(Keys.CONTROL, Keys.ENTER)

    def drawn(d: Any) -> bool:
        error = d.find_element(By.ID, "error")
        return bool(d.find_elements(By.CSS_SELECTOR, "#answer .prediction")) or error.is_displayed()

    wait.until(drawn)
    return driver.find_element(By.ID, "answer")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tagger (toy-tags) and a forecaster (sine-windows), trained briefly by `zoo run`."""
    from click.testing import CliRunner

    from zoo.cli import cli

    folder = tmp_path_factory.mktemp("page-models")
    runs = {
        "tagger": ["lstm-tagger", "--epochs", "2", "--set", "hidden_size=16"],
        "forecaster": ["gru-regressor", "--epochs", "1", "--set", "num_windows=200"],
    }
    out = {}
    for name, argv in runs.items():
        path = folder / f"{name}.safetensors"
        r = CliRunner().invoke(cli, ["run", *argv, "--out", str(path)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        out[name] = path
    return out


@pytest.fixture(scope="module")
def server(models) -> Iterator[Server]:
    """`zoo serve` with both models, as a user types it (its defaults)."""
    with Server(zoo_serve(models["tagger"], models["forecaster"])) as running:
        yield running


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    browser = chrome()
    try:
        yield browser
    finally:
        browser.quit()


def test_the_page_lists_every_model_and_what_it_is(server, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    ask(driver, server.url, "tagger", "the dog runs")
    names = [o.get_attribute("value") for o in Select(driver.find_element(By.ID, "model")).options]
    assert names == ["tagger", "forecaster"]
    about = driver.find_element(By.ID, "about").text
    assert "lstm-tagger" in about and "tagging" in about and "toy-tags" in about
    assert "words" in about  # the longest input, in the model's unit
    assert "sentence" in driver.find_element(By.ID, "hint").text


def test_the_tags_under_the_words_are_the_apis_answer(server, driver):
    from selenium.webdriver.common.by import By

    sentences = ["the dog runs", "a cat sees the bird"]
    answer = ask(driver, server.url, "tagger", "\n".join(sentences))
    status, doc = server.predict("tagger", sentences)
    assert status == 200
    drawn = answer.find_elements(By.CSS_SELECTOR, ".prediction")
    assert len(drawn) == len(sentences)
    for block, prediction in zip(drawn, doc["predictions"]):
        tokens = block.find_elements(By.CSS_SELECTOR, ".token")
        pairs = [
            [t.find_element(By.CSS_SELECTOR, ".word").text, t.find_element(By.CSS_SELECTOR, ".tag.upos").text]
            for t in tokens
        ]  # fmt: skip
        assert pairs == prediction["output"]
    assert not driver.find_element(By.ID, "error").is_displayed()


def test_the_forecast_is_plotted_beside_its_history(server, driver, models):
    from selenium.webdriver.common.by import By

    import zoo

    length = int(zoo.load(models["forecaster"]).state["input_length"])
    window = " ".join(f"{math.sin(i / 3):.3f}" for i in range(length))
    answer = ask(driver, server.url, "forecaster", window)
    status, doc = server.predict("forecaster", [window])
    assert status == 200
    (prediction,) = doc["predictions"]
    chart = answer.find_element(By.CSS_SELECTOR, "svg.chart")

    def values(series: str) -> list[float]:
        points = chart.find_elements(By.CSS_SELECTOR, f"g[data-series={series}] circle.point")
        return [float(p.get_attribute("data-value")) for p in points]

    assert values("history") == pytest.approx(prediction["input"])
    assert values("forecast") == pytest.approx(prediction["output"])
    assert len(values("forecast")) > 0
    titles = [t.text for t in chart.find_elements(By.CSS_SELECTOR, "text.title")]
    assert titles == ["time step", "value"]
    if os.environ.get(SCREENSHOT):
        driver.save_screenshot(os.environ[SCREENSHOT])


def test_a_server_error_is_one_readable_line(server, driver):
    from selenium.webdriver.common.by import By

    answer = ask(driver, server.url, "forecaster", "1 2 x")
    status, doc = server.predict("forecaster", ["1 2 x"])
    assert status == 422
    line = driver.find_element(By.ID, "error").text
    assert line == f"Error: 422: {doc['detail']}"
    assert "\n" not in line and "Traceback" not in line
    assert answer.find_elements(By.CSS_SELECTOR, ".prediction") == []


@pytest.fixture(scope="module")
def other_server(tmp_path_factory) -> Iterator[Server]:
    """A translator and a character language model (untrained, weights drawn wide)."""
    from tests.runtime.conftest import scrambled

    folder = tmp_path_factory.mktemp("page-others")
    made = {
        "translator": ("rnn-seq2seq", "word-pairs", {"hidden_size": 8, "embedding_dim": 8}),
        "charlm": ("elman-rnn", "text", {"hidden_size": 8}),
    }
    files = []
    for name, (architecture, dataset, settings) in made.items():
        files.append(folder / f"{name}.safetensors")
        scrambled(architecture, dataset, **settings).save(files[-1])
    with Server(zoo_serve(*files)) as running:
        yield running


def test_a_translation_and_generated_text_with_options(other_server, driver):
    from selenium.webdriver.common.by import By

    answer = ask(driver, other_server.url, "translator", "the dog")
    (prediction,) = other_server.predict("translator", ["the dog"])[1]["predictions"]
    assert answer.find_element(By.CSS_SELECTOR, ".pair .source").text == "the dog"
    assert answer.find_element(By.CSS_SELECTOR, ".pair .output").text == prediction["output"]

    options = {"temperature": 0, "length": 12}
    answer = ask(driver, other_server.url, "charlm", "To be", options)
    (prediction,) = other_server.predict("charlm", ["To be"], options)[1]["predictions"]
    assert len(prediction["output"]) == 12
    assert answer.find_element(By.CSS_SELECTOR, ".generated .prompt").text == "To be"
    drawn = answer.find_element(By.CSS_SELECTOR, ".generated .output")
    assert drawn.get_attribute("textContent") == prediction["output"]


def test_the_page_works_offline_from_the_server_alone(server):
    """Nothing the page loads comes from elsewhere: every src/href is the server's own."""
    status, html = request(server.url + "/")
    assert status == 200 and isinstance(html, str)
    for name in ("page.js", "page.css"):
        assert f'"/page/{name}"' in html
        status, text = request(f"{server.url}/page/{name}")
        assert status == 200 and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
