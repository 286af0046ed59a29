"""What the "Attention at work" page shows: DRAW's differentiable glimpses against RAM's sampled ones (sec. 4.1).

The page puts the two classifiers of Table 1 side by side on one 100 x 100 cluttered MNIST image: where each looks
at every glimpse (DRAW's read window, eqs 19-24; RAM's retina of square patches), what it sees there (DRAW's N x N
read, eq. 27; RAM's patches at every scale) and what it believes after each glimpse (class probabilities). Then the
reason the paper gives for DRAW's lower error: the gradient that trains *where to look*.

- RAM's glimpse is a hard crop at a sampled location l_t ~ N(mu_t, s^2) (Mnih et al. 2014): no gradient reaches mu_t
  through the pixels, so it is estimated with the score function (REINFORCE, Williams 1992):
  d/dmu E[f(l)] = E[f(l) (l - mu) / s^2]. Every rollout gives one estimate; `ram_location_gradients` draws many
  for the same image, with f = log p(y | x) after the last glimpse, and their spread is the estimator's noise.
- DRAW's glimpse is a differentiable function of the window centre (g_X, g_Y) (eqs 19-27), so one backward pass gives
  the exact d log p(y | x) / d g (`draw_centre_gradient`).
Both are in nats per image pixel, the gradient with respect to the glimpse centre moved by one pixel.

Letters used in shape comments:
    T glimpses, n samples (rollouts), K classes, C channels, H height, W width, N DRAW's read grid, S RAM's scales,
    P RAM's patch side, D dimensions of a location (2: x, y).
Steps are 0-based indices t (the page shows t + 1).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from draw_core.data import get_dataset, load_sample
from draw_core.data.cluttered import make_cluttered, place_in_clutter
from draw_core.io.catalog import CheckpointEntry
from draw_core.io.checkpoint import PROVENANCE_KEYS
from draw_core.nn.attention import AttentionParams
from draw_core.nn.classifier import DrawClassifier
from draw_core.nn.ram import RAM
from draw_core.present import viz
from draw_core.present.views import Explanation, window_at

DATASET = "mnist-cluttered"  # the images both models classify (draw_core.data.registry)
CHECKPOINT_NAMES = {  # model kind -> the checkpoint the page looks for (shipped first, then runs)
    "draw-classifier": "mnist-cluttered-draw",
    "ram": "mnist-cluttered-ram",
}
MODEL_LABELS = {"draw-classifier": "DRAW (differentiable attention)", "ram": "RAM (REINFORCE)"}
TEST_IMAGES = 10_000  # the fixed cluttered test set: one image for each MNIST test digit
TABLE_1 = {  # (model kind, glimpses) -> test error on 100 x 100 cluttered translated MNIST, Table 1 of the paper
    ("ram", 4): 0.0941,
    ("ram", 8): 0.0811,
    ("draw-classifier", 4): 0.0418,
    ("draw-classifier", 8): 0.0336,
}
REINFORCE_SAMPLES = 400  # rollouts of RAM's policy per image for the gradient spread
REINFORCE_SEED = 0  # seeds those rollouts, so the page shows the same cloud every time
IMAGE_PX = 260  # screen pixels across the image (and its margin) in a glimpse timeline
SEEN_PX = 170  # screen pixels across what a model read at a glimpse
BARS_PX = (330, 200)  # (width, height) in screen pixels of the class probabilities chart
EXPLANATIONS = {  # what the glimpse timeline's pieces show, for a class (app_views.explain)
    "draw_read": Explanation(
        "eq. 27",
        r"\mathrm{read}(x) = \gamma\, F_Y\, x\, F_X^\top",
        "The green window moves from glimpse to glimpse and, once trained, narrows onto the digit: its N×N read is "
        "all the classifier sees of the image.",
    ),
    "ram_retina": Explanation(
        "sec. 4.1 (RAM, Mnih et al. 2014)",
        r"\rho_k = \mathrm{crop}_{2^k P}(x, l_t),\ l_t \sim N(\mu_t, s^2)",
        "Squares on one centre, each twice as wide as the last and averaged down to P×P. Shown at the policy's mean "
        "μ_t, as at test time; in training l_t is sampled and REINFORCE learns the network that sets μ_t.",
    ),
    "probabilities": Explanation(
        "sec. 4.1",
        r"p(y \mid x) = \mathrm{softmax}(W h_t)",
        "How many glimpses it takes before the true class (green) leads; the faint bars are the answer after the "
        "last glimpse.",
    ),
}
RETINA_BORDER = 1.5  # image pixels of the border of RAM's smallest retina square; each wider one 0.3 thinner


def find_classifier(entries: list[CheckpointEntry], kind: str) -> CheckpointEntry | None:
    """The first of `entries` (the catalog lists shipped checkpoints before runs) named CHECKPOINT_NAMES[kind] whose
    header holds a model of that kind; None when there is none."""
    name = CHECKPOINT_NAMES[kind]
    return next((e for e in entries if e.name == name and e.model_kind == kind), None)


def how_to_train(kind: str) -> str:
    """The command that makes the checkpoint `find_classifier` looks for (its training preset has the same name)."""
    name = CHECKPOINT_NAMES[kind]
    return f"python -m draw_core.train --preset {name} --out runs/{name}.safetensors"


# --- the image -------------------------------------------------------------------------------------------------


def sample_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped cluttered sample: images (500, 1, 100, 100) in [0, 1] and labels (500,); no data files needed."""
    return get_dataset(DATASET).sample()


