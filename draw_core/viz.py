"""Every Plotly figure of the app, built from tensors, with no Streamlit import (unit-tested on its own).

Letters used in shape comments:
    T steps, n images, C channels, H height, W width, N attention grid size.

Images are heatmaps in 0-based image coordinates: pixel (row r, column c) is the cell centred on
(x=c, y=r), the y axis points down and both axes have the same scale. Attention windows are drawn as in
the paper's Fig. 1, only from `draw_core.attention.window_geometry`: a rectangle through the first and
last grid centres, its border wider the sharper the filters (`draw_core.render.window_line_width`).
Each window is a layout shape named "<kind>-window" (kind "read" or "write") and its grid centres a
scatter trace named "<kind>-centres", so tests and benchmarks find them in `fig.to_dict()`.
"""

from __future__ import annotations

import base64

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torchvision.utils import make_grid

from .attention import AttentionParams, WindowGeometry
from .render import window_line_width

WINDOW_COLOURS = {"read": "#00c853", "write": "#ff1744"}  # green read, red write (the paper's Fig. 1 red)
IMAGE_PIXELS = 280  # default on-screen size of a single image figure
GRID_PAD = 0.35  # grey level of the gaps in image grids
PARAM_LABELS = {"gx": "g<sub>X</sub>", "gy": "g<sub>Y</sub>", "delta": "δ", "sigma": "σ", "gamma": "γ"}


def _numpy(values) -> np.ndarray:
    if torch.is_tensor(values):
        return values.detach().to("cpu", torch.float32).numpy()
    return np.asarray(values, dtype=np.float32)


def _plane(image) -> np.ndarray:
    """(H, W) pixels of an image given as (H, W) or (C, H, W); several channels are averaged."""
    pixels = _numpy(image)
    if pixels.ndim == 3:
        pixels = pixels.mean(0)
    if pixels.ndim != 2:
        raise ValueError(f"an image must have shape (H, W) or (C, H, W), got {pixels.shape}")
    return pixels


def _float(value) -> float:
    return float(value.item() if torch.is_tensor(value) else value)


def image_figure(
    image,
    *,
    title: str | None = None,
    zmin: float = 0.0,
    zmax: float = 1.0,
    colorscale: str = "gray",
    size: int = IMAGE_PIXELS,
    hover: str = "value",
) -> go.Figure:
    """A grey heatmap of one image (H, W) or (C, H, W), y axis down, square pixels, `size` pixels wide."""
    pixels = _plane(image)
    H, W = pixels.shape
    heatmap = go.Heatmap(
        z=pixels,
        zmin=zmin,
        zmax=zmax,
        colorscale=colorscale,
        showscale=False,
        hovertemplate=f"column %{{x}}, row %{{y}}<br>{hover} %{{z:.3f}}<extra></extra>",
        name="image",
    )
    fig = go.Figure(heatmap)
    margin_top = 30 if title else 4
    fig.update_layout(
        width=size,
        height=round(size * H / W) + margin_top + 4,
        margin=dict(l=4, r=4, t=margin_top, b=4),
        title=dict(text=title, font=dict(size=13), x=0.5, xanchor="center") if title else None,
        showlegend=False,
        plot_bgcolor="black",
    )
    fig.update_xaxes(range=[-0.5, W - 0.5], showgrid=False, zeroline=False, showticklabels=False, constrain="domain")
    fig.update_yaxes(
        range=[H - 0.5, -0.5], showgrid=False, zeroline=False, showticklabels=False, scaleanchor="x", constrain="domain"
    )
    return fig


def signed_image_figure(image, *, title: str | None = None, size: int = IMAGE_PIXELS) -> go.Figure:
    """An image of signed values in [-1, 1] (error images, canvas changes): blue negative, red positive."""
    return image_figure(image, title=title, zmin=-1.0, zmax=1.0, colorscale="RdBu_r", size=size)


def _screen_pixels_per_image_pixel(fig: go.Figure, image_width: float) -> float:
    return (fig.layout.width or IMAGE_PIXELS) / image_width


