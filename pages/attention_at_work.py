"""Attention at work: DRAW's differentiable glimpses against RAM's sampled ones on cluttered MNIST (sec. 4.1, Table 1).

The page brings its own two classifiers, found by name in the catalog (shipped first, then runs), whatever the sidebar
picks; draw_core.present.attention_at_work computes everything it shows. Images and results are cached per image with
st.cache_resource, shared read-only like app_common's traces, so a step move only redraws.

The glimpses of both models are one timeline figure (draw_core.present.attention_at_work.glimpse_timeline) that the
browser moves through without a rerun (app_views.follow): both images with where each model looks, what each read and
what each believes after glimpse t, all at the same glimpse. The step the user stops at comes back to the server (the
Glimpse t slider, the URL, the gradients below).
"""

import hashlib

import numpy as np
import streamlit as st
import torch

import app_common
import app_views
from draw_core.data import get_dataset
from draw_core.io import catalog
from draw_core.io.checkpoint import CheckpointError
from draw_core.present import attention_at_work as work
from draw_core.present import views, viz

REPARAMETERIZATION = "https://arxiv.org/abs/1312.6114"  # Kingma & Welling 2014, the reparameterization trick
PRESENT_TIMELINE_SCALE = 0.74  # the timeline's panel sizes in presentation mode: both rows fit in 720 px


@st.cache_resource(show_spinner="Making the cluttered sample…")
def cluttered_sample() -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped sample in clutter (20 MB), made once per server and only read."""
    return work.sample_images()


@st.cache_resource(max_entries=64, show_spinner=False)
def fresh_image(seed: int) -> tuple[np.ndarray, int]:
    image, label = work.fresh_image(seed)
    return image.numpy(), label


@st.cache_resource(max_entries=64, show_spinner=False)
def digit_in_clutter(digit: np.ndarray, seed: int) -> np.ndarray:
    return work.digit_in_clutter(torch.from_numpy(digit), seed).numpy()


@st.cache_resource(max_entries=64, show_spinner=False)
def draw_view(_model, model_key: str, image: np.ndarray) -> work.DrawGlimpses:
    return work.draw_glimpses(_model, torch.from_numpy(image))


@st.cache_resource(max_entries=64, show_spinner=False)
def ram_view(_model, model_key: str, image: np.ndarray) -> work.RamGlimpses:
    return work.ram_glimpses(_model, torch.from_numpy(image))


@st.cache_resource(max_entries=32, show_spinner=f"Rolling out RAM's policy {work.REINFORCE_SAMPLES} times…")
def gradients(_draw, draw_key: str, _ram, ram_key: str, image: np.ndarray, label: int) -> work.GradientSpread:
    return work.gradient_spread(_draw, _ram, torch.from_numpy(image), label)


@st.cache_resource(max_entries=32, show_spinner=False)
def timeline(draw_key: str, ram_key: str, image_digest: str, label: int | None, scale: float, _image, _draw, _ram):
    """Both models' glimpses of the image as one timeline, shared read-only by sessions; it opens on glimpse 1 and
    the browser moves it to the session's step, so moving the step never changes (or resends) it."""
    return work.glimpse_timeline(torch.from_numpy(_image), {"DRAW": _draw, "RAM": _ram}, label=label, scale=scale)


def pair(values) -> str:
    """Two gradient components to three significant figures: DRAW's exact ones are often near 1e-5 nats/pixel,
    which a fixed four decimals showed as +0.0000."""
    return f"({values[0]:+.3g}, {values[1]:+.3g})"


app_common.page_setup()  # the shared sidebar; this page brings its own models
st.title("Attention at work")
st.caption(
    "Sec. 4.1, Table 1: two classifiers look at a 100×100 cluttered digit in 8 glimpses. DRAW moves a differentiable "
    "read window (eqs 19-27) and learns where to look by backpropagation; RAM (Mnih et al. 2014) crops square patches "
    "at sampled locations and learns where to look by REINFORCE. This page uses its own two models, whatever the "
    "sidebar picks."
)

