"""What the app's pages show, computed here so that pages only lay it out (no Streamlit import, unit-tested).

Pages never compute an equation of the paper: the window of a step (eqs 19-24), the canvas before the first step
(sigma(c_0)), the nats each glimpse spends (eq. 11), the Attention lab's filterbank, glimpse and write-back
(eqs 25-29) and its raw parameters (eqs 21-24 inverted), the datasets a model can be measured on and the one-line
captions of a model all come from this module. So do the words around the charts: each chart's equation and the
one thing to notice in it (EXPLANATIONS), the rule by which windows are drawn (WINDOW_RULE), the Attention lab's
ranges and the link that carries a model's window into it (lab_link, lab_settings), and the model card as a
readable table (card_table).

Letters used in shape comments:
    T steps, n samples (or images), C channels, H height, W width, N attention grid size.

Steps are 0-based indices t into a trace (canvases[t] is the paper's sigma(c_{t+1})), as in AttentionParams.step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import plotly.graph_objects as go
import torch

from draw_core.config import DrawConfig
from draw_core.data import dataset_names, get_dataset
from draw_core.data.registry import ColourImages
from draw_core.io.checkpoint import PROVENANCE_KEYS
from draw_core.nn.attention import AttentionParams, WindowGeometry, extract, filterbank, window_geometry, write
from draw_core.nn.elbo import gaussian_kl_from_std
from draw_core.nn.kinds import ModelKind
from draw_core.nn.likelihood import nats_to_bits_per_dim
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


def canvas_changes(canvases: torch.Tensor) -> torch.Tensor:
    """What each step added to one image's canvases (T, C, H, W): (T, C, H, W) sigma(c_t) - sigma(c_{t-1}) in
    [-1, 1], the first step's measured from sigma(c_0) (eq. 8 seen through the sigmoid)."""
    before = torch.cat([initial_canvas(canvases[:1]), canvases[:-1]])  # (T, C, H, W)
    return canvases - before


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


def image_shape(channels: int, height: int, width: int) -> str:
    """An image size as pickers and titles show it: '60×60' for one channel, '32×32×3' for colour (H×W, ×C)."""
    return f"{height}×{width}" + (f"×{channels}" if channels > 1 else "")


def config_shape(config) -> tuple[int, int, int] | None:
    """(C, H, W) of the images a stored config dict describes (channels default to 1, as every kind's config does);
    None when it does not say."""
    if not isinstance(config, dict) or not all(isinstance(config.get(key), int) for key in ("height", "width")):
        return None
    return int(config.get("channels", 1)), config["height"], config["width"]


def checkpoint_summary(card: dict) -> str:
    """'cifar10 · 32×32×3': the dataset and image size a checkpoint's card (or stored meta) records, for the picker;
    what the card does not record is said ('unknown dataset') or left out (the size)."""
    shape = config_shape(card.get("config"))
    return str(card.get("dataset") or "unknown dataset") + (f" · {image_shape(*shape)}" if shape else "")


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


def training_dataset(own: str, here: list[str]) -> str | None:
    """The dataset a preset whose own dataset is `own` trains on among the datasets `here`: its own, else the first
    of the same image shape (SVHN's preset on CIFAR-10), else the first; None when nothing is here."""
    if own in here:
        return own
    shape = tuple(get_dataset(own).shape)
    return next((name for name in here if tuple(get_dataset(name).shape) == shape), next(iter(here), None))


DATA_COPY_KEY = "data_copy"  # a card's (or stored meta's) record of which copy of its dataset its figures are on


def data_copy(dataset: str | None, card: dict | None = None) -> str | None:
    """Which copy of a colour dataset a figure was measured on, as a sentence's object (CIFAR-10: its original python
    batches, or the JPEG quality 75 re-encoded copy, which is not bit-identical): what `card` records under
    DATA_COPY_KEY, else the copy the data root holds now (spec.copy_description). None for datasets with one copy."""
    if card and card.get(DATA_COPY_KEY):
        return str(card[DATA_COPY_KEY])
    if dataset not in dataset_names():
        return None
    spec = get_dataset(dataset)
    return spec.copy_description() if isinstance(spec, ColourImages) else None