def add_window(
    fig: go.Figure,
    window: WindowGeometry,
    *,
    kind: str = "write",
    params: AttentionParams | None = None,
    show_centres: bool = False,
    image_width: int | None = None,
) -> go.Figure:
    """Draw one attention window (fields of `window` are scalars) on an image figure, as in Fig. 1.

    The rectangle runs through the first and last grid centres; its border width is
    render.window_line_width(sigma) image pixels, so it grows with the precision 1/sigma. With
    `show_centres`, the N x N grid centres are markers whose hover shows the window's parameters
    (`params`, the AttentionParams the window came from, in the paper's 1-based pixel units).
    """
    if kind not in WINDOW_COLOURS:
        raise ValueError(f"kind must be one of {sorted(WINDOW_COLOURS)}, got {kind!r}")
    if window.x0.dim() != 0:
        raise ValueError(f"add_window draws one window: its fields must be scalars, got shape {tuple(window.x0.shape)}")
    if image_width is None:
        image_width = len(fig.data[0].z[0])
    sigma = _float(window.sigma)
    width = window_line_width(sigma) * _screen_pixels_per_image_pixel(fig, image_width)
    x0, y0, x1, y1 = (_float(v) for v in (window.x0, window.y0, window.x1, window.y1))
    fig.add_shape(
        type="rect",
        x0=x0,
        y0=y0,
        x1=x1,
        y1=y1,
        name=f"{kind}-window",
        line=dict(color=WINDOW_COLOURS[kind], width=width),
        fillcolor="rgba(0,0,0,0)",
        layer="above",
    )
    if show_centres:
        xs, ys = np.meshgrid(_numpy(window.centres_x), _numpy(window.centres_y))  # (N, N) each
        described = ""
        if params is not None:
            values = {
                "gx": params.gx,
                "gy": params.gy,
                "delta": params.delta,
                "sigma": params.sigma2.sqrt(),
                "gamma": params.gamma,
            }
            described = "<br>".join(f"{PARAM_LABELS[k]} = {_float(v):.3f}" for k, v in values.items()) + "<br>"
        fig.add_trace(
            go.Scatter(
                x=xs.ravel(),
                y=ys.ravel(),
                mode="markers",
                name=f"{kind}-centres",
                marker=dict(color=WINDOW_COLOURS[kind], size=6, line=dict(color="white", width=1)),
                hovertemplate=f"{kind} grid centre<br>column %{{x:.2f}}, row %{{y:.2f}}<br>{described}<extra></extra>",
            )
        )
    return fig


