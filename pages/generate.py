"""Generate: samples from a seed, stepped through t = 1..T with the write window drawn as in Fig. 1.

The seed, the step, the sample and the checkpoint are in the URL, so a teacher can share the exact view.
"""

import random

import streamlit as st

import app_common
from draw_core.present import render, views, viz

selected = app_common.require_checkpoint(need="generates")
model, cfg = selected.model, selected.config


def query_int(name: str, default: int, low: int, high: int) -> int:
    """An integer from the URL's query parameters, or `default` when it is missing or malformed."""
    try:
        return min(max(low, int(st.query_params.get(name, default))), high)
    except ValueError:
        return default


def new_seed() -> None:
    st.session_state.seed = random.randrange(app_common.MAX_SEED)


app_common.remember("seed", query_int("seed", 0, 0, app_common.MAX_SEED))
app_common.remember("sample", query_int("sample", 0, 0, app_common.SAMPLES - 1))
app_common.remember("step", query_int("step", cfg.T, 1, cfg.T))

st.title("Generate")
st.caption("Samples from the prior, drawn step by step: z₁…z_T ~ N(0, I) drive the decoder (sec. 2.3).")
seed_column, button_column, sample_column, centres_column = st.columns([2, 1.6, 2, 1.6], vertical_alignment="bottom")
seed = seed_column.number_input("Seed", 0, app_common.MAX_SEED, step=1, key="seed")
button_column.button("New samples", icon=":material/casino:", key="generate_new", on_click=new_seed)
sample = sample_column.selectbox("Sample", range(app_common.SAMPLES), key="sample", format_func=lambda i: f"#{i + 1}")
show_centres = centres_column.toggle("Grid centres", key="generate_centres", help="hover them for gX, gY, δ, σ, γ")

trace = app_common.generation(model, selected.key, int(seed))
step = app_common.step_controls(cfg.T)
t = step - 1
if selected.source != "upload":
    st.query_params.update({app_common.PICKER_KEY: st.session_state[app_common.PICKER_KEY]})
st.query_params.update(seed=str(seed), step=str(step), sample=str(sample))

canvases = trace.canvases[:, sample]  # (T, C, H, W) this sample's sigma(c_t)
track = views.window_at(trace.write_attn, cfg.write_n, slice(None), sample)  # every step's write window
track_geometry = track.geometry if track is not None else None  # what the animation and the GIF draw
window = views.window_at(trace.write_attn, cfg.write_n, t, sample)  # this step's

canvas_column, added_column, chart_column = st.columns([1, 1, 1.3])
canvas_figure = viz.image_figure(canvases[t], title=f"canvas σ(c<sub>{step}</sub>)")
views.draw_window(canvas_figure, window, kind="write", show_centres=show_centres)
added_figure = viz.signed_image_figure(
    views.canvas_change(canvases, t), title=f"added at t={step}: σ(c<sub>t</sub>) − σ(c<sub>t−1</sub>)"
)
views.draw_window(added_figure, window, kind="write")
canvas_column.plotly_chart(canvas_figure, key="generate_canvas", width="content")
added_column.plotly_chart(added_figure, key="generate_added", width="content")
if track is not None:
    over_time = viz.attention_over_time(track.params, step=step, title="write window over t")
    chart_column.plotly_chart(over_time, key="generate_params")
else:
    chart_column.info("This model writes the whole canvas at every step (no write attention, eq. 18).")

grid_column, animation_column = st.columns(2)
grid_column.plotly_chart(
    viz.image_grid_figure(trace.canvases[t], nrow=4, title=f"all samples at t={step}"),
    key="generate_grid",
    width="content",
)


@st.cache_resource(max_entries=16, show_spinner=False)
def animation(model_key: str, seed: int, sample: int, _canvases, _window):
    """The Play/Pause animation of one sample: a read-only figure shared by sessions (building one takes ~50 ms)."""
    return viz.generation_animation(_canvases, _window)


with animation_column:
    figure = animation(selected.key, int(seed), sample, canvases, track_geometry)
    st.plotly_chart(figure, key="generate_animation", width="content")
    st.caption(f"Sample #{sample + 1}, all {cfg.T} steps: Play runs in your browser; the slider under it scrubs.")

download_gif, download_png = st.columns(2)
download_gif.download_button(
    "Sample's generation (GIF)",
    lambda: render.generation_gif(canvases, track_geometry),
    icon=":material/download:",
    file_name=f"draw-{selected.name}-seed{seed}-sample{sample + 1}.gif",
    mime="image/gif",
    key="generate_gif",
    on_click="ignore",
)
download_png.download_button(
    "All samples at this step (PNG)",
    lambda: render.grid_png(trace.canvases[t], nrow=4, scale=4),
    icon=":material/download:",
    file_name=f"draw-{selected.name}-seed{seed}-t{step}.png",
    mime="image/png",
    key="generate_png",
    on_click="ignore",
)
