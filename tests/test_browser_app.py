"""Real browser (Debian's chromium through Playwright) over every page of the app, in one browser session.

Each test opens its page from the sidebar, checks that what should be drawn is drawn, does the page's own
interaction (a slider moved with the keyboard, a stroke on the drawing canvas, a GIF downloaded at a chosen size,
Generate's 4x canvas, Reconstruct's noise in z toggled to all steps, an evaluation; scrubbing the step-through
timelines is tests/test_browser_scrub.py's), fails on any Streamlit
exception box or error alert, and saves a screenshot of the whole page to artifacts/screenshots/app/ (git-ignored):
look at them after a change to a page. Presentation mode is opened
at 1280 x 720, where each page's main view must show without scrolling (screenshots of the window).
Every request any page makes is recorded, and the last test fails if one left the loopback address: the app
must work in an offline classroom and tell no one outside what students do.

The server runs over a temporary runs folder with two tiny checkpoints (attention and no attention) and over the
shipped checkpoints when checkpoints/ has some (the app then opens with the shipped model). Home's lesson plan must
link the pages in app_common.LESSON's order. "Why not an autoencoder?" needs the shipped mnist-ae: without it only
the page's message saying how to train it is checked, and the test is skipped with that reason.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from app_support import SHIPPED, TINY, tiny_checkpoint
from browser_support import (
    CHROMIUM,
    HANG_GUARD_S,
    SCREENSHOTS,
    assert_clean,
    key_to_picture_ms,
    poll,
    record_outside_requests,
    screenshot,
    settle,
    streamlit_app,
)
from PIL import Image

import app_common
from draw_core.config import DrawConfig
from draw_core.present.render import label_height

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (Debian package chromium)"),
]

SHOTS = SCREENSHOTS / "app"
VIEWPORT = {"width": 1400, "height": 1000}
PROJECTOR = {"width": 1280, "height": 720}
OUTSIDE: list[str] = []  # every request a page of this module made that left the loopback address
LATENCY = SCREENSHOTS.parent / "latency" / "latent.json"  # key press -> redrawn digit, measured in the browser

# A chart's title without the <b> Streamlit wraps it in.
TITLE = "(div => (div.layout?.title?.text || '').replace(/<\\/?b>/g, ''))"
# A Plotly trace's values as JSON rows, read from _fullData, where Plotly has decoded the base64 arrays of the spec.
ROWS = "(z => z ? JSON.stringify(Array.from(z, row => row?.length !== undefined ? Array.from(row) : row)) : null)"
# Title, layout shapes, and per-trace name, x and values of the Plotly chart whose title contains the argument (an
# attention window is a layout shape or a scatter trace), read from the div Plotly draws into; null when no chart
# has such a title.
CHART = """(title) => {
    for (const div of document.querySelectorAll('.js-plotly-plot')) {
        const text = TITLE(div);
        if (text.includes(title)) {
            return {
                title: text,
                shapes: JSON.stringify((div.layout.shapes || []).map(s => [s.x0, s.y0, s.x1, s.y1])),
                traces: (div._fullData || []).map(t => ({name: t.name || null, x: ROWS(t.x), z: ROWS(t.z)})),
            };
        }
    }
    return null;
}""".replace("ROWS", ROWS).replace("TITLE", TITLE)
# The colours of the first trace's colour scale as the browser computes them ("rgb(r, g, b)"): Plotly.js falls back
# to its own default scale for names it doesn't know, so what the figure asked for is not enough.
COLOURS = """(title) => {
    const div = Array.from(document.querySelectorAll('.js-plotly-plot')).find(d => TITLE(d).includes(title));
    const probe = document.createElement('span');
    document.body.appendChild(probe);
    const colours = (div?._fullData[0].colorscale || []).map(([, colour]) => {
        probe.style.color = colour;
        return getComputedStyle(probe).color;
    });
    probe.remove();
    return colours;
}""".replace("TITLE", TITLE)
# The picture of the input x in the Reconstruct timeline (a data: URL), or null before it is drawn.
INPUT_PICTURE = """() => {
    const div = document.querySelector('.st-key-reconstruct_timeline .js-plotly-plot');
    return div?.layout?.images?.find(image => (image.name || '').startsWith('input x'))?.source ?? null;
}"""
# The KL per step bars of the Latent explorer (its chart has no title: the element's key names it).
KL_BARS = """() => {
    const div = document.querySelector('.st-key-latent_kl_chart .js-plotly-plot');
    return div?._fullData?.[0]?.y ? Array.from(div._fullData[0].y) : null;
}"""
# Where the drawn Plotly chart of the element with the key given is in the window (CSS pixels), or null.
BOX = """(key) => {
    const div = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    if (!div?.querySelector('.main-svg')) return null;
    const r = div.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width};
}"""
CHART_TITLES = f"() => Array.from(document.querySelectorAll('.js-plotly-plot')).map({TITLE})"
# The drawn Plotly chart of the element with the key given: its title, its traces' names and y values, and its layout
# images (a picture_figure is one PNG layout image: source, and its size in image pixels); null before it is drawn.
KEYED = """(key) => {
    const div = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    if (!div?.querySelector('.main-svg')) return null;
    return {
        title: TITLE(div),
        traces: (div._fullData || []).map(t => ({name: t.name || null, y: t.y ? Array.from(t.y) : null, z: ROWS(t.z)})),
        images: (div.layout.images || []).map(i => ({source: i.source, sizex: i.sizex, sizey: i.sizey})),
    };
}""".replace("ROWS", ROWS).replace("TITLE", TITLE)
# Label and address of every page link in the main area (Home's lesson plan), in the order shown.
PAGE_LINKS = """() => Array.from(document.querySelectorAll("[data-testid='stMain'] [data-testid='stPageLink-NavLink']"))
    .map(a => ({label: a.innerText, href: a.getAttribute('href')}))"""
AUTOENCODER = SHIPPED / "mnist-ae.safetensors"  # shipped last: until then its page only says how to get it


@pytest.fixture(scope="module")
def app(browser, tmp_path_factory):
    """One server and one browser tab shared by the page tests, like a user clicking through the sidebar."""
    folder = tmp_path_factory.mktemp("browser-app")
    runs, no_shipped = folder / "runs", folder / "no-shipped"
    runs.mkdir()
    no_shipped.mkdir()
    older = tiny_checkpoint(
        runs, "tiny-noattn", DrawConfig(**{**TINY.to_dict(), "read_attn": False, "write_attn": False})
    )
    os.utime(older, (1, 1))  # the runs list is newest first: the attention model is the default without shipped ones
    tiny_checkpoint(runs, "tiny", TINY)
    shipped = SHIPPED if any(SHIPPED.glob("*.safetensors")) else no_shipped
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    print(f"\nscreenshots: {SHOTS}")
    with streamlit_app(runs=runs, shipped=shipped, log=folder / "streamlit.log") as url:
        page = new_page(browser, VIEWPORT)
        script_errors = []
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        page.goto(url)
        settle(page)
        yield page, script_errors, url
        page.close()


def new_page(browser, viewport: dict):
    """A browser tab whose requests beyond the loopback address are recorded in OUTSIDE."""
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(HANG_GUARD_S * 1000)
    record_outside_requests(page, OUTSIDE)
    return page


def open_page(app, title: str, heading: str):
    """Click `title` in the sidebar's navigation and wait for the page to finish running."""
    page, script_errors, _ = app
    page.get_by_test_id("stSidebarNavLink").filter(has=page.get_by_text(title, exact=True)).click()
    settle(page)
    page.get_by_role("heading", name=heading).first.wait_for()
    picker = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Checkpoint")
    assert picker.count() == 1, f"{title}: the sidebar has no checkpoint picker (every page shares it)"
    assert_clean(page, title)
    assert not script_errors, f"JavaScript errors so far: {script_errors}"
    return page


