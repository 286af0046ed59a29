"""Reparameterization: the gradient of E_{z~q_theta}[f(z)] estimated through the sample (reparameterization) and by
scoring samples (REINFORCE, with and without a baseline), for several families; and which torch.distributions can be
reparameterized, read live from torch. No model needed; draw_core.present.reparam computes everything shown.
"""

import streamlit as st
import torch

import app_common
import app_views
from draw_core.present import reparam


@st.cache_data(max_entries=64, show_spinner=False)
def spread(
    family: str, objective: str, values: tuple[tuple[str, float], ...], c: float, repeats: int, temperature: float
) -> reparam.Spread:
    return reparam.gradient_spread(family, objective, dict(values), c, repeats=repeats, temperature=temperature)


@st.cache_data(show_spinner=False)
def rsample_table() -> list[dict]:
    return reparam.rsample_table()


def number(value: float) -> str:
    return f"{value:.3g}"


app_common.page_setup()  # the shared sidebar; this page needs no model
st.title("Reparameterization")
st.caption(
    "A small objective E_{z~q_θ}[f(z)] and its gradient in θ, estimated from n samples in two ways: through the "
    "sample (reparameterization) or by scoring samples (REINFORCE). Each estimate is repeated R times from fresh "
    "samples; their spread is the noise one gradient step carries."
)
pathwise_column, score_column = st.columns(2)
app_views.explain(reparam.EXPLANATIONS["pathwise"], pathwise_column)
app_views.explain(reparam.EXPLANATIONS["score"], score_column)

with app_common.controls():
    left, middle, right = st.columns(3)
    family_name = left.selectbox(
        "Distribution q_θ",
        list(reparam.FAMILIES),
        format_func=lambda k: reparam.FAMILIES[k].label,
        key="reparam_family",
    )
    family = reparam.FAMILIES[family_name]
    objective_name = left.selectbox(
        "Objective f", list(reparam.OBJECTIVES), format_func=lambda k: reparam.OBJECTIVES[k].label, key="reparam_f"
    )
    objective = reparam.OBJECTIVES[objective_name]
    c = 0.0
    if objective.uses_c:
        c = left.slider("c", -2.0, 4.0, 0.5, step=0.1, key="reparam_c")
    values = {
        p.name: middle.slider(
            f"θ: {p.label}", p.low, p.high, p.default, step=p.step, key=f"reparam_{family_name}_{p.name}"
        )
        for p in family.parameters
    }
    temperature = reparam.TEMPERATURE
    if family.relaxed:
        temperature = middle.slider(
            "τ: temperature of the relaxation", 0.05, 2.0, reparam.TEMPERATURE, step=0.05, key="reparam_temperature"
        )
    labels = {p.name: p.label for p in family.parameters}
    wrt = family.parameters[0].name
    if len(labels) > 1:
        wrt = right.radio(
            "Gradient with respect to", list(labels), format_func=labels.get, key=f"reparam_{family_name}_wrt",
            horizontal=True,
        )  # fmt: skip
    n = right.select_slider("Samples n per estimate", reparam.SAMPLE_SIZES, value=10, key="reparam_n")
    repeats = right.select_slider("Repeats R", reparam.REPEATS, value=reparam.DEFAULT_REPEATS, key="reparam_repeats")

result = spread(family_name, objective_name, tuple(values.items()), c, repeats, temperature)
k = list(labels).index(wrt)
s = result.at(n)
exact = float(result.exact[k])
std = {e: float(result.std(e)[k, s]) for e in reparam.ESTIMATORS}
mean = {e: float(result.mean(e)[k, s]) for e in reparam.ESTIMATORS}
pathwise = reparam.estimator_label("pathwise", family.relaxed)
gradient = f"∂E/∂{labels[wrt]}"
st.markdown(
    f"**{objective.label}** under **{family.label}**: E[f(z)] = {number(result.value)}, exact {gradient} = "
    f"**{number(exact)}**. Pathwise here: {family.how}."
)

