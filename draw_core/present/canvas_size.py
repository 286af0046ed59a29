"""The Generate page's canvas size (issue 15): the same z drawn on a canvas 2 or 4 times the model's, and what a
model's parameter count owes to the image size.

A model with write attention never sees its image size except through eqs 22-24, which place the write grid on the
canvas: centres g = (A + 1)/2 (g~ + 1) and stride delta = (max(A, B) - 1)/(N - 1) delta~ scale with it. So the same
z can be drawn on a canvas s times larger (DRAW.generate(canvas=...)): the N x N patch is as learned, the grid's
centres and stride are rescaled by eqs 22-24, and sigma and the ink each filter spreads per pixel take the same factor
s (sigma s; ink per pixel 1/s^2, i.e. 1/gamma grows by s^2: normalised filters spread the same ink over s^2 times the
pixels), as derived in DRAW._write. The larger canvas is a smoother render of the same picture, not more detail: the
model has T N^2 patch values per canvas channel, whatever the canvas.

Without write attention (eq. 18) the decoder's output layer is the canvas, one weight row per pixel: there is no
other size to draw on, and the parameter count grows with the pixels (`parameter_counts` counts the real modules,
built on torch's meta device, which allocates nothing).

The pictures of the two canvases (and the Generate page's grid of samples) are PNG layout images (`picture_figure`),
not heatmaps or image traces: a 240 x 240 canvas (60 x 60 at 4x) or a grid of colour samples sent as a PNG costs a
few kilobytes and no per-pixel JSON on every rerun of the page, and its pixels stay square-edged.

Letters: T steps, n samples, C channels, K canvas channels, H height, W width, N write grid size, s the scale.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from draw_core.config import DrawConfig
from draw_core.nn.model import DRAW
from draw_core.present import viz
from draw_core.present.views import Explanation
from draw_core.training.devices import parameter_count

SCALES = (1, 2, 4)  # canvas sizes offered: 1x (the model's own), 2x, 4x
SIDES = (28, 56, 84, 112, 140, 168, 196, 224)  # image sides of the parameter-count chart
ATTENTION_COLOUR = "#ff1744"
PLAIN_COLOUR = "#1f77b4"

CANVAS_TEXT = (
    "A model with write attention never learned its image size except through eqs 22–24, which scale the write "
    "grid to the canvas. On a canvas s times larger the N×N patch is as learned, the grid's centres and stride are "
    "rescaled by eqs 22–24, and σ grows by s. Normalised filters would spread each patch value over s² times the "
    "pixels, s² times thinner, so 1/γ grows by s² and the ink per pixel stays as the model drew it (derived in "
    "`DRAW._write`). The larger canvas is only a smoother render, not more detail: the model has "
    "{patch_values:,} patch values (T·K·N² = {T}·{K}·{N}²) whatever the canvas."
)

EXPLANATIONS = {
    "larger_canvas": Explanation(
        "eqs 22–24",
        r"g_X = \tfrac{A+1}{2}(\tilde g_X + 1), \quad \delta = \tfrac{\max(A, B) - 1}{N - 1}\,\tilde\delta, \quad "
        r"\sigma \to s\,\sigma, \quad \tfrac{1}{\gamma} \to \tfrac{s^2}{\gamma}",
        "The same strokes in the same places, only smoother edges: averaged back over s×s blocks the larger "
        "canvas is the model's own picture again.",
    ),
    "parameters": Explanation(
        "eqs 17–18 vs 27–29",
        r"r_t = [x, \hat x_t] \in \mathbb{R}^{2CHW}, \ w_t \in \mathbb{R}^{KHW} \quad \text{vs} \quad "
        r"r_t \in \mathbb{R}^{2CN_r^2}, \ w_t \in \mathbb{R}^{KN_w^2}",
        "With attention the line is flat: the read and write layers see N×N glimpses and patches whatever the image "
        "size. Without it the encoder's input (2CHW) and the write layer's output (KHW) grow with the pixels, ×4 for "
        "each doubling of the side.",
    ),
}


def canvas_shape(cfg: DrawConfig, scale: int = 1) -> str:
    """'H×W' of a canvas `scale` times the model's, e.g. '56×56'."""
    return f"{cfg.height * scale}×{cfg.width * scale}"


def canvas_sizes(cfg: DrawConfig) -> dict[int, str]:
    """The canvas choices for a model: scale -> its label, e.g. {1: "28×28 (the model's)", 2: '56×56 (2×)', ...}."""
    return {s: canvas_shape(cfg, s) + (" (the model's)" if s == 1 else f" ({s}×)") for s in SCALES}


def why_not_larger(cfg: DrawConfig) -> str | None:
    """Why this model can't draw on a larger canvas (no write attention), or None when it can."""
    if cfg.write_attn:
        return None
    return (
        "This model has no write attention: its decoder writes the whole "
        f"{cfg.height}×{cfg.width} canvas at once, one output weight row per pixel (eq. 18), so there is no other "
        "canvas it could draw on."
    )


def patch_values(cfg: DrawConfig) -> int:
    """T K N^2: every number the decoder writes into one canvas through its write window (eq. 28)."""
    return cfg.T * cfg.write_size


def canvas_text(cfg: DrawConfig) -> str:
    """The page's paragraph on the larger canvas, with this model's T, K and N."""
    return CANVAS_TEXT.format(patch_values=patch_values(cfg), T=cfg.T, K=cfg.canvas_channels, N=cfg.write_n)