def charts_drawn(page, at_least: int) -> int:
    """Wait until at least `at_least` Plotly charts have drawn their SVG; returns how many there are."""
    probe = "() => document.querySelectorAll('.js-plotly-plot .main-svg').length && "
    probe += "document.querySelectorAll('.js-plotly-plot').length"
    return poll(
        f"{at_least} Plotly charts", lambda: (n := page.evaluate(probe)) >= at_least and n, page, SHOTS / "charts.png"
    )


def slider_thumb(page, label: str):
    """The thumb of the first slider whose label contains `label`: Streamlit's slider thumb is an (invisible)
    <input type=range> that takes the keyboard."""
    return page.get_by_test_id("stSlider").filter(has_text=label).first.get_by_role("slider")


def press_on_slider(page, label: str, key: str, times: int = 1) -> tuple[float, float]:
    """Focus the slider's thumb and press `key`; returns its value before and after the rerun."""
    thumb = slider_thumb(page, label)
    before = float(thumb.input_value())
    thumb.focus()
    for _ in range(times):
        thumb.press(key)
    settle(page)
    return before, float(slider_thumb(page, label).input_value())


def chart(page, title: str) -> dict:
    found = page.evaluate(CHART, title)
    assert found is not None, f"no chart titled '...{title}...'; titles: {page.evaluate(CHART_TITLES)}"
    return found


