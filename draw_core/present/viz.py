"""Every Plotly figure of the app, built from tensors, with no Streamlit import (unit-tested on its own).

Letters used in shape comments:
    T steps, n images, C channels, H height, W width, N attention grid size.

Images are heatmaps in 0-based image coordinates: pixel (row r, column c) is the cell centred on
(x=c, y=r), the y axis points down and both axes have the same scale. An image that carries attention windows is
shown padded by `window_pad` pixels of PAD_COLOUR on every side, so a window reaching past the image still shows.

Attention windows are drawn as in the paper's Fig. 1, only from `draw_core.nn.attention.window_geometry`: a
rectangle through the first and last grid centres, its border wider the sharper the filters
(`render.window_line_width`, the precision 1/sigma). A window is a closed-line trace named "<kind>-window"
(kind "read" or "write"), clipped to what the figure shows: a clipped window is drawn dotted along the view's
edge, so a window larger than the image is still seen. Its grid centres are a scatter trace "<kind>-centres".
Windows are traces rather than layout shapes so that animation frames can move them; tests find them with
`window_outline` / `window_box`.

Step-through views are timelines (`generation_timeline`, `reconstruction_timeline`): one figure of subplots that
holds every step t = 1..T, so the browser can show any step without asking the server. What moves with the step
is only ever a layout image (an image panel's PNG with its windows drawn in, a chart's step line, the current
step's bar): `layout.meta["timeline"]["steps"][t]` is the Plotly.relayout update that shows step t + 1, which
plotly.js applies in a few milliseconds, where animation frames would redraw the whole figure (200-300 ms a step
measured on this app's 2-core server). The page's component (app_views.follow) drives it. Charts over t give their
points the step as `customdata`, so a click on one names the step to jump to.

Figures are written as plain Plotly specs (dicts) and wrapped once without Plotly's per-property
validation, which costs 5-30 ms a figure and would dominate a slider's rerun; the tests validate every
builder's output with Plotly instead.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from draw_core.nn.attention import AttentionParams, WindowGeometry
from draw_core.present.render import window_line_width

if TYPE_CHECKING:
    from draw_core.present.views import Window

WINDOW_COLOURS = {"read": "#00c853", "write": "#ff1744"}  # green read, red write (the paper's Fig. 1 red)
IMAGE_PIXELS = 280  # default on-screen size of a single image figure
GRID_PAD = 0.35  # grey level of the gaps in image grids
PAD_COLOUR = "rgb(46,64,96)"  # slate blue around a padded image: neither ink, background nor a signed value
FRAME_COLOUR = "rgba(255,255,255,0.6)"  # the dotted line round a padded image's own pixels
COLORBAR_PIXELS = 70  # screen pixels a colour legend takes to the right of its image
# Colour scales are written out (the figures skip Plotly's validation, which would expand Python-only names).
GREY = [[0.0, "rgb(0,0,0)"], [1.0, "rgb(255,255,255)"]]  # 0 black, 1 white: ink on black like MNIST
SIGNED = [[0.0, "rgb(33,102,172)"], [0.5, "rgb(255,255,255)"], [1.0, "rgb(178,24,43)"]]  # blue < 0 < red
WEIGHTS = "Viridis"  # a plotly.js built-in name
PARAM_LABELS = {"gx": "g<sub>X</sub>", "gy": "g<sub>Y</sub>", "delta": "δ", "sigma": "σ", "gamma": "γ"}
PARAM_COLOURS = {"gx": "#1f77b4", "gy": "#17becf", "delta": "#ff7f0e", "sigma": "#9467bd", "gamma": "#2ca02c"}
STEP_COLOUR = "#ff1744"  # the current step's marker on charts over t
BAR_COLOUR = "#1f77b4"


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


def _planes(images) -> np.ndarray:
    """(T, H, W) pixels of images (T, H, W) or (T, C, H, W); several channels are averaged."""
    pixels = _numpy(images)
    if pixels.ndim == 4:
        pixels = pixels.mean(1)
    if pixels.ndim != 3:
        raise ValueError(f"images over t must have shape (T, H, W) or (T, C, H, W), got {pixels.shape}")
    return pixels


def _panel_pixels(images, *, steps: bool) -> tuple[np.ndarray, bool]:
    """An image panel's pixels and whether they are in colour: one image (C, H, W), or with `steps` one per step
    (T, C, H, W); RGB (C = 3) kept as it is, other channels averaged (`_plane`, `_planes`)."""
    pixels = _numpy(images)
    if pixels.ndim == 3 + steps and pixels.shape[-3] == 3:
        return pixels, True
    return (_planes(pixels) if steps else _plane(pixels)), False


def _colour(image, zmin: float, zmax: float) -> np.ndarray | None:
    """(H, W, 3) uint8 of an RGB image (3, H, W) whose [zmin, zmax] becomes 0..255 (a colour picture is drawn as it
    is, not averaged); None for an image of any other shape."""
    pixels = _numpy(image)
    if pixels.ndim != 3 or pixels.shape[0] != 3:
        return None
    level = np.clip((pixels - zmin) / max(zmax - zmin, 1e-12), 0.0, 1.0) * 255
    return np.rint(level).astype(np.uint8).transpose(1, 2, 0)


def _float(value) -> float:
    return float(value.item() if torch.is_tensor(value) else value)


def _figure(data: list[dict], layout: dict, frames: list[dict] | None = None) -> go.Figure:
    """A Figure from a spec, skipping Plotly's validation (see the module docstring)."""
    spec = {"data": data, "layout": layout}
    if frames is not None:
        spec["frames"] = frames
    return go.Figure(spec, _validate=False)


def _title(title: str | None) -> dict:
    return {"title": {"text": title, "font": {"size": 13}, "x": 0.5, "xanchor": "center"}} if title else {}


def _chart_layout(title: str | None, height: int, **extra) -> dict:
    """Layout of a small chart: margins, title, height."""
    return {"height": height, "margin": {"l": 40, "r": 10, "t": 30 if title else 10, "b": 30}, **_title(title), **extra}


def _heatmap(pixels: np.ndarray, zmin: float, zmax: float, colorscale: list, hover: str) -> dict:
    return {
        "type": "heatmap",
        "z": pixels,
        "zmin": zmin,
        "zmax": zmax,
        "colorscale": colorscale,
        "showscale": False,
        "hovertemplate": f"column %{{x}}, row %{{y}} (from 0)<br>{hover} %{{z:.3f}}<extra></extra>",
        "name": "image",
    }


def _colorbar(title: str, *, x: float, y: float, length: float) -> dict:
    """A colour legend left-aligned at paper x, centred on paper y, `length` of the paper's height."""
    return {
        "showscale": True,
        "colorbar": {
            "title": {"text": title, "side": "right", "font": {"size": 11}},
            "x": x,
            "xanchor": "left",
            "y": y,
            "yanchor": "middle",
            "len": length,
            "lenmode": "fraction",
            "thickness": 10,
            "tickfont": {"size": 10},
        },
    }


def window_pad(height: int, width: int) -> int:
    """Pixels of padding shown on every side of an image that carries attention windows: 15% of its larger side,
    at least 2, so a window reaching a little past the image is drawn whole."""
    return max(2, round(0.15 * max(height, width)))


def _view(height: int, width: int, pad: float) -> tuple[float, float, float, float]:
    """(x lo, x hi, y lo, y hi) in image coordinates of an image shown with `pad` pixels around it."""
    return -0.5 - pad, width - 0.5 + pad, -0.5 - pad, height - 0.5 + pad


def _clip_box(
    box: tuple[float, float, float, float], view: tuple[float, float, float, float], inset: float
) -> tuple[tuple[float, float, float, float], tuple[bool, bool, bool, bool]]:
    """A rectangle (x0, y0, x1, y1) clamped to `inset` inside the view (x lo, x hi, y lo, y hi), and which of its
    sides (left, top, right, bottom) had to move: a clipped window's border runs along the view's edge."""
    x_lo, x_hi, y_lo, y_hi = view
    x0, x1 = (min(max(v, x_lo + inset), x_hi - inset) for v in (box[0], box[2]))
    y0, y1 = (min(max(v, y_lo + inset), y_hi - inset) for v in (box[1], box[3]))
    clipped = (x0 != box[0], y0 != box[1], x1 != box[2], y1 != box[3])
    return (x0, y0, x1, y1), clipped