def sample_datasets(shape: tuple[int, int, int] | None = None, prefer: str | None = None) -> list[str]:
    """Registered datasets whose sample can feed a view here (`has_sample`: SVHN ships none and needs its data): all
    of them, or those of image `shape` (C, H, W); in the registry's order with `prefer` (e.g. a checkpoint's own
    dataset) first."""
    names = [
        name
        for name in dataset_names()
        if (shape is None or tuple(get_dataset(name).shape) == tuple(shape)) and get_dataset(name).has_sample()
    ]
    return sorted(names, key=lambda name: name != prefer)


WINDOW_RULE = (
    "The rectangle runs through the first and last of the N×N filter centres (eqs 19-20); its border is wider the "
    "sharper the filters (the paper's Fig. 1): width ∝ 1/σ for σ between ⅓ and 2 pixels, the same outside that "
    "range. Green reads, red writes. Where a window reaches past "
    "the image it is drawn over the slate-blue margin, and past that clipped to the edge and dotted."
)


@dataclass(frozen=True)
class Explanation:
    """What a chart shows, for a class: the paper's equation behind it and the one thing to notice."""

    number: str  # the equation's number in the paper, e.g. "eq. 8"
    latex: str  # the equation, for st.latex
    notice: str  # one line: what to notice in the chart


