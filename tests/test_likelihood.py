"""draw_core.nn.likelihood: the discretised logistic over 256 levels against a direct computation, and what the
'logistic' likelihood changes in the model (canvas channels, the loss, the pictures)."""

import dataclasses
import math

import pytest
import torch

from draw_core.config import DrawConfig
from draw_core.nn.elbo import loss_terms
from draw_core.nn.likelihood import (
    LOG_SCALE_INIT,
    LOG_SCALE_MAX,
    logistic_log_prob,
    mean_image,
    nats_to_bits_per_dim,
    negative_log_likelihood,
)
from draw_core.nn.model import DRAW, couple_colours

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


def test_the_picture_of_a_logistic_canvas_is_its_mean_channels_whatever_the_scales():
    canvas = torch.zeros(1, 6, 2, 2)  # (B, 2C, H, W): means then log-scales
    canvas[:, 0] = math.log(3)  # sigma(log 3) = 3 / 4
    canvas[:, 3:] = torch.randn(1, 3, 2, 2) * 5
    picture = mean_image(canvas, 3)
    assert picture.shape == (1, 3, 2, 2)
    torch.testing.assert_close(picture[:, 0], torch.full((1, 2, 2), 0.75))
    torch.testing.assert_close(picture[:, 1:], torch.full((1, 2, 2, 2), 0.5))


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


# 'logistic-coupled': PixelCNN++'s colour coupling (Salimans et al. 2017, sec. 2.2).


def coupled_nll(canvas, x, coupling):
    return negative_log_likelihood(canvas, x, "logistic-coupled", torch.tensor(coupling, dtype=canvas.dtype))


def test_a_coupled_pixel_is_a_distribution_over_all_its_colour_pairs():
    # One pixel of two channels: exp(-nll) over all 256 x 256 (R, G) levels sums to one, because G is a
    # discretised logistic given R, whatever R's residual moves its mean to.
    red, green = torch.meshgrid(LEVELS, LEVELS, indexing="ij")
    x = torch.stack([red.flatten(), green.flatten()], dim=1)[:, :, None, None]  # (65536, 2, 1, 1)
    canvas = torch.tensor([0.3, -1.2, math.log(0.05 / 0.1), math.log(0.02 / 0.1)], dtype=torch.float64)
    canvas = canvas.view(1, 4, 1, 1).expand(len(x), 4, 1, 1)
    total = torch.exp(-coupled_nll(canvas, x, [1.5])).sum().item()
    assert total == pytest.approx(1.0, abs=1e-9)


def test_coupling_moves_each_mean_by_the_residuals_of_the_channels_before_it():
    # By hand, for one pixel of three channels: mean_G + a10 (x_R - mean_R), mean_B + a20 (x_R - mean_R) +
    # a21 (x_G - mean_G), with a = tanh(raw) and the scales as in the uncoupled likelihood.
    mean_logits, log_scales = torch.tensor([0.2, -0.4, 0.9]), torch.tensor([-0.5, 0.1, -1.0])
    canvas = torch.cat([mean_logits, log_scales]).double().view(1, 6, 1, 1)
    x = torch.tensor([200, 40, 120], dtype=torch.float64).view(1, 3, 1, 1) / 255
    raw = [0.3, -0.7, 1.1]
    a10, a20, a21 = (math.tanh(v) for v in raw)
    mean = torch.sigmoid(mean_logits.double())
    r_res, g_res = (x.flatten()[:2] - mean[:2]).tolist()
    moved = [mean[0].item(), mean[1].item() + a10 * r_res, mean[2].item() + a20 * r_res + a21 * g_res]
    scales = torch.exp(log_scales.double() + LOG_SCALE_INIT).tolist()
    levels = (x.flatten() * 255).round().int().tolist()
    expected = -sum(direct_log_prob(k, m, s) for k, m, s in zip(levels, moved, scales, strict=True))
    assert coupled_nll(canvas, x, raw).item() == pytest.approx(expected, rel=1e-9)
    uncoupled = negative_log_likelihood(canvas, x, "logistic").item()
    assert coupled_nll(canvas, x, [0.0, 0.0, 0.0]).item() == pytest.approx(uncoupled, rel=1e-12)
    assert coupled_nll(canvas, x, raw).item() != pytest.approx(uncoupled, rel=1e-3)