def fresh_image(seed: int) -> tuple[torch.Tensor, int]:
    """A new cluttered image (1, 100, 100) and its label: a digit of the shipped MNIST sample with clutter cut from
    the others, every draw from a generator seeded with `seed` (draw_core.data.cluttered.make_cluttered)."""
    digits, labels = load_sample()
    images, label = make_cluttered(digits, labels, 1, generator=torch.Generator().manual_seed(int(seed)))
    return images[0], int(label[0])


def digit_in_clutter(digit: torch.Tensor, seed: int) -> torch.Tensor:
    """A drawn or uploaded digit (1, 28, 28), already prepared like MNIST (draw_core.data.images.prepare_digit),
    placed at a random position among clutter cut from the shipped MNIST sample: (1, 100, 100)."""
    clutter = load_sample()[0]  # (N, 1, 28, 28)
    image, _ = place_in_clutter(digit, clutter, generator=torch.Generator().manual_seed(int(seed)))
    return image[0]


# --- the glimpses ------------------------------------------------------------------------------------------------


@dataclass
class DrawGlimpses:
    """DRAW's classifier on one image, step by step."""

    probabilities: torch.Tensor  # (T, K) softmax of the class scores after each glimpse
    windows: AttentionParams  # (T,) fields: the read window of each glimpse (eqs 21-24), paper pixel units
    glimpses: torch.Tensor  # (T, C, N, N) what it read, gamma F_Y x F_X^T (eq. 27)


@dataclass
class RamGlimpses:
    """RAM on one image, step by step, at the policy's mean locations (as its test error is measured)."""

    probabilities: torch.Tensor  # (T, K) softmax of the class scores after each glimpse
    locations: torch.Tensor  # (T, 2) (x, y) in [-1, 1] of each glimpse
    patches: torch.Tensor  # (T, S, 4) (x0, y0, x1, y1) outer pixel edges of each retina patch, 0-based image coords
    retina: torch.Tensor  # (T, S, C, P, P) each patch averaged down to P x P, smallest (sharpest) first


