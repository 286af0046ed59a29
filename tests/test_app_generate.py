"""AppTest of the Generate page: the timeline (every step, the write window where the model put it), the server's
step handed to the browser, URL state, page switches, the link into the Attention lab; colour and 60×60 models, the
same z on a larger canvas and the parameter count against the image size."""

import json

import numpy as np
import pytest
from app_support import (
    APP,
    STAND_IN_KIND,
    TIMEOUT,
    TINY,
    TINY_COLOUR,
    TINY_TWO,
    as_a_classifier,
    assert_no_exception,
    figure,
    figures,
    open_page,
    switch_pages_by_sidebar,
    tiny_checkpoint,
    use_folders,
    use_shipped,
)
from streamlit.testing.v1 import AppTest
from timeline_support import drawn_window, follower, link_query, picture, timeline

import app_views
from draw_core.config import DrawConfig
from draw_core.io.checkpoint import load_checkpoint
from draw_core.nn.attention import window_geometry
from draw_core.present import canvas_size, views, viz
from draw_core.present.latent import prior_z
from draw_core.present.render import window_line_width

SAMPLES = 16
WINDOWS = "canvas σ(c<sub>t</sub>) windows"  # the timeline's layout image of the canvas panel's write window


def expected_window(path, seed: int, sample: int, step: int) -> tuple[float, float, float, float]:
    """The write window of (seed, sample) at `step`, computed straight from the model, as the padded view shows it:
    an edge past the view runs along its border (half a border inside)."""
    model = load_checkpoint(path).model
    cfg = model.cfg
    trace = model.generate(SAMPLES, z=prior_z(seed, cfg.T, cfg.z_size, SAMPLES))
    window = window_geometry(trace.write_attn.map(lambda v: v[step - 1, sample]), cfg.write_n)
    pad, inset = viz.window_pad(cfg.height, cfg.width), window_line_width(float(window.sigma)) / 2
    low, high = -0.5 - pad + inset, cfg.width - 0.5 + pad - inset
    return tuple(min(max(float(v), low), high) for v in (window.x0, window.y0, window.x1, window.y1))


def rectangle(at, step: int) -> tuple[float, float, float, float]:
    return drawn_window(timeline(at), WINDOWS, step)


TOLERANCE = 0.15  # image pixels: the drawn border's middle, read back from a picture of 7 pixels per image pixel


@pytest.fixture
def runs(monkeypatch, tmp_path):
    return use_folders(monkeypatch, tmp_path)


def test_renders_on_a_tiny_checkpoint(runs):
    at = open_page("generate.py")
    assert at.slider(key="step").value == 4  # opens on the last step: the finished samples
    spec = timeline(at)
    assert len(viz.timeline_steps(spec)) == 4
    assert follower(at) == {"chart": "generate_timeline", "step": 4, "frames": 4, "initial": 4}
    names = {image["name"] for image in spec["layout"]["images"]}
    assert {"canvas σ(c<sub>t</sub>)", WINDOWS, "step-line"} <= names
    figure(at, "all samples at t=4")
    assert {b.proto.label for b in at.get("download_button")} == {
        "Sample's generation (GIF)",
        "All samples at this step (PNG)",
    }
    latex = " ".join(element.value for element in at.latex)
    for name in ("canvas", "added", "write_params"):  # every chart of the timeline explained by its equation
        assert views.EXPLANATIONS[name].latex in latex
    captions = " ".join(caption.value for caption in at.caption)
    assert views.WINDOW_RULE in captions and "eq. 8" in captions and "eqs 21-24" in captions


def test_renders_on_the_shipped_checkpoint(monkeypatch, tmp_path):
    use_shipped(monkeypatch, tmp_path)
    at = open_page("generate.py")
    assert at.slider(key="step").max == 64
    assert len(viz.timeline_steps(timeline(at))) == 64


def test_every_step_of_the_timeline_draws_the_window_where_the_model_put_it(runs):
    at = open_page("generate.py")
    path = runs / "tiny.safetensors"
    for step in (1, 2, 4):
        assert rectangle(at, step) == pytest.approx(expected_window(path, 0, 0, step), abs=TOLERANCE)
    assert expected_window(path, 0, 0, 1) != pytest.approx(expected_window(path, 0, 0, 4), abs=TOLERANCE)


