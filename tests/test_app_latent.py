"""AppTest of the Latent explorer: it opens on the step with the most KL, sliders ordered by KL, the image and the
sliders always show the same z (drag, reset, randomise, paste), interpolation, walk; a colour model's pictures are
PNGs."""

import json

import numpy as np
import pytest
import torch
from app_support import (
    STAND_IN_KIND,
    TINY_COLOUR,
    TINY_TWO,
    as_a_classifier,
    assert_no_exception,
    damaged_mnist,
    figure,
    figures,
    open_page,
    tiny_checkpoint,
    use_folders,
    use_shipped,
)

from draw_core.config import DrawConfig
from draw_core.data import get_dataset
from draw_core.io.checkpoint import load_checkpoint
from draw_core.present import latent, views, viz

SAMPLES = 16


@pytest.fixture
def runs(monkeypatch, tmp_path):
    return use_folders(monkeypatch, tmp_path)


def image(at) -> np.ndarray:
    return viz.spec_array(figure(at, "drawn from this z")["data"][0]["z"])


def picture(at, title: str) -> np.ndarray:
    """(H, W, 3) pixels 0..255 of the PNG picture titled '...title...' (canvas_size.picture_figure: no traces, one
    layout image), read at the image pixels' centres."""
    spec = figure(at, title)
    assert spec["data"] == [], f"'{title}' should be a PNG layout image, not a trace"
    source = spec["layout"]["images"][0]
    pixels = viz.png_pixels(source["source"])
    scale = pixels.shape[1] // source["sizex"]
    return pixels[scale // 2 :: scale, scale // 2 :: scale, :3].astype(np.float64)


def tile(pixels: np.ndarray, row: int, column: int, H: int, W: int) -> np.ndarray:
    """The image at (row, column) of a grid of H x W images 1 pixel apart (viz.tile)."""
    return pixels[1 + row * (H + 1) : 1 + row * (H + 1) + H, 1 + column * (W + 1) : 1 + column * (W + 1) + W]


def grey(image: np.ndarray) -> np.ndarray:
    """A grey image (H, W) in [0, 1] as the picture's pixels (H, W, 3) 0..255."""
    return np.repeat(image[..., None] * 255, 3, axis=-1)


def latent_sliders(at) -> list:
    return [s for s in at.slider if s.key.startswith("latent_dim_")]


def slider_step_and_dim(slider) -> tuple[int, int]:
    """(t, d) a z slider edits, from its key latent_dim_step_<t>_<d> (t 0-based)."""
    _, _, _, t, d = slider.key.split("_")
    return int(t), int(d)


def kl_of(path) -> torch.Tensor:
    """(T, Z) KL per step and dimension as the page measures it: 100 test digits of mnist-sample, noise seed 0."""
    images = get_dataset("mnist-sample").test_set(limit=100)
    return latent.kl_per_dimension(load_checkpoint(path).model, images, torch.Generator().manual_seed(0))


def open_expander(at, key: str) -> None:
    """Open the page's expander `key` as a click would (its contents are drawn only while it is open)."""
    at.session_state[key] = True
    at.run()
    assert_no_exception(at)


def assert_sliders_show_the_drawn_z(at, path) -> np.ndarray:
    """Every z slider's value is the drawn z's value (the z the page shows as JSON), and the image is what the
    model draws from that z; returns that z (T, Z)."""
    if not at.code:
        open_expander(at, "latent_json_box")
    z = np.array(json.loads(at.code[0].value), dtype=np.float32)
    for slider in latent_sliders(at):
        t, d = slider_step_and_dim(slider)
        assert slider.value == pytest.approx(float(np.clip(z[t, d], -4, 4)), abs=1e-4), slider.key
    assert image(at) == pytest.approx(drawn(path, torch.from_numpy(z)), abs=1e-3)  # z as JSON has 4 decimals
    return z


def drawn(path, z: torch.Tensor) -> np.ndarray:
    """sigma(c_T) the model draws from z (T, Z)."""
    return load_checkpoint(path).model.generate(1, z=z.unsqueeze(1)).canvases[-1, 0, 0].numpy()


def seed_z(path, seed: int = 0, sample: int = 0) -> torch.Tensor:
    cfg = load_checkpoint(path).config
    return latent.prior_z(seed, cfg.T, cfg.z_size, SAMPLES)[:, sample].clone()


def test_renders_on_a_tiny_checkpoint(runs):
    at = open_page("latent.py")
    for title in ("drawn from this z", "canvas at t", "seed 0 → seed 1", "down,"):
        figure(at, title)
    assert image(at) == pytest.approx(drawn(runs / "tiny.safetensors", seed_z(runs / "tiny.safetensors")), abs=1e-5)
    latex = " ".join(element.value for element in at.latex)
    captions = " ".join(caption.value for caption in at.caption)
    assert "window" not in captions, "no picture on this page draws a window"
    for name in (
        "latent_picture",
        "canvas_whole",
        "kl_average",
        "interpolation",
        "walk",
    ):  # every chart: its equation, what to see
        assert views.EXPLANATIONS[name].latex in latex and views.EXPLANATIONS[name].notice in captions, name


def test_renders_on_the_shipped_checkpoint(monkeypatch, tmp_path):
    use_shipped(monkeypatch, tmp_path)
    at = open_page("latent.py")
    assert len(latent_sliders(at)) == 10  # the top 10; the other 90 wait in a closed expander
    open_expander(at, "latent_more")
    assert len(latent_sliders(at)) == 20  # and its first group of 10


def test_moving_a_latent_slider_redraws_the_image_from_the_new_z(runs):
    path = runs / "tiny.safetensors"
    at = open_page("latent.py")
    before = image(at)
    slider = latent_sliders(at)[0]
    t, d = slider_step_and_dim(slider)
    slider.set_value(3.0).run()
    assert_no_exception(at)
    z = seed_z(path)
    z[t, d] = 3.0
    assert image(at) == pytest.approx(drawn(path, z), abs=1e-5)
    assert not np.allclose(image(at), before, atol=1e-4)
    at.button(key="latent_reset").click().run()
    assert image(at) == pytest.approx(before, abs=1e-6)
    assert latent_sliders(at)[0].value == pytest.approx(float(seed_z(path)[t, d]), abs=1e-6)
    assert_sliders_show_the_drawn_z(at, path)


def test_opens_on_the_step_with_the_most_kl_and_shows_kl_per_step(runs):
    path = runs / "tiny.safetensors"
    at = open_page("latent.py")
    kl = kl_of(path)
    per_step = kl.sum(1)  # (T,) nats per step
    busiest = int(per_step.argmax())
    assert at.slider(key="latent_step").value == busiest + 1
    assert {slider_step_and_dim(s)[0] for s in latent_sliders(at)} == {busiest}
    top = slider_step_and_dim(latent_sliders(at)[0])[1]
    assert top == int(kl[busiest].argmax())  # the first slider is the dimension that spends most at that step
    bars = figures(at)[0]["data"][0]
    assert viz.spec_array(bars["y"]) == pytest.approx(per_step.numpy(), abs=1e-5)
    colours = bars["marker"]["color"]
    assert [i for i, c in enumerate(colours) if colours.count(c) == 1] == [busiest]  # the current step's bar stands out


def test_randomise_and_a_pasted_z_move_the_sliders_to_what_is_drawn(runs):
    path = runs / "tiny.safetensors"
    at = open_page("latent.py")
    latent_sliders(at)[0].set_value(2.0).run()
    at.button(key="latent_randomise").click().run()
    assert_no_exception(at)
    z = assert_sliders_show_the_drawn_z(at, path)
    assert not np.allclose(z, seed_z(path).numpy(), atol=1e-3)
    pasted = np.round(np.linspace(-1, 1, 4 * 8), 2).reshape(4, 8)
    at.text_area(key="latent_json").set_value(json.dumps(pasted.tolist())).run()
    at.button(key="latent_apply_json").click().run()
    assert_no_exception(at)
    assert assert_sliders_show_the_drawn_z(at, path) == pytest.approx(pasted, abs=1e-6)


def test_sliders_are_ordered_by_kl_and_every_dimension_is_reachable(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    path = tiny_checkpoint(runs, "wide", DrawConfig(T=2, enc_size=16, dec_size=16, z_size=25))
    at = open_page("latent.py")
    kl = kl_of(path)
    order = latent.dims_by_kl(kl, int(kl.sum(1).argmax()))  # the page opens on the step with the most KL

    def shown() -> list[int]:
        return [int(s.key.split("_")[-1]) for s in latent_sliders(at)]

    # ten at a time fill a left and a right column alternately (read column by column): the top 10, and in the
    # expander the chosen group of KL ranks
    assert "other 15 dimensions" in at.expander[0].label
    assert shown() == order[0:10:2] + order[1:10:2]
    open_expander(at, "latent_more")
    assert shown() == order[0:10:2] + order[1:10:2] + order[10:20:2] + order[11:20:2]
    at.selectbox(key="latent_group").set_value((20, 25)).run()
    assert_no_exception(at)
    assert shown() == order[0:10:2] + order[1:10:2] + order[20:25:2] + order[21:25:2]
    assert sorted(shown()[10:] + order[:20]) == list(range(25))  # every dimension has a slider in some group


def test_same_z_at_every_step(runs):
    path = runs / "tiny.safetensors"
    at = open_page("latent.py")
    at.radio(key="latent_mode").set_value("shared").run()
    assert_no_exception(at)
    slider = latent_sliders(at)[0]
    d = int(slider.key.split("_")[-1])
    slider.set_value(-2.5).run()
    shared = seed_z(path)[0].clone()
    shared[d] = -2.5
    assert image(at) == pytest.approx(drawn(path, shared.expand(4, 8)), abs=1e-5)


def test_z_as_json_copies_and_pastes(runs):
    path = runs / "tiny.safetensors"
    at = open_page("latent.py")
    assert not at.code, "z as JSON is written out only while its expander is open"
    open_expander(at, "latent_json_box")
    copied = json.loads(at.code[0].value)
    assert np.allclose(copied, seed_z(path).numpy(), atol=1e-4)
    at.text_area(key="latent_json").set_value("[1, 2, 3]").run()
    at.button(key="latent_apply_json").click().run()
    assert_no_exception(at)
    assert any("can't be used" in e.value and "shape" in e.value for e in at.error)
    pasted = [0.5, -0.5, 1.0, 0.0, 2.0, -1.0, 0.25, 0.0]
    at.text_area(key="latent_json").set_value(json.dumps(pasted)).run()
    at.button(key="latent_apply_json").click().run()
    assert not at.error
    assert image(at) == pytest.approx(drawn(path, torch.tensor(pasted).expand(4, 8)), abs=1e-5)


def test_interpolation_strip_and_walk_grid_have_the_chosen_sizes(runs):
    at = open_page("latent.py")
    at.slider(key="latent_interpolation_n").set_value(5).run()
    at.select_slider(key="latent_walk_k").set_value(3).run()
    assert_no_exception(at)
    assert picture(at, "slerp").shape == (28 + 2, 5 * 28 + 6, 3)
    assert picture(at, "down,").shape == (3 * 28 + 4, 3 * 28 + 4, 3)


def test_the_strip_and_the_walk_follow_their_choices(runs):
    """Both are cached figures: each choice must still draw its own (the ends of the strip are the two seeds' z, the
    walk's corner is z with both dimensions at -s, from z as it was when the button was pressed)."""
    path = runs / "tiny.safetensors"
    at = open_page("latent.py")
    H = W = 28
    assert tile(picture(at, "slerp"), 0, 7, H, W) == pytest.approx(grey(drawn(path, seed_z(path, 1))), abs=1.01)
    at.number_input(key="latent_seed_b").set_value(5).run()
    assert_no_exception(at)
    assert "seed 0 → seed 5" in figure(at, "slerp")["layout"]["title"]["text"]
    assert tile(picture(at, "slerp"), 0, 7, H, W) == pytest.approx(grey(drawn(path, seed_z(path, 5))), abs=1.01)
    assert tile(picture(at, "slerp"), 0, 0, H, W) == pytest.approx(grey(drawn(path, seed_z(path, 0))), abs=1.01)

    latent_sliders(at)[0].set_value(3.0).run()
    at.button(key="latent_walk_update").click().run()
    at.slider(key="latent_walk_span").set_value(1.5).run()
    assert_no_exception(at)
    z = assert_sliders_show_the_drawn_z(at, path)
    t = at.slider(key="latent_step").value - 1
    first, second = at.selectbox(key="latent_walk_first").value, at.selectbox(key="latent_walk_second").value
    corner = torch.from_numpy(z).clone()
    corner[t, first] = corner[t, second] = -1.5
    assert f"at step t={t + 1}" in figure(at, "down,")["layout"]["title"]["text"]
    assert tile(picture(at, "down,"), 0, 0, H, W) == pytest.approx(grey(drawn(path, corner)), abs=1.01)


def test_no_checkpoint_says_how_to_get_one_and_stops(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("latent.py")
    assert any("No checkpoint is selected" in info.value for info in at.info)
    assert not latent_sliders(at)


def test_a_checkpoint_that_is_not_a_generator_gets_a_message_naming_its_kind(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    as_a_classifier(monkeypatch)
    at = open_page("latent.py")
    assert any("generators" in info.value and STAND_IN_KIND in info.value for info in at.info)
    assert not latent_sliders(at) and not at.get("plotly_chart")


def colour_canvas(path, z: torch.Tensor) -> np.ndarray:
    """(H, W, 3) the colour picture sigma(c_T) the model draws from z (T, Z), as the page's RGB pixels 0..255."""
    canvas = load_checkpoint(path).model.generate(1, z=z.unsqueeze(1)).canvases[-1, 0]  # (3, H, W)
    return np.rint(canvas.permute(1, 2, 0).numpy() * 255)


def test_a_colour_model_draws_in_colour_with_no_test_set_here(monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path / "no-data"))
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    path = tiny_checkpoint(runs, "colour", TINY_COLOUR)
    at = open_page("latent.py")
    before = picture(at, "drawn from this z")  # a PNG: an RGB image trace would send every sub-pixel as JSON
    assert before == pytest.approx(colour_canvas(path, seed_z(path)), abs=0.51)
    assert picture(at, "canvas at t").shape == (32 + 2, 4 * 32 + 5, 3)  # T = 4 steps
    strip = picture(at, "slerp")
    assert (np.ptp(strip, axis=-1) > 0).any(), "the strip is drawn in colour"
    assert tile(strip, 0, 7, 32, 32) == pytest.approx(colour_canvas(path, seed_z(path, 1)), abs=0.51)
    assert picture(at, "down,").shape == (5 * 32 + 6, 5 * 32 + 6, 3)
    assert any("No test set of 32×32×3 images" in caption.value for caption in at.caption)
    first = latent_sliders(at)[0]
    first.set_value(3.0).run()
    assert_no_exception(at)
    t, d = slider_step_and_dim(first)
    z = seed_z(path)
    z[t, d] = 3.0
    assert picture(at, "drawn from this z") == pytest.approx(colour_canvas(path, z), abs=0.51)
    assert not np.array_equal(picture(at, "drawn from this z"), before), "the slider redraws the colour picture"


def test_a_60_by_60_model_draws_its_canvas_whole(monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path / "no-data"))
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    path = tiny_checkpoint(runs, "two", TINY_TWO)
    at = open_page("latent.py")
    assert image(at).shape == (60, 60)
    assert image(at) == pytest.approx(drawn(path, seed_z(path)), abs=1e-5)
    assert picture(at, "down,").shape == (5 * 60 + 6, 5 * 60 + 6, 3)
    assert picture(at, "canvas at t").shape == (60 + 2, 4 * 60 + 5, 3)  # T = 4 steps
    assert any("No test set of 60×60 images" in caption.value for caption in at.caption)


def test_a_colour_models_kl_is_measured_on_cifar_and_says_which_copy(monkeypatch, tmp_path):
    if not get_dataset("cifar10").available():
        pytest.skip("CIFAR-10 is not under DRAW_DATA_DIR")
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    path = tiny_checkpoint(runs, "colour", TINY_COLOUR)
    at = open_page("latent.py")
    caption = next(c.value for c in at.caption if "test images of cifar10" in c.value)
    assert get_dataset("cifar10").copy_description() in caption
    kl = latent.kl_per_dimension(
        load_checkpoint(path).model, get_dataset("cifar10").test_set(limit=100), torch.Generator().manual_seed(0)
    )
    step = latent.busiest_step(kl)
    best = latent.dims_by_kl(kl, step)[0]
    assert latent_sliders(at)[0].label == f"z[{best}] · {float(kl[step, best]):.2f} nats"


def test_a_damaged_test_set_leaves_the_sliders_in_index_order_with_the_file_named(monkeypatch, tmp_path):
    use_shipped(monkeypatch, tmp_path)  # mnist: its own dataset, MNIST, is measured first
    monkeypatch.setenv("DRAW_DATA_DIR", str(damaged_mnist(tmp_path / "data")))
    at = open_page("latent.py")
    assert_no_exception(at)
    warnings = " ".join(warning.value for warning in at.warning)
    assert "not ordered by KL" in warnings and "t10k-images-idx3-ubyte holds 100 bytes" in warnings, warnings
    assert any("sliders are in index order" in caption.value for caption in at.caption)
    figure(at, "drawn from this z")


def test_in_shared_mode_a_paste_of_different_steps_is_refused_and_the_walk_needs_two_dimensions(runs):
    path = runs / "tiny.safetensors"
    at = open_page("latent.py")
    at.radio(key="latent_mode").set_value("shared").run()
    before = image(at)
    open_expander(at, "latent_json_box")
    steps = [[float(t)] * 8 for t in range(4)]  # T = 4 different z: not one shared z
    at.text_area(key="latent_json").set_value(json.dumps(steps)).run()
    at.button(key="latent_apply_json").click().run()
    assert_no_exception(at)
    assert any("these steps differ" in e.value for e in at.error)
    assert image(at) == pytest.approx(before), "nothing drawn that the sliders do not show"
    first = at.selectbox(key="latent_walk_first").value
    assert first not in at.selectbox(key="latent_walk_second").options
    assert image(at) == pytest.approx(drawn(path, seed_z(path)[0].expand(4, 8)), abs=1e-5)
