"""draw_core.present.posterior_noise: several z ~ Q(z|x) for one image, their spread, sigma against the prior's 1,
and the reconstruction with z = mu."""

import math

import plotly.graph_objects as go
import pytest
import torch

from draw_core.config import DrawConfig
from draw_core.nn.likelihood import mean_image
from draw_core.nn.model import DRAW
from draw_core.present import posterior_noise, viz
from draw_core.present.posterior_noise import mean_reconstruction

SMALL = DrawConfig(height=10, width=10, T=3, read_n=2, write_n=3, enc_size=8, dec_size=8, z_size=4)
COLOUR = DrawConfig(
    height=8, width=8, channels=3, T=2, read_n=2, write_n=3, enc_size=8, dec_size=8, z_size=3, likelihood="logistic"
)


def model_of(cfg: DrawConfig, seed: int = 0) -> DRAW:
    torch.manual_seed(seed)
    return DRAW(cfg).eval()


def image_of(cfg: DrawConfig, seed: int = 1) -> torch.Tensor:
    return torch.rand(cfg.channels, cfg.height, cfg.width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cfg", [SMALL, COLOUR], ids=["grey", "colour"])
def test_the_mean_reconstruction_is_deterministic_and_is_the_pass_with_z_equal_to_mu(cfg):
    model, x = model_of(cfg), image_of(cfg)
    first, second = mean_reconstruction(model, x), mean_reconstruction(model, x)
    assert first.shape == (cfg.channels, cfg.height, cfg.width)
    assert torch.equal(first, second)
    with torch.no_grad():
        result = model(x.unsqueeze(0), sample=False)
    torch.testing.assert_close(first, mean_image(result.final_logits, cfg.channels)[0])
    torch.testing.assert_close(result.z, result.mu)  # sample=False: z_t = mu_t
    noisy = posterior_noise.posterior_noise(model, x, seed=0)
    assert not torch.allclose(noisy.samples[0], first)  # a drawn z gives another picture
    torch.testing.assert_close(noisy.at_mean, first)


def test_sigma_is_exp_of_half_the_models_log_variance_for_each_pass():
    model, x = model_of(SMALL), image_of(SMALL)
    noise = posterior_noise.posterior_noise(model, x, samples=5, seed=7)
    with torch.no_grad():
        result = model(x.unsqueeze(0).expand(5, -1, -1, -1), generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(noise.sigma, torch.exp(0.5 * result.logvar))
    assert noise.sigma.shape == (SMALL.T, 5, SMALL.z_size)
    torch.testing.assert_close(noise.samples, torch.sigmoid(result.final_logits))
    pixel = noise.samples[:, 0, 5, 5].tolist()  # the 5 passes at one pixel: their sample standard deviation
    mean = sum(pixel) / 5
    assert noise.spread[0, 5, 5].item() == pytest.approx(math.sqrt(sum((p - mean) ** 2 for p in pixel) / 4), rel=1e-5)


def test_sigma_per_dimension_averages_the_passes_at_a_step_or_over_every_step():
    noise = posterior_noise.PosteriorNoise(
        samples=torch.zeros(2, 1, 1, 1),
        spread=torch.zeros(1, 1, 1),
        at_mean=torch.zeros(1, 1, 1),
        sigma=torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]),  # (T=2, S=2, Z=2)
    )
    assert noise.sigma_per_dimension(0).tolist() == [2.0, 3.0]
    assert noise.sigma_per_dimension(1).tolist() == [6.0, 7.0]
    assert noise.sigma_per_dimension().tolist() == [4.0, 5.0]


def test_the_spread_vanishes_when_the_posterior_sigma_is_forced_to_zero():
    model, x = model_of(SMALL), image_of(SMALL)
    noise = posterior_noise.posterior_noise(model, x, seed=3)
    assert float(noise.spread.max()) > 1e-3  # an ordinary model: the draws differ
    Z = SMALL.z_size
    with torch.no_grad():  # log sigma^2 = -60 whatever h_enc: sigma = e^-30
        model.posterior.weight[Z:] = 0
        model.posterior.bias[Z:] = -60.0
    still = posterior_noise.posterior_noise(model, x, seed=3)
    assert float(still.spread.max()) < 1e-6
    assert torch.allclose(still.samples, still.at_mean.expand_as(still.samples), atol=1e-6)
    assert float(still.sigma.max()) == pytest.approx(torch.exp(torch.tensor(-30.0)).item())


def test_the_seed_decides_the_draws():
    model, x = model_of(SMALL), image_of(SMALL)
    a, b = posterior_noise.posterior_noise(model, x, seed=1), posterior_noise.posterior_noise(model, x, seed=1)
    c = posterior_noise.posterior_noise(model, x, seed=2)
    assert torch.equal(a.samples, b.samples) and not torch.allclose(a.samples, c.samples)
    assert a.samples.shape == (posterior_noise.SAMPLES, 1, 10, 10)


def test_bad_inputs_are_refused_with_what_was_expected():
    model = model_of(SMALL)
    with pytest.raises(ValueError, match=r"image must have shape \(1, 10, 10\)"):
        posterior_noise.posterior_noise(model, torch.zeros(3, 10, 10))
    with pytest.raises(ValueError, match="at least 2"):
        posterior_noise.posterior_noise(model, image_of(SMALL), samples=1)


def test_the_sigma_figure_has_one_bar_per_dimension_and_the_prior_at_one():
    spec = posterior_noise.sigma_figure(torch.tensor([0.1, 1.0, 0.5]), title="σ").to_dict()
    bars, prior = spec["data"]
    assert viz.spec_array(bars["y"]) == pytest.approx([0.1, 1.0, 0.5])
    assert viz.spec_array(bars["x"]).tolist() == [0, 1, 2]  # numbered z[0], z[1], ... as on the other pages
    assert list(prior["y"]) == [1.0, 1.0] and list(prior["x"]) == [-0.5, 2.5]
    go.Figure(spec)  # a valid Plotly figure (validated, which the builder skips)


def test_the_words_name_their_equations():
    assert "eqs 10–11" in posterior_noise.WHAT_NOISE_BUYS and "prior" in posterior_noise.WHAT_NOISE_BUYS
    assert "eq. 6" == posterior_noise.EXPLANATIONS["spread"].number
    assert "eqs 1–2" in posterior_noise.EXPLANATIONS["sigma"].number
