"""Attention lab: DRAW's Gaussian filterbank on its own (sec. 3.2, eqs 19-29), no model needed.

The sliders set the window in the paper's pixel units; views.attention_lab computes everything shown with the
draw_core.nn.attention functions the model calls.
"""

import streamlit as st

import app_common
from draw_core.present import views, viz

app_common.page_setup()  # the shared sidebar; this page needs no model
st.title("Attention lab")
st.caption(
    "An N×N grid of Gaussian filters, placed by its centre (g_X, g_Y) and stride δ, blurred by σ², scaled by γ. "
    "The model predicts these five numbers at every step (eq. 21); here you set them yourself."
)
digits, labels = app_common.sample_digits()
H, W = digits.shape[-2:]  # digits (N, 1, H, W)

controls, picture = st.columns([1, 1])
with controls:
    index = st.number_input(f"Digit (0-{len(digits) - 1})", 0, len(digits) - 1, step=1, key="lab_digit")
    image = digits[index]
    N = st.slider("N: grid size (N×N filters)", 1, 12, 5, key="lab_n")
    gx = st.slider("g_X: grid centre, x (pixels 1…A)", -5.0, W + 6.0, (W + 1) / 2, step=0.5, key="lab_gx")
    gy = st.slider("g_Y: grid centre, y (pixels 1…B)", -5.0, H + 6.0, (H + 1) / 2, step=0.5, key="lab_gy")
    delta = st.slider("δ: stride between filters (pixels)", 0.0, 10.0, 3.0, step=0.1, key="lab_delta")
    sigma2 = st.slider("σ²: filter variance (pixels²)", 0.05, 25.0, 1.0, step=0.05, key="lab_sigma2")
    gamma = st.slider("γ: intensity", 0.1, 5.0, 1.0, step=0.1, key="lab_gamma")
    show_centres = st.toggle("Grid centres", value=True, key="lab_centres")

lab = views.attention_lab(image, N, gx=gx, gy=gy, delta=delta, sigma2=sigma2, gamma=gamma)

with picture:
    figure = viz.image_figure(image, title=f"digit {index} (label {int(labels[index])}) and the window")
    views.draw_window(figure, lab.window, kind="read", show_centres=show_centres)
    st.plotly_chart(figure, key="lab_image", width="content")
    st.caption(views.raw_attention_caption(lab.window.params, N, H, W))

filters, equations = st.columns([3, 2])
with filters:
    st.plotly_chart(viz.filterbank_figure(lab.Fx, axis="x", title="F_X: one row per filter i (eq. 25)"), key="lab_fx")
    st.plotly_chart(viz.filterbank_figure(lab.Fy, axis="y", title="F_Y: one row per filter j (eq. 26)"), key="lab_fy")
with equations:
    st.markdown("**Grid centres** (eqs 19-20)")
    st.latex(r"\mu_X^i = g_X + \left(i - \tfrac{N}{2} - 0.5\right)\delta")
    st.latex(r"\mu_Y^j = g_Y + \left(j - \tfrac{N}{2} - 0.5\right)\delta")
    st.markdown("**From the decoder's state** (eqs 21-24)")
    st.latex(r"(\tilde g_X, \tilde g_Y, \log\sigma^2, \log\tilde\delta, \log\gamma) = W(h^{dec})")
    st.latex(r"g_X = \tfrac{A+1}{2}(\tilde g_X + 1), \quad g_Y = \tfrac{B+1}{2}(\tilde g_Y + 1)")
    st.latex(r"\delta = \tfrac{\max(A,B) - 1}{N - 1}\,\tilde\delta")
    st.markdown("**Filterbanks** (eqs 25-26)")
    st.latex(r"F_X[i, a] = \tfrac{1}{Z_X}\exp\left(-\tfrac{(a - \mu_X^i)^2}{2\sigma^2}\right)")
    st.latex(r"F_Y[j, b] = \tfrac{1}{Z_Y}\exp\left(-\tfrac{(b - \mu_Y^j)^2}{2\sigma^2}\right)")
    st.markdown("**Read and write** (eqs 27, 29)")
    st.latex(r"\text{read}(x) = \gamma\, F_Y\, x\, F_X^\top")
    st.latex(r"\text{write}(w) = \tfrac{1}{\gamma}\, F_Y^\top\, w\, F_X")

glimpse_column, written_column = st.columns(2)
peak = max(float(lab.glimpse.max()), 1e-6)
glimpse_column.plotly_chart(
    viz.image_figure(lab.glimpse, title=f"glimpse γ F_Y x F_Xᵀ ({N}×{N}), max {peak:.3g}", zmax=peak),
    key="lab_glimpse",
    width="content",
)
written_column.plotly_chart(
    viz.image_figure(
        lab.written, title="written back: (1/γ) F_Yᵀ · glimpse · F_X", zmax=max(float(lab.written.max()), 1e-6)
    ),
    key="lab_written",
    width="content",
)
