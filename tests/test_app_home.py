"""AppTest of app.py and the Home page: navigation, the shared checkpoint picker, uploads, no checkpoint at all."""

import json
import math
import os
import pickle
from pathlib import Path

import pytest
from app_support import (
    STAND_IN_KIND,
    TINY,
    as_a_classifier,
    assert_no_exception,
    open_page,
    tiny_checkpoint,
    use_folders,
    use_shipped,
)

import app_common
from draw_core.config import DrawConfig
from draw_core.io.checkpoint import save_checkpoint
from draw_core.nn.model import DRAW
from draw_core.present import views


def test_home_shows_the_card_of_the_run(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    at = open_page()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test bound"] == "543.21 nats"
    assert "Dataset" not in metrics  # said by the caption above the figures and in the card table
    config = at.table[0].value
    assert dict(zip(config["field"], config["value"], strict=True))["z_size"] == "8"
    assert metrics["Training time"] == "2 s"
    card = at.table[1].value  # the card as a table people read, not a JSON dump
    rows = dict(zip(card["what"], card["value"], strict=True))
    assert rows["Test bound −ELBO (eq. 12)"] == "543.21 nats" and rows["Training steps"] == "3"
    assert rows["Dataset"] == "mnist-sample" and rows["Training time"] == "2 s"
    raw = at.expander[0]
    assert "raw model card" in raw.label and raw.json[0].value  # the card as stored, one click away
    assert at.selectbox(key="checkpoint").value == "run/tiny"


def test_home_on_the_shipped_checkpoint(monkeypatch, tmp_path):
    use_shipped(monkeypatch, tmp_path)
    at = open_page()
    assert at.selectbox(key="checkpoint").value == "shipped/mnist"  # the default: shipped first, mnist first
    assert not at.error


def test_home_on_shipped_models_shows_each_ones_own_figures(monkeypatch, tmp_path):
    use_shipped(monkeypatch, tmp_path, "mnist-cluttered-draw")
    at = open_page()
    for name, expected in (
        ("mnist-cluttered-draw", {"Test error", "The paper's error (Table 1)", "Training time, all runs"}),
        ("cifar10", {"Test bound", "Bits per dimension", "Training time, all runs"}),
    ):
        at.selectbox(key="checkpoint").set_value(f"shipped/{name}").run()
        assert_no_exception(at)
        metrics = {m.label: m.value for m in at.metric}
        assert expected <= set(metrics), (name, metrics)
        card = json.loads((Path(__file__).resolve().parents[1] / "checkpoints" / f"{name}.json").read_text())
        steps = views.own_run_label(
            card, "Steps"
        )  # "Last run's steps" of a fine-tune, the first averaged run's of a soup
        assert metrics[steps] != "unknown" and "not measured" not in metrics.values(), (name, metrics)
    assert any("JPEG" in c.value and "bits per dimension" in c.value for c in at.caption)


def test_navigation_lists_every_page_file(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    at = open_page()
    for page in ("generate.py", "reconstruct.py", "latent.py", "attention_lab.py", "evaluate.py"):
        at.switch_page(f"pages/{page}").run()  # raises if the page is not registered with st.navigation
        assert_no_exception(at)


def test_no_checkpoint_at_all_says_how_to_get_one(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page()
    assert any("No checkpoint is selected" in info.value for info in at.info)
    assert not at.metric


def test_hostile_pickle_upload_is_refused_and_the_app_keeps_working(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    at = open_page()
    at.selectbox(key="checkpoint").set_value("upload").run()
    at.file_uploader(key="checkpoint_upload").set_value(
        ("evil.safetensors", pickle.dumps(Payload()), "application/octet-stream")
    )
    at.run()
    assert_no_exception(at)
    assert any("can't be used" in e.value and "pickle" in e.value for e in at.error)
    assert not marker.exists()
    monkeypatch.setattr(app_common, "_load_upload", lambda *args: pytest.fail("the refused file was read again"))
    at.run()  # any widget's rerun: the refusal is shown again from the session, the file is not read again
    assert any("can't be used" in e.value and "pickle" in e.value for e in at.error)
    assert any("No checkpoint is selected" in info.value for info in at.info)
    at.switch_page("pages/generate.py").run()  # pages that need a model stop politely
    assert_no_exception(at)
    assert any("No checkpoint is selected" in info.value for info in at.info)
    at.selectbox(key="checkpoint").set_value("run/tiny").run()  # and the app still works
    assert_no_exception(at)
    assert at.get("plotly_chart")


def test_truncated_upload_is_refused_and_a_valid_upload_is_used(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    good = save_checkpoint(DRAW(DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4)), tmp_path / "mine.safetensors")
    at = open_page()
    at.selectbox(key="checkpoint").set_value("upload").run()
    at.file_uploader(key="checkpoint_upload").set_value(
        ("mine.safetensors", good.read_bytes()[:100], "application/octet-stream")
    )
    at.run()
    assert_no_exception(at)
    assert any("can't be used" in e.value for e in at.error)
    at.file_uploader(key="checkpoint_upload").set_value(
        ("mine.safetensors", good.read_bytes(), "application/octet-stream")
    )
    at.run()
    assert_no_exception(at)
    assert not at.error
    assert "T=3" in at.sidebar.caption[0].value
    at.switch_page("pages/generate.py").run()
    assert_no_exception(at)
    assert at.slider(key="step").max == 3


def test_broken_run_file_shows_an_error_not_an_exception(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path)
    (runs / "broken.safetensors").write_bytes(b"not a checkpoint at all")
    at = open_page()
    at.selectbox(key="checkpoint").set_value("run/broken").run()
    assert_no_exception(at)
    assert any("can't be loaded" in e.value for e in at.error)


def test_a_run_written_while_the_app_is_open_appears_in_the_picker(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path)
    at = open_page()
    assert not any(o.startswith("later (run)") for o in at.selectbox(key="checkpoint").options)
    tiny_checkpoint(runs, "later", TINY)
    at.run()
    assert any(o.startswith("later (run)") for o in at.selectbox(key="checkpoint").options)


def test_the_sidebar_and_the_card_say_what_kind_of_model_on_what_data(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    at = open_page()
    assert "draw · mnist-sample · 1×28×28" in at.sidebar.caption[0].value
    assert any(c.value.startswith("draw · mnist-sample · 1×28×28") for c in at.caption)
    as_a_classifier(monkeypatch)
    at.run()  # Home shows the card of any kind
    assert_no_exception(at)
    assert at.metric and STAND_IN_KIND in at.sidebar.caption[0].value


def test_every_page_file_is_in_the_lesson_and_home_links_them_in_teaching_order(monkeypatch, tmp_path):
    from app_support import APP

    import app_common

    files = [file for file, *_ in app_common.LESSON]
    assert sorted(files) == sorted(p.name for p in (APP.parent / "pages").glob("*.py"))
    use_folders(monkeypatch, tmp_path)
    at = open_page()
    links = [link.proto.label for link in at.get("page_link")]
    assert links == [f"{n}. {title}" for n, (_, title, *_) in enumerate(app_common.LESSON[1:], start=1)]
    sentences = [m.value for m in at.markdown]
    assert all(sees in sentences for *_, sees in app_common.LESSON[1:])


def test_a_server_without_a_page_file_leaves_that_page_and_every_link_to_it_out(monkeypatch, tmp_path):
    import app_common

    pages = tmp_path / "pages"  # this server's pages: all but the Attention lab
    pages.mkdir()
    for page in app_common.PAGES_DIR.glob("*.py"):
        if page.name != "attention_lab.py":
            (pages / page.name).symlink_to(page)
    monkeypatch.setattr(app_common, "PAGES_DIR", pages)
    use_folders(monkeypatch, tmp_path)
    at = open_page()
    assert_no_exception(at)
    links = [link.proto.label for link in at.get("page_link")]
    titles = [title for file, title, *_ in app_common.LESSON[1:] if file != "attention_lab.py"]
    assert links == [f"{n}. {title}" for n, title in enumerate(titles, start=1)]
    for page in ("generate.py", "reconstruct.py"):  # each links its window into the lab when the lab is there
        at.switch_page(str(pages / page)).run()
        assert_no_exception(at)
        assert at.get("plotly_chart") and not [link for link in at.get("page_link") if "lab" in link.proto.page]


def test_an_uploaded_colour_model_with_odd_numbers_in_its_meta_gets_its_own_card(monkeypatch, tmp_path):
    # A run's meta may be edited by hand: infinity or NaN where a number goes is shown as it is, not a traceback.
    # And an upload's card knows its config like a listed run's: a colour model gets bits/dim, not binarisation.
    use_folders(monkeypatch, tmp_path, runs=[])
    cfg = DrawConfig(height=32, width=32, channels=3, T=3, read_n=3, write_n=3, enc_size=16, dec_size=16, z_size=4,
                     likelihood="logistic")  # fmt: skip
    meta = {"dataset": "cifar10", "train_seconds": math.inf, "test_elbo_nats": math.nan, "step": 7}
    path = save_checkpoint(DRAW(cfg), tmp_path / "odd.safetensors", meta=meta)
    at = open_page()
    at.selectbox(key="checkpoint").set_value("upload").run()
    at.file_uploader(key="checkpoint_upload").set_value(
        ("odd.safetensors", path.read_bytes(), "application/octet-stream")
    )
    at.run()
    assert_no_exception(at)
    assert not at.error
    shown = {metric.label: metric.value for metric in at.metric}
    assert "unknown" in shown.values(), shown  # the infinite training time
    captions = " ".join(caption.value for caption in at.caption)
    assert "binaris" not in captions and "bits" in " ".join([*shown, *captions.split()]).lower()


def test_a_selected_run_deleted_meanwhile_is_replaced_with_a_notice(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path, runs=["other", "tiny"])
    at = open_page()
    at.selectbox(key="checkpoint").set_value("run/tiny").run()
    (runs / "tiny.safetensors").unlink()  # a teacher tidied the runs folder
    at.run()
    assert_no_exception(at)
    assert any("run/tiny is no longer on this server" in warning.value for warning in at.sidebar.warning)
    assert at.selectbox(key="checkpoint").value != "run/tiny"