entries = catalog.list_checkpoints()
found = {kind: work.find_classifier(entries, kind) for kind in work.CHECKPOINT_NAMES}
missing = [kind for kind, entry in found.items() if entry is None]
if missing:
    app_common.stop_with(
        "This page needs both cluttered-MNIST classifiers and can't find "
        + " or ".join(f"**{work.CHECKPOINT_NAMES[kind]}** ({work.MODEL_LABELS[kind]})" for kind in missing)
        + f" among the shipped checkpoints or the runs. Train {'it' if len(missing) == 1 else 'them'}: "
        + "; ".join(f"`{work.how_to_train(kind)}`" for kind in missing)
        + "."
    )
loaded = {}
for kind, entry in found.items():
    try:
        loaded[kind] = app_common.load_entry(entry)
    except (CheckpointError, OSError) as error:
        app_common.stop_with(f"{entry.label} can't be loaded: {error}", error=True)
draw, ram = loaded["draw-classifier"], loaded["ram"]
shape = tuple(get_dataset(work.DATASET).shape)  # (C, H, W)
for selected in (draw, ram):
    cfg = selected.config
    if (cfg.channels, cfg.height, cfg.width) != shape:
        app_common.stop_with(
            f"{selected.name} takes {views.image_size(cfg)} images; this page shows "
            f"{'×'.join(map(str, shape))} cluttered MNIST.",
            error=True,
        )

# On a projector (1280 x 720) the image's settings and the step sit left of the timeline, drawn a little smaller, so
# that both models' rows show without scrolling; otherwise the settings sit above it, the step beside them.
presenting = app_common.presentation()
if presenting:
    input_column, figure_column = st.columns([2, 3])
    source_place = step_column = input_column
else:
    source_place = st.container()
    input_column, step_column = st.columns([1, 2])
    figure_column = st.container()
SOURCES = {"sample": "Test image", "seed": "New from a seed", "draw": "Draw a digit", "upload": "Upload a digit"}
source = (
    source_place.segmented_control(
        "Image", list(SOURCES), format_func=SOURCES.get, key="work_source", default="sample", width="content"
    )
    or "sample"
)  # clicking the chosen option again deselects it
label = None  # the true class, when known
with input_column:
    if source == "sample":
        images, labels = cluttered_sample()
        index = st.number_input(
            f"Test image (0-{len(images) - 1})",
            0,
            len(images) - 1,
            step=1,
            key="work_index",
            help="a real MNIST test digit in clutter, from the shipped sample",
        )
        image, label = images[index].numpy(), int(labels[index])
    elif source == "seed":
        seed = st.number_input("Seed", 0, app_common.MAX_SEED, step=1, key="work_seed", help="a new digit and clutter")
        image, label = fresh_image(int(seed))
    else:
        if source == "draw":
            digit = app_common.drawn_digit(key="work_canvas", side_px=200, stroke=16)  # (1, 28, 28)
        else:
            digit = app_common.uploaded_digit(
                key="work_upload",
                label="An image of one digit (any size and background; it is scaled to 28×28 like MNIST)",
            )
        clutter_seed = st.number_input("Clutter seed", 0, app_common.MAX_SEED, step=1, key="work_clutter_seed")
        image = digit_in_clutter(digit.numpy(), int(clutter_seed))
        digit_id = hashlib.sha256(digit.numpy().tobytes()).hexdigest()[:16]
        label = st.segmented_control(  # keyed by the digit: a new drawing or upload starts unlabelled
            "Which digit is it?", list(range(10)), key=f"work_label_{digit_id}"
        )
T = max(draw.config.glimpses, ram.config.glimpses)
app_common.remember("work_step", app_common.url_int("step", T, 1, T))
with step_column:
    step = app_common.step_controls(T, key="work_step", label="Glimpse t")
st.query_params.update(step=str(step))  # the step the browser stopped at, in the address bar

draw_glimpses = draw_view(draw.model, draw.key, image)
ram_glimpses = ram_view(ram.model, ram.key, image)
known_label = label
if label is None:
    label = int(draw_glimpses.probabilities[-1].argmax())
    input_column.caption(f"The gradients below use DRAW's answer, {label}, as the class until you say which it is.")
