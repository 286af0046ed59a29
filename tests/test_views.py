"""draw_core.present.views: what the pages show, checked on hand-computable cases against the paper."""

import math
from dataclasses import dataclass

import pytest
import torch

from draw_core.config import DrawConfig
from draw_core.data import mnist
from draw_core.nn.attention import AttentionParams, attention_params
from draw_core.nn.kinds import get_kind
from draw_core.nn.model import ReconstructionTrace
from draw_core.present import views, viz

H = W = 28


def params(shape=(), **values) -> AttentionParams:
    defaults = {"gx": 14.0, "gy": 10.0, "delta": 3.0, "sigma2": 0.25, "gamma": 1.0, **values}
    return AttentionParams(**{name: torch.full(shape, float(v)) for name, v in defaults.items()})


def test_window_at_one_step_of_one_sample_sits_on_the_grid_eqs_19_20():
    attention = params((3, 2))  # (T, n) fields, as a trace holds them
    attention.gx[1, 0] = 20.0
    window = views.window_at(attention, 5, 1, 0)
    # mu_X^i = gX + (i - 3) delta for N = 5: 20 - 6 .. 20 + 6; 0-based columns are one less
    assert float(window.geometry.x0) == pytest.approx(13.0) and float(window.geometry.x1) == pytest.approx(25.0)
    assert float(window.geometry.y0) == pytest.approx(3.0) and float(window.geometry.y1) == pytest.approx(15.0)
    assert float(window.params.gx) == 20.0 and window.params.gx.dim() == 0


def test_window_at_every_step_of_one_sample_and_without_attention():
    attention = params((3, 2))
    attention.gx[:, 1] = torch.tensor([5.0, 9.0, 13.0])
    track = views.window_at(attention, 2, slice(None), 1)
    # N = 2: mu^1 = gX - delta / 2 = gX - 1.5, minus 1 for the 0-based column
    assert track.geometry.x0.tolist() == pytest.approx([2.5, 6.5, 10.5])
    assert views.window_at(None, 5, 0, 0) is None


def test_draw_window_adds_the_rectangle_with_its_parameters_or_nothing():
    fig = viz.image_figure(torch.zeros(1, H, W))
    assert views.draw_window(fig, None, kind="write") is fig and len(fig.data) == 1
    views.draw_window(fig, views.window_at(params((1,), gamma=2.5), 5, 0), kind="read", show_centres=True)
    spec = fig.to_dict()
    assert viz.window_box(spec["data"], "read")[0] == pytest.approx(7.0)  # 14 - 6 - 1
    markers = next(trace for trace in spec["data"] if trace.get("name") == "read-centres")
    assert "γ = 2.500" in markers["hovertemplate"]


def test_the_canvas_starts_at_one_half_and_changes_are_differences_of_sigma_c():
    assert torch.equal(views.initial_canvas(torch.ones(1, 2, 2)), torch.full((1, 2, 2), 0.5))  # sigma(0) = 1/2
    canvases = torch.tensor([0.7, 0.2, 0.9]).view(3, 1, 1, 1)  # (T, C, H, W)
    changes = views.canvas_changes(canvases)
    assert changes.shape == canvases.shape
    assert changes.flatten().tolist() == pytest.approx([0.2, -0.5, 0.7])  # 0.7 - sigma(c_0), 0.2 - 0.7, 0.9 - 0.2


def test_kl_per_glimpse_is_the_closed_form_of_eq_11():
    # step 1: mu = (1, 0), sigma = (1, 1/2): 1/2 (1 + 1 - 0 - 1) + 1/2 (0 + 1/4 - log 1/4 - 1)
    # step 2: mu = 0, sigma = 1: the posterior is the prior, 0 nats
    mu = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]])  # (T, B, Z)
    std = torch.tensor([[[1.0, 0.5]], [[1.0, 1.0]]])
    blank = torch.zeros(2, 1, 1, 1, 1)
    trace = ReconstructionTrace(blank, blank, None, None, blank, mu, std, torch.zeros_like(mu))
    expected = 0.5 + 0.5 * (0.25 - math.log(0.25) - 1)
    assert views.kl_per_glimpse(trace).tolist() == pytest.approx([expected, 0.0])


