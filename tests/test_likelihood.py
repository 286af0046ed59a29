"""draw_core.nn.likelihood: the discretised logistic over 256 levels against a direct computation, and what the
'logistic' likelihood changes in the model (canvas channels, the loss, the pictures)."""

import math

import pytest
import torch

from draw_core.config import DrawConfig
from draw_core.nn.elbo import loss_terms
from draw_core.nn.likelihood import (
    LOG_SCALE_INIT,
    logistic_log_prob,
    mean_image,
    nats_to_bits_per_dim,
    negative_log_likelihood,
)
from draw_core.nn.model import DRAW

LEVELS = torch.arange(256, dtype=torch.float64) / 255  # every value an 8-bit sub-pixel can take


def direct_log_prob(k: int, mean: float, scale: float) -> float:
    """log P(level k) straight from the logistic CDF F in float64: F(upper edge) - F(lower edge) of the bin
    [k - 1/2, k + 1/2] / 255, the tails at the edge bins; above the mean as S(lower) - S(upper) with S = 1 - F
    written out, so the reference itself does not cancel."""

    def cdf(v: float) -> float:
        return 1 / (1 + math.exp(-(v - mean) / scale))

    def survival(v: float) -> float:
        return 1 / (1 + math.exp((v - mean) / scale))

    lower, upper = (k - 0.5) / 255, (k + 0.5) / 255
    if k == 0:
        return math.log(cdf(upper))
    if k == 255:
        return math.log(survival(lower))
    if lower > mean:
        return math.log(survival(lower) - survival(upper))
    return math.log(cdf(upper) - cdf(lower))


@pytest.mark.parametrize(("mean", "scale"), [(0.5, 0.1), (0.02, 0.03), (0.97, 0.01), (0.3, 0.002), (1.0, 0.5)])
def test_probabilities_of_the_256_levels_sum_to_one(mean, scale):
    log_p = logistic_log_prob(LEVELS, torch.tensor(mean, dtype=torch.float64), torch.tensor(math.log(scale)).double())
    assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(("mean", "scale"), [(0.5, 0.1), (0.02, 0.03), (0.97, 0.01), (0.6, 0.004)])
def test_log_prob_matches_the_cdf_differences_and_tails(mean, scale):
    got = logistic_log_prob(LEVELS, torch.tensor(mean, dtype=torch.float64), torch.tensor(math.log(scale)).double())
    expected = torch.tensor([direct_log_prob(k, mean, scale) for k in range(256)], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)


def test_edge_bins_take_the_tails():
    # Mean far below 0: nearly all mass is in the tail that level 0 owns; far above 1: in level 255's.
    low = logistic_log_prob(LEVELS[[0, 255]], torch.tensor(-3.0).double(), torch.tensor(math.log(0.05)).double())
    high = logistic_log_prob(LEVELS[[0, 255]], torch.tensor(4.0).double(), torch.tensor(math.log(0.05)).double())
    assert low[0].exp().item() > 0.999 and high[1].exp().item() > 0.999


def test_a_sharp_bin_uses_the_density_and_stays_finite():
    # A scale far below a bin's width: the level at the mean holds almost all mass, the others are finite.
    log_p = logistic_log_prob(LEVELS.float(), torch.tensor(100 / 255), torch.tensor(math.log(1e-4)))
    assert torch.isfinite(log_p).all()
    assert log_p[100].exp().item() == pytest.approx(1.0, abs=1e-4)


def test_nll_of_a_blank_canvas_is_the_initial_logistic_and_bernoulli_is_unchanged():
    x = (torch.arange(2 * 3 * 4 * 4) % 256).float().view(2, 3, 4, 4) / 255
    canvas = torch.zeros(2, 6, 4, 4)  # mean sigma(0) = 1/2, log s = LOG_SCALE_INIT
    expected = -logistic_log_prob(x, torch.full_like(x, 0.5), torch.full_like(x, LOG_SCALE_INIT)).flatten(1).sum(1)
    torch.testing.assert_close(negative_log_likelihood(canvas, x, "logistic"), expected)
    binary = (x > 0.5).float()
    assert negative_log_likelihood(torch.zeros_like(binary), binary, "bernoulli").tolist() == pytest.approx(
        [48 * math.log(2)] * 2
    )


def test_bits_per_dim_of_a_uniform_model_is_eight():
    assert nats_to_bits_per_dim(3 * 32 * 32 * math.log(256), 3 * 32 * 32) == pytest.approx(8.0)


def test_logistic_model_has_two_canvas_channels_per_colour_and_pictures_in_range():
    cfg = DrawConfig(
        height=8, width=6, channels=3, T=3, read_n=2, write_n=3, enc_size=8, dec_size=8, z_size=4, likelihood="logistic"
    )
    assert cfg.canvas_channels == 6 and cfg.write_size == 6 * 9
    model = DRAW(cfg)
    x = torch.randint(0, 256, (2, 3, 8, 6)).float() / 255
    result = model(x, torch.Generator().manual_seed(0))
    assert result.final_logits.shape == (2, 6, 8, 6)
    terms = loss_terms(result, x)
    terms.total.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    trace = model.generate(2, generator=torch.Generator().manual_seed(1))
    assert trace.canvases.shape == (3, 2, 3, 8, 6)
    assert 0 <= trace.canvases.min() and trace.canvases.max() <= 1
    torch.testing.assert_close(mean_image(result.final_logits, 3), torch.sigmoid(result.final_logits[:, :3]))


def test_unknown_likelihood_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="bernoulli"):
        DrawConfig(likelihood="gaussian")


def test_a_new_logistic_model_starts_at_the_initial_scale_everywhere():
    # The log-scale rows of the head start at zero, so every step's write leaves log s = LOG_SCALE_INIT.
    cfg = DrawConfig(
        height=8, width=8, channels=3, T=5, read_n=2, write_n=3, enc_size=8, dec_size=8, z_size=4, likelihood="logistic"
    )
    result = DRAW(cfg)(torch.rand(2, 3, 8, 8), torch.Generator().manual_seed(0))
    assert result.final_logits[:, 3:].abs().max() == 0
    assert result.final_logits[:, :3].abs().max() > 0
