"""The studio in Debian's headless Chromium, driven by Playwright like a user: paint, generate, look.

Screenshots land in test-artifacts/ (git-ignored): studio-empty.png, studio-painted.png,
studio-result.png, studio-compare.png.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_app_api import backend, free_port  # noqa: F401  (the same real-model fixture as the API test)
from ui.compare import SEED_COLOURS

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def studio_url(backend):  # noqa: F811
    import app
    import ui

    demo = ui.build_ui(backend)
    url, _ = app.serve(demo, host="127.0.0.1", port=free_port(), block=False)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def page(studio_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(studio_url)
        page.get_by_role("button", name="Generate").wait_for(timeout=60_000)
        yield page
        browser.close()


def stroke(page, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through points given as fractions of the canvas element."""
    box = page.locator("#ss-canvas canvas").first.bounding_box()
    # The drawing area is the square in the middle of the (wider) canvas element.
    side = min(box["width"], box["height"])
    x0, y0 = box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2
    xs = [(x0 + fx * side, y0 + fy * side) for fx, fy in points]
    page.mouse.move(*xs[0])
    page.mouse.down()
    for a, b in zip(xs, xs[1:], strict=False):
        for k in range(1, 9):  # intermediate moves, as a hand would make
            page.mouse.move(a[0] + (b[0] - a[0]) * k / 8, a[1] + (b[1] - a[1]) * k / 8)
    page.mouse.up()


def pick_colour(page, index: int) -> None:
    page.get_by_role("button", name="Color").first.click()
    page.locator("#ss-canvas button.color:not(.colorpicker)").nth(index).click()
    page.keyboard.press("Escape")


def test_paint_strokes_and_generate(page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "studio-empty.png")
    page.get_by_role("button", name="Brush").first.click()
    pick_colour(page, 4)  # yellow face
    for y in (0.3, 0.4, 0.5, 0.6, 0.7):
        stroke(page, [(0.25, y), (0.75, y)])
    pick_colour(page, 0)  # dark eyes and mouth
    stroke(page, [(0.38, 0.4), (0.4, 0.42)])
    stroke(page, [(0.6, 0.4), (0.62, 0.42)])
    stroke(page, [(0.35, 0.58), (0.5, 0.64), (0.65, 0.58)])
    page.screenshot(path=ARTIFACTS / "studio-painted.png")

    page.get_by_role("button", name="Generate").click()
    status = page.locator("#ss-status")
    status.get_by_text(re.compile(r"Done: \d+x\d+ PNG")).wait_for(timeout=240_000)
    assert "step" in page.locator(".ss-progress").inner_text()
    bar = page.locator(".ss-progress[role=progressbar]")  # a screen reader's progress bar, at its end (it was plain text)
    assert bar.get_attribute("aria-valuenow") == bar.get_attribute("aria-valuemax") and "done" in bar.get_attribute("aria-label")
    src = page.locator("#ss-output img").first.get_attribute("src")
    assert src and ("/file=" in src or "gradio_api" in src or src.startswith("data:"))
    page.screenshot(path=ARTIFACTS / "studio-result.png", full_page=True)
    files = page.locator("#ss-files").inner_text()
    assert re.search(r"sdedit-seed\d+-\w+\s*\.png", files) and re.search(r"sdedit-seed\d+-\w+\s*\.json", files)


def test_downloaded_result_replays_from_the_command_line(page, tmp_path, capsys):
    """Generate from an example, download what the page offers (result, recipe, guide) and replay it."""
    from editing.cli import main

    page.locator("#ss-examples button.thumbnail-item").first.click()
    page.wait_for_timeout(1000)
    page.get_by_role("tab", name="Stroke → image").click()
    hrefs = "els => els.map(e => e.getAttribute('href'))"
    # The earlier test's files are still listed, and while this run is pending the list wears a loading
    # overlay over them (its text changes before the new files arrive): wait for this run's own links.
    before = page.eval_on_selector_all("#ss-files a", hrefs)
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function("""b => { const h = [...document.querySelectorAll('#ss-files a')].map(e => e.getAttribute('href'));
                                     return h.length && h.every(x => !b.includes(x)) && h.some(x => x.endsWith('.json'))
                                            && h.some(x => x.endsWith('-guide.png')); }""",
                           arg=before, timeout=240_000)  # fmt: skip
    names = []
    for href in page.eval_on_selector_all("#ss-files a", hrefs):  # one read of the list, not one per link
        name = href.rsplit("/", 1)[-1]
        (tmp_path / name).write_bytes(page.request.get(href).body())
        names.append(name)
    recipe = next((n for n in names if n.endswith(".json")), None)
    assert recipe is not None, names
    assert any(n.endswith("-guide.png") for n in names), names
    assert main(["replay", str(tmp_path / recipe), "--quiet"]) == 0
    assert "identical" in capsys.readouterr().out


