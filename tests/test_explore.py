"""``minicnn explore``: the self-contained page, its data, and the page as a real headless Chromium renders it."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from minicnn.cli import main
from minicnn.explore import explore
from minicnn.io import load_model
from minicnn.train import TrainConfig, predict, train

SCREENSHOT = "/tmp/minicnn-explorer.png"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small trained LeNet-5 run (2 epochs on 1,000 digits): a real model with some mistakes to show."""
    out = tmp_path_factory.mktemp("explore") / "run"
    train(TrainConfig(epochs=2, size=1000, test_size=300, plots=False, out=out), progress=False)
    return out


def embedded(page):
    text = page.read_text(encoding="utf-8")
    return text, json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', text, re.S).group(1))


def test_page_is_self_contained_and_holds_the_models_own_answers(run_dir):
    page = explore(run_dir, images=10, misclassified=5)
    text, data = embedded(page)
    assert page == run_dir / "explore.html"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text), "the page must not load anything from a network"
    assert "<link" not in text and not re.search(r"<script[^>]+src=", text)
    net = load_model(run_dir)
    from minicnn.data import load_dataset

    images, labels = load_dataset("mnist-5k", "test", size=300, seed=0)
    probabilities = predict(net, images)
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != labels)
    spread = set(np.linspace(0, 299, 10).round().astype(int).tolist())
    assert [r["index"] for r in data["images"]] == sorted(spread | set(wrong[:5].tolist()))
    assert data["misclassified"] == len(wrong) and data["test_size"] == 300
    for record in data["images"]:
        i = record["index"]
        assert record["label"] == labels[i] and record["predicted"] == probabilities[i].argmax()
        np.testing.assert_allclose(record["probabilities"], probabilities[i], atol=5e-5)
        names = [layer["name"] for layer in record["layers"]]
        assert names == [name for name, _ in net.named_children()]
        assert record["layers"][0]["shape"] == "6x28x28" and record["layers"][-1]["shape"] == "10"
        assert all(layer["png"].startswith("data:image/png;base64,") for layer in record["layers"])
    assert data["filters"]["name"] == "C1" and data["filters"]["shape"] == "6x1x5x5"


def test_command_line(run_dir, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["explore", str(run_dir), "--out", str(out), "--images", "3", "--misclassified", "0"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert [r["index"] for r in embedded(out)[1]["images"]] == [0, 150, 299]
    assert main(["explore", str(tmp_path)]) == 2
    assert "explore: error: load_model: no such file" in capsys.readouterr().err
    assert main(["explore", str(run_dir), "--images", "0"]) == 2
    assert "explore: error: explore: --images must be >= 1, got 0" in capsys.readouterr().err
    assert main(["explore", str(run_dir / "model.npz")]) == 2
    assert "no metrics.json in" in capsys.readouterr().err


def test_the_page_needs_one_image_at_least(run_dir):
    with pytest.raises(ValueError, match=r"explore: images must be >= 1, got 0"):
        explore(run_dir, images=0, misclassified=3)
    with pytest.raises(TypeError, match=r"explore: misclassified must be an int, got float 2.0"):
        explore(run_dir, misclassified=2.0)


def _browser():
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("no Chromium and chromedriver installed (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver  # the test extra installs it: only a missing browser skips
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,1500"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def _rendered(browser):
    """What the page shows now: position, test index, label, prediction and the ten probability rows."""
    from selenium.webdriver.common.by import By

    text = lambda element_id: browser.find_element(By.ID, element_id).text  # noqa: E731
    rows = browser.find_elements(By.CSS_SELECTOR, "#probabilities .prob")
    return {"position": text("position"), "index": int(text("test-index")), "label": text("label"),
            "predicted": text("predicted"), "verdict": text("verdict"),
            "probabilities": [float(row.get_attribute("data-p")) for row in rows],
            "shown": [row.find_element(By.CLASS_NAME, "value").text for row in rows],
            "top": [row.get_attribute("data-class") for row in rows if "top1" in row.get_attribute("class")]}


def test_the_page_in_a_headless_browser_steps_to_the_next_image(run_dir):
    from selenium.webdriver.common.by import By

    page = explore(run_dir, images=6, misclassified=6)
    _, data = embedded(page)
    browser = _browser()
    try:
        browser.get(page.as_uri())
        first = _rendered(browser)
        n = len(data["images"])
        assert first["position"] == f"1 / {n}" and first["index"] == data["images"][0]["index"]
        browser.find_element(By.ID, "next").click()
        second = _rendered(browser)
        record = data["images"][1]
        assert second["position"] == f"2 / {n}" and second["index"] == record["index"] != first["index"]
        assert second["label"] == str(record["label"]) and second["predicted"] == str(record["predicted"])
        assert second["probabilities"] == record["probabilities"]
        assert second["shown"] == [f"{100 * p:.1f}%" for p in record["probabilities"]]
        assert second["top"] == [str(int(np.argmax(record["probabilities"])))] == [second["predicted"]]
        layer_images = browser.find_elements(By.CSS_SELECTOR, "#layers img")
        assert len(layer_images) == len(record["layers"])
        assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in layer_images)
        assert browser.execute_script("return document.getElementById('filters-image').naturalWidth") > 0
        thumbnails = browser.find_elements(By.CSS_SELECTOR, "#misclassified button")
        assert len(thumbnails) == sum(r["label"] != r["predicted"] for r in data["images"]) > 0
        thumbnails[0].click()
        wrong = _rendered(browser)
        assert wrong["label"] != wrong["predicted"] and wrong["verdict"] == "(wrong)"
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(SCREENSHOT)
    finally:
        browser.quit()
