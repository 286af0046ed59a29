"""draw_core.present.autoencoder: which checkpoint is an autoencoder (beta from the training meta), one pass over the
test digits (L^x, codes, KL per step), the same prior draw through several models, code spreads and histograms against
N(0, 1), and the figures; on a tiny model and on the real shipped mnist model."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from app_support import SHIPPED, TINY

from draw_core.config import DrawConfig
from draw_core.io import catalog
from draw_core.io.checkpoint import load_checkpoint, read_header, save_checkpoint
from draw_core.nn.classifier import ClassifierConfig, DrawClassifier
from draw_core.nn.elbo import gaussian_kl, loss_terms
from draw_core.nn.model import DRAW
from draw_core.present import autoencoder as ae
from draw_core.present.latent import prior_z


def tiny(seed: int = 0, cfg: DrawConfig = TINY) -> DRAW:
    torch.manual_seed(seed)
    return DRAW(cfg).eval()


def save(folder, name: str, *, beta: float | None, cfg: DrawConfig = TINY, seed: int = 0):
    """A tiny generator saved like a run; its meta records a training run with kl_weight = beta (none when None)."""
    meta = {"step": 3, "dataset": "mnist-sample"}
    if beta is not None:
        meta["train_config"] = {"dataset": "mnist-sample", "kl_weight": beta}
    return save_checkpoint(tiny(seed, cfg), folder / f"{name}.safetensors", meta=meta)


def folders(monkeypatch, tmp_path):
    shipped, runs = tmp_path / "shipped", tmp_path / "runs"
    shipped.mkdir()
    runs.mkdir()
    monkeypatch.setenv("DRAW_CHECKPOINTS_DIR", str(shipped))
    monkeypatch.setenv("DRAW_RUNS_DIR", str(runs))
    return shipped, runs


def codes(mu: torch.Tensor, z: torch.Tensor | None = None, *, recon=(1.0,), kl=(0.0,)) -> ae.Codes:
    """Codes made by hand (T, N, Z) for the functions that only read them."""
    return ae.Codes(
        sampled=z is not None,
        recon=torch.tensor(recon),
        images=torch.zeros(mu.shape[1], 1, 2, 2),
        mu=mu,
        z=mu if z is None else z,
        kl_per_step=torch.tensor(kl),
        mean_term_per_step=0.5 * mu.square().sum(-1).mean(1),
    )


# --- beta from the meta -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "beta"),
    [
        ({"train_config": {"kl_weight": 0.0}}, 0.0),
        ({"train_config": {"kl_weight": 0}}, 0.0),
        ({"train_config": {"kl_weight": 4}}, 4.0),
        ({"train_config": {"lr": 1e-3}}, 1.0),  # a run from before --kl-weight: the paper's loss
        ({}, None),  # no training run recorded
        ({"train_config": "beta 0"}, None),
        ({"train_config": {"kl_weight": "0"}}, None),
        ({"train_config": {"kl_weight": False}}, None),  # a bool is not a weight
    ],
)
def test_beta_comes_from_the_training_meta(meta, beta):
    assert ae.kl_weight(meta) == beta
    assert ae.is_autoencoder(meta) is (beta == 0.0)


def test_the_shipped_mnist_is_not_an_autoencoder():
    meta = read_header(SHIPPED / "mnist.safetensors").meta
    assert ae.kl_weight(meta) == 1.0 and not ae.is_autoencoder(meta)


def test_models_are_found_by_name_shipped_first_generators_only(monkeypatch, tmp_path):
    shipped, runs = folders(monkeypatch, tmp_path)
    assert ae.find_models(catalog.list_checkpoints()) == {"mnist": None, "mnist-ae": None}
    save(runs, "mnist", beta=1.0)
    save(shipped, "mnist", beta=1.0)
    save_checkpoint(DrawClassifier(ClassifierConfig(glimpses=2, read_n=4, hidden=8)), runs / "mnist-ae.safetensors")
    found = ae.find_models(catalog.list_checkpoints())
    assert found["mnist"].kind == "shipped" and found["mnist"].path == shipped / "mnist.safetensors"
    assert found["mnist-ae"] is None  # a classifier of that name is not the autoencoder
    (runs / "mnist-ae.safetensors").unlink()
    save(runs, "mnist-ae", beta=0.0)
    assert ae.find_models(catalog.list_checkpoints())["mnist-ae"].path == runs / "mnist-ae.safetensors"


def test_the_beta_ladder_holds_one_model_per_beta_of_the_same_network_in_order(monkeypatch, tmp_path):
    shipped, runs = folders(monkeypatch, tmp_path)
    save(shipped, "mnist", beta=1.0)
    save(runs, "beta4", beta=4.0)
    save(runs, "mnist-ae", beta=0.0)
    save(runs, "beta4-again", beta=4.0)
    save(runs, "no-meta", beta=None)  # beta unknown: left out
    save(runs, "other", beta=2.0, cfg=DrawConfig(T=3, enc_size=32, dec_size=32, z_size=8))  # another network
    ladder = ae.beta_ladder(catalog.list_checkpoints(), TINY)
    assert list(ladder) == [0.0, 1.0, 4.0]
    assert [ladder[b].name for b in ladder] in (["mnist-ae", "mnist", "beta4"], ["mnist-ae", "mnist", "beta4-again"])
    assert ae.beta_label(0.0) == "β = 0 (autoencoder)" and ae.beta_label(1.0) == "β = 1 (ELBO, the paper)"
    assert ae.beta_label(4.0) == "β = 4"


# --- one pass over the digits ---------------------------------------------------------------------------------------


def test_the_test_digits_are_the_shipped_sample_binarised_once():
    digits = ae.test_digits()
    assert digits.shape == (500, 1, 28, 28)
    assert set(digits.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(digits, ae.test_digits())  # the fixed seed: the same bits every time


def test_encode_with_z_mu_is_the_autoencoders_loss_whatever_the_batch():
    model, x = tiny(), ae.test_digits()[:7]
    whole = loss_terms(model(x, sample=False), x)
    batched = ae.encode(model, x, sample=False, batch=3)
    assert batched.recon == pytest.approx(whole.recon.detach(), rel=1e-5)
    assert batched.z is batched.mu and not batched.sampled
    expected = 0.5 * batched.mu.square().sum(-1).mean(1)  # 1/2 |mu_t|^2, eq. 11 with sigma = 1
    assert batched.mean_term_per_step == pytest.approx(expected, rel=1e-5)
    assert batched.images.shape == (7, 1, 28, 28)
    assert batched.images == pytest.approx(torch.sigmoid(model(x, sample=False).final_logits).detach(), abs=1e-6)


def test_encode_with_sampled_z_keeps_the_draws_and_the_kl_of_eq_11():
    model, x = tiny(), ae.test_digits()[:5]
    result = ae.encode(model, x, sample=True, seed=3)
    direct = model(x, generator=torch.Generator().manual_seed(3))  # one batch: the same draws
    assert result.sampled and not torch.equal(result.z, result.mu)
    assert result.z == pytest.approx(direct.z.detach(), abs=1e-6)
    assert result.kl_per_step == pytest.approx(gaussian_kl(direct.mu, direct.logvar).mean(1).detach(), rel=1e-5)
    assert result.kl_nats == pytest.approx(float(loss_terms(direct, x).kl.detach().mean()), rel=1e-5)
    with pytest.raises(ValueError, match="at least one image"):
        ae.encode(model, x[:0], sample=True)


def test_kl_curves_and_the_table_read_the_right_codes():
    draw = codes(torch.tensor([[[3.0, 4.0]], [[0.0, 0.0]]]), torch.zeros(2, 1, 2), recon=(50.0,), kl=(12.5, 0.5))
    auto = codes(torch.tensor([[[1.0, 1.0]], [[2.0, 0.0]]]), recon=(40.0,))
    curves = ae.kl_curves(draw, auto, draw_name="D", ae_name="A")
    assert curves == {
        "D: KL, eq. 11": [12.5, 0.5],
        "D: ½‖μ_t‖²": [12.5, 0.0],  # 1/2 (3^2 + 4^2)
        "A: ½‖μ_t‖²": [1.0, 2.0],
    }
    sampled, mean, autoencoder = ae.recon_table(draw, codes(torch.zeros(2, 1, 2), recon=(45.0,)), auto, draw_name="D",
                                                ae_name="A")  # fmt: skip
    assert (sampled["Lˣ (eq. 9)"], sampled["Lᶻ (eq. 11)"], sampled["L = Lˣ + Lᶻ (eq. 12)"]) == (
        "50.00",
        "13.00",
        "63.00",
    )
    assert mean["Lˣ (eq. 9)"] == "45.00" and mean["Lᶻ (eq. 11)"] == ""
    assert autoencoder["Lˣ (eq. 9)"] == "40.00" and autoencoder["L = Lˣ + Lᶻ (eq. 12)"] == "no bound"


# --- the prior ------------------------------------------------------------------------------------------------------


def test_prior_samples_decode_the_same_z_with_every_model():
    first, second = tiny(0), tiny(1)
    shown = ae.prior_samples({"a": first, "b": second}, seed=5, n=3)
    z = prior_z(5, TINY.T, TINY.z_size, 3)
    for name, model in (("a", first), ("b", second)):
        assert torch.equal(shown[name], model.generate(3, z=z).canvases[-1])
    assert not torch.equal(shown["a"], shown["b"])
    assert not torch.equal(shown["a"], ae.prior_samples({"a": first}, seed=6, n=3)["a"])
    with pytest.raises(ValueError, match="must share T and the latent size"):
        ae.prior_samples({"a": first, "c": tiny(0, DrawConfig(T=3, enc_size=32, dec_size=32, z_size=8))}, seed=5)


def undecided(images: torch.Tensor) -> float:
    """The fraction of pixels whose probability of ink is between 0.1 and 0.9."""
    return float(((images > 0.1) & (images < 0.9)).float().mean())


def test_the_shipped_mnist_draws_digits_from_the_prior_and_an_untrained_stand_in_draws_fog():
    mnist = load_checkpoint(SHIPPED / "mnist.safetensors").model
    digits = ae.prior_samples({"mnist": mnist}, seed=0)["mnist"]
    fog = ae.prior_samples({"stand-in": tiny()}, seed=0)["stand-in"]
    assert digits.shape == fog.shape == (ae.STRIP, 1, 28, 28)
    assert 0.05 < float(digits.mean()) < 0.25 and undecided(digits) < 0.25  # MNIST's ink: ~0.13, mostly black/white
    assert undecided(fog) > 0.9  # sigma(c_T) of a canvas that barely moved from 0: grey 0.5 everywhere


@pytest.fixture(scope="module")
def shipped_codes():
    model = load_checkpoint(SHIPPED / "mnist.safetensors").model
    digits = ae.test_digits()
    return ae.encode(model, digits, sample=True), ae.encode(model, digits, sample=False)


def test_the_shipped_mnist_bound_on_the_sample_matches_its_card(shipped_codes):
    sampled, mean = shipped_codes
    card = catalog.read_card(SHIPPED / "mnist.safetensors")
    # One draw of the posterior noise per digit: the card's figure used other draws of it.
    assert sampled.recon_nats + sampled.kl_nats == pytest.approx(card["sample_elbo_nats"], abs=1.5)
    assert mean.recon_nats < sampled.recon_nats  # without noise, the reconstruction is better
    assert sampled.kl_per_step.shape == (64,) and bool((sampled.kl_per_step > 0).all())


def test_the_shipped_mnists_sampled_codes_spread_like_the_prior_and_its_means_do_not(shipped_codes):
    sampled, _ = shipped_codes
    _, z_std = ae.code_spread(sampled.z)
    z_mean, _ = ae.code_spread(sampled.z)
    _, mu_std = ae.code_spread(sampled.mu)
    assert z_std.shape == (64 * 100,)
    assert 0.9 < np.median(z_std) < 1.1 and np.median(np.abs(z_mean)) < 0.1  # the aggregate posterior: ~N(0, 1)
    assert np.median(mu_std) < 0.5  # mu alone does not fill the prior
    step, dim = ae.widest_code(sampled)
    assert sampled.z[step, :, dim].std() == pytest.approx(float(sampled.z.std(1).max()))


# --- spreads and histograms -----------------------------------------------------------------------------------------


def test_code_spread_is_per_dimension_t_major_and_the_widest_code_is_found():
    z = torch.zeros(2, 3, 2)  # (T, N, Z)
    z[1, :, 0] = torch.tensor([1.0, 2.0, 3.0])  # mean 2, std 1
    z[0, :, 1] = torch.tensor([0.0, 0.0, 6.0])  # mean 2, std sqrt(12)
    mean, std = ae.code_spread(z)
    assert mean.tolist() == pytest.approx([0.0, 2.0, 2.0, 0.0])  # (t, d) = (0, 0), (0, 1), (1, 0), (1, 1)
    assert std.tolist() == pytest.approx([0.0, math.sqrt(12), 1.0, 0.0])
    assert ae.widest_code(codes(z)) == (0, 1)


def test_histogram_bins_cover_every_value_and_the_prior():
    values = np.array([-5.0, 0.0, 0.1, 5.0])
    edges = ae.shared_edges(values, bins=4)
    assert edges.tolist() == [-5.0, -2.5, 0.0, 2.5, 5.0]
    assert ae.histogram(values, edges).tolist() == [1, 0, 2, 1]  # 5.0 is in the last bin
    assert ae.shared_edges(np.array([0.0, 0.5]), bins=2).tolist() == [-4.0, 0.0, 4.0]  # at least [-4, 4]
    wide = np.random.default_rng(0).normal(3.0, 10.0, 500)
    narrow = np.random.default_rng(1).normal(0.0, 0.01, 500)
    edges = ae.shared_edges(wide, narrow)
    assert ae.histogram(wide, edges).sum() == ae.histogram(narrow, edges).sum() == 500
    assert ae.normal_density(np.array([0.0]))[0] == pytest.approx(1 / math.sqrt(2 * math.pi))
    x = np.linspace(-8, 8, 4001)
    assert np.trapezoid(ae.normal_density(x), x) == pytest.approx(1.0, abs=1e-6)


def trace(figure: go.Figure, name: str):
    found = [t for t in figure.data if t.name == name]
    assert len(found) == 1, f"expected one trace {name!r}, found {[t.name for t in figure.data]}"
    return found[0]


def test_the_histogram_figure_has_one_panel_per_model_densities_and_the_prior():
    rng = np.random.default_rng(0)
    panels = {
        "DRAW": {"z": rng.normal(0, 1, 500), "μ": rng.normal(0, 0.3, 500)},
        "AE": {"z = μ": rng.normal(6, 0.05, 500)},
    }
    figure = ae.histogram_figure(panels, title="t")
    go.Figure(figure.to_dict())  # raises ValueError on any invalid property
    for name, axis in (("DRAW: z", "x"), ("DRAW: μ", "x"), ("AE: z = μ", "x2")):
        bars = trace(figure, name)
        assert bars.xaxis == axis and sum(bars.customdata) == 500  # every digit in a bin
        assert float(np.sum(np.asarray(bars.y) * bars.width)) == pytest.approx(1.0)  # a density
    priors = [t for t in figure.data if t.name == "N(0, 1)"]
    assert [t.xaxis for t in priors] == ["x", "x2"]
    assert tuple(figure.layout.xaxis.range) == (-4.0, 4.0)  # N(0, 1)'s reach holds all of DRAW's codes
    assert figure.layout.xaxis2.range[0] == -4.0 and figure.layout.xaxis2.range[1] > 6  # widened to the AE's codes
    assert figure.layout.xaxis.domain[1] < figure.layout.xaxis2.domain[0]


def test_the_spread_figure_has_a_dot_per_dimension_and_the_prior_cross():
    z = torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(0))
    mu = torch.zeros(3, 50, 4)  # no spread at all: drawn at the floor of the log axis
    figure = ae.spread_figure({"z": ae.code_spread(z), "μ": ae.code_spread(mu)}, z_size=4, title="t")
    go.Figure(figure.to_dict())
    assert [t.name for t in figure.data] == ["z", "μ", "prior"]
    assert len(trace(figure, "z").x) == 12 and list(trace(figure, "prior").y) == [1.0]
    assert list(trace(figure, "μ").y) == pytest.approx([ae.SPREAD_FLOOR] * 12)
    assert trace(figure, "z").customdata[5].tolist() == [2, 1]  # index 5 = (t 1, d 1): shown as t = 2, z[1]


def test_judged_nats_score_the_judges_own_samples_as_likelier_than_an_untrained_decoders():
    judge = load_checkpoint(SHIPPED / "mnist.safetensors").model
    untrained = DRAW(judge.cfg).eval()
    first = ae.judged_nats(judge, {"judge": judge, "untrained": untrained}, n=12)
    again = ae.judged_nats(judge, {"judge": judge}, n=12)
    assert first["judge"] == again["judge"], "the same seed, the same samples and noise"
    assert first["judge"] < first["untrained"] - 50, first
    assert 40 < first["judge"] < 150, f"DRAW's own samples should score like digits, got {first['judge']:.1f} nats"
