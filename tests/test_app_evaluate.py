"""AppTest of the Evaluate page: bounds on demand, KL per step, attention vs no attention side by side; a colour
model's bound in bits/dim with the CIFAR copy it was measured on; models of another image size left out."""

import math
from pathlib import Path

import numpy as np
import pytest
from app_support import (
    STAND_IN_KIND,
    TINY_COLOUR,
    TINY_TWO,
    as_a_classifier,
    assert_no_exception,
    damaged_mnist,
    figure,
    open_page,
    tiny_checkpoint,
    use_folders,
    use_shipped,
)
from PIL import Image

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
    assert row["checkpoint"] == "tiny (run)" and row["images"] == 20
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
    runs = use_folders(monkeypatch, tmp_path)
    table = evaluate_on_page(open_page("evaluate.py"), 10, k=3)
    row = table.iloc[0]
    expected = evaluate(
        load_checkpoint(runs / "tiny.safetensors").model, get_dataset("mnist-sample").test_set(limit=10), k=3,
        batch_size=10,
    )  # fmt: skip
    assert row["checkpoint"] == "tiny (run)"
    assert row["IWAE k=3 (nats)"] == pytest.approx(expected.iwae_nats, abs=0.01)
    assert row["bound (nats)"] == pytest.approx(expected.elbo_nats, abs=0.01)


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


def test_another_model_picked_in_the_sidebar_is_the_one_evaluated(monkeypatch, tmp_path):
    runs = use_folders(monkeypatch, tmp_path, runs=["first", "second"])
    tiny_checkpoint(runs, "plain", NO_ATTENTION)
    at = open_page("evaluate.py")
    at.selectbox(key="checkpoint").set_value("run/first").run()
    assert at.multiselect(key="evaluate_checkpoints").value[0] == "run/first"
    at.selectbox(key="checkpoint").set_value("run/second").run()
    assert at.multiselect(key="evaluate_checkpoints").value == ["run/second", "run/plain"]
    assert list(evaluate_on_page(at, 5)["checkpoint"]) == ["second (run)", "plain (run)"]


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


def fake_cifar(root: Path, n: int = 10) -> Path:
    """A CIFAR-10 image-folder copy under `root` holding n random 32×32 JPEGs per split, in two classes: what the
    registry reads when the original python batches are not there."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for i in range(n):
            folder = root / "cifar10-jpeg" / split / f"class{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.jpg", quality=75)
    return root


def test_a_colour_models_bound_in_bits_per_dim_says_which_cifar_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(fake_cifar(tmp_path / "data")))
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    tiny_checkpoint(runs, "colour", TINY_COLOUR)
    at = open_page("evaluate.py")
    assert at.selectbox(key="evaluate_dataset").options == ["cifar10 (10 images)"]
    samples = figure(at, "colour (run): attention")["data"][0]
    assert samples["type"] == "image", "the samples are drawn in colour"
    row = evaluate_on_page(at, 10, k=2).iloc[0]
    expected = evaluate(
        load_checkpoint(runs / "colour.safetensors").model, get_dataset("cifar10").test_set(), batch_size=10
    )
    assert row["bound (nats)"] == pytest.approx(expected.elbo_nats, abs=0.01)
    assert row["bits/dim"] == pytest.approx(expected.elbo_nats / (3 * 32 * 32 * math.log(2)), abs=1e-4)
    assert row["IWAE k=2 (bits/dim)"] == pytest.approx(row["IWAE k=2 (nats)"] / (3072 * math.log(2)), abs=1e-3)
    captions = " ".join(caption.value for caption in at.caption)
    assert "3,072 sub-pixels" in captions
    assert f"Measured on {get_dataset('cifar10').copy_description()}." in captions
    assert "JPEG (quality 75) re-encoded copy" in captions


def test_models_of_another_image_size_are_left_out_and_said(monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(fake_cifar(tmp_path / "data")))
    runs = use_folders(monkeypatch, tmp_path)  # tiny: 28×28 grey
    tiny_checkpoint(runs, "colour", TINY_COLOUR)
    at = open_page()
    at.selectbox(key="checkpoint").set_value("run/colour").run()
    at.switch_page("pages/evaluate.py").run()
    assert at.multiselect(key="evaluate_checkpoints").value == ["run/colour"]  # no contrast of another size offered
    at.multiselect(key="evaluate_checkpoints").set_value(["run/colour", "run/tiny"]).run()
    assert_no_exception(at)
    assert any("tiny (run) takes 28×28 images, not the 32×32×3 of colour (run)" in info.value for info in at.info)
    assert list(evaluate_on_page(at, 10)["checkpoint"]) == ["colour (run)"]


def test_a_60_by_60_model_renders_and_says_when_its_test_set_is_not_here(monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path / "no-data"))
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    tiny_checkpoint(runs, "two", TINY_TWO)
    at = open_page("evaluate.py")
    assert any("No test set of 60×60 images is available here" in info.value for info in at.info)


def test_a_damaged_dataset_is_left_out_with_its_file_named_and_the_others_still_work(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path)
    monkeypatch.setenv("DRAW_DATA_DIR", str(damaged_mnist(tmp_path / "data")))
    at = open_page("evaluate.py")
    assert_no_exception(at)
    warnings = " ".join(warning.value for warning in at.warning)
    assert "mnist is left out" in warnings and "t10k-images-idx3-ubyte holds 100 bytes" in warnings, warnings
    assert at.selectbox(key="evaluate_dataset").options == ["mnist-sample (500 images)"]
    assert evaluate_on_page(at, 10).iloc[0]["images"] == 10