def test_the_server_step_goes_to_the_browser_and_the_timeline_is_not_sent_again(runs):
    at = open_page("generate.py")
    before = json.dumps(timeline(at), sort_keys=True)
    at.slider(key="step").set_value(1).run()
    assert_no_exception(at)
    assert follower(at)["step"] == 1  # the browser is told to show step 1
    assert json.dumps(timeline(at), sort_keys=True) == before  # the same figure: Streamlit sends it from cache
    figure(at, "all samples at t=1")  # the server-side views follow the step


def test_previous_and_next_buttons_step_and_stop_at_the_ends(runs):
    at = open_page("generate.py")
    at.button(key="step_next").click().run()
    assert at.slider(key="step").value == 4  # already the last step
    at.button(key="step_previous").click().run()
    at.button(key="step_previous").click().run()
    assert at.slider(key="step").value == 2 and follower(at)["step"] == 2


def test_a_step_reported_by_the_browser_becomes_the_page_step():
    state = {"generate_timeline_follow": {"step": 3}, "step": 4}
    app_views.take_reported_step(state, "generate_timeline_follow", "step", 4)
    assert state["step"] == 3
    for reported in (None, 0, 5, True, "2"):  # nothing reported, out of range, not a step: the step stays
        state = {"generate_timeline_follow": {"step": reported}, "step": 4}
        app_views.take_reported_step(state, "generate_timeline_follow", "step", 4)
        assert state["step"] == 4
    state = {"step": 4}
    app_views.take_reported_step(state, "generate_timeline_follow", "step", 4)
    assert state["step"] == 4


def test_grid_centres_toggle_dots_the_centres(runs):
    at = open_page("generate.py")

    def white(spec) -> int:
        pixels, _ = picture(spec, WINDOWS, 4)
        return int(((pixels[..., 3] > 0) & (pixels[..., :3] == 255).all(-1)).sum())

    assert white(timeline(at)) == 0
    at.toggle(key="generate_centres").set_value(True).run()
    assert white(timeline(at)) > 0  # the dots' white rims


def test_seed_sample_and_new_samples_change_what_is_drawn(runs):
    at = open_page("generate.py")
    path = runs / "tiny.safetensors"
    at.selectbox(key="sample").set_value(5).run()
    assert rectangle(at, 4) == pytest.approx(expected_window(path, 0, 5, 4), abs=TOLERANCE)
    at.number_input(key="seed").set_value(42).run()
    assert rectangle(at, 4) == pytest.approx(expected_window(path, 42, 5, 4), abs=TOLERANCE)
    at.button(key="generate_new").click().run()
    assert_no_exception(at)
    assert at.number_input(key="seed").value != 42


def test_the_lab_link_carries_this_step_s_write_window(runs):
    at = open_page("generate.py")
    at.slider(key="step").set_value(2).run()
    model = load_checkpoint(runs / "tiny.safetensors").model
    trace = model.generate(SAMPLES, z=prior_z(0, model.cfg.T, model.cfg.z_size, SAMPLES))
    window = views.window_at(trace.write_attn, model.cfg.write_n, 1, 0)
    query = link_query(at)
    assert query == views.lab_link(window, model.cfg.write_n, shape=(1, 28, 28), kind="write", prefer="mnist-sample")
    assert query["window"] == "write", "the lab draws it as the write window it is"
    assert query["dataset"] == "mnist-sample", "the lab opens on an image of the model's own dataset and size"
    assert float(query["gx"]) == pytest.approx(float(window.params.gx), rel=1e-5)


def test_seed_step_sample_and_checkpoint_are_in_the_url_both_ways(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path, runs=["other", "tiny"])
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(seed="7", step="2", sample="3", checkpoint="run/tiny")
    at.switch_page("pages/generate.py").run()  # a shared link opens the Generate page directly
    assert_no_exception(at)
    assert at.number_input(key="seed").value == 7
    assert at.slider(key="step").value == 2
    assert at.selectbox(key="sample").value == 3
    assert at.selectbox(key="checkpoint").value == "run/tiny"
    assert follower(at)["step"] == 2
    assert rectangle(at, 2) == pytest.approx(expected_window(runs / "tiny.safetensors", 7, 3, 2), abs=TOLERANCE)
    at.slider(key="step").set_value(3).run()
    at.number_input(key="seed").set_value(9).run()
    assert at.query_params["step"] == "3" and at.query_params["seed"] == "9"
    assert at.query_params["sample"] == "3" and at.query_params["checkpoint"] == "run/tiny"


