"""app_common: traces shared read-only by every session, presentation mode (toggle, URL flag, larger figures, folded
settings), and the project's Streamlit settings (usage statistics off; tests/test_browser_app.py checks that no
request leaves the server)."""

from pathlib import Path

import pytest
from app_support import assert_no_exception, figure, open_page, use_folders

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
    at.button(key="present_exit").click().run()
    assert_no_exception(at)
    assert at.toggle(key=app_common.PRESENT_KEY).value is False
    assert "present" not in at.query_params
    assert figure(at, "drawn from this z")["layout"]["width"] == 280
    assert not [b for b in at.button if b.key == "present_exit"]
    assert not any("stSidebar" in element.proto.body for element in at.get("html"))


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


def test_the_project_config_turns_usage_statistics_off_and_keeps_the_server_lean():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["browser"]["gatherUsageStats"] is False
    assert config["runner"]["postScriptGC"] is False