def test_raw_attention_inverts_eqs_21_24_both_ways():
    raw = torch.empty(50, 5, dtype=torch.float64).uniform_(-2, 2, generator=torch.Generator().manual_seed(0))
    for N, height, width in ((5, 28, 28), (2, 20, 36)):
        there = attention_params(raw, N, height, width)
        assert views.raw_attention(there, N, height, width) == pytest.approx(raw, abs=1e-12)
        back = attention_params(views.raw_attention(there, N, height, width), N, height, width)
        assert back.delta == pytest.approx(there.delta, abs=1e-12) and back.gx == pytest.approx(there.gx, abs=1e-12)


def test_raw_attention_by_hand():
    # the image centre (A + 1) / 2 is g~ = 0 (eqs 22-23); delta = (max(A, B) - 1) / (N - 1) is delta~ = 1 (eq. 24)
    centred = params(gx=14.5, gy=14.5, delta=27 / 4, sigma2=1.0, gamma=math.e)
    assert views.raw_attention(centred, 5, H, W).tolist() == pytest.approx([0, 0, 0, 0, 1], abs=1e-6)
    with pytest.raises(ValueError, match="N must be >= 2"):
        views.raw_attention(centred, 1, H, W)


def test_raw_attention_caption():
    centred = params(gx=14.5, gy=14.5, delta=27 / 4, sigma2=1.0)
    caption = views.raw_attention_caption(centred, 5, H, W)
    assert "g̃_X = 0.000" in caption and "log δ̃ = 0.000" in caption and "log γ = 0.000" in caption
    single = views.raw_attention_caption(centred, 1, H, W)
    assert "no effect when N = 1" in single and "log δ̃" not in single and "g̃_Y = 0.000" in single


def test_attention_lab_reads_and_writes_one_pixel_through_a_one_filter_grid():
    image = torch.zeros(1, H, W)
    image[0, 9, 4] = 0.8  # row 9, column 4: the paper's pixel (a, b) = (5, 10)
    lab = views.attention_lab(image, 1, gx=5.0, gy=10.0, delta=2.0, sigma2=0.01, gamma=2.0)
    assert lab.Fx.shape == (1, W) and lab.Fy.shape == (1, H)
    assert float(lab.Fx[0, 4]) == pytest.approx(1.0) and float(lab.Fy[0, 9]) == pytest.approx(1.0)  # sigma ~ 0.1
    assert lab.glimpse.shape == (1, 1, 1) and float(lab.glimpse) == pytest.approx(2.0 * 0.8)  # eq. 27: gamma x
    assert float(lab.written[0, 9, 4]) == pytest.approx(0.8) and float(lab.written.sum()) == pytest.approx(0.8)
    assert float(lab.window.geometry.x0) == pytest.approx(4.0)  # one centre, at column 4


def test_attention_lab_glimpse_and_write_back_are_eqs_27_and_29():
    image = torch.rand(1, H, W, generator=torch.Generator().manual_seed(1))
    lab = views.attention_lab(image, 4, gx=13.0, gy=15.0, delta=3.0, sigma2=2.0, gamma=1.5)
    Fx, Fy, x = lab.Fx.double(), lab.Fy.double(), image[0].double()
    assert Fx.sum(1).tolist() == pytest.approx([1.0] * 4)  # 1 / Z_X normalises every filter (eq. 25)
    glimpse = 1.5 * Fy @ x @ Fx.T
    assert lab.glimpse[0].double() == pytest.approx(glimpse, abs=1e-5)
    assert lab.written[0].double() == pytest.approx(Fy.T @ glimpse @ Fx / 1.5, abs=1e-5)