t_draw, t_ram = min(step, draw.config.glimpses) - 1, min(step, ram.config.glimpses) - 1

digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
scale = PRESENT_TIMELINE_SCALE if presenting else 1.0
figure = timeline(draw.key, ram.key, digest, known_label, scale, image, draw_glimpses, ram_glimpses)
with figure_column:
    if not presenting:
        st.subheader(f"{work.MODEL_LABELS['draw-classifier']} against {work.MODEL_LABELS['ram']}")
    st.plotly_chart(figure, key="work_timeline", width="content")
app_views.follow("work_timeline", T=T, step=step, initial=1, step_key="work_step")
st.caption(views.WINDOW_RULE + " RAM's retina is amber. A model with fewer glimpses keeps its last one on later steps.")
for column, name in zip(st.columns(3), ("draw_read", "ram_retina", "probabilities"), strict=True):
    app_views.explain(work.EXPLANATIONS[name], column)

st.subheader("Test error beside Table 1")
st.table(
    work.error_table(
        {kind: (found[kind].label, selected.config.glimpses, selected.card) for kind, selected in loaded.items()}
    )
)
st.caption(
    "Both are measured on the same fixed cluttered test set (seeded), on its first images when a training run tested "
    "on a part of it. Notice: in the paper the two models differ more than 4 and 8 glimpses do."
)

st.subheader("Why differentiable attention trains better")
st.markdown(
    "Both models must learn *where to look*. RAM's crop does not change smoothly with its location, so the gradient "
    "with respect to the location mean μₜ has to be estimated from sampled glimpses (REINFORCE: "
    "log p(y|x) · (lₜ − μₜ)/s²), one noisy estimate per rollout. DRAW's window is a smooth function of its centre "
    "(g_X, g_Y), so one backward pass gives the exact gradient. Both in nats per pixel the glimpse centre moves. "
    "Here both score the same objective, log p(y|x) of the class; RAM itself trains on a rougher signal, a reward of "
    "1 for a right final answer and 0 otherwise, with a learned baseline (Mnih et al. 2014)."
)
use_baseline = st.toggle(
    "Subtract a baseline from RAM's rewards (the mean log p of the other rollouts)", key="work_baseline"
)
spread = gradients(draw.model, draw.key, ram.model, ram.key, image, int(label))
estimates = (spread.reinforce_baselined if use_baseline else spread.reinforce)[t_ram]  # (n, 2)
exact = spread.exact[t_draw][None]  # (1, 2)
extent = max(float(estimates.abs().max()), float(exact.abs().max()))
summary = work.spread_summary(estimates)
reinforce_column, exact_column = st.columns(2)
reinforce_column.plotly_chart(
    viz.gradient_cloud_figure(
        estimates, extent=extent, title=f"RAM: {len(estimates)} REINFORCE estimates, glimpse {t_ram + 1}"
    ),
    key="work_reinforce",
)
reinforce_column.caption(
    "Score function (REINFORCE): ∇ log π(l | h) · reward, one rollout each. "
    f"Notice the spread: mean {pair(summary.mean)}, standard deviation {pair(summary.std)} nats/pixel; about "
    f"{summary.samples_for_sign[0]:,.0f} rollouts before the sign of ∂/∂x is two standard errors sure."
)
exact_column.plotly_chart(
    viz.gradient_cloud_figure(exact, extent=extent, title=f"DRAW: the exact gradient, glimpse {t_draw + 1}"),
    key="work_exact",
)
exact_column.caption(
    "Backpropagation through the window (eqs 21–27). "
    f"Notice: one backward pass gives {pair(exact[0].tolist())} nats/pixel for class {label}, with no spread at all."
)
st.markdown(
    "The same idea trains DRAW's latents: write the random choice as a differentiable function of the parameters and "
    "backpropagate through it instead of scoring samples, the "
    f"[reparameterization trick]({REPARAMETERIZATION}) (Kingma & Welling 2014) that DRAW's encoder uses (sec. 2.1)."
)
app_common.page_link(
    "reparameterization.py", label="The same contrast on a small objective: Reparameterization", icon="🎲"
)
