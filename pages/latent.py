"""Latent explorer: move z with sliders and watch the decoder redraw; interpolate between seeds; walk a 2-D grid.

What is drawn is always what the sliders show: z lives in the session (latent_state), a slider writes its value
there, and whatever sets z another way (Reset, Randomise, a pasted z) clears the sliders' own state, so they are
created again from z and the browser moves their thumbs. The sliders and the picture are one fragment: a drag
reruns only them, and decodes only the one edited sample (latent.RecentDecodes, per session), not the strip
and the grid below.

Pictures are PNG layout images (canvas_size.picture_figure), not image traces: an RGB image trace sends every
sub-pixel as JSON on each rerun. Only a grey σ(c_T) stays a heatmap, whose hover reads each pixel's value for H·W
numbers a drag. The interpolation strip and the walk are drawn once per choice (cached figures), so a full rerun only
looks them up: a cifar10-size model's slider rerun went from 376 to 63 ms median (tools/bench_app.py, loaded machine).
"""

import random

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

import app_common
import app_views
from draw_core.data import DatasetMissingError, get_dataset, resolve_data_dir
from draw_core.present import canvas_size, latent, views, viz

KL_DIGITS = 100  # test digits the KL ordering of the dimensions is measured on
SHOWN = 10  # sliders shown at once: the top of the KL ranking, then a chosen group of ranks in the expander
LIMIT = 4.0  # slider range: z_d in [-LIMIT, LIMIT] (a prior draw is within ±4 with probability 0.99994)
SLIDER_PREFIX = "latent_dim_"  # session keys of the z sliders: latent_dim_<mode>_<step or None>_<dimension>
STEP_KEY = "latent_step"  # this page's own step (1-based): it opens where the KL is, not on the Generate page's step
MODES = {"step": "z of one step t", "shared": "the same z at every step"}

selected = app_common.require_checkpoint(need="generates")
model, cfg = selected.model, selected.config
T, Z = cfg.T, cfg.z_size
measured_on = next(iter(views.evaluation_datasets(cfg, prefer=selected.card.get("dataset"))), None)


@st.cache_data(max_entries=16, show_spinner="Measuring the KL of each latent dimension…")
def kl_table(_model, model_key: str, dataset: str | None, data_dir: str) -> torch.Tensor | None:
    """(T, Z) nats spent per step and dimension on the first test images of `dataset` under `data_dir`; None without
    one."""
    if dataset is None:
        return None
    images = get_dataset(dataset).test_set(data_dir, limit=KL_DIGITS)
    return latent.kl_per_dimension(_model, images, torch.Generator().manual_seed(0))


kl_warning = None
try:
    kl = kl_table(model, selected.key, measured_on, str(resolve_data_dir()))
except DatasetMissingError as error:  # listed (its files are there) but a file can't be read
    kl_warning, kl, measured_on = f"The sliders are not ordered by KL: {error}", None, None
busiest = latent.busiest_step(kl) if kl is not None else T - 1  # 0-based: the page opens there

st.title("Latent explorer")
if measured_on is None:
    ordering = (
        f"No test set of {views.image_shape(cfg.channels, cfg.height, cfg.width)} images is on this server "
        "(DRAW_DATA_DIR), so the sliders are in index order and the page opens on the last step."
    )
else:
    copy = views.data_copy(measured_on)
    ordering = (
        "Sliders are ordered by how many nats the encoder spends on each dimension (eq. 11) on the first "
        f"{KL_DIGITS} test images of {measured_on}{f' ({copy})' if copy else ''}: the top ones matter most. The page "
        "opens on the step that spends the most; click a bar of KL per step to pick another."
    )
st.caption("The decoder turns z₁…z_T into a drawing (sec. 2.3). " + ordering)
if kl_warning:
    st.warning(kl_warning)
app_common.remember("seed", 0)
app_common.remember("sample", 0)
seed_column, sample_column, mode_column = st.columns([2, 2, 3], vertical_alignment="bottom")
seed = int(seed_column.number_input("Seed", 0, app_common.MAX_SEED, step=1, key="seed"))
sample = sample_column.selectbox("Sample", range(app_common.SAMPLES), key="sample", format_func=lambda i: f"#{i + 1}")
mode = mode_column.radio("Sliders set", list(MODES), format_func=MODES.get, key="latent_mode", horizontal=True)