def test_captions_of_a_config():
    paper = DrawConfig()
    assert views.attention_summary(paper) == "read 2×2, write 5×5"
    plain = DrawConfig(T=3, read_attn=False, write_attn=False)
    assert views.attention_summary(plain) == "no read attention, no write attention"
    assert views.config_caption(paper) == "T=64 · z=100 · LSTM 256/256 · read 2×2, write 5×5"
    assert views.glimpse_label(paper) == "2×2 glimpse" and "whole image" in views.glimpse_label(plain)
    assert views.attention_label(paper.to_dict()) == "attention"
    assert views.attention_label(plain.to_dict()) == "no attention"
    assert views.attention_label(None) == "unknown"
    assert views.model_caption(get_kind("draw"), paper, "mnist") == "draw · mnist · 1×28×28"
    assert views.model_caption(get_kind("draw"), paper, None) == "draw · unknown dataset · 1×28×28"
    table = views.config_table(plain)
    assert dict(zip(table["field"], table["value"], strict=True))["read_attn"] == "False"


def test_a_checkpoints_dataset_and_image_size_for_the_picker():
    assert views.image_shape(1, 60, 60) == "60×60" and views.image_shape(3, 32, 32) == "32×32×3"
    colour = {"dataset": "cifar10", "config": {"height": 32, "width": 32, "channels": 3, "T": 4}}
    assert views.checkpoint_summary(colour) == "cifar10 · 32×32×3"
    assert (
        views.checkpoint_summary({"dataset": "mnist-two", "config": {"height": 60, "width": 60}}) == "mnist-two · 60×60"
    )
    assert views.checkpoint_summary({"config": {"height": 28, "width": 28, "channels": 1}}) == "unknown dataset · 28×28"
    assert views.checkpoint_summary({"dataset": "mnist", "config": "broken"}) == "mnist"  # no size to say
    assert views.config_shape({"height": 60, "width": 60}) == (1, 60, 60) and views.config_shape(None) is None


def test_config_caption_of_another_kind_lists_its_fields_but_the_image_size():
    @dataclass(frozen=True)
    class Other:
        height: int = 100
        width: int = 100
        channels: int = 1
        glimpses: int = 8

        def to_dict(self) -> dict:
            return {"height": self.height, "width": self.width, "channels": self.channels, "glimpses": self.glimpses}

    assert views.config_caption(Other()) == "glimpses=8"
    assert views.image_size(Other()) == "1×100×100"


def test_evaluation_datasets_are_those_of_the_image_size_whose_files_are_here(monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path))
    assert views.evaluation_datasets(DrawConfig()) == ["mnist-sample"]  # the shipped sample is always here
    assert views.evaluation_datasets(DrawConfig(height=32, width=32)) == []
    for path in mnist.mnist_files(tmp_path):  # what `available` looks for
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    assert views.evaluation_datasets(DrawConfig()) == ["mnist", "mnist-sample"]
    assert views.evaluation_datasets(DrawConfig(), prefer="mnist-sample") == ["mnist-sample", "mnist"]


def test_a_lab_link_names_a_dataset_of_the_models_image_size():
    window = views.window_at(params((1,), gx=11.0, gy=15.0, delta=6.0, sigma2=1.5, gamma=0.05), 5, 0)
    assert views.lab_link(window, 5, shape=(3, 32, 32))["dataset"] == "cifar10"
    assert views.lab_link(window, 5, shape=(1, 60, 60), prefer="mnist")["dataset"] == "mnist-two", "mnist is 28×28"
    assert views.lab_link(window, 5, shape=(1, 28, 28), prefer="mnist-sample")["dataset"] == "mnist-sample"
    assert "dataset" not in views.lab_link(window, 5, shape=(1, 17, 17)), "no sample of that size: the lab chooses"


