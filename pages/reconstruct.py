"""Reconstruct: give the model a digit and step through what it reads, how wrong its canvas is, and what it writes.

The step-through view is one timeline figure that the browser moves through without a rerun (app_views.follow):
the input with the read window, the error x̂ₜ with it, the canvas with the write window, the glimpses and the nats
each step spends, all at the same step; a click on a bar jumps there.
"""

import hashlib

import streamlit as st

import app_common
import app_views
from draw_core.present import views, viz

selected = app_common.require_checkpoint(need="generates")
model, cfg = selected.model, selected.config
C, H, W = cfg.channels, cfg.height, cfg.width

st.title("Reconstruct")
st.caption(
    "The encoder reads the input x and the error x̂ₜ = x − σ(c₍ₜ₋₁₎) through its read window (eqs 3-4, 27), "
    "picks zₜ, and the decoder writes a patch onto the canvas through its write window (eq. 29)."
)
SOURCES = {"sample": "Test digit", "draw": "Draw", "upload": "Upload an image"}


with app_common.controls():  # folded away in presentation mode
    source = (
        st.segmented_control(
            "Input", list(SOURCES), format_func=SOURCES.get, key="reconstruct_source", default="sample", width="content"
        )
        or "sample"
    )  # clicking the chosen option again deselects it
    input_column, settings_column = st.columns([1, 2])
    with settings_column:  # drawn before the input can stop the page, so these keep their state while it waits
        seed = st.number_input("Posterior noise seed", 0, app_common.MAX_SEED, step=1, key="reconstruct_seed")
        app_common.remember("reconstruct_centres", False)
        show_centres = st.toggle("Grid centres", key="reconstruct_centres", help="dot the N×N filter centres")

    image, digit = None, None  # (C, H, W) in [0, 1]; the test digit's index, when it is one
    with input_column:
        if source == "draw":
            image = app_common.drawn_digit(key="reconstruct_canvas", side_px=280, stroke=18, height=H, width=W)
        elif source == "upload":
            image = app_common.uploaded_digit(
                key="reconstruct_upload",
                label="An image of one digit (any background; it is centred and resized like MNIST)",
                height=H,
                width=W,
            )
        else:
            own = views.sample_datasets((cfg.channels, H, W), prefer=selected.checkpoint.meta.get("dataset"))
            if not own:
                app_common.stop_with("No shipped sample has this model's image size: draw or upload an image instead.")
            digits, labels = app_common.dataset_sample(own[0])
            digit = st.number_input(
                f"Test digit (0-{len(digits) - 1})",
                0,
                len(digits) - 1,
                step=1,
                key="reconstruct_index",
                help=f"a test image from the shipped sample of {own[0]}",
            )
            image = digits[digit]
            st.caption(f"label {int(labels[digit])}")
if tuple(image.shape) != (C, H, W):
    app_common.stop_with(f"This model takes {C}×{H}×{W} images; the input is {tuple(image.shape)}.", error=True)

with settings_column:
    step = app_common.step_controls(cfg.T)
t = step - 1
st.query_params.update(step=str(step))  # the step the browser stopped at, in the address bar
pixels = image.unsqueeze(0).numpy()  # (1, C, H, W)
trace = app_common.reconstruction(model, selected.key, pixels, int(seed))
size = app_common.figure_px(190)


@st.cache_resource(max_entries=32, show_spinner=False)
def timeline(model_key: str, image_digest: str, seed: int, show_centres: bool, size: int, _image, _trace):
    """The image's timeline, shared read-only by sessions; it opens on step T and the browser moves it to the
    session's step, so moving the step never changes (or resends) it."""
    return viz.reconstruction_timeline(
        _image,
        _trace.canvases[:, 0],
        _trace.errors[:, 0],
        _trace.glimpses[:, 0],
        views.kl_per_glimpse(_trace),
        read=views.window_at(_trace.read_attn, cfg.read_n, slice(None), 0),
        write=views.window_at(_trace.write_attn, cfg.write_n, slice(None), 0),
        glimpse_title=views.glimpse_label(cfg),
        show_centres=show_centres,
        size=size,
    )


digest = hashlib.sha256(pixels.tobytes()).hexdigest()
figure = timeline(selected.key, digest, int(seed), show_centres, size, image, trace)
st.plotly_chart(figure, key="reconstruct_timeline", width="content")
app_views.follow("reconstruct_timeline", T=cfg.T, step=step, initial=cfg.T)
if cfg.read_attn or cfg.write_attn:
    st.caption(views.WINDOW_RULE)
explained = [name for name, shown in (("read", cfg.read_attn), ("error", True), ("write", cfg.write_attn)) if shown]
for column, name in zip(st.columns(len(explained) + 1), [*explained, "kl"], strict=True):
    app_views.explain(views.EXPLANATIONS[name], column)

read_window = views.window_at(trace.read_attn, cfg.read_n, t, 0)
if read_window is not None:
    st.page_link(
        "pages/attention_lab.py",
        label=f"Open this step's read window (t={step}) in the Attention lab",
        icon=":material/center_focus_strong:",
        query_params=views.lab_link(read_window, cfg.read_n, digit=None if digit is None else int(digit)),
    )
st.caption(
    "Glimpses are γ-scaled (eq. 27) and drawn on one colour range over all steps, so steps compare. "
    + ("" if cfg.read_attn else "This model reads the whole image and error (eq. 17).")
)