base = latent.prior_z(seed, T, Z, app_common.SAMPLES)[:, sample].numpy().copy()  # (T, Z): the Generate page's sample
origin = (selected.key, seed, sample)


def clear_sliders() -> None:
    """Forget the sliders' own state: they are created again from latent_state, and their thumbs move there."""
    for key in [k for k in st.session_state if str(k).startswith(SLIDER_PREFIX)]:
        del st.session_state[key]


def reset_to(z: np.ndarray) -> None:
    """Make z (T, Z) the drawn latent; the shared z (every step) starts from its first step."""
    z = z.astype(np.float32)
    st.session_state.latent_state = {"origin": origin, "z": z.copy(), "shared": z[0].copy()}
    st.session_state.pop("latent_json_error", None)
    clear_sliders()


def randomise() -> None:
    reset_to(np.random.default_rng(random.randrange(2**32)).standard_normal((T, Z)).astype(np.float32))


def apply_json() -> None:
    try:
        z = latent.z_from_json(st.session_state.latent_json, T, Z, limit=LIMIT).numpy()
    except ValueError as error:
        st.session_state.latent_json_error = str(error)
        return
    if st.session_state.get("latent_mode") == "shared" and not (z == z[0]).all():
        st.session_state.latent_json_error = (
            "these steps differ, and the sliders set the same z at every step: paste one list of numbers, or switch "
            "to 'z of one step t' first"
        )
        return
    reset_to(z)


def current_z(mode: str) -> np.ndarray:
    """The latent (T, Z) drawn now in `mode`: the edited z of every step, or the shared z repeated T times."""
    state = st.session_state.latent_state
    return state["z"] if mode == "step" else np.tile(state["shared"], (T, 1))


def edited_step(mode: str) -> int | None:
    """The step (0-based) the sliders edit in `mode`, or None when they set every step."""
    return int(st.session_state[STEP_KEY]) - 1 if mode == "step" and STEP_KEY in st.session_state else None


def edited_values(t: int | None) -> np.ndarray:
    """The (Z,) values the sliders edit, in place: z at step t, or the shared z."""
    state = st.session_state.latent_state
    return state["z"][t] if t is not None else state["shared"]


def on_slide(key: str, t: int | None, d: int) -> None:
    edited_values(t)[d] = st.session_state[key]


def pick_step() -> None:
    """A click on a bar of KL per step moves the step slider there (before it is created in the rerun)."""
    points = st.session_state.latent_kl_chart.selection.points
    if points:
        st.session_state[STEP_KEY] = int(points[0]["x"])


if st.session_state.get("latent_state", {}).get("origin") != origin:
    reset_to(base)
if st.session_state.get("latent_step_model") != selected.key:  # another model: open on its busiest step
    st.session_state.pop(STEP_KEY, None)
    st.session_state.latent_step_model = selected.key


def grid_figure(images: torch.Tensor, *, nrow: int, title: str, size: int) -> go.Figure:
    """images (n, C, H, W) tiled `nrow` per row as one PNG picture `size` pixels wide."""
    return canvas_size.picture_figure(viz.tile(images, nrow=nrow), title=title, size=size)


