"""Shared pytest set-up: one torch thread per test process (the machine has few cores and runs trainings), and the
fixtures of the real-browser tests (a Streamlit server of app.py, Debian's chromium; see browser_support.py)."""

from contextlib import ExitStack
from itertools import count
from pathlib import Path

import pytest
import torch
from browser_support import CHROMIUM, streamlit_app


@pytest.fixture(autouse=True, scope="session")
def single_torch_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def start_app(tmp_path):
    """start_app(runs=..., shipped=...) -> the URL of a Streamlit server of app.py over those checkpoint folders;
    every server started is stopped when the test ends (browser_support.streamlit_app)."""
    numbers = count()
    with ExitStack() as servers:

        def start(*, runs: Path, shipped: Path) -> str:
            log = tmp_path / f"streamlit-{next(numbers)}.log"
            return servers.enter_context(streamlit_app(runs=runs, shipped=shipped, log=log))

        yield start


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (it can't download its own browser here); skips when either is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()
