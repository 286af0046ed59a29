"""Reconstruct: give the model an image and step through what it reads, how wrong its canvas is, and what it writes.

The input is a test image of the model's own dataset (its shipped sample), a drawing, or an uploaded file of any
mode (draw_core.data.images converts it for the model and the page says what was converted). The step-through view is
one timeline figure that the browser moves through without a rerun (app_views.follow): the input with the read
window, the error x̂ₜ with it, the canvas with the write window, the glimpses and the nats each step spends, all at
the same step; a click on a bar jumps there. Below it, the noise in z: several draws z ~ Q(z|x) for the same image,
their spread, the posterior σ against the prior's 1 and the reconstruction with z = μ
(draw_core.present.posterior_noise).
"""

import hashlib

import streamlit as st

import app_common
import app_views
from draw_core.data import dataset_names, get_dataset
from draw_core.data.images import FORMAT_NAMES
from draw_core.present import canvas_size, posterior_noise, views, viz

selected = app_common.require_checkpoint(need="generates")
model, cfg = selected.model, selected.config
C, H, W = cfg.channels, cfg.height, cfg.width

st.title("Reconstruct")
st.caption(
    "The encoder reads the input x and the error x̂ₜ = x − σ(c₍ₜ₋₁₎) through its read window (eqs 3-4, 27), "
    "picks zₜ, and the decoder writes a patch onto the canvas through its write window (eq. 29)."
)
SOURCES = {"sample": "Test image", "draw": "Draw", "upload": "Upload an image"}
MNIST_SIDE = 28  # a grey field larger than one MNIST digit (mnist-two's 60×60) keeps a drawing or upload as it is
DRAW_PX = 280  # screen pixels of the drawing canvas's side
PEN = 2.0  # the drawing pen's width in the model's pixels, about MNIST's stroke


with app_common.controls():  # folded away in presentation mode
    app_common.remember("reconstruct_source", "sample")  # kept across pages: the lab link's round trip comes back
    source = (
        st.segmented_control("Input", list(SOURCES), format_func=SOURCES.get, key="reconstruct_source", width="content")
        or "sample"
    )  # clicking the chosen option again deselects it
    input_column, settings_column = st.columns([1, 2])
    with settings_column:  # drawn before the input can stop the page, so these keep their state while it waits
        app_common.remember("reconstruct_seed", 0)
        seed = st.number_input("Posterior noise seed", 0, app_common.MAX_SEED, step=1, key="reconstruct_seed")
        app_common.remember("reconstruct_centres", False)
        show_centres = st.toggle("Grid centres", key="reconstruct_centres", help="dot the N×N filter centres")

    image, digit = None, None  # (C, H, W) in [0, 1]; the test image's index, when it is one
    as_drawn = C == 1 and max(H, W) > MNIST_SIDE  # a drawing or an upload keeps its layout instead of being centred
    with input_column:
        if source == "draw":
            if as_drawn:
                st.caption(f"The canvas is the model's {H}×{W} field: digits stay where you draw them.")
            image = app_common.drawn_digit(
                key="reconstruct_canvas",
                side_px=DRAW_PX,
                stroke=round(DRAW_PX / max(H, W) * PEN) if as_drawn else 18,
                channels=C,
                height=H,
                width=W,
                as_drawn=as_drawn,
            )
        elif source == "upload":
            if C == 3:
                label = "An image (any mode; cropped about its centre and resized to the model's size)"
            elif as_drawn:
                label = (
                    f"An image of digits (any background; laid out as it is and fitted to the model's {H}×{W} field)"
                )
            else:
                label = "An image of a digit (any background; it is centred and resized like MNIST)"
            image = app_common.uploaded_digit(
                key="reconstruct_upload",
                label=label,
                channels=C,
                height=H,
                width=W,
                as_drawn=as_drawn,
                waiting=None if C == 1 else f"Upload an image: {FORMAT_NAMES}, any colour mode.",
            )
        else:
            own = selected.checkpoint.meta.get("dataset")
            samples = views.sample_datasets((C, H, W), prefer=own)
            if own in dataset_names() and own not in samples and tuple(get_dataset(own).shape) == (C, H, W):
                st.info(  # its dataset ships no sample and its files are not here (svhn)
                    get_dataset(own).how_to_get() + (f" Meanwhile, test images of **{samples[0]}**." if samples else "")
                )
            if not samples:
                app_common.stop_with("No shipped sample has this model's image size: draw or upload an image instead.")
            digits, labels = app_common.dataset_sample(samples[0])
            app_common.remember_within("reconstruct_index", 0, 0, len(digits) - 1)  # another sample may be longer
            digit = st.number_input(
                f"Test image (0-{len(digits) - 1})",
                0,
                len(digits) - 1,
                step=1,
                key="reconstruct_index",
                help=f"a test image from the shipped sample of {samples[0]}",
            )
            image = digits[digit]
            st.caption(f"{samples[0]} · label {get_dataset(samples[0]).label_text(labels[digit])}")
