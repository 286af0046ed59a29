"""The loss of DRAW (sec. 2.1, eqs 9-12) and an importance-weighted bound for evaluation.

All quantities are in nats per image. Letters: T steps, B batch, K importance samples, Z latent size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from draw_core.nn.likelihood import negative_log_likelihood
from draw_core.nn.model import DRAW, DrawResult


@dataclass
class LossTerms:
    recon: torch.Tensor  # (B,) L^x = -log D(x | c_T), eq. 9
    kl: torch.Tensor  # (B,) L^z summed over steps, eq. 11
    kl_per_step: torch.Tensor  # (T, B) KL(Q(Z_t | h_enc_t) || N(0, I)) of each step

    @property
    def total(self) -> torch.Tensor:
        """(B,) L = L^x + L^z, eq. 12: the negative ELBO."""
        return self.recon + self.kl


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Eq. 11 for one step: KL(N(mu, sigma^2) || N(0, I)) summed over the last (latent) axis.

    The paper writes the constant as -T/2 for the sum over steps; the exact KL has -1/2 per latent
    dimension, which is what we use.
    """
    at_least = torch.promote_types(mu.dtype, torch.float32)  # bfloat16 (CPU autocast) cancels exp(lv) - lv - 1 to 0
    mu, logvar = mu.to(at_least), logvar.to(at_least)
    return 0.5 * (mu.square() + logvar.exp() - logvar - 1).sum(-1)


def gaussian_kl_from_std(mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """`gaussian_kl` of a posterior given by its standard deviation sigma_t (as a ReconstructionTrace keeps it)."""
    return gaussian_kl(mu, 2 * torch.log(std))  # log sigma^2 = 2 log sigma, eq. 2


def reconstruction_nll(result: DrawResult, x: torch.Tensor) -> torch.Tensor:
    """(B,) eq. 9: L^x = -log D(x | c_T) summed over sub-pixels, under the model's likelihood (Bernoulli for binary
    x, discretised logistic for 8-bit levels; draw_core.nn.likelihood)."""
    return negative_log_likelihood(result.final_logits, x, result.likelihood, result.coupling)


def loss_terms(result: DrawResult, x: torch.Tensor) -> LossTerms:
    """Eqs 9-12 for x (B, C, H, W): the NLL of x under D(X | c_T) plus the latent KL."""
    recon = reconstruction_nll(result, x)  # eq. 9
    kl_per_step = gaussian_kl(result.mu, result.logvar)  # (T, B), eq. 11 per step
    return LossTerms(recon=recon, kl=kl_per_step.sum(0), kl_per_step=kl_per_step)


def log_weights(result: DrawResult, x: torch.Tensor) -> torch.Tensor:
    """(B,) log p(x | z) + log p(z) - log q(z | x) for the z sampled in `result`."""
    log_px = -reconstruction_nll(result, x)
    z, mu, logvar = result.z, result.mu, result.logvar  # (T, B, Z)
    # log N(z; 0, I) - log N(z; mu, sigma^2); the log(2 pi) terms cancel.
    log_ratio = 0.5 * (-z.square() + logvar + (z - mu).square() / logvar.exp())
    return log_px + log_ratio.sum((0, 2))


@torch.no_grad()
def iwae_bound(model: DRAW, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) the k-sample importance-weighted bound on -log p(x) (Burda et al. 2016); k = 1 is the ELBO."""
    if k < 1:
        raise ValueError(f"the number of importance samples k must be >= 1, got {k}")
    B = x.shape[0]
    repeated = x.repeat_interleave(k, dim=0)  # (B K, C, H, W)
    logw = log_weights(model(repeated, generator=generator), repeated).view(B, k)  # (B, K)
    return -(torch.logsumexp(logw, dim=1) - math.log(k))
