"""Attention lab: DRAW's Gaussian filterbank on its own (sec. 3.2, eqs 19-29), no model needed.

The sliders set the window in the paper's pixel units; views.attention_lab computes everything shown with the
draw_core.nn.attention functions the model calls. The window is in the URL (n, gx, gy, delta, sigma2, gamma, the
digit and its dataset), both ways: the Generate and Reconstruct pages link here with a model's window (Reconstruct
with its test image's index and dataset, so a colour model's link opens on its CIFAR-10 image), and a lab view can be
shared. A dataset the URL names that is not registered, or has no sample here, is said, and the lab stays on its own.
"""

import streamlit as st

import app_common
import app_views
from draw_core.data import dataset_names, get_dataset
from draw_core.present import views, viz

selected = app_common.page_setup()  # the shared sidebar; this page needs no model, but opens on its dataset
st.title("Attention lab")
st.caption(
    "An N×N grid of Gaussian filters, placed by its centre (g_X, g_Y) and stride δ, blurred by σ², scaled by γ. "
    "The model predicts raw versions of these five numbers at every step (eq. 21), turned into pixels by eqs 22-24; "
    "here you set them yourself."
)


SIZE_FREE_KEYS = ("lab_dataset", "lab_window_kind", "lab_centres")  # settings that hold for any image size


def forget_window() -> None:
    """Another dataset means another image size: the window's sliders (and the image index) start again from their
    defaults; the window's kind and the grid-centre toggle stay."""
    for key in [key for key in st.session_state if str(key).startswith("lab_") and key not in SIZE_FREE_KEYS]:
        del st.session_state[key]


# A window arriving in the URL (a link from a model's page, a shared view) is applied once: after that, the widgets
# write the URL, so a rerun finds in it what it wrote (kept under "_lab_url") and leaves the widgets alone.
URL_KEYS = ("n", "gx", "gy", "delta", "sigma2", "gamma", "digit", "dataset", "window")
in_url = {key: st.query_params[key] for key in URL_KEYS if key in st.query_params}
arrived = bool(in_url) and in_url != st.session_state.get("_lab_url")
notes = []

own = selected.card.get("dataset") if selected is not None else None  # a colour model's lab opens on CIFAR-10
offered = views.sample_datasets(prefer=own)
asked = in_url.get("dataset") if arrived else None
if asked in offered and asked != st.session_state.get("lab_dataset", offered[0]):
    forget_window()  # as a change of the selectbox would
    st.session_state.lab_dataset = asked
elif asked is not None and asked not in offered:
    why = "has no sample on this server" if asked in dataset_names() else f"is not one of {', '.join(dataset_names())}"
    notes.append(f"The link's dataset '{asked}' {why}: showing {st.session_state.get('lab_dataset', offered[0])}.")
if app_common.remember("lab_dataset", offered[0]) not in offered:  # remembered, but no longer offered here
    forget_window()
    st.session_state.lab_dataset = offered[0]
dataset = st.selectbox("Image from", offered, key="lab_dataset", on_change=forget_window)
digits, labels = app_common.dataset_sample(dataset)
C, H, W = digits.shape[-3:]  # digits (N, C, H, W)
ranges = views.lab_ranges(H, W)  # grown with the image: a 60×60 or 100×100 image gets a larger window and margin

if arrived:
    carried, out_of_range = views.lab_settings(in_url, H, W)
    notes += out_of_range
    digit = in_url.get("digit", "")
    if digit.isascii() and digit.isdecimal():  # '²' is a digit that int() refuses
        carried["digit"] = min(int(digit) if len(digit) < 10 else len(digits), len(digits) - 1)
    for key, value in carried.items():
        st.session_state[f"lab_{key}"] = value
    st.session_state.lab_window_kind = "write" if in_url.get("window") == "write" else "read"
for note in notes:
    st.warning(note)
for key, value in {**views.lab_defaults(H, W), "digit": 0, "window_kind": "read"}.items():
    app_common.remember(f"lab_{key}", value)

LABELS = {
    "n": "N: grid size (N×N filters)",
    "gx": "g_X: grid centre, x (pixels 1…A)",
    "gy": "g_Y: grid centre, y (pixels 1…B)",
    "delta": "δ: stride between filters (pixels)",
    "sigma2": "σ²: filter variance (pixels²)",
    "gamma": "γ: intensity",
}
controls, picture = st.columns([1, 1])
with controls:
    index = st.number_input(f"Image (0-{len(digits) - 1})", 0, len(digits) - 1, step=1, key="lab_digit")
    image = digits[index]
    values = {
        key: st.slider(label, min_value=low, max_value=high, step=step, key=f"lab_{key}")
        for key, label in LABELS.items()
        for low, high, step in [ranges[key]]
    }
    show_centres = st.toggle("Grid centres", value=True, key="lab_centres")
    kind = st.radio(
        "Window",
        views.LAB_WINDOW_KINDS,
        key="lab_window_kind",
        horizontal=True,
        help="a read window (green) multiplies its glimpse by γ (eq. 27); a write window (red) divides the patch it "
        "writes by γ (eq. 29). The filters are the same.",
    )