EXPLANATIONS = {
    "canvas": Explanation(
        "eq. 8",
        r"c_t = c_{t-1} + \mathrm{write}(h^{dec}_t)",
        "σ(c_t) is shown: the digit is built where the red window goes; early steps lay down a blurred sketch, "
        "later ones sharpen it.",
    ),
    "canvas_whole": Explanation(  # a canvas shown without a window: no write attention, or a page that draws none
        "eq. 8",
        r"c_t = c_{t-1} + \mathrm{write}(h^{dec}_t)",
        "σ(c_t) after each step: early steps lay down a blurred sketch, later ones sharpen it.",
    ),
    "added": Explanation(
        "eq. 8 through σ",
        r"\sigma(c_t) - \sigma(c_{t-1})",
        "Red adds ink, blue takes it away; almost all of a step's change lies inside its write window.",
    ),
    "added_whole": Explanation(
        "eq. 8 through σ",
        r"\sigma(c_t) - \sigma(c_{t-1})",
        "Red adds ink, blue takes it away; without write attention (eq. 18) a step may change any pixel.",
    ),
    "write_params": Explanation(
        "eqs 21-24",
        r"(\tilde g_X, \tilde g_Y, \log\sigma^2, \log\tilde\delta, \log\gamma) = W(h^{dec}_t)",
        "Follow the window over time: where it sits (g_X, g_Y), how far apart its filters are (δ; the grid spans "
        "(N−1)δ), how blurred (σ); "
        "γ, on its own axis: the write divides by it (eq. 29), so a small γ writes strongly.",
    ),
    "read": Explanation(
        "eq. 27",
        r"r_t = \left[\gamma F_Y x F_X^\top,\ \gamma F_Y \hat x_t F_X^\top\right]",
        "The green read window looks where the error x̂ still has ink to explain; its two N×N glimpses, of x and of "
        "x̂, are all the encoder sees of the image at that step.",
    ),
    "error": Explanation(
        "eq. 3",
        r"\hat x_t = x - \sigma(c_{t-1})",
        "Red is ink the canvas still lacks, blue is ink it has too much of; the error fades as the canvas fills in.",
    ),
    "write": Explanation(
        "eq. 29",
        r"\mathrm{write}(h^{dec}_t) = \tfrac{1}{\hat\gamma}\, \hat F_Y^\top\, w_t\, \hat F_X",
        "The red write window need not follow the read window: the decoder writes where the canvas needs ink.",
    ),
    "kl": Explanation(
        "eq. 11",
        r"\small L^z_t = \tfrac12 \textstyle\sum_j (\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1)",
        "Tall bars are the steps that carry information about this digit; click a bar to go to that step.",
    ),
    "kl_average": Explanation(  # the Latent explorer's bars: an average over test images, not the z on the page
        "eq. 11",
        r"\small \bar L^z_t = \tfrac1n \textstyle\sum_i L^z_t(x_i)",
        "Tall bars are the steps whose z carries the most nats, averaged over test images; click a bar to edit "
        "that step.",
    ),
    "kl_curves": Explanation(
        "eq. 11",
        r"L^z_t = \tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1)",
        "Where each model spends its code: a model with attention spreads its nats over many small glimpses.",
    ),
    "samples": Explanation(
        "sec. 2.3",
        r"\tilde z_t \sim N(0, I), \quad "
        r"\text{shown: } \sigma(\tilde c_T) \text{, not a draw from } D(X \mid \tilde c_T)",
        "Same seed: models with the same T and z size decode the same z, so differences between their grids come "
        "from the models alone.",
    ),
    "lab_window": Explanation(
        "eqs 19-20",
        r"\mu_X^i = g_X + \left(i - \tfrac{N}{2} - 0.5\right)\delta, \quad "
        r"\mu_Y^j = g_Y + \left(j - \tfrac{N}{2} - 0.5\right)\delta",
        "Move g_X, g_Y and the whole grid moves; δ spreads it; a large δ·N makes the window larger than the image.",
    ),
    "lab_filters": Explanation(
        "eqs 25-26",
        r"F_X[i, a] = \tfrac{1}{Z_X}\exp\left(-\tfrac{(a - \mu_X^i)^2}{2\sigma^2}\right)",
        "Each row is one filter, a Gaussian bump around its centre μ^i; raise σ² and the bumps blur into each other.",
    ),
    "lab_glimpse": Explanation(
        "eq. 27",
        r"\mathrm{read}(x) = \gamma\, F_Y\, x\, F_X^\top",
        "N×N numbers per image and channel are all the encoder gets (a DRAW encoder reads two such glimpses, of x "
        "and of the error x̂); γ only scales them.",
    ),
    "lab_written": Explanation(
        "eq. 29",
        r"\mathrm{write}(w) = \tfrac{1}{\gamma}\, F_Y^\top\, w\, F_X",
        "Writing the glimpse back gives a blurred copy of the window's content: what an N×N patch can draw.",
    ),
    "latent_picture": Explanation(
        "eqs 14-16",
        r"\tilde h^{dec}_t = \mathrm{RNN}^{dec}(\tilde h^{dec}_{t-1}, \tilde z_t), \quad "
        r"\tilde c_t = \tilde c_{t-1} + \mathrm{write}(\tilde h^{dec}_t), \quad \tilde x \sim D(X \mid \tilde c_T)",
        "A slider that costs many nats moves the drawing; one that costs almost none barely does: it is ignored.",
    ),
    "interpolation": Explanation(
        "eqs 13-16",
        r"\tilde z(\alpha) = \tfrac{\sin((1-\alpha)\theta)}{\sin\theta}\, \tilde z^A "
        r"+ \tfrac{\sin(\alpha\theta)}{\sin\theta}\, \tilde z^B",
        "A smooth morph means nearby z decode to similar drawings; a jump marks where the decoder switches shape.",
    ),
    "walk": Explanation(
        "eqs 13-16",
        r"\tilde z_{t, d_1} = u_r, \quad \tilde z_{t, d_2} = v_c, \quad \text{every other } \tilde z \text{ fixed}",
        "Down a column only the first dimension changes, along a row only the second: what each one draws.",
    ),
    "loss": Explanation(
        "eq. 12",
        r"\mathcal{L} = \mathcal{L}^x + \mathcal{L}^z",
        "Lˣ falls as the model learns to reconstruct while Lᶻ (right axis) grows as it learns to use z; the test bound "
        "is the figure to compare.",
    ),
    "kl_training": Explanation(
        "eq. 11",
        r"L^z_t = \tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1)",
        "Which glimpses carry information about the batch; early in training the nats move between steps.",
    ),
    "train_samples": Explanation(
        "sec. 2.3",
        # two lines: the Train page shows it under its samples, a third of the page wide
        r"\begin{gathered} \tilde z_t \sim N(0, I) \\ \text{shown: } \sigma(\tilde c_T) \end{gathered}",
        "Fresh draws from the prior: blurred blobs at first, shapes of the data once the bound has fallen.",
    ),
    "strip": Explanation(
        "eqs 13-16",
        r"\tilde x = \sigma(\tilde c_T(\tilde z; \theta_{\text{step}}))",
        "Each row decodes the same fixed z with the weights of one training step, oldest at the top: what changes "
        "from row to row is what the model learned in between.",
    ),
    "classifier_error": Explanation(
        "sec. 4.1",
        r"\text{error} = \tfrac1n \sum_i \big[\arg\max_k p(k \mid x_i) \ne y_i\big]",
        "The running error falls as the glimpses learn where the digit is; the test error is the figure of Table 1.",
    ),
    "classifier_loss": Explanation(
        "sec. 4.1",
        r"\mathcal{L} = -\log p(y \mid x)",
        "Adam minimises the cross-entropy of the class scores after the last glimpse; RAM adds REINFORCE's terms "
        "for where it looks.",
    ),
}


