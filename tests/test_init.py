"""The initial attention windows: the first read sees the digit, and a unit write moves the canvas by about one."""

import math

import pytest
import torch

from draw_core.config import DrawConfig
from draw_core.data import load_sample
from draw_core.nn.attention import attention_params, filterbank, read, window_geometry, write
from draw_core.nn.model import DRAW, READ_SPAN


def initial_heads(cfg: DrawConfig):
    model = DRAW(cfg)
    with torch.no_grad():
        return model._split_head(model.head(torch.zeros(1, cfg.dec_size)))  # eq. 21 on h_dec_0 = 0


def test_first_read_window_lies_over_the_digit_and_reads_ink():
    cfg = DrawConfig.preset("mnist")
    _, _, read_raw = initial_heads(cfg)
    params = attention_params(read_raw, cfg.read_n, cfg.height, cfg.width)
    box = window_geometry(params, cfg.read_n)
    for edge in (box.x0, box.y0, box.x1, box.y1):
        assert 4 <= edge.item() <= 23, "the initial 2x2 read grid should sit inside the central part of the image"
    digit = load_sample()[0][:1]
    Fx, Fy = filterbank(params, cfg.read_n, cfg.height, cfg.width)
    r = read(digit, digit, Fx, Fy, params.gamma)
    assert r.abs().sum() > 0.1, "the first read of a real digit must not be blank"


def test_first_write_of_a_unit_patch_moves_canvas_logits_by_about_one():
    cfg = DrawConfig.preset("mnist")
    w, write_raw, _ = initial_heads(cfg)
    params = attention_params(write_raw, cfg.write_n, cfg.height, cfg.width)
    Fx, Fy = filterbank(params, cfg.write_n, cfg.height, cfg.width)
    update = write(torch.ones(1, 1, cfg.write_n, cfg.write_n), Fx, Fy, params.gamma)  # eq. 29
    centre = update[0, 0, 8:20, 8:20]
    assert 0.5 < centre.mean().item() < 2.0


def test_a_read_without_write_attention_starts_at_about_unit_intensity():
    # cifar10-cpu reads through a window but writes without one: the write gain's bias (log gamma^ = -log 2 pi
    # sigma^2, well below -0.5 here) belongs to the write window only, and the read's gamma starts near 1 (eq. 27).
    for name in ("cifar10-cpu", "mnist"):
        cfg = DrawConfig.preset(name)
        _, _, read_raw = initial_heads(cfg)
        bound = 1 / cfg.dec_size**0.5  # nn.Linear's initial bias range, untouched for the read's log gamma
        assert abs(read_raw[0, 4].item()) <= bound, name


def test_initial_filters_overlap_with_sigma_half_the_stride():
    """On h_dec_0 = 0 only the biases speak: the read grid spans READ_SPAN of the 28-pixel image, the write grid all
    of it (delta~ = 1), each with sigma = delta / 2 (eq. 24: delta = (28 - 1) / (N - 1) delta~), and 1/gamma of the
    write starts at 2 pi sigma^2, the pixels a normalised filter spreads a unit over."""
    cfg = DrawConfig.preset("mnist")  # read 2x2, write 5x5 on 28x28
    _, write_raw, read_raw = initial_heads(cfg)
    read_window = attention_params(read_raw, cfg.read_n, cfg.height, cfg.width)
    write_window = attention_params(write_raw, cfg.write_n, cfg.height, cfg.width)
    read_delta = 27 / 1 * READ_SPAN
    assert read_window.delta.item() == pytest.approx(read_delta, rel=1e-6)
    assert read_window.sigma2.item() == pytest.approx((read_delta / 2) ** 2, rel=1e-6)
    assert write_window.delta.item() == pytest.approx(6.75, rel=1e-6)  # 27 / 4
    assert write_window.sigma2.item() == pytest.approx(3.375**2, rel=1e-6)
    assert write_window.gamma.item() == pytest.approx(1 / (2 * math.pi * 3.375**2), rel=1e-5)