def _image_frame(height: int, width: int, xref: str = "x", yref: str = "y") -> dict:
    """The dotted outline of a padded image's own pixels (a layout shape: it never moves)."""
    return {
        "type": "rect",
        "x0": -0.5,
        "y0": -0.5,
        "x1": width - 0.5,
        "y1": height - 0.5,
        "xref": xref,
        "yref": yref,
        "name": "image-frame",
        "line": {"color": FRAME_COLOUR, "width": 1, "dash": "dot"},
        "fillcolor": "rgba(0,0,0,0)",
        "layer": "above",
    }


def image_figure(
    image,
    *,
    title: str | None = None,
    zmin: float = 0.0,
    zmax: float = 1.0,
    colorscale: list = GREY,
    size: int = IMAGE_PIXELS,
    hover: str = "value",
    pad: int = 0,
    colorbar: str | None = None,
) -> go.Figure:
    """A heatmap of one image (H, W) or (C, H, W), y axis down, square pixels, its view `size` pixels wide. A colour
    image (3, H, W) in the GREY scale is drawn in its colours instead: an "image" trace of RGB pixels (0..255 over
    [zmin, zmax]), with no colour legend; other scales average the channels.

    `pad` > 0 shows that many pixels of PAD_COLOUR around the image (for windows reaching past it, see
    `window_pad`); `colorbar` titles a colour legend to the right of the image (None: no legend)."""
    rgb = _colour(image, zmin, zmax) if colorscale == GREY else None
    pixels = _plane(image) if rgb is None else None
    H, W = (pixels if rgb is None else rgb).shape[:2]
    colorbar = colorbar if rgb is None else None
    margin_top = 30 if title else 4
    legend = COLORBAR_PIXELS if colorbar else 0
    x_lo, x_hi, y_lo, y_hi = _view(H, W, pad)
    axis = {"visible": False, "constrain": "domain"}
    layout = {
        "width": size + legend,
        "height": round(size * (y_hi - y_lo) / (x_hi - x_lo)) + margin_top + 4,
        "margin": {"l": 4, "r": 4 + legend, "t": margin_top, "b": 4},
        "showlegend": False,
        "plot_bgcolor": PAD_COLOUR if pad else "black",
        "xaxis": {"range": [x_lo, x_hi], **axis},
        "yaxis": {"range": [y_hi, y_lo], "scaleanchor": "x", **axis},
        "shapes": [_image_frame(H, W)] if pad else [],
        **_title(title),
    }
    if rgb is not None:
        picture = {
            "type": "image",
            "z": rgb.tolist(),  # (H, W, 3) as nested lists, the form plotly.js reads for an image trace
            "colormodel": "rgb",
            "hovertemplate": "column %{x}, row %{y} (from 0)<br>RGB %{z}<extra></extra>",
            "name": "image",
        }
        return _figure([picture], layout)
    heatmap = _heatmap(pixels, zmin, zmax, colorscale, hover)
    if colorbar:
        heatmap.update(_colorbar(colorbar, x=1.0 + 8 / (size - 8), y=0.5, length=1.0))
    return _figure([heatmap], layout)


def signed_image_figure(
    image, *, title: str | None = None, size: int = IMAGE_PIXELS, pad: int = 0, colorbar: str = "value"
) -> go.Figure:
    """An image of signed values in [-1, 1] (error images, canvas changes): blue negative, white 0, red positive,
    with its colour legend."""
    return image_figure(
        image, title=title, zmin=-1.0, zmax=1.0, colorscale=SIGNED, size=size, pad=pad, colorbar=colorbar
    )


def _window_trace(
    box: tuple[float, float, float, float],
    sigma: float,
    *,
    kind: str,
    view: tuple[float, float, float, float],
    screen: float,
    axes: tuple[str, str] = ("x", "y"),
) -> dict:
    """A window's rectangle `box` (x0, y0, x1, y1) as a closed line trace "<kind>-window", clipped to `view`.

    The border is window_line_width(sigma) image pixels wide (`screen` screen pixels each); the rectangle is
    clipped half a border inside the view, so a clipped edge is drawn whole along the view's edge, and a clipped
    window is dotted: it goes on past what is shown."""
    (x0, y0, x1, y1), clipped = _clip_box(box, view, window_line_width(sigma) / 2)
    return {
        "type": "scatter",
        "x": [x0, x1, x1, x0, x0],
        "y": [y0, y0, y1, y1, y0],
        "xaxis": axes[0],
        "yaxis": axes[1],
        "mode": "lines",
        "name": f"{kind}-window",
        "line": {
            "color": WINDOW_COLOURS[kind],
            "width": window_line_width(sigma) * screen,
            "dash": "dot" if any(clipped) else "solid",
        },
        "hoverinfo": "skip",
        "showlegend": False,
    }


def _param_hover(params: AttentionParams | None, index=()) -> str:
    """gX, gY, delta, sigma, gamma of params[index] as hover lines (empty without params)."""
    if params is None:
        return ""
    series = param_series(params)
    return "<br>".join(f"{PARAM_LABELS[k]} = {float(v[index]):.3f}" for k, v in series.items()) + "<br>"


def _centres_trace(centres_x, centres_y, *, kind: str, described: str, axes: tuple[str, str] = ("x", "y")) -> dict:
    """The N x N grid centres (centres_x, centres_y of shape (N,)) as markers that hover the window's parameters."""
    xs, ys = np.meshgrid(_numpy(centres_x), _numpy(centres_y))  # (N, N) each
    return {
        "type": "scatter",
        "x": xs.ravel(),
        "y": ys.ravel(),
        "customdata": np.stack([xs.ravel(), ys.ravel()], axis=-1) + 1,  # the paper's pixel numbers a, b (from 1)
        "xaxis": axes[0],
        "yaxis": axes[1],
        "mode": "markers",
        "name": f"{kind}-centres",
        "marker": {"color": WINDOW_COLOURS[kind], "size": 6, "line": {"color": "white", "width": 1}},
        "hovertemplate": (
            f"{kind} grid centre at pixel a = %{{customdata[0]:.2f}}, b = %{{customdata[1]:.2f}} (eqs 19-20, from 1)"
            f"<br>{described}<extra></extra>"
        ),
        "showlegend": False,
    }


def add_window(
    fig: go.Figure,
    window: WindowGeometry,
    *,
    kind: str = "write",
    params: AttentionParams | None = None,
    show_centres: bool = False,
) -> go.Figure:
    """Draw one attention window (fields of `window` are scalars) on an image figure, as in Fig. 1.

    The rectangle runs through the first and last grid centres, clipped to the figure's view (pad the image with
    image_figure(pad=window_pad(H, W)) so windows reaching past it show); its border width is
    render.window_line_width(sigma) image pixels, so it grows with the precision 1/sigma. With `show_centres`, the
    N x N grid centres are markers whose hover shows `params` (the AttentionParams the window came from, in the
    paper's 1-based pixel units).
    """
    if kind not in WINDOW_COLOURS:
        raise ValueError(f"kind must be one of {sorted(WINDOW_COLOURS)}, got {kind!r}")
    if window.x0.dim() != 0:
        raise ValueError(f"add_window draws one window: its fields must be scalars, got shape {tuple(window.x0.shape)}")
    x_lo, x_hi = fig.layout.xaxis.range
    y_hi, y_lo = fig.layout.yaxis.range
    margin = fig.layout.margin
    screen = (fig.layout.width - margin.l - margin.r) / (x_hi - x_lo)
    box = tuple(_float(v) for v in (window.x0, window.y0, window.x1, window.y1))
    fig.add_trace(_window_trace(box, _float(window.sigma), kind=kind, view=(x_lo, x_hi, y_lo, y_hi), screen=screen))
    if show_centres:
        fig.add_trace(_centres_trace(window.centres_x, window.centres_y, kind=kind, described=_param_hover(params)))
    return fig


