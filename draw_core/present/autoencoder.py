"""What the "Why not an autoencoder?" page shows: DRAW (`mnist`, trained on the ELBO, eq. 12) beside the same network
trained without the KL term (`mnist-ae`, TrainConfig.kl_weight = 0: z_t = mu_t, an autoencoder with DRAW's attention).

The student's question, "why can't a plain autoencoder be used for generation?": its decoder decodes any z, but
nothing makes its codes look like the prior P(Z_t) = N(0, I) that generation samples from (sec. 2.3), so a z drawn
from the prior lands where the decoder was never trained and decodes to nothing like the data. DRAW's KL term L^z
(eqs 10-11) pulls every Q(Z_t | h^enc_t) toward that prior, and drawing z_t from Q in training (eq. 6) makes its
decoder work on the whole cloud of z, the aggregate posterior, that the prior has to match.

Everything is measured on the shipped sample of MNIST test digits, binarised like the fixed test set (`test_digits`),
so the page works without the MNIST files:
- `encode`: one pass of a model over the digits, z_t drawn from Q (eq. 6) or z_t = mu_t, keeping what the views need:
  L^x of each digit (eq. 9), the reconstructions, mu_t and the z_t the decoder got, the KL of each step (eq. 11) and
  its mean term 1/2 |mu_t|^2;
- `prior_samples`: the same z ~ N(0, I) decoded by several models; `judged_nats`: how unlikely DRAW finds them;
- `code_spread` / `spread_figure`: where the codes of every dimension (t, d) sit over the digits, against the prior;
- `histogram` / `histogram_figure`: the aggregate posterior of one dimension against the N(0, 1) density;
- `kl_curves`: the KL each model spends per step (drawn by viz.kl_curves_figure);
- `kl_weight` / `is_autoencoder` / `beta_ladder`: a checkpoint's beta, read from its training meta.

Trained from scratch without the KL term, DRAW's deterministic encoder-decoder loop diverged within a few hundred steps
(the read window's intensity gamma ran away and the gradients overflowed); the shipped `mnist-ae` therefore starts from
`mnist`'s weights and adds a small penalty on the size of its codes (TrainConfig.code_weight), which still says
nothing about their shape. Its card has the recipe.

An autoencoder has no posterior variance: its Q(z | x) is a point mass at mu, whose KL from N(0, I) is infinite. The
network still has a sigma head (eq. 2), but with z = mu + sigma * 0 and beta = 0 it gets no gradient: it keeps the
values it started from (the shipped mnist-ae's are DRAW's, its starting point) and means nothing for it. So the KL
chart shows, for the autoencoder, 1/2 |mu_t|^2 = KL(N(mu_t, I) || N(0, I)): what its codes would cost with
unit-variance noise added, the part of eq. 11 that depends on mu alone; DRAW's own 1/2 |mu_t|^2 is drawn beside its
full KL for a like-for-like comparison.

Letters used in shape comments:
    T steps, N test digits, Z latent size, n samples, C channels, H height, W width.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from draw_core.config import DrawConfig, TrainConfig
from draw_core.data import get_dataset
from draw_core.io import catalog
from draw_core.io.catalog import CheckpointEntry
from draw_core.nn.elbo import gaussian_kl, loss_terms, reconstruction_nll
from draw_core.nn.likelihood import mean_image
from draw_core.nn.model import DRAW
from draw_core.present import viz
from draw_core.present.latent import prior_z
from draw_core.present.views import Explanation

DRAW_NAME = "mnist"  # the paper's model, trained on the ELBO (beta = 1)
AUTOENCODER_NAME = "mnist-ae"  # the same network trained with beta = 0
DATASET = "mnist-sample"  # the shipped test digits; its test_set() binarises them like the fixed test set
STRIP = 8  # digits and samples per strip
SEED = 0  # seeds the posterior noise of `encode` and the page's first prior draw
JUDGED = 100  # prior samples per model that DRAW itself judges (`judged_nats`)
BATCH = 100  # digits per forward pass in `encode`
BINS = 41  # histogram bins across a panel
PRIOR_REACH = 4.0  # every histogram panel shows at least [-4, 4], where N(0, 1) has its mass
SPREAD_FLOOR = 1e-4  # standard deviations below this are drawn at it (the spread chart's log axis has no 0)
CHART_HEIGHT = 320  # screen pixels
PRIOR_COLOUR = "black"
SERIES_COLOURS = ("#1f77b4", "#17becf", "#ff7f0e", "#2ca02c", "#9467bd")  # the series of a figure, in the order given
HOW_TO_TRAIN = (  # the recipe that stayed stable: from DRAW's weights, a small code penalty, a low learning rate
    f"python -m draw_core.train --preset mnist --kl-weight 0 --code-weight 0.03 --init-from checkpoints/{DRAW_NAME}"
    f".safetensors --lr 7e-5 --grad-clip 1 --data-dir ../shared/data --out runs/{AUTOENCODER_NAME}.safetensors"
)
EXPLANATIONS = {  # each chart's equation and the one thing to notice (app_views.explain)
    "reconstructions": Explanation(
        "eq. 9",
        r"L^x = -\log D(x \mid c_T)",
        "Both models redraw the test digits from codes of their own; a trained autoencoder does it as well as DRAW "
        "or better. What it lacks shows only when z comes from the prior instead of from an image.",
    ),
    "samples": Explanation(
        "sec. 2.3",
        r"\tilde z_t \sim N(0, I), \quad "
        r"\text{shown: } \sigma(\tilde c_T) \text{, not a draw from } D(X \mid \tilde c_T)",
        "The same z for both decoders: DRAW draws digits, the autoencoder does not, however well it redraws digits "
        "from their own codes.",
    ),
    "spread": Explanation(
        "eqs 10-11",
        r"q(z_t) = \mathbb{E}_x\, Q(Z_t \mid h^{enc}_t) \;\approx\; P(Z_t) = N(0, I)",
        "Each dot is one code dimension (t, d): DRAW's sampled z gather at the prior's cross, (0, 1); the "
        "autoencoder's codes sit wherever training left them.",
    ),
    "histogram": Explanation(
        "eqs 10-11",
        r"\mathcal{N}(z; 0, 1) = \tfrac{1}{\sqrt{2\pi}}\, e^{-z^2/2}",
        "DRAW's sampled z follow the black N(0, 1) curve, though its μ alone are narrower; the autoencoder's codes "
        "don't, so most z drawn from the prior land where its decoder never saw a code.",
    ),
    "kl": Explanation(
        "eq. 11",
        r"L^z_t = \tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1), \qquad \tfrac12 \lVert\mu_t\rVert^2",
        "DRAW pays for every nat its code carries about the digit; the autoencoder pays nothing for what its codes "
        "carry (at most a small penalty on their size, see its card), so nothing holds them near the prior.",
    ),
}


# --- which checkpoint is which -------------------------------------------------------------------------------------


def kl_weight(meta: dict) -> float | None:
    """beta, the weight of L^z (eq. 12) in the training run that made a checkpoint, from its meta's `train_config`: 1
    (the paper's loss) for a run from before the setting existed; None when the meta records no training run."""
    train = meta.get("train_config")
    if not isinstance(train, dict):
        return None
    value = train.get("kl_weight", TrainConfig.kl_weight)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def is_autoencoder(meta: dict) -> bool:
    """Whether a checkpoint was trained as a plain autoencoder: beta = 0, so z_t = mu_t and no KL term."""
    return kl_weight(meta) == 0.0


def find_models(entries: list[CheckpointEntry]) -> dict[str, CheckpointEntry | None]:
    """{DRAW_NAME: entry, AUTOENCODER_NAME: entry} by name among `entries` (the catalog lists shipped checkpoints
    before runs, so a shipped one wins), DRAW generators only; None where there is none."""
    return {
        name: next((e for e in entries if e.name == name and e.model_kind == "draw"), None)
        for name in (DRAW_NAME, AUTOENCODER_NAME)
    }


def beta_ladder(entries: list[CheckpointEntry], config: DrawConfig) -> dict[float, CheckpointEntry]:
    """beta -> the first of `entries` with that beta among DRAW generators of exactly `config` (read from each file's
    header, whose meta records the training run), in increasing beta: the models a beta slider can move through."""
    found: dict[float, CheckpointEntry] = {}
    for entry in entries:
        if entry.model_kind != "draw":
            continue
        meta = catalog.read_meta(entry.path)
        beta = kl_weight(meta)
        if beta is not None and meta.get("config") == config.to_dict():
            found.setdefault(beta, entry)
    return dict(sorted(found.items()))


def beta_label(beta: float) -> str:
    """How the page names a beta: 'β = 0 (autoencoder)', 'β = 1 (ELBO, the paper)', 'β = 4'."""
    role = {0.0: " (autoencoder)", 1.0: " (ELBO, the paper)"}.get(beta, "")
    return f"β = {beta:g}{role}"


# --- one pass over the test digits ----------------------------------------------------------------------------------


def test_digits() -> torch.Tensor:
    """(N, 1, 28, 28) the shipped sample of MNIST test digits, binarised once like the fixed test set."""
    return get_dataset(DATASET).test_set()


@dataclass(frozen=True)
class Codes:
    """One model's pass over the test digits."""

    sampled: bool  # z_t drawn from Q(Z_t | h^enc_t) (eq. 6); False: z_t = mu_t, as an autoencoder takes it
    recon: torch.Tensor  # (N,) L^x of each digit, nats (eq. 9)
    images: torch.Tensor  # (N, C, H, W) the reconstructions, the mean of D(X | c_T)
    mu: torch.Tensor  # (T, N, Z) posterior means (eq. 1)
    z: torch.Tensor  # (T, N, Z) what the decoder got: mu_t + sigma_t eps, or mu_t itself
    kl_per_step: torch.Tensor  # (T,) mean over the digits of eq. 11 with the network's own sigma_t
    mean_term_per_step: torch.Tensor  # (T,) mean over the digits of 1/2 |mu_t|^2, eq. 11 with sigma_t = 1

    @property
    def recon_nats(self) -> float:
        return float(self.recon.mean())

    @property
    def kl_nats(self) -> float:
        """Mean L^z (eq. 11 summed over steps); meaningless for an autoencoder, whose sigma gets no gradient."""
        return float(self.kl_per_step.sum())


@torch.inference_mode()
def encode(model: DRAW, images: torch.Tensor, *, sample: bool, seed: int = SEED, batch: int = BATCH) -> Codes:
    """One pass of `model` over binary images (N, C, H, W), BATCH at a time: z_t drawn from Q with noise from a
    generator seeded by `seed` (sample=True, DRAW's training and bound), or z_t = mu_t (an autoencoder's)."""
    if len(images) == 0:
        raise ValueError("encode needs at least one image, got none")
    generator = torch.Generator().manual_seed(int(seed))
    recon, pictures, mus, zs, kls = [], [], [], [], []
    for start in range(0, len(images), batch):
        x = images[start : start + batch].to(model.device)
        result = model(x, generator=generator, sample=sample)
        recon.append(reconstruction_nll(result, x).cpu())  # eq. 9
        pictures.append(mean_image(result.final_logits, model.cfg.channels).cpu())
        mus.append(result.mu.cpu())
        zs.append(result.z.cpu())
        kls.append(gaussian_kl(result.mu, result.logvar).cpu())  # (T, B), eq. 11 per step
    mu = torch.cat(mus, 1)
    return Codes(
        sampled=sample,
        recon=torch.cat(recon),
        images=torch.cat(pictures),
        mu=mu,
        z=torch.cat(zs, 1) if sample else mu,  # z = mu + sigma * 0 is mu
        kl_per_step=torch.cat(kls, 1).mean(1),
        mean_term_per_step=gaussian_kl(mu, torch.zeros_like(mu)).mean(1),  # eq. 11 with log sigma^2 = 0
    )


@torch.inference_mode()
def prior_samples(models: dict[str, DRAW], seed: int, n: int = STRIP) -> dict[str, torch.Tensor]:
    """name -> (n, C, H, W) the finished samples sigma(c_T) of one draw z ~ N(0, I) (latent.prior_z, seeded), the
    same z decoded by every model; the models must share T and the latent size."""
    shapes = {(m.cfg.T, m.cfg.z_size) for m in models.values()}
    if len(shapes) != 1:
        raise ValueError(f"the models must share T and the latent size to decode the same z, got {sorted(shapes)}")
    (T, Z) = shapes.pop()
    z = prior_z(seed, T, Z, n)  # (T, n, Z)
    return {name: model.generate(n, z=z).canvases[-1].cpu() for name, model in models.items()}


@torch.inference_mode()
def judged_nats(judge: DRAW, models: dict[str, DRAW], n: int = JUDGED, seed: int = SEED) -> dict[str, float]:
    """name -> the median negative ELBO (eq. 12, nats) that `judge`, DRAW trained on the digits, gives to n prior
    samples of each model (`prior_samples`, each made binary at sigma(c_T) > 1/2 like the binarised test digits): how
    digit-like a model's samples are by the data's own density model; the test digits score about its test bound."""
    judged = {}
    for name, images in prior_samples(models, seed, n).items():
        binary = (images > 0.5).to(images)  # (n, C, H, W)
        result = judge(binary, generator=torch.Generator(device=binary.device).manual_seed(seed))
        judged[name] = loss_terms(result, binary).total.median().item()
    return judged


# --- where the codes lie --------------------------------------------------------------------------------------------


def widest_code(codes: Codes) -> tuple[int, int]:
    """(t, d), 0-based: the step and dimension whose z spread most over the digits (largest standard deviation)."""
    std = codes.z.std(1)  # (T, Z)
    step, dim = divmod(int(std.argmax()), std.shape[1])
    return step, dim


def code_spread(values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """values (T, N, Z) -> (mean, std), each (T Z,): where the codes of each dimension (t, d) sit over the N digits
    and how far they spread, flattened t-major (index t Z + d)."""
    return values.mean(1).flatten().numpy(), values.std(1).flatten().numpy()


def shared_edges(*values: np.ndarray, bins: int = BINS, reach: float = PRIOR_REACH) -> np.ndarray:
    """(bins + 1,) equal bins over everything in `values` and at least [-reach, reach]."""
    low = min(-reach, *(float(v.min()) for v in values))
    high = max(reach, *(float(v.max()) for v in values))
    return np.linspace(low, high, bins + 1)


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(bins,) how many of `values` fall in each bin (the last bin includes its right edge)."""
    return np.histogram(values, bins=edges)[0]


def normal_density(x: np.ndarray) -> np.ndarray:
    """The N(0, 1) density at x: the prior of each code dimension."""
    return np.exp(-0.5 * np.square(x)) / math.sqrt(2 * math.pi)


def kl_curves(draw: Codes, autoencoder: Codes, *, draw_name: str, ae_name: str) -> dict[str, list[float]]:
    """The lines of the KL chart (viz.kl_curves_figure), nats per step: DRAW's eq. 11, its 1/2 |mu_t|^2, and the
    autoencoder's 1/2 |mu_t|^2 (its own KL is infinite; see the module docstring)."""
    return {
        f"{draw_name}: KL, eq. 11": draw.kl_per_step.tolist(),
        f"{draw_name}: ½‖μ_t‖²": draw.mean_term_per_step.tolist(),
        f"{ae_name}: ½‖μ_t‖²": autoencoder.mean_term_per_step.tolist(),
    }


def recon_table(
    draw_sampled: Codes, draw_mean: Codes, autoencoder: Codes, *, draw_name: str, ae_name: str
) -> list[dict[str, str]]:
    """Rows of the nats each model spends per test digit: L^x (eq. 9), L^z (eq. 11) and their sum L (eq. 12)."""

    def nats(value: float) -> str:
        return f"{value:.2f}"

    return [
        {
            "model": draw_name,
            "z": "sampled from Q (eq. 6)",
            "Lˣ (eq. 9)": nats(draw_sampled.recon_nats),
            "Lᶻ (eq. 11)": nats(draw_sampled.kl_nats),
            "L = Lˣ + Lᶻ (eq. 12)": nats(draw_sampled.recon_nats + draw_sampled.kl_nats),
        },
        {
            "model": draw_name,
            "z": "μ (no noise)",
            "Lˣ (eq. 9)": nats(draw_mean.recon_nats),
            "Lᶻ (eq. 11)": "",
            "L = Lˣ + Lᶻ (eq. 12)": "",
        },
        {
            "model": ae_name,
            "z": "μ (an autoencoder's)",
            "Lˣ (eq. 9)": nats(autoencoder.recon_nats),
            "Lᶻ (eq. 11)": "∞ (a point mass)",
            "L = Lˣ + Lᶻ (eq. 12)": "no bound",
        },
    ]


# --- figures --------------------------------------------------------------------------------------------------------


def spread_figure(
    spreads: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    z_size: int,
    title: str | None = None,
    height: int = CHART_HEIGHT,
) -> go.Figure:
    """One dot per code dimension (t, d) of each named series of codes, given as its `code_spread` (mean, std) with
    z_size = Z: the mean over the digits (x) and the standard deviation (y, log axis; below SPREAD_FLOOR drawn at it),
    and the prior N(0, 1) as a cross at (0, 1) (trace "prior")."""
    data = []
    for (name, (mean, std)), colour in zip(spreads.items(), itertools.cycle(SERIES_COLOURS), strict=False):
        steps, dims = np.divmod(np.arange(mean.size), z_size)
        data.append(
            {
                "type": "scattergl",
                "x": mean,
                "y": np.maximum(std, SPREAD_FLOOR),
                "mode": "markers",
                "name": name,
                "marker": {"color": colour, "size": 4, "opacity": 0.5},
                "customdata": np.stack([steps + 1, dims], axis=1).astype(np.int16),  # small on the wire
                "hovertemplate": f"{name}<br>t = %{{customdata[0]}}, z[%{{customdata[1]}}]<br>"
                "mean %{x:.3f}, std %{y:.3g}<extra></extra>",
            }
        )
    data.append(
        {
            "type": "scatter",
            "x": [0.0],
            "y": [1.0],
            "mode": "markers",
            "name": "prior",
            "marker": {"color": PRIOR_COLOUR, "symbol": "x-thin", "size": 16, "line": {"width": 3}},
            "hovertemplate": "the prior N(0, 1): mean 0, std 1<extra></extra>",
        }
    )
    layout = viz._chart_layout(
        title,
        height,
        xaxis={"title": {"text": "mean over the test digits"}},
        yaxis={"type": "log", "title": {"text": "std over the test digits"}, "exponentformat": "power"},
        legend={"orientation": "h", "y": -0.25},
    )
    return viz._figure(data, layout)


def histogram_figure(
    panels: dict[str, dict[str, np.ndarray]], *, title: str | None = None, height: int = CHART_HEIGHT
) -> go.Figure:
    """Side by side, one panel per model: histograms of its named series of code values (over the same digits),
    scaled to densities on the panel's shared bins, each against the N(0, 1) density (traces "N(0, 1)")."""
    data, layout = [], {}
    count = len(panels)
    gap = 0.08
    width = (1 - gap * (count - 1)) / count
    colours = itertools.cycle(SERIES_COLOURS)
    for index, (panel, series) in enumerate(panels.items()):
        suffix = "" if index == 0 else str(index + 1)
        axes = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        edges = shared_edges(*series.values())
        centres, step = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
        for name, values in series.items():
            counts = histogram(values, edges)
            data.append(
                {
                    "type": "bar",
                    "x": centres,
                    "y": counts / (len(values) * step),
                    "width": step,
                    "customdata": counts,
                    "name": f"{panel}: {name}",
                    "marker": {"color": next(colours)},
                    "opacity": 0.6,
                    "hovertemplate": f"{panel}: {name}<br>%{{x:.2f}}: %{{customdata}} digits<extra></extra>",
                    **axes,
                }
            )
        x = np.linspace(edges[0], edges[-1], 201)
        data.append(
            viz._line(
                x, normal_density(x), "N(0, 1)", "N(0, 1): %{y:.3f} at %{x:.2f}<extra></extra>",
                line={"color": PRIOR_COLOUR, "width": 2}, showlegend=index == 0, **axes,
            )
        )  # fmt: skip
        start = index * (width + gap)
        layout[f"xaxis{suffix}"] = {
            "domain": [start, start + width],
            "range": [edges[0], edges[-1]],
            "title": {"text": f"{panel}: code value"},
            "anchor": f"y{suffix}",
        }
        layout[f"yaxis{suffix}"] = {
            "anchor": f"x{suffix}",
            "rangemode": "tozero",
            **({"title": {"text": "density"}} if index == 0 else {}),
        }
    return viz._figure(
        data,
        viz._chart_layout(title, height, barmode="overlay", bargap=0, legend={"orientation": "h", "y": -0.3}, **layout),
    )
