"""Real browser (Debian's chromium through Playwright): Attention at work scrubs both classifiers in the browser.

The page's timeline holds every glimpse of DRAW's classifier and RAM: keys on the timeline's slider move every panel
(both images with where each model looks, what each read, both class-probability charts) together without a rerun;
when the user stops, one rerun brings the step to the server (the Glimpse t slider, the URL). The server runs over
tiny freshly initialised classifiers (tests/test_app_attention_at_work.py's), so nothing here depends on training.
Screenshots go to artifacts/screenshots/scrub-classifier/ (git-ignored): look at them after a change.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from app_support import tiny_checkpoint
from browser_support import CHROMIUM, HANG_GUARD_S, SCREENSHOTS, assert_clean, poll, screenshot, settle, streamlit_app
from test_app_attention_at_work import classifier
from test_browser_scrub import COUNT_RERUNS, SHOWN, STEP_TIMES

from draw_core.present import attention_at_work as work

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (Debian package chromium)"),
]

SHOTS = SCREENSHOTS / "scrub-classifier"
KEY = "work_timeline"
# Whether every layout image of the timeline shows what step `step` (1-based) says it should.
ALL_AT = """([key, step]) => {
    const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    const update = gd.layout.meta.timeline.steps[step - 1];
    return Object.entries(update).every(([name, value]) => {
        const [, index, attribute] = name.match(/images\\[(\\d+)\\]\\.(\\w+)/);
        return gd.layout.images[Number(index)][attribute] === value;
    });
}"""


@pytest.fixture(scope="module")
def app(browser, tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-scrub-classifier")
    runs, no_shipped = folder / "runs", folder / "no-shipped"
    runs.mkdir()
    no_shipped.mkdir()
    tiny_checkpoint(runs, "tiny")
    for kind in work.CHECKPOINT_NAMES:
        classifier(runs, kind)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    with streamlit_app(runs=runs, shipped=no_shipped, log=folder / "streamlit.log") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(HANG_GUARD_S * 1000)
        script_errors = []
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        yield page, script_errors, url
        page.close()


def test_keys_move_both_models_glimpses_together_without_a_rerun(app):
    page, script_errors, url = app
    page.goto(f"{url}/attention_at_work?step=1")
    settle(page)
    shown = poll("the timeline", lambda: (s := page.evaluate(SHOWN, KEY)) and s["shown"] and s)
    assert shown["shown"] == shown["picture"] == 1 and shown["T"] == 3, shown
    assert_clean(page, "Attention at work")
    assert not script_errors, f"JavaScript errors: {script_errors}"
    screenshot(page, SHOTS / "1-attention-at-work-t1.png")
    page.evaluate(COUNT_RERUNS)

    slider = page.locator(".draw-timeline input[type=range]")
    slider.focus()
    slider.press("ArrowRight")
    slider.press("ArrowRight")
    after = page.evaluate(SHOWN, KEY)
    assert after["shown"] == after["picture"] == 3
    assert page.evaluate(ALL_AT, [KEY, 3]), "not every panel shows glimpse 3"
    assert page.locator(".draw-timeline-step").inner_text() == "t = 3 of 3"
    assert page.locator(".draw-timeline-label").inner_text().startswith("glimpse 3 of 3 · DRAW: ")
    assert page.evaluate("() => window.__reruns") == 0, "the page reran while scrubbing"
    poll("the URL to follow the stopped step", lambda: "step=3" in page.evaluate("() => location.href"))
    settle(page)
    assert page.evaluate("() => window.__reruns") == 1  # one rerun, once stopped
    assert page.get_by_test_id("stSlider").filter(has_text="Glimpse t").get_by_role("slider").input_value() == "3"
    assert page.evaluate(ALL_AT, [KEY, 3]), "the rerun moved the timeline away from glimpse 3"

    page.locator(f".st-key-{KEY}").click(position={"x": 140, "y": 150})  # keys on the clicked figure, too
    page.keyboard.press("Home")
    assert page.evaluate(SHOWN, KEY)["picture"] == 1 and page.evaluate(ALL_AT, [KEY, 1])

    times = page.evaluate(STEP_TIMES)
    timing = {"median_ms": statistics.median(times), "max_ms": max(times), "steps": len(times)}
    (SHOTS / "step-times.json").write_text(json.dumps(timing, indent=1))
    print(f"\nbrowser time per step: {timing}")
    assert_clean(page, "Attention at work after scrubbing")
    screenshot(page, SHOTS / "2-attention-at-work-scrubbed.png")