def spec_array(value) -> np.ndarray:
    """An array of a figure spec: a plain list, or Plotly's typed array {'dtype', 'bdata', 'shape'} (base64)."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return array.reshape([int(size) for size in str(shape).split(",")]) if shape else array
    return np.asarray(value)


def window_outline(data: list[dict], kind: str = "write", *, axes: str | None = None) -> dict | None:
    """The "<kind>-window" trace among a figure's or a frame's traces (on x axis `axes`, any when None), or None."""
    for trace in data:
        if trace.get("name") == f"{kind}-window" and axes in (None, trace.get("xaxis", "x")):
            return trace
    return None


def window_box(data: list[dict], kind: str = "write", *, axes: str | None = None) -> tuple[float, ...] | None:
    """(x0, y0, x1, y1) of the "<kind>-window" rectangle among `data` (see window_outline), or None."""
    trace = window_outline(data, kind, axes=axes)
    if trace is None:
        return None
    xs, ys = spec_array(trace["x"]), spec_array(trace["y"])
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def param_series(params: AttentionParams) -> dict[str, np.ndarray]:
    """gX, gY, delta, sigma, gamma of params (any shape), as arrays of that shape."""
    return {
        "gx": _numpy(params.gx),
        "gy": _numpy(params.gy),
        "delta": _numpy(params.delta),
        "sigma": _numpy(params.sigma2.sqrt()),
        "gamma": _numpy(params.gamma),
    }


def _line(x, y, name: str, hover: str, **extra) -> dict:
    return {"type": "scatter", "x": x, "y": y, "mode": "lines", "name": name, "hovertemplate": hover, **extra}


def kl_per_step_figure(kl, *, step: int | None = None, title: str | None = "KL per step (nats)") -> go.Figure:
    """Bars of the KL each step spends, kl (T,) in nats; the bar of `step` (1-based) is highlighted."""
    values = _numpy(kl)
    colours = [BAR_COLOUR] * len(values)
    if step is not None and 1 <= step <= len(values):
        colours[step - 1] = STEP_COLOUR
    bar = {
        "type": "bar",
        "x": np.arange(1, len(values) + 1),
        "y": values,
        "marker": {"color": colours},
        "name": "KL",
        "hovertemplate": "step %{x}: %{y:.2f} nats<extra></extra>",
    }
    layout = _chart_layout(
        title, 260, bargap=0.1, xaxis={"title": {"text": "step t"}}, yaxis={"title": {"text": "nats"}}
    )
    return _figure([bar], layout)


KL_COLOUR = "#ff7f0e"  # the KL term L^z and its own axis on the loss chart
TEST_COLOUR = "#2ca02c"  # test figures (bound, error) on training charts


def _history(steps, *series) -> tuple[np.ndarray, ...]:
    """Steps (as integers) and series of the same length, as arrays; a ValueError naming the lengths otherwise."""
    arrays = [_numpy(steps).astype(np.int64), *(_numpy(values) for values in series)]
    if len({len(array) for array in arrays}) > 1:
        raise ValueError(f"steps and values must have the same length, got {[len(array) for array in arrays]}")
    return tuple(arrays)


def _history_layout(title: str | None, yaxis: dict, **extra) -> dict:
    """Layout of a chart over training steps: the legend in one row under the step axis."""
    layout = _chart_layout(
        title,
        340,
        legend={"orientation": "h", "x": 0, "y": -0.22, "yanchor": "top"},
        xaxis={"title": {"text": "training step"}},
        yaxis=yaxis,
        **extra,
    )
    layout["margin"]["b"] = 90  # room for the axis title and the legend under it
    return layout


def _test_points(steps, values, name: str, hover: str, **extra) -> list[dict]:
    """Test figures measured during training as a line of markers (none when there are none yet)."""
    steps, values = _history(steps, values)
    if not len(steps):
        return []
    marker = {"color": TEST_COLOUR, "size": 8, "symbol": "diamond"}
    return [
        _line(steps, values, name, hover, mode="lines+markers", marker=marker, line={"color": TEST_COLOUR}, **extra)
    ]


def loss_history_figure(
    steps,
    recon,
    kl,
    *,
    test_steps=(),
    test_values=(),
    title: str | None = "Training loss (nats per image)",
) -> go.Figure:
    """The training batches' loss over optimisation steps: the reconstruction term L^x (eq. 9, trace
    "reconstruction") and the sum L (eq. 12, "total") on the left axis, the KL term L^z (eq. 11, "KL") on its own
    axis on the right (tens of nats beside hundreds, it would lie flat on theirs), and the test bound -ELBO measured
    at `test_steps` ("test bound", left axis)."""
    steps, recon, kl = _history(steps, recon, kl)
    lines = (
        ("total", "L = L<sup>x</sup> + L<sup>z</sup>", recon + kl, {"dash": "dot", "color": "#1f77b4"}, "y"),
        ("reconstruction", "L<sup>x</sup>", recon, {"color": "#1f77b4"}, "y"),
        ("KL", "L<sup>z</sup>, right axis", kl, {"color": KL_COLOUR}, "y2"),
    )
    data = [
        _line(
            steps, values, name, f"{name} {symbol}<br>step %{{x}}: %{{y:.2f}} nats<extra></extra>", line=line, yaxis=y
        )
        for name, symbol, values, line, y in lines
    ]
    data += _test_points(
        test_steps, test_values, "test bound", "test bound −ELBO<br>step %{x}: %{y:.2f} nats<extra></extra>"
    )
    kl_axis = {
        "title": {"text": "L<sup>z</sup> nats", "font": {"color": KL_COLOUR}},
        "tickfont": {"color": KL_COLOUR},
        "overlaying": "y",
        "side": "right",
        "showgrid": False,
        "tickmode": "auto",  # its own round numbers, not ticks lined up with the left axis's grid
        "rangemode": "tozero",
    }
    layout = _history_layout(title, {"title": {"text": "L, L<sup>x</sup> nats"}}, yaxis2=kl_axis)
    layout["margin"]["r"] = 50  # room for the right axis
    return _figure(data, layout)


def running_mean(values, window: int) -> np.ndarray:
    """Mean of each value and the window - 1 before it (fewer at the start): a noisy per-batch series, smoothed."""
    values = _numpy(values).astype(np.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    sums = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (sums[ends] - sums[starts]) / (ends - starts)


def error_history_figure(
    steps,
    errors,
    *,
    test_steps=(),
    test_errors=(),
    window: int = 20,
    title: str | None = "Error (fraction of images misclassified)",
) -> go.Figure:
    """A classifier's error over optimisation steps: each training batch's ("batch error", faint), their running
    mean over `window` reports ("running mean") and the test error measured at `test_steps` ("test error")."""
    steps, errors = _history(steps, errors)
    hover = "step %{x}: %{y:.1%}<extra></extra>"
    data = [
        _line(steps, errors, "batch error", "batch error<br>" + hover, line={"color": "#1f77b4"}, opacity=0.35),
        _line(
            steps,
            running_mean(errors, window),
            "running mean",
            f"mean of {window} reports<br>" + hover,
            line={"color": "#1f77b4", "width": 2.5},
        ),
        *_test_points(test_steps, test_errors, "test error", "test error<br>" + hover),
    ]
    layout = _history_layout(title, {"title": {"text": "error"}, "tickformat": ".0%", "rangemode": "tozero"})
    return _figure(data, layout)


def training_curves_figure(steps, curves: dict, *, unit: str = "nats", title: str | None = None) -> go.Figure:
    """One line per named series of per-batch figures over optimisation steps (e.g. RAM's cross-entropy, REINFORCE
    and baseline terms), all on one axis in `unit`."""
    data = []
    for name, values in curves.items():
        x, y = _history(steps, values)
        data.append(_line(x, y, name, f"{name}<br>step %{{x}}: %{{y:.3f}} {unit}<extra></extra>"))
    layout = _history_layout(title, {"title": {"text": unit}})
    return _figure(data, layout)


def sample_strip_figure(steps, rows, *, title: str | None = None, size: int = 420, padding: int = 1) -> go.Figure:
    """Samples of the same fixed z decoded at several training steps: rows (R, n, C, H, W), row r made with the
    weights of steps[r], one row under the other with its step named on the left; `size` is the strip's width."""
    rows = torch.as_tensor(rows)
    if rows.dim() != 5 or len(rows) != len(steps):
        raise ValueError(
            f"rows must have shape (R, n, C, H, W) with R = len(steps) = {len(steps)}, got {tuple(rows.shape)}"
        )
    R, n, _, H, _ = rows.shape
    fig = image_figure(tile(rows.flatten(0, 1), nrow=n, padding=padding), title=title, size=size)
    centres = [padding + r * (H + padding) + (H - 1) / 2 for r in range(R)]  # make_grid puts row r there
    labels = 66  # screen pixels added on the left for the step labels
    fig.update_layout(
        width=fig.layout.width + labels,
        margin={"l": fig.layout.margin.l + labels},
        yaxis={
            "visible": True,
            "tickmode": "array",
            "tickvals": centres,
            "ticktext": [f"step {int(step):,}" for step in steps],
            "showgrid": False,
            "zeroline": False,
            "ticks": "",
        },
    )
    return fig


