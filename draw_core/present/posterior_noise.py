"""Noise in z (issue 15): what drawing z_t ~ Q(Z_t | h_enc_t) instead of taking its mean does to one image.

At every step the encoder gives a Gaussian N(mu_t, sigma_t^2) (eqs 1-2) and z_t is drawn from it (eq. 6). Several
passes over the same x draw different z and give different reconstructions: their spread (a per-pixel standard
deviation) is what the noise does to the picture; the pass with z_t = mu_t (DRAW.forward(x, sample=False)) is the
one reconstruction without it. Each sigma_t sits against the prior's 1 (P(Z_t) = N(0, I)): a dimension whose sigma
is near 1 and mu near 0 carries nothing about x, one with a small sigma is being used (eq. 11 charges it).

What the noise buys: the decoder must draw something sensible for every z near mu, so the code space is smooth and
the prior can cover it (samples from N(0, I) land where the decoder has learned to draw); and the bound counts the
nats z carries, KL(Q || P) per step (eqs 10-11), so a code is only as precise as it pays for.

Letters: T steps, S samples, C channels, H height, W width, Z latent size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from draw_core.nn.likelihood import mean_image
from draw_core.nn.model import DRAW
from draw_core.present import viz
from draw_core.present.views import Explanation

SAMPLES = 8  # passes with z ~ Q shown for one image
PRIOR_COLOUR = "#ff1744"

WHAT_NOISE_BUYS = (
    "What the noise buys: the decoder must draw something sensible for every z near μ, so the code space is smooth "
    "and the prior N(0, I) can cover it (that is why samples from it look like data); and the bound counts the nats "
    "z carries, KL(Q‖P) at every step (eqs 10–11), so a code is only as precise as it pays for."
)

EXPLANATIONS = {
    "spread": Explanation(
        "eq. 6",
        r"z_t = \mu_t + \sigma_t\,\epsilon, \quad \epsilon \sim N(0, I)",
        "The spread sits on the strokes' edges, where the draws disagree about the exact shape; the image's "
        "identity stays the same in every draw.",
    ),
    "sigma": Explanation(
        "eqs 1–2 against P(Z_t) = N(0, I); this model's head gives log σ_t², the paper's eq. 2 writes log σ_t",
        r"\sigma_t = \exp\!\big(\tfrac12 \log\sigma_t^2\big), \quad \log\sigma_t^2 = W(h^{enc}_t)",
        "Bars well under the line at 1 are dimensions the model uses for this image (eq. 11 charges them). A bar "
        "at 1 is not enough to say a dimension is idle: with σ = 1 it still costs μ²/2 nats when μ ≠ 0, and an "
        "average over the steps can hide the one step that uses it.",
    ),
}


@dataclass(frozen=True)
class PosteriorNoise:
    """S passes of a model over one image with z ~ Q, and one with z = mu."""

    samples: torch.Tensor  # (S, C, H, W) each pass's finished picture, the mean of D(X | c_T)
    spread: torch.Tensor  # (C, H, W) their per-pixel standard deviation
    at_mean: torch.Tensor  # (C, H, W) the finished picture with z_t = mu_t at every step
    sigma: torch.Tensor  # (T, S, Z) each pass's posterior standard deviations sigma_t (eq. 2)

    def sigma_per_dimension(self, step: int | None = None) -> torch.Tensor:
        """(Z,) sigma of each dimension, the mean over the S passes, at 0-based `step` or (None) over every step."""
        sigma = self.sigma if step is None else self.sigma[step : step + 1]
        return sigma.mean(dim=(0, 1))


@torch.inference_mode()
def posterior_noise(model: DRAW, image: torch.Tensor, *, samples: int = SAMPLES, seed: int = 0) -> PosteriorNoise:
    """`samples` passes of `model` over image (C, H, W) with z ~ Q drawn from `seed`, and the pass with z = mu."""
    cfg = model.cfg
    if tuple(image.shape) != (cfg.channels, cfg.height, cfg.width):
        raise ValueError(
            f"image must have shape ({cfg.channels}, {cfg.height}, {cfg.width}) for this model, "
            f"got {tuple(image.shape)}"
        )
    if samples < 2:
        raise ValueError(f"samples must be at least 2 to have a spread, got {samples}")
    x = image.to(model.device, torch.float32).unsqueeze(0)  # (1, C, H, W)
    noisy = model(x.expand(samples, -1, -1, -1), generator=torch.Generator().manual_seed(int(seed)))
    pictures = mean_image(noisy.final_logits, cfg.channels)  # (S, C, H, W)
    return PosteriorNoise(
        samples=pictures,
        spread=pictures.std(dim=0),
        at_mean=mean_reconstruction(model, image),
        sigma=torch.exp(0.5 * noisy.logvar),  # eq. 2: the head gives log sigma^2
    )


@torch.inference_mode()
def mean_reconstruction(model: DRAW, image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) the finished picture of one pass over image (C, H, W) with z_t = mu_t: no noise, so the same every
    time."""
    result = model(image.to(model.device, torch.float32).unsqueeze(0), sample=False)
    return mean_image(result.final_logits, model.cfg.channels)[0]


def sigma_figure(sigma, *, title: str | None = None) -> go.Figure:
    """Bars of the posterior sigma of each latent dimension, sigma (Z,), with the prior's sigma = 1 as a line."""
    values = viz._numpy(sigma)
    dims = np.arange(len(values))  # z[0] ... z[Z - 1], as the Latent explorer and the autoencoder page number them
    bar = {
        "type": "bar",
        "x": dims,
        "y": values,
        "marker": {"color": viz.BAR_COLOUR},
        "name": "posterior σ",
        "hovertemplate": "z[%{x}]: σ = %{y:.3f}<extra></extra>",
    }
    prior = viz._line(
        [-0.5, len(values) - 0.5],
        [1.0, 1.0],
        "prior σ = 1",
        "prior N(0, 1): σ = 1<extra></extra>",
        line={"color": PRIOR_COLOUR, "dash": "dash", "width": 2},
    )
    layout = viz._chart_layout(
        title,
        280,
        bargap=0.15,
        xaxis={"title": {"text": "latent dimension d of z[d]"}, "range": [-0.5, len(values) - 0.5]},
        yaxis={"title": {"text": "σ"}, "rangemode": "tozero"},
        showlegend=True,
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
    )
    return viz._figure([bar, prior], layout)