if tuple(image.shape) != (C, H, W):
    app_common.stop_with(f"This model takes {C}×{H}×{W} images; the input is {tuple(image.shape)}.", error=True)

app_common.remember("step", app_common.url_int("step", cfg.T, 1, cfg.T))  # a shared link opens at its step
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
    lab_query = views.lab_link(  # a test image: the lab opens on the same image of the same dataset
        read_window,
        cfg.read_n,
        shape=(C, H, W),
        prefer=samples[0] if digit is not None else selected.card.get("dataset"),
        digit=None if digit is None else int(digit),
    )
    app_common.page_link(
        "attention_lab.py",
        label=f"Open this step's read window (t={step}) in the Attention lab",
        icon=":material/center_focus_strong:",
        query_params=lab_query,
    )
st.caption(
    (
        "Glimpses are γ-scaled (eq. 27)"
        if cfg.read_attn
        else "This model reads the whole image and error, unscaled (eq. 17)"
    )
    + "; they are drawn on one colour range over all steps, so steps compare."
)


@st.cache_resource(max_entries=16, show_spinner="Drawing z ~ Q(z|x) several times…")
def noise_in_z(model_key: str, image_digest: str, seed: int, _image) -> posterior_noise.PosteriorNoise:
    """The image's passes with z ~ Q (from `seed`) and with z = μ, shared read-only by sessions."""
    return posterior_noise.posterior_noise(model, _image, seed=seed)


st.subheader("Noise in z")
st.caption(
    f"{posterior_noise.SAMPLES} passes over the same image, each drawing its own z₁…z_T ~ Q(Z_t | h_enc_t) "
    "(eq. 6; seed above), beside the pass that takes z_t = μ_t (no noise)."
)
noise = noise_in_z(selected.key, digest, int(seed), image)
small = app_common.figure_px(200)
grid_column, spread_column, mean_column = st.columns([1.4, 1, 1])
grid_column.plotly_chart(  # PNG pictures (canvas_size.picture_figure): no per-pixel JSON at every step
    canvas_size.picture_figure(
        viz.tile(noise.samples, nrow=4),
        title=f"{posterior_noise.SAMPLES} draws of z ~ Q(z|x)",
        size=app_common.figure_px(300),
    ),
    key="reconstruct_noise_samples",
    width="content",
)
peak = max(float(noise.spread.max()), 1e-6)
spread_column.plotly_chart(
    viz.image_figure(
        noise.spread,
        title="std over the draws" + (" (mean of R, G, B)" if C == 3 else ""),
        zmax=peak,
        colorscale=viz.WEIGHTS,
        colorbar="std",
        size=small,
    ),
    key="reconstruct_noise_spread",
    width="content",
)
mean_column.plotly_chart(
    canvas_size.picture_figure(noise.at_mean, title="z = μ (no noise)", size=small),
    key="reconstruct_noise_mean",
    width="content",
)
app_views.explain(posterior_noise.EXPLANATIONS["spread"])
app_common.remember("reconstruct_sigma_all", False)
every_step = st.toggle("σ averaged over all steps", key="reconstruct_sigma_all", help="off: σ of the step chosen above")
which = "averaged over all steps" if every_step else f"at t = {step}"
st.plotly_chart(
    posterior_noise.sigma_figure(
        noise.sigma_per_dimension(None if every_step else t),
        title=f"posterior σ per dimension {which} (mean over the {posterior_noise.SAMPLES} draws)",
    ),
    key="reconstruct_noise_sigma",
    width="stretch",
)
app_views.explain(posterior_noise.EXPLANATIONS["sigma"])
st.markdown(posterior_noise.WHAT_NOISE_BUYS)
