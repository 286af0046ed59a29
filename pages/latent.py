"""Latent explorer: move z with sliders and watch the decoder redraw; interpolate between seeds; walk a 2-D grid."""

import random

import numpy as np
import streamlit as st
import torch

import app_common
from draw_core.data import get_dataset
from draw_core.present import latent, views, viz

KL_DIGITS = 100  # test digits the KL ordering of the dimensions is measured on
SHOWN = 10  # sliders shown at once: the top of the KL ranking, then a chosen group of ranks in the expander
LIMIT = 4.0  # slider range: z_d in [-LIMIT, LIMIT] (a prior draw is within ±4 with probability 0.99994)

selected = app_common.require_checkpoint(need="generates")
model, cfg = selected.model, selected.config
T, Z = cfg.T, cfg.z_size
measured_on = next(iter(views.evaluation_datasets(cfg, prefer=selected.card.get("dataset"))), None)


@st.cache_data(max_entries=16, show_spinner="Measuring the KL of each latent dimension…")
def kl_table(_model, model_key: str, dataset: str | None) -> torch.Tensor | None:
    """(T, Z) nats spent per step and dimension on the first test images of `dataset`; None without one."""
    if dataset is None:
        return None
    images = get_dataset(dataset).test_set(limit=KL_DIGITS)
    return latent.kl_per_dimension(_model, images, torch.Generator().manual_seed(0))


st.title("Latent explorer")
st.caption(
    "The decoder turns z₁…z_T into a drawing (sec. 2.3). Sliders are ordered by how many nats the encoder "
    f"spends on each dimension on {KL_DIGITS} test digits: the top ones matter most."
)
app_common.remember("seed", 0)
app_common.remember("sample", 0)
seed_column, sample_column, mode_column = st.columns([2, 2, 3], vertical_alignment="bottom")
seed = int(seed_column.number_input("Seed", 0, app_common.MAX_SEED, step=1, key="seed"))
sample = sample_column.selectbox("Sample", range(app_common.SAMPLES), key="sample", format_func=lambda i: f"#{i + 1}")
MODES = {"step": "z of one step t", "shared": "the same z at every step"}
mode = mode_column.radio("Sliders set", list(MODES), format_func=MODES.get, key="latent_mode", horizontal=True)

base = latent.prior_z(seed, T, Z, app_common.SAMPLES)[:, sample].numpy()  # (T, Z): the Generate page's sample
origin = (selected.key, seed, sample)


def clear_sliders() -> None:
    """Forget the sliders' own state so they show the values in latent_state again."""
    for key in [k for k in st.session_state if str(k).startswith("latent_dim_")]:
        del st.session_state[key]


def reset_to(z: np.ndarray) -> None:
    st.session_state.latent_state = {"origin": origin, "z": z.astype(np.float32).copy(), "shared": z[0].copy()}
    st.session_state.pop("latent_json_error", None)
    clear_sliders()


if st.session_state.get("latent_state", {}).get("origin") != origin:
    reset_to(base)
state = st.session_state.latent_state

kl = kl_table(model, selected.key, measured_on)
if mode == "step":
    step = app_common.step_controls(T)
    t = step - 1
    values = state["z"][t]  # (Z,) edited in place by the sliders
    order = latent.dims_by_kl(kl, t) if kl is not None else list(range(Z))
    spent = kl[t] if kl is not None else None
else:
    t = None
    values = state["shared"]
    order = latent.dims_by_kl(kl) if kl is not None else list(range(Z))
    spent = kl.sum(0) if kl is not None else None
current = state["z"] if mode == "step" else np.tile(state["shared"], (T, 1))  # (T, Z)


def slider_key(d: int) -> str:
    return f"latent_dim_{mode}_{t}_{d}"


def on_slide(d: int) -> None:
    values[d] = st.session_state[slider_key(d)]


def slider(container, d: int) -> None:
    """A slider for z[d]; it starts at the value in latent_state (its own state then leads until cleared)."""
    label = f"z[{d}]" + (f" · {float(spent[d]):.2f} nats" if spent is not None else "")
    value = float(np.clip(values[d], -LIMIT, LIMIT))
    container.slider(label, -LIMIT, LIMIT, value, step=0.05, key=slider_key(d), on_change=on_slide, args=(d,))


def randomise() -> None:
    reset_to(np.random.default_rng(random.randrange(2**32)).standard_normal((T, Z)).astype(np.float32))


def apply_json() -> None:
    try:
        z = latent.z_from_json(st.session_state.latent_json, T, Z).numpy()
    except ValueError as error:
        st.session_state.latent_json_error = str(error)
        return
    reset_to(z)