def test_a_lab_link_carries_the_window_and_the_lab_reads_it_back_rounded_to_its_sliders():
    window = views.window_at(params((1,), gx=11.1781, gy=15.52, delta=6.16241, sigma2=1.4914, gamma=0.0513), 5, 0)
    query = views.lab_link(window, 5, shape=(1, 28, 28), prefer="mnist-sample", digit=7)
    assert query == {
        "dataset": "mnist-sample",
        "n": "5",
        "gx": "11.1781",
        "gy": "15.52",
        "delta": "6.16241",
        "sigma2": "1.4914",
        "gamma": "0.0513",
        "window": "read",
        "digit": "7",
    }
    settings, notes = views.lab_settings(query, H, W)
    # each to its slider's step: 0.1 pixels for g and delta, 0.01 for sigma^2, 0.05 for gamma
    assert settings == {"n": 5, "gx": 11.2, "gy": 15.5, "delta": 6.2, "sigma2": 1.49, "gamma": 0.05}
    assert isinstance(settings["n"], int) and notes == []


def test_lab_settings_keep_values_in_range_and_say_which_were_moved():
    settings, notes = views.lab_settings({"n": "40", "delta": "-3", "gamma": "banana", "sigma2": "nan"}, H, W)
    low_n, high_n, _ = views.lab_ranges(H, W)["n"]
    assert settings == {"n": high_n, "delta": 0.0}  # unparsable and non-finite values are left out
    assert len(notes) == 2 and any(note.startswith("n = 40") for note in notes)
    assert views.lab_settings({}, H, W) == ({}, [])
    defaults = views.lab_defaults(H, W)
    assert defaults["gx"] == defaults["gy"] == 14.5  # the middle of pixels 1..28
    for key, (low, high, _) in views.lab_ranges(H, W).items():
        assert low <= defaults[key] <= high


def test_the_labs_window_and_ranges_grow_with_the_image():
    assert views.lab_defaults(28, 28) == {"n": 5, "gx": 14.5, "gy": 14.5, "delta": 3.0, "sigma2": 1.0, "gamma": 1.0}
    assert views.lab_defaults(32, 32)["delta"] == 3.4  # 3 x 32 / 28 = 3.43
    two = views.lab_defaults(60, 60)
    assert (two["gx"], two["delta"], two["sigma2"]) == (30.5, 6.4, 4.55)  # sigma = delta / 3 as on MNIST
    mnist, big = views.lab_ranges(28, 28), views.lab_ranges(60, 60)
    assert mnist["n"][1] == big["n"][1] == 12 and views.lab_ranges(100, 100)["n"][1] == 20
    assert mnist["gx"][:2] == (-10.0, 38.0) and big["gx"][:2] == (-21.0, 81.0)
    assert mnist["sigma2"][1] == 30.0 and big["sigma2"][1] == round(30 * (60 / 28) ** 2, 2)
    assert views.lab_ranges(4, 4)["gx"][:2] == (-10.0, 14.0)  # a smaller image keeps MNIST's margin
    for height, width in ((32, 32), (60, 60), (100, 100), (20, 36)):
        defaults = views.lab_defaults(height, width)
        for key, (low, high, _) in views.lab_ranges(height, width).items():
            assert low <= defaults[key] <= high, (height, width, key)


def test_the_model_card_reads_as_a_table_of_labelled_values():
    card = {
        "name": "mnist",
        "config": {"T": 64},
        "dataset": "mnist",
        "test_elbo_nats": 80.123,
        "test_kl_nats": 25.5,
        "steps": 20026,
        "train_seconds": 3725,
        "command": "python -m draw_core.train ...",
        "notes": "a note",
        "colour_coupling": [0.81, 0.042, -0.5],
    }
    table = views.card_table(card, duration=lambda s: f"{s // 3600} h")
    rows = dict(zip(table["what"], table["value"], strict=True))
    assert rows["Test bound −ELBO (eq. 12)"] == "80.12 nats"
    assert rows["… latent cost Lᶻ (eq. 11)"] == "25.50 nats"
    assert rows["Training steps"] == "20,026" and rows["Training time"] == "1 h"
    table = views.card_table({**card, "init_from": {"checkpoint": "a"}, "test_error": 0.0387}, duration=str)
    fine_tune = dict(zip(table["what"], table["value"], strict=True))
    assert fine_tune["Last run's training"] == "3725" and fine_tune["Test error"] == "3.87%"
    assert rows["notes"] == "a note"  # an unknown field under its own name
    assert rows["Colour coupling a (G on R, B on R, B on G)"] == "+0.81 · +0.04 · -0.50"
    assert not any("config" in what or "command" in what or "name" == what for what in rows)  # left to the raw card
    assert list(rows)[:2] == ["Dataset", "Test bound −ELBO (eq. 12)"]


