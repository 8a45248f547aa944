"""A real browser draws a digit on the page and sees two models' answers side by side, with a convnet's
feature maps (headless Chromium + Playwright), on a desktop screen and on a 390-pixel-wide phone."""

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
MLP, CNN = "digits.npz", "digits-cnn.npz"  # the live_server fixture's models, in this order
CNN_MAPS = 4 + 4 + 6 + 6  # conv4k3, maxpool2, conv6k3, maxpool2: one canvas per channel

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


def open_page(browser, url: str, errors: list[str], **settings):
    """A new page of ``browser`` at ``url``, its script errors collected in ``errors``, once both answer panels
    are built."""
    page = browser.new_page(**settings)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    page.wait_for_selector(f'.answer[data-model="{CNN}"] .bars li:nth-child(10)')
    return page


def draw_a_seven(page) -> None:
    """A bar across, then a diagonal down, in the pad's own 280×280 coordinates whatever its size on screen."""
    box = page.locator("#pad").bounding_box()
    x, y, scale = box["x"], box["y"], box["width"] / 280
    page.mouse.move(x + 90 * scale, y + 60 * scale)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + (90 + 10 * step) * scale, y + 60 * scale)
    for step in range(1, 16):
        page.mouse.move(x + (190 - 5 * step) * scale, y + (60 + 12 * step) * scale)
    page.mouse.up()


def answers(page) -> dict[str, dict]:
    """Per answer panel: its label, bar widths (%), and where it sits on the page."""
    return page.eval_on_selector_all(
        ".answer",
        """panels => Object.fromEntries(panels.map(p => [p.dataset.model, {
            label: p.querySelector('.label').textContent,
            verdict: p.querySelector('.verdict').textContent,
            look: p.querySelector('.prediction').className,
            widths: Array.from(p.querySelectorAll('.bar')).map(b => parseFloat(b.style.width)),
            top: p.getBoundingClientRect().top, left: p.getBoundingClientRect().left,
        }]))""",
    )


def check_both_answers(page) -> None:
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.answer .label')).every(l => /^[0-9]$/.test(l.textContent))"
    )
    shown = answers(page)
    assert list(shown) == [MLP, CNN]
    for name, answer in shown.items():
        assert len(answer["widths"]) == 10 and abs(sum(answer["widths"]) - 100) < 1.0, name
        assert answer["widths"][int(answer["label"])] == max(answer["widths"]), name
    assert shown[MLP]["top"] == shown[CNN]["top"] and shown[MLP]["left"] < shown[CNN]["left"]  # side by side
    # the fixtures' calibrations: the MLP says "not a digit" to everything, the convnet "not sure"
    assert shown[MLP]["verdict"] == "not a digit" and shown[MLP]["look"] == "prediction not-a-digit"
    assert shown[CNN]["verdict"] == f"not sure: perhaps {shown[CNN]['label']}"
    assert shown[CNN]["look"] == "prediction not-sure"


def drawn_maps(page) -> list[int]:
    """For each feature-map canvas of the convnet, how many of its pixels differ from the empty background."""
    return page.eval_on_selector_all(
        f'.inside[data-model="{CNN}"] canvas.map',
        """maps => maps.map(c => {
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let lit = 0;
            for (let i = 0; i < data.length; i += 4) if (data[i + 3] && (data[i] !== 15 || data[i + 2] !== 42)) lit++;
            return lit;
        })""",
    )


def overflowing(page, width: int) -> list[str]:
    """Elements whose box reaches past the right edge of a ``width``-pixel viewport, and the page's own overflow."""
    return page.evaluate(
        """width => {
            const out = Array.from(document.querySelectorAll('body *'))
                .filter(e => e.getBoundingClientRect().right > width + 0.5)
                .map(e => e.tagName + '.' + e.className);
            if (document.documentElement.scrollWidth > width) out.push('page scrolls sideways');
            return out;
        }""",
        width,
    )