def test_malformed_url_values_fall_back_to_defaults(runs):
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(seed="banana", step="999", checkpoint="run/nope")
    at.switch_page("pages/generate.py").run()
    assert_no_exception(at)
    assert at.number_input(key="seed").value == 0
    assert at.slider(key="step").value == 4  # clamped to T
    assert at.selectbox(key="checkpoint").value == "run/tiny"


def test_seed_step_and_checkpoint_survive_page_switches(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=["other", "tiny"])
    at = open_page("generate.py")
    at.selectbox(key="checkpoint").set_value("run/tiny").run()
    at.number_input(key="seed").set_value(11).run()
    at.slider(key="step").set_value(2).run()
    at.toggle(key="generate_centres").set_value(True).run()
    switch_pages_by_sidebar(at, *("attention_lab.py", "home.py", "generate.py"))
    assert at.number_input(key="seed").value == 11
    assert at.slider(key="step").value == 2
    assert at.toggle(key="generate_centres").value
    assert at.selectbox(key="checkpoint").value == "run/tiny"


def test_an_upload_takes_the_former_model_out_of_the_url(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path, runs=["tiny"])
    at = open_page("generate.py")
    at.selectbox(key="checkpoint").set_value("run/tiny").run()
    assert at.query_params["checkpoint"] == "run/tiny"
    at.selectbox(key="checkpoint").set_value("upload").run()
    upload = ("mine.safetensors", (runs / "tiny.safetensors").read_bytes(), "application/octet-stream")
    at.file_uploader(key="checkpoint_upload").set_value(upload).run()
    assert_no_exception(at)
    assert at.get("plotly_chart"), "the uploaded model is drawn"
    assert "checkpoint" not in at.query_params, "a shared link would open run/tiny, not the upload"


