"""AppTest of the Attention lab: needs no model; window, filterbanks, glimpse and write-back follow the sliders."""

import pytest
import torch
from app_support import assert_no_exception, figure, open_page, use_folders

from draw_core.data import load_sample
from draw_core.nn.attention import AttentionParams, filterbank
from draw_core.present import viz


def set_window(at, **values):
    for key, value in values.items():
        at.slider(key=f"lab_{key}").set_value(value)
    at.run()
    assert_no_exception(at)
    return at


def test_works_without_any_checkpoint(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("attention_lab.py")
    for title in ("and the window", "F_X: one row", "F_Y: one row", "glimpse γ", "written back"):
        figure(at, title)
    latex = " ".join(element.value for element in at.latex)
    for formula in (
        r"\mu_X^i",
        r"\mu_Y^j",
        r"F_X[i, a]",
        r"F_Y[j, b]",
        r"\tilde\delta",
        r"\gamma\, F_Y\, x\, F_X^\top",
    ):
        assert formula in latex


def test_the_window_sits_on_the_grid_eqs_19_20(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = set_window(open_page("attention_lab.py"), n=3, delta=2.0, gx=10.0, gy=12.0)
    rect = viz.window_shape(figure(at, "and the window"), "read")
    # mu^1 = g + (1 - 1.5 - 0.5) 2 = g - 2, mu^3 = g + 2; minus 1 for 0-based columns/rows
    assert (rect["x0"], rect["x1"], rect["y0"], rect["y1"]) == pytest.approx((7, 11, 9, 13))
    narrow = rect["line"]["width"]
    at = set_window(at, sigma2=9.0)
    assert viz.window_shape(figure(at, "and the window"), "read")["line"]["width"] < narrow


def test_filterbanks_glimpse_and_write_back_are_the_paper_formulas(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("attention_lab.py")
    at.number_input(key="lab_digit").set_value(7)
    at = set_window(at, n=4, delta=3.0, gx=13.0, gy=15.0, sigma2=2.0, gamma=2.0)
    params = AttentionParams(*(torch.tensor([v]) for v in (13.0, 15.0, 3.0, 2.0, 2.0)))
    Fx, Fy = filterbank(params, 4, 28, 28)
    fx = viz.spec_array(figure(at, "F_X: one row")["data"][0]["z"])
    assert fx.shape == (4, 28) and fx == pytest.approx(Fx[0].numpy(), abs=1e-6)
    assert fx.sum(1) == pytest.approx(1.0, abs=1e-5)  # 1/Z_X normalises every filter
    x = load_sample()[0][7, 0].double()
    glimpse = 2.0 * Fy[0].double() @ x @ Fx[0].double().T  # eq. 27 for x: gamma F_Y x F_X^T
    assert viz.spec_array(figure(at, "glimpse γ")["data"][0]["z"]) == pytest.approx(glimpse.numpy(), abs=1e-5)
    back = Fy[0].double().T @ glimpse @ Fx[0].double() / 2.0  # eq. 29: (1/gamma) F_Y^T w F_X
    assert viz.spec_array(figure(at, "written back")["data"][0]["z"]) == pytest.approx(back.numpy(), abs=1e-5)
