"""Real browser (Debian's chromium through Playwright): the step-through views scrub in the browser.

On Generate and Reconstruct the timeline figure holds every step: keys on its slider (or on the clicked figure), a
click on a bar of the KL chart or a point of the window chart, or Play, move every panel together without a rerun of
the page; when the user stops, one rerun brings the step to the server (its slider and the URL). A window larger
than the image shows in the Attention lab, opened from a model page's link. Screenshots of every view go to
artifacts/screenshots/scrub/ (git-ignored): look at them after a change.

The server runs over the shipped checkpoints (T = 64) when checkpoints/ has them, else over a tiny run.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from app_support import SHIPPED, tiny_checkpoint
from browser_support import (
    CHROMIUM,
    HANG_GUARD_S,
    SCREENSHOTS,
    assert_clean,
    poll,
    screenshot,
    settle,
    streamlit_app,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (Debian package chromium)"),
]

SHOTS = SCREENSHOTS / "scrub"
VIEWPORT = {"width": 1400, "height": 1000}

# Counts the page's reruns: Streamlit marks its app "running" while a script run is under way.
COUNT_RERUNS = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    window.__reruns = 0;
    new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') === 'running') window.__reruns += 1;
    }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
# The timeline figure under a chart key: the step it shows (the component's mark) and the step whose picture its
# first moving panel shows.
SHOWN = """(key) => {
    const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    if (!gd || !gd.layout.meta) return null;
    const steps = gd.layout.meta.timeline.steps;
    const moving = Object.keys(steps[0]).find(k => k.endsWith('.source'));
    const index = Number(moving.match(/images\\[(\\d+)\\]/)[1]);
    return {
        shown: gd.__drawShown ?? null,
        T: steps.length,
        picture: steps.findIndex(step => step[moving] === gd.layout.images[index].source) + 1,
    };
}"""
# Milliseconds from a step's input on the timeline's own slider to the end of the next painted frame, 20 times.
STEP_TIMES = """async () => {
    const host = [...document.querySelectorAll('*')].find(e => e.shadowRoot?.querySelector('.draw-timeline'));
    const slider = host.shadowRoot.querySelector('.draw-timeline input[type=range]');
    const times = [];
    for (let i = 0; i < 20; i++) {
        const start = performance.now();
        slider.value = Number(slider.value) + (i % 2 ? 1 : -1);
        slider.dispatchEvent(new Event('input', {bubbles: true}));
        await new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)));
        times.push(performance.now() - start);
    }
    return times;
}"""
# The screen centre of the tallest bar of the KL chart that is not the current step's, and its step.
TALLEST_BAR = """(key) => {
    const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    const points = [...gd.querySelectorAll('.barlayer .trace')][0].querySelectorAll('.point');
    const bars = gd._fullData.find(t => t.type === 'bar');
    let best = -1;
    bars.y.forEach((v, i) => { if (i + 1 !== gd.__drawShown && (best < 0 || v > bars.y[best])) best = i; });
    const box = points[best].getBoundingClientRect();
    return {step: best + 1, x: box.x + box.width / 2, y: box.y + box.height * 0.75};
}"""


@pytest.fixture(scope="module")
def app(browser, tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-scrub")
    runs, no_shipped = folder / "runs", folder / "no-shipped"
    runs.mkdir()
    no_shipped.mkdir()
    shipped = SHIPPED if (SHIPPED / "mnist.safetensors").exists() else no_shipped
    if shipped is no_shipped:
        tiny_checkpoint(runs, "tiny")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    print(f"\nscreenshots: {SHOTS}")
    with streamlit_app(runs=runs, shipped=shipped, log=folder / "streamlit.log") as url:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(HANG_GUARD_S * 1000)
        script_errors = []
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        yield page, script_errors, url
        page.close()


def open_view(app, path: str, key: str) -> dict:
    """Open `path` (with its query string) and wait until the timeline under `key` is drawn and its picture follows
    its mark (on a loaded machine the picture comes a moment after the mark)."""
    page, script_errors, url = app
    page.goto(f"{url}/{path}")
    settle(page)
    shown = poll(
        f"the timeline of {path}",
        lambda: (s := page.evaluate(SHOWN, key)) and s["shown"] and s["picture"] == s["shown"] and s,
    )
    assert_clean(page, path)
    assert not script_errors, f"JavaScript errors: {script_errors}"
    page.evaluate(COUNT_RERUNS)
    return shown


def location(page) -> str:
    """The address bar now (page.url is only brought up to date while Playwright talks to the browser)."""
    return page.evaluate("() => location.href")


def counter(page) -> str:
    return page.locator(".draw-timeline-step").inner_text()


def test_keys_scrub_the_generate_timeline_without_a_rerun_and_the_url_follows_when_stopped(app):
    page = app[0]
    shown = open_view(app, "generate?step=10", "generate_timeline")
    assert shown["shown"] == shown["picture"] == 10, shown  # a shared link's step, drawn by the browser
    screenshot(page, SHOTS / "1-generate-t10.png")

    slider = page.locator(".draw-timeline input[type=range]")
    slider.focus()
    for _ in range(5):
        slider.press("ArrowRight")
    after = page.evaluate(SHOWN, "generate_timeline")
    assert after["shown"] == after["picture"] == 15 and counter(page) == f"t = 15 of {after['T']}"
    assert page.evaluate("() => window.__reruns") == 0, "the page reran while scrubbing"
    assert "step=10" in location(page)
    poll("the URL to follow the stopped step", lambda: "step=15" in location(page))
    settle(page)
    assert page.evaluate("() => window.__reruns") == 1  # one rerun, once stopped
    assert page.get_by_test_id("stSlider").filter(has_text="Step t").get_by_role("slider").input_value() == "15"

    page.locator(".st-key-generate_timeline").click(position={"x": 120, "y": 150})  # keys on the figure itself
    page.keyboard.press("End")
    assert page.evaluate(SHOWN, "generate_timeline")["picture"] == after["T"]

    times = page.evaluate(STEP_TIMES)
    timing = {"median_ms": statistics.median(times), "max_ms": max(times), "steps": len(times)}
    (SHOTS / "step-times.json").write_text(json.dumps(timing, indent=1))
    print(f"\nbrowser time per step: {timing}")
    assert_clean(page, "Generate after scrubbing")
    screenshot(page, SHOTS / "2-generate-scrubbed.png")


def test_a_click_on_a_point_of_the_window_chart_goes_to_its_step(app):
    page = app[0]
    open_view(app, "generate?step=64", "generate_timeline")
    point = page.evaluate(
        """() => {
        const gd = document.querySelector('.st-key-generate_timeline .js-plotly-plot');
        const path = gd.querySelectorAll('.scatterlayer .trace')[0].querySelectorAll('.point')[4];
        const box = path.getBoundingClientRect();
        return {x: box.x + box.width / 2, y: box.y + box.height / 2};
    }"""
    )
    page.mouse.click(point["x"], point["y"])
    poll("the clicked step", lambda: page.evaluate(SHOWN, "generate_timeline")["picture"] == 5)
    assert page.evaluate("() => window.__reruns") == 0
    poll("the URL to follow the clicked step", lambda: "step=5" in location(page))


def test_a_click_on_a_kl_bar_moves_every_reconstruct_panel_to_its_step(app):
    page = app[0]
    open_view(app, "reconstruct", "reconstruct_timeline")
    screenshot(page, SHOTS / "3-reconstruct.png")
    bar = page.evaluate(TALLEST_BAR, "reconstruct_timeline")
    page.mouse.click(bar["x"], bar["y"])
    shown = poll(
        "the clicked bar's step",
        lambda: (s := page.evaluate(SHOWN, "reconstruct_timeline"))["shown"] == bar["step"] and s,
    )
    assert shown["picture"] == bar["step"]
    moved = page.evaluate(
        """(step) => {
        const gd = document.querySelector('.st-key-reconstruct_timeline .js-plotly-plot');
        const update = gd.layout.meta.timeline.steps[step - 1];
        return Object.entries(update).every(([key, value]) => {
            const [, index, attribute] = key.match(/images\\[(\\d+)\\]\\.(\\w+)/);
            return gd.layout.images[Number(index)][attribute] === value;
        });
    }""",
        bar["step"],
    )
    assert moved, "not every panel shows the clicked step"
    assert page.evaluate("() => window.__reruns") == 0
    poll("the URL to follow the clicked bar", lambda: f"step={bar['step']}" in location(page))
    settle(page)
    assert_clean(page, "Reconstruct after the click")
    screenshot(page, SHOTS / "4-reconstruct-clicked-bar.png")


def test_play_runs_to_the_last_step_in_the_browser(app):
    page = app[0]
    shown = open_view(app, "generate?step=50", "generate_timeline")
    page.locator(".draw-timeline button[data-speed='4']").click()
    poll("Play to reach the last step", lambda: page.evaluate(SHOWN, "generate_timeline")["picture"] == shown["T"])
    assert page.evaluate("() => window.__reruns") == 0
    poll("the URL to follow the end of Play", lambda: f"step={shown['T']}" in location(page))


def test_a_window_larger_than_the_image_shows_in_the_attention_lab(app):
    page, _, url = app
    page.goto(f"{url}/attention_lab?n=12&gx=14.5&gy=14.5&delta=10&sigma2=1&gamma=1&digit=3")
    settle(page)
    page.get_by_role("heading", name="Attention lab").wait_for()
    assert page.get_by_test_id("stSlider").filter(has_text="δ").get_by_role("slider").input_value() == "10"
    dash = page.evaluate(
        """() => {
        const gd = [...document.querySelectorAll('.js-plotly-plot')]
            .find(d => d.layout.title?.text?.includes('window'));
        return gd._fullData.find(t => t.name === 'read-window').line.dash;
    }"""
    )
    assert dash == "dot"  # clipped to the padded view, dotted: it goes on past the edge
    assert_clean(page, "Attention lab with a large window")
    screenshot(page, SHOTS / "5-attention-lab-large-window.png")


def test_home_shows_the_card_as_a_table(app):
    page, _, url = app
    page.goto(url)
    settle(page)
    page.get_by_role("heading", name="Model card").wait_for()
    bound_row = page.get_by_test_id("stTable").nth(1).get_by_text("Test bound −ELBO (eq. 12)")
    bound_row.wait_for()  # the tables may come a moment after the heading
    assert bound_row.count() == 1
    screenshot(page, SHOTS / "6-home-card.png")
