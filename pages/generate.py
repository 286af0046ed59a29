"""Generate: samples from a seed, stepped through t = 1..T with the write window drawn as in Fig. 1.

The step-through view is one timeline figure: the browser holds every step and moves the canvas, what each step
added, the window and the window's parameters together (app_views.follow), without a rerun; the step the user stops
at comes back to the server. The seed, the step, the sample and the checkpoint are in the URL, so a teacher can share
the exact view. Below it, the canvas size: the same z drawn on a canvas 2 or 4 times the model's (write attention
only), and what the parameter count owes to the image size (draw_core.present.canvas_size).
"""

import random

import streamlit as st

import app_common
import app_views
from draw_core.config import DrawConfig
from draw_core.present import canvas_size, render, views, viz

selected = app_common.require_checkpoint(need="generates")
model, cfg = selected.model, selected.config


def new_seed() -> None:
    st.session_state.seed = random.randrange(app_common.MAX_SEED)


app_common.remember("seed", app_common.url_int("seed", 0, 0, app_common.MAX_SEED))
app_common.remember("sample", app_common.url_int("sample", 0, 0, app_common.SAMPLES - 1))
app_common.remember("step", app_common.url_int("step", cfg.T, 1, cfg.T))
app_common.remember("generate_centres", False)

st.title("Generate")
st.caption("Samples from the prior, drawn step by step: z₁…z_T ~ N(0, I) drive the decoder (sec. 2.3).")
seed_column, button_column, sample_column, centres_column = st.columns([2, 1.6, 2, 1.6], vertical_alignment="bottom")
seed = seed_column.number_input("Seed", 0, app_common.MAX_SEED, step=1, key="seed")
button_column.button("New samples", icon=":material/casino:", key="generate_new", on_click=new_seed)
sample = sample_column.selectbox("Sample", range(app_common.SAMPLES), key="sample", format_func=lambda i: f"#{i + 1}")
show_centres = centres_column.toggle("Grid centres", key="generate_centres", help="dot the N×N filter centres")

trace = app_common.generation(model, selected.key, int(seed))
step = app_common.step_controls(cfg.T)
t = step - 1
if selected.source == "upload":  # no link can name an upload: leave out the model the URL named before
    st.query_params.pop(app_common.PICKER_KEY, None)
else:
    st.query_params.update({app_common.PICKER_KEY: st.session_state[app_common.PICKER_KEY]})
st.query_params.update(seed=str(seed), step=str(step), sample=str(sample))

canvases = trace.canvases[:, sample]  # (T, C, H, W) this sample's sigma(c_t)
track = views.window_at(trace.write_attn, cfg.write_n, slice(None), sample)  # every step's write window
size = app_common.figure_px(250)


@st.cache_resource(max_entries=32, show_spinner=False)
def timeline(model_key: str, seed: int, sample: int, show_centres: bool, size: int, _canvases, _track):
    """The sample's timeline, shared read-only by sessions; it opens on step T and the browser moves it to the
    session's step, so moving the step never changes (or resends) it."""
    return viz.generation_timeline(
        _canvases, views.canvas_changes(_canvases), _track, show_centres=show_centres, size=size
    )


figure = timeline(selected.key, int(seed), sample, show_centres, size, canvases, track)
st.plotly_chart(figure, key="generate_timeline", width="content")
app_views.follow("generate_timeline", T=cfg.T, step=step, initial=cfg.T)
if track is not None:
    st.caption(views.WINDOW_RULE)
else:
    st.info("This model writes the whole canvas at every step (no write attention, eq. 18).")
explained = ["canvas", "added", "write_params"] if track is not None else ["canvas_whole", "added_whole"]
for column, name in zip(st.columns([1, 1, 1.5]), explained, strict=False):
    app_views.explain(views.EXPLANATIONS[name], column)

