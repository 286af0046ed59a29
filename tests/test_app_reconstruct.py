"""AppTest of the Reconstruct page: test digits, uploads (good and bad), the drawing canvas, the timeline with the
read and write windows where the model put them, the KL bars a click jumps from, the link into the Attention lab;
colour and 60×60 models, uploads of any mode with their conversion notes, the noise in z."""

import io

import numpy as np
import pytest
import torch
from app_support import (
    STAND_IN_KIND,
    TINY,
    TINY_COLOUR,
    TINY_DATASETS,
    TINY_TWO,
    as_a_classifier,
    assert_no_exception,
    figure,
    open_page,
    switch_pages_by_sidebar,
    tiny_checkpoint,
    use_folders,
    use_shipped,
)
from PIL import Image
from timeline_support import drawn_window, follower, link_query, picture, timeline

from draw_core.config import DrawConfig
from draw_core.data import get_dataset, load_sample
from draw_core.io.checkpoint import load_checkpoint, save_checkpoint
from draw_core.nn.attention import window_geometry
from draw_core.nn.model import DRAW
from draw_core.present import posterior_noise, views, viz
from draw_core.present.render import window_line_width

INPUT = "input x"


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


def input_pixels(at) -> np.ndarray:
    """The input panel's image pixels (H, W), read back from its picture (grey levels at pixel centres)."""
    pixels, image = picture(timeline(at), INPUT, 1)
    scale = pixels.shape[1] / image["sizex"]
    pad = round(-0.5 - image["x"])
    H = round(image["sizey"]) - 2 * pad
    centres = ((pad + np.arange(H)) * scale + scale / 2).astype(int)
    return pixels[centres][:, centres, 0] / 255


def test_renders_a_test_digit_on_a_tiny_checkpoint(runs):
    at = open_page("reconstruct.py")
    spec = timeline(at)
    names = {image["name"] for image in spec["layout"]["images"]}
    for title in ("input x", "error x̂", "canvas σ", "reconstruction σ", "read from x:", "read from x̂", "step-bar"):
        assert any(name.startswith(title) for name in names), title
    assert any(a["text"].startswith("nats each glimpse") for a in spec["layout"]["annotations"])
    assert follower(at) == {"chart": "reconstruct_timeline", "step": 4, "frames": 4, "initial": 4}
    assert input_pixels(at) == pytest.approx(load_sample()[0][0, 0].numpy(), abs=0.5 / 254 + 1e-6)
    latex = " ".join(element.value for element in at.latex)
    for name in ("read", "error", "write", "kl"):
        assert views.EXPLANATIONS[name].latex in latex


def test_renders_on_the_shipped_checkpoint(monkeypatch, tmp_path):
    use_shipped(monkeypatch, tmp_path)
    at = open_page("reconstruct.py")
    assert at.slider(key="step").max == 64
    assert len(viz.timeline_steps(timeline(at))) == 64


def test_every_step_draws_the_read_and_write_windows_where_the_model_put_them(runs):
    at = open_page("reconstruct.py")
    at.number_input(key="reconstruct_index").set_value(3).run()
    model = load_checkpoint(runs / "tiny.safetensors").model
    x = load_sample()[0][3:4]
    trace = model.reconstruct(x, generator=torch.Generator().manual_seed(0))
    pad = viz.window_pad(28, 28)

    def expected(attention, N, step):
        window = window_geometry(attention.map(lambda v: v[step - 1, 0]), N)
        inset = window_line_width(float(window.sigma)) / 2
        low, high = -0.5 - pad + inset, 27.5 + pad - inset  # past the view: along its border
        return tuple(min(max(float(v), low), high) for v in (window.x0, window.y0, window.x1, window.y1))

    spec = timeline(at)
    for step in (1, 3):
        assert drawn_window(spec, "input x windows", step) == pytest.approx(expected(trace.read_attn, 2, step), abs=0.2)
        assert drawn_window(spec, "canvas σ(c<sub>t</sub>) windows", step) == pytest.approx(
            expected(trace.write_attn, 5, step), abs=0.2
        )
    assert expected(trace.read_attn, 2, 1) != pytest.approx(expected(trace.read_attn, 2, 3), abs=0.2)
    bars = next(t for t in spec["data"] if t["type"] == "bar")
    kl = views.kl_per_glimpse(trace)
    assert viz.spec_array(bars["y"]) == pytest.approx(kl.numpy(), abs=1e-5)
    assert list(viz.spec_array(bars["customdata"])) == [1, 2, 3, 4]  # a click on a bar names its step