def test_every_explanation_names_its_equation_and_one_thing_to_notice():
    for name, explanation in views.EXPLANATIONS.items():
        assert explanation.number.startswith(("eq. ", "eqs ", "sec. ")), name
        assert explanation.latex and explanation.notice.endswith("."), name
    assert "1/σ" in views.WINDOW_RULE and "clipped" in views.WINDOW_RULE


def test_a_preset_trains_on_its_own_dataset_else_one_of_the_same_shape():
    here = ["mnist", "mnist-sample", "mnist-two", "cifar10"]
    assert views.training_dataset("mnist-two", here) == "mnist-two"
    assert views.training_dataset("svhn", here) == "cifar10"  # no SVHN: the colour 32×32 images that are here
    assert views.training_dataset("svhn", ["mnist-sample"]) == "mnist-sample"
    assert views.training_dataset("mnist", []) is None


def test_a_cifar_figure_says_which_copy_it_was_measured_on(monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path))
    for split in ("train", "test"):
        (tmp_path / "cifar10-jpeg" / split).mkdir(parents=True)
    here = views.data_copy("cifar10")
    assert "JPEG (quality 75) re-encoded copy" in here and str(tmp_path / "cifar10-jpeg") in here
    recorded = {views.DATA_COPY_KEY: "the original CIFAR-10 python batches at /data/cifar-10-batches-py"}
    assert views.data_copy("cifar10", recorded) == recorded[views.DATA_COPY_KEY]  # the card's record comes first
    assert views.data_copy("cifar10", {"dataset": "cifar10"}) == here
    assert views.data_copy("mnist") is None and views.data_copy(None) is None and views.data_copy("nonsense") is None


def test_sample_datasets_match_the_shape_and_put_the_preferred_first(monkeypatch, tmp_path):
    from draw_core.data import dataset_names, get_dataset

    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path))  # no SVHN here: it ships no sample, so it has none to give
    assert views.sample_datasets() == [name for name in dataset_names() if name != "svhn"]
    grey28 = views.sample_datasets((1, 28, 28), prefer="mnist-sample")
    assert grey28[0] == "mnist-sample" and set(grey28) == {"mnist", "mnist-sample"}
    assert all(get_dataset(name).shape == (1, 28, 28) for name in grey28)
    assert views.sample_datasets((3, 32, 32)) == ["cifar10"]  # its 64 images ship with the app
    assert views.sample_datasets((1, 60, 60)) == ["mnist-two"]


def test_the_cards_headline_is_the_figure_of_what_the_model_does():
    classifier = views.card_headline({"test_error": 0.0387, "paper_error": 0.0336, "test_n": 10000}, classifies=True)
    assert classifier.figures == [("Test error", "3.87%"), ("The paper's error (Table 1)", "3.36%")]
    assert "10,000 test images" in classifier.explanation and "nats" not in classifier.explanation
    mnist = views.card_headline(
        {"test_elbo_nats": 89.634, "paper_nats": 80.97, "binarisation": "fixed", "test_n": 10000}, classifies=False
    )
    assert mnist.figures == [("Test bound", "89.63 nats")]
    assert "binarisation" in mnist.explanation and "≤ 80.97 nats" in mnist.explanation
    colour = {
        "dataset": "cifar10",
        "config": {"likelihood": "logistic-coupled"},
        "test_elbo_nats": 9499.806,
        "test_bits_per_dim": 4.46137,
        "data_copy": "the JPEG copy",
    }
    headline = views.card_headline(colour, classifies=False)
    assert headline.figures == [("Test bound", "9,500 nats"), ("Bits per dimension", "4.46")]
    assert "Measured on the JPEG copy." in headline.explanation and "binarisation" not in headline.explanation
    assert "80.97" not in headline.explanation  # no paper figure claimed for a model the paper gives none for
    run = {"config": {"likelihood": "logistic", "channels": 3, "height": 32, "width": 32}, "test_elbo_nats": 6387.0}
    # a colour run's stored meta has no bits/dim of its own: 6387 nats / (3 x 32 x 32 x ln 2) = 2.9995 bits/dim
    assert views.card_headline(run, classifies=False).figures[1] == ("Bits per dimension", "3.00")
    autoencoder = views.card_headline({"autoencoder": True, "test_recon_nats": 51.2}, classifies=False)
    assert autoencoder.figures == [("Reconstruction", "51.20 nats")] and "no bound" in autoencoder.explanation
    assert views.card_headline({}, classifies=True).figures == [("Test error", "not measured")]