def kl_curves_figure(curves: dict[str, list[float]], *, title: str | None = "KL per step") -> go.Figure:
    """One line per named model: mean KL (nats) spent at each step t."""
    data = [
        _line(
            np.arange(1, len(values) + 1),
            _numpy(values),
            name,
            f"{name}<br>step %{{x}}: %{{y:.2f}} nats<extra></extra>",
            mode="lines+markers",
        )
        for name, values in curves.items()
    ]
    layout = _chart_layout(
        title, 300, xaxis={"title": {"text": "step t"}, "tickformat": "d"}, yaxis={"title": {"text": "nats"}}
    )
    return _figure(data, layout)


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


TITLE_PIXELS = 22  # height of a panel's title above it
MARKER_PIXELS = 2  # width of the current step's line on a chart over t
ITEM_GAP = 24  # screen pixels between the panels and charts of a timeline's row
ROW_GAP = 44  # screen pixels between a timeline's rows (a chart's step axis and its title sit there)
AXIS_PIXELS = 40  # screen pixels a chart keeps at its left for its y axis' ticks and title
RETINA_COLOUR = "#ffab00"  # amber: RAM's retina patches, apart from DRAW's green read window
OVERLAY_COLOURS = {**WINDOW_COLOURS, "retina": RETINA_COLOUR}  # what a timeline's image panel can have drawn on it
BAR_COLOURS = {"label": "#00c853", "answer": "#ff1744", "other": "#90a4ae"}  # true class, a wrong answer, the rest


def _rgb(colour: str) -> tuple[int, int, int]:
    """(r, g, b) of 'rgb(r,g,b)' or '#rrggbb'."""
    if colour.startswith("#"):
        return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return tuple(int(v) for v in colour[colour.index("(") + 1 : colour.index(")")].split(","))


LEVELS = 255  # colours a panel's picture can show; its palette's last entry is PAD_COLOUR


def _palette(colorscale: list) -> list[int]:
    """A picture palette: LEVELS colours evenly along a written-out colour scale [[position, colour], ...], as
    Plotly would interpolate them, then PAD_COLOUR; flat [r, g, b, ...]."""
    positions = [position for position, _ in colorscale]
    colours = np.array([_rgb(colour) for _, colour in colorscale], dtype=np.float64)  # (K, 3)
    where = np.linspace(0.0, 1.0, LEVELS)
    levels = np.stack([np.interp(where, positions, colours[:, k]) for k in range(3)], axis=1).round()  # (LEVELS, 3)
    return [int(v) for v in levels.ravel()] + list(_rgb(PAD_COLOUR))


