"""Every Plotly figure of the app, built from tensors, with no Streamlit import (unit-tested on its own).

Letters used in shape comments:
    T steps, n images, C channels, H height, W width, N attention grid size.

Images are heatmaps in 0-based image coordinates: pixel (row r, column c) is the cell centred on
(x=c, y=r), the y axis points down and both axes have the same scale. Attention windows are drawn as in
the paper's Fig. 1, only from `draw_core.attention.window_geometry`: a rectangle through the first and
last grid centres, its border wider the sharper the filters (`draw_core.render.window_line_width`).
Each window is a layout shape named "<kind>-window" (kind "read" or "write") and its grid centres a
scatter trace named "<kind>-centres", so tests and benchmarks find them in `fig.to_dict()`.

Figures are written as plain Plotly specs (dicts) and wrapped once without Plotly's per-property
validation, which costs 5-30 ms a figure and would dominate a slider's rerun; the tests validate every
builder's output with Plotly instead.
"""

from __future__ import annotations

import base64

import numpy as np
import plotly.graph_objects as go
import torch
from torchvision.utils import make_grid

from draw_core.nn.attention import AttentionParams, WindowGeometry
from draw_core.present.render import window_line_width

WINDOW_COLOURS = {"read": "#00c853", "write": "#ff1744"}  # green read, red write (the paper's Fig. 1 red)
IMAGE_PIXELS = 280  # default on-screen size of a single image figure
GRID_PAD = 0.35  # grey level of the gaps in image grids
# Colour scales are written out (the figures skip Plotly's validation, which would expand Python-only names).
GREY = [[0.0, "rgb(0,0,0)"], [1.0, "rgb(255,255,255)"]]  # 0 black, 1 white: ink on black like MNIST
SIGNED = [[0.0, "rgb(33,102,172)"], [0.5, "rgb(255,255,255)"], [1.0, "rgb(178,24,43)"]]  # blue < 0 < red
WEIGHTS = "Viridis"  # a plotly.js built-in name
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
        "hovertemplate": f"column %{{x}}, row %{{y}}<br>{hover} %{{z:.3f}}<extra></extra>",
        "name": "image",
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
) -> go.Figure:
    """A grey heatmap of one image (H, W) or (C, H, W), y axis down, square pixels, `size` pixels wide."""
    pixels = _plane(image)
    H, W = pixels.shape
    margin_top = 30 if title else 4
    axis = {"visible": False, "constrain": "domain"}
    layout = {
        "width": size,
        "height": round(size * H / W) + margin_top + 4,
        "margin": {"l": 4, "r": 4, "t": margin_top, "b": 4},
        "showlegend": False,
        "plot_bgcolor": "black",
        "xaxis": {"range": [-0.5, W - 0.5], **axis},
        "yaxis": {"range": [H - 0.5, -0.5], "scaleanchor": "x", **axis},
        **_title(title),
    }
    return _figure([_heatmap(pixels, zmin, zmax, colorscale, hover)], layout)


def signed_image_figure(image, *, title: str | None = None, size: int = IMAGE_PIXELS) -> go.Figure:
    """An image of signed values in [-1, 1] (error images, canvas changes): blue negative, red positive."""
    return image_figure(image, title=title, zmin=-1.0, zmax=1.0, colorscale=SIGNED, size=size)


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
    width = window_line_width(_float(window.sigma)) * _screen_pixels_per_image_pixel(fig, image_width)
    x0, y0, x1, y1 = (_float(v) for v in (window.x0, window.y0, window.x1, window.y1))
    rectangle = {
        "type": "rect",
        "x0": x0,
        "y0": y0,
        "x1": x1,
        "y1": y1,
        "name": f"{kind}-window",
        "line": {"color": WINDOW_COLOURS[kind], "width": width},
        "fillcolor": "rgba(0,0,0,0)",
        "layer": "above",
    }
    fig.layout.shapes = (*fig.layout.shapes, rectangle)
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
            {
                "type": "scatter",
                "x": xs.ravel(),
                "y": ys.ravel(),
                "mode": "markers",
                "name": f"{kind}-centres",
                "marker": {"color": WINDOW_COLOURS[kind], "size": 6, "line": {"color": "white", "width": 1}},
                "hovertemplate": f"{kind} grid centre<br>column %{{x:.2f}}, row %{{y:.2f}}<br>{described}"
                "<extra></extra>",
            }
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


def _line(x, y, name: str, hover: str, **extra) -> dict:
    return {"type": "scatter", "x": x, "y": y, "mode": "lines", "name": name, "hovertemplate": hover, **extra}