def assert_grey(page, title: str) -> None:
    """The image chart titled '...title...' is drawn black to white, like MNIST."""
    colours = page.evaluate(COLOURS, title)
    channels = [tuple(int(v) for v in colour.removeprefix("rgb(").removesuffix(")").split(",")) for colour in colours]
    assert channels and channels[0] == (0, 0, 0) and channels[-1] == (255, 255, 255), f"'{title}': {colours}"
    assert all(r == g == b for r, g, b in channels), f"'{title}' is not drawn in grey: {colours}"


def keyed(page, key: str) -> dict:
    """KEYED of the chart under `key`, once it is drawn."""
    return poll(f"the chart {key}", lambda: page.evaluate(KEYED, key), page, SHOTS / f"no-{key}.png")


def picture(source: str) -> np.ndarray:
    """The pixels of a layout image's PNG (a data: URL), grey levels 0-255."""
    assert source and source.startswith("data:image/png;base64,"), source and source[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("L"))


def test_home_shows_the_lesson_plan_and_the_model_card(app):
    page = open_page(app, "Home", "DRAW Studio")
    page.get_by_role("heading", name="The lesson, page by page").wait_for()
    links = page.evaluate(PAGE_LINKS)
    lesson = app_common.LESSON[1:]  # Home itself is not in its plan
    assert [link["label"].strip().split("\n")[-1] for link in links] == [
        f"{number}. {title}" for number, (_, title, _, _) in enumerate(lesson, start=1)
    ], links
    assert [link["href"].rsplit("/", 1)[-1] for link in links] == [file.removesuffix(".py") for file, *_ in lesson]
    text = page.get_by_test_id("stMain").inner_text()
    where = [text.find(sees[:40]) for *_, sees in lesson]  # each link's sentence of what a student sees there
    assert -1 not in where and where == sorted(where), f"the lesson's sentences, missing or out of order: {where}"
    page.get_by_role("heading", name="Model card").wait_for()
    bound = page.get_by_test_id("stMetric").filter(has_text="Test bound").get_by_test_id("stMetricValue")
    assert bound.inner_text().endswith(" nats"), bound.inner_text()  # the model card has one (shipped or tiny)
    page.get_by_role("heading", name="Config").wait_for()
    screenshot(page, SHOTS / "1-home.png")
    page.get_by_test_id("stMain").get_by_role("link", name="Reparameterization").click()  # a link opens its page
    settle(page)
    page.get_by_role("heading", name="Reparameterization").first.wait_for()
    assert page.url.endswith("/reparameterization"), page.url
    assert_clean(page, "Reparameterization opened from Home's lesson plan")


def timeline_drawn(page, key: str) -> None:
    """Wait until the step-through timeline under chart key `key` has drawn (tests/test_browser_scrub.py scrubs it)."""
    page.locator(f".st-key-{key} .js-plotly-plot .main-svg").first.wait_for()


