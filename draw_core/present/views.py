"""What the app's pages show, computed here so that pages only lay it out (no Streamlit import, unit-tested).

Pages never compute an equation of the paper: the window of a step (eqs 19-24), the canvas before the first step
(sigma(c_0)), the nats each glimpse spends (eq. 11), the Attention lab's filterbank, glimpse and write-back
(eqs 25-29) and its raw parameters (eqs 21-24 inverted), the datasets a model can be measured on and the one-line
captions of a model all come from this module.

Letters used in shape comments:
    T steps, n samples (or images), C channels, H height, W width, N attention grid size.

Steps are 0-based indices t into a trace (canvases[t] is the paper's sigma(c_{t+1})), as in AttentionParams.step.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go
import torch

from draw_core.config import DrawConfig
from draw_core.data import dataset_names, get_dataset
from draw_core.nn.attention import AttentionParams, WindowGeometry, extract, filterbank, window_geometry, write
from draw_core.nn.elbo import gaussian_kl_from_std
from draw_core.nn.kinds import ModelKind
from draw_core.nn.model import ReconstructionTrace
from draw_core.present import viz


@dataclass(frozen=True)
class Window:
    """An attention window ready to draw: its parameters in pixel units and the geometry they give (eqs 19-20)."""

    params: AttentionParams  # scalar fields for one step, (T,) fields for every step of one image
    geometry: WindowGeometry  # the same shape as params' fields


def window_at(attention: AttentionParams | None, N: int, *index) -> Window | None:
    """The window of `attention` (fields (T, n) as a trace holds them) at `index`: (t, i) for step t of image i,
    (slice(None), i) for every step of image i. None when the model has no such attention."""
    if attention is None:
        return None
    params = attention.map(lambda v: v[index])
    return Window(params=params, geometry=window_geometry(params, N))


def draw_window(fig: go.Figure, window: Window | None, *, kind: str, show_centres: bool = False) -> go.Figure:
    """Draw one step's window on an image figure (viz.add_window, hover showing its parameters); none: unchanged."""
    if window is not None:
        viz.add_window(fig, window.geometry, kind=kind, params=window.params, show_centres=show_centres)
    return fig


def initial_canvas(like: torch.Tensor) -> torch.Tensor:
    """sigma(c_0) shaped like `like`: the canvas starts from zero logits, so every pixel is sigma(0) = 1/2."""
    return torch.sigmoid(torch.zeros_like(like))


def canvas_change(canvases: torch.Tensor, t: int) -> torch.Tensor:
    """What step t added to one image's canvases (T, C, H, W): sigma(c_{t+1}) - sigma(c_t), in [-1, 1]."""
    before = canvases[t - 1] if t > 0 else initial_canvas(canvases[0])  # (C, H, W)
    return canvases[t] - before


def kl_per_glimpse(trace: ReconstructionTrace, index: int = 0) -> torch.Tensor:
    """(T,) nats each step's z_t costs image `index` of the trace: KL(Q(Z_t | h_enc_t) || N(0, I)), eq. 11."""
    return gaussian_kl_from_std(trace.mu[:, index], trace.std[:, index])


def raw_attention(params: AttentionParams, N: int, height: int, width: int) -> torch.Tensor:
    """Eqs 21-24 inverted: pixel-unit params -> raw (..., 5) = (g~X, g~Y, log sigma^2, log delta~, log gamma), the
    output of W(h_dec) that `draw_core.nn.attention.attention_params` turns back into `params` (for N >= 2)."""
    if N < 2:
        raise ValueError(f"attention grid size N must be >= 2 (eq. 24 divides by N - 1), got {N}")
    gx_tilde = 2 * params.gx / (width + 1) - 1  # eq. 22
    gy_tilde = 2 * params.gy / (height + 1) - 1  # eq. 23
    delta_tilde = params.delta * (N - 1) / (max(height, width) - 1)  # eq. 24
    logs = [torch.log(v) for v in (params.sigma2, delta_tilde, params.gamma)]  # eq. 21
    return torch.stack([gx_tilde, gy_tilde, *logs], dim=-1)


RAW_NAMES = ("g̃_X", "g̃_Y", "log σ²", "log δ̃", "log γ")  # the order of raw_attention's last axis (eq. 21)