def _data_url(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _solid(colour: str) -> str:
    """A one-pixel PNG of `colour`, stretched by a layout image into a line or a bar."""
    return _data_url(Image.new("RGB", (1, 1), _rgb(colour)))


@dataclass(frozen=True)
class _Overlay:
    """What is drawn onto one image panel at one step: a rectangle of `kind` (an OVERLAY_COLOURS key), its box
    (x0, y0, x1, y1), its border `width` in image pixels and, when given, its grid centres (xs, ys of shape (N,))."""

    kind: str
    box: tuple[float, float, float, float]
    width: float
    centres: tuple[np.ndarray, np.ndarray] | None = None


def _picture(pixels: np.ndarray, zmin: float, zmax: float, palette: list[int], pad: int, scale: int) -> str:
    """An image panel's pixels (H, W) coloured through `palette` (see _palette) over [zmin, zmax], on `pad` pixels
    of PAD_COLOUR, each pixel a `scale` x `scale` square: a PNG data URL (a palette picture, so flat areas cost
    little and the browser only ever shrinks it a little, which keeps pixels square-edged)."""
    H, W = pixels.shape
    level = np.clip((pixels - zmin) / max(zmax - zmin, 1e-12), 0.0, 1.0) * (LEVELS - 1)  # (H, W)
    index = np.full((H + 2 * pad, W + 2 * pad), LEVELS, dtype=np.uint8)  # the pad's palette entry
    index[pad : pad + H, pad : pad + W] = np.rint(level).astype(np.uint8)
    picture = Image.fromarray(index.repeat(scale, axis=0).repeat(scale, axis=1), mode="P")
    picture.putpalette(palette)
    return _data_url(picture)


def _colour_picture(pixels: np.ndarray, zmin: float, zmax: float, pad: int, scale: int) -> str:
    """A colour image panel's pixels (3, H, W), [zmin, zmax] drawn as 0..255 of each of red, green and blue, on
    `pad` pixels of PAD_COLOUR, each pixel a `scale` x `scale` square: an RGB PNG data URL (see _picture)."""
    rgb = _colour(pixels, zmin, zmax)  # (H, W, 3)
    H, W = rgb.shape[:2]
    canvas = np.empty((H + 2 * pad, W + 2 * pad, 3), dtype=np.uint8)
    canvas[...] = _rgb(PAD_COLOUR)
    canvas[pad : pad + H, pad : pad + W] = rgb
    return _data_url(Image.fromarray(canvas.repeat(scale, axis=0).repeat(scale, axis=1), mode="RGB"))


def _windows_picture(view: tuple[float, float, float, float], scale: int, overlays: list[_Overlay]) -> str:
    """A transparent PNG data URL over an image panel's view, `scale` pixels per image pixel, with its rectangles
    drawn as Fig. 1 draws windows (border `width` image pixels wide, clipped to the view and dashed along a
    clipped side) and their grid centres as dots."""
    size = (round((view[1] - view[0]) * scale), round((view[3] - view[2]) * scale))
    picture = Image.new("P", size, 0)  # a palette picture, index 0 transparent: a quarter of RGBA's bytes to encode
    kinds = sorted(OVERLAY_COLOURS)
    picture.putpalette([0, 0, 0, 255, 255, 255, *(v for kind in kinds for v in _rgb(OVERLAY_COLOURS[kind]))])
    picture.info["transparency"] = 0
    ink = {kind: 2 + i for i, kind in enumerate(kinds)}  # palette index of each kind's colour; 1 is white
    draw = ImageDraw.Draw(picture)

    def screen(x: float, y: float) -> np.ndarray:  # image coordinates -> picture pixels
        return np.array([(x - view[0]) * scale, (y - view[2]) * scale])

    for overlay in overlays:
        colour = ink[overlay.kind]
        (x0, y0, x1, y1), clipped = _clip_box(overlay.box, view, overlay.width / 2)
        corners = [screen(x0, y0), screen(x1, y0), screen(x1, y1), screen(x0, y1)]
        line = max(1, round(overlay.width * scale))
        for side, (a, b) in enumerate(
            zip([corners[3], *corners[:3]], corners, strict=True)
        ):  # left, top, right, bottom
            if not clipped[side]:
                draw.line([tuple(a), tuple(b)], fill=colour, width=line)
                continue
            dash = 2 * max(line, 3)  # screen pixels of a dash and its gap
            length = float(np.abs(b - a).max())
            for start in np.arange(0.0, length, dash):
                end = min(start + dash / 2, length)
                draw.line(
                    [tuple(a + (b - a) * start / length), tuple(a + (b - a) * end / length)], fill=colour, width=line
                )
        if overlay.centres is not None:
            radius = max(1.5, 0.3 * scale)
            for cy in overlay.centres[1]:
                for cx in overlay.centres[0]:
                    px, py = screen(float(cx), float(cy))
                    draw.ellipse([px - radius, py - radius, px + radius, py + radius], fill=colour, outline=1)
    return _data_url(picture)


def window_label(window: Window, t: int) -> str:
    """Step t's window in words: 'g_X 14.2, g_Y 9.8, δ 2.10, σ 0.81 px, γ 0.050'."""
    values = param_series(window.params)
    return (
        f"g_X {values['gx'][t]:.1f}, g_Y {values['gy'][t]:.1f}, δ {values['delta'][t]:.2f}, "
        f"σ {values['sigma'][t]:.2f} px, γ {values['gamma'][t]:.3g}"
    )


def bar_colours(probabilities: np.ndarray, label: int | None) -> list[str]:
    """The colour of each class's bar (K,): the true class `label` green, the highest class red when it is not the
    label, the rest grey."""
    colours = [BAR_COLOURS["other"]] * len(probabilities)
    colours[int(probabilities.argmax())] = BAR_COLOURS["answer"]
    if label is not None:
        colours[label] = BAR_COLOURS["label"]
    return colours


# --- the pieces of a timeline (timeline_figure) ------------------------------------------------------------------


@dataclass(frozen=True)
class Squares:
    """Squares drawn on an image panel at every step of a timeline, like RAM's retina: boxes (T, S, 4) rows
    (x0, y0, x1, y1) in 0-based image coordinates, square s with a border widths[s] image pixels wide."""

    kind: str  # an OVERLAY_COLOURS key: "retina"
    boxes: np.ndarray  # (T, S, 4)
    widths: tuple[float, ...]  # (S,) border widths, image pixels


@dataclass(frozen=True)
class ImagePanel:
    """An image panel of a timeline: pixels that stay, or move with the step, and what is drawn on them."""

    pixels: np.ndarray  # (H, W) the same at every step, or (T, H, W) one per step; in colour (3, H, W), (T, 3, H, W)
    title: str  # over the panel; also the name of its layout image ("<title> windows" for what is drawn on it)
    size: int  # screen pixels across the image (and its margin)
    zmin: float = 0.0  # the value drawn as the colour scale's first colour
    zmax: float = 1.0  # the value drawn as its last
    colorscale: list | None = None  # a written-out colour scale; None: GREY
    colorbar: str | None = None  # the title of a colour legend right of the panel; None: no legend
    padded: bool = False  # show window_pad pixels of margin so a window reaching past the image shows
    windows: tuple = ()  # ((kind, Window with (T,) fields, whether to dot its grid centres), ...)
    squares: tuple[Squares, ...] = ()  # squares to draw at every step
    colour: bool = False  # pixels hold red, green and blue planes (3, H, W), drawn in their colours (colorscale unused)

    @property
    def pad(self) -> int:
        H, W = self.pixels.shape[-2:]
        return window_pad(H, W) if self.padded else 0

    @property
    def extent(self) -> tuple[float, float]:
        """(width, height) in screen pixels, its colour legend included, its title not."""
        H, W = self.pixels.shape[-2:]
        return self.size + (COLORBAR_PIXELS if self.colorbar else 0), self.size * (H + 2 * self.pad) / (
            W + 2 * self.pad
        )


@dataclass(frozen=True)
class ParamsChart:
    """A window's parameters over t (g_X, g_Y; delta, sigma; gamma on its own axis) with the current step marked."""

    params: AttentionParams  # (T,) fields
    title: str
    width: int  # screen pixels, AXIS_PIXELS of them for the y axes
    height: int

    @property
    def extent(self) -> tuple[float, float]:
        return self.width, self.height


@dataclass(frozen=True)
class KlChart:
    """Bars of the nats each step spends (eq. 11), the current step's bar marked; a click on one goes to its step."""

    kl: np.ndarray  # (T,)
    title: str
    width: int  # screen pixels, AXIS_PIXELS of them for the y axis
    height: int

    @property
    def extent(self) -> tuple[float, float]:
        return self.width, self.height


@dataclass(frozen=True)
class ProbabilityChart:
    """A classifier's class probabilities after each glimpse: K bars that move with the step, coloured as
    bar_colours says, over the faint bars of the last glimpse (the answer)."""

    probabilities: np.ndarray  # (T, K)
    title: str
    width: int  # screen pixels, AXIS_PIXELS of them for the y axis
    height: int
    label: int | None = None  # the true class, when known

    @property
    def extent(self) -> tuple[float, float]:
        return self.width, self.height


class _Timeline:
    """Builds one timeline figure (see the module docstring). Panels are placed in screen pixels within the plot
    area. What moves with the step is only ever a layout image: an image panel's picture (a PNG per step, windows
    drawn in), a chart's step line, the current step's bars; `layout.meta["timeline"]["steps"][t]` is the
    Plotly.relayout update that shows step t + 1, a handful of layout-image attributes, which plotly.js redraws in
    a few milliseconds (animation frames would re-run the whole figure, 200-300 ms a step)."""

    def __init__(self, T: int, width: int, height: int, *, title: str | None):
        self.T, self.width, self.height = T, width, height  # width, height: the plot area in screen pixels
        self.traces: list[dict] = []
        self.images: list[dict] = []  # layout images, shown at the initial step
        self.moving: list[tuple[int, str, list]] = []  # (image index, attribute, its value at each step)
        self.annotations: list[dict] = []
        self.shapes: list[dict] = []
        self.axes: dict[str, dict] = {}  # layout key ("xaxis2") -> axis
        self.top = 40 if title else 10
        self.title = title

    def _paper_x(self, px: float) -> float:
        return px / self.width

    def _paper_y(self, px: float) -> float:
        """Paper y of a point `px` screen pixels below the plot area's top."""
        return 1 - px / self.height

    def _new_axis(self, letter: str, **axis) -> str:
        """Add the next x or y axis (`letter`) to the layout; returns its trace name ("x3")."""
        n = sum(key.startswith(letter) for key in self.axes) + 1
        suffix = "" if n == 1 else str(n)
        self.axes[f"{letter}axis{suffix}"] = axis
        return f"{letter}{suffix}"

    def _image(self, image: dict, **moving: list) -> None:
        """A layout image; `moving` gives, per attribute, its value at each step."""
        self.images.append(image)
        self.moving += [(len(self.images) - 1, attribute, values) for attribute, values in moving.items()]

    def caption(self, text: str, left: float, top: float, width: float) -> None:
        """A panel's title, centred over [left, left + width], its baseline `top` pixels below the area's top."""
        self.annotations.append(
            {
                "text": text,
                "x": self._paper_x(left + width / 2),
                "y": self._paper_y(top - 4),
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 12},
            }
        )

    def panel(self, panel: ImagePanel, *, left: float, top: float) -> None:
        """An image panel (see ImagePanel) with its top-left corner at (left, top) screen pixels."""
        pixels, size, pad = panel.pixels, panel.size, panel.pad
        colorscale = panel.colorscale or GREY
        H, W = pixels.shape[-2:]
        view = _view(H, W, pad)
        height = panel.extent[1]
        axis = {"visible": False, "constrain": "domain", "fixedrange": True}
        x = self._new_axis(
            "x", domain=[self._paper_x(left), self._paper_x(left + size)], range=[view[0], view[1]], **axis
        )
        y = self._new_axis(
            "y",
            domain=[self._paper_y(top + height), self._paper_y(top)],
            range=[view[3], view[2]],
            scaleanchor=x,
            **axis,
        )
        self.axes["xaxis" + x[1:]]["anchor"], self.axes["yaxis" + y[1:]]["anchor"] = y, x
        self.caption(panel.title, left, top, size)
        if pad:
            self.shapes.append(_image_frame(H, W, x, y))
        if panel.colorbar:  # a colour legend needs a trace: a two-cell heatmap of the range, out of sight
            self.traces.append(
                {
                    "type": "heatmap",
                    "z": [[panel.zmin, panel.zmax]],
                    "x": [view[0] - 10, view[0] - 9],
                    "y": [view[2] - 10],
                    "xaxis": x,
                    "yaxis": y,
                    "zmin": panel.zmin,
                    "zmax": panel.zmax,
                    "colorscale": colorscale,
                    "hoverinfo": "skip",
                    "name": "legend",
                    **_colorbar(
                        panel.colorbar,
                        x=self._paper_x(left + size + 6),
                        y=self._paper_y(top + height / 2),
                        length=height / self.height,
                    ),
                }
            )
        over_view = {  # the pixels go in the layer below the plot, their windows above: plotly.js tells layout
            "xref": x,  # images of one layer apart by their place, and these two share it
            "yref": y,
            "x": view[0],
            "y": view[2],
            "sizex": view[1] - view[0],
            "sizey": view[3] - view[2],
            "xanchor": "left",
            "yanchor": "top",
            "sizing": "stretch",
            "layer": "below",
        }
        scale = max(1, math.ceil(size / (view[1] - view[0])))  # picture pixels per image pixel: at least the screen's
        moves = pixels.ndim == (4 if panel.colour else 3)  # one picture per step
        planes = pixels if moves else pixels[None]
        if panel.colour:
            sources = [_colour_picture(plane, panel.zmin, panel.zmax, pad, scale) for plane in planes]
        else:
            palette = _palette(colorscale)
            sources = [_picture(plane, panel.zmin, panel.zmax, palette, pad, scale) for plane in planes]
        self._image({**over_view, "source": sources[0], "name": panel.title}, **({"source": sources} if moves else {}))
        if not panel.windows and not panel.squares:
            return
        tracks = [
            (kind, np.stack([_numpy(v) for v in (g.x0, g.y0, g.x1, g.y1)], axis=1), _numpy(g.sigma), g, centres)
            for kind, g, centres in ((kind, window.geometry, centres) for kind, window, centres in panel.windows)
        ]  # (kind, boxes (T, 4), sigma (T,), geometry, whether to dot the centres)
        overlays = [
            _windows_picture(
                view,
                scale,
                [
                    _Overlay(
                        kind,
                        tuple(float(v) for v in boxes[t]),
                        window_line_width(float(sigma[t])),
                        (_numpy(g.centres_x[t]), _numpy(g.centres_y[t])) if centres else None,
                    )
                    for kind, boxes, sigma, g, centres in tracks
                ]
                + [
                    _Overlay(squares.kind, tuple(float(v) for v in box), width)
                    for squares in panel.squares
                    for box, width in zip(_numpy(squares.boxes)[t], squares.widths, strict=True)
                ],
            )
            for t in range(self.T)
        ]
        self._image(
            {**over_view, "source": overlays[0], "layer": "above", "name": f"{panel.title} windows"}, source=overlays
        )

    def _chart_axis(self, left: float, width: float) -> str:
        """A chart's x axis over the steps t = 1..T, spanning [left, left + width] pixels."""
        return self._new_axis(
            "x",
            domain=[self._paper_x(left), self._paper_x(left + width)],
            range=[0.5, self.T + 0.5],
            title={"text": "step t", "font": {"size": 11}, "standoff": 4},
            tickfont={"size": 10},
            fixedrange=True,
        )

    def _y_axis(self, x: str, top: float, height: float, **extra) -> str:
        """A y axis of chart x spanning [top, top + height] pixels."""
        return self._new_axis(
            "y",
            domain=[self._paper_y(top + height), self._paper_y(top)],
            anchor=x,
            tickfont={"size": 10},
            fixedrange=True,
            **extra,
        )

    def step_line(self, x: str, top: float, height: float, width: float) -> None:
        """The current step as a vertical line across a chart [top, top + height] pixels, `width` pixels wide."""
        self._image(
            {
                "source": _solid(STEP_COLOUR),
                "xref": x,
                "yref": "paper",
                "x": 1,
                "y": self._paper_y(top),
                "sizex": MARKER_PIXELS * self.T / width,
                "sizey": height / self.height,
                "xanchor": "center",
                "yanchor": "top",
                "sizing": "stretch",
                "layer": "above",
                "opacity": 0.8,
                "name": "step-line",
            },
            x=list(range(1, self.T + 1)),
        )

    def params_chart(self, chart: ParamsChart, *, left: float, top: float) -> None:
        """The window's parameters over t, three rows sharing the step axis: position g_X, g_Y and scale delta, sigma
        in pixels, intensity gamma on its own axis; a line marks the current step."""
        height = chart.height
        self.caption(chart.title, left, top, chart.width)
        left, width = left + AXIS_PIXELS, chart.width - AXIS_PIXELS
        x = self._chart_axis(left, width)
        series = param_series(chart.params)
        steps = np.arange(1, self.T + 1)
        rows = (("gx", "gy"), ("delta", "sigma"), ("gamma",))
        gap = 10
        row_height = (height - 2 * gap) / 3
        for r, names in enumerate(rows):
            label = ", ".join(f"<span style='color:{PARAM_COLOURS[k]}'>{PARAM_LABELS[k]}</span>" for k in names)
            y = self._y_axis(
                x,
                top + r * (row_height + gap),
                row_height,
                title={"text": label + (" (px)" if names != ("gamma",) else ""), "font": {"size": 11}, "standoff": 2},
                rangemode="tozero" if names == ("gamma",) else "normal",
                zeroline=False,
            )
            for name in names:
                self.traces.append(
                    _line(
                        steps,
                        series[name],
                        PARAM_LABELS[name],
                        f"t = %{{x}}: {PARAM_LABELS[name]} = %{{y:.3f}}<br>click to go to this step<extra></extra>",
                        mode="lines+markers",
                        marker={"size": 4, "color": PARAM_COLOURS[name]},
                        line={"color": PARAM_COLOURS[name], "width": 1.5},
                        customdata=steps,
                        xaxis=x,
                        yaxis=y,
                    )
                )
        self.axes["xaxis" + x[1:]]["anchor"] = y  # the step axis along the bottom row
        self.step_line(x, top, height, width)

    def kl_chart(self, chart: KlChart, *, left: float, top: float) -> None:
        """Bars of the nats each step spends (eq. 11), the current step's bar drawn over in the step colour."""
        kl = _numpy(chart.kl)
        self.caption(chart.title, left, top, chart.width)
        x = self._chart_axis(left + AXIS_PIXELS, chart.width - AXIS_PIXELS)
        y = self._y_axis(
            x, top, chart.height, title={"text": "nats", "font": {"size": 11}, "standoff": 2}, rangemode="tozero"
        )
        self.axes["xaxis" + x[1:]]["anchor"] = y
        steps = np.arange(1, self.T + 1)
        self.traces.append(
            {
                "type": "bar",
                "x": steps,
                "y": kl,
                "xaxis": x,
                "yaxis": y,
                "customdata": steps,
                "marker": {"color": BAR_COLOUR},
                "name": "KL",
                "hovertemplate": "step %{x}: %{y:.2f} nats<br>click to go to this step<extra></extra>",
            }
        )
        self._image(
            {
                "source": _solid(STEP_COLOUR),
                "xref": x,
                "yref": y,
                "x": 1,
                "y": 0,
                "sizex": 0.9,
                "sizey": float(kl[0]),
                "xanchor": "center",
                "yanchor": "bottom",
                "sizing": "stretch",
                "layer": "above",
                "name": "step-bar",
            },
            x=list(range(1, self.T + 1)),
            sizey=[float(v) for v in kl],
        )

    def probability_chart(self, chart: ProbabilityChart, *, left: float, top: float) -> None:
        """Class probabilities after each glimpse: one layout image per class k (named "<title> · class <k>") whose
        height and colour move with the step, over a faint bar trace of the last glimpse's probabilities."""
        probabilities = _numpy(chart.probabilities)  # (T, K)
        K = probabilities.shape[1]
        self.caption(chart.title, left, top, chart.width)
        x = self._new_axis(
            "x",
            domain=[self._paper_x(left + AXIS_PIXELS), self._paper_x(left + chart.width)],
            range=[-0.5, K - 0.5],
            dtick=1,
            tickfont={"size": 10},
            fixedrange=True,
        )
        y = self._y_axis(x, top, chart.height, range=[0, 1], title={"text": "p", "font": {"size": 11}, "standoff": 2})
        self.axes["xaxis" + x[1:]]["anchor"] = y
        self.traces.append(
            {
                "type": "bar",
                "x": np.arange(K),
                "y": probabilities[-1],
                "xaxis": x,
                "yaxis": y,
                "marker": {"color": "rgba(144,164,174,0.25)"},
                "name": "after the last glimpse",
                "hovertemplate": "class %{x}: p = %{y:.3f} after the last glimpse<extra></extra>",
            }
        )
        colours = [bar_colours(p, chart.label) for p in probabilities]  # (T, K)
        for k in range(K):
            sources = [_solid(colours[t][k]) for t in range(self.T)]
            self._image(
                {
                    "source": sources[0],
                    "xref": x,
                    "yref": y,
                    "x": k,
                    "y": 0,
                    "sizex": 0.8,
                    "sizey": float(probabilities[0, k]),
                    "xanchor": "center",
                    "yanchor": "bottom",
                    "sizing": "stretch",
                    "layer": "above",
                    "name": f"{chart.title} · class {k}",
                },
                sizey=[float(p) for p in probabilities[:, k]],
                **({"source": sources} if len(set(sources)) > 1 else {}),  # a colour that changes with the step
            )

    def place(self, item, *, left: float, top: float) -> None:
        if isinstance(item, ImagePanel):
            self.panel(item, left=left, top=top)
        elif isinstance(item, ParamsChart):
            self.params_chart(item, left=left, top=top)
        elif isinstance(item, KlChart):
            self.kl_chart(item, left=left, top=top)
        elif isinstance(item, ProbabilityChart):
            self.probability_chart(item, left=left, top=top)
        else:
            raise TypeError(f"a timeline holds ImagePanel, ParamsChart, KlChart and ProbabilityChart, got {item!r}")

    def figure(self, initial: int, labels: list[str]) -> go.Figure:
        """The figure at step `initial` (1-based); its layout.meta["timeline"] holds every step (see the class) and
        `labels`, one line per step saying what it shows."""
        if not 1 <= initial <= self.T:
            raise ValueError(f"initial must be a step in 1..{self.T}, got {initial}")
        if len(labels) != self.T:
            raise ValueError(f"labels must give one line per step ({self.T}), got {len(labels)}")
        steps = [
            {f"images[{index}].{attribute}": values[t] for index, attribute, values in self.moving}
            for t in range(self.T)
        ]
        images = [dict(image) for image in self.images]
        for index, attribute, values in self.moving:
            images[index][attribute] = values[initial - 1]
        layout = {
            "width": self.width + 20,
            "height": self.top + self.height + 10,
            "margin": {"l": 10, "r": 10, "t": self.top, "b": 10},
            "showlegend": False,
            "hovermode": "closest",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "bargap": 0.1,
            "annotations": self.annotations,
            "shapes": self.shapes,
            "images": images,
            **self.axes,
            **_title(self.title),
            "meta": {"timeline": {"T": self.T, "initial": initial, "steps": steps, "labels": labels}},
        }
        return _figure(self.traces, layout)


