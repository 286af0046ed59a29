"""Why not a plain autoencoder? DRAW (`mnist`) beside the same network trained without the KL term (`mnist-ae`,
beta = 0: z_t = mu_t), on the shipped test digits: both reconstruct, only DRAW generates from z ~ N(0, I), because only
its codes were pulled toward that prior (eqs 10-11). The page brings its own two models, found by name in the catalog,
whatever the sidebar picks; draw_core.present.autoencoder computes everything it shows. The passes over the test
digits and the prior samples are cached per model with st.cache_resource and shared read-only by every session.
"""

import numpy as np
import streamlit as st
import torch

import app_common
import app_views
from draw_core.io import catalog
from draw_core.io.checkpoint import CheckpointError
from draw_core.present import autoencoder as ae
from draw_core.present import viz

STRIP_PX = 520  # screen pixels across a strip of STRIP digits


@st.cache_resource(show_spinner=False)
def digits() -> torch.Tensor:
    return ae.test_digits()


@st.cache_resource(max_entries=8, show_spinner="Passing the test digits through the model…")
def codes(_model, model_key: str, sample: bool) -> ae.Codes:
    return ae.encode(_model, digits(), sample=sample)


@st.cache_resource(max_entries=32, show_spinner=False)
def samples(keys: tuple[tuple[str, str], ...], seed: int, _models: dict) -> dict[str, torch.Tensor]:
    """The same prior draw decoded by each named model; `keys` (name, model key) identify the weights."""
    return ae.prior_samples(_models, seed)


@st.cache_resource(max_entries=4, show_spinner="DRAW judges the prior samples…")
def judged(keys: tuple[tuple[str, str], ...], _judge, _models: dict) -> dict[str, float]:
    """name -> the median nats DRAW gives to each model's prior samples; `keys` (name, model key) identify the weights
    of the models, the first of them the judge's."""
    return ae.judged_nats(_judge, _models)


@st.cache_resource(max_entries=8, show_spinner=False)
def spreads(keys: tuple[tuple[str, str], ...], _series: dict[str, torch.Tensor]) -> dict[str, tuple]:
    """name -> ae.code_spread of each named series of codes (T, N, Z), computed once: a full-page rerun would
    otherwise spend ~0.2 s on it; `keys` (name, model key) identify the models' weights the series came from."""
    return {name: ae.code_spread(values) for name, values in _series.items()}


@st.cache_resource(max_entries=64, show_spinner=False)
def strip_figure(key: str, source: tuple, title: str, size: int, _images: torch.Tensor):
    """The figure of a strip, built once per `source` (which weights, digits or seed the images come from): building
    the page's seven strips anew took a third of a full rerun. st.plotly_chart only reads the shared figure."""
    return viz.image_grid_figure(_images, nrow=ae.STRIP, title=title, size=size)


def strip(images: torch.Tensor, title: str, key: str, source: tuple) -> None:
    figure = strip_figure(key, source, title, app_common.figure_px(STRIP_PX), images)
    st.plotly_chart(figure, key=key, width="content")


def load(entry: catalog.CheckpointEntry) -> app_common.Selected:
    try:
        return app_common.load_entry(entry)
    except (CheckpointError, OSError) as error:
        app_common.stop_with(f"{entry.label} can't be loaded: {error}", error=True)


@st.fragment
def one_dimension(draw_name: str, auto_name: str, draw_codes: ae.Codes, auto_codes: ae.Codes) -> None:
    """The histograms of one code dimension (t, d) of both models against N(0, 1); its sliders rerun only this."""
    widest_step, widest_dim = ae.widest_code(auto_codes)
    T, N, Z = auto_codes.z.shape
    app_common.remember("ae_step", widest_step + 1)
    app_common.remember("ae_dim", widest_dim)
    with app_common.controls("Code dimension"):
        step_column, dim_column = st.columns(2)
        t = step_column.slider("Step t", 1, T, key="ae_step") - 1
        d = dim_column.slider("Dimension d of z_t", 0, Z - 1, key="ae_dim")
    panels = {
        f"{draw_name} (DRAW)": {"z sampled from Q": draw_codes.z[t, :, d].numpy(), "μ": draw_codes.mu[t, :, d].numpy()},
        f"{auto_name} (autoencoder)": {"z = μ": auto_codes.z[t, :, d].numpy()},
    }
    st.plotly_chart(
        ae.histogram_figure(
            panels,
            title=f"z_{t + 1}[{d}] over the {N} test digits against N(0, 1)",
            height=app_common.figure_px(ae.CHART_HEIGHT),
        ),
        key="ae_histogram",
    )
    app_views.explain(ae.EXPLANATIONS["histogram"])
    st.caption(
        f"The page opens on the autoencoder's widest code, t = {widest_step + 1}, d = {widest_dim}; the dimensions of "
        "the two models are unrelated, each is compared with the prior only. Mean ± std here: "
        + "; ".join(
            f"{panel} {name} {values.mean():+.3f} ± {values.std():.3f}"
            for panel, named in panels.items()
            for name, values in named.items()
        )
        + "."
    )