def spec_array(value) -> np.ndarray:
    """An array of a figure spec: a plain list, or Plotly's typed array {'dtype', 'bdata', 'shape'} (base64)."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return array.reshape([int(size) for size in str(shape).split(",")]) if shape else array
    return np.asarray(value)


def window_shape(spec: dict, kind: str = "write") -> dict | None:
    """The "<kind>-window" rectangle of a figure spec (`fig.to_dict()` or a parsed Streamlit spec), or None."""
    for shape in spec.get("layout", {}).get("shapes", []) or []:
        if shape.get("name") == f"{kind}-window":
            return shape
    return None


def param_series(params: AttentionParams) -> dict[str, np.ndarray]:
    """gX, gY, delta, sigma, gamma of params with (T,) fields, as arrays over t."""
    return {
        "gx": _numpy(params.gx),
        "gy": _numpy(params.gy),
        "delta": _numpy(params.delta),
        "sigma": _numpy(params.sigma2.sqrt()),
        "gamma": _numpy(params.gamma),
    }


def attention_over_time(params: AttentionParams, *, step: int | None = None, title: str | None = None) -> go.Figure:
    """The window's parameters over t = 1..T (params with (T,) fields): position and stride in pixels above,
    precision-related sigma and intensity gamma below; a dashed line marks `step` (1-based)."""
    series = param_series(params)
    steps = np.arange(1, len(series["gx"]) + 1)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for row, names in ((1, ("gx", "gy", "delta")), (2, ("sigma", "gamma"))):
        for name in names:
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=series[name],
                    mode="lines",
                    name=PARAM_LABELS[name],
                    hovertemplate=f"t=%{{x}}: {PARAM_LABELS[name]} = %{{y:.3f}}<extra></extra>",
                ),
                row=row,
                col=1,
            )
    if step is not None:
        fig.add_vline(x=step, line=dict(color="grey", dash="dash", width=1))
    fig.update_layout(
        height=300,
        margin=dict(l=40, r=10, t=30 if title else 10, b=30),
        title=dict(text=title, font=dict(size=13)) if title else None,
        legend=dict(orientation="h", y=-0.15),
    )
    fig.update_yaxes(title_text="pixels", row=1, col=1)
    fig.update_xaxes(title_text="step t", row=2, col=1)
    return fig


def kl_per_step_figure(kl, *, step: int | None = None, title: str | None = "KL per step (nats)") -> go.Figure:
    """Bars of the KL each step spends, kl (T,) in nats; the bar of `step` (1-based) is highlighted."""
    values = _numpy(kl)
    steps = np.arange(1, len(values) + 1)
    colours = ["#1f77b4"] * len(values)
    if step is not None and 1 <= step <= len(values):
        colours[step - 1] = WINDOW_COLOURS["write"]
    fig = go.Figure(
        go.Bar(
            x=steps,
            y=values,
            marker_color=colours,
            name="KL",
            hovertemplate="step %{x}: %{y:.2f} nats<extra></extra>",
        )
    )
    fig.update_layout(
        height=260,
        margin=dict(l=40, r=10, t=30 if title else 10, b=30),
        title=dict(text=title, font=dict(size=13)) if title else None,
        bargap=0.1,
    )
    fig.update_xaxes(title_text="step t")
    fig.update_yaxes(title_text="nats")
    return fig


def loss_history_figure(steps, recon, kl, *, title: str | None = "Training loss (nats per image)") -> go.Figure:
    """The training batches' loss over optimisation steps, one line each for the reconstruction term L^x
    (eq. 9, trace "reconstruction"), the KL term L^z (eq. 11, trace "KL") and their sum L (eq. 12, "total")."""
    steps, recon, kl = _numpy(steps), _numpy(recon), _numpy(kl)
    if not len(steps) == len(recon) == len(kl):
        raise ValueError(f"steps, recon and kl must have the same length, got {len(steps)}, {len(recon)}, {len(kl)}")
    lines = (
        ("total", "L = L<sup>x</sup> + L<sup>z</sup>", recon + kl, "dot"),
        ("reconstruction", "L<sup>x</sup>", recon, "solid"),
        ("KL", "L<sup>z</sup>", kl, "solid"),
    )
    fig = go.Figure()
    for name, symbol, values, dash in lines:
        fig.add_trace(
            go.Scatter(
                x=steps.astype(np.int64),
                y=values,
                mode="lines",
                name=name,
                line=dict(dash=dash),
                hovertemplate=f"{name} {symbol}<br>step %{{x}}: %{{y:.2f}} nats<extra></extra>",
            )
        )
    fig.update_layout(
        height=300,
        margin=dict(l=40, r=10, t=30 if title else 10, b=30),
        title=dict(text=title, font=dict(size=13)) if title else None,
        legend=dict(orientation="h", y=-0.25),
    )
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="nats")
    return fig


def kl_curves_figure(curves: dict[str, list[float]], *, title: str | None = "KL per step") -> go.Figure:
    """One line per named model: mean KL (nats) spent at each step t."""
    fig = go.Figure()
    for name, values in curves.items():
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, len(values) + 1),
                y=_numpy(values),
                mode="lines+markers",
                name=name,
                hovertemplate=f"{name}<br>step %{{x}}: %{{y:.2f}} nats<extra></extra>",
            )
        )
    fig.update_layout(
        height=300,
        margin=dict(l=40, r=10, t=30 if title else 10, b=30),
        title=dict(text=title, font=dict(size=13)) if title else None,
    )
    fig.update_xaxes(title_text="step t")
    fig.update_yaxes(title_text="nats")
    return fig


def tile(images, *, nrow: int, padding: int = 1) -> torch.Tensor:
    """images (n, C, H, W) -> one (C, H', W') picture, `nrow` per row, grey gaps (torchvision's make_grid)."""
    images = torch.as_tensor(images).detach().to("cpu", torch.float32)
    if images.dim() != 4:
        raise ValueError(f"images must have shape (n, C, H, W), got {tuple(images.shape)}")
    if len(images) == 1:
        return images[0]
    return make_grid(images, nrow=nrow, padding=padding, pad_value=GRID_PAD)[: images.shape[1]]


def image_grid_figure(
    images, *, nrow: int, title: str | None = None, size: int = 420, padding: int = 1, zmin: float = 0.0
) -> go.Figure:
    """Images (n, C, H, W) tiled `nrow` per row as one heatmap `size` pixels wide."""
    return image_figure(tile(images, nrow=nrow, padding=padding), title=title, size=size, zmin=zmin)


def _window_outline(window: WindowGeometry, t: int) -> tuple[list[float], list[float], float]:
    """The closed outline (xs, ys) of step t's window and its border width in image pixels."""
    x0, y0, x1, y1 = (_float(v[t]) for v in (window.x0, window.y0, window.x1, window.y1))
    return [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], window_line_width(_float(window.sigma[t]))


def generation_animation(
    canvases, window: WindowGeometry | None, *, frame_ms: int = 80, size: int = IMAGE_PIXELS
) -> go.Figure:
    """Plotly animation of one sample's generation: canvases (T, C, H, W) in [0, 1], window (T,) fields or None.

    Each frame shows sigma(c_t) with that step's write window (a trace named "write-window", so frames can
    move it); Play/Pause buttons and a step slider under the picture play it in the browser.
    """
    canvases = _numpy(canvases)
    T = canvases.shape[0]
    W = canvases.shape[-1]
    fig = image_figure(canvases[0], size=size)
    fig.update_layout(height=fig.layout.height + 110, margin=dict(l=4, r=4, t=4, b=110))
    screen = _screen_pixels_per_image_pixel(fig, W)

    def outline(t: int) -> go.Scatter:
        xs, ys, width = _window_outline(window, t)
        line = dict(color=WINDOW_COLOURS["write"], width=width * screen)
        return go.Scatter(x=xs, y=ys, mode="lines", name="write-window", line=line, hoverinfo="skip")

    def frame_data(t: int) -> list:
        heatmap = go.Heatmap(z=_plane(canvases[t]), zmin=0, zmax=1, colorscale="gray", showscale=False)
        return [heatmap] if window is None else [heatmap, outline(t)]

    if window is not None:
        fig.add_trace(outline(0))
    fig.frames = [go.Frame(data=frame_data(t), name=str(t + 1)) for t in range(T)]
    play = dict(frame=dict(duration=frame_ms, redraw=True), fromcurrent=True, transition=dict(duration=0))
    pause = dict(frame=dict(duration=0, redraw=False), mode="immediate", transition=dict(duration=0))
    fig.update_layout(
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0.0,
                y=0,
                xanchor="left",
                yanchor="top",
                pad=dict(t=4, r=4),
                buttons=[
                    dict(label="▶ Play", method="animate", args=[None, play]),
                    dict(label="❚❚ Pause", method="animate", args=[[None], pause]),
                ],
            )
        ],
        sliders=[
            dict(
                active=0,
                x=0.0,
                y=-0.02,
                len=1.0,
                pad=dict(t=40),
                currentvalue=dict(prefix="step ", font=dict(size=12)),
                steps=[
                    dict(
                        label=str(t + 1),
                        method="animate",
                        args=[[str(t + 1)], dict(mode="immediate", frame=dict(duration=0, redraw=True))],
                    )
                    for t in range(T)
                ],
            )
        ],
    )
    return fig