def test_generate_draws_its_timeline_a_gif_of_the_chosen_size_and_a_4x_canvas(app):
    page = open_page(app, "Generate", "Generate")
    timeline_drawn(page, "generate_timeline")
    T = int(slider_thumb(page, "Step t").get_attribute("max"))
    screenshot(page, SHOTS / "2-generate.png")
    thumb = slider_thumb(page, "GIF size")
    thumb.focus()
    thumb.press("End")  # the largest: 16 x the image
    settle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Sample's generation (GIF)").click()
    gif = Image.open(download.value.path())
    side = 16 * 28
    assert gif.size == (side, side + label_height(side)), "the GIF is not 16 x the image with the step under it"
    assert gif.n_frames == T
    assert_clean(page, "Generate after the GIF")

    assert page.locator(".st-key-generate_canvas_large").count() == 0, "a larger canvas before any was picked"
    page.locator(".st-key-generate_canvas").get_by_text("(4×)").click()
    settle(page)
    own, large = keyed(page, "generate_canvas_own"), keyed(page, "generate_canvas_large")
    (own_image,), (large_image,) = own["images"], large["images"]
    side = own_image["sizex"]  # the model's canvas, in its pixels
    assert (large_image["sizex"], large_image["sizey"]) == (4 * side, 4 * own_image["sizey"]), large_image
    assert large["title"] == f"same z on {4 * side}×{4 * own_image['sizey']}", large["title"]
    drawn = picture(large_image["source"])
    assert drawn.shape[1] % (4 * side) == 0, f"the picture's {drawn.shape[1]} px are not whole canvas pixels"
    assert 0 < (drawn > 128).mean() < 0.5, "the larger canvas should be a stroke on black"
    page.get_by_text("Averaged over 4×4 blocks").wait_for()
    assert_clean(page, "Generate on the 4× canvas")
    screenshot(page, SHOTS / "2-generate-canvas-4x.png")


def test_a_seed_set_on_generate_is_still_there_after_another_page(app):
    """The sidebar's page switch drops the URL's parameters, so only the session can bring the seed back."""
    page = open_page(app, "Generate", "Generate")
    seed = page.get_by_label("Seed")
    for value, via, heading in (("11", "Home", "DRAW Studio"), ("0", "Attention lab", "Attention lab")):
        seed.fill(value)  # the second trip ends on the seed the other tests expect
        seed.press("Enter")
        settle(page)
        open_page(app, via, heading)
        open_page(app, "Generate", "Generate")
        assert seed.input_value() == value, f"the seed came back from {via} as {seed.input_value()}, not {value}"


def test_a_shared_generate_url_opens_that_view(app, browser):
    """A second user opens the URL a teacher copied: same checkpoint, seed, step and sample."""
    url = app[2]
    page = new_page(browser, VIEWPORT)
    page.goto(f"{url}/generate?checkpoint=run%2Ftiny-noattn&seed=5&step=2&sample=3")
    settle(page)
    page.get_by_role("heading", name="Generate").wait_for()
    timeline_drawn(page, "generate_timeline")
    assert_clean(page, "the shared Generate URL")
    assert page.get_by_role("combobox", name="Checkpoint").input_value().startswith("tiny-noattn (run)")
    assert page.get_by_label("Seed").input_value() == "5"
    assert slider_thumb(page, "Step t").input_value() == "2"
    assert page.get_by_role("combobox", name="Sample").input_value() == "#4"
    page.close()


def ink(page) -> int:
    """Bright pixels of the picture the Reconstruct timeline shows as the input x (a PNG in its layout images)."""
    return int((picture(page.evaluate(INPUT_PICTURE)) > 128).sum())


