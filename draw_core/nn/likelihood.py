"""D(X | c_T), the output distribution of eq. 9, for the two kinds of data the project models.

Letters: B batch, C image channels, H height, W width; the canvas has `canvas_channels(C)` channels.

- 'bernoulli' (binary pixels, MNIST): c_T holds one logit per pixel; D(x | c_T) = Bernoulli(sigma(c_T)) (eq. 9).
- 'logistic' (8-bit colour, SVHN and CIFAR-10): a Bernoulli on grey levels is not a likelihood of 8-bit images, so
  each sub-pixel gets a discretised logistic over its 256 levels (Kingma et al. 2016; Salimans et al. 2017,
  PixelCNN++ eq. 2). The canvas holds two numbers per sub-pixel: channels [:C] the mean's logit, mu = sigma(c), and
  channels [C:] the log-scale, log s = c + LOG_SCALE_INIT; both are accumulated by the same writes (eq. 8), so the
  model learns where it is sure. A level k/255 owns the bin [k/255 - 1/510, k/255 + 1/510]; the edge bins 0 and 255
  take the tails (-inf and +inf), so the 256 probabilities sum to one.

- 'logistic-coupled' (colour): the same canvas, with the colour channels of a pixel coupled as in PixelCNN++
  (Salimans et al. 2017, sec. 2.2): channel i's mean moves by sum_{j<i} a_ij (x_j - mu_j). Each sub-pixel is then
  discretised logistic given the channels before it, so P(x) = P(R) P(G | R) P(B | R, G) still sums to one. PixelCNN++
  has its network emit a_ij per pixel; here they are C (C - 1) / 2 learned numbers of the model (a_ij = tanh of a
  parameter, pairs (1,0), (2,0), (2,1), ...), since a canvas channel per pair would cost a full-canvas write layer
  3 x 1024 rows more on CIFAR-10. A factorised decoder pays for each channel's deviation from a blurry mean
  separately; given red's, green's and blue's are largely known: on our CIFAR-10 copy the residuals of the earlier
  shipped `logistic` model (5.99 bits/dim) correlate 0.85 between R and G and 0.84 between G and B, and one
  coefficient per pair fitted by least squares halves the spread of G and B (about 0.6 bits/dim by the logistic's
  entropy, log s + 2).

In every case the picture of a canvas is sigma(c[:C]): the Bernoulli mean, or the logistic's mean level.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "logistic", "logistic-coupled")
LEVEL_LIKELIHOODS = ("logistic", "logistic-coupled")  # distributions over 8-bit levels: bits/dim is their figure
LEVELS = 256  # the levels of an 8-bit sub-pixel; x = k / (LEVELS - 1)
HALF_BIN = 0.5 / (LEVELS - 1)  # half a bin's width on the [0, 1] scale
LOG_SCALE_INIT = math.log(0.1)  # log s of a blank canvas: a tenth of the range, wide enough to learn from
LOG_SCALE_MIN = math.log(HALF_BIN / 16)  # a scale a sixteenth of a bin already puts ~1 on one level
LOG_SCALE_MAX = 50.0  # a scale of e^50 is flat over [0, 1] already; above ~98 a bin's width underflows to 0


def check_likelihood(name: str) -> str:
    if name not in LIKELIHOODS:
        raise ValueError(f"likelihood={name!r} is not known: expected one of {LIKELIHOODS}")
    return name


def coupling_pairs(channels: int) -> int:
    """Coefficients a_ij (j < i) of 'logistic-coupled': one per pair of colour channels."""
    return channels * (channels - 1) // 2


def canvas_channels(likelihood: str, channels: int) -> int:
    """Channels of the canvas c_t: one logit per sub-pixel, or a mean and a log-scale for the logistics."""
    return channels * (1 if check_likelihood(likelihood) == "bernoulli" else 2)


def mean_image(canvas: torch.Tensor, channels: int) -> torch.Tensor:
    """(..., C, H, W) in [0, 1]: sigma of the canvas's first C channels, what a picture of c_t shows (eq. 15)."""
    return torch.sigmoid(canvas[..., :channels, :, :])


def logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log P(x) of levels x = k/255 under a logistic(mean, exp(log_scale)) discretised to 256 bins.

    The tails by log sigma(a) = a - softplus(a) and log(1 - sigma(b)) = -softplus(b) (as PixelCNN++); an inner bin
    by the exact identity sigma(u) - sigma(l) = sinh(d/2) / (2 cosh(u/2) cosh(l/2)), d = u - l, in logs, which
    has no cancellation however far the bin is from the mean or however narrow it is.
    """
    log_scale = log_scale.clamp(min=LOG_SCALE_MIN, max=LOG_SCALE_MAX)
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


def coupled_means(mean: torch.Tensor, coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) means of each sub-pixel given the channels before it: mu_i + sum_{j<i} a_ij (x_j - mu_j)
    (PixelCNN++ sec. 2.2, on residuals so that sigma(c[:C]) stays the mean picture); coefficients (C(C-1)/2,) in the
    pair order (1,0), (2,0), (2,1), ..."""
    residual = x - mean  # (B, C, H, W)
    means, pair = [mean[:, 0]], 0
    for i in range(1, mean.shape[1]):
        shifted = mean[:, i]
        for j in range(i):
            shifted = shifted + coefficients[pair] * residual[:, j]
            pair += 1
        means.append(shifted)
    return torch.stack(means, dim=1)


def negative_log_likelihood(
    canvas: torch.Tensor, x: torch.Tensor, likelihood: str, coupling: torch.Tensor | None = None
) -> torch.Tensor:
    """(B,) eq. 9, L^x = -log D(x | c_T) in nats, summed over sub-pixels; canvas (B, canvas_channels, H, W);
    `coupling` (C(C-1)/2,): the raw coefficients of 'logistic-coupled' (a_ij = tanh of them)."""
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(canvas, x, reduction="none").flatten(1).sum(1)
    check_likelihood(likelihood)
    C = x.shape[1]
    mean = torch.sigmoid(canvas[:, :C])  # (B, C, H, W)
    log_scale = canvas[:, C:] + LOG_SCALE_INIT  # (B, C, H, W)
    if likelihood == "logistic-coupled":
        if coupling is None or coupling.shape != (coupling_pairs(C),):
            got = None if coupling is None else tuple(coupling.shape)
            raise ValueError(
                f"'logistic-coupled' needs {coupling_pairs(C)} coupling values for {C} channels, got {got}"
            )
        mean = coupled_means(mean, torch.tanh(coupling), x)  # (B, C, H, W): each channel given those before it
    return -logistic_log_prob(x, mean, log_scale).flatten(1).sum(1)


def nats_to_bits_per_dim(nats: float, dims: int) -> float:
    """bits/dim = nats / (C H W ln 2): the figure the literature compares on CIFAR-10."""
    return nats / (dims * math.log(2))
