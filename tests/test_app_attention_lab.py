"""AppTest of the Attention lab: needs no model; window, filterbanks, glimpse and write-back follow the sliders; a
window arrives in the URL (a model page's link, with Reconstruct's test image and its dataset) and the widgets write
it back; a dataset the lab cannot show is said."""

import numpy as np
import pytest
import torch
from app_support import (
    APP,
    TIMEOUT,
    TINY,
    TINY_COLOUR,
    TINY_TWO,
    assert_no_exception,
    figure,
    open_page,
    switch_pages_by_sidebar,
    tiny_checkpoint,
    use_folders,
)
from streamlit.testing.v1 import AppTest
from timeline_support import link_query

from draw_core.data import get_dataset, load_sample
from draw_core.nn.attention import AttentionParams, filterbank
from draw_core.present import views, viz
from draw_core.present.render import window_line_width


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
    captions = " ".join(caption.value for caption in at.caption)
    for name in ("lab_window", "lab_filters", "lab_glimpse", "lab_written"):  # every chart: what to notice
        assert views.EXPLANATIONS[name].notice in captions
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
    data = figure(at, "and the window")["data"]
    # mu^1 = g + (1 - 1.5 - 0.5) 2 = g - 2, mu^3 = g + 2; minus 1 for 0-based columns/rows
    assert viz.window_box(data, "read") == pytest.approx((7, 9, 11, 13))
    narrow = viz.window_outline(data, "read")["line"]["width"]
    at = set_window(at, sigma2=9.0)
    assert viz.window_outline(figure(at, "and the window")["data"], "read")["line"]["width"] < narrow


