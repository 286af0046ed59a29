"""Reconstruct: give the model a digit and step through what it reads, how wrong its canvas is, and what it writes."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas

import app_common
from draw_core.data.images import ImageError, canvas_to_grey, prepare_digit, prepare_upload
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
source = (
    st.segmented_control(
        "Input", list(SOURCES), format_func=SOURCES.get, key="reconstruct_source", default="sample", width="content"
    )
    or "sample"
)  # clicking the chosen option again deselects it
input_column, settings_column = st.columns([1, 2])


def stop_with(message: str, *, error: bool = False) -> None:
    (st.error if error else st.info)(message)
    st.stop()


image = None  # (C, H, W) in [0, 1]
with input_column:
    if source == "draw":
        drawing = st_canvas(
            stroke_width=18,
            stroke_color="#FFFFFF",
            background_color="#000000",
            height=280,
            width=280,
            drawing_mode="freedraw",
            return_image_data=True,
            key="reconstruct_canvas",
        )
        if drawing.image_data is None:
            stop_with("Draw a digit with the mouse: white ink on black, like MNIST.")
        try:
            image = prepare_digit(canvas_to_grey(drawing.image_data), height=H, width=W)
        except ImageError:
            stop_with("Draw a digit with the mouse: white ink on black, like MNIST.")
    elif source == "upload":
        upload = st.file_uploader(
            "An image of one digit (any background; it is centred and resized like MNIST)",
            type=["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"],
            key="reconstruct_upload",
        )
        if upload is None:
            stop_with("Upload a picture of a digit: PNG, JPEG, GIF, BMP or WebP.")
        try:
            image = prepare_upload(upload.getvalue(), height=H, width=W)
        except ImageError as error:
            stop_with(f"{upload.name} can't be used: {error}", error=True)
    else:
        digits, labels = app_common.sample_digits()
        index = st.number_input(
            f"Test digit (0-{len(digits) - 1})",
            0,
            len(digits) - 1,
            step=1,
            key="reconstruct_index",
            help="a real MNIST test digit from the shipped sample",
        )
        image = digits[index]
        st.caption(f"label {int(labels[index])}")
if tuple(image.shape) != (C, H, W):
    stop_with(f"This model takes {C}×{H}×{W} images; the input is {tuple(image.shape)}.", error=True)

with settings_column:
    seed = st.number_input("Posterior noise seed", 0, app_common.MAX_SEED, step=1, key="reconstruct_seed")
    step = app_common.step_controls(cfg.T)
t = step - 1
trace = app_common.reconstruction(model, selected.key, image.unsqueeze(0).numpy(), int(seed))
read_window = views.window_at(trace.read_attn, cfg.read_n, t, 0)
write_window = views.window_at(trace.write_attn, cfg.write_n, t, 0)
show_centres = st.toggle("Grid centres", key="reconstruct_centres", help="hover them for gX, gY, δ, σ, γ")

columns = st.columns(4)
input_figure = viz.image_figure(image, title=f"input x, read window at t={step}", size=240)
views.draw_window(input_figure, read_window, kind="read", show_centres=show_centres)
columns[0].plotly_chart(input_figure, key="reconstruct_input", width="content")
error_figure = viz.signed_image_figure(
    trace.errors[t, 0], title=f"error x̂<sub>{step}</sub> = x − σ(c<sub>{step - 1}</sub>)", size=240
)
views.draw_window(error_figure, read_window, kind="read")
columns[1].plotly_chart(error_figure, key="reconstruct_error", width="content")
canvas_figure = viz.image_figure(trace.canvases[t, 0], title=f"canvas σ(c<sub>{step}</sub>), write window", size=240)
views.draw_window(canvas_figure, write_window, kind="write", show_centres=show_centres)
columns[2].plotly_chart(canvas_figure, key="reconstruct_canvas_figure", width="content")
final_figure = viz.image_figure(trace.canvases[-1, 0], title=f"reconstruction σ(c<sub>{cfg.T}</sub>)", size=240)
columns[3].plotly_chart(final_figure, key="reconstruct_final", width="content")

glimpse = trace.glimpses[t, 0]  # (2C, N, N) with read attention, (2C, H, W) without
size = 240 if cfg.read_attn else 200
read_what = views.glimpse_label(cfg)
glimpse_x, glimpse_error, kl_column = st.columns([1, 1, 2])
peak = max(float(glimpse[:C].abs().max()), 1e-6)
glimpse_x.plotly_chart(
    viz.image_figure(glimpse[:C], title=f"read from x: {read_what}", zmax=peak, size=size),
    key="reconstruct_glimpse_x",
    width="content",
)
peak_error = max(float(glimpse[C:].abs().max()), 1e-6)
glimpse_error.plotly_chart(
    viz.image_figure(
        glimpse[C:], title="read from x̂ (error)", zmin=-peak_error, zmax=peak_error, colorscale=viz.SIGNED, size=size
    ),
    key="reconstruct_glimpse_error",
    width="content",
)
kl = views.kl_per_glimpse(trace)  # (T,) nats
kl_column.plotly_chart(
    viz.kl_per_step_figure(kl, step=step, title=f"how many nats each glimpse spends (total {float(kl.sum()):.1f})"),
    key="reconstruct_kl",
)
st.caption(
    f"Glimpses are γ-scaled (eq. 27) and shown with their own range (x: 0…{peak:.3g}, x̂: ±{peak_error:.3g}). "
    + ("" if cfg.read_attn else "This model reads the whole image and error (eq. 17).")
)