def _listed_recipe(page) -> dict:
    import json

    href = next(h for h in page.eval_on_selector_all("#ss-files a", "els => els.map(e => e.getAttribute('href'))") if h.endswith(".json"))
    return json.loads(page.request.get(href).body())


def test_mask_layer_limits_a_stroke_edit(page):
    """The second layer ("mask") is what ui/canvas.py reads as the edit mask: paint it, run Stroke edit.
    It edits the last result, put on the canvas by "Edit this result": the edit's guide is that result."""
    last = _listed_recipe(page)["output"]["sha256"]
    page.locator("#ss-again").click()
    page.locator("#ss-status").get_by_text("The result is now the canvas").wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Show Layers").click()
    page.locator("#ss-canvas").get_by_text("mask", exact=True).click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Brush").first.click()
    stroke(page, [(0.3, 0.35), (0.45, 0.35)])
    page.get_by_role("tab", name="Stroke edit").click()
    page.get_by_role("button", name="Edit inside mask").click()
    # The masked mode names its files sdedit-masked-*; without a mask it would refuse to run.
    page.locator("#ss-files").get_by_text(re.compile(r"sdedit-masked-seed\d+")).first.wait_for(timeout=240_000)
    page.screenshot(path=ARTIFACTS / "studio-stroke-edit.png", full_page=True)
    assert _listed_recipe(page)["inputs"]["guide"]["sha256"] == last  # the mask's own layer adds no colour


def _points_of_colour(png: bytes, colour: str, skip_top: int = 50) -> int:
    """How many pixels of a plot's screenshot, below its title, have the hue of a #rrggbb colour (the plot
    draws its points see-through, so their pixels are that colour paled towards the white behind them)."""
    import io

    import numpy as np
    from PIL import Image

    hsv = np.asarray(Image.open(io.BytesIO(png)).convert("RGB").convert("HSV")).astype(int)[skip_top:]
    (target, _, _), *_ = np.asarray(Image.new("RGB", (1, 1), colour).convert("HSV")).astype(int).reshape(1, 3)
    hue_gap = np.abs(hsv[..., 0] - target)
    return int(((np.minimum(hue_gap, 256 - hue_gap) <= 8) & (hsv[..., 1] >= 60)).sum())


def test_compare_tab_sweeps_and_plots(page):
    page.locator("#ss-examples button.thumbnail-item").first.click()  # a fresh guide: the first example painting
    page.wait_for_timeout(1000)
    page.get_by_role("tab", name="Compare").click()
    # the example says what it shows in Compare's prompts too (the apple was swept towards "a smiling face emoji")
    assert page.get_by_label("Prompt (SDEdit)").input_value() == "red apple"
    assert page.get_by_label("Source prompt (inversion)").input_value() == "red apple"
    page.get_by_role("button", name="Run sweep").click()
    page.locator("#ss-status").get_by_text(re.compile(r"Done: \d+ results")).wait_for(timeout=300_000)
    page.wait_for_timeout(1000)
    # every seed's points are drawn, in its colour (the last seed's were once dropped when the sweep ended)
    plot = page.locator("#ss-plot").screenshot(path=ARTIFACTS / "studio-compare-plot.png")
    for colour in SEED_COLOURS[:2]:  # the tab's default: two seeds
        assert _points_of_colour(plot, colour) >= 50, f"no points of colour {colour} on the plot"
    page.locator("#ss-sweep button.thumbnail-item").nth(2).click()  # opens it, with its files to download
    page.locator("#ss-selected-files").get_by_text(re.compile(r"sdedit-sweep-seed\d+-\w+\s*\.json")).wait_for(timeout=30_000)
    page.screenshot(path=ARTIFACTS / "studio-compare.png", full_page=True)