def filterbank_figure(F, *, axis: str, title: str | None = None, size: int = 360) -> go.Figure:
    """Heatmap of one filterbank F (N, A): row i is filter i over the A pixels of the `axis` ('x' or 'y')."""
    weights = _numpy(F)
    if weights.ndim != 2:
        raise ValueError(f"a filterbank must have shape (N, A), got {weights.shape}")
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    N, A = weights.shape
    letter = "a" if axis == "x" else "b"  # the paper's pixel index along x (a) or y (b)
    fig = go.Figure(
        go.Heatmap(
            z=weights,
            x=np.arange(1, A + 1),
            y=np.arange(1, N + 1),
            colorscale="Viridis",
            showscale=False,
            hovertemplate=f"filter i=%{{y}}, pixel {letter}=%{{x}}<br>weight %{{z:.4f}}<extra></extra>",
        )
    )
    fig.update_layout(
        width=size,
        height=max(120, 26 * N + 70),
        margin=dict(l=40, r=10, t=30 if title else 10, b=40),
        title=dict(text=title, font=dict(size=13)) if title else None,
    )
    fig.update_xaxes(title_text=f"pixel {letter} ({axis})")
    fig.update_yaxes(title_text="filter i", autorange="reversed", dtick=1 if N <= 12 else None)
    return fig
