"""Shared set-up of the real-browser tests: a Streamlit server of app.py, Debian's chromium, waiting and checking.

The fixtures that use these (`start_app`, `browser`) are in conftest.py. Playwright cannot download its own
browser here, so it drives the system's /usr/bin/chromium; without it the browser tests are skipped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"  # git-ignored; look at them after a run
HANG_GUARD_S = 90  # only so a broken page fails the test instead of hanging it; nothing here measures speed
EXCEPTION = "[data-testid='stException']"
ERROR = "[data-testid='stAlertContentError']"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"  # Streamlit's own "script finished" mark


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_app(*, runs: Path, shipped: Path, log: Path) -> Iterator[str]:
    """`streamlit run app.py` on a free port with the given runs and shipped-checkpoint folders; yields its URL.

    The server's output goes to `log`, which a failed start quotes."""
    port = free_port()
    env = {
        **os.environ,
        "DRAW_RUNS_DIR": str(runs),
        "DRAW_CHECKPOINTS_DIR": str(shipped),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Streamlit server did not start; its output ({log}):\n{log.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def settle(page, *, start_s: float = 0.4) -> None:
    """Wait for the rerun an interaction caused: give it `start_s` to begin, then wait until the script is idle."""
    page.wait_for_timeout(start_s * 1000)
    page.wait_for_selector(IDLE, timeout=HANG_GUARD_S * 1000)
    page.wait_for_timeout(150)  # let the frontend draw what the run sent (Plotly, iframes)


def poll(what: str, probe, page=None, shot: Path | None = None):
    """probe() until it returns something truthy; on timeout fail (a screenshot first if `page`, `shot` given)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    if page is not None and shot is not None:
        page.screenshot(path=str(shot), full_page=True)
    pytest.fail(f"gave up waiting for {what}" + (f" (screenshot: {shot})" if shot else ""))


def problems(page) -> list[str]:
    """The text of every Streamlit exception box and error alert on the page."""
    return [box.inner_text() for box in page.locator(f"{EXCEPTION}, {ERROR}").all()]


def assert_clean(page, where: str) -> None:
    found = problems(page)
    assert not found, f"{where} shows an exception or error:\n" + "\n---\n".join(found)


def screenshot(page, path: Path) -> Path:
    """The whole page: Streamlit scrolls its main area inside the window, so the window is made as tall as the
    content for the shot (a plain full_page screenshot would stop at the window's height)."""
    viewport = page.viewport_size
    page.mouse.move(0, 0)  # no hover: Plotly's toolbar would cover a chart's title
    height = page.evaluate(
        "() => Math.max(...['stMain', 'stMainBlockContainer', 'stSidebarContent']"
        ".map(id => document.querySelector(`[data-testid='${id}']`)?.scrollHeight || 0))"
    )
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], int(height) + 40)})
    page.wait_for_timeout(300)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)
    return path