@st.fragment
def editor(mode: str) -> None:
    """The sliders and what they draw in `mode`; a slider, a step or a button here reruns only this (with the
    arguments of the last full run: it reads no widget drawn outside it)."""
    sliders_column, image_column = st.columns([3, 2])
    t = None
    if mode == "step":
        with sliders_column:
            t = app_common.step_controls(T, key=STEP_KEY, default=busiest + 1) - 1
            if kl is not None:
                chart = viz.kl_per_step_figure(kl.sum(1), step=t + 1, title=None)
                chart.update_layout(height=app_common.figure_px(100), margin={"t": 4, "b": 24}, xaxis={"title": None})
                st.plotly_chart(
                    chart,
                    key="latent_kl_chart",
                    on_select=pick_step,
                    selection_mode="points",
                    config={"displayModeBar": False},
                )
    values = edited_values(t)
    spent = None if kl is None else kl[t] if t is not None else kl.sum(0)  # (Z,) nats per dimension
    order = latent.dims_by_kl(kl, t) if kl is not None else list(range(Z))

    def slider(container, d: int) -> None:
        """A slider for z[d], created from z whenever its own state was cleared (so the thumb shows z)."""
        key = f"{SLIDER_PREFIX}{mode}_{t}_{d}"
        if key not in st.session_state:
            st.session_state[key] = float(np.clip(values[d], -LIMIT, LIMIT))
        label = f"z[{d}]" + (f" · {float(spent[d]):.2f} nats" if spent is not None else "")
        container.slider(label, -LIMIT, LIMIT, step=0.05, key=key, on_change=on_slide, args=(key, t, d))

    with sliders_column:
        where = f"step t={t + 1}" if t is not None else "every step"
        title_column, reset_column, random_column = st.columns([2, 2, 2], vertical_alignment="center")
        title_column.markdown(f"**z at {where}**")
        reset_column.button(
            "Reset to the seed's z", icon=":material/restart_alt:", key="latent_reset", on_click=reset_to, args=(base,)
        )
        random_column.button("Randomise z", icon=":material/casino:", key="latent_randomise", on_click=randomise)
        left, right = st.columns(2)
        for i, d in enumerate(order[:SHOWN]):
            slider(left if i % 2 == 0 else right, d)
        if Z > SHOWN:
            more = st.expander(f"The other {Z - SHOWN} dimensions (less KL)", key="latent_more", on_change="rerun")
            if more.open:  # drawn only while open, one group of ranks at a time: each slider drawn slows every drag
                groups = [(first, min(first + SHOWN, Z)) for first in range(SHOWN, Z, SHOWN)]
                start, stop = more.selectbox(
                    "KL ranks", groups, key="latent_group", format_func=lambda g: f"ranks {g[0] + 1}–{g[1]}"
                )
                left, right = more.columns(2)
                for i, d in enumerate(order[start:stop]):
                    slider(left if i % 2 == 0 else right, d)

    current = current_z(mode)
    decodes = st.session_state.setdefault("_latent_decodes", latent.RecentDecodes())
    canvases = decodes.decode(model, selected.key, current).canvases[:, 0]  # (T, C, H, W) of the one sample
    with image_column:
        drawn = viz.image_figure if cfg.channels == 1 else canvas_size.picture_figure
        st.plotly_chart(
            drawn(
                canvases[-1], title=f"σ(c<sub>{T}</sub>) drawn from this z", size=app_common.figure_px(viz.IMAGE_PIXELS)
            ),
            key="latent_image",
            width="content",
        )
        shown_steps = np.unique(np.linspace(0, T - 1, min(T, 8)).round().astype(int))
        st.plotly_chart(
            grid_figure(
                canvases[shown_steps],
                nrow=len(shown_steps),
                title="canvas at t = " + ", ".join(str(s + 1) for s in shown_steps),
                size=app_common.figure_px(380),
            ),
            key="latent_steps",
            width="content",
        )

    json_box = st.expander("Copy or paste z as JSON", key="latent_json_box", on_change="rerun")
    if json_box.open:  # 6,400 numbers for the paper's model: written out only while someone looks
        json_box.caption(f"T={T} lists of Z={Z} numbers (one per step), or one list of {Z} numbers used at every step.")
        # plain text: the browser's syntax highlighting of that many numbers would take a second a drag
        json_box.code(latent.z_to_json(torch.from_numpy(current)), language=None, wrap_lines=True, height=120)
        json_box.text_area("Paste z here", key="latent_json", height=100)
        json_box.button("Use the pasted z", key="latent_apply_json", on_click=apply_json)
        if st.session_state.get("latent_json_error"):
            json_box.error(f"The pasted z can't be used: {st.session_state.latent_json_error}")


editor(mode)
explained = ["latent_picture", "canvas_whole", *(["kl_average"] if mode == "step" and kl is not None else [])]
for column, name in zip(st.columns(len(explained)), explained, strict=True):  # outside the editor: a drag skips them
    app_views.explain(views.EXPLANATIONS[name], column)