def raw_attention_caption(params: AttentionParams, N: int, height: int, width: int) -> str:
    """One line giving a window (scalar fields) in the model's raw units; with N = 1 there is no stride to give."""
    # The other four raw values don't depend on N, so N = 1 borrows N = 2 and leaves log δ̃ out.
    raw = raw_attention(params, max(N, 2), height, width)  # (5,)
    parts = [f"{name} = {float(value):.3f}" for name, value in zip(RAW_NAMES, raw, strict=True)]
    if N < 2:
        parts[3] = "δ̃ has no effect when N = 1"
    return "In the model's raw units (eqs 21-24): " + ", ".join(parts) + "."


@dataclass(frozen=True)
class LabView:
    """Everything the Attention lab shows for one hand-set window over one image."""

    window: Window  # scalar fields
    Fx: torch.Tensor  # (N, W) eq. 25
    Fy: torch.Tensor  # (N, H) eq. 26
    glimpse: torch.Tensor  # (C, N, N) gamma F_Y x F_X^T, eq. 27 for the image alone
    written: torch.Tensor  # (C, H, W) (1 / gamma) F_Y^T glimpse F_X, eq. 29 with the glimpse as the patch


def attention_lab(
    image: torch.Tensor, N: int, *, gx: float, gy: float, delta: float, sigma2: float, gamma: float
) -> LabView:
    """The filterbank of a window set by hand in pixel units (1-based, as in the paper) read from and written back
    onto image (C, H, W), with the functions the model itself runs."""
    H, W = image.shape[-2:]
    params = AttentionParams(*(torch.tensor([float(v)]) for v in (gx, gy, delta, sigma2, gamma)))  # (1,) fields
    Fx, Fy = filterbank(params, N, H, W)  # (1, N, W), (1, N, H): eqs 25-26
    glimpse = params.gamma[:, None, None, None] * extract(image.unsqueeze(0), Fx, Fy)  # (1, C, N, N): eq. 27
    written = write(glimpse, Fx, Fy, params.gamma)  # (1, C, H, W): eq. 29
    return LabView(window=window_at(params, N, 0), Fx=Fx[0], Fy=Fy[0], glimpse=glimpse[0], written=written[0])


def attention_summary(cfg: DrawConfig) -> str:
    """'read 2×2, write 5×5', or which attention the model goes without."""
    read = f"read {cfg.read_n}×{cfg.read_n}" if cfg.read_attn else "no read attention"
    return read + (f", write {cfg.write_n}×{cfg.write_n}" if cfg.write_attn else ", no write attention")


def attention_label(config: dict | None) -> str:
    """'attention', 'no attention' or 'unknown' for a stored config dict (missing switches default to on)."""
    if not config:
        return "unknown"
    return "attention" if config.get("read_attn", True) or config.get("write_attn", True) else "no attention"


def glimpse_label(cfg: DrawConfig) -> str:
    """What the encoder reads at each step: an N×N glimpse (eq. 27) or the whole image (eq. 17)."""
    return f"{cfg.read_n}×{cfg.read_n} glimpse" if cfg.read_attn else "whole image (no read attention)"


def config_caption(cfg) -> str:
    """The network in one line: for DRAW steps, latent size, LSTM sizes and attention; for another kind's config
    its fields other than the image size (which model_caption gives)."""
    if isinstance(cfg, DrawConfig):
        return f"T={cfg.T} · z={cfg.z_size} · LSTM {cfg.enc_size}/{cfg.dec_size} · {attention_summary(cfg)}"
    return " · ".join(f"{k}={v}" for k, v in cfg.to_dict().items() if k not in ("channels", "height", "width"))


def image_size(cfg) -> str:
    """'C×H×W' of the images a model of config `cfg` (any kind's) takes."""
    return f"{cfg.channels}×{cfg.height}×{cfg.width}"


def model_caption(kind: ModelKind, cfg, dataset: str | None) -> str:
    """What a checkpoint is in one line: its kind, the dataset it was trained on and its image size."""
    return f"{kind.name} · {dataset or 'unknown dataset'} · {image_size(cfg)}"


def config_table(cfg) -> dict[str, list[str]]:
    """The config as a two-column table: field names and their values as text."""
    values = cfg.to_dict()
    return {"field": list(values), "value": [str(v) for v in values.values()]}


def evaluation_datasets(cfg, prefer: str | None = None) -> list[str]:
    """Registered datasets a generator of `cfg`'s image size (any kind's config) can be measured on here: they
    have a likelihood and their files are present. In the registry's order, `prefer` (the checkpoint's own) first."""
    shape = (cfg.channels, cfg.height, cfg.width)
    names = [
        name
        for name in dataset_names()
        if (spec := get_dataset(name)).likelihood is not None and tuple(spec.shape) == shape and spec.available()
    ]
    return sorted(names, key=lambda name: name != prefer)