def test_reconstruct_a_test_digit_its_noise_in_z_then_a_drawn_stroke(app):
    page = open_page(app, "Reconstruct", "Reconstruct")
    timeline_drawn(page, "reconstruct_timeline")
    digit = page.evaluate(INPUT_PICTURE)
    assert ink(page) > 0
    screenshot(page, SHOTS / "3-reconstruct-test-digit.png")

    page.get_by_role("heading", name="Noise in z").wait_for()
    draws = keyed(page, "reconstruct_noise_samples")
    assert draws["title"] == "8 draws of z ~ Q(z|x)", draws["title"]
    assert (picture(draws["images"][0]["source"]) > 128).any(), "the draws are blank"
    spread = np.array(json.loads(keyed(page, "reconstruct_noise_spread")["traces"][0]["z"]), dtype=float)
    assert np.nanmax(spread) > 0, "the 8 draws of z should not all draw the same picture"
    assert (picture(keyed(page, "reconstruct_noise_mean")["images"][0]["source"]) > 128).any(), "z = μ is blank"
    sigma = keyed(page, "reconstruct_noise_sigma")
    step = slider_thumb(page, "Step t").input_value()
    assert sigma["title"].startswith(f"posterior σ per dimension at t = {step} "), sigma["title"]
    bars = sigma["traces"][0]["y"]
    assert sigma["traces"][0]["name"] == "posterior σ" and all(0 < b < 2 for b in bars), sigma["traces"][0]
    page.get_by_text("σ averaged over all steps").click()
    settle(page)
    averaged = poll(
        "the σ bars averaged over all steps",
        lambda: (chart := page.evaluate(KEYED, "reconstruct_noise_sigma")) and "all steps" in chart["title"] and chart,
    )
    assert len(averaged["traces"][0]["y"]) == len(bars) and averaged["traces"][0]["y"] != bars
    assert_clean(page, "Reconstruct's noise in z")
    screenshot(page, SHOTS / "3-reconstruct-noise-in-z.png")

    page.get_by_test_id("stButtonGroup").get_by_text("Draw", exact=True).click()
    settle(page)
    page.get_by_text("Draw a digit with the mouse").wait_for()
    # streamlit-drawable-canvas 0.13 is a bidirectional (v2) component: no iframe, its fabric.js canvases are in the
    # page itself (Playwright's selectors pierce shadow roots); the top one takes the strokes.
    canvas = page.locator(".stBidiComponent canvas.upper-canvas")
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 200, f"the drawing canvas is not shown properly: {box}"
    x = box["x"] + box["width"] * 0.5
    page.mouse.move(x - box["width"] * 0.15, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(x + box["width"] * 0.15, box["y"] + box["height"] * 0.2, steps=8)  # a 7: the bar,
    page.mouse.move(x - box["width"] * 0.05, box["y"] + box["height"] * 0.85, steps=12)  # then the stem
    page.mouse.up()
    poll(
        "the drawing to reach the model",
        lambda: (source := page.evaluate(INPUT_PICTURE)) and source != digit,
        page,
        SHOTS / "3-no-drawing.png",
    )
    settle(page)
    assert 10 < ink(page), "the stroke should be some ink on black"
    assert_clean(page, "Reconstruct after drawing")
    screenshot(page, SHOTS / "3-reconstruct-drawn.png")


def test_latent_opens_where_the_kl_is_and_its_sliders_show_the_drawn_z(app):
    page = open_page(app, "Latent explorer", "Latent explorer")
    charts_drawn(page, 5)
    bars = poll("the KL per step bars", lambda: page.evaluate(KL_BARS))
    assert int(slider_thumb(page, "Step t").input_value()) == bars.index(max(bars)) + 1, "not on the busiest step"
    first = chart(page, "drawn from this z")["traces"][0]["z"]
    assert_grey(page, "drawn from this z")
    # the first z slider is the dimension that spends the most at this step; its label names it and its nats
    label = page.get_by_test_id("stSlider").filter(has_text="nats").first.get_by_test_id("stWidgetLabel").inner_text()
    seed_value = float(slider_thumb(page, label).input_value())
    key, sign = ("ArrowRight", 1) if seed_value < 3.5 else ("ArrowLeft", -1)
    waits = [key_to_picture_ms(page, slider_thumb(page, label), key, "drawn from this z") for _ in range(5)]
    settle(page)
    assert float(slider_thumb(page, label).input_value()) == pytest.approx(seed_value + sign * 0.25)
    assert chart(page, "drawn from this z")["traces"][0]["z"] != first
    LATENCY.parent.mkdir(parents=True, exist_ok=True)
    LATENCY.write_text(json.dumps({"latent_key_press_to_redrawn_digit_ms": waits}))
    print(f"\nLatent explorer, key press -> redrawn digit: {[round(w) for w in waits]} ms")

    page.get_by_role("button", name="Reset to the seed's z").click()
    settle(page)
    assert float(slider_thumb(page, label).input_value()) == pytest.approx(seed_value), "Reset left the thumb"
    assert poll("the seed's digit again", lambda: chart(page, "drawn from this z")["traces"][0]["z"] == first)

    page.get_by_role("button", name="Randomise z").click()
    settle(page)
    assert float(slider_thumb(page, label).input_value()) != pytest.approx(seed_value), "Randomise left the thumb"
    assert chart(page, "drawn from this z")["traces"][0]["z"] != first

    bar = page.locator(".st-key-latent_kl_chart .js-plotly-plot .bars .point path").nth(2)  # the bar of t = 3
    bar.click(force=True)  # Plotly takes clicks through the drag layer over its bars
    settle(page)
    poll("the step to follow the clicked bar", lambda: slider_thumb(page, "Step t").input_value() == "3")
    page.get_by_text("z at step t=3").wait_for()
    assert_clean(page, "Latent explorer after the sliders")
    screenshot(page, SHOTS / "4-latent.png")


def test_attention_lab_slider_moves_the_window(app):
    page = open_page(app, "Attention lab", "Attention lab")
    charts_drawn(page, 5)
    assert page.locator(".katex").count() >= 9, "the equations are not typeset"
    first = chart(page, "and the window")  # the window is a layout shape or a trace (drawn clipped past the image)
    step = float(slider_thumb(page, "g_X").get_attribute("step"))
    start = float(slider_thumb(page, "g_X").input_value())
    for _ in range(4):  # one at a time: the lab writes its sliders' state back every run, which can undo a press
        press_on_slider(page, "g_X", "ArrowRight")  # made while a rerun is under way
    assert float(slider_thumb(page, "g_X").input_value()) == pytest.approx(start + 4 * step)
    poll("the window to move", lambda: chart(page, "and the window") != first)
    assert_clean(page, "Attention lab after the slider")
    screenshot(page, SHOTS / "5-attention-lab.png")


def test_evaluate_computes_the_bound(app):
    page = open_page(app, "Evaluate", "Evaluate")
    how_many = page.get_by_label("How many")
    how_many.fill("10")
    how_many.press("Enter")
    settle(page)
    page.locator(".st-key-evaluate_run button").click()
    settle(page)
    table = page.get_by_test_id("stDataFrame")
    table.wait_for()
    charts_drawn(page, 2)
    assert "KL per step" in chart(page, "KL per step")["title"]
    samples = [title for title in page.evaluate(CHART_TITLES) if title.endswith("attention")]
    assert sorted(title.rsplit(": ", 1)[1] for title in samples) == ["attention", "no attention"], samples
    assert_clean(page, "Evaluate after Evaluate")
    screenshot(page, SHOTS / "6-evaluate.png")


def test_train_page_opens_ready_to_start(app):
    page = open_page(app, "Train", "Train")
    page.locator(".st-key-train_start button").wait_for()
    assert page.locator("input[aria-label='Run name']").count() == 1
    screenshot(page, SHOTS / "7-train.png")


PRESENTED = [  # (page path, key of the chart that is the page's main view, its width outside presentation mode)
    ("generate", "generate_timeline", None),
    ("reconstruct", "reconstruct_timeline", None),
    ("latent", "latent_image", 280),
    ("attention_lab", "lab_image", 280),
    ("attention_at_work", "work_timeline", None),
]


def test_presentation_mode_fits_each_main_view_in_1280_by_720(app, browser):
    """?present=1 on a projector's 1280 x 720: no sidebar, the main view's chart inside the window without
    scrolling, figures drawn larger; the exit button brings the sidebar back and drops the flag from the URL."""
    url = app[2]
    page = new_page(browser, PROJECTOR)
    for path, key, width in PRESENTED:
        page.goto(f"{url}/{path}?present=1")
        settle(page)
        page.get_by_role("button", name="Exit presentation").wait_for()
        poll(f"{key} on {path}", lambda key=key: page.evaluate(BOX, key), page, SHOTS / "8-no-chart.png")
        page.wait_for_timeout(500)  # let the other charts finish drawing, for the screenshot and the layout
        box = page.evaluate(BOX, key)
        page.screenshot(path=str(SHOTS / f"8-present-{path}.png"))  # the window: what the projector shows
        assert page.get_by_test_id("stSidebar").is_hidden(), f"{path}: the sidebar is shown"
        assert box["bottom"] <= PROJECTOR["height"] and box["right"] <= PROJECTOR["width"], f"{path}: {box}"
        assert page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollTop") == 0
        if width is not None:
            assert box["width"] >= 1.3 * width, f"{path}: {key} is not drawn larger ({box['width']} px)"
        assert_clean(page, f"{path} in presentation mode")
    page.get_by_role("button", name="Exit presentation").click()
    settle(page)
    assert page.get_by_test_id("stSidebar").is_visible()
    assert "present" not in page.url
    page.close()


def test_why_not_an_autoencoder_shows_both_models(app):
    """With the shipped mnist-ae: the reconstructions, the prior samples of both models, where the codes lie, one
    dimension's histograms (moved with its slider) and KL per step. (Its info message when mnist-ae is missing is
    test_app_why_not_autoencoder's.)"""
    assert AUTOENCODER.exists(), f"{AUTOENCODER} is shipped and must be there"
    page = open_page(app, "Why not an autoencoder?", "Why not a plain autoencoder?")
    charts_drawn(page, 9)
    titles = page.evaluate(CHART_TITLES)
    for title in (
        "mnist (DRAW): z sampled from Q(z | x)",
        "mnist-ae (autoencoder): z = μ",
        "mnist (DRAW): z ~ N(0, I), seed 0",
        "mnist-ae (autoencoder): the same z",
        "Every code dimension (t, d) over the 500 test digits",
        "KL per step, nats (mean over the 500 test digits)",
    ):
        assert title in titles, f"no chart '{title}'; titles: {titles}"
    assert_grey(page, "mnist-ae (autoencoder): the same z")
    page.get_by_test_id("stTable").first.wait_for()
    assert page.locator(".katex").count() >= 4, "the charts' equations are not typeset"
    histogram = keyed(page, "ae_histogram")["title"]
    press_on_slider(page, "Dimension d of z_t", "ArrowRight" if "[0] over" in histogram else "ArrowLeft")
    poll("the histograms of another dimension", lambda: page.evaluate(KEYED, "ae_histogram")["title"] != histogram)
    assert_clean(page, "Why not an autoencoder? after the dimension slider")
    screenshot(page, SHOTS / "9-why-not-autoencoder.png")


def test_reparameterization_shows_reinforce_noisier_and_follows_n(app):
    """The shipped defaults (a Normal, R repeats at n = 10): both charts drawn, REINFORCE's estimates spread wider than
    the reparameterized ones at every n; a key press on n moves the estimates chart to the next n."""
    page = open_page(app, "Reparameterization", "Reparameterization")
    spread = keyed(page, "reparam_spread")
    lines = {trace["name"]: np.array(trace["y"], dtype=float) for trace in spread["traces"]}
    assert {"reparameterization", "REINFORCE", "REINFORCE + baseline"} <= set(lines), list(lines)
    assert (lines["REINFORCE"] > lines["reparameterization"]).all(), lines
    estimates = keyed(page, "reparam_estimates")
    assert estimates["title"].endswith("at n = 10"), estimates["title"]
    assert [trace["name"] for trace in estimates["traces"]][-1] == "exact"
    page.get_by_test_id("stDataFrame").wait_for()
    assert page.locator(".katex").count() >= 3, "the estimators' equations are not typeset"
    press_on_slider(page, "Samples n per estimate", "ArrowRight")
    poll("the estimates at the next n", lambda: page.evaluate(KEYED, "reparam_estimates")["title"].endswith("n = 20"))
    page.get_by_text("REINFORCE is").first.wait_for()
    assert_clean(page, "Reparameterization after n")
    screenshot(page, SHOTS / "10-reparameterization.png")


def test_no_request_left_the_server(app):
    """Every page above, in every tab, and Attention at work (tests/test_browser_scrub_classifier.py drives it): no
    font, icon, script or statistics request went beyond 127.0.0.1."""
    page = open_page(app, "Attention at work", "Attention at work")
    page.wait_for_timeout(1000)  # let its figures and pictures load
    assert not OUTSIDE, "requests left the loopback address:\n" + "\n".join(sorted(set(OUTSIDE)))