sliders_column, image_column = st.columns([3, 2])
with sliders_column:
    where = f"step t={t + 1}" if t is not None else "every step"
    st.subheader(f"z at {where}")
    reset_column, random_column = st.columns(2)
    reset_column.button(
        "Reset to the seed's z", icon=":material/restart_alt:", key="latent_reset", on_click=reset_to, args=(base,)
    )
    random_column.button("Randomise z", icon=":material/casino:", key="latent_randomise", on_click=randomise)
    left, right = st.columns(2)
    for i, d in enumerate(order[:SHOWN]):
        slider(left if i % 2 == 0 else right, d)
    if Z > SHOWN:
        with st.expander(f"The other {Z - SHOWN} dimensions (less KL)"):
            # one group of ranks at a time: a hundred sliders would make every rerun slow
            groups = [(first, min(first + SHOWN, Z)) for first in range(SHOWN, Z, SHOWN)]
            start, stop = st.selectbox(
                "KL ranks", groups, key="latent_group", format_func=lambda g: f"ranks {g[0] + 1}–{g[1]}"
            )
            left, right = st.columns(2)
            for i, d in enumerate(order[start:stop]):
                slider(left if i % 2 == 0 else right, d)

image = app_common.decode(model, selected.key, current[:, None, :])  # GenerationTrace of one sample
with image_column:
    st.plotly_chart(
        viz.image_figure(image.canvases[-1, 0], title=f"σ(c<sub>{T}</sub>) drawn from this z"),
        key="latent_image",
        width="content",
    )
    shown_steps = np.unique(np.linspace(0, T - 1, min(T, 8)).round().astype(int))
    st.plotly_chart(
        viz.image_grid_figure(
            image.canvases[shown_steps, 0],
            nrow=len(shown_steps),
            title="canvas at t = " + ", ".join(str(s + 1) for s in shown_steps),
            size=380,
        ),
        key="latent_steps",
        width="content",
    )

with st.expander("Copy or paste z as JSON"):
    st.caption(f"T={T} lists of Z={Z} numbers (one per step), or one list of {Z} numbers used at every step.")
    st.code(latent.z_to_json(torch.from_numpy(current)), language="json", wrap_lines=True, height=120)
    st.text_area("Paste z here", key="latent_json", height=100)
    st.button("Use the pasted z", key="latent_apply_json", on_click=apply_json)
    if st.session_state.get("latent_json_error"):
        st.error(f"The pasted z can't be used: {st.session_state.latent_json_error}")

st.subheader("Interpolation between two seeds")
a_column, b_column, n_column = st.columns(3)
app_common.remember("latent_seed_a", seed)
app_common.remember("latent_seed_b", seed + 1)
seed_a = int(a_column.number_input("From seed", 0, app_common.MAX_SEED, step=1, key="latent_seed_a"))
seed_b = int(b_column.number_input("To seed", 0, app_common.MAX_SEED, step=1, key="latent_seed_b"))
n = n_column.slider("Images", 3, 12, 8, key="latent_interpolation_n")
ends = [latent.prior_z(s, T, Z, app_common.SAMPLES)[:, sample] for s in (seed_a, seed_b)]
path = latent.interpolate(*ends, n)  # (n, T, Z)
strip = app_common.decode_final(model, selected.key, path.transpose(0, 1).contiguous().numpy())
st.plotly_chart(
    viz.image_grid_figure(
        strip, nrow=n, title=f"sample #{sample + 1}: seed {seed_a} → seed {seed_b} (slerp)", size=90 * n
    ),
    key="latent_interpolation",
    width="content",
)

st.subheader("2-D walk over two dimensions")
first_column, second_column, span_column, size_column = st.columns(4)
overall = latent.dims_by_kl(kl) if kl is not None else list(range(Z))  # a fixed order, whatever the step
first = first_column.selectbox(
    "Rows: dimension", overall, index=0, key="latent_walk_first", format_func=lambda d: f"z[{d}]"
)
second = second_column.selectbox(
    "Columns: dimension", overall, index=min(1, Z - 1), key="latent_walk_second", format_func=lambda d: f"z[{d}]"
)
span = span_column.slider("From −s to s", 0.5, LIMIT, 2.0, step=0.5, key="latent_walk_span")
k = size_column.select_slider("Grid", [3, 5, 7], value=5, key="latent_walk_k")


def snapshot() -> None:
    st.session_state.latent_walk = {"origin": origin, "z": current.copy(), "step": t}


if st.session_state.get("latent_walk", {}).get("origin") != origin:
    snapshot()
walk = st.session_state.latent_walk
st.button("Walk around the current z", key="latent_walk_update", on_click=snapshot)
grid = latent.walk_grid(torch.from_numpy(walk["z"]), (first, second), torch.linspace(-span, span, k), walk["step"])
walked = app_common.decode_final(model, selected.key, grid.transpose(0, 1).contiguous().numpy())
at = f"at step t={walk['step'] + 1}" if walk["step"] is not None else "at every step"
st.plotly_chart(
    viz.image_grid_figure(walked, nrow=k, title=f"z[{first}] down, z[{second}] across, {at}", size=60 * k + 60),
    key="latent_walk",
    width="content",
)
st.caption(
    "The walk starts from z as it was when you pressed the button (or opened this page), so moving a slider stays fast."
)