def timeline_figure(
    rows: list[list], *, T: int, labels: list[str], initial: int | None = None, title: str | None = None
) -> go.Figure:
    """A timeline over t = 1..T (see the module docstring): `rows` of pieces (ImagePanel, ParamsChart, KlChart,
    ProbabilityChart) laid out left to right, rows top to bottom, each under its title; every piece that moves with
    the step moves together. `labels`: one line per step saying what it shows; `initial`: the step the figure opens
    on (default T)."""
    extents = [[item.extent for item in row] for row in rows]  # (width, height) of each piece
    width = max(sum(w for w, _ in row) + ITEM_GAP * (len(row) - 1) for row in extents)
    tops, top = [], 0.0
    for row in extents:
        tops.append(top + TITLE_PIXELS)
        top += TITLE_PIXELS + max(h for _, h in row) + ROW_GAP
    timeline = _Timeline(T, round(width), round(top - ROW_GAP + 40), title=title)
    for row, sizes, row_top in zip(rows, extents, tops, strict=True):
        left = 0.0
        for item, (item_width, _) in zip(row, sizes, strict=True):
            timeline.place(item, left=left, top=row_top)
            left += item_width + ITEM_GAP
    return timeline.figure(T if initial is None else initial, labels)


def timeline_steps(spec: dict) -> list[dict]:
    """Every step's update of a timeline figure's spec (`fig.to_dict()` or a parsed Streamlit spec): item t is the
    Plotly.relayout update that shows step t + 1."""
    return spec["layout"]["meta"]["timeline"]["steps"]