N = int(values["n"])
lab = views.attention_lab(image, N, **{key: value for key, value in values.items() if key != "n"})
url = {**{key: f"{value:g}" for key, value in values.items()}, "digit": str(index), "dataset": dataset, "window": kind}
st.query_params.update(url)
st.session_state["_lab_url"] = url

with picture:
    figure = viz.image_figure(
        image,
        title=f"{dataset} image {index} (label {get_dataset(dataset).label_text(labels[index])}, "
        f"{views.image_shape(C, H, W)}) and the window",
        pad=viz.window_pad(H, W),
        size=app_common.figure_px(viz.IMAGE_PIXELS),
    )
    views.draw_window(figure, lab.window, kind=kind, show_centres=show_centres)
    st.plotly_chart(figure, key="lab_image", width="content")
    st.caption(views.raw_attention_caption(lab.window.params, N, H, W))
    st.caption(views.WINDOW_RULE)
    app_views.explain(views.EXPLANATIONS["lab_window"])

filters, equations = st.columns([3, 2])
with filters:
    st.plotly_chart(viz.filterbank_figure(lab.Fx, axis="x", title="F_X: one row per filter i (eq. 25)"), key="lab_fx")
    st.plotly_chart(viz.filterbank_figure(lab.Fy, axis="y", title="F_Y: one row per filter j (eq. 26)"), key="lab_fy")
    st.caption(f"**eqs 25-26**: {views.EXPLANATIONS['lab_filters'].notice}")
with equations:
    st.markdown("**Grid centres** (eqs 19-20)")
    st.latex(r"\mu_X^i = g_X + \left(i - \tfrac{N}{2} - 0.5\right)\delta")
    st.latex(r"\mu_Y^j = g_Y + \left(j - \tfrac{N}{2} - 0.5\right)\delta")
    st.markdown("**From the decoder's state** (eqs 21-24)")
    st.latex(r"(\tilde g_X, \tilde g_Y, \log\sigma^2, \log\tilde\delta, \log\gamma) = W(h^{dec})")
    st.latex(r"g_X = \tfrac{A+1}{2}(\tilde g_X + 1), \quad g_Y = \tfrac{B+1}{2}(\tilde g_Y + 1)")
    st.latex(r"\delta = \tfrac{\max(A,B) - 1}{N - 1}\,\tilde\delta")
    st.markdown("**Filterbanks** (eqs 25-26)")
    st.latex(views.EXPLANATIONS["lab_filters"].latex)
    st.latex(r"F_Y[j, b] = \tfrac{1}{Z_Y}\exp\left(-\tfrac{(b - \mu_Y^j)^2}{2\sigma^2}\right)")
    st.markdown("**Read and write** (eqs 27, 29)")
    st.latex(views.EXPLANATIONS["lab_glimpse"].latex)
    st.latex(views.EXPLANATIONS["lab_written"].latex)

if C > 1:
    st.caption(
        f"A colour image: the same filters F_X, F_Y read each of its {C} channels (eq. 27 per channel), so the glimpse "
        f"is {C}×{N}×{N} numbers, drawn in colour below; writing back (eq. 29) is per channel too. The model does "
        "the same (DrawConfig.channels)."
    )
glimpse_column, written_column = st.columns(2)
peak = max(float(lab.glimpse.max()), 1e-6)
glimpse_column.plotly_chart(
    viz.image_figure(
        lab.glimpse,
        title=f"glimpse γ F_Y x F_Xᵀ ({N}×{N}" + (f", {C} channels)" if C > 1 else ")"),
        zmax=peak,
        colorbar="value",
    ),
    key="lab_glimpse",
    width="content",
)
glimpse_column.caption(f"**eq. 27**: {views.EXPLANATIONS['lab_glimpse'].notice}")
written_column.plotly_chart(
    viz.image_figure(
        lab.written,
        title="written back: (1/γ) F_Yᵀ · glimpse · F_X",
        zmax=max(float(lab.written.max()), 1e-6),
        colorbar="value",
    ),
    key="lab_written",
    width="content",
)
written_column.caption(f"**eq. 29**: {views.EXPLANATIONS['lab_written'].notice}")