def attention_over_time(params: AttentionParams, *, step: int | None = None, title: str | None = None) -> go.Figure:
    """The window's parameters over t = 1..T (params with (T,) fields): position and stride in pixels above,
    sigma and intensity gamma below; a dashed line marks `step` (1-based)."""
    series = param_series(params)
    steps = np.arange(1, len(series["gx"]) + 1)
    data = [
        _line(
            steps,
            series[name],
            PARAM_LABELS[name],
            f"t=%{{x}}: {PARAM_LABELS[name]} = %{{y:.3f}}<extra></extra>",
            yaxis="y" if name in ("gx", "gy", "delta") else "y2",
        )
        for name in ("gx", "gy", "delta", "sigma", "gamma")
    ]
    shapes = []
    if step is not None:
        shapes.append(
            {
                "type": "line",
                "x0": step,
                "x1": step,
                "xref": "x",
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "line": {"color": "grey", "dash": "dash", "width": 1},
            }
        )
    layout = _chart_layout(
        title,
        320,
        margin={"l": 40, "r": 10, "t": 30 if title else 10, "b": 80},
        legend={"orientation": "h", "x": 0, "y": -0.22, "yanchor": "top"},
        xaxis={"anchor": "y2", "title": {"text": "step t"}},
        yaxis={"domain": [0.54, 1.0], "title": {"text": "pixels"}},
        yaxis2={"domain": [0.0, 0.46]},
        shapes=shapes,
    )
    return _figure(data, layout)


def kl_per_step_figure(kl, *, step: int | None = None, title: str | None = "KL per step (nats)") -> go.Figure:
    """Bars of the KL each step spends, kl (T,) in nats; the bar of `step` (1-based) is highlighted."""
    values = _numpy(kl)
    colours = ["#1f77b4"] * len(values)
    if step is not None and 1 <= step <= len(values):
        colours[step - 1] = WINDOW_COLOURS["write"]
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


def _window_outline(window: WindowGeometry, t: int, screen: float) -> dict:
    """Step t's window as a closed line trace named "write-window" (a trace, so animation frames can move it)."""
    x0, y0, x1, y1 = (_float(v[t]) for v in (window.x0, window.y0, window.x1, window.y1))
    width = window_line_width(_float(window.sigma[t])) * screen
    return {
        "type": "scatter",
        "x": [x0, x1, x1, x0, x0],
        "y": [y0, y0, y1, y1, y0],
        "mode": "lines",
        "name": "write-window",
        "line": {"color": WINDOW_COLOURS["write"], "width": width},
        "hoverinfo": "skip",
    }


def generation_animation(
    canvases, window: WindowGeometry | None, *, frame_ms: int = 80, size: int = IMAGE_PIXELS
) -> go.Figure:
    """Plotly animation of one sample's generation: canvases (T, C, H, W) in [0, 1], window (T,) fields or None.

    Each frame shows sigma(c_t) with that step's write window (a trace named "write-window", so frames can
    move it); Play/Pause buttons and a step slider under the picture play it in the browser.
    """
    canvases = _numpy(canvases)
    T, W = canvases.shape[0], canvases.shape[-1]
    base = image_figure(canvases[0], size=size)
    layout = base.layout.to_plotly_json()
    layout.update(height=layout["height"] + 110, margin={"l": 4, "r": 4, "t": 4, "b": 110})
    screen = size / W

    def frame_data(t: int) -> list[dict]:
        heatmap = _heatmap(_plane(canvases[t]), 0.0, 1.0, GREY, "value")
        return [heatmap] if window is None else [heatmap, _window_outline(window, t, screen)]

    play = {"frame": {"duration": frame_ms, "redraw": True}, "fromcurrent": True, "transition": {"duration": 0}}
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate", "transition": {"duration": 0}}
    layout["updatemenus"] = [
        {
            "type": "buttons",
            "direction": "left",
            "x": 0.0,
            "y": 0,
            "xanchor": "left",
            "yanchor": "top",
            "pad": {"t": 4, "r": 4},
            "buttons": [
                {"label": "Play", "method": "animate", "args": [None, play]},
                {"label": "Pause", "method": "animate", "args": [[None], pause]},
            ],
        }
    ]
    layout["sliders"] = [
        {
            "active": 0,
            "x": 0.0,
            "y": -0.02,
            "len": 1.0,
            "pad": {"t": 40},
            "currentvalue": {"prefix": "step ", "font": {"size": 12}},
            "steps": [
                {
                    "label": str(t + 1),
                    "method": "animate",
                    "args": [[str(t + 1)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
                }
                for t in range(T)
            ],
        }
    ]
    frames = [{"data": frame_data(t), "name": str(t + 1)} for t in range(T)]
    return _figure(frame_data(0), layout, frames)


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


RETINA_COLOUR = "#ffab00"  # amber: RAM's retina patches, apart from DRAW's green read window
BAR_COLOURS = {"label": "#00c853", "answer": "#ff1744", "other": "#90a4ae"}  # true class, a wrong answer, the rest


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
    answer = int(values.argmax())
    colours = [BAR_COLOURS["other"]] * len(values)
    colours[answer] = BAR_COLOURS["answer"]
    if label is not None:
        colours[label] = BAR_COLOURS["label"]
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
