"""Selective attention of DRAW: the Gaussian filterbank read and write (sec. 3.2-3.3, eqs 19-29).

Letters used in shape comments:
    B batch, C channels, H image height (paper's B), W image width (paper's A), N grid size.

Pixel coordinates follow the paper: a = 1..A along x, b = 1..B along y. `window_geometry` converts
to 0-based image indices (pixel a sits at column a - 1) for drawing on top of an image.

`window` (eqs 21-26), `filterbank` (eqs 25-26), `extract`, `read` (eq. 27) and `write` (eq. 29) each have two
implementations behind one function, picked by `path` ('auto' | 'fused' | 'plain', see draw_core.nn.hot_path):
the plain one is ordinary torch operations left to autograd, the readable transcription; the fused one is an
autograd Function with its backward written out next to its forward, for training speed on CPU (each is checked
with gradcheck in tests/test_attention.py, and against the plain one in tests/test_hot_paths.py).
`attention_params` and `grid_centres` are plain PyTorch on both paths.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

import torch

from draw_core.nn.hot_path import choose_hot_path

# Every raw attention value is clamped to ±RAW_CLAMP: the log-space terms so exp never overflows (exp(±10) spans
# 4.5e-5 .. 2.2e4), the centre offsets g~ so a window stays within a few image sizes (keeps squares finite).
RAW_CLAMP = 10.0
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
        return AttentionParams(**{f.name: torch.stack([getattr(p, f.name) for p in steps]) for f in fields(steps[0])})

    def step(self, t: int) -> AttentionParams:
        """The params of step t (0-based) of stacked (T, B) params."""
        return AttentionParams(**{f.name: getattr(self, f.name)[t] for f in fields(self)})

    def map(self, fn) -> AttentionParams:
        return AttentionParams(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})


@functools.cache
def _grid_offsets(N: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(N,) i - N/2 - 0.5 for i = 1..N (eqs 19-20), made once per N; a normal tensor even under inference_mode."""
    with torch.inference_mode(False):
        return torch.arange(1, N + 1, device=device, dtype=dtype) - N / 2 - 0.5


@dataclass(frozen=True)
class _ImageConstants:
    half_size: torch.Tensor  # (2,) (A + 1) / 2 and (B + 1) / 2 of eqs 22-23
    pixels: torch.Tensor  # (S,) the paper's 1-based pixels 1..S, S = max(A, B)
    on_image: torch.Tensor | None  # (2, S) 1 where a pixel exists along x (row 0) and y (row 1); None if A = B


@functools.cache
def _image_constants(height: int, width: int, device: torch.device, dtype: torch.dtype) -> _ImageConstants:
    with torch.inference_mode(False):
        pixels = torch.arange(1, max(height, width) + 1, device=device, dtype=dtype)
        return _ImageConstants(
            half_size=torch.tensor([(width + 1) / 2, (height + 1) / 2], device=device, dtype=dtype),
            pixels=pixels,
            on_image=None if height == width else torch.stack([pixels <= width, pixels <= height]).to(dtype),
        )


def attention_params(raw: torch.Tensor, N: int, height: int, width: int) -> AttentionParams:
    """Eqs 21-24: raw (B, 5) = (g~X, g~Y, log sigma^2, log delta~, log gamma) -> pixel-unit params."""
    if raw.shape[-1] != 5:
        raise ValueError(
            f"raw attention must have 5 values per row (g~X, g~Y, log s2, log d~, log g), got shape {tuple(raw.shape)}"
        )
    if N < 2:
        raise ValueError(f"attention grid size N must be >= 2 (eq. 24 divides by N - 1), got {N}")
    half_size = _image_constants(height, width, raw.device, raw.dtype).half_size
    raw = raw.clamp(-RAW_CLAMP, RAW_CLAMP)
    gx, gy = ((raw[..., :2] + 1) * half_size).unbind(-1)  # eqs 22-23
    sigma2, delta_tilde, gamma = raw[..., 2:].exp().unbind(-1)  # eq. 21
    delta = (max(width, height) - 1) / (N - 1) * delta_tilde  # eq. 24
    return AttentionParams(gx=gx, gy=gy, delta=delta, sigma2=sigma2, gamma=gamma)


def _grid(gx: torch.Tensor, gy: torch.Tensor, delta: torch.Tensor, N: int) -> torch.Tensor:
    """Eqs 19-20 for both axes at once: (..., 2, N) grid centres, row 0 along x, row 1 along y."""
    offsets = _grid_offsets(N, gx.device, gx.dtype)  # (N,)
    return torch.stack([gx, gy], dim=-1).unsqueeze(-1) + offsets * delta[..., None, None]