def test_a_window_larger_than_the_image_is_drawn_along_the_padded_view(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = set_window(open_page("attention_lab.py"), n=12, delta=10.0, sigma2=1.0)  # the grid spans 110 pixels
    data = figure(at, "and the window")["data"]
    pad, inset = viz.window_pad(28, 28), window_line_width(1.0) / 2
    low, high = -0.5 - pad + inset, 27.5 + pad - inset
    assert viz.window_box(data, "read") == pytest.approx((low, low, high, high))
    assert viz.window_outline(data, "read")["line"]["dash"] == "dot"
    assert any(views.WINDOW_RULE == caption.value for caption in at.caption)


def lab_at(query: dict) -> AppTest:
    """The lab opened from a link carrying `query`."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.switch_page("pages/attention_lab.py").run()
    assert_no_exception(at)
    return at


def test_a_window_carried_in_the_url_sets_the_sliders_once(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    query = {"n": "5", "gx": "11.1781", "gy": "15.52", "delta": "6.16", "sigma2": "1.4914", "gamma": "0.0513"}
    at = lab_at({**query, "digit": "7"})
    sliders = {key: at.slider(key=f"lab_{key}").value for key in query}
    assert sliders == views.lab_settings(query, 28, 28)[0]
    assert at.number_input(key="lab_digit").value == 7
    # eqs 19-20 with the carried window: mu^1 = gX - 2 delta (N = 5), minus 1 for the 0-based column
    assert viz.window_box(figure(at, "and the window")["data"], "read")[0] == pytest.approx(11.2 - 2 * 6.2 - 1)
    assert at.query_params["gx"] == "11.2" and at.query_params["digit"] == "7"  # the sliders write the URL
    at.slider(key="lab_gx").set_value(20.0).run()  # and a slider moved afterwards stays where it was put
    assert at.slider(key="lab_gx").value == 20.0 and at.query_params["gx"] == "20"
    assert not at.warning


def test_a_carried_window_outside_the_sliders_ranges_is_shown_at_their_ends_and_said(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = lab_at({"n": "5", "gx": "14", "gy": "14", "delta": "3", "sigma2": "0.001", "gamma": "40"})
    assert at.slider(key="lab_gamma").value == views.lab_ranges(28, 28)["gamma"][1]
    assert at.slider(key="lab_sigma2").value == views.lab_ranges(28, 28)["sigma2"][0]
    warnings = " ".join(warning.value for warning in at.warning)
    assert "gamma = 40" in warnings and "sigma2 = 0.001" in warnings


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


def test_any_registered_dataset_feeds_the_lab_and_its_sliders_follow_the_image_size(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("attention_lab.py")
    assert at.selectbox(key="lab_dataset").options == views.sample_datasets()
    small = at.slider(key="lab_gx").max
    assert small == views.lab_ranges(28, 28)["gx"][1]
    at = set_window(at, gx=20.0)
    at.selectbox(key="lab_dataset").set_value("mnist-cluttered").run()
    assert_no_exception(at)
    assert at.slider(key="lab_gx").max == views.lab_ranges(100, 100)["gx"][1] > small, "sliders over its own width"
    assert at.slider(key="lab_gx").value == pytest.approx(views.lab_defaults(100, 100)["gx"]), "the window restarts"
    figure(at, "and the window")


def test_the_window_and_its_image_survive_a_trip_to_other_pages(monkeypatch, tmp_path):
    # The window of a 100 x 100 image lies beyond a 28 x 28 image's sliders: the image comes back with it.
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("attention_lab.py")
    at.selectbox(key="lab_dataset").set_value("mnist-cluttered").run()
    at = set_window(at, gx=80.0, delta=4.0)
    at.number_input(key="lab_digit").set_value(3).run()
    switch_pages_by_sidebar(at, *("home.py", "reparameterization.py", "attention_lab.py"))
    assert at.selectbox(key="lab_dataset").value == "mnist-cluttered"
    assert at.slider(key="lab_gx").value == 80.0 and at.slider(key="lab_delta").value == 4.0
    assert at.number_input(key="lab_digit").value == 3


@pytest.mark.parametrize("digit", ["²", "9" * 5000, "-3", "x"])
def test_a_link_with_a_digit_that_is_no_whole_number_in_range_opens_the_lab(monkeypatch, tmp_path, digit):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = lab_at({"n": "5", "digit": digit})
    largest = at.number_input(key="lab_digit").max
    assert at.number_input(key="lab_digit").value == (largest if digit.startswith("99") else 0)


def test_a_colour_image_is_read_per_channel_in_colour(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("attention_lab.py")
    at.selectbox(key="lab_dataset").set_value("cifar10").run()
    at = set_window(at, n=4, delta=3.0, gx=13.0, gy=15.0, sigma2=2.0, gamma=2.0)
    image = figure(at, "and the window")["data"][0]
    assert image["type"] == "image" and len(image["z"][0][0]) == 3, "the CIFAR image is drawn in colour"
    params = AttentionParams(*(torch.tensor([v]) for v in (13.0, 15.0, 3.0, 2.0, 2.0)))
    Fx, Fy = filterbank(params, 4, 32, 32)
    x = get_dataset("cifar10").sample()[0][0].double()  # (3, 32, 32)
    glimpse = 2.0 * Fy[0].double() @ x @ Fx[0].double().T  # eq. 27 on each channel: (3, 4, 4)
    drawn = np.asarray(figure(at, "glimpse γ")["data"][0]["z"])  # (4, 4, 3), 0..255 over [0, its peak]
    expected = np.rint(glimpse.permute(1, 2, 0).numpy() / glimpse.max().item() * 255)
    assert drawn.shape == (4, 4, 3) and drawn == pytest.approx(expected, abs=1)
    assert "3 channels" in figure(at, "glimpse γ")["layout"]["title"]["text"]
    assert any("each of its 3 channels" in caption.value for caption in at.caption)


def test_a_60_by_60_image_opens_with_a_window_grown_for_it(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("attention_lab.py")
    at.selectbox(key="lab_dataset").set_value("mnist-two").run()
    assert_no_exception(at)
    defaults = views.lab_defaults(60, 60)
    assert at.slider(key="lab_delta").value == pytest.approx(defaults["delta"]) == pytest.approx(6.4)
    assert at.slider(key="lab_gx").max == views.lab_ranges(60, 60)["gx"][1]
    # eqs 19-20: mu^1 = g - 2 delta for N = 5, 0-based
    assert viz.window_box(figure(at, "and the window")["data"], "read")[0] == pytest.approx(30.5 - 2 * 6.4 - 1)
    assert "60×60" in figure(at, "and the window")["layout"]["title"]["text"]
    assert not any("channels" in caption.value for caption in at.caption)  # one channel: no colour note


def test_a_two_digit_image_names_its_label_with_both_digits(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("attention_lab.py")
    at.selectbox(key="lab_dataset").set_value("mnist-two").run()
    at.number_input(key="lab_digit").set_value(3).run()  # a 0, then a 1: label 1
    assert "mnist-two image 3 (label 01," in figure(at, "and the window")["layout"]["title"]["text"]


@pytest.mark.parametrize(
    "cfg, dataset, shape",
    [(TINY, "mnist-sample", "28×28"), (TINY_COLOUR, "cifar10", "32×32×3"), (TINY_TWO, "mnist-two", "60×60")],
)
def test_it_opens_on_the_selected_models_dataset(monkeypatch, tmp_path, cfg, dataset, shape):
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    tiny_checkpoint(runs, "model", cfg)
    at = open_page("attention_lab.py")
    assert at.selectbox(key="lab_dataset").value == dataset
    assert f"{dataset} image 0" in figure(at, "and the window")["layout"]["title"]["text"]
    assert shape in figure(at, "and the window")["layout"]["title"]["text"]


def follow_link(at: AppTest, query: dict) -> AppTest:
    """Open the lab from a page's link carrying `query`, in the same session (the address holds only the link's)."""
    at.query_params.clear()
    at.query_params.update(query)
    at.switch_page("pages/attention_lab.py").run()
    assert_no_exception(at)
    return at


def test_the_link_from_a_colour_models_reconstruct_opens_the_lab_on_its_cifar_image(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    tiny_checkpoint(runs, "colour", TINY_COLOUR)
    at = open_page("attention_lab.py")
    at.selectbox(key="lab_dataset").set_value("mnist").run()  # this session last looked at an MNIST digit here
    at.switch_page("pages/reconstruct.py").run()
    at.number_input(key="reconstruct_index").set_value(3).run()
    assert_no_exception(at)
    query = link_query(at)
    assert query["dataset"] == "cifar10" and query["digit"] == "3"
    at = follow_link(at, query)
    assert at.selectbox(key="lab_dataset").value == "cifar10" and at.number_input(key="lab_digit").value == 3
    spec = figure(at, "and the window")
    assert "cifar10 image 3" in spec["layout"]["title"]["text"]
    expected = np.rint(get_dataset("cifar10").sample()[0][3].permute(1, 2, 0).numpy() * 255)  # (32, 32, 3)
    assert np.asarray(spec["data"][0]["z"]) == pytest.approx(expected, abs=0.51), "the image Reconstruct showed"
    assert at.slider(key="lab_gx").value == views.lab_settings(query, 32, 32)[0]["gx"], "and its read window"
    assert at.query_params["dataset"] == "cifar10" and not at.warning
    at.selectbox(key="lab_dataset").set_value("mnist").run()  # the link is applied once: a later choice stays
    assert_no_exception(at)
    assert at.selectbox(key="lab_dataset").value == "mnist" and at.query_params["dataset"] == "mnist"


@pytest.mark.parametrize(
    "name, why", [("nope", "is not one of mnist, mnist-sample"), ("svhn", "has no sample on this server")]
)
def test_a_dataset_in_the_url_the_lab_cannot_show_is_said_and_the_default_shown(monkeypatch, tmp_path, name, why):
    if name in views.sample_datasets():
        pytest.skip(f"{name}'s files are under DRAW_DATA_DIR here, so the lab can show it")
    use_folders(monkeypatch, tmp_path, runs=[])
    at = lab_at({"dataset": name, "digit": "2"})
    default = views.sample_datasets()[0]
    assert at.selectbox(key="lab_dataset").value == default
    assert len(at.warning) == 1
    assert f"dataset '{name}' {why}" in at.warning[0].value and f"showing {default}" in at.warning[0].value
    assert at.number_input(key="lab_digit").value == 2, "the rest of the link still applies"
    assert at.query_params["dataset"] == default  # the address now names what is shown


@pytest.mark.parametrize(("carried", "kind"), [("write", "write"), ("read", "read"), ("bogus", "read")])
def test_a_write_window_from_a_link_is_drawn_as_one(monkeypatch, tmp_path, carried, kind):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = lab_at({"n": "5", "gx": "11", "gy": "15", "delta": "2", "sigma2": "1", "gamma": "1", "window": carried})
    assert at.radio(key="lab_window_kind").value == kind and at.query_params["window"] == kind
    data = figure(at, "and the window")["data"]
    other = "read" if kind == "write" else "write"
    assert viz.window_box(data, kind)[0] == pytest.approx(11 - 2 * 2 - 1)  # eqs 19-20: mu^1 = gX - 2 delta, 0-based
    assert viz.window_box(data, other) is None, "only the carried kind is drawn"


def test_changing_the_dataset_keeps_the_window_kind_and_grid_centres(monkeypatch, tmp_path):
    """Only the sliders depend on the image size: a write window stays a write window, hidden centres stay hidden."""
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("attention_lab.py")
    at.radio(key="lab_window_kind").set_value("write")
    at.toggle(key="lab_centres").set_value(False).run()
    at.selectbox(key="lab_dataset").set_value("mnist-cluttered").run()
    assert_no_exception(at)
    assert at.radio(key="lab_window_kind").value == "write" and at.query_params["window"] == "write"
    assert at.toggle(key="lab_centres").value is False
    assert viz.window_box(figure(at, "and the window")["data"], "read") is None, "still drawn as a write window"