def png_pixels(source: str) -> np.ndarray:
    """(h, w, 4) uint8 RGBA pixels of a PNG data URL (a timeline panel's picture or its windows)."""
    data = base64.b64decode(source.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def generation_timeline(
    canvases,
    added,
    window: Window | None,
    *,
    show_centres: bool = False,
    initial: int | None = None,
    size: int = 250,
    title: str | None = None,
) -> go.Figure:
    """One sample's generation over t = 1..T as a timeline (see the module docstring): the canvas sigma(c_t) and
    what step t added, sigma(c_t) - sigma(c_{t-1}) (signed, with its colour legend), both with the write window,
    and the write window's parameters over t with the current step marked.

    canvases, added (T, C, H, W); window: the write window with (T,) fields, or None (no write attention);
    `initial`: the step the figure opens on (default T, the finished sample); `size`: an image panel's width."""
    (canvases, colour), added = _panel_pixels(canvases, steps=True), _planes(added)
    T = len(canvases)
    padded = window is not None
    windows = (("write", window, show_centres),) if window is not None else ()
    canvas = ImagePanel(canvases, "canvas σ(c<sub>t</sub>)", size, padded=padded, windows=windows, colour=colour)
    row = [
        canvas,
        ImagePanel(
            _planes(added),
            "added at t: σ(c<sub>t</sub>) − σ(c<sub>t−1</sub>)",
            size,
            zmin=-1.0,
            zmax=1.0,
            colorscale=SIGNED,
            colorbar="change",
            padded=padded,
            windows=tuple((kind, w, False) for kind, w, _ in windows),
        ),
    ]
    if window is not None:
        row.append(ParamsChart(window.params, "write window over t", 330 + AXIS_PIXELS, round(canvas.extent[1])))
    labels = [
        f"t = {t + 1} of {T}" + (f" · write window: {window_label(window, t)}" if window is not None else "")
        for t in range(T)
    ]
    return timeline_figure([row], T=T, labels=labels, initial=initial, title=title)


def reconstruction_timeline(
    image,
    canvases,
    errors,
    glimpses,
    kl,
    *,
    read: Window | None,
    write: Window | None,
    glimpse_title: str,
    show_centres: bool = False,
    initial: int | None = None,
    size: int = 190,
    title: str | None = None,
) -> go.Figure:
    """One image's reconstruction over t = 1..T as a timeline: the input x with the read window, the error
    x̂_t = x - sigma(c_{t-1}) (signed, legend) with the read window, the canvas sigma(c_t) with the write window, the
    finished sigma(c_T); below, the glimpse read from x and from x̂ (one colour range over all steps, with its
    legend) and the nats each step spends (eq. 11) with the current step's bar marked.

    image (C, H, W); canvases, errors (T, C, H, W); glimpses (T, 2C, h, w) channels [:C] from x, [C:] from x̂;
    kl (T,); read, write: the windows with (T,) fields or None; `size`: an image panel's width."""
    (canvases, colour), errors = _panel_pixels(canvases, steps=True), _planes(errors)
    image = _panel_pixels(image, steps=False)[0]
    glimpses = _numpy(glimpses)
    C = glimpses.shape[1] // 2
    from_x, from_error = glimpses[:, :C].mean(1), glimpses[:, C:].mean(1)  # (T, h, w) each
    kl = _numpy(kl)
    T = len(canvases)
    padded = read is not None or write is not None
    reads = (("read", read, show_centres),) if read is not None else ()
    writes = (("write", write, show_centres),) if write is not None else ()
    images = [
        ImagePanel(image, "input x", size, padded=padded, windows=reads, colour=colour),
        ImagePanel(
            errors,
            "error x̂<sub>t</sub> = x − σ(c<sub>t−1</sub>)",
            size,
            zmin=-1.0,
            zmax=1.0,
            colorscale=SIGNED,
            colorbar="error",
            padded=padded,
            windows=tuple((kind, w, False) for kind, w, _ in reads),
        ),
        ImagePanel(canvases, "canvas σ(c<sub>t</sub>)", size, padded=padded, windows=writes, colour=colour),
        ImagePanel(canvases[-1], f"reconstruction σ(c<sub>{T}</sub>)", size, padded=padded, colour=colour),
    ]
    peak = max(float(np.abs(from_x).max()), 1e-6)  # one range over all steps, so steps compare
    peak_error = max(float(np.abs(from_error).max()), 1e-6)
    reads_row = [
        ImagePanel(from_x, f"read from x: {glimpse_title}", 150, zmax=peak, colorbar="value"),
        ImagePanel(
            from_error,
            "read from x̂ (error)",
            150,
            zmin=-peak_error,
            zmax=peak_error,
            colorscale=SIGNED,
            colorbar="value",
        ),
    ]
    first_width = sum(panel.extent[0] for panel in images) + ITEM_GAP * (len(images) - 1)
    used = sum(panel.extent[0] for panel in reads_row) + ITEM_GAP * len(reads_row)
    chart_height = round(max(reads_row[0].extent[1], 150))
    total = float(kl.sum())
    kl_chart = KlChart(
        kl, f"nats each glimpse spends (total {total:.1f})", round(max(first_width - used, 300)), chart_height
    )
    labels = []
    for t in range(T):
        parts = [f"t = {t + 1} of {T}", f"z_t costs {kl[t]:.2f} nats"]
        if read is not None:
            parts.append(f"read: {window_label(read, t)}")
        if write is not None:
            parts.append(f"write: {window_label(write, t)}")
        labels.append(" · ".join(parts))
    return timeline_figure([images, [*reads_row, kl_chart]], T=T, labels=labels, initial=initial, title=title)


def filterbank_figure(F, *, axis: str, title: str | None = None, size: int = 360) -> go.Figure:
    """Heatmap of one filterbank F (N, A): row i is filter i over the A pixels of the `axis` ('x' or 'y')."""
    weights = _numpy(F)
    if weights.ndim != 2:
        raise ValueError(f"a filterbank must have shape (N, A), got {weights.shape}")
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    N, A = weights.shape
    letter = "a" if axis == "x" else "b"  # the paper's pixel index along x (a) or y (b)
    heatmap = {
        "type": "heatmap",
        "z": weights,
        "x": np.arange(1, A + 1),
        "y": np.arange(1, N + 1),
        "colorscale": WEIGHTS,
        "showscale": False,
        "hovertemplate": f"filter i=%{{y}}, pixel {letter}=%{{x}}<br>weight %{{z:.4f}}<extra></extra>",
    }
    layout = {
        "width": size,
        "height": max(120, 26 * N + 70),
        "margin": {"l": 40, "r": 10, "t": 30 if title else 10, "b": 40},
        "xaxis": {"title": {"text": f"pixel {letter} ({axis})"}},
        "yaxis": {"title": {"text": "filter i"}, "autorange": "reversed", **({"dtick": 1} if N <= 12 else {})},
        **_title(title),
    }
    return _figure([heatmap], layout)


def add_retina(fig: go.Figure, patches) -> go.Figure:
    """Draw RAM's retina on an image figure: patches (S, 4) rows (x0, y0, x1, y1) of outer pixel edges in 0-based
    image coordinates, smallest first; layout shapes named "retina-scale-<s>" (s = 1..S), thinner as they widen."""
    edges = _numpy(patches)
    if edges.ndim != 2 or edges.shape[1] != 4:
        raise ValueError(f"patches must have shape (S, 4) rows (x0, y0, x1, y1), got {edges.shape}")
    squares = [
        {
            "type": "rect",
            "x0": float(x0),
            "y0": float(y0),
            "x1": float(x1),
            "y1": float(y1),
            "name": f"retina-scale-{s + 1}",
            "line": {"color": RETINA_COLOUR, "width": max(1.0, 3.0 - s * 0.6)},
            "fillcolor": "rgba(0,0,0,0)",
            "layer": "above",
        }
        for s, (x0, y0, x1, y1) in enumerate(edges)
    ]
    fig.layout.shapes = (*fig.layout.shapes, *squares)
    return fig


def class_probabilities_figure(probabilities, *, label: int | None = None, title: str | None = None) -> go.Figure:
    """Bars of class probabilities (K,) for classes 0..K-1 on a 0..1 axis: the true class `label` green, the
    highest class red when it is not the label, the rest grey."""
    values = _numpy(probabilities)
    if values.ndim != 1:
        raise ValueError(f"probabilities must have shape (K,), got {values.shape}")
    colours = bar_colours(values, label)
    bar = {
        "type": "bar",
        "x": np.arange(len(values)),
        "y": values,
        "marker": {"color": colours},
        "name": "probabilities",
        "hovertemplate": "class %{x}: p = %{y:.3f}<extra></extra>",
    }
    layout = _chart_layout(
        title,
        240,
        bargap=0.15,
        xaxis={"title": {"text": "class"}, "dtick": 1},
        yaxis={"title": {"text": "p"}, "range": [0, 1]},
    )
    return _figure([bar], layout)


def gradient_cloud_figure(gradients, *, extent: float | None = None, title: str | None = None) -> go.Figure:
    """Gradients (n, 2) with respect to a glimpse centre (x, y) as points (trace "estimates"; one point: "exact") and
    an arrow from 0 to their mean (trace "mean"): the direction moving the glimpse raises log p. The y axis points
    down like the image's rows; both axes span +-`extent` (default: the points' own reach)."""
    points = _numpy(gradients)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"gradients must have shape (n, 2), got {points.shape}")
    mean = points.mean(0)
    reach = extent if extent is not None else float(np.abs(points).max(initial=0.0))
    reach = max(reach, 1e-9) * 1.1
    hover = "∂/∂x %{x:.4f}<br>∂/∂y %{y:.4f} nats/pixel<extra></extra>"
    data = []
    if len(points) > 1:
        data.append(
            {
                "type": "scatter",
                "x": points[:, 0],
                "y": points[:, 1],
                "mode": "markers",
                "name": "estimates",
                "marker": {"color": RETINA_COLOUR, "size": 4, "opacity": 0.5},
                "hovertemplate": "one rollout<br>" + hover,
            }
        )
    data.append(
        {
            "type": "scatter",
            "x": [0.0, float(mean[0])],
            "y": [0.0, float(mean[1])],
            "mode": "lines+markers",
            "name": "mean" if len(points) > 1 else "exact",
            "line": {"color": "black", "width": 2},
            "marker": {
                "color": "black",
                "size": [0, 10 if len(points) > 1 else 14],
                "symbol": "arrow",
                "angleref": "previous",
            },
            "hovertemplate": ("mean of the estimates" if len(points) > 1 else "exact gradient") + "<br>" + hover,
        }
    )
    axis = {"zeroline": True, "zerolinecolor": "#bbbbbb"}
    layout = _chart_layout(
        title,
        340,
        showlegend=False,
        xaxis={"range": [-reach, reach], "title": {"text": "∂ log p / ∂ x (nats per pixel)"}, **axis},
        yaxis={"range": [reach, -reach], "title": {"text": "∂ log p / ∂ y"}, "scaleanchor": "x", **axis},
    )
    return _figure(data, layout)