if all(s == 0 for s in std.values()) and all(m == 0 for m in mean.values()):
    app_common.stop_with(  # f(z) is the same for every sample: no estimator has anything to weigh
        f"{objective.label} takes one value wherever {family.label} puts its samples, so every estimate is 0 and "
        f"there is nothing to compare (exact {gradient} = {number(exact)}). Move c into the range z takes."
    )
spread_column, estimates_column = st.columns(2)
spread_column.plotly_chart(
    reparam.spread_figure(
        result, parameter=k, n=n, title=f"Spread of {gradient} estimates over {repeats} repeats",
        height=app_common.figure_px(reparam.CHART_HEIGHT),
    ),
    key="reparam_spread",
)  # fmt: skip
app_views.explain(reparam.EXPLANATIONS["spread"], spread_column)
spread_column.caption(
    f"At n = {n}: std {number(std['pathwise'])} ({pathwise}), {number(std['reinforce'])} (REINFORCE)"
    + (f", {number(std['baseline'])} (with the baseline)" if n > 1 else "")
    + ". "
    + reparam.noise_verdict(std, mean, exact, relaxed=family.relaxed)
)
estimates_column.plotly_chart(
    reparam.estimates_figure(
        result, parameter=k, n=n, title=f"The {repeats} estimates of {gradient} at n = {n}",
        height=app_common.figure_px(reparam.CHART_HEIGHT),
    ),
    key="reparam_estimates",
)  # fmt: skip
app_views.explain(reparam.EXPLANATIONS["estimates"], estimates_column)
estimates_column.caption(
    f"Means: {number(mean['pathwise'])} ({pathwise}), {number(mean['reinforce'])} (REINFORCE)"
    + (f", {number(mean['baseline'])} (with the baseline)" if n > 1 else "")
    + f"; exact {number(exact)}."
    + ("" if n > 1 else " The leave-one-out baseline needs n ≥ 2: at n = 1 there is no other sample.")
)
if not objective.smooth:
    st.warning(
        f"{objective.label} is flat wherever it has a derivative, so the pathwise gradient is exactly 0 for every "
        f"sample, a confident wrong answer: the exact gradient is {number(exact)}. Reparameterization needs f "
        "differentiable; REINFORCE needs only f's values."
    )
elif family.relaxed:
    st.info(
        f"z is discrete, so there is no pathwise gradient: the relaxation differentiates a continuous stand-in z̃ "
        f"instead, and is biased (mean {number(mean['pathwise'])} against the exact {number(exact)} at τ = "
        f"{temperature:g}). As τ → 0 the bias vanishes and the variance grows (between, the bias need not fall "
        "steadily); REINFORCE stays unbiased."
    )

st.subheader("DRAW's latents are reparameterized")
st.markdown(
    "DRAW draws z_t ∼ Q(Z_t | h^enc_t) (sec. 2, eq. 6), a diagonal Gaussian with mean μ_t and standard deviation "
    "σ_t from the encoder (eqs 1–2), as z_t = μ_t + σ_t ε with ε ∼ N(0, I): the Normal family of the picker above, "
    "location-scale. So one backward pass carries the loss's gradient through z_t into μ_t, σ_t and the encoder, with "
    "the small spread of the reparameterized line (green, for a Normal and a smooth f) rather than REINFORCE's."
)

st.subheader("Which torch.distributions can be reparameterized")
rows = rsample_table()
st.dataframe(rows, hide_index=True)
reparameterized = sum(row["has_rsample"] is True for row in rows)
st.caption(
    f"`has_rsample` read live from torch {torch.__version__}: {reparameterized} of the {len(rows)} distribution "
    "classes in torch.distributions have an rsample that gradients flow through. Notice: every discrete one lacks it, "
    "except the straight-through one-hot, whose gradient is a biased stand-in; the relaxations are continuous "
    "distributions that stand in for discrete ones."
)

st.subheader("The same contrast decides RAM versus DRAW")
st.markdown(
    "RAM samples *where to look* and cannot differentiate its crop with respect to that location, so it learns "
    "where to look by REINFORCE, the amber line above. DRAW's read window is a smooth function of where it looks, "
    "so backpropagation gives the exact gradient. See both side by side, with the spread of RAM's estimates:"
)
app_common.page_link("attention_at_work.py", label="Attention at work", icon="👁️")
