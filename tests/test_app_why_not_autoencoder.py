"""AppTest of the "Why not an autoencoder?" page: DRAW (`mnist`) and a stand-in autoencoder (`mnist-ae`, a checkpoint
whose training meta says kl_weight 0) found by name; the four views (reconstructions and their nats, prior samples
from the same z, where the codes lie against N(0, 1), KL per step) with their equations; what happens when the
autoencoder is missing, is not one, or is another network; the beta slider once three betas of the network are here;
and (slow) the real shipped mnist beside a full-size stand-in."""

import numpy as np
import pytest
import torch
from app_support import APP, SHIPPED, TINY, assert_no_exception, figure, figures, open_page, use_folders
from streamlit.testing.v1 import AppTest

from draw_core.config import DrawConfig
from draw_core.io import catalog
from draw_core.io.checkpoint import load_checkpoint, save_checkpoint
from draw_core.nn.model import DRAW
from draw_core.present import autoencoder as ae
from draw_core.present import viz

PAGE = "why_not_autoencoder.py"


def stand_in(folder, name: str, *, beta: float | None, seed: int, cfg: DrawConfig = TINY):
    """A freshly initialised generator saved like a run whose meta records kl_weight = beta (no training run: None)."""
    torch.manual_seed(seed)
    meta = {"step": 3, "dataset": "mnist-sample"}
    if beta is not None:
        meta["train_config"] = {"dataset": "mnist-sample", "kl_weight": beta}
    return save_checkpoint(DRAW(cfg), folder / f"{name}.safetensors", meta=meta)


@pytest.fixture
def runs(monkeypatch, tmp_path):
    """A runs folder with the two models the page looks for: tiny stand-ins of `mnist` and of `mnist-ae`."""
    folder = use_folders(monkeypatch, tmp_path, runs=[])
    stand_in(folder, "mnist", beta=1.0, seed=0)
    stand_in(folder, "mnist-ae", beta=0.0, seed=1)
    return folder


def captions(at) -> str:
    return " ".join(caption.value for caption in at.caption)


def traces(spec: dict) -> dict[str, dict]:
    return {trace.get("name"): trace for trace in spec["data"]}


def pixels(spec: dict) -> np.ndarray:
    return np.asarray(viz.spec_array(spec["data"][0]["z"]))


def tiles(strip: np.ndarray) -> np.ndarray:
    """(STRIP, 28, 28) the images of a strip of 28 x 28 images with one-pixel gaps."""
    return np.stack([strip[1:29, 1 + 29 * i : 29 + 29 * i] for i in range(ae.STRIP)])


def undecided(images: np.ndarray) -> float:
    """The fraction of pixels whose probability of ink is between 0.1 and 0.9."""
    return float(((images > 0.1) & (images < 0.9)).mean())


def test_renders_the_four_views_with_their_equations(runs):
    at = open_page(PAGE)
    titles = [spec["layout"]["title"]["text"] for spec in figures(at)]
    assert titles == [
        "Test digits 0-7",
        "mnist (DRAW): z sampled from Q(z | x)",
        "mnist (DRAW): z = μ",
        "mnist-ae (autoencoder): z = μ",
        "mnist (DRAW): z ~ N(0, I), seed 0",
        "mnist-ae (autoencoder): the same z",
        "Every code dimension (t, d) over the 500 test digits",
        titles[7],  # the histogram's, checked below
        "KL per step, nats (mean over the 500 test digits)",
    ]
    latex = " ".join(element.value for element in at.latex)
    for name, explanation in ae.EXPLANATIONS.items():  # every chart: its equation and what to notice
        assert explanation.notice in captions(at) and explanation.latex in latex, name
    table = at.table[0].value
    assert list(table["model"]) == ["mnist", "mnist", "mnist-ae"]
    assert table["Lᶻ (eq. 11)"].iloc[2] == "∞ (a point mass)"
    digits = ae.test_digits()
    assert pixels(figures(at)[0]).shape == (30, 233)  # 8 digits of 28 in a row, 9 one-pixel gaps
    assert tiles(pixels(figures(at)[0])) == pytest.approx(digits[:8, 0].numpy())


def test_the_nats_and_the_kl_are_the_models_own(runs):
    at = open_page(PAGE)
    auto = load_checkpoint(runs / "mnist-ae.safetensors").model
    digits = ae.test_digits()
    with torch.inference_mode():
        result = auto(digits, sample=False)
    half_mu = 0.5 * result.mu.square().sum(-1).mean(1)  # (T,) 1/2 |mu_t|^2 of the autoencoder, computed apart
    kl = traces(figure(at, "KL per step"))
    assert viz.spec_array(kl["mnist-ae: ½‖μ_t‖²"]["y"]) == pytest.approx(half_mu.tolist(), rel=1e-4)
    assert set(kl) == {"mnist: KL, eq. 11", "mnist: ½‖μ_t‖²", "mnist-ae: ½‖μ_t‖²"}
    recon = ae.encode(auto, digits, sample=False).recon_nats
    assert at.table[0].value["Lˣ (eq. 9)"].iloc[2] == f"{recon:.2f}"
    assert "The autoencoder's own KL is infinite" in captions(at)
    draw = load_checkpoint(runs / "mnist.safetensors").model
    judged = ae.judged_nats(draw, {"mnist": draw, "mnist-ae": auto})
    for name, nats in judged.items():
        assert f"{name} {nats:.1f} nats" in captions(at), name