def test_the_step_slider_moves_the_browser_and_the_lab_link_carries_the_read_window(runs):
    at = open_page("reconstruct.py")
    before = timeline(at)
    at.slider(key="step").set_value(2).run()
    assert follower(at)["step"] == 2 and timeline(at) == before
    assert at.query_params["step"] == "2"
    model = load_checkpoint(runs / "tiny.safetensors").model
    trace = model.reconstruct(load_sample()[0][0:1], generator=torch.Generator().manual_seed(0))
    window = views.window_at(trace.read_attn, model.cfg.read_n, 1, 0)
    query = link_query(at)
    assert query == views.lab_link(window, model.cfg.read_n, shape=(1, 28, 28), prefer="mnist-sample", digit=0)
    assert query["dataset"] == "mnist-sample" and query["digit"] == "0"


def test_grid_centres_keep_their_toggle_across_a_change_of_input(runs):
    at = open_page("reconstruct.py")
    at.toggle(key="reconstruct_centres").set_value(True).run()
    at.segmented_control(key="reconstruct_source").set_value("draw").run()  # waits for a drawing: the page stops
    at.segmented_control(key="reconstruct_source").set_value("sample").run()
    assert_no_exception(at)
    assert at.toggle(key="reconstruct_centres").value is True
    pixels, _ = picture(timeline(at), "input x windows", 4)
    assert ((pixels[..., 3] > 0) & (pixels[..., :3] == 255).all(-1)).any()  # and the centres are drawn


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
    digit = input_pixels(at)
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
    spec = timeline(at)
    assert not [image for image in spec["layout"]["images"] if image["name"].endswith("windows")]
    glimpse, image = picture(spec, "read from x: whole image (no read attention)", 1)
    scale = round(glimpse.shape[1] / image["sizex"])
    x = load_sample()[0][0, 0].numpy()
    # eq. 17 reads x itself; the glimpse panel is drawn over its own range 0..max
    levels = glimpse[scale // 2 :: scale, scale // 2 :: scale, 0] / 255
    assert levels == pytest.approx(x / x.max(), abs=1 / 254 + 1e-6)
    captions = " ".join(caption.value for caption in at.caption)
    assert "unscaled (eq. 17)" in captions and "γ-scaled" not in captions
    assert not [link for link in at.get("page_link") if "attention_lab" in link.proto.page]


def test_a_checkpoint_that_is_not_a_generator_gets_a_message_naming_its_kind(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    as_a_classifier(monkeypatch)
    at = open_page("reconstruct.py")
    assert any("generators" in info.value and STAND_IN_KIND in info.value for info in at.info)
    assert not at.get("plotly_chart")


# --- colour and 60x60 models, uploads of any mode, noise in z (issues 14 and 15) ---------------------------------

MODELS = {"grey 28×28": TINY, "colour 32×32": TINY_COLOUR, "two digits 60×60": TINY_TWO}
NOISE_FIGURES = ("8 draws of z ~ Q(z|x)", "std over the draws", "z = μ (no noise)", "posterior σ per dimension")


def open_model(monkeypatch, tmp_path, cfg: DrawConfig, dataset: str | None = None):
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    if dataset is None:
        tiny_checkpoint(runs, "model", cfg)
    else:
        save_checkpoint(DRAW(cfg), runs / "model.safetensors", meta={"dataset": dataset})
    return open_page("reconstruct.py"), runs / "model.safetensors"


def input_image(at, cfg: DrawConfig) -> np.ndarray:
    """The input panel's pixels (H, W, 3) as 0..255, read back at pixel centres."""
    pixels, image = picture(timeline(at), INPUT, 1)
    scale = pixels.shape[1] / image["sizex"]
    pad = round(-0.5 - image["x"])
    rows = ((pad + np.arange(cfg.height)) * scale + scale / 2).astype(int)
    cols = ((pad + np.arange(cfg.width)) * scale + scale / 2).astype(int)
    return pixels[rows][:, cols, :3].astype(int)


@pytest.mark.parametrize("cfg", MODELS.values(), ids=MODELS.keys())
def test_renders_a_test_image_of_the_models_own_dataset(monkeypatch, tmp_path, cfg):
    at, _ = open_model(monkeypatch, tmp_path, cfg)
    dataset = TINY_DATASETS[cfg]
    images, _ = get_dataset(dataset).sample()
    at.number_input(key="reconstruct_index").set_value(2).run()
    assert_no_exception(at)
    shown = input_image(at, cfg)  # (H, W, 3)
    expected = images[2].numpy().transpose(1, 2, 0) * 255  # (H, W, C)
    assert shown == pytest.approx(np.broadcast_to(expected, shown.shape), abs=1)
    assert any(dataset in caption.value for caption in at.caption)
    for title in NOISE_FIGURES:
        figure(at, title)
    at.slider(key="step").set_value(1).run()
    assert_no_exception(at)


def test_the_noise_section_shows_the_z_equal_to_mu_picture_and_sigma_of_the_chosen_step(monkeypatch, tmp_path):
    at, path = open_model(monkeypatch, tmp_path, TINY_TWO)
    model = load_checkpoint(path).model
    x = get_dataset("mnist-two").sample()[0][0]
    picture = figure(at, "z = μ (no noise)")["layout"]["images"][0]  # a PNG of 255 grey levels
    pixels = viz.png_pixels(picture["source"])
    scale = pixels.shape[1] // picture["sizex"]
    mean = pixels[scale // 2 :: scale, scale // 2 :: scale, 0] / 255
    assert mean == pytest.approx(posterior_noise.mean_reconstruction(model, x)[0].numpy(), abs=1.01 / 255)
    draws = figure(at, "8 draws of z ~ Q(z|x)")["layout"]["images"][0]
    assert (draws["sizey"], draws["sizex"]) == (2 * 61 + 1, 4 * 61 + 1)  # 2 rows of 4 draws, 1 pixel apart
    noise = posterior_noise.posterior_noise(model, x, seed=0)
    bars = figure(at, "posterior σ per dimension at t = 4")["data"][0]
    assert viz.spec_array(bars["y"]) == pytest.approx(noise.sigma_per_dimension(3).numpy(), abs=1e-5)
    at.slider(key="step").set_value(1).run()
    bars = figure(at, "posterior σ per dimension at t = 1")["data"][0]
    assert viz.spec_array(bars["y"]) == pytest.approx(noise.sigma_per_dimension(0).numpy(), abs=1e-5)
    at.toggle(key="reconstruct_sigma_all").set_value(True).run()
    bars = figure(at, "posterior σ per dimension averaged over all steps")["data"][0]
    assert viz.spec_array(bars["y"]) == pytest.approx(noise.sigma_per_dimension().numpy(), abs=1e-5)
    at.slider(key="step").set_value(3).run()  # the choice stays while the step moves
    assert at.toggle(key="reconstruct_sigma_all").value is True
    prior = figure(at, "averaged over all steps")["data"][1]
    assert list(prior["y"]) == [1.0, 1.0]
    assert any(posterior_noise.WHAT_NOISE_BUYS in markdown.value for markdown in at.markdown)
    captions = " ".join(caption.value for caption in at.caption)
    for name in ("spread", "sigma"):
        assert posterior_noise.EXPLANATIONS[name].notice in captions


def encoded(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def a_scene(mode: str) -> bytes:
    """A 48x64 picture in `mode`: a colour or grey left half, white right half."""
    rgb = np.full((48, 64, 3), 255, dtype=np.uint8)
    rgb[:, :32] = (30, 140, 60)
    if mode == "RGBA":
        rgba = np.zeros((48, 64, 4), dtype=np.uint8)
        rgba[:, :32] = (30, 140, 60, 255)  # transparent right half
        return encoded(Image.fromarray(rgba, "RGBA"))
    if mode == "P":
        return encoded(Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE))
    if mode == "I;16":
        return encoded(Image.fromarray(rgb[..., 1].astype(np.uint16) * 257))
    return encoded(Image.fromarray(rgb[..., 1]))  # "L"


@pytest.mark.parametrize(
    "mode,note",
    [
        ("RGBA", "composited onto white paper"),
        ("P", "palette image (mode P)"),
        ("I;16", "16-bit grey levels"),
        ("L", "grey copied into red, green and blue"),
    ],
)
def test_uploads_of_any_mode_into_a_colour_model_say_what_was_converted(monkeypatch, tmp_path, mode, note):
    at, _ = open_model(monkeypatch, tmp_path, TINY_COLOUR)
    at = upload(at, f"scene-{mode}.png", a_scene(mode))
    assert_no_exception(at)
    assert not at.error
    notes = [info.value for info in at.info if info.value.startswith("Converted for this model")]
    assert len(notes) == 1 and note in notes[0] and "resized from 64×48 to 32×32" in notes[0]
    shown = input_image(at, TINY_COLOUR)
    green = (30, 140, 60) if mode in ("RGBA", "P") else (140, 140, 140)  # a grey file holds the green channel
    # the middle 48x48 is kept: its left half the scene's colour, its right half white
    assert shown[16, 4] == pytest.approx(green, abs=3) and shown[16, -4] == pytest.approx((255, 255, 255), abs=3)


def test_a_colour_upload_into_a_grey_model_is_converted_to_grey_with_a_note(runs):
    at = upload(open_page("reconstruct.py"), "scene.png", a_scene("P"))
    assert_no_exception(at)
    notes = [info.value for info in at.info if info.value.startswith("Converted for this model")]
    assert len(notes) == 1 and "expanded to its RGB colours" in notes[0] and "converted to grey" in notes[0]
    assert input_pixels(at).shape == (28, 28)


@pytest.mark.parametrize("cfg", [TINY, TINY_COLOUR], ids=["grey", "colour"])
def test_a_text_file_upload_gives_an_error_message_not_an_exception(monkeypatch, tmp_path, cfg):
    at, _ = open_model(monkeypatch, tmp_path, cfg)
    at = upload(at, "notes.txt", b"these are my lecture notes\n", mime="text/plain")
    assert_no_exception(at)
    assert any("notes.txt" in e.value and "not an image" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("plotly_chart")


def test_a_model_whose_dataset_has_no_data_here_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path / "no-data"))
    at, _ = open_model(monkeypatch, tmp_path, TINY_COLOUR, dataset="svhn")
    infos = " ".join(info.value for info in at.info)
    assert "svhn is not on this server" in infos and "train_32x32.mat" in infos and "cifar10" in infos
    assert any("cifar10" in caption.value for caption in at.caption)  # meanwhile a CIFAR-10 test image
    figure(at, "z = μ (no noise)")


def test_drawing_for_a_60x60_model_uses_the_whole_field(monkeypatch, tmp_path):
    at, _ = open_model(monkeypatch, tmp_path, TINY_TWO)
    at.segmented_control(key="reconstruct_source").set_value("draw").run()
    assert_no_exception(at)
    assert any("Draw a digit" in info.value for info in at.info)
    assert any("60×60 field" in caption.value for caption in at.caption)


def test_a_two_digit_test_image_names_its_label_with_both_digits(monkeypatch, tmp_path):
    at, _ = open_model(monkeypatch, tmp_path, TINY_TWO)
    at.number_input(key="reconstruct_index").set_value(3).run()  # a 0, then a 1: label 1
    assert any("mnist-two · label 01" in caption.value for caption in at.caption), [c.value for c in at.caption]


def test_an_upload_for_a_60x60_model_keeps_its_layout_with_a_note(monkeypatch, tmp_path):
    at, _ = open_model(monkeypatch, tmp_path, TINY_TWO)
    paper = np.full((60, 60), 255, dtype=np.uint8)
    paper[5:25, 5:10] = 0  # a dark "1" at the top left, another at the bottom right
    paper[35:55, 45:50] = 0
    at = upload(at, "two.png", png_bytes(paper))
    assert_no_exception(at)
    assert not at.error
    shown = input_image(at, TINY_TWO)[..., 0] / 255
    assert shown == pytest.approx((paper == 0).astype(float), abs=1 / 254), "each digit stays where it was"
    notes = [info.value for info in at.info if info.value.startswith("Converted for this model")]
    assert len(notes) == 1 and "laid out as in the picture, not centred like one MNIST digit" in notes[0]


def test_the_input_and_seed_survive_a_trip_to_the_lab_and_back(runs):
    at = open_page("reconstruct.py")
    at.number_input(key="reconstruct_index").set_value(7).run()
    at.number_input(key="reconstruct_seed").set_value(5).run()
    switch_pages_by_sidebar(at, *("attention_lab.py", "home.py", "reconstruct.py"))
    assert at.number_input(key="reconstruct_index").value == 7
    assert at.number_input(key="reconstruct_seed").value == 5
    at.segmented_control(key="reconstruct_source").set_value("upload").run()
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/reconstruct.py").run()
    assert at.segmented_control(key="reconstruct_source").value == "upload"


def test_a_remembered_test_image_beyond_another_models_sample_is_brought_within_it(runs):
    tiny_checkpoint(runs, "colour", TINY_COLOUR)  # its shipped sample holds 64 CIFAR-10 images, MNIST's 500
    at = open_page("reconstruct.py")
    at.selectbox(key="checkpoint").set_value("run/tiny").run()
    at.number_input(key="reconstruct_index").set_value(400).run()
    at.selectbox(key="checkpoint").set_value("run/colour").run()
    assert_no_exception(at)
    assert at.number_input(key="reconstruct_index").value == 63


@pytest.mark.parametrize(("in_url", "expected"), [("2", 2), ("999", 4), ("banana", 4)])
def test_a_shared_link_opens_at_its_step(runs, in_url, expected):
    at = open_page("reconstruct.py", query={"step": in_url})
    assert at.slider(key="step").value == expected  # the tiny model has T = 4: out of range is clamped, junk is T
    assert follower(at)["step"] == expected