def test_the_coupled_likelihood_needs_its_coefficients_and_several_channels():
    canvas, x = torch.zeros(1, 6, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    with pytest.raises(ValueError, match=r"needs 3 coupling values for 3 channels, got None"):
        negative_log_likelihood(canvas, x, "logistic-coupled")
    with pytest.raises(ValueError, match=r"needs 3 coupling values for 3 channels, got \(2,\)"):
        negative_log_likelihood(canvas, x, "logistic-coupled", torch.zeros(2))
    with pytest.raises(ValueError, match="'logistic-coupled' couples colour channels: it needs channels >= 2, got 1"):
        DrawConfig(likelihood="logistic-coupled")


def test_coupling_learns_what_one_channel_says_of_another():
    # Green equals red on every image: training the coupling alone lowers the reconstruction cost by more than a
    # nat an image, and the coefficient of G on R ends well above zero.
    cfg = DrawConfig(height=4, width=4, channels=3, T=2, read_n=2, write_n=2, enc_size=8, dec_size=8, z_size=2)
    torch.manual_seed(0)
    model = couple_colours(DRAW(dataclasses.replace(cfg, likelihood="logistic")))
    red = torch.randint(0, 256, (16, 1, 4, 4)) / 255
    x = torch.cat([red, red, torch.randint(0, 256, (16, 1, 4, 4)) / 255], dim=1)
    noise = torch.zeros(cfg.T, 16, cfg.z_size)
    optimizer = torch.optim.Adam([model.coupling], lr=0.1)
    losses = []
    for _ in range(30):
        loss = loss_terms(model.run(x, noise), x).recon.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0, losses
    assert torch.tanh(model.coupling)[0].item() > 0.5  # a_10: G given R


def test_a_coupled_twin_has_the_same_likelihood_until_training_moves_it(tmp_path):
    cfg = DrawConfig(height=8, width=8, channels=3, T=3, read_n=2, write_n=3, enc_size=8, dec_size=8, z_size=4)
    torch.manual_seed(0)
    plain = DRAW(dataclasses.replace(cfg, likelihood="logistic"))
    twin = couple_colours(plain)
    assert twin.cfg.likelihood == "logistic-coupled" and torch.equal(twin.coupling, torch.zeros(3))
    x = torch.randint(0, 256, (4, 3, 8, 8)) / 255
    noise = torch.randn(cfg.T, 4, cfg.z_size)
    with torch.no_grad():
        torch.testing.assert_close(loss_terms(twin.run(x, noise), x).recon, loss_terms(plain.run(x, noise), x).recon)
    with pytest.raises(ValueError, match="only a 'logistic' model of several colour channels has a coupled twin"):
        couple_colours(twin)


def test_a_diverging_log_scale_gives_a_finite_probability_and_gradient():
    """A scale past e^98 made a bin's width underflow to 0 and its log-probability -inf (NaN gradients). The scale is
    clamped at e^LOG_SCALE_MAX = e^50, so wide that over [0, 1] the logistic is flat: each edge bin takes the half of
    the mass on its side (its tail), and an inner bin of width 1/255 gets width × the density at the centre,
    1/(4 e^50)."""
    assert LOG_SCALE_MAX == 50
    x = torch.tensor([0.0, 128 / 255, 1.0])  # an edge bin each side and an inner one
    log_scale = torch.full((3,), 100.0, requires_grad=True)
    log_p = logistic_log_prob(x, torch.full((3,), 0.3), log_scale)
    assert torch.isfinite(log_p).all(), log_p
    assert log_p[0].item() == pytest.approx(-math.log(2), abs=1e-6)
    assert log_p[2].item() == pytest.approx(-math.log(2), abs=1e-6)
    assert log_p[1].item() == pytest.approx(math.log(1 / 255) - 50 - math.log(4), abs=1e-3)
    log_p.sum().backward()
    assert torch.isfinite(log_scale.grad).all()