app_common.page_setup()  # the shared sidebar; this page brings its own models
st.title("Why not a plain autoencoder?")
st.caption(
    "“Why can't a simple autoencoder be used for generation?” An autoencoder decodes any z, but nothing makes its "
    "codes look like the prior N(0, I) we sample z from, so random z decode to nothing like the data. DRAW's KL term "
    "(eqs 10-11) pulls every Q(z_t | x) toward that prior (sec. 2.1-2.3). Here: the same DRAW network trained both "
    "ways, whatever the sidebar picks."
)

entries = catalog.list_checkpoints()
found = ae.find_models(entries)
if found[ae.DRAW_NAME] is None:
    app_common.stop_with(
        f"This page needs the shipped **{ae.DRAW_NAME}** model (DRAW trained on the ELBO) and can't find it among the "
        "shipped checkpoints or the runs."
    )
if found[ae.AUTOENCODER_NAME] is None:
    app_common.stop_with(
        f"**{ae.AUTOENCODER_NAME}**, the autoencoder to compare with (the {ae.DRAW_NAME} network trained without the "
        f"KL term, β = 0), is not here: not among the shipped checkpoints nor the runs. Train it (hours on a CPU; "
        f"its checkpoints are usable while it trains): `{ae.HOW_TO_TRAIN}`."
    )
draw, auto = (load(found[name]) for name in (ae.DRAW_NAME, ae.AUTOENCODER_NAME))
if not ae.is_autoencoder(auto.card):
    beta = ae.kl_weight(auto.card)
    app_common.stop_with(
        f"{found[ae.AUTOENCODER_NAME].label} is not an autoencoder: its meta records "
        + ("no training run" if beta is None else f"β = {beta:g}")
        + f", where this page needs β = 0 (`--kl-weight 0`). Train one: `{ae.HOW_TO_TRAIN}`.",
        error=True,
    )
if draw.config != auto.config:
    app_common.stop_with(
        f"{auto.name} must be the {draw.name} network trained without the KL term, so that only the KL term differs; "
        f"their configs differ ({draw.name}: {draw.config}; {auto.name}: {auto.config}). Train it with the same "
        f"preset: `{ae.HOW_TO_TRAIN}`.",
        error=True,
    )
cfg = draw.config
images = digits()
N = len(images)
draw_sampled = codes(draw.model, draw.key, True)
draw_mean = codes(draw.model, draw.key, False)
auto_codes = codes(auto.model, auto.key, False)

with app_common.controls():
    first_column, seed_column = st.columns(2)
    first = first_column.number_input(
        f"First test digit (0-{N - ae.STRIP})", 0, N - ae.STRIP, step=ae.STRIP, key="ae_first",
        help="from the shipped sample of MNIST test digits, binarised like the fixed test set",
    )  # fmt: skip
    seed = seed_column.number_input(
        "Seed of z ~ N(0, I)", 0, app_common.MAX_SEED, ae.SEED, step=1, key="ae_seed",
        help="the same z for both models",
    )  # fmt: skip
shown = slice(int(first), int(first) + ae.STRIP)

st.subheader("1. Both reconstruct")
strip(images[shown], f"Test digits {shown.start}-{shown.stop - 1}", "ae_digits", (shown.start,))
strip(
    draw_sampled.images[shown], f"{draw.name} (DRAW): z sampled from Q(z | x)", "ae_draw_recon", (draw.key, shown.start)
)
strip(draw_mean.images[shown], f"{draw.name} (DRAW): z = μ", "ae_draw_mean", (draw.key, shown.start))
strip(auto_codes.images[shown], f"{auto.name} (autoencoder): z = μ", "ae_auto_recon", (auto.key, shown.start))
app_views.explain(ae.EXPLANATIONS["reconstructions"])
st.table(ae.recon_table(draw_sampled, draw_mean, auto_codes, draw_name=draw.name, ae_name=auto.name))
card = auto.card.get("test_recon_nats")
st.caption(
    f"Nats per digit, averaged over the {N} shipped test digits (binarised like the fixed test set); DRAW's z drawn "
    f"with seed {ae.SEED}. The autoencoder has no bound on −log p(x): its Q(z | x) is a point mass at μ, infinitely "
    "far (in KL) from any density over z."
    + (f" Its card's Lˣ on the test set: {card:.2f} nats." if isinstance(card, (int, float)) else "")
)

