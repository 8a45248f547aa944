"""A real browser draws a digit on the page and sees the prediction appear (headless Chromium + Playwright)."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.mark.timeout(120)
def test_drawing_a_digit_shows_prediction_bars_and_activations(live_server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(live_server + "/")
        page.wait_for_selector("#bars li:nth-child(10)")
        sync_api.expect(page.locator("#model-info")).to_contain_text("784-32:relu-16:tanh-10:softmax")
        assert page.locator("#label").inner_text() == "–"

        box = page.locator("#pad").bounding_box()
        x, y = box["x"], box["y"]
        page.mouse.move(x + 90, y + 60)  # a 7: a bar across, then a diagonal down
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(x + 90 + 10 * step, y + 60)
        for step in range(1, 16):
            page.mouse.move(x + 190 - 5 * step, y + 60 + 12 * step)
        page.mouse.up()

        page.wait_for_function("/^[0-9]$/.test(document.querySelector('#label').textContent)")
        widths = page.eval_on_selector_all("#bars .bar", "bars => bars.map(b => parseFloat(b.style.width))")
        assert len(widths) == 10 and abs(sum(widths) - 100) < 1.0
        label = int(page.locator("#label").inner_text())
        assert widths[label] == max(widths)
        assert page.locator("#bars li.top").count() == 1
        lit = page.eval_on_selector_all(".unit", "units => units.filter(u => u.style.background !== '').length")
        assert lit == 32 + 16  # every hidden unit of both layers is coloured
        ink = page.evaluate(
            "() => Array.from(document.querySelector('#seen').getContext('2d').getImageData(0, 0, 28, 28).data)"
            ".filter((v, i) => i % 4 === 0 && v > 0).length"
        )
        assert ink > 20  # the 28×28 preview shows the preprocessed digit
        page.screenshot(path=str(tmp_path / "page.png"))

        page.click("#clear")
        assert page.locator("#label").inner_text() == "–"
        browser.close()