def test_no_checkpoint_says_how_to_get_one_and_stops(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("generate.py")
    assert any("No checkpoint is selected" in info.value for info in at.info)
    assert not at.get("plotly_chart") and not at.slider


def test_a_model_without_write_attention_has_no_window_to_draw(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    tiny_checkpoint(
        runs, "plain", DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4, read_attn=False, write_attn=False)
    )
    at = open_page("generate.py")
    names = {image["name"] for image in timeline(at)["layout"]["images"]}
    assert names == {"canvas σ(c<sub>t</sub>)", "added at t: σ(c<sub>t</sub>) − σ(c<sub>t−1</sub>)"}
    assert any("writes the whole canvas" in info.value for info in at.info)
    captions = " ".join(caption.value for caption in at.caption)
    assert (
        views.EXPLANATIONS["canvas_whole"].notice in captions and views.EXPLANATIONS["added_whole"].notice in captions
    )
    assert "window" not in captions, "no window is drawn, so no text may point at one"
    assert not [link for link in at.get("page_link") if "attention_lab" in link.proto.page]
    at.slider(key="step").set_value(1).run()
    assert_no_exception(at)


def test_a_checkpoint_that_is_not_a_generator_gets_a_message_naming_its_kind(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    as_a_classifier(monkeypatch)
    at = open_page("generate.py")
    assert any("generators" in info.value and STAND_IN_KIND in info.value for info in at.info)
    assert not at.get("plotly_chart") and not at.slider
    assert STAND_IN_KIND in at.sidebar.caption[0].value  # the sidebar says which kind is selected


# --- colour and 60x60 models, the canvas size (issues 14 and 15) -------------------------------------------------

MODELS = {"grey 28×28": TINY, "colour 32×32": TINY_COLOUR, "two digits 60×60": TINY_TWO}


def open_model(monkeypatch, tmp_path, cfg: DrawConfig):
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    tiny_checkpoint(runs, "model", cfg)
    return open_page("generate.py"), runs / "model.safetensors"


def spec_pixels(spec: dict) -> np.ndarray:
    """The pixels (H, W, 3), 0..255, of a canvas_size.picture_figure, read at the image pixels' centres."""
    image = spec["layout"]["images"][0]
    pixels = viz.png_pixels(image["source"])
    scale = pixels.shape[1] // image["sizex"]
    return pixels[scale // 2 :: scale, scale // 2 :: scale, :3].astype(np.float64)


@pytest.mark.parametrize("cfg", MODELS.values(), ids=MODELS.keys())
def test_renders_colour_and_large_models_with_their_window_grid_and_downloads(monkeypatch, tmp_path, cfg):
    at, path = open_model(monkeypatch, tmp_path, cfg)
    spec = timeline(at)
    canvas, image = picture(spec, "canvas σ(c<sub>t</sub>)", 4)
    pad = viz.window_pad(cfg.height, cfg.width)
    assert image["sizex"] == cfg.width + 2 * pad  # the model's own size, with its margin
    scale = round(canvas.shape[1] / image["sizex"])
    inside = canvas[pad * scale : (pad + cfg.height) * scale, pad * scale : (pad + cfg.width) * scale, :3]
    colourful = int((np.ptp(inside.astype(int), axis=-1) > 0).sum())  # the image's pixels whose R, G, B differ
    assert (colourful > 0) == (cfg.channels == 3)
    assert rectangle(at, 4) == pytest.approx(expected_window(path, 0, 0, 4), abs=TOLERANCE)  # the window on it
    grid = spec_pixels(figure(at, "all samples at t=4"))  # 4 x 4 samples, 1 pixel apart
    assert grid.shape[:2] == (4 * cfg.height + 5, 4 * cfg.width + 5)
    model = load_checkpoint(path).model
    last = model.generate(SAMPLES, z=prior_z(0, cfg.T, cfg.z_size, SAMPLES)).canvases[-1, 5]  # sample #6
    tile = grid[2 + cfg.height : 2 + 2 * cfg.height, 2 + cfg.width : 2 + 2 * cfg.width]  # second row and column
    assert tile == pytest.approx(np.broadcast_to(last.numpy().transpose(1, 2, 0) * 255, tile.shape), abs=1.01)
    assert {b.proto.label for b in at.get("download_button")} == {
        "Sample's generation (GIF)",
        "All samples at this step (PNG)",
    }
    at.slider(key="step").set_value(2).run()
    assert_no_exception(at)


@pytest.mark.parametrize("cfg", MODELS.values(), ids=MODELS.keys())
def test_the_canvas_size_choice_draws_the_same_z_on_the_larger_canvas(monkeypatch, tmp_path, cfg):
    at, path = open_model(monkeypatch, tmp_path, cfg)
    assert at.segmented_control(key="generate_canvas").value == 1
    assert not [spec for spec in figures(at) if "same z on" in str(spec["layout"].get("title"))]
    text = " ".join(markdown.value for markdown in at.markdown)
    assert "eqs 22–24" in text and "not more detail" in text
    at.segmented_control(key="generate_canvas").set_value(4).run()
    assert_no_exception(at)
    large = spec_pixels(figure(at, f"same z on {4 * cfg.height}×{4 * cfg.width}"))
    own = spec_pixels(figure(at, f"model's canvas {cfg.height}×{cfg.width}"))
    assert large.shape[:2] == (4 * cfg.height, 4 * cfg.width) and own.shape[:2] == (cfg.height, cfg.width)
    model = load_checkpoint(path).model
    z = prior_z(0, cfg.T, cfg.z_size, SAMPLES)[:, :1]  # sample #1 of seed 0
    drawn = model.generate(1, z=z, canvas=(4 * cfg.height, 4 * cfg.width)).canvases[-1, 0]
    expected = np.broadcast_to(drawn.numpy().transpose(1, 2, 0) * 255, large.shape)  # grey: the same in R, G, B
    assert large == pytest.approx(expected, abs=0.51 if cfg.channels == 3 else 1.01)  # grey: 255 palette levels
    captions = " ".join(caption.value for caption in at.caption)
    assert "Averaged over 4×4 blocks" in captions and "eqs 22–24" in captions


def test_a_model_without_write_attention_cannot_choose_a_larger_canvas_and_says_why(monkeypatch, tmp_path):
    plain = DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4, read_attn=False, write_attn=False)
    at, _ = open_model(monkeypatch, tmp_path, plain)
    control = at.segmented_control(key="generate_canvas")
    assert control.proto.disabled
    assert any("no write attention" in caption.value and "eq. 18" in caption.value for caption in at.caption)


def test_the_parameter_chart_counts_the_models_with_and_without_attention(monkeypatch, tmp_path):
    at, _ = open_model(monkeypatch, tmp_path, TINY_TWO)
    spec = figure(at, "parameters against image side")
    lines = {trace["name"]: viz.spec_array(trace["y"]) for trace in spec["data"]}
    counts = canvas_size.parameter_counts(TINY_TWO)
    assert (
        lines["attention"].tolist() == counts["attention"] and lines["no attention"].tolist() == counts["no attention"]
    )
    assert spec["layout"]["shapes"][0]["x0"] == 60  # this model's side marked
    captions = " ".join(caption.value for caption in at.caption)
    assert canvas_size.EXPLANATIONS["parameters"].notice in captions
