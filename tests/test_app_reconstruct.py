"""AppTest of the Reconstruct page: test digits, uploads (good and bad), the drawing canvas, read/write windows."""

import io

import numpy as np
import pytest
import torch
from app_support import (
    STAND_IN_KIND,
    as_a_classifier,
    assert_no_exception,
    figure,
    open_page,
    tiny_checkpoint,
    use_folders,
    use_shipped,
)
from PIL import Image

from draw_core.config import DrawConfig
from draw_core.data import load_sample
from draw_core.io.checkpoint import load_checkpoint
from draw_core.nn.attention import window_geometry
from draw_core.present import viz


@pytest.fixture
def runs(monkeypatch, tmp_path):
    return use_folders(monkeypatch, tmp_path)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(at, name: str, data: bytes, mime: str = "image/png"):
    at.segmented_control(key="reconstruct_source").set_value("upload").run()
    at.file_uploader(key="reconstruct_upload").set_value((name, data, mime))
    return at.run()


def shape(at, title: str, kind: str) -> tuple[float, float, float, float]:
    found = viz.window_shape(figure(at, title), kind)
    return found["x0"], found["y0"], found["x1"], found["y1"]


def test_renders_a_test_digit_on_a_tiny_checkpoint(runs):
    at = open_page("reconstruct.py")
    for title in (
        "input x",
        "error x̂",
        "canvas σ",
        "reconstruction σ",
        "read from x:",
        "read from x̂",
        "nats each glimpse",
    ):
        figure(at, title)
    digit = viz.spec_array(figure(at, "input x")["data"][0]["z"])
    assert digit == pytest.approx(load_sample()[0][0, 0].numpy(), abs=1e-6)


def test_renders_on_the_shipped_checkpoint(monkeypatch, tmp_path):
    use_shipped(monkeypatch, tmp_path)
    at = open_page("reconstruct.py")
    assert at.slider(key="step").max == 64
    assert viz.window_shape(figure(at, "input x"), "read") is not None


def test_step_slider_moves_the_read_and_write_windows_where_the_model_put_them(runs):
    at = open_page("reconstruct.py")
    at.number_input(key="reconstruct_index").set_value(3).run()
    model = load_checkpoint(runs / "tiny.safetensors").model
    x = load_sample()[0][3:4]
    trace = model.reconstruct(x, generator=torch.Generator().manual_seed(0))

    def expected(attention, N, step):
        window = window_geometry(attention.map(lambda v: v[step - 1, 0]), N)
        return tuple(float(v) for v in (window.x0, window.y0, window.x1, window.y1))

    for step in (1, 3):
        at.slider(key="step").set_value(step).run()
        assert_no_exception(at)
        assert shape(at, "input x", "read") == pytest.approx(expected(trace.read_attn, 2, step), abs=1e-4)
        assert shape(at, "canvas σ", "write") == pytest.approx(expected(trace.write_attn, 5, step), abs=1e-4)
    assert expected(trace.read_attn, 2, 1) != pytest.approx(expected(trace.read_attn, 2, 3), abs=1e-4)
    kl = figure(at, "nats each glimpse")["data"][0]["marker"]["color"]
    assert kl[2] != kl[0]  # the chosen step's bar is highlighted


@pytest.mark.parametrize(
    "name,data,message",
    [
        ("notes.png", b"these are my lecture notes, not a picture\n", "not an image"),
        ("empty.png", b"", "empty"),
        ("white.png", png_bytes(np.full((40, 40), 255, dtype=np.uint8)), "blank"),
    ],
)
def test_a_bad_upload_shows_an_error_not_an_exception(runs, name, data, message):
    at = upload(open_page("reconstruct.py"), name, data)
    assert_no_exception(at)
    assert any(name in e.value and message in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("plotly_chart")


def test_an_uploaded_photo_of_a_dark_digit_on_paper_is_centred_and_reconstructed(runs):
    paper = np.full((120, 90), 250, dtype=np.uint8)
    paper[10:100, 20:35] = 20  # a dark "1", off-centre
    at = upload(open_page("reconstruct.py"), "one.png", png_bytes(paper))
    assert_no_exception(at)
    assert not at.error
    digit = viz.spec_array(figure(at, "input x")["data"][0]["z"])
    assert digit.shape == (28, 28) and digit[0, 0] == 0 and digit.max() == pytest.approx(1, abs=0.05)
    rows = np.flatnonzero((digit > 0.05).any(1))
    assert rows[-1] - rows[0] + 1 == 20


def test_draw_mode_asks_for_a_drawing_until_there_is_one(runs):
    at = open_page("reconstruct.py")
    at.segmented_control(key="reconstruct_source").set_value("draw").run()
    assert_no_exception(at)
    assert any("Draw a digit" in info.value for info in at.info)


def test_no_checkpoint_says_how_to_get_one_and_stops(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("reconstruct.py")
    assert any("No checkpoint is selected" in info.value for info in at.info)
    assert not at.get("plotly_chart")


def test_a_model_without_attention_shows_whole_image_glimpses(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    tiny_checkpoint(
        runs, "plain", DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4, read_attn=False, write_attn=False)
    )
    at = open_page("reconstruct.py")
    assert viz.window_shape(figure(at, "input x"), "read") is None
    glimpse = viz.spec_array(figure(at, "whole image")["data"][0]["z"])
    assert glimpse == pytest.approx(load_sample()[0][0, 0].numpy(), abs=1e-6)  # eq. 17 reads x itself


def test_a_checkpoint_that_is_not_a_generator_gets_a_message_naming_its_kind(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    as_a_classifier(monkeypatch)
    at = open_page("reconstruct.py")
    assert any("generators" in info.value and STAND_IN_KIND in info.value for info in at.info)
    assert not at.get("plotly_chart")