def test_colour_edit_recolours_the_painted_region(page):
    """Load the heart example as the photo, paint blue over it on the strokes layer, Recolour."""
    page.locator("#ss-examples button.thumbnail-item").nth(1).click()  # heart.png
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Show Layers").click()
    page.locator("#ss-canvas").get_by_text("strokes", exact=True).click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Brush").first.click()
    pick_colour(page, 6)  # blue
    for y in (0.35, 0.45, 0.55, 0.65):
        stroke(page, [(0.3, y), (0.7, y)])
    page.get_by_role("tab", name="Colour edit").click()
    page.get_by_label("Prompt (what the picture shows)").last.fill("red heart, twemoji style")
    page.get_by_role("button", name="Recolour").click()
    page.locator("#ss-files").get_by_text(re.compile(r"color-seed\d+")).first.wait_for(timeout=240_000)
    page.screenshot(path=ARTIFACTS / "studio-colour-edit.png", full_page=True)
    page.get_by_text("Advanced").last.click()
    noise = page.get_by_label("noise maps (authors' code)")
    noise.check()
    assert noise.is_checked() and page.get_by_label("α").first.is_visible()
    page.screenshot(path=ARTIFACTS / "studio-colour-advanced.png", full_page=True)


def test_imagic_preset_sets_its_sliders(page):
    """Choosing the paper preset shows (and so runs) the paper's step counts and guidance, not the fast ones."""
    from editing.interface import ImagicConfig

    page.get_by_role("tab", name="Imagic").click()
    page.get_by_text("Advanced").last.click()
    steps = page.get_by_label("number input for Embedding steps (stage 1)")
    fast, paper = ImagicConfig.from_preset("fast"), ImagicConfig.from_preset("paper")
    assert float(steps.input_value()) == fast.embedding_steps
    shows = "v => document.querySelector('input[aria-label=\"number input for Embedding steps (stage 1)\"]').value == v"
    page.get_by_label("paper", exact=True).check()
    page.wait_for_function(shows, arg=str(paper.embedding_steps), timeout=10_000)
    assert float(page.get_by_label("number input for Fine-tuning steps (stage 2)").input_value()) == paper.finetune_steps
    assert float(page.get_by_label("number input for Guidance").last.input_value()) == paper.guidance_scale
    page.get_by_label("fast", exact=True).check()
    page.wait_for_function(shows, arg=str(fast.embedding_steps), timeout=10_000)


def test_text_edit_skip_keeps_its_share_of_the_steps(page):
    """Doubling the inversion's steps doubles T_skip (same noise level at the edit's start); a value
    the user types is kept as its share of the schedule when the steps change again."""
    page.get_by_role("tab", name="Text edit").click()
    page.get_by_text("Inversion settings").locator("visible=true").first.click()
    skip = page.locator("input[aria-label='number input for T_skip']").locator("visible=true").first
    steps = page.locator("input[aria-label='number input for Steps']").locator("visible=true").first
    skip.wait_for(timeout=10_000)
    n0, s0 = int(float(steps.input_value())), int(float(skip.input_value()))

    def settle(value: int) -> None:
        page.wait_for_function("([el, v]) => el.value == v", arg=[skip.element_handle(), str(value)], timeout=10_000)

    steps.fill(str(2 * n0))
    steps.press("Enter")
    settle(2 * s0)
    skip.fill("30")
    skip.press("Enter")
    page.wait_for_timeout(300)
    steps.fill(str(n0))
    steps.press("Enter")
    settle(int(30 * n0 / (2 * n0) + 0.5))
    steps.fill("10")
    steps.press("Enter")
    settle(min(int(30 * 10 / (2 * n0) + 0.5), 9))
    steps.fill(str(n0))  # leave the tab as it was for the other tests
    steps.press("Enter")


def test_on_a_phone_an_example_fills_its_prompts_and_generate_brings_the_result_into_view(page, studio_url):
    """A phone's single column puts Generate about 750 px below the Result, which streamed off-screen; an
    example left the prompt at "a smiling face emoji" (the apple was drawn towards a smiley); the status line
    was not a live region, so a screen reader never said "Done"; the rows kept two controls side by side."""
    phone = page.context.browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        page = phone.new_page()  # the module's browser (one Playwright per process), a phone's context
        page.goto(studio_url)
        page.locator("#ss-examples button.thumbnail-item").first.wait_for(timeout=60_000)
        status = page.locator("#ss-status")
        page.wait_for_function("() => document.getElementById('ss-status')?.getAttribute('aria-live') === 'polite'", timeout=10_000)
        assert status.get_attribute("role") == "status"
        # each control on a line of its own: the prompt sat in half the width beside its t0 slider, and the
        # examples strip beside "New blank canvas" showed two of its pictures
        assert page.locator("#ss-examples").bounding_box()["width"] > 0.8 * 390
        page.locator("#ss-examples button.thumbnail-item").first.click()  # apple.png, the first stroke painting
        prompt = page.get_by_label("Prompt").first
        prompt.and_(page.locator("textarea, input")).first.wait_for()
        box, t0 = prompt.bounding_box(), page.locator("input[type=range]").first.bounding_box()
        assert box["width"] > 0.7 * 390 and t0["y"] >= box["y"] + box["height"]  # it had half the width, t0 beside it
        page.wait_for_function("(el) => el.value === 'red apple'", arg=prompt.element_handle(), timeout=10_000)
        generate = page.get_by_role("button", name="Generate")
        generate.scroll_into_view_if_needed()
        assert page.locator("#ss-output").bounding_box()["y"] < -200  # the Result is far above
        generate.click()
        page.wait_for_function("() => Math.abs(document.getElementById('ss-output').getBoundingClientRect().top) < 50", timeout=5_000)
        status.filter(has_text="Done").wait_for(timeout=120_000)
    finally:
        phone.close()


