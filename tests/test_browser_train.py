"""Real browser (Debian's chromium through Playwright) on the Train page: start a run, see the form fold away and the
device used named, watch the loss chart grow and the live glimpse change without touching the page, press Stop, and
see the run stopped with its checkpoint and the test bound of its final weights. Screenshots go to
artifacts/screenshots/train/."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import HANG_GUARD_S, SCREENSHOTS, poll, screenshot

pytestmark = pytest.mark.browser
SHOTS = SCREENSHOTS / "train"

# The Plotly data of the chart whose trace or title matches, read from the div Plotly draws into.
CHART_DATA = """([trace, title]) => {
    for (const div of document.querySelectorAll('.js-plotly-plot')) {
        const data = div._fullData || [];  // decoded by Plotly (the spec's arrays arrive base64-encoded)
        const text = ((div.layout || {}).title || {}).text || '';
        if ((trace && data.some(t => t.name === trace)) || (title && text.includes(title))) {
            return data.map(t => ({name: t.name, points: t.x ? t.x.length : 0, z: t.z ? JSON.stringify(t.z) : null}));
        }
    }
    return null;
}"""
# The live glimpses are one timeline figure (draw_core.present.viz.timeline_figure): its pictures are layout images.
TIMELINE_PICTURES = """() => {
    for (const div of document.querySelectorAll('.js-plotly-plot')) {
        const layout = div.layout || {};
        if ((layout.meta || {}).timeline) return (layout.images || []).map(image => image.source).join('|');
    }
    return null;
}"""


@pytest.fixture
def server(start_app, tmp_path) -> tuple[str, Path]:
    """The app over an empty shipped folder and a fresh runs folder: its URL and the runs folder."""
    (tmp_path / "shipped").mkdir()
    return start_app(runs=tmp_path / "runs", shipped=tmp_path / "shipped"), tmp_path / "runs"


def test_start_watch_the_loss_and_glimpses_move_then_stop(server, browser, tmp_path):
    url, runs = server
    page = browser.new_page(viewport={"width": 1400, "height": 2000})
    page.goto(f"{url}/train")
    page.wait_for_selector("input[aria-label='Run name']", timeout=HANG_GUARD_S * 1000)
    # Opened first by its own URL, the page is still drawn inside app.py: the shared sidebar and its navigation.
    sidebar = page.locator("[data-testid='stSidebar']")
    poll("the shared sidebar", lambda: sidebar.get_by_text("DRAW Studio").count() == 1)
    assert sidebar.get_by_text("Attention at work").count() == 1  # a page title, not the file name

    def number(label: str, value) -> None:
        box = page.locator(f"input[aria-label='{label}']")
        box.fill(str(value))
        box.press("Enter")
        page.wait_for_timeout(400)

    page.get_by_role("combobox", name="Dataset").click()
    page.get_by_role("option", name="mnist-sample").click()
    page.wait_for_timeout(400)
    for label, value in (("Steps T", 8), ("LSTM units", 48), ("z size", 8), ("Steps", 100_000), ("Batch size", 16)):
        number(label, value)
    page.get_by_text("Reporting and checkpoints").click()
    number("Progress every (steps)", 1)
    number("Glimpses every (steps)", 2)
    number("Samples every (steps)", 5)  # a row of the fixed-z strip every 5 steps
    name = page.locator("input[aria-label='Run name']")
    name.fill("in-the-browser")
    name.press("Enter")
    page.wait_for_timeout(400)
    page.locator(".st-key-train_start button").click()
    poll("the form to fold away", lambda: not page.locator("input[aria-label='Run name']").is_visible())
    poll("the device used in the caption", lambda: page.get_by_text("device cpu").count() > 0)  # not 'auto'

    def loss_points() -> int:
        chart = page.evaluate(CHART_DATA, ["reconstruction", None])
        return next(t["points"] for t in chart if t["name"] == "reconstruction") if chart else 0

    def final_canvas() -> str | None:
        return page.evaluate(TIMELINE_PICTURES)

    first_points = poll("the loss chart", loss_points, page, tmp_path / "no-loss-chart.png")
    first_canvas = poll("the live glimpses", final_canvas)
    SHOTS.mkdir(parents=True, exist_ok=True)
    screenshot(page, SHOTS / "train-running.png")
    # Nothing is clicked from here on: the page refreshes itself (st.fragment(run_every=1)).
    poll("the loss chart to grow", lambda: loss_points() > first_points + 3)
    poll("the glimpse to change", lambda: final_canvas() not in (None, first_canvas))

    page.locator(".st-key-train_stop button").first.click()  # a refresh may briefly show two
    poll("the stopped message", lambda: page.get_by_text("Stopped at step").count() > 0)
    bound = page.locator("[data-testid='stMetric']", has_text="Test bound").locator("[data-testid='stMetricValue']")
    assert float(bound.inner_text()) > 0  # the stopped run's final weights were tested
    poll("the fixed-z strip", lambda: page.evaluate(CHART_DATA, [None, "the same z"]) is not None)
    screenshot(page, SHOTS / "train-stopped.png")
    assert page.locator("[data-testid='stException']").count() == 0
    assert (runs / "in-the-browser.safetensors").exists()
    page.close()
