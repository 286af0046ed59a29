"""Shared set-up of the AppTests: a tiny checkpoint in a temporary runs folder, opening a page, reading figures."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from draw_core.config import DrawConfig
from draw_core.data.mnist import MNIST_FILES
from draw_core.io.checkpoint import save_checkpoint
from draw_core.nn.model import DRAW

APP = Path(__file__).resolve().parent.parent / "app.py"
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints"
TINY = DrawConfig(T=4, enc_size=32, dec_size=32, z_size=8)
# Stand-ins for the colour and 60x60 models of issue 14 (dataset named in the checkpoint's meta)
TINY_COLOUR = DrawConfig(
    height=32, width=32, channels=3, T=4, read_n=3, write_n=4, enc_size=32, dec_size=32, z_size=8, likelihood="logistic"
)
TINY_TWO = DrawConfig(height=60, width=60, T=4, read_n=3, write_n=4, enc_size=32, dec_size=32, z_size=8)
TINY_DATASETS = {TINY: "mnist-sample", TINY_COLOUR: "cifar10", TINY_TWO: "mnist-two"}
TIMEOUT = 60  # seconds per script run; a tiny model reruns in well under one


def tiny_checkpoint(folder: Path, name: str = "tiny", cfg: DrawConfig = TINY, seed: int = 0) -> Path:
    """A freshly initialised model saved like a training run's checkpoint (TINY, TINY_COLOUR or TINY_TWO name
    their dataset; any other config is taken as an MNIST model)."""
    import torch

    torch.manual_seed(seed)
    dataset = TINY_DATASETS.get(cfg, "mnist-sample")
    meta = {"step": 3, "dataset": dataset, "train_seconds": 1.5, "test_elbo_nats": 543.21}
    return save_checkpoint(DRAW(cfg), folder / f"{name}.safetensors", meta=meta)


def use_folders(monkeypatch, tmp_path: Path, *, shipped: Path | None = None, runs: list[str] = ("tiny",)) -> Path:
    """Point the app at `shipped` (default: an empty folder) and a runs folder holding tiny checkpoints `runs`."""
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir(exist_ok=True)
    for name in runs:
        tiny_checkpoint(runs_dir, name)
    if shipped is None:
        shipped = tmp_path / "no-shipped"
        shipped.mkdir(exist_ok=True)
    monkeypatch.setenv("DRAW_CHECKPOINTS_DIR", str(shipped))
    monkeypatch.setenv("DRAW_RUNS_DIR", str(runs_dir))
    return runs_dir


def use_shipped(monkeypatch, tmp_path: Path, name: str = "mnist") -> None:
    """The real checkpoints/ folder, which must hold `name` (a shipped checkpoint gone is a failure, not a skip)."""
    assert (SHIPPED / f"{name}.safetensors").exists(), f"shipped checkpoint checkpoints/{name}.safetensors is missing"
    use_folders(monkeypatch, tmp_path, shipped=SHIPPED, runs=[])


STAND_IN_KIND = "stand-in-classifier"  # what pages must name when a checkpoint's model is not a generator


def as_a_classifier(monkeypatch) -> None:
    """From now on DRAW models count as a non-generating kind (a stand-in, first in the kind registry so `kind_of`
    finds it), so the pages meet a checkpoint of a kind they can't show; checkpoints still load as before."""
    from dataclasses import replace

    from draw_core.nn import kinds

    stand_in = replace(
        kinds.KINDS["draw"], name=STAND_IN_KIND, generates=False, classifies=True, description="a stand-in classifier"
    )
    monkeypatch.setattr(kinds, "KINDS", {STAND_IN_KIND: stand_in, **kinds.KINDS})


def open_page(page: str | None = None, *, query: dict | None = None) -> AppTest:
    """Run app.py (and then `pages/<page>`) like a browser session would."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    if page is not None:
        at.switch_page(f"pages/{page}").run()
    assert_no_exception(at)
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, "\n\n".join(e.value + "\n" + "\n".join(e.stack_trace) for e in at.exception)


def figures(at: AppTest) -> list[dict]:
    """The specs of every Plotly chart on the page, in order."""
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def figure(at: AppTest, title_part: str) -> dict:
    """The one Plotly figure whose title contains `title_part`."""
    found = [spec for spec in figures(at) if title_part in str(spec.get("layout", {}).get("title", {}).get("text", ""))]
    assert len(found) == 1, f"expected one figure titled '...{title_part}...', found {len(found)}"
    return found[0]


def damaged_mnist(folder: Path) -> Path:
    """A data folder whose four MNIST files are there (so MNIST is listed) but cut short."""
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).write_bytes(bytes(100))
    return folder


def switch_pages_by_sidebar(at, *pages: str) -> None:
    """Visit `pages` (file names under pages/) in turn as the sidebar does: the browser drops the page's URL
    parameters on a sidebar switch (streamlit#7982), so only what the session keeps can survive."""
    for page in pages:
        at.query_params.clear()
        at.switch_page(f"pages/{page}").run()
        assert_no_exception(at)
