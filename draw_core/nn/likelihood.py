"""D(X | c_T), the output distribution of eq. 9, for the two kinds of data the project models.

Letters: B batch, C image channels, H height, W width; the canvas has `canvas_channels(C)` channels.

- 'bernoulli' (binary pixels, MNIST): c_T holds one logit per pixel; D(x | c_T) = Bernoulli(sigma(c_T)) (eq. 9).
- 'logistic' (8-bit colour, SVHN and CIFAR-10): a Bernoulli on grey levels is not a likelihood of 8-bit images, so
  each sub-pixel gets a discretised logistic over its 256 levels (Kingma et al. 2016; Salimans et al. 2017,
  PixelCNN++ eq. 2). The canvas holds two numbers per sub-pixel: channels [:C] the mean's logit, mu = sigma(c), and
  channels [C:] the log-scale, log s = c + LOG_SCALE_INIT; both are accumulated by the same writes (eq. 8), so the
  model learns where it is sure. A level k/255 owns the bin [k/255 - 1/510, k/255 + 1/510]; the edge bins 0 and 255
  take the tails (-inf and +inf), so the 256 probabilities sum to one.

In both cases the picture of a canvas is sigma(c[:C]): the Bernoulli mean, or the logistic's mean level.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "logistic")
LEVELS = 256  # the levels of an 8-bit sub-pixel; x = k / (LEVELS - 1)
HALF_BIN = 0.5 / (LEVELS - 1)  # half a bin's width on the [0, 1] scale
LOG_SCALE_INIT = math.log(0.1)  # log s of a blank canvas: a tenth of the range, wide enough to learn from
LOG_SCALE_MIN = math.log(HALF_BIN / 16)  # a scale a sixteenth of a bin already puts ~1 on one level


def check_likelihood(name: str) -> str:
    if name not in LIKELIHOODS:
        raise ValueError(f"likelihood={name!r} is not known: expected one of {LIKELIHOODS}")
    return name


def canvas_channels(likelihood: str, channels: int) -> int:
    """Channels of the canvas c_t: one logit per sub-pixel, or a mean and a log-scale for the logistic."""
    return channels * (2 if check_likelihood(likelihood) == "logistic" else 1)


def mean_image(canvas: torch.Tensor, channels: int) -> torch.Tensor:
    """(..., C, H, W) in [0, 1]: sigma of the canvas's first C channels, what a picture of c_t shows (eq. 15)."""
    return torch.sigmoid(canvas[..., :channels, :, :])


def logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log P(x) of levels x = k/255 under a logistic(mean, exp(log_scale)) discretised to 256 bins.

    The tails by log sigma(a) = a - softplus(a) and log(1 - sigma(b)) = -softplus(b) (as PixelCNN++); an inner bin
    by the exact identity sigma(u) - sigma(l) = sinh(d/2) / (2 cosh(u/2) cosh(l/2)), d = u - l, in logs, which
    has no cancellation however far the bin is from the mean or however narrow it is.
    """
    log_scale = log_scale.clamp(min=LOG_SCALE_MIN)
    inv_scale = torch.exp(-log_scale)
    centred = x - mean
    upper = inv_scale * (centred + HALF_BIN)  # u: standardised upper edge of x's bin
    lower = inv_scale * (centred - HALF_BIN)  # l
    log_cdf_upper = upper - F.softplus(upper)  # log P(X <= upper edge): the whole lower tail for k = 0
    log_survival_lower = -F.softplus(lower)  # log P(X > lower edge): the whole upper tail for k = 255
    width = 2 * HALF_BIN * inv_scale  # d = u - l > 0
    log_bin = (
        width / 2
        + torch.log(-torch.expm1(-width))
        - (upper.abs() + lower.abs()) / 2
        - F.softplus(-upper.abs())
        - F.softplus(-lower.abs())
    )
    return torch.where(x < HALF_BIN, log_cdf_upper, torch.where(x > 1 - HALF_BIN, log_survival_lower, log_bin))


def negative_log_likelihood(canvas: torch.Tensor, x: torch.Tensor, likelihood: str) -> torch.Tensor:
    """(B,) eq. 9, L^x = -log D(x | c_T) in nats, summed over sub-pixels; canvas (B, canvas_channels, H, W)."""
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(canvas, x, reduction="none").flatten(1).sum(1)
    check_likelihood(likelihood)
    C = x.shape[1]
    mean = torch.sigmoid(canvas[:, :C])  # (B, C, H, W)
    log_scale = canvas[:, C:] + LOG_SCALE_INIT  # (B, C, H, W)
    return -logistic_log_prob(x, mean, log_scale).flatten(1).sum(1)


def nats_to_bits_per_dim(nats: float, dims: int) -> float:
    """bits/dim = nats / (C H W ln 2): the figure the literature compares on CIFAR-10."""
    return nats / (dims * math.log(2))
