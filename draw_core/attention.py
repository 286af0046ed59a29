"""Selective attention of DRAW: the Gaussian filterbank read and write (sec. 3.2-3.3, eqs 19-29).

Letters used in shape comments:
    B batch, C channels, H image height (paper's B), W image width (paper's A), N grid size.

Pixel coordinates follow the paper: a = 1..A along x, b = 1..B along y. `window_geometry` converts
to 0-based image indices (pixel a sits at column a - 1) for drawing on top of an image.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

# Log-space terms are clamped before exp so no raw input overflows; exp(±10) spans 4.5e-5 .. 2.2e4.
LOG_CLAMP = 10.0
# Centre offsets g~ are clamped so a window stays within a few image sizes (keeps squares finite).
CENTRE_CLAMP = 10.0
# Filter rows are divided by max(row sum, EPS): a window off the image reads zeros, never NaN.
EPS = 1e-8


@dataclass
class AttentionParams:
    """Attention parameters in pixel units. Each field has the same shape, (B,) or (T, B)."""

    gx: torch.Tensor  # grid centre x, eq. 22
    gy: torch.Tensor  # grid centre y, eq. 23
    delta: torch.Tensor  # stride between grid points, eq. 24
    sigma2: torch.Tensor  # isotropic Gaussian variance, eq. 21
    gamma: torch.Tensor  # intensity, eq. 21

    @staticmethod
    def stack(steps: list[AttentionParams]) -> AttentionParams:
        """Stack per-step (B,) params into (T, B) params."""
        return AttentionParams(
            **{f.name: torch.stack([getattr(p, f.name) for p in steps]) for f in fields(AttentionParams)}
        )

    def step(self, t: int) -> AttentionParams:
        """The params of step t (0-based) of stacked (T, B) params."""
        return AttentionParams(**{f.name: getattr(self, f.name)[t] for f in fields(AttentionParams)})

    def map(self, fn) -> AttentionParams:
        return AttentionParams(**{f.name: fn(getattr(self, f.name)) for f in fields(AttentionParams)})


def attention_params(raw: torch.Tensor, N: int, height: int, width: int) -> AttentionParams:
    """Eqs 21-24: raw (B, 5) = (g~X, g~Y, log sigma^2, log delta~, log gamma) -> pixel-unit params."""
    if raw.shape[-1] != 5:
        raise ValueError(
            f"raw attention must have 5 values per row (g~X, g~Y, log s2, log d~, log g), got shape {tuple(raw.shape)}"
        )
    if N < 2:
        raise ValueError(f"attention grid size N must be >= 2 (eq. 24 divides by N - 1), got {N}")
    gx_, gy_, log_sigma2, log_delta_, log_gamma = raw.unbind(-1)
    gx = (width + 1) / 2 * (gx_.clamp(-CENTRE_CLAMP, CENTRE_CLAMP) + 1)  # eq. 22
    gy = (height + 1) / 2 * (gy_.clamp(-CENTRE_CLAMP, CENTRE_CLAMP) + 1)  # eq. 23
    delta = (max(width, height) - 1) / (N - 1) * log_delta_.clamp(-LOG_CLAMP, LOG_CLAMP).exp()  # eq. 24
    sigma2 = log_sigma2.clamp(-LOG_CLAMP, LOG_CLAMP).exp()
    gamma = log_gamma.clamp(-LOG_CLAMP, LOG_CLAMP).exp()
    return AttentionParams(gx=gx, gy=gy, delta=delta, sigma2=sigma2, gamma=gamma)


def grid_centres(params: AttentionParams, N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs 19-20: mu_X^i = gX + (i - N/2 - 0.5) delta for i = 1..N, in paper pixel coordinates."""
    offsets = torch.arange(1, N + 1, device=params.gx.device, dtype=params.gx.dtype) - N / 2 - 0.5  # (N,)
    mu_x = params.gx.unsqueeze(-1) + offsets * params.delta.unsqueeze(-1)  # (..., N)
    mu_y = params.gy.unsqueeze(-1) + offsets * params.delta.unsqueeze(-1)  # (..., N)
    return mu_x, mu_y


def _filter(mu: torch.Tensor, sigma2: torch.Tensor, size: int) -> torch.Tensor:
    """Eqs 25-26 along one axis: rows exp(-(a - mu_i)^2 / 2 sigma^2), normalised to sum to 1."""
    a = torch.arange(1, size + 1, device=mu.device, dtype=mu.dtype)  # (size,) paper's 1-based pixels
    f = torch.exp(-((a - mu.unsqueeze(-1)) ** 2) / (2 * sigma2[..., None, None]))  # (..., N, size)
    return f / f.sum(-1, keepdim=True).clamp_min(EPS)  # 1/Z_X, 1/Z_Y


def filterbank(params: AttentionParams, N: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs 25-26: the horizontal and vertical filterbanks F_X (..., N, W) and F_Y (..., N, H)."""
    mu_x, mu_y = grid_centres(params, N)
    return _filter(mu_x, params.sigma2, width), _filter(mu_y, params.sigma2, height)


def extract(images: torch.Tensor, Fx: torch.Tensor, Fy: torch.Tensor) -> torch.Tensor:
    """F_Y x F_X^T for every channel: images (B, C, H, W) -> glimpses (B, C, N, N). No gamma."""
    return Fy.unsqueeze(1) @ images @ Fx.transpose(-1, -2).unsqueeze(1)


def read(x: torch.Tensor, x_hat: torch.Tensor, Fx: torch.Tensor, Fy: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Eq. 27: read(x, x_hat) = gamma [F_Y x F_X^T, F_Y x_hat F_X^T], flattened to (B, 2 C N N)."""
    both = torch.cat([x, x_hat], dim=1)  # (B, 2C, H, W): one batched matmul for image and error
    glimpse = extract(both, Fx, Fy)  # (B, 2C, N, N)
    return gamma[:, None] * glimpse.flatten(1)


def write(w: torch.Tensor, Fx: torch.Tensor, Fy: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Eq. 29: write(h_dec) = (1 / gamma^) F^_Y^T w_t F^_X, with w (B, C, N, N) -> (B, C, H, W)."""
    patch = Fy.transpose(-1, -2).unsqueeze(1) @ w @ Fx.unsqueeze(1)  # (B, C, H, W)
    return patch / gamma[:, None, None, None]


@dataclass
class WindowGeometry:
    """What a picture of an attention window needs, in 0-based image coordinates (column, row)."""

    x0: torch.Tensor  # left edge: the first grid column mu_X^1
    y0: torch.Tensor  # top edge: the first grid row mu_Y^1
    x1: torch.Tensor  # right edge: the last grid column mu_X^N
    y1: torch.Tensor  # bottom edge: the last grid row mu_Y^N
    centres_x: torch.Tensor  # (..., N) grid columns mu_X^i
    centres_y: torch.Tensor  # (..., N) grid rows mu_Y^j
    sigma: torch.Tensor  # filter standard deviation in pixels (precision is 1 / sigma)


def window_geometry(params: AttentionParams, N: int) -> WindowGeometry:
    """The rectangle spanning the N x N grid and its centres, from the same eqs 19-20 the filters use."""
    mu_x, mu_y = grid_centres(params, N)
    mu_x, mu_y = mu_x - 1, mu_y - 1  # paper pixel a -> image column a - 1
    return WindowGeometry(
        x0=mu_x[..., 0],
        y0=mu_y[..., 0],
        x1=mu_x[..., -1],
        y1=mu_y[..., -1],
        centres_x=mu_x,
        centres_y=mu_y,
        sigma=params.sigma2.sqrt(),
    )
