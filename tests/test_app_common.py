"""app_common: traces shared read-only by every session, presentation mode (toggle, URL flag, larger figures, folded
settings), and the project's Streamlit settings (usage statistics off; tests/test_browser_app.py checks that no
request leaves the server), and that every page draws itself inside app.py's frame."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from app_support import (
    TINY,
    TINY_COLOUR,
    TINY_TWO,
    assert_no_exception,
    figure,
    open_page,
    tiny_checkpoint,
    use_folders,
)

import app_common
from draw_core.config import DrawConfig
from draw_core.nn.model import DRAW

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def runs(monkeypatch, tmp_path):
    return use_folders(monkeypatch, tmp_path)


def test_a_trace_is_one_copy_for_every_session_and_cannot_be_changed_in_place():
    model = DRAW(DrawConfig(T=3, enc_size=8, dec_size=8, z_size=2)).eval()
    first = app_common.generation(model, "test-model@1", 7, n=2)
    again = app_common.generation(model, "test-model@1", 7, n=2)  # another session asking for the same seed
    assert again is first  # the same object: no copy per session
    with pytest.raises(RuntimeError, match="[Ii]nference"):
        again.canvases.add_(1)  # a page that tried to draw on the shared trace would fail loudly


def test_presentation_mode_from_the_url_draws_larger_and_its_exit_button_leaves_it(runs):
    at = open_page("latent.py", query={"present": "1"})
    assert at.toggle(key=app_common.PRESENT_KEY).value is True
    assert figure(at, "drawn from this z")["layout"]["width"] == round(280 * app_common.PRESENT_SCALE)
    assert any("stSidebar" in element.proto.body for element in at.get("html"))  # the CSS that hides the sidebar
    menu = [link.proto.label for link in at.get("page_link")]
    assert all(title in menu for _, title, _, _ in app_common.lesson_pages()), "the hidden sidebar's pages, top right"
    at.button(key="present_exit").click().run()
    assert_no_exception(at)
    assert at.toggle(key=app_common.PRESENT_KEY).value is False
    assert "present" not in at.query_params
    assert figure(at, "drawn from this z")["layout"]["width"] == 280
    assert not [b for b in at.button if b.key == "present_exit"]
    assert not any("stSidebar" in element.proto.body for element in at.get("html"))
    assert len(at.get("page_link")) == len(menu) - len(app_common.lesson_pages()), "the menu goes with the mode"


def test_the_sidebar_toggle_turns_presentation_on_and_puts_it_in_the_url(runs):
    at = open_page("latent.py")
    assert at.toggle(key=app_common.PRESENT_KEY).value is False
    assert not [b for b in at.button if b.key == "present_exit"]
    at.toggle(key=app_common.PRESENT_KEY).set_value(True).run()
    assert_no_exception(at)
    assert at.query_params["present"] == "1"
    assert [b for b in at.button if b.key == "present_exit"]


def test_presentation_folds_a_pages_settings_away(runs):
    at = open_page("reconstruct.py", query={"present": "1"})
    assert [e.label for e in at.expander if e.label == "Settings"], "the settings are not folded into an expander"
    at = open_page("reconstruct.py")
    assert not [e.label for e in at.expander if e.label == "Settings"]


def _dotted(node: ast.expr) -> str:
    return f"{_dotted(node.value)}.{node.attr}" if isinstance(node, ast.Attribute) else getattr(node, "id", "")


@pytest.mark.parametrize("file", [file for file, *_ in app_common.LESSON])
def test_every_page_calls_page_setup_before_it_draws_anything(file):
    # Opened first by its own URL, a page file runs without app.py (Streamlit's classic pages/ folder) until
    # page_setup switches to app.py's navigation: a page that draws first shows the file list and no shared sidebar.
    module = ast.parse((ROOT / "pages" / file).read_text())
    for statement in module.body:
        if isinstance(statement, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            continue
        calls = {_dotted(node.func) for node in ast.walk(statement) if isinstance(node, ast.Call)}
        streamlit = {name for name in calls if name.startswith(("st.", "app_common."))}
        if streamlit:
            assert streamlit & {"app_common.page_setup", "app_common.require_checkpoint"}, (
                f"pages/{file} calls {sorted(streamlit)} before app_common.page_setup() or require_checkpoint()"
            )
            return
    pytest.fail(f"pages/{file} never calls app_common.page_setup() or require_checkpoint()")


def test_the_project_config_turns_usage_statistics_off():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["browser"]["gatherUsageStats"] is False


def test_the_collection_after_each_rerun_skips_what_the_imports_made():
    """Streamlit collects garbage after every rerun; the objects torch, Plotly and Streamlit made at import (hundreds
    of thousands) are frozen out of that walk once app_common is imported."""
    import gc

    assert gc.get_freeze_count() > 100_000


def test_finished_images_are_cached_without_the_steps_before_them():
    model = DRAW(DrawConfig(T=3, enc_size=8, dec_size=8, z_size=2)).eval()
    z = np.zeros((3, 5, 2), dtype=np.float32)  # (T, n, Z)
    images = app_common.decode_final(model, "test-model@2", z)
    assert images.shape == (5, 1, 28, 28)
    assert images.untyped_storage().nbytes() == 5 * 28 * 28 * 4  # not the T x 5 canvases it was cut from
    assert torch.equal(images, model.generate(5, z=torch.from_numpy(z)).canvases[-1])
    assert images.is_inference()  # shared read-only like every cached trace


def test_the_picker_names_each_models_dataset_and_image_size(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    for name, cfg in (("grey", TINY), ("colour", TINY_COLOUR), ("two", TINY_TWO)):
        tiny_checkpoint(runs, name, cfg)
    at = open_page()
    options = at.sidebar.selectbox(key=app_common.PICKER_KEY).options
    assert {
        "colour (run) · cifar10 · 32×32×3",
        "two (run) · mnist-two · 60×60",
        "grey (run) · mnist-sample · 28×28",
    } <= set(options)
    at.sidebar.selectbox(key=app_common.PICKER_KEY).set_value("run/colour").run()
    assert_no_exception(at)
    assert "cifar10 · 3×32×32" in at.sidebar.caption[0].value  # the chosen model's caption says it too