LAB_SIDE = 28  # MNIST's side: the lab's ranges and opening window were chosen there and grow with a larger image


def _lab_scale(height: int, width: int) -> float:
    """How much larger than MNIST's 28 pixels the image's longer side is (at least 1)."""
    return max(1.0, max(height, width) / LAB_SIDE)


def lab_ranges(height: int, width: int) -> dict[str, tuple[float, float, float]]:
    """(low, high, step) of each Attention lab setting for an image of height x width, in the paper's pixel units:
    MNIST's ranges, the margin past the edges, N and σ² (a variance: by the square) grown with the image's side."""
    scale = _lab_scale(height, width)
    margin = round(10.0 * scale)
    return {
        "n": (1, max(12, max(height, width) // 5), 1),
        "gx": (-float(margin), width + float(margin), 0.1),
        "gy": (-float(margin), height + float(margin), 0.1),
        "delta": (0.0, float(max(height, width)), 0.1),
        "sigma2": (0.01, round(30.0 * scale**2, 2), 0.01),
        "gamma": (0.05, 10.0, 0.05),
    }


def lab_defaults(height: int, width: int) -> dict[str, float]:
    """The Attention lab's opening window: a 5×5 grid in the middle of the image, γ = 1; on MNIST's 28×28 its filters
    are 3 pixels apart with σ² = 1, and on a larger image δ grows with its side and σ² with δ² (the same σ / δ)."""
    delta = round(3.0 * _lab_scale(height, width), 1)
    sigma2 = round((delta / 3.0) ** 2, 2)
    return {"n": 5, "gx": (width + 1) / 2, "gy": (height + 1) / 2, "delta": delta, "sigma2": sigma2, "gamma": 1.0}


LAB_WINDOW_KINDS = ("read", "write")


def lab_link(
    window: Window,
    N: int,
    *,
    shape: tuple[int, int, int],
    kind: str = "read",
    prefer: str | None = None,
    digit: int | None = None,
) -> dict[str, str]:
    """The Attention lab's query parameters for one window (scalar fields) of an N×N grid on an image of `shape`
    (C, H, W), a read or a write window (`kind`, drawn green or red there): the dataset whose sample the lab shows
    (`prefer`, e.g. the one the test digit came from, when it has that shape; else the first that has it), so the
    window lands on an image of the size it was made for; and the test digit when there is one."""
    if kind not in LAB_WINDOW_KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {LAB_WINDOW_KINDS}")
    p = window.params
    values = {"n": N, "gx": p.gx, "gy": p.gy, "delta": p.delta, "sigma2": p.sigma2, "gamma": p.gamma}
    query = {key: f"{float(value):.6g}" for key, value in values.items()} | {"window": kind}
    if datasets := sample_datasets(shape, prefer=prefer):
        query["dataset"] = datasets[0]
    if digit is not None:
        query["digit"] = str(digit)
    return query


def lab_settings(query: dict[str, str], height: int, width: int) -> tuple[dict[str, float], list[str]]:
    """The Attention lab settings given in `query` (see lab_link), each rounded to its slider's step and kept within
    its range, and a note for each value that had to be moved into range; unparsable or absent keys are left out."""
    settings, notes = {}, []
    for key, (low, high, step) in lab_ranges(height, width).items():
        try:
            value = float(query[key])
        except (KeyError, ValueError):
            continue
        if not math.isfinite(value):
            continue
        kept = min(max(round(value / step) * step, low), high)
        settings[key] = int(kept) if key == "n" else round(kept, 6)
        if not low <= value <= high:
            notes.append(f"{key} = {value:.4g} is outside the lab's range {low:g}…{high:g}: shown at {kept:g}")
    return settings, notes


ALL_RUNS = "Training time, all runs"  # a card's total_train_seconds: the run's and those it started from


CARD_FIELDS = (  # (key of a model card, label, how to show its value); other keys follow under their own names
    ("dataset", "Dataset", str),
    ("test_elbo_nats", "Test bound −ELBO (eq. 12)", "{:.2f} nats".format),
    ("test_recon_nats", "… reconstruction Lˣ (eq. 9)", "{:.2f} nats".format),
    ("test_kl_nats", "… latent cost Lᶻ (eq. 11)", "{:.2f} nats".format),
    ("test_iwae_nats", "Importance-weighted bound", "{:.2f} nats".format),
    ("test_iwae_k", "… importance samples k", str),
    ("test_bits_per_dim", "Bits per dimension", "{:.4f}".format),
    ("colour_coupling", "Colour coupling a (G on R, B on R, B on G)", lambda a: " · ".join(f"{v:+.2f}" for v in a)),
    ("test_error", "Test error", "{:.2%}".format),
    ("paper_error", "The paper's error (Table 1)", "{:.2%}".format),
    ("test_n", "Test images measured", "{:,}".format),
    ("test_limit", "Test images measured", "{:,}".format),  # a run's stored meta: its last evaluation's
    ("test_set", "Test set", str),
    ("glimpses", "Glimpses", str),
    ("paper_nats", "The paper's bound", "{:.2f} nats".format),
    ("steps", "Training steps", "{:,}".format),
    ("step", "Training steps", "{:,}".format),
    ("epochs", "Epochs", "{:.1f}".format),
    ("batch_size", "Batch size", str),
    ("train_seconds", "Training time", None),  # the page's own duration format; "Last run's training" after another
    ("total_train_seconds", ALL_RUNS, None),
    ("device", "Device", str),
    ("hardware", "Hardware", str),
    ("binarisation", "Binarisation", str),
    ("sample_elbo_nats", "Bound on the shipped sample", "{:.2f} nats".format),
    ("sample_error", "Error on the shipped sample", "{:.2%}".format),
    ("sample_n", "… sample images", "{:,}".format),
    ("eval_seconds", "Evaluation time", None),
    ("weights_dtype", "Weights stored as", str),
    ("created", "Created", str),
)
# Fields that describe the card's own run only: labelled "Last run's …" when that run started from another file.
LAST_RUN_KEYS = ("steps", "step", "epochs", "batch_size", "device", "hardware")
CARD_RAW_ONLY = ("config", "train_config", "description", "command", "export_command", "name")  # raw card only


@dataclass(frozen=True)
class Headline:
    """A model card's headline for Home: up to two figures (label, value) and a sentence saying what they measure."""

    figures: list[tuple[str, str]]
    explanation: str


def _number(card: dict, key: str) -> float | None:
    value = card.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _nats(value: float | None) -> str:
    """A headline bound: two decimals, none from 1,000 nats on (a colour image's 9,500 must fit a metric)."""
    if value is None:
        return "not measured"
    return f"{value:,.0f} nats" if value >= 1000 else f"{value:.2f} nats"


def _bits_from_config(nats: float | None, config) -> float | None:
    """nats / (C·H·W·ln 2) for the image size in a card's config, when both are there."""
    try:
        dims = int(config.get("channels", 1)) * int(config["height"]) * int(config["width"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return nats_to_bits_per_dim(nats, dims) if nats is not None and dims > 0 else None


def card_headline(card: dict, *, classifies: bool) -> Headline:
    """What a card's main figure is, by what the model does: a classifier's test error beside Table 1's; a
    generator's bound in nats (and bits per dimension for 8-bit colour, with the copy it was measured on); an
    autoencoder's reconstruction cost, which is no bound. Missing figures read "not measured"."""
    n = _number(card, "test_n")
    on = f"the {int(n):,} test images" if n else "the test set"
    if classifies:
        error, paper = _number(card, "test_error"), _number(card, "paper_error")
        figures = [("Test error", f"{error:.2%}" if error is not None else "not measured")]
        if paper is not None:
            figures.append(("The paper's error (Table 1)", f"{paper:.2%}"))
        return Headline(
            figures,
            f"Test error: the fraction of {on} whose highest class score is not the label, lower is better. Table 1 "
            "(100×100 cluttered MNIST, 8 glimpses): DRAW's differentiable attention 3.36%, RAM 8.11%.",
        )
    if card.get("autoencoder"):
        recon = _number(card, "test_recon_nats")
        return Headline(
            [("Reconstruction", _nats(recon))],
            f"A plain autoencoder (trained without the latent cost): its figure is the reconstruction cost −log D(x | "
            f"c_T) on {on} with z = μ, in nats per image. It is no bound on the likelihood, so it can't be compared "
            "with a VAE's test bound.",
        )
    bound, bits = _number(card, "test_elbo_nats"), _number(card, "test_bits_per_dim")
    figures = [("Test bound", _nats(bound))]
    paper = _number(card, "paper_nats")
    if "binarisation" in card or card.get("config", {}).get("likelihood", "bernoulli") == "bernoulli":
        explanation = (
            f"The test bound is the negative ELBO (eq. 12) in nats per image on one fixed binarisation of {on}: "
            "lower is better."
        )
    else:
        bits = bits if bits is not None else _bits_from_config(bound, card.get("config"))  # a run's stored meta
        figures.append(("Bits per dimension", f"{bits:.2f}" if bits is not None else "not measured"))
        copy = data_copy(card.get("dataset"), card)
        explanation = (
            f"The test bound is the negative ELBO (eq. 12) in nats per image on the 8-bit levels of {on}, and in "
            "bits per dimension, nats / (C·H·W·ln 2), the figure colour models are compared on: lower is better."
            + (f" Measured on {copy}." if copy else "")
        )
    if paper is not None:
        explanation += f" The paper reports ≤ {paper:.2f} nats for this model (Table 2)."
    return Headline(figures, explanation)


def _continues_another_run(card: dict) -> bool:
    """Whether the card's run started from another file (PROVENANCE_KEYS): its seconds and steps are its own."""
    return any(card.get(key) for key in PROVENANCE_KEYS)


def _averaged(card: dict) -> int:
    """How many checkpoints the card's weights are the mean of (tools/average_checkpoints.py), 0 when none."""
    inputs = card.get("averaged_from")
    return len(inputs) if isinstance(inputs, list) else 0


def training_time_label(card: dict) -> str:
    """'Training time', or 'Last run's training' when the card's run started from another file: the card's
    train_seconds are that run's alone (its total_train_seconds count them all); for the mean of several runs'
    weights, their seconds together."""
    if _averaged(card):
        return "Averaged runs' training"
    return "Last run's training" if _continues_another_run(card) else "Training time"


def own_run_label(card: dict, label: str) -> str:
    """`label` for a field of the card's own run (LAST_RUN_KEYS): "Last run's …" when that run started from another
    file (its counts restarted), "First averaged run's …" for the mean of several runs' weights, else as it is."""
    lowered = f"{label[0].lower()}{label[1:]}"
    if _averaged(card):
        return f"First averaged run's {lowered}"
    return f"Last run's {lowered}" if _continues_another_run(card) else label


def training_time(card: dict) -> tuple[str, float | None]:
    """The headline's training time (label, seconds): every run behind the weights where the card counts them,
    else the card's own run, labelled as such."""
    total = _number(card, "total_train_seconds")
    return (ALL_RUNS, total) if total is not None else (training_time_label(card), card.get("train_seconds"))


def card_table(card: dict, *, duration) -> dict[str, list[str]]:
    """A model card as a two-column table of readable rows ("what", "value"): known fields first, labelled and
    formatted (numbers with units, `duration(seconds)` for times), then any other scalar field under its own name;
    the config, commands and description are left to the raw card."""
    rows = {}
    for key, label, show in CARD_FIELDS:
        value = card.get(key)
        if value is None or label in rows:
            continue
        if key == "train_seconds":
            label = training_time_label(card)
        elif key in LAST_RUN_KEYS:
            label = own_run_label(card, label)
        try:
            rows[label] = duration(value) if show is None else show(value)  # None: a time in seconds
        except (TypeError, ValueError, OverflowError):  # a hand-made card: NaN or infinity where a number goes
            rows[label] = str(value)
    if count := _averaged(card):
        rows["Weights"] = f"the mean of {count} checkpoints' weights (a model soup; averaged_from in the raw card)"
    known = {key for key, _, _ in CARD_FIELDS} | set(CARD_RAW_ONLY)
    for key, value in card.items():
        if key not in known and isinstance(value, (str, int, float, bool)):
            rows[key.replace("_", " ")] = str(value)
    return {"what": list(rows), "value": list(rows.values())}
