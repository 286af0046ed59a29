"""draw_core.elbo: eqs 9-12 on hand-built results, and the importance-weighted bound on real digits."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from draw_core.config import DrawConfig
from draw_core.data import binarize, load_sample
from draw_core.nn.elbo import gaussian_kl, iwae_bound, log_weights, loss_terms
from draw_core.nn.model import DRAW, DrawResult

TINY = DrawConfig(T=4, enc_size=32, dec_size=32, z_size=8)


def hand_result(canvas_logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, z=None) -> DrawResult:
    T, B = mu.shape[:2]
    return DrawResult(
        canvas_steps=list(canvas_logits),
        mu=mu,
        logvar=logvar,
        z=mu.clone() if z is None else z,
        read_attn=None,
        write_attn=None,
        glimpses=torch.zeros(T, B, 2, 1, 1),
    )


def test_gaussian_kl_equals_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(6, 5, 7, generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(6, 5, 7, generator=g, dtype=torch.float64) * 1.5
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)


def test_gaussian_kl_of_bfloat16_codes_is_computed_in_float32():
    """Under CPU autocast the posterior head gives bfloat16 mu and log sigma^2; exp(lv) - lv - 1 near lv = 0 cancels
    to nothing in bfloat16 (its KL came out 19% low), so the KL is taken in float32 of the same values."""
    g = torch.Generator().manual_seed(0)
    mu, logvar = (0.05 * torch.randn(64, 100, generator=g)).bfloat16(), (0.05 * torch.randn(64, 100, generator=g))
    logvar = logvar.bfloat16()
    kl = gaussian_kl(mu, logvar)
    assert kl.dtype == torch.float32
    torch.testing.assert_close(kl, gaussian_kl(mu.float(), logvar.float()))
    exact = kl_divergence(Normal(mu.double(), (0.5 * logvar.double()).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl.double(), exact, rtol=1e-4, atol=1e-6)
    assert gaussian_kl(mu.double(), logvar.double()).dtype == torch.float64, "float64 stays float64"


def test_loss_terms_zero_logits_and_standard_posterior():
    # sigma(0) = 1/2 on every pixel: -log D(x | c_T) = D ln 2 whatever x is; Q = N(0, I): KL = 0.
    T, B, Z = 3, 2, 4
    D = 1 * 6 * 5
    x = torch.zeros(B, 1, 6, 5)
    x[0, 0, ::2] = 1
    result = hand_result(torch.zeros(T, B, 1, 6, 5), torch.zeros(T, B, Z), torch.zeros(T, B, Z))
    terms = loss_terms(result, x)
    torch.testing.assert_close(terms.recon, torch.full((B,), D * math.log(2)))
    torch.testing.assert_close(terms.kl, torch.zeros(B))
    torch.testing.assert_close(terms.kl_per_step, torch.zeros(T, B))
    torch.testing.assert_close(terms.total, terms.recon)


def test_loss_terms_nonzero_case_by_hand():
    # Final logits ln 3 everywhere (p = 3/4); image 0 is half ones, image 1 is all ones.
    # recon_0 = D/2 (-ln 3/4) + D/2 (-ln 1/4) = D/2 (ln 4/3 + ln 4); recon_1 = D ln 4/3.
    # Step 1: mu = 1, logvar = 0 -> KL = Z * 1/2. Step 2: mu = 0, logvar = ln 2 -> KL = Z * (2 - ln 2 - 1) / 2.
    T, B, Z, H, W = 2, 2, 3, 4, 4
    D = H * W
    logits = torch.full((T, B, 1, H, W), 100.0)  # step 1 must not count: only c_T enters eq. 9
    logits[-1] = math.log(3)
    x = torch.ones(B, 1, H, W)
    x[0, 0, :2] = 0
    mu = torch.zeros(T, B, Z)
    mu[0] = 1.0
    logvar = torch.zeros(T, B, Z)
    logvar[1] = math.log(2)
    terms = loss_terms(hand_result(logits, mu, logvar), x)
    recon = [D / 2 * (math.log(4 / 3) + math.log(4)), D * math.log(4 / 3)]
    kl_steps = [Z * 0.5, Z * (1 - math.log(2)) / 2]
    assert terms.recon.tolist() == pytest.approx(recon, rel=1e-5)
    torch.testing.assert_close(terms.kl_per_step, torch.tensor(kl_steps).unsqueeze(1).expand(T, B))
    assert terms.kl.tolist() == pytest.approx([sum(kl_steps)] * B, rel=1e-5)
    assert terms.total.tolist() == pytest.approx([r + sum(kl_steps) for r in recon], rel=1e-5)


def test_log_weights_match_log_densities():
    # log w = log p(x | z) + log N(z; 0, I) - log N(z; mu, sigma^2), summed over steps and dims.
    g = torch.Generator().manual_seed(1)
    T, B, Z = 3, 4, 5
    logits = torch.randn(T, B, 1, 6, 6, generator=g, dtype=torch.float64)
    x = (torch.rand(B, 1, 6, 6, generator=g, dtype=torch.float64) > 0.5).double()
    mu = torch.randn(T, B, Z, generator=g, dtype=torch.float64)
    logvar = torch.randn(T, B, Z, generator=g, dtype=torch.float64)
    z = torch.randn(T, B, Z, generator=g, dtype=torch.float64)
    expected = (
        Bernoulli(logits=logits[-1]).log_prob(x).sum((1, 2, 3))
        + Normal(0.0, 1.0).log_prob(z).sum((0, 2))
        - Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum((0, 2))
    )
    torch.testing.assert_close(log_weights(hand_result(logits, mu, logvar, z=z), x), expected)


def test_iwae_bound_by_hand():
    # A stand-in model whose log weights are known: T = Z = 1, logits 0 (log p(x | z) = -D ln 2), logvar = 0 and
    # mu = the image's mean grey (image 0 is black: mu = 0; image 1 white: mu = 1), so
    # log w = -D ln 2 + (-z^2 + (z - mu)^2) / 2 = -D ln 2 + mu^2/2 - mu z. The k-sample bound is
    # -log (1/k) sum_j w_j: D ln 2 for image 0 whatever its z, D ln 2 - log mean_j exp(1/2 - z_j) for image 1.
    # Each image's k samples must stay its own: weights of another image's rows would change both figures.
    D, k = 4, 3
    z_values = torch.tensor([0.0, 1.0, -2.0, 0.5, -1.0, 2.0])  # the k draws of image 0, then those of image 1

    def stand_in(x, generator=None):
        n = x.shape[0]
        mu = x.mean((1, 2, 3)).view(1, n, 1)
        return hand_result(torch.zeros(1, n, 1, 2, 2), mu, torch.zeros(1, n, 1), z=z_values.view(1, n, 1))

    x = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
    bound = iwae_bound(stand_in, x, k=k)
    expected_0 = D * math.log(2)  # equal weights: the bound is the ELBO, whatever k is
    expected_1 = D * math.log(2) - math.log(sum(math.exp(0.5 - z) for z in (0.5, -1.0, 2.0)) / 3)
    assert bound.tolist() == pytest.approx([expected_0, expected_1], rel=1e-6)


@pytest.fixture(scope="module")
def trained_tiny():
    """A tiny model trained briefly on real digits (so the posterior is informative), and 32 binary digits."""
    torch.manual_seed(0)
    images, _ = load_sample()
    x = binarize(images[:32], torch.Generator().manual_seed(0))
    model = DRAW(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = loss_terms(model(x), x).total.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), x


def test_iwae_k50_is_below_the_single_sample_bound(trained_tiny):
    model, x = trained_tiny
    with torch.no_grad():
        # Expected single-sample bound, averaged over 50 independent draws per digit.
        repeated = x.repeat(50, 1, 1, 1)
        elbo = loss_terms(model(repeated, generator=torch.Generator().manual_seed(1)), repeated).total.mean()
        iwae = iwae_bound(model, x, k=50, generator=torch.Generator().manual_seed(2)).mean()
    assert torch.isfinite(iwae)
    assert iwae < elbo - 0.1, f"IWAE(k=50) {iwae:.3f} should be below the ELBO {elbo:.3f}"


def test_iwae_k1_averages_to_the_elbo(trained_tiny):
    model, x = trained_tiny
    with torch.no_grad():
        repeated = x.repeat(100, 1, 1, 1)
        elbo = loss_terms(model(repeated, generator=torch.Generator().manual_seed(3)), repeated).total.mean()
        k1 = iwae_bound(model, repeated, k=1, generator=torch.Generator().manual_seed(4)).mean()
    assert k1.item() == pytest.approx(elbo.item(), rel=0.01)


def test_iwae_refuses_k_below_one(trained_tiny):
    model, x = trained_tiny
    with pytest.raises(ValueError, match="k must be >= 1"):
        iwae_bound(model, x, k=0)