def test_edit_this_result_with_no_result_is_a_toast_that_leaves_the_status_alone(page, studio_url):
    """Raised, the refusal made Gradio write "Error" into the status line (a live region, read out later)."""
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    fresh = context.new_page()
    try:
        fresh.goto(studio_url)
        fresh.get_by_role("button", name="Generate").wait_for(timeout=60_000)
        before = fresh.locator("#ss-status").inner_text()
        fresh.locator("#ss-again").click()
        fresh.locator(".toast-body").filter(has_text="No finished result yet").wait_for(timeout=10_000)
        fresh.wait_for_timeout(500)
        assert fresh.locator("#ss-status").inner_text() == before and "Error" not in fresh.locator("#ss-status").inner_text()
    finally:
        context.close()


def test_stop_says_stopped_and_a_reload_brings_back_the_last_runs_canvas_and_prompt(page, studio_url):
    """Gradio counted a stopped run as failed, and the status said "Failed" over Stop's "Stopped". A reload (which
    Gradio makes itself when its connection comes back after a drop) lost the canvas and the prompts."""
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})  # its own localStorage
    fresh = context.new_page()
    fresh.on("dialog", lambda d: d.accept())  # "Leave site?": a result is on the page
    try:
        fresh.goto(studio_url)
        # the examples have names (a screen reader said "Thumbnail 3 of 6")
        fresh.locator("#ss-examples img[alt='smiley']").wait_for(timeout=60_000)
        fresh.locator("#ss-examples button.thumbnail-item").nth(2).click()  # the smiley
        prompt = fresh.get_by_label("Prompt").first
        fresh.wait_for_function("(el) => el.value !== 'a smiling face emoji'", arg=prompt.element_handle(), timeout=10_000)
        prompt.fill("my own words")
        fresh.get_by_text("Advanced").locator("visible=true").first.click()
        steps = fresh.locator("input[aria-label='number input for Steps']").locator("visible=true").first
        steps.fill("500")
        steps.press("Enter")
        status = fresh.locator("#ss-status")
        fresh.get_by_role("button", name="Generate").click()
        status.get_by_text("Running").wait_for(timeout=60_000)
        fresh.get_by_role("button", name="■ Stop").click()
        status.get_by_text("Stopped").wait_for(timeout=10_000)
        fresh.wait_for_timeout(1500)  # Gradio's failure event for the cancelled run comes after Stop's own
        assert status.inner_text().startswith("Stopped") and "Failed" not in status.inner_text()
        shown = fresh.locator("#ss-canvas canvas").first.screenshot()
        fresh.reload()
        status.get_by_text("canvas and prompts are back").wait_for(timeout=60_000)
        fresh.wait_for_function("(el) => el.value === 'my own words'", arg=fresh.get_by_label("Prompt").first.element_handle(),
                                timeout=10_000)  # fmt: skip
        fresh.wait_for_timeout(1000)
        from io import BytesIO

        import numpy as np
        from PIL import Image

        before, after = (np.asarray(Image.open(BytesIO(b)).convert("RGB"), np.int16)
                         for b in (shown, fresh.locator("#ss-canvas canvas").first.screenshot()))  # fmt: skip
        assert before.shape == after.shape and np.abs(before - after).mean() < 8  # the smiley, not a blank page
        assert (after < 200).any(axis=-1).mean() > 0.05
        fresh.get_by_role("button", name="New blank canvas").click()
        fresh.wait_for_timeout(1000)
        fresh.reload()
        fresh.get_by_role("button", name="Generate").wait_for(timeout=60_000)
        fresh.wait_for_timeout(2000)
        assert "are back" not in status.inner_text()
    finally:
        context.close()
