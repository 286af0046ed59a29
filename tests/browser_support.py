"""Shared set-up of the real-browser tests and of tools/load_test.py: a Streamlit server of app.py, Debian's
chromium, waiting and checking, and the requests a page makes beyond the server.

The fixtures that use these (`start_app`, `browser`) are in conftest.py. Playwright cannot download its own
browser here, so it drives the system's /usr/bin/chromium; without it the browser tests are skipped.
The server reads the project's .streamlit/config.toml like `streamlit run app.py` does (no setting is overridden
here, so the tests check the shipped settings: usage statistics off, nothing fetched from outside).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Server:
    """A running `streamlit run app.py`."""

    url: str  # http://127.0.0.1:<port>
    process: subprocess.Popen


@contextmanager
def streamlit_server(
    *, runs: Path, shipped: Path, log: Path, options: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`streamlit run app.py` on a free port of the loopback address with the given runs and shipped-checkpoint
    folders, Streamlit `options` (e.g. {"server.disconnectedSessionTTL": "5"}) and more environment `env`; stopped
    on exit.

    The server's output goes to `log`, which a failed start quotes."""
    port = free_port()
    env = {
        **os.environ,
        "DRAW_RUNS_DIR": str(runs),
        "DRAW_CHECKPOINTS_DIR": str(shipped),
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    settings = {
        "server.address": "127.0.0.1",
        "server.port": str(port),
        "server.headless": "true",
        "server.fileWatcherType": "none",
        **(options or {}),
    }
    command = [sys.executable, "-m", "streamlit", "run", "app.py"]
    command += [word for name, value in settings.items() for word in (f"--{name}", value)]
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Streamlit server did not start; its output ({log}):\n{log.read_text()}")
            time.sleep(0.25)
        yield Server(url, process)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def streamlit_app(*, runs: Path, shipped: Path, log: Path) -> Iterator[str]:
    """streamlit_server() that yields only its URL."""
    with streamlit_server(runs=runs, shipped=shipped, log=log) as server:
        yield server.url


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


def is_local(url: str) -> bool:
    """Whether a request stays on this machine: the loopback address, or data:/blob: URLs the page made itself."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in ("127.0.0.1", "localhost", "::1")


def record_outside_requests(page, outside: list[str] | None = None) -> list[str]:
    """Start recording the URL of every request `page` makes that leaves the loopback address, into `outside` (a
    new list when None); returns that list, which grows as the page goes on."""
    outside = [] if outside is None else outside
    page.on("request", lambda request: outside.append(request.url) if not is_local(request.url) else None)
    return outside


# Arms a watch for the next key press: window.__settled resolves to the milliseconds from that key press to the
# moment the chart whose title contains the argument shows other data and Streamlit's script is idle again.
WATCH_PICTURE = """(title) => {
    const picture = () => {
        const div = [...document.querySelectorAll('.js-plotly-plot')]
            .find(d => (d.layout?.title?.text || '').includes(title));
        const z = div?._fullData?.[0]?.z;
        return z ? JSON.stringify(Array.from(z, row => Array.from(row))) : null;
    };
    const before = picture();
    let start = null;
    document.addEventListener('keydown', () => { start = performance.now(); }, {once: true, capture: true});
    window.__settled = new Promise(resolve => {
        const tick = () => {
            if (start !== null && document.querySelector("IDLE") !== null && picture() !== before) {
                resolve(performance.now() - start);
            } else {
                requestAnimationFrame(tick);
            }
        };
        requestAnimationFrame(tick);
    });
}""".replace("IDLE", IDLE)


def key_to_picture_ms(page, thumb, key: str, title: str) -> float:
    """Press `key` on a slider's `thumb` and return the milliseconds until the chart titled '...title...' is
    redrawn with other data and the script is idle: what a user waits for, measured inside the browser."""
    thumb.focus()
    page.evaluate(WATCH_PICTURE, title)
    thumb.press(key)
    return page.evaluate("() => window.__settled")