@dataclass(frozen=True)
class LargerCanvas:
    """One sample drawn on its model's canvas and on one s times larger, from the same z."""

    own: torch.Tensor  # (C, H, W) the model's own picture sigma(c_T)
    large: torch.Tensor  # (C, s H, s W) the same z on the larger canvas
    scale: int
    pooled_gap: float  # mean |the large picture averaged over s x s blocks - the own picture|, in [0, 1]


def draw_larger(model: DRAW, z: torch.Tensor, scale: int) -> LargerCanvas:
    """The final picture of latents z (T, Z) of one sample on the model's canvas and on one `scale` times larger
    (DRAW.generate(canvas=...)); ValueError for a scale not in SCALES or a model without write attention."""
    cfg = model.cfg
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if z.dim() != 2 or tuple(z.shape) != (cfg.T, cfg.z_size):
        raise ValueError(f"z must have shape (T={cfg.T}, Z={cfg.z_size}), got {tuple(z.shape)}")
    latents = z.unsqueeze(1)  # (T, 1, Z)
    own = model.generate(1, z=latents).canvases[-1, 0]  # (C, H, W)
    large = model.generate(1, z=latents, canvas=(cfg.height * scale, cfg.width * scale)).canvases[-1, 0]
    gap = float((F.avg_pool2d(large.unsqueeze(0), scale)[0] - own).abs().mean())
    return LargerCanvas(own=own, large=large, scale=scale, pooled_gap=gap)


def parameter_counts(cfg: DrawConfig, sides: tuple[int, ...] = SIDES) -> dict[str, list[int]]:
    """Parameters of DRAW at each square image side in `sides`, with the model's other settings (channels, T, LSTMs,
    z, likelihood): 'attention' with its read and write grids (the paper's 2 and 5 for the kind it doesn't have)
    and 'no attention' (eqs 17-18). Counted from the real modules, built on the meta device."""
    read_n = cfg.read_n if cfg.read_attn else 2
    write_n = cfg.write_n if cfg.write_attn else 5
    variants = {
        "attention": dict(read_attn=True, write_attn=True),
        "no attention": dict(read_attn=False, write_attn=False),
    }
    return {
        name: [
            parameter_count(
                dataclasses.replace(cfg, height=side, width=side, read_n=read_n, write_n=write_n, **switches)
            )
            for side in sides
        ]
        for name, switches in variants.items()
    }


def parameters_figure(
    sides, counts: dict[str, list[int]], *, model_side: int | None = None, title: str | None = None
) -> go.Figure:
    """Parameter count against the image side (log scale), one line per variant of `parameter_counts`; the model's
    own side marked by a dotted line."""
    colours = {"attention": ATTENTION_COLOUR, "no attention": PLAIN_COLOUR}
    sides = np.asarray(sides)
    data = [
        viz._line(
            sides,
            np.asarray(values, dtype=np.float64),
            name,
            f"{name}: %{{x}}×%{{x}} pixels, %{{y:,.0f}} parameters<extra></extra>",
            mode="lines+markers",
            line={"color": colours.get(name)},
        )
        for name, values in counts.items()
    ]
    shapes = []
    if model_side is not None:
        shapes.append(
            {
                "type": "line",
                "x0": model_side,
                "x1": model_side,
                "xref": "x",
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "line": {"color": "#888", "dash": "dot", "width": 1},
            }
        )
    layout = viz._chart_layout(
        title,
        320,
        xaxis={"title": {"text": "image side (pixels)"}, "tickvals": sides},
        yaxis={"title": {"text": "parameters"}, "type": "log"},
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        shapes=shapes,
    )
    return viz._figure(data, layout)


def picture_figure(image, *, title: str | None = None, size: int = viz.IMAGE_PIXELS) -> go.Figure:
    """One image (C, H, W) in [0, 1], grey or RGB, as a PNG layout image `size` pixels wide, y axis down, each image
    pixel a square (nearest-neighbour upscaling, so the model's own canvas shows its pixels and a larger canvas its
    smoother render)."""
    pixels, colour = viz._panel_pixels(image, steps=False)
    H, W = pixels.shape[-2:]
    scale = max(1, math.ceil(size / W))  # picture pixels per image pixel: at least the screen's
    if colour:
        source = viz._colour_picture(pixels, 0.0, 1.0, 0, scale)
    else:
        source = viz._picture(pixels, 0.0, 1.0, viz._palette(viz.GREY), 0, scale)
    margin_top = 30 if title else 4
    axis = {"visible": False, "fixedrange": True}
    layout = {
        "width": size + 8,
        "height": round(size * H / W) + margin_top + 4,
        "margin": {"l": 4, "r": 4, "t": margin_top, "b": 4},
        "showlegend": False,
        "plot_bgcolor": "black",
        "xaxis": {"range": [-0.5, W - 0.5], **axis},
        "yaxis": {"range": [H - 0.5, -0.5], "scaleanchor": "x", **axis},
        "images": [
            {
                "source": source,
                "xref": "x",
                "yref": "y",
                "x": -0.5,
                "y": -0.5,
                "sizex": W,
                "sizey": H,
                "xanchor": "left",
                "yanchor": "top",
                "sizing": "stretch",
                "layer": "below",
                "name": title or "picture",
            }
        ],
        **viz._title(title),
    }
    return viz._figure([], layout)
