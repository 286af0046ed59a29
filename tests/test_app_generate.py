"""AppTest of the Generate page: steps, the write window in the figure spec, URL state, page switches."""

import pytest
from app_support import (
    APP,
    STAND_IN_KIND,
    TIMEOUT,
    as_a_classifier,
    assert_no_exception,
    figure,
    figures,
    open_page,
    tiny_checkpoint,
    use_folders,
    use_shipped,
)
from streamlit.testing.v1 import AppTest

from draw_core.config import DrawConfig
from draw_core.io.checkpoint import load_checkpoint
from draw_core.nn.attention import window_geometry
from draw_core.present import viz
from draw_core.present.latent import prior_z

SAMPLES = 16


def expected_window(path, seed: int, sample: int, step: int) -> tuple[float, float, float, float]:
    """The write window of (seed, sample) at `step`, computed straight from the model."""
    model = load_checkpoint(path).model
    cfg = model.cfg
    trace = model.generate(SAMPLES, z=prior_z(seed, cfg.T, cfg.z_size, SAMPLES))
    window = window_geometry(trace.write_attn.map(lambda v: v[step - 1, sample]), cfg.write_n)
    return tuple(float(v) for v in (window.x0, window.y0, window.x1, window.y1))


def rectangle(at) -> tuple[float, float, float, float]:
    shape = viz.window_shape(figure(at, "canvas σ"), "write")
    return shape["x0"], shape["y0"], shape["x1"], shape["y1"]


@pytest.fixture
def runs(monkeypatch, tmp_path):
    return use_folders(monkeypatch, tmp_path)


def test_renders_on_a_tiny_checkpoint(runs):
    at = open_page("generate.py")
    assert at.slider(key="step").value == 4  # opens on the last step: the finished samples
    for title in ("canvas σ", "added at t=4", "write window over t", "all samples at t=4"):
        figure(at, title)
    animation = [spec for spec in figures(at) if spec.get("frames")]
    assert len(animation) == 1 and len(animation[0]["frames"]) == 4
    assert {b.proto.label for b in at.get("download_button")} == {
        "Sample's generation (GIF)",
        "All samples at this step (PNG)",
    }


def test_renders_on_the_shipped_checkpoint(monkeypatch, tmp_path):
    use_shipped(monkeypatch, tmp_path)
    at = open_page("generate.py")
    assert at.slider(key="step").max == 64
    assert viz.window_shape(figure(at, "canvas σ"), "write") is not None


def test_moving_the_step_slider_moves_the_window_to_where_the_model_put_it(runs):
    at = open_page("generate.py")
    path = runs / "tiny.safetensors"
    assert rectangle(at) == pytest.approx(expected_window(path, 0, 0, 4), abs=1e-4)
    at.slider(key="step").set_value(1).run()
    assert_no_exception(at)
    assert rectangle(at) == pytest.approx(expected_window(path, 0, 0, 1), abs=1e-4)
    assert rectangle(at) != pytest.approx(expected_window(path, 0, 0, 4), abs=1e-4)
    figure(at, "added at t=1")


def test_previous_and_next_buttons_step_and_stop_at_the_ends(runs):
    at = open_page("generate.py")
    at.button(key="step_next").click().run()
    assert at.slider(key="step").value == 4  # already the last step
    at.button(key="step_previous").click().run()
    at.button(key="step_previous").click().run()
    assert at.slider(key="step").value == 2
    assert rectangle(at) == pytest.approx(expected_window(runs / "tiny.safetensors", 0, 0, 2), abs=1e-4)


def test_grid_centres_toggle_adds_hoverable_markers(runs):
    at = open_page("generate.py")
    assert not any(t.get("name") == "write-centres" for t in figure(at, "canvas σ")["data"])
    at.toggle(key="generate_centres").set_value(True).run()
    markers = [t for t in figure(at, "canvas σ")["data"] if t.get("name") == "write-centres"]
    assert len(markers) == 1 and "δ = " in markers[0]["hovertemplate"] and "γ = " in markers[0]["hovertemplate"]


def test_seed_sample_and_new_samples_change_what_is_drawn(runs):
    at = open_page("generate.py")
    path = runs / "tiny.safetensors"
    at.selectbox(key="sample").set_value(5).run()
    assert rectangle(at) == pytest.approx(expected_window(path, 0, 5, 4), abs=1e-4)
    at.number_input(key="seed").set_value(42).run()
    assert rectangle(at) == pytest.approx(expected_window(path, 42, 5, 4), abs=1e-4)
    at.button(key="generate_new").click().run()
    assert_no_exception(at)
    assert at.number_input(key="seed").value != 42


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
    assert rectangle(at) == pytest.approx(expected_window(runs / "tiny.safetensors", 7, 3, 2), abs=1e-4)
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
    for page in ("attention_lab.py", "home.py", "generate.py"):
        at.switch_page(f"pages/{page}").run()
        assert_no_exception(at)
    assert at.number_input(key="seed").value == 11
    assert at.slider(key="step").value == 2
    assert at.selectbox(key="checkpoint").value == "run/tiny"


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
    assert viz.window_shape(figure(at, "canvas σ"), "write") is None
    assert any("writes the whole canvas" in info.value for info in at.info)
    at.slider(key="step").set_value(1).run()
    assert_no_exception(at)


def test_a_checkpoint_that_is_not_a_generator_gets_a_message_naming_its_kind(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    as_a_classifier(monkeypatch)
    at = open_page("generate.py")
    assert any("generators" in info.value and STAND_IN_KIND in info.value for info in at.info)
    assert not at.get("plotly_chart") and not at.slider
    assert STAND_IN_KIND in at.sidebar.caption[0].value  # the sidebar says which kind is selected
