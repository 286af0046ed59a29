"""AppTest of the Evaluate page: bounds on demand, KL per step, attention vs no attention side by side."""

import pytest
from app_support import (
    STAND_IN_KIND,
    as_a_classifier,
    assert_no_exception,
    figure,
    open_page,
    tiny_checkpoint,
    use_folders,
    use_shipped,
)

from draw_core.config import DrawConfig
from draw_core.data import get_dataset
from draw_core.io.checkpoint import load_checkpoint
from draw_core.present import views
from draw_core.training.evaluation import evaluate

NO_ATTENTION = DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4, read_attn=False, write_attn=False)


def evaluate_on_page(at, digits: int, k: int = 1):
    at.number_input(key="evaluate_digits").set_value(digits)
    at.number_input(key="evaluate_k").set_value(k)
    at.button(key="evaluate_run").click().run()
    assert_no_exception(at)
    return at.dataframe[0].value


def test_bound_on_demand_matches_draw_core_evaluate(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path)
    at = open_page("evaluate.py")
    assert any("Press **Evaluate**" in info.value for info in at.info)
    table = evaluate_on_page(at, 20)
    expected = evaluate(
        load_checkpoint(runs / "tiny.safetensors").model, get_dataset("mnist-sample").test_set(limit=20), batch_size=20
    )
    row = table.iloc[0]
    assert row["checkpoint"] == "tiny (run)" and row["digits"] == 20
    assert row["bound (nats)"] == pytest.approx(expected.elbo_nats, abs=0.01)
    assert row["KL Lᶻ"] == pytest.approx(expected.kl_nats, abs=0.01)
    curve = figure(at, "KL per step")["data"]
    assert [trace["name"] for trace in curve] == ["tiny (run)"]
    latex = " ".join(element.value for element in at.latex)  # both charts explained: KL (eq. 11), samples
    assert views.EXPLANATIONS["kl_curves"].latex in latex and views.EXPLANATIONS["samples"].latex in latex
    captions = " ".join(caption.value for caption in at.caption)
    assert views.EXPLANATIONS["kl_curves"].notice in captions and views.EXPLANATIONS["samples"].notice in captions
    at.run()  # kept: shown again without pressing the button
    assert at.dataframe[0].value.iloc[0]["bound (nats)"] == row["bound (nats)"]


def test_importance_sampled_bound(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    table = evaluate_on_page(open_page("evaluate.py"), 10, k=3)
    row = table.iloc[0]
    assert row["IWAE k=3 (nats)"] <= row["bound (nats)"] + 1.0  # the IWAE bound is tighter in expectation


def test_attention_and_no_attention_side_by_side(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path)
    tiny_checkpoint(runs, "plain", NO_ATTENTION)
    at = open_page()
    at.selectbox(key="checkpoint").set_value("run/tiny").run()
    at.switch_page("pages/evaluate.py").run()
    assert at.multiselect(key="evaluate_checkpoints").value == ["run/tiny", "run/plain"]  # the contrast is offered
    figure(at, "tiny (run): attention")
    figure(at, "plain (run): no attention")
    table = evaluate_on_page(at, 10)
    assert list(table["checkpoint"]) == ["tiny (run)", "plain (run)"]
    assert [trace["name"] for trace in figure(at, "KL per step")["data"]] == ["tiny (run)", "plain (run)"]


def test_renders_on_the_shipped_checkpoint(monkeypatch, tmp_path):
    use_shipped(monkeypatch, tmp_path)
    at = open_page("evaluate.py")
    assert "shipped/mnist" in at.multiselect(key="evaluate_checkpoints").value


def test_no_checkpoint_says_how_to_get_one_and_stops(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("evaluate.py")
    assert any("No checkpoint is selected" in info.value for info in at.info)
    assert not at.button


def test_a_checkpoint_that_is_not_a_generator_is_named_and_skipped(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    as_a_classifier(monkeypatch)
    at = open_page("evaluate.py")
    assert any("tiny (run)" in info.value and STAND_IN_KIND in info.value for info in at.info)
    assert not at.get("plotly_chart") and not at.button