def grid_centres(params: AttentionParams, N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs 19-20: mu_X^i = gX + (i - N/2 - 0.5) delta for i = 1..N, in paper pixel coordinates."""
    mu_x, mu_y = _grid(params.gx, params.gy, params.delta, N).unbind(-2)  # (..., N) each
    return mu_x, mu_y


def filterbank(
    params: AttentionParams, N: int, height: int, width: int, *, path: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs 25-26: the horizontal and vertical filterbanks F_X (..., N, W) and F_Y (..., N, H).

    Rows are normalised by max(Z, EPS). Fused: one autograd node (`_Filterbank`) with the backward written out.
    """
    if choose_hot_path(params.gx, path) == "fused":
        return _Filterbank.apply(params.gx, params.gy, params.delta, params.sigma2, N, height, width)
    mu_x, mu_y = grid_centres(params, N)  # (..., N) each, eqs 19-20
    return _axis_filters(mu_x, params.sigma2, width), _axis_filters(mu_y, params.sigma2, height)


def _axis_filters(mu: torch.Tensor, sigma2: torch.Tensor, size: int) -> torch.Tensor:
    """Eq. 25 (or 26) as written: F[i, a] = exp(-(a - mu_i)^2 / (2 sigma^2)) / max(Z_i, EPS), (..., N, size)."""
    a = torch.arange(1, size + 1, device=mu.device, dtype=mu.dtype)  # (size,) the paper's pixels 1..size
    f = torch.exp(-(a - mu[..., None]).square() / (2 * sigma2[..., None, None]))  # (..., N, size)
    return f / f.sum(-1, keepdim=True).clamp_min(EPS)


def window(
    raw: torch.Tensor, N: int, height: int, width: int, *, path: str = "auto"
) -> tuple[AttentionParams, torch.Tensor, torch.Tensor]:
    """Eqs 21-26: `attention_params(raw)` and its `filterbank`, as the model runs them (one autograd node if fused).

    Windows are computed in at least float32: under autocast the heads give bfloat16 raw values, whose 8-bit
    mantissa cannot place a grid centre to within a pixel once the image is wider than 32 pixels.
    """
    if raw.dtype in (torch.float16, torch.bfloat16):
        raw = raw.float()
    if choose_hot_path(raw, path) == "plain":
        params = attention_params(raw, N, height, width)
        return params, *filterbank(params, N, height, width, path="plain")
    values, Fx, Fy = _Window.apply(raw, N, height, width)
    gx, gy, sigma2, delta, gamma = values.unbind(-1)
    return AttentionParams(gx=gx, gy=gy, delta=delta, sigma2=sigma2, gamma=gamma), Fx, Fy


@functools.cache
def _tail_exponent(dtype: torch.dtype) -> float:
    """Below this exponent a Gaussian filter value is taken as 0 on the fused (CPU) path: half the log of the
    smallest normal float (e^-43.7, about 1e-19, for float32). Such a value is far below the resolution of a row
    normalised to sum 1 (and of EPS), and the product of two values above it is still a normal float. Without the
    cut the Gaussian's tails fill F with subnormal floats, which x86 CPUs handle in microcode: exp, the multiplies
    and the batched matmuls over F made a training step of the cluttered classifier 1.9x and of the 60 x 60 model
    1.5x slower (`torch.set_flush_denormal(True)` bought the same, but it is a per-thread, process-wide switch)."""
    return 0.5 * math.log(torch.finfo(dtype).tiny)


def _filters(gx, gy, delta, sigma2, N: int, height: int, width: int):
    """Eqs 19-20 and 25-26 for both axes as one (..., 2, N, S) tensor F (axis 0 along x, 1 along y; S = max(H, W)),
    with what the backward needs: d = a - mu and where the rows were normalised (Z >= EPS)."""
    const = _image_constants(height, width, gx.device, gx.dtype)
    mu = _grid(gx, gy, delta, N)  # (..., 2, N)
    d = const.pixels - mu.unsqueeze(-1)  # (..., 2, N, S)
    exponent = d.square() * (-0.5 / sigma2)[..., None, None, None]  # (..., 2, N, S)
    f = torch.exp(exponent.masked_fill_(exponent < _tail_exponent(exponent.dtype), -torch.inf))  # eqs 25-26
    if const.on_image is not None:
        f = f * const.on_image.unsqueeze(-2)
    Z = f.sum(-1, keepdim=True)  # (..., 2, N, 1)
    return f / Z.clamp_min(EPS), d, Z >= EPS


def _filters_backward(grad_x, grad_y, F, d, sigma2, N: int, normalised):
    """dL/d(gx, gy, delta, sigma^2) from dL/dF_X and dL/dF_Y. With F = f / Z, f = exp(e), e = -d^2 / (2 sigma^2),
    d = a - mu and G = dL/dF: dL/de = (G - sum_a G F) F, dL/dmu = sum_a dL/de d / sigma^2,
    dL/dsigma^2 = sum dL/de d^2 / (2 sigma^4), and mu = g + offset_i delta (eqs 19-20)."""
    S = F.shape[-1]
    G = torch.stack([_pad_last(grad_x, S), _pad_last(grad_y, S)], dim=-3)  # (..., 2, N, S)
    grad_e = (G - (G * F).sum(-1, keepdim=True) * normalised) * F  # dL/de
    grad_e_d = grad_e * d
    grad_mu = grad_e_d.sum(-1) / sigma2[..., None, None]  # (..., 2, N)
    grad_sigma2 = (grad_e_d * d).sum((-1, -2, -3)) / (2 * sigma2.square())
    grad_gx, grad_gy = grad_mu.sum(-1).unbind(-1)  # eqs 19-20: every mu_i moves with g
    grad_delta = (grad_mu * _grid_offsets(N, F.device, F.dtype)).sum((-1, -2))
    return grad_gx, grad_gy, grad_delta, grad_sigma2


class _Filterbank(torch.autograd.Function):
    """(gx, gy, delta, sigma^2) -> F_X, F_Y; tests/test_attention.py checks the backward with gradcheck."""

    @staticmethod
    def forward(ctx, gx, gy, delta, sigma2, N: int, height: int, width: int):
        F, d, normalised = _filters(gx, gy, delta, sigma2, N, height, width)
        ctx.save_for_backward(F, d, sigma2, normalised)
        ctx.N = N
        return F[..., 0, :, :width], F[..., 1, :, :height]

    @staticmethod
    def backward(ctx, grad_x, grad_y):
        F, d, sigma2, normalised = ctx.saved_tensors
        return *_filters_backward(grad_x, grad_y, F, d, sigma2, ctx.N, normalised), None, None, None


class _Window(torch.autograd.Function):
    """raw (..., 5) -> (gx, gy, sigma^2, delta, gamma) in raw's order, F_X, F_Y; gradchecked like _Filterbank."""

    @staticmethod
    def forward(ctx, raw, N: int, height: int, width: int):
        p = attention_params(raw, N, height, width)
        F, d, normalised = _filters(p.gx, p.gy, p.delta, p.sigma2, N, height, width)
        values = torch.stack([p.gx, p.gy, p.sigma2, p.delta, p.gamma], dim=-1)  # (..., 5)
        # d values / d raw (eqs 21-24): (A + 1) / 2, (B + 1) / 2, then each exp term itself; 0 where raw was clamped.
        half_size = _image_constants(height, width, raw.device, raw.dtype).half_size
        slope = torch.cat([half_size.expand_as(values[..., :2]), values[..., 2:]], dim=-1) * (raw.abs() <= RAW_CLAMP)
        ctx.save_for_backward(F, d, p.sigma2, normalised, slope)
        ctx.N = N
        return values, F[..., 0, :, :width], F[..., 1, :, :height]

    @staticmethod
    def backward(ctx, grad_values, grad_x, grad_y):
        F, d, sigma2, normalised, slope = ctx.saved_tensors
        grad_gx, grad_gy, grad_delta, grad_sigma2 = _filters_backward(grad_x, grad_y, F, d, sigma2, ctx.N, normalised)
        from_filters = torch.stack([grad_gx, grad_gy, grad_sigma2, grad_delta, torch.zeros_like(grad_gx)], dim=-1)
        return (grad_values + from_filters) * slope, None, None, None


def _pad_last(t: torch.Tensor, size: int) -> torch.Tensor:
    return t if t.shape[-1] == size else torch.nn.functional.pad(t, (0, size - t.shape[-1]))


def extract(images: torch.Tensor, Fx: torch.Tensor, Fy: torch.Tensor, *, path: str = "auto") -> torch.Tensor:
    """F_Y x F_X^T for every channel: images (B, C, H, W) -> glimpses (B, C, N, N). No gamma."""
    if choose_hot_path(images, path) == "fused":
        return _Extract.apply(images, Fx, Fy)
    return Fy.unsqueeze(1) @ images @ Fx.unsqueeze(1).transpose(-1, -2)  # (B, 1, N, H) (B, C, H, W) (B, 1, W, N)


def read(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    Fx: torch.Tensor,
    Fy: torch.Tensor,
    gamma: torch.Tensor,
    *,
    path: str = "auto",
) -> torch.Tensor:
    """Eq. 27: read(x, x_hat) = gamma [F_Y x F_X^T, F_Y x_hat F_X^T], flattened to (B, 2 C N N)."""
    path = choose_hot_path(x, path)
    if path == "fused":
        B, C, H, W = x.shape
        # Image and error side by side, (B, C, H, 2W), seen as the 2C images of one batched matmul: for C = 1 this
        # view is already the (B, H, 2W) layout that _Extract multiplies, so nothing is copied twice.
        both = torch.cat([x, x_hat], dim=-1).view(B, C, H, 2, W).permute(0, 3, 1, 2, 4).reshape(B, 2 * C, H, W)
    else:
        both = torch.cat([x, x_hat], dim=1)  # (B, 2C, H, W)
    return gamma[:, None] * extract(both, Fx, Fy, path=path).flatten(1)


def write(
    w: torch.Tensor, Fx: torch.Tensor, Fy: torch.Tensor, gamma: torch.Tensor, *, path: str = "auto"
) -> torch.Tensor:
    """Eq. 29: write(h_dec) = (1 / gamma^) F^_Y^T w_t F^_X, with w (B, C, N, N) -> (B, C, H, W)."""
    if choose_hot_path(w, path) == "fused":
        spread = _Spread.apply(w, Fx, Fy)
    else:
        spread = Fy.transpose(-1, -2).unsqueeze(1) @ w @ Fx.unsqueeze(1)  # (B, 1, H, N) (B, C, N, N) (B, 1, N, W)
    return spread / gamma[:, None, None, None]


# The fused extract and spread. Both are small batched matmuls. On CPU a batched matmul whose result has a short last
# axis is several times slower than one with a long last axis, so both are arranged so that every product in the
# forward and backward pass ends on a pixel axis (or is tiny); writing their backward out keeps each one autograd node.


class _Extract(torch.autograd.Function):
    """images (B, K, H, W) -> F_Y image F_X^T for each of the K images, (B, K, N, N)."""

    @staticmethod
    def forward(ctx, images, Fx, Fy):
        B, K, H, W = images.shape
        N = Fx.shape[-2]
        columns = images.transpose(1, 2).reshape(B, H, K * W)  # (B, H, K W)
        rows = torch.bmm(Fy, columns).view(B, N * K, W)  # (B, N K, W): F_Y image
        out = torch.bmm(Fx, rows.transpose(1, 2))  # (B, N, N K): out[j, (i, k)] = (F_Y image F_X^T)[k, i, j]
        ctx.save_for_backward(columns, rows, Fx, Fy)
        return out.view(B, N, N, K).permute(0, 3, 2, 1).contiguous()  # (B, K, N, N)

    @staticmethod
    def backward(ctx, grad):
        columns, rows, Fx, Fy = ctx.saved_tensors
        B, K, N, _ = grad.shape
        H, W = columns.shape[1], Fx.shape[-1]
        grad_out = grad.permute(0, 3, 2, 1).reshape(B, N, N * K)  # (B, N, N K)
        grad_Fx = torch.bmm(grad_out, rows)  # (B, N, W)
        grad_rows = torch.bmm(grad_out.transpose(1, 2), Fx).view(B, N, K * W)  # (B, N, K W)
        grad_Fy = torch.bmm(grad_rows, columns.transpose(1, 2))  # (B, N, H)
        grad_images = None
        if ctx.needs_input_grad[0]:
            grad_images = torch.bmm(Fy.transpose(1, 2), grad_rows).view(B, H, K, W).transpose(1, 2)  # (B, K, H, W)
        return grad_images, grad_Fx, grad_Fy


class _Spread(torch.autograd.Function):
    """patches w (B, C, N, N) -> F_Y^T w F_X for each channel, (B, C, H, W)."""

    @staticmethod
    def forward(ctx, w, Fx, Fy):
        B, C, N, _ = w.shape
        H, W = Fy.shape[-1], Fx.shape[-1]
        rows = torch.bmm(w.reshape(B, C * N, N), Fx)  # (B, C N, W): w F_X
        rows = rows.view(B, C, N, W).transpose(1, 2).reshape(B, N, C * W)  # (B, N, C W)
        out = torch.bmm(Fy.transpose(1, 2), rows)  # (B, H, C W)
        ctx.save_for_backward(w, rows, Fx, Fy)
        return out.view(B, H, C, W).transpose(1, 2).contiguous()  # (B, C, H, W)

    @staticmethod
    def backward(ctx, grad):
        w, rows, Fx, Fy = ctx.saved_tensors
        B, C, N, _ = w.shape
        H, W = grad.shape[-2:]
        grad_out = grad.transpose(1, 2).reshape(B, H, C * W)  # (B, H, C W)
        grad_Fy = torch.bmm(rows, grad_out.transpose(1, 2))  # (B, N, H)
        grad_rows = torch.bmm(Fy, grad_out).view(B, N, C, W).transpose(1, 2).reshape(B, C * N, W)  # (B, C N, W)
        grad_w = torch.bmm(grad_rows, Fx.transpose(1, 2)).view(B, C, N, N)
        grad_Fx = torch.bmm(w.reshape(B, C * N, N).transpose(1, 2), grad_rows)  # (B, N, W)
        return grad_w, grad_Fx, grad_Fy


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