def _batch(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """image (C, H, W) -> (1, C, H, W) on the model's device and in its dtype."""
    return image[None].to(model.output.weight)


@torch.no_grad()
def draw_glimpses(model: DrawClassifier, image: torch.Tensor) -> DrawGlimpses:
    """DrawClassifier.classify on image (C, H, W)."""
    result = model.classify(_batch(model, image))
    return DrawGlimpses(
        probabilities=result.step_logits[:, 0].softmax(-1).cpu(),
        windows=result.read_attn.map(lambda v: v[:, 0].cpu()),
        glimpses=result.glimpses[:, 0].cpu(),
    )


def patch_edges(model: RAM, locations: torch.Tensor) -> torch.Tensor:
    """(..., S, 4) (x0, y0, x1, y1) outer edges of RAM's retina patches centred on `locations` (..., 2): patch s covers
    the P 2^s x P 2^s pixels from its top-left corner (RAM.patch_corners); edges sit half a pixel outside them."""
    corners = model.patch_corners(locations).to(torch.float32)  # (..., S, 2) (row, column)
    side = model.cfg.patch * 2 ** torch.arange(model.cfg.scales, dtype=torch.float32, device=corners.device)  # (S,)
    row, column = corners.unbind(-1)
    return torch.stack([column - 0.5, row - 0.5, column + side - 0.5, row + side - 0.5], dim=-1)


@torch.no_grad()
def ram_glimpses(model: RAM, image: torch.Tensor) -> RamGlimpses:
    """RAM.classify on image (C, H, W) with sample=False: every glimpse at the policy's mean."""
    cfg = model.cfg
    result = model.classify(_batch(model, image), sample=False)
    locations = result.locations[:, 0]  # (T, 2)
    T = len(locations)
    return RamGlimpses(
        probabilities=result.step_logits[:, 0].softmax(-1).cpu(),
        locations=locations.cpu(),
        patches=patch_edges(model, locations).cpu(),
        retina=result.glimpses[:, 0].reshape(T, cfg.scales, cfg.channels, cfg.patch, cfg.patch).cpu(),
    )


# --- the glimpses as one timeline ---------------------------------------------------------------------------------


def held(values: torch.Tensor, T: int) -> torch.Tensor:
    """values (T_m, ...) of a model with T_m <= T glimpses as T steps: after its last glimpse it keeps that one."""
    if len(values) > T:
        raise ValueError(f"a model with {len(values)} glimpses does not fit a timeline of {T} steps")
    return torch.cat([values, values[-1:].expand(T - len(values), *values.shape[1:])])  # (T, ...)


def glimpse_row(
    image: torch.Tensor,
    trace: DrawGlimpses | RamGlimpses,
    *,
    T: int,
    name: str,
    label: int | None = None,
    scale: float = 1.0,
) -> list:
    """The pieces of a glimpse timeline (viz.timeline_figure) for one model on image (C, H, W): where it looks at
    glimpse t on the image (DRAW's read window, eqs 19-24; RAM's retina), what it read there (DRAW's N x N read,
    eq. 27; RAM's S patches, tiled), on one colour range over all glimpses, and its class probabilities after glimpse
    t (the true class `label` green when known), each `scale` times its usual size (IMAGE_PX, SEEN_PX, BARS_PX). A
    model with fewer than T glimpses keeps its last one."""
    if not 0.25 <= scale <= 4:
        raise ValueError(f"scale must be between 0.25 and 4 (a factor of the usual panel sizes), got {scale}")
    image_px, seen_px = round(IMAGE_PX * scale), round(SEEN_PX * scale)
    bars_px = tuple(round(side * scale) for side in BARS_PX)
    if isinstance(trace, DrawGlimpses):
        N = trace.glimpses.shape[-1]
        window = window_at(trace.windows.map(lambda v: held(v, T)), N, slice(None))  # (T,) fields
        looks = viz.ImagePanel(
            image.mean(0).numpy(), f"{name}: read window", image_px, padded=True, windows=(("read", window, False),)
        )
        seen = held(trace.glimpses, T).mean(1)  # (T, N, N)
        seen_title = f"what {name} read: {N}×{N}"
    else:
        S, P = trace.retina.shape[1], trace.retina.shape[-1]
        widths = tuple(max(0.3, RETINA_BORDER - 0.3 * s) for s in range(S))
        retina = viz.Squares("retina", held(trace.patches, T).numpy(), widths)  # (T, S, 4)
        looks = viz.ImagePanel(image.mean(0).numpy(), f"{name}: retina", image_px, padded=True, squares=(retina,))
        nrow = math.ceil(math.sqrt(S))
        seen = torch.stack([viz.tile(patches, nrow=nrow).mean(0) for patches in held(trace.retina, T)])  # (T, h, w)
        seen_title = f"what {name} saw: {S} scales of {P}×{P}"
    peak = max(float(seen.max()), 1e-6)  # one range over all glimpses, so they compare
    return [
        looks,
        viz.ImagePanel(seen.numpy(), seen_title, seen_px, zmax=peak, colorbar="value"),
        viz.ProbabilityChart(
            held(trace.probabilities, T).numpy(), f"{name}'s p(class) after glimpse t", *bars_px, label=label
        ),
    ]


def glimpse_labels(traces: dict[str, DrawGlimpses | RamGlimpses], T: int, label: int | None = None) -> list[str]:
    """One line per glimpse t saying each model's answer after it: 'glimpse 2 of 8 · DRAW: 3 (p 0.82) · ...'."""
    lines = []
    for t in range(T):
        parts = [f"glimpse {t + 1} of {T}"]
        for name, trace in traces.items():
            p = trace.probabilities[min(t, len(trace.probabilities) - 1)]  # (K,)
            answer = int(p.argmax())
            verdict = "" if label is None else (" ✓" if answer == label else " ✗")
            parts.append(f"{name}: {answer} (p {float(p[answer]):.2f}){verdict}")
        lines.append(" · ".join(parts))
    return lines


def glimpse_timeline(
    image: torch.Tensor,
    traces: dict[str, DrawGlimpses | RamGlimpses],
    *,
    label: int | None = None,
    scale: float = 1.0,
) -> go.Figure:
    """Every glimpse of one or more classifiers on image (C, H, W) as one timeline, a row per model (`traces` maps a
    name to its glimpses, see glimpse_row; `scale` sizes the panels), T the most glimpses any of them takes; it opens
    on glimpse 1."""
    T = max(len(trace.probabilities) for trace in traces.values())
    rows = [glimpse_row(image, trace, T=T, name=name, label=label, scale=scale) for name, trace in traces.items()]
    return viz.timeline_figure(rows, T=T, labels=glimpse_labels(traces, T, label), initial=1)


# --- the gradient that trains where to look ------------------------------------------------------------------------


def score_function_estimates(
    rewards: torch.Tensor, samples: torch.Tensor, means: torch.Tensor, std: float, baseline: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """REINFORCE (Williams 1992): for l ~ N(mu, std^2 I), d/dmu E[f(l)] = E[(f(l) - b) (l - mu) / std^2] for any b
    that does not depend on l. rewards f(l) (n,), samples l (..., n, D), means mu broadcastable to them -> (..., n, D),
    one estimate per sample; their mean over n is an unbiased estimate of the gradient."""
    return (rewards - baseline)[:, None] * (samples - means) / std**2


def leave_one_out(rewards: torch.Tensor) -> torch.Tensor:
    """(n,) the mean reward of the other n - 1 samples: a baseline for each sample that does not depend on it."""
    n = len(rewards)
    if n < 2:
        raise ValueError(f"a leave-one-out baseline needs at least 2 samples, got {n}")
    return (rewards.sum() - rewards) / (n - 1)


def _pixels_per_unit(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(2,) image pixels per unit of RAM's location (x, y) in [-1, 1]: W / 2 across, H / 2 down."""
    return torch.tensor([width / 2, height / 2], dtype=like.dtype, device=like.device)


@torch.no_grad()
def ram_location_gradients(
    model: RAM, image: torch.Tensor, label: int, *, samples: int = REINFORCE_SAMPLES, seed: int = REINFORCE_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE estimates of d E[log p(label | x)] / d mu_t for every glimpse t of RAM's policy on image (C, H, W).

    `samples` rollouts of the policy as it trains (every location sampled, RAM.classify(sample=True)), each giving
    one estimate per step: log p(label | x, l_1..l_T) (l_t - mu_t) / s^2, the gradient of the expected log-probability
    with respect to a shift of the policy's mean at step t. Returns (T, n, 2) estimates without a baseline and
    (T, n, 2) with a leave-one-out baseline (the mean log-probability of the other rollouts), in nats per pixel.
    """
    cfg = model.cfg
    x = _batch(model, image).expand(samples, -1, -1, -1)  # (n, C, H, W)
    result = model.classify(x, sample=True, generator=torch.Generator().manual_seed(int(seed)))
    rewards = F.log_softmax(result.logits, -1)[:, label]  # (n,) log p(y | x, l_1..l_T)
    baseline = leave_one_out(rewards)  # (n,)
    per_unit = _pixels_per_unit(cfg.height, cfg.width, rewards)  # d mu / d pixel = 1 / per_unit
    l, mu, s = result.locations, result.location_means, cfg.location_std  # (T, n, 2), (T, n, 2), s
    raw = score_function_estimates(rewards, l, mu, s) / per_unit  # (T, n, 2)
    baselined = score_function_estimates(rewards, l, mu, s, baseline) / per_unit  # (T, n, 2)
    return raw.cpu(), baselined.cpu()


def draw_log_prob(model: DrawClassifier, image: torch.Tensor, label: int, shifts: torch.Tensor) -> torch.Tensor:
    """log p(label | x) of DRAW's classifier on image (C, H, W) when the window centre (g_X, g_Y) of every step t is
    moved by shifts[t] (T, 2) pixels from where the network puts it (eqs 22-23: one pixel is 2 / (A + 1) of g~_X and
    2 / (B + 1) of g~_Y); later steps see the glimpse the moved window read. Differentiable in `shifts`.

    Runs on a frozen copy of `model` (the shared model is never hooked or changed)."""
    cfg = model.cfg
    if shifts.shape != (cfg.glimpses, 2):
        raise ValueError(f"shifts must have shape ({cfg.glimpses}, 2): (x, y) per glimpse, got {tuple(shifts.shape)}")
    frozen = copy.deepcopy(model).requires_grad_(False)  # so the window head runs as a module (TimeSharedLinear)
    raw_per_pixel = torch.tensor([2 / (cfg.width + 1), 2 / (cfg.height + 1)], dtype=shifts.dtype)  # eqs 22-23
    raw_shifts = F.pad(shifts * raw_per_pixel, (0, 3))  # (T, 5): only g~_X, g~_Y move
    step = iter(range(cfg.glimpses))
    frozen.window_head.register_forward_hook(lambda module, inputs, raw: raw + raw_shifts[next(step)].to(raw))
    with torch.enable_grad():
        logits = frozen.classify(_batch(model, image)).logits  # (1, K)
        return F.log_softmax(logits, -1)[0, label]


def draw_centre_gradient(model: DrawClassifier, image: torch.Tensor, label: int) -> torch.Tensor:
    """(T, 2) the exact d log p(label | x) / d (g_X, g_Y) of every glimpse t, in nats per pixel: one backward pass
    through the filterbank (eqs 19-27) from the class scores to each step's window centre."""
    shifts = torch.zeros(model.cfg.glimpses, 2, dtype=model.output.weight.dtype, requires_grad=True)
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(draw_log_prob(model, image, label, shifts), shifts)
    return gradient


@dataclass
class GradientSpread:
    """The gradient that trains where each model looks, for one image and its label, every step."""

    label: int  # the class whose log-probability is differentiated
    reinforce: torch.Tensor  # (T, n, 2) RAM: one REINFORCE estimate per rollout, nats per pixel (x, y)
    reinforce_baselined: torch.Tensor  # (T, n, 2) the same with a leave-one-out baseline
    exact: torch.Tensor  # (T, 2) DRAW: d log p / d (g_X, g_Y), nats per pixel


def gradient_spread(
    draw: DrawClassifier,
    ram: RAM,
    image: torch.Tensor,
    label: int,
    *,
    samples: int = REINFORCE_SAMPLES,
    seed: int = REINFORCE_SEED,
) -> GradientSpread:
    """Both models' location gradients on image (C, H, W) for `label` (see the module docstring)."""
    reinforce, baselined = ram_location_gradients(ram, image, label, samples=samples, seed=seed)
    return GradientSpread(label, reinforce, baselined, draw_centre_gradient(draw, image, label).detach())


@dataclass(frozen=True)
class SpreadSummary:
    """How noisy a set of gradient estimates (n, 2) is, per component (x, y)."""

    mean: tuple[float, float]  # mean of the estimates
    std: tuple[float, float]  # their standard deviation
    samples_for_sign: tuple[float, float]  # (2 std / |mean|)^2: rollouts before the mean's sign is 2 std errors sure


def spread_summary(estimates: torch.Tensor) -> SpreadSummary:
    """Mean, standard deviation and samples needed for the sign, of estimates (n, 2)."""
    mean, std = estimates.double().mean(0), estimates.double().std(0)  # (2,) each
    needed = (2 * std / mean.abs().clamp_min(1e-300)).square()
    return SpreadSummary(tuple(mean.tolist()), tuple(std.tolist()), tuple(needed.tolist()))


# --- Table 1 -----------------------------------------------------------------------------------------------------


def percent(error: float | None) -> str:
    return "not measured yet" if error is None else f"{100 * error:.2f}%"


def _measured(meta: dict) -> str:
    """What a model's test error covers: a shipped card's `test_n` (the export measured it) before a run's stored
    `test_limit`, and its steps (the last run's when it continued another file)."""
    parts = []
    n = meta.get("test_n", meta.get("test_limit"))
    if isinstance(n, int):
        parts.append(f"all {n:,} test images" if n >= TEST_IMAGES else f"first {n:,} test images")
    steps = meta.get("steps", meta.get("step"))
    if isinstance(steps, int):
        last_run = " (its last run's)" if any(meta.get(key) for key in PROVENANCE_KEYS) else ""
        parts.append(f"after {steps:,} training steps{last_run}")
    return ", ".join(parts)


def error_table(checkpoints: dict[str, tuple[str, int, dict]]) -> dict[str, list[str]]:
    """Table 1 next to the app's checkpoints: `checkpoints` maps a model kind to (checkpoint label, glimpses, meta)
    with meta's 'test_error' (a fraction, or None before the first test) and 'test_limit'. One row per Table 1 entry,
    with the checkpoint whose kind and glimpse count it matches; a checkpoint that matches none gets its own row."""
    rows = {"model": [], "glimpses": [], "Table 1": [], "this app": [], "checkpoint": [], "measured on": []}

    def add(kind: str, glimpses: int, checkpoint: tuple[str, int, dict] | None) -> None:
        paper = TABLE_1.get((kind, glimpses))
        rows["model"].append(MODEL_LABELS[kind])
        rows["glimpses"].append(str(glimpses))
        rows["Table 1"].append("—" if paper is None else percent(paper))
        name, _, meta = checkpoint or ("—", 0, {})
        rows["this app"].append(percent(meta.get("test_error")) if checkpoint else "—")
        rows["checkpoint"].append(name)
        rows["measured on"].append(_measured(meta))

    for kind, glimpses in TABLE_1:
        checkpoint = checkpoints.get(kind)
        add(kind, glimpses, checkpoint if checkpoint and checkpoint[1] == glimpses else None)
    for kind, checkpoint in checkpoints.items():
        if (kind, checkpoint[1]) not in TABLE_1:
            add(kind, checkpoint[1], checkpoint)
    return rows