@pytest.mark.timeout(120)
def test_two_models_answer_side_by_side_and_the_convnet_shows_its_feature_maps(live_server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        errors: list[str] = []
        page = open_page(browser, live_server, errors, viewport={"width": 1100, "height": 900})
        sync_api.expect(page.locator("#model-info")).to_contain_text(f"{MLP}, {CNN}")
        sync_api.expect(page.locator(f'.answer[data-model="{MLP}"] .spec')).to_contain_text(
            "784-32:relu-16:tanh-10:softmax"
        )
        assert page.locator(".answer .label").all_inner_texts() == ["–", "–"]
        captions = page.locator(f'.inside[data-model="{CNN}"] .layer .name').all_inner_texts()
        assert captions == [
            "conv4k3 → relu · 4×26×26",
            "maxpool2 · 4×13×13",
            "conv6k3 → relu · 6×11×11",
            "maxpool2 · 6×5×5",
        ]

        draw_a_seven(page)
        check_both_answers(page)
        lit = page.eval_on_selector_all(
            f'.inside[data-model="{MLP}"] .unit', "units => units.filter(u => u.style.background !== '').length"
        )
        assert lit == 32 + 16  # every hidden unit of the MLP's two layers is coloured
        page.wait_for_function(f"document.querySelectorAll('.inside[data-model=\"{CNN}\"] canvas.map').length")
        maps = drawn_maps(page)
        assert len(maps) == CNN_MAPS and sum(1 for n in maps if n) >= CNN_MAPS // 2, maps  # the maps are drawn
        ink = page.evaluate(
            "() => Array.from(document.querySelector('#seen').getContext('2d').getImageData(0, 0, 28, 28).data)"
            ".filter((v, i) => i % 4 === 0 && v > 0).length"
        )
        assert ink > 20  # the 28×28 preview shows the preprocessed digit
        page.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)

        page.click("#clear")
        assert page.locator(".answer .label").all_inner_texts() == ["–", "–"]
        assert not any(drawn_maps(page))

        phone = open_page(
            browser, live_server, errors, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        draw_a_seven(phone)
        check_both_answers(phone)  # still side by side on a phone
        assert any(drawn_maps(phone))
        assert overflowing(phone, 390) == []
        phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        assert errors == []
        browser.close()


def lit_pixels(page, selector: str) -> list[int]:
    """For each canvas matching ``selector``, how many of its pixels are not black."""
    return page.eval_on_selector_all(
        selector,
        """canvases => canvases.map(c => {
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let lit = 0;
            for (let i = 0; i < data.length; i += 4) if (data[i] || data[i + 1] || data[i + 2]) lit++;
            return lit;
        })""",
    )


@pytest.mark.timeout(120)
def test_the_attribution_toggle_and_the_fool_it_button(live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        errors: list[str] = []
        page = open_page(browser, live_server, errors, viewport={"width": 1100, "height": 900})
        assert page.locator(".answer .attribution").evaluate_all("fs => fs.map(f => f.hidden)") == [True, True]
        draw_a_seven(page)
        check_both_answers(page)
        assert page.locator(".answer .attribution").evaluate_all("fs => fs.map(f => f.hidden)") == [True, True]

        page.check("#explain")  # the maps appear for the drawing already there, and follow it
        page.wait_for_function("Array.from(document.querySelectorAll('.answer .attribution')).every(f => !f.hidden)")
        assert all(n > 20 for n in lit_pixels(page, ".answer .attribution canvas"))

        page.click("#fool")
        page.wait_for_function(
            "Array.from(document.querySelectorAll('.answer .fooled figcaption'))"
            ".every(c => /^(fooled at ε = [0-9.]+: read as [0-9] \\([0-9.]+%\\)|not fooled up to ε = 0.3)$/"
            ".test(c.textContent))",
            timeout=60_000,
        )
        captions = page.locator(".answer .fooled figcaption").all_inner_texts()
        fooled = [i for i, text in enumerate(captions) if text.startswith("fooled")]
        assert fooled  # random weights fall to a small push
        assert all(lit_pixels(page, ".answer .fooled canvas")[i] > 20 for i in fooled)  # the attacked digit
        page.click("#clear")
        assert page.locator(".answer .fooled").evaluate_all("fs => fs.map(f => f.hidden)") == [True, True]
        assert errors == []
        browser.close()