def test_the_headline_training_time_counts_every_run_where_the_card_does():
    assert views.training_time({"train_seconds": 60.0}) == ("Training time", 60.0)
    assert views.training_time({"train_seconds": 60.0, "init_from": {"x": 1}}) == ("Last run's training", 60.0)
    assert views.training_time({"train_seconds": 60.0, "total_train_seconds": 600}) == (views.ALL_RUNS, 600.0)
    assert views.own_run_label({"steps": 3}, "Steps") == "Steps" and views.own_run_label(
        {"continued_from": {"step": 9}}, "Steps"
    ) == ("Last run's steps")


def test_a_continued_cards_table_says_which_figures_are_its_last_runs():
    own = {"steps": 747, "epochs": 12.7, "batch_size": 1024, "hardware": "H200", "train_seconds": 79.0}
    rows = dict(zip(*views.card_table({**own, "total_train_seconds": 900.0}, duration=str).values(), strict=True))
    assert rows["Training steps"] == "747" and rows["Epochs"] == "12.7" and rows["Hardware"] == "H200"
    continued = {**own, "total_train_seconds": 900.0, "continued_from": {"step": 1777}}
    rows = dict(zip(*views.card_table(continued, duration=str).values(), strict=True))
    assert rows["Last run's training steps"] == "747" and rows["Last run's epochs"] == "12.7"
    assert rows["Last run's batch size"] == "1024" and rows["Last run's hardware"] == "H200"
    assert rows["Last run's training"] == "79.0" and rows[views.ALL_RUNS] == "900.0"
    assert "Epochs" not in rows and "Hardware" not in rows


def test_a_fine_tunes_training_time_is_labelled_as_its_last_run():
    assert views.training_time_label({"train_seconds": 60}) == "Training time"
    assert views.training_time_label({"init_from": {"checkpoint": "a"}}) == "Last run's training"
    assert views.training_time_label({"continued_from": {"step": 3}}) == "Last run's training"


def test_a_soups_table_says_its_figures_are_the_averaged_runs():
    """The mean of three checkpoints' weights: its train_seconds are both fine-tunes' together and its steps the
    first one's (tools/average_checkpoints.py), so neither may be called the last run's."""
    soup = {
        "steps": 30559,
        "train_seconds": 14163.0,
        "total_train_seconds": 45667.0,
        "init_from": {"checkpoint": "start"},
        "averaged_from": [{"checkpoint": "a"}, {"checkpoint": "b"}, {"checkpoint": "start"}],
    }
    rows = dict(zip(*views.card_table(soup, duration=str).values(), strict=True))
    assert rows["First averaged run's training steps"] == "30,559"
    assert rows["Averaged runs' training"] == "14163.0" and rows[views.ALL_RUNS] == "45667.0"
    assert rows["Weights"].startswith("the mean of 3 checkpoints' weights")
    assert not any(label.startswith("Last run's") for label in rows)
    assert views.own_run_label(soup, "Steps") == "First averaged run's steps"