def test_the_histograms_count_every_digit_and_follow_the_step_and_dimension(runs):
    at = open_page(PAGE)
    auto = ae.encode(load_checkpoint(runs / "mnist-ae.safetensors").model, ae.test_digits(), sample=False)
    t, d = ae.widest_code(auto)
    assert (at.slider(key="ae_step").value, at.slider(key="ae_dim").value) == (t + 1, d)
    spec = figure(at, "against N(0, 1)")
    assert spec["layout"]["title"]["text"] == f"z_{t + 1}[{d}] over the 500 test digits against N(0, 1)"
    bars = [trace for trace in spec["data"] if trace["type"] == "bar"]
    assert [trace["name"] for trace in bars] == [
        "mnist (DRAW): z sampled from Q", "mnist (DRAW): μ", "mnist-ae (autoencoder): z = μ",
    ]  # fmt: skip
    assert all(viz.spec_array(trace["customdata"]).sum() == 500 for trace in bars)
    at.slider(key="ae_step").set_value(2)
    at.slider(key="ae_dim").set_value(5)
    at.run()
    assert_no_exception(at)
    spec = figure(at, "against N(0, 1)")
    assert spec["layout"]["title"]["text"] == "z_2[5] over the 500 test digits against N(0, 1)"
    shown = viz.spec_array(traces(spec)["mnist-ae (autoencoder): z = μ"]["customdata"])
    edges = ae.shared_edges(auto.z[1, :, 5].numpy())
    assert shown.tolist() == ae.histogram(auto.z[1, :, 5].numpy(), edges).tolist()


def test_the_digits_and_the_seed_move_the_strips(runs):
    at = open_page(PAGE)
    before = pixels(figure(at, "the same z"))
    at.number_input(key="ae_first").set_value(16)
    at.number_input(key="ae_seed").set_value(7)
    at.run()
    assert_no_exception(at)
    assert figure(at, "Test digits")["layout"]["title"]["text"] == "Test digits 16-23"
    assert figure(at, "z ~ N(0, I)")["layout"]["title"]["text"] == "mnist (DRAW): z ~ N(0, I), seed 7"
    assert not np.array_equal(pixels(figure(at, "the same z")), before)


def test_without_the_autoencoder_the_page_says_how_to_train_it(monkeypatch, tmp_path):
    folder = use_folders(monkeypatch, tmp_path, runs=[])
    stand_in(folder, "mnist", beta=1.0, seed=0)
    at = open_page(PAGE)
    assert not figures(at)
    message = at.info[0].value
    assert "**mnist-ae**" in message and "is not here" in message
    assert "python -m draw_core.train --preset mnist --kl-weight 0" in message


def test_a_model_trained_with_the_kl_term_is_not_taken_for_the_autoencoder(runs):
    stand_in(runs, "mnist-ae", beta=1.0, seed=1)
    at = open_page(PAGE)
    assert not figures(at)
    assert "mnist-ae (run) is not an autoencoder: its meta records β = 1" in at.error[0].value


def test_an_autoencoder_of_another_network_is_refused(runs):
    stand_in(runs, "mnist-ae", beta=0.0, seed=1, cfg=DrawConfig(T=3, enc_size=32, dec_size=32, z_size=8))
    at = open_page(PAGE)
    assert not figures(at)
    assert "their configs differ" in at.error[0].value


def test_a_third_beta_of_the_same_network_makes_the_beta_slider(runs):
    at = open_page(PAGE)
    assert not at.get("select_slider")
    assert "β = 0 (autoencoder), mnist-ae (run); β = 1 (ELBO, the paper), mnist (run)" in captions(at)
    stand_in(runs, "mnist-beta4", beta=4.0, seed=2)
    at = open_page(PAGE)
    slider = at.select_slider(key="ae_beta")
    assert slider.options == ["β = 0 (autoencoder)", "β = 1 (ELBO, the paper)", "β = 4"]
    assert slider.value == 1.0
    slider.set_value(4.0).run()
    assert_no_exception(at)
    title = "mnist-beta4, β = 4: the same z ~ N(0, I), seed 0"
    chosen = load_checkpoint(runs / "mnist-beta4.safetensors").model
    expected = ae.prior_samples({"beta4": chosen}, seed=0)["beta4"]
    assert pixels(figure(at, title))[1:29, 1:29] == pytest.approx(expected[0, 0].numpy(), abs=1e-6)
    assert "mnist-beta4 on the 500 test digits" in captions(at) and "sampled from Q" in captions(at)


@pytest.mark.slow
def test_the_shipped_mnist_beside_a_full_size_stand_in(monkeypatch, tmp_path):
    """The real shipped mnist (64 steps, z of 100) beside an untrained network of its config that says beta = 0: the
    page's bound for mnist is its card's, and only mnist draws digits from the prior."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for suffix in (".safetensors", ".json"):
        (shipped / f"mnist{suffix}").write_bytes((SHIPPED / f"mnist{suffix}").read_bytes())
    stand_in(shipped, "mnist-ae", beta=0.0, seed=0, cfg=load_checkpoint(SHIPPED / "mnist.safetensors").config)
    use_folders(monkeypatch, tmp_path, shipped=shipped, runs=[])
    at = AppTest.from_file(str(APP), default_timeout=600)
    at.run()
    at.switch_page(f"pages/{PAGE}").run()
    assert_no_exception(at)
    table = at.table[0].value
    bound = float(table["L = Lˣ + Lᶻ (eq. 12)"].iloc[0])
    assert bound == pytest.approx(catalog.read_card(SHIPPED / "mnist.safetensors")["sample_elbo_nats"], abs=1.5)
    assert float(table["Lˣ (eq. 9)"].iloc[2]) > 300  # the untrained stand-in redraws nothing
    digits, noise = (tiles(pixels(figure(at, title))) for title in ("z ~ N(0, I), seed 0", "the same z"))
    assert 0.05 < digits.mean() < 0.25 and undecided(digits) < 0.25  # MNIST's ink: ~0.13, mostly black or white
    assert noise.mean() > 0.3 and undecided(noise) > 0.25