st.subheader("2. Only one generates")
pair_keys = ((draw.name, draw.key), (auto.name, auto.key))  # identify the two models' weights to the caches
pair = {draw.name: draw.model, auto.name: auto.model}
prior = samples(pair_keys, int(seed), pair)
strip(prior[draw.name], f"{draw.name} (DRAW): z ~ N(0, I), seed {seed}", "ae_draw_samples", (draw.key, int(seed)))
strip(prior[auto.name], f"{auto.name} (autoencoder): the same z", "ae_auto_samples", (auto.key, int(seed)))
app_views.explain(ae.EXPLANATIONS["samples"])
scores = judged(pair_keys, draw.model, pair)
test_bound = draw.card.get("test_elbo_nats")
st.caption(
    f"How digit-like, by DRAW's own density: {draw.name}'s −ELBO (eq. 12) of {ae.JUDGED} prior samples of each model "
    f"(seed {ae.SEED}, whatever the seed above), made binary at ½, median: **{draw.name} {scores[draw.name]:.1f} "
    f"nats**, **{auto.name} {scores[auto.name]:.1f} nats**; more nats, less like a digit (each ln 2 ≈ 0.69 more "
    "halves the probability DRAW's bound gives the image). Made binary at ½, a sample is its decoder's most likely "
    "image, smoother than a handwritten digit"
    + (
        f", so it can score below real test digits ({test_bound:.1f} on average)."
        if isinstance(test_bound, (int, float))
        else "."
    )
)

st.subheader("3. Where the codes lie")
series = {
    f"{draw.name}: z sampled from Q": draw_sampled.z,
    f"{draw.name}: μ": draw_sampled.mu,
    f"{auto.name}: z = μ": auto_codes.z,
}
summary = spreads(pair_keys, series)
st.plotly_chart(
    ae.spread_figure(
        summary,
        z_size=auto_codes.z.shape[-1],
        title=f"Every code dimension (t, d) over the {N} test digits",
        height=app_common.figure_px(ae.CHART_HEIGHT),
    ),
    key="ae_spread",
)
app_views.explain(ae.EXPLANATIONS["spread"])
st.caption(
    "Median over the dimensions, standard deviation over the digits (the prior: 1): "
    + "; ".join(f"{name} {np.median(std):.3g}" for name, (_, std) in summary.items())
    + ". DRAW's μ alone spread less than the prior: it is μ + σε, the codes its decoder is trained on, that fill it."
)

one_dimension(draw.name, auto.name, draw_sampled, auto_codes)

st.subheader("4. What each model pays for its code")
st.plotly_chart(
    viz.kl_curves_figure(
        ae.kl_curves(draw_sampled, auto_codes, draw_name=draw.name, ae_name=auto.name),
        title=f"KL per step, nats (mean over the {N} test digits)",
    ),
    key="ae_kl",
)
app_views.explain(ae.EXPLANATIONS["kl"])
st.caption(
    f"{draw.name}'s KL is eq. 11 with its own σ_t, in total {draw_sampled.kl_nats:.2f} nats. The autoencoder's own "
    "KL is infinite (z = μ, a point mass), and its σ head gets no gradient (z = μ + σ·0), so it means "
    f"nothing; what is drawn for it is ½‖μ_t‖², eq. 11 with σ = 1: what its codes would cost with unit noise added "
    f"({auto_codes.mean_term_per_step.sum():.2f} nats in total; {draw.name}'s ½‖μ_t‖² sum to "
    f"{draw_sampled.mean_term_per_step.sum():.2f})."
)

st.subheader("β: from an autoencoder to DRAW and beyond")
st.markdown(
    "Training minimises Lˣ + β Lᶻ (eq. 12 has β = 1). **β = 0** is an autoencoder, z = μ (the second model here); "
    "**β = 1** is the ELBO, DRAW as in the paper, whose L bounds −log p(x); **β > 1** is a β-VAE (Higgins et al. "
    "2017): codes still closer to the prior, reconstructions blurrier; between 0 and 1, the other way. Train one with "
    "`--kl-weight`, e.g. `python -m draw_core.train --preset mnist --kl-weight 4 --data-dir ../shared/data "
    "--out runs/mnist-beta4.safetensors`: runs of the same network appear here on a β slider."
)
ladder = ae.beta_ladder(entries, cfg)
if len(ladder) >= 3:
    beta = st.select_slider(
        "β", list(ladder), value=1.0 if 1.0 in ladder else next(iter(ladder)), format_func=ae.beta_label,
        key="ae_beta",
    )  # fmt: skip
    chosen = load(ladder[beta])
    chosen_codes = codes(chosen.model, chosen.key, beta > 0)
    chosen_samples = samples(((chosen.name, chosen.key),), int(seed), {chosen.name: chosen.model})[chosen.name]
    strip(
        chosen_samples,
        f"{chosen.name}, {ae.beta_label(beta)}: the same z ~ N(0, I), seed {seed}",
        "ae_beta_samples",
        (chosen.key, int(seed)),
    )
    st.caption(
        f"{chosen.name} on the {N} test digits: Lˣ {chosen_codes.recon_nats:.2f} nats with z "
        + (f"sampled from Q, Lᶻ {chosen_codes.kl_nats:.2f} nats (eq. 11)." if beta > 0 else "= μ, and no KL term.")
        + " Notice: as β grows, Lᶻ shrinks and Lˣ grows: the code says less about the digit, and what it says fits "
        "the prior better."
    )
elif ladder:
    st.caption(
        "Here now: "
        + "; ".join(f"{ae.beta_label(beta)}, {entry.label}" for beta, entry in ladder.items())
        + ". The β slider appears once three βs of this network are here."
    )