grid_column, side_column = st.columns([1.2, 1])
grid_column.plotly_chart(  # a PNG picture: an RGB image trace would send every sub-pixel as JSON at each step
    canvas_size.picture_figure(
        viz.tile(trace.canvases[t], nrow=4), title=f"all samples at t={step}", size=app_common.figure_px(360)
    ),
    key="generate_grid",
    width="content",
)
with side_column:
    if track is not None:
        app_common.page_link(
            "attention_lab.py",
            label=f"Open this step's write window (t={step}) in the Attention lab",
            icon=":material/center_focus_strong:",
            query_params=views.lab_link(
                views.window_at(trace.write_attn, cfg.write_n, t, sample),
                cfg.write_n,
                shape=(cfg.channels, cfg.height, cfg.width),
                kind="write",
                prefer=selected.card.get("dataset"),
            ),
        )
    gif_scale = st.select_slider(
        "GIF size",
        [4, 8, 12, 16],
        value=render.GIF_SCALE,
        key="generate_gif_scale",
        format_func=lambda s: f"{s * cfg.width}×{s * cfg.height + render.label_height(s * cfg.height)} px",
        help="Each frame says its step under the picture.",
    )
    st.download_button(
        "Sample's generation (GIF)",
        lambda: render.generation_gif(canvases, track.geometry if track is not None else None, scale=gif_scale),
        icon=":material/download:",
        file_name=f"draw-{selected.name}-seed{seed}-sample{sample + 1}.gif",
        mime="image/gif",
        key="generate_gif",
        on_click="ignore",
    )
    st.download_button(
        "All samples at this step (PNG)",
        lambda: render.grid_png(trace.canvases[t], nrow=4, scale=4),
        icon=":material/download:",
        file_name=f"draw-{selected.name}-seed{seed}-t{step}.png",
        mime="image/png",
        key="generate_png",
        on_click="ignore",
    )


@st.cache_resource(max_entries=16, show_spinner="Drawing on the larger canvas…")
def larger_canvas(model_key: str, seed: int, sample: int, scale: int, _z) -> canvas_size.LargerCanvas:
    """This sample's z on the model's canvas and on one `scale` times larger, shared read-only by sessions."""
    return canvas_size.draw_larger(model, _z, scale)


@st.cache_data(show_spinner=False)
def parameter_counts(config: dict) -> dict[str, list[int]]:
    """canvas_size.parameter_counts of a config (given as its dict), once per server."""
    return canvas_size.parameter_counts(DrawConfig.from_dict(config))


st.subheader("Canvas size")
sizes, reason = canvas_size.canvas_sizes(cfg), canvas_size.why_not_larger(cfg)
scale = (
    st.segmented_control(
        "Draw this sample's z on a canvas of",
        list(sizes),
        format_func=sizes.get,
        key="generate_canvas",
        default=1,
        disabled=reason is not None,
        help=reason,
    )
    or 1
)  # clicking the chosen option again deselects it
if reason is not None:
    st.caption(reason)
else:
    st.markdown(canvas_size.canvas_text(cfg))
    if scale == 1:
        st.caption("Pick 2× or 4× to draw the same z on a larger canvas beside the model's own picture.")
    else:
        drawn = larger_canvas(selected.key, int(seed), sample, scale, trace.z[:, sample])
        own_column, large_column = st.columns(2)
        own_column.plotly_chart(
            canvas_size.picture_figure(drawn.own, title=f"model's canvas {canvas_size.canvas_shape(cfg)}", size=size),
            key="generate_canvas_own",
            width="content",
        )
        large_column.plotly_chart(
            canvas_size.picture_figure(
                drawn.large, title=f"same z on {canvas_size.canvas_shape(cfg, scale)}", size=size
            ),
            key="generate_canvas_large",
            width="content",
        )
        st.caption(
            f"Averaged over {scale}×{scale} blocks, the larger picture differs from the model's own by "
            f"{drawn.pooled_gap:.3f} per pixel on average (levels 0–1)."
        )
        app_views.explain(canvas_size.EXPLANATIONS["larger_canvas"])

st.plotly_chart(
    canvas_size.parameters_figure(
        canvas_size.SIDES,
        parameter_counts(cfg.to_dict()),
        model_side=cfg.width if cfg.height == cfg.width else None,
        title="parameters against image side (this model's T, LSTMs, z and channels)",
    ),
    key="generate_parameters",
    width="stretch",
)
app_views.explain(canvas_size.EXPLANATIONS["parameters"])