st.subheader("Interpolation between two seeds")
a_column, b_column, n_column = st.columns(3)
app_common.remember("latent_seed_a", seed)
app_common.remember("latent_seed_b", min(seed + 1, app_common.MAX_SEED))
seed_a = int(a_column.number_input("From seed", 0, app_common.MAX_SEED, step=1, key="latent_seed_a"))
seed_b = int(b_column.number_input("To seed", 0, app_common.MAX_SEED, step=1, key="latent_seed_b"))
n = n_column.slider("Images", 3, 12, 8, key="latent_interpolation_n")


@st.cache_resource(max_entries=32, show_spinner=False)  # shared, not copied: a pickled Figure is validated again
def interpolation_figure(_model, model_key: str, seed_a: int, seed_b: int, sample: int, n: int) -> go.Figure:
    """The strip of n pictures from sample #sample of seed_a to the same sample of seed_b (slerp), as a figure:
    drawn once per choice, so a rerun for anything else on the page only looks it up."""
    ends = [latent.prior_z(s, T, Z, app_common.SAMPLES)[:, sample] for s in (seed_a, seed_b)]
    path = latent.interpolate(*ends, n)  # (n, T, Z)
    strip = app_common.decode_final(_model, model_key, path.transpose(0, 1).contiguous().numpy())
    title = f"sample #{sample + 1}: seed {seed_a} → seed {seed_b} (slerp)"
    return grid_figure(strip, nrow=n, title=title, size=90 * n)


st.plotly_chart(
    interpolation_figure(model, selected.key, seed_a, seed_b, sample, n),
    key="latent_interpolation",
    width="content",
)
app_views.explain(views.EXPLANATIONS["interpolation"])

st.subheader("2-D walk over two dimensions")
first_column, second_column, span_column, size_column = st.columns(4)
overall = latent.dims_by_kl(kl) if kl is not None else list(range(Z))  # a fixed order, whatever the step
first = first_column.selectbox(
    "Rows: dimension", overall, index=0, key="latent_walk_first", format_func=lambda d: f"z[{d}]"
)
across = [d for d in overall if d != first] or overall  # another dimension than the rows' (a 1-D z has one)
second = second_column.selectbox(
    "Columns: dimension", across, index=0, key="latent_walk_second", format_func=lambda d: f"z[{d}]"
)
span = span_column.slider("From −s to s", 0.5, LIMIT, 2.0, step=0.5, key="latent_walk_span")
k = size_column.select_slider("Grid", [3, 5, 7], value=5, key="latent_walk_k")


def snapshot(mode: str) -> None:
    st.session_state.latent_walk = {"origin": origin, "z": current_z(mode).copy(), "step": edited_step(mode)}


if st.session_state.get("latent_walk", {}).get("origin") != origin:
    snapshot(mode)
walk = st.session_state.latent_walk
st.button("Walk around the current z", key="latent_walk_update", on_click=snapshot, args=(mode,))


@st.cache_resource(max_entries=32, show_spinner=False)  # as interpolation_figure
def walk_figure(
    _model, model_key: str, z: np.ndarray, step: int | None, dims: tuple[int, int], span: float, k: int
) -> go.Figure:
    """The k x k walk around z (T, Z) over dimensions `dims` from -span to span, at `step` (0-based) or every step
    when None, as a figure: drawn once per choice, so a rerun for anything else only looks it up."""
    grid = latent.walk_grid(torch.from_numpy(z), dims, torch.linspace(-span, span, k), step)
    walked = app_common.decode_final(_model, model_key, grid.transpose(0, 1).contiguous().numpy())
    at = f"at step t={step + 1}" if step is not None else "at every step"
    title = f"z[{dims[0]}] down, z[{dims[1]}] across, {at}"
    return grid_figure(walked, nrow=k, title=title, size=60 * k + 60)


st.plotly_chart(
    walk_figure(model, selected.key, walk["z"], walk["step"], (first, second), span, k),
    key="latent_walk",
    width="content",
)
app_views.explain(views.EXPLANATIONS["walk"])
st.caption(
    "The walk starts from z as it was when you pressed the button (or opened this page), so moving a slider stays fast."
)
