"""What the "Reparameterization" page shows: two ways to estimate the gradient of E_{z~q_theta}[f(z)].

- Pathwise (the reparameterization trick, Kingma & Welling 2014): write z = g_theta(eps) with noise eps that does not
  depend on theta, then d/dtheta E[f(z)] = E_eps[f'(z) dz/dtheta]. DRAW samples its latents this way: z_t ~ Q(Z_t |
  h^enc_t) (eq. 6) is drawn as z_t = mu_t + sigma_t eps with mu_t, sigma_t from eqs 1-2, so the loss's gradient reaches
  the encoder through mu_t and sigma_t. How each family is written as g_theta(eps): location-scale (Normal), inverse
  CDF (Exponential), implicit reparameterization (Gamma, Figurnov et al. 2018), and for discrete z, which has no
  pathwise gradient, a continuous relaxation (Concrete / Gumbel-softmax, Maddison et al. 2017, Jang et al. 2017),
  whose gradient is biased for every temperature tau > 0.
- Score function (REINFORCE, Williams 1992): d/dtheta E[f(z)] = E[f(z) d/dtheta log q_theta(z)], which needs only
  log q_theta, not f'. Unbiased for every f and every q, discrete too, but noisy; subtracting a baseline b that does
  not depend on z keeps it unbiased: here the leave-one-out baseline (Kool et al. 2019), the mean f of the other n - 1
  samples, so it needs n >= 2.

`gradient_spread` draws R repeats of N samples at once from a seeded torch.Generator (torch.distributions' own
rsample/sample draw from the global generator, which a training thread in the same server also uses, so the draws
are written out here, each beside the rsample it matches), takes every sample's gradient with autograd (the
parameters are (R, N) leaves, one per sample), and sums prefixes: the estimate from the first n samples of every
repeat, for every n in SAMPLE_SIZES, from one draw. `exact_gradient` differentiates the closed-form expectation
(a central difference in float64: Gamma's cdf has no autograd in its shape).
`rsample_table` reads `has_rsample` of every distribution in torch.distributions, live.

Letters used in shape comments:
    P parameters of the family, R repeats, N samples per repeat (the largest n), S sample sizes, K categories.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
import torch.distributions as D

from draw_core.present import viz
from draw_core.present.views import Explanation

SAMPLE_SIZES = (1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 200, 300, 500, 700, 1000)  # n, log-spaced 1..1000
REPEATS = (100, 200, 500, 1000)  # R the page offers
DEFAULT_REPEATS = 200
SEED = 0
ESTIMATORS = ("pathwise", "reinforce", "baseline")
ESTIMATOR_LABELS = {
    "pathwise": "reparameterization",
    "reinforce": "REINFORCE",
    "baseline": "REINFORCE + baseline",
}
RELAXED_LABEL = "relaxation"  # what the pathwise estimator is called for a discrete family
ESTIMATOR_COLOURS = {"pathwise": "#00c853", "reinforce": viz.RETINA_COLOUR, "baseline": "#d84315"}
EXACT_COLOUR = "black"
CATEGORIES = 4  # the Categorical family's values k = 0..K-1
TEMPERATURE = 0.5  # default tau of the relaxations
CHART_HEIGHT = 340  # screen pixels
FINITE_STEP = 1e-5  # relative step of the central difference in exact_gradient


# --- objectives ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Objective:
    """f(z), and E_q[f(z)] in closed form for a continuous q (a discrete q is summed over its support)."""

    label: str
    latex: str
    f: Callable[[torch.Tensor, float], torch.Tensor]  # (z, c) -> f(z), elementwise
    mean: Callable[[D.Distribution, float], torch.Tensor]  # (q, c) -> E_q[f(z)]
    uses_c: bool  # whether f has the constant c
    smooth: bool  # False: f' = 0 wherever it exists, so the pathwise gradient is 0


def _above(z: torch.Tensor, c: float) -> torch.Tensor:
    """1[z > c]: a comparison has no derivative, so autograd finds no path from it to theta."""
    return (z > c).to(z.dtype)


def _tail(q: D.Distribution, c: float) -> torch.Tensor:
    """P_q(z > c); below the support's lower bound, 1."""
    lower = getattr(q.support, "lower_bound", -math.inf)
    return 1 - q.cdf(torch.tensor(max(c, lower), dtype=torch.float64))


OBJECTIVES = {
    "square": Objective(
        label="z²", latex=r"f(z) = z^2", f=lambda z, c: z**2, mean=lambda q, c: q.variance + q.mean**2,
        uses_c=False, smooth=True,
    ),
    "offset": Objective(
        label="(z − c)²", latex=r"f(z) = (z - c)^2", f=lambda z, c: (z - c) ** 2,
        mean=lambda q, c: q.variance + (q.mean - c) ** 2, uses_c=True, smooth=True,
    ),
    "step": Objective(
        label="1[z > c]", latex=r"f(z) = \mathbb{1}[z > c]", f=_above, mean=_tail, uses_c=True, smooth=False,
    ),
}  # fmt: skip


# --- families --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """One parameter of theta, with the range of its slider."""

    name: str
    label: str
    low: float
    high: float
    default: float
    step: float


@dataclass(frozen=True, kw_only=True)
class Family:
    """q_theta: how to draw z from it, pathwise (z_path, a differentiable function of theta) and as the sample the
    score function scores (z_hard: the same z for a continuous family; the discrete sample whose relaxation z_path
    is, for a discrete one), both from the same noise; and the torch distribution whose log_prob is scored."""

    label: str
    how: str  # how z_path is written as g_theta(eps)
    parameters: tuple[Parameter, ...]
    draw: Callable[[dict[str, torch.Tensor], torch.Generator, float], tuple[torch.Tensor, torch.Tensor]]
    distribution: Callable[[dict[str, torch.Tensor]], D.Distribution]
    relaxed: bool  # z is discrete and z_path is a relaxation of it (biased, with a temperature)


def _uniform(like: torch.Tensor, generator: torch.Generator, shape=None) -> torch.Tensor:
    """u ~ U(0, 1) strictly inside (0, 1), so logit(u) and log(-log u) are finite (torch's clamp_probs)."""
    u = torch.rand(like.shape if shape is None else shape, generator=generator, dtype=like.dtype)
    eps = torch.finfo(like.dtype).eps
    return u.clamp(eps, 1 - eps)


def _normal(theta, generator, temperature):
    eps = torch.randn(theta["mu"].shape, generator=generator, dtype=theta["mu"].dtype)
    z = theta["mu"] + theta["sigma"] * eps  # DRAW eq. 6 as drawn: z_t = mu_t + sigma_t eps; Normal.rsample
    return z, z.detach()


def _exponential(theta, generator, temperature):
    z = -torch.log1p(-_uniform(theta["rate"], generator)) / theta["rate"]  # inverse CDF: F(z) = 1 - exp(-rate z)
    return z, z.detach()


def _gamma(theta, generator, temperature):
    # Gamma.rsample with a generator: torch's standard Gamma sample carries the implicit gradient dz/dalpha
    # = -(dF/dalpha) / q(z) (Figurnov et al. 2018); the rate scales it.
    z = torch._standard_gamma(theta["alpha"], generator=generator) / theta["beta"]
    return z, z.detach()


def _bernoulli(theta, generator, temperature):
    p = theta["p"]
    noise = torch.logit(_uniform(p, generator))  # logistic noise
    logits = torch.logit(p)
    relaxed = torch.sigmoid((logits + noise) / temperature)  # RelaxedBernoulli.rsample (Concrete)
    hard = (logits + noise > 0).to(p.dtype).detach()  # its tau -> 0 limit: 1[u > 1 - p] ~ Bernoulli(p)
    return relaxed, hard


def _tilted_logits(theta: torch.Tensor) -> torch.Tensor:
    """(..., K) logits theta k of the Categorical family p_k ∝ exp(theta k), k = 0..K-1."""
    return theta[..., None] * torch.arange(CATEGORIES, dtype=theta.dtype)


def _categorical(theta, generator, temperature):
    logits = _tilted_logits(theta["theta"])  # (R, N, K)
    gumbel = -torch.log(-torch.log(_uniform(logits, generator)))
    weights = torch.softmax((logits + gumbel) / temperature, dim=-1)  # RelaxedOneHotCategorical.rsample
    values = torch.arange(CATEGORIES, dtype=logits.dtype)
    relaxed = weights @ values  # the soft one-hot's value: sum_k k y_k
    hard = (logits + gumbel).argmax(-1).to(logits.dtype).detach()  # Gumbel-max: k ~ Categorical(p)
    return relaxed, hard


FAMILIES = {
    "Normal": Family(
        label="Normal(μ, σ)",
        how="location-scale: z = μ + σ ε, ε ~ N(0, 1), as DRAW draws z_t (eq. 6)",
        parameters=(
            Parameter(name="mu", label="μ", low=-3.0, high=3.0, default=1.0, step=0.1),
            Parameter(name="sigma", label="σ", low=0.2, high=3.0, default=1.0, step=0.1),
        ),
        draw=_normal,
        distribution=lambda theta: D.Normal(theta["mu"], theta["sigma"], validate_args=False),
        relaxed=False,
    ),
    "Exponential": Family(
        label="Exponential(λ)",
        how="inverse CDF: z = −log(1 − u) / λ, u ~ U(0, 1)",
        parameters=(Parameter(name="rate", label="λ", low=0.2, high=4.0, default=1.0, step=0.1),),
        draw=_exponential,
        distribution=lambda theta: D.Exponential(theta["rate"], validate_args=False),
        relaxed=False,
    ),
    "Gamma": Family(
        label="Gamma(α, β)",
        how="implicit reparameterization (Figurnov et al. 2018): dz/dα = −(∂F/∂α)/q(z); z = z₁/β",
        parameters=(
            Parameter(name="alpha", label="α (shape)", low=0.3, high=5.0, default=2.0, step=0.1),
            Parameter(name="beta", label="β (rate)", low=0.3, high=4.0, default=1.0, step=0.1),
        ),
        draw=_gamma,
        distribution=lambda theta: D.Gamma(theta["alpha"], theta["beta"], validate_args=False),
        relaxed=False,
    ),
    "Bernoulli": Family(
        label="Bernoulli(p)",
        how="relaxation (Concrete): z̃ = σ((logit p + logit u)/τ) in (0, 1) for z ∈ {0, 1}",
        parameters=(Parameter(name="p", label="p", low=0.05, high=0.95, default=0.3, step=0.05),),
        draw=_bernoulli,
        distribution=lambda theta: D.Bernoulli(probs=theta["p"], validate_args=False),
        relaxed=True,
    ),
    "Categorical": Family(
        label=f"Categorical on 0..{CATEGORIES - 1}, p_k ∝ exp(θk)",
        how="relaxation (Gumbel-softmax): y = softmax((log p + g)/τ), z̃ = Σ_k k y_k for z = k",
        parameters=(Parameter(name="theta", label="θ", low=-2.0, high=2.0, default=0.5, step=0.1),),
        draw=_categorical,
        distribution=lambda theta: D.Categorical(logits=_tilted_logits(theta["theta"]), validate_args=False),
        relaxed=True,
    ),
}


def _lookup(family: str, objective: str) -> tuple[Family, Objective]:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(FAMILIES)}")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {sorted(OBJECTIVES)}")
    return FAMILIES[family], OBJECTIVES[objective]


def _theta(fam: Family, values: dict[str, float]) -> dict[str, float]:
    names = [p.name for p in fam.parameters]
    if sorted(values) != sorted(names):
        raise ValueError(f"{fam.label} takes the parameters {names}, got {sorted(values)}")
    return {name: float(values[name]) for name in names}


# --- the exact gradient ----------------------------------------------------------------------------------------------


def expected_value(family: str, objective: str, values: dict[str, float], c: float = 0.0) -> float:
    """E_{z~q_theta}[f(z)]: the objective's closed form for a continuous q, sum_z q(z) f(z) over a discrete q's
    support."""
    fam, obj = _lookup(family, objective)
    theta = {name: torch.tensor(v, dtype=torch.float64) for name, v in _theta(fam, values).items()}
    q = fam.distribution(theta)
    if q.support.is_discrete:
        support = q.enumerate_support(expand=False).reshape(-1)  # (K,) the values z takes
        return float((q.log_prob(support).exp() * obj.f(support.to(torch.float64), c)).sum())
    return float(obj.mean(q, c))


def exact_gradient(family: str, objective: str, values: dict[str, float], c: float = 0.0) -> np.ndarray:
    """(P,) d/dtheta E_q[f(z)] for each parameter: a central difference of `expected_value` in float64 (step
    FINITE_STEP relative; error ~1e-9, far below any estimator's spread; Gamma's cdf has no autograd in alpha)."""
    fam, _ = _lookup(family, objective)
    theta = _theta(fam, values)
    gradient = []
    for name, value in theta.items():
        h = FINITE_STEP * max(1.0, abs(value))
        up = expected_value(family, objective, {**theta, name: value + h}, c)
        down = expected_value(family, objective, {**theta, name: value - h}, c)
        gradient.append((up - down) / (2 * h))
    return np.array(gradient)


# --- the estimators --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PerSample:
    """One draw of R x N samples and every sample's contribution to each estimator."""

    f: torch.Tensor  # (R, N) f(z_hard), the reward the score function weighs
    score: torch.Tensor  # (P, R, N) d/dtheta log q_theta(z_hard)
    pathwise: torch.Tensor  # (P, R, N) d/dtheta f(z_path): f'(z) dz/dtheta


def per_sample(
    family: str,
    objective: str,
    values: dict[str, float],
    c: float = 0.0,
    *,
    repeats: int,
    samples: int,
    temperature: float = TEMPERATURE,
    seed: int = SEED,
) -> PerSample:
    """Draw (repeats, samples) z from q_theta with a torch.Generator seeded by `seed` and take each sample's gradients
    with autograd: every parameter is an (R, N) leaf, so d(sum)/d(leaf) holds each sample's own gradient."""
    fam, obj = _lookup(family, objective)
    if repeats < 2 or samples < 1:
        raise ValueError(f"need repeats >= 2 and samples >= 1, got repeats={repeats}, samples={samples}")
    if temperature <= 0:
        raise ValueError(f"the relaxation's temperature must be > 0, got {temperature}")
    leaves = {
        name: torch.full((repeats, samples), value, dtype=torch.float64, requires_grad=True)
        for name, value in _theta(fam, values).items()
    }
    z_path, z_hard = fam.draw(leaves, torch.Generator().manual_seed(int(seed)), float(temperature))
    f_path = obj.f(z_path, c)
    if f_path.requires_grad:
        pathwise = torch.autograd.grad(f_path.sum(), list(leaves.values()), materialize_grads=True)
    else:  # f' = 0 wherever f is differentiable: the pathwise gradient of a step is 0 for every sample
        pathwise = [torch.zeros_like(leaf) for leaf in leaves.values()]
    log_q = fam.distribution(leaves).log_prob(z_hard)  # (R, N)
    score = torch.autograd.grad(log_q.sum(), list(leaves.values()))  # d/dtheta log q_theta(z), per sample
    return PerSample(f=obj.f(z_hard, c).detach(), score=torch.stack(score).detach(), pathwise=torch.stack(pathwise))


@dataclass(frozen=True, kw_only=True)
class Spread:
    """R estimates of each estimator at each sample size n, and the exact gradient, for every parameter."""

    family: str
    objective: str
    parameters: tuple[str, ...]  # (P,) names
    sizes: np.ndarray  # (S,) n
    estimates: dict[str, np.ndarray]  # estimator -> (P, R, S); "baseline" is NaN at n = 1 (no other sample)
    exact: np.ndarray  # (P,) d/dtheta E[f(z)]
    value: float  # E[f(z)]
    relaxed: bool

    def mean(self, estimator: str) -> np.ndarray:
        """(P, S) the mean of the R estimates."""
        return self.estimates[estimator].mean(axis=1)

    def std(self, estimator: str) -> np.ndarray:
        """(P, S) the standard deviation of the R estimates: the estimator's noise at n samples."""
        return self.estimates[estimator].std(axis=1, ddof=1)

    def at(self, n: int) -> int:
        """The index of sample size n."""
        if n not in self.sizes:
            raise ValueError(f"n = {n} is not one of the sample sizes {self.sizes.tolist()}")
        return int(np.flatnonzero(self.sizes == n)[0])


def estimates_from(draws: PerSample, sizes) -> dict[str, np.ndarray]:
    """Each estimator from the first n samples of every repeat, for every n in `sizes`: (P, R, S) each.

    pathwise: (1/n) sum_i d f(z_i)/dtheta. REINFORCE: (1/n) sum_i f_i s_i with s_i = d log q(z_i)/dtheta.
    Baseline: (1/n) sum_i (f_i - b_i) s_i with b_i = (F - f_i)/(n - 1) the mean f of the other samples, which sums
    to (A - F S / n)/(n - 1) with A = sum f_i s_i, F = sum f_i, S = sum s_i (prefix sums, in float64)."""
    n = torch.as_tensor(np.asarray(sizes), dtype=torch.float64)
    index = n.long() - 1
    if int(index.min()) < 0 or int(index.max()) >= draws.f.shape[-1]:
        raise ValueError(f"sample sizes must lie in 1..{draws.f.shape[-1]}, got {list(sizes)}")

    def prefix(values: torch.Tensor) -> torch.Tensor:
        return values.cumsum(-1)[..., index]  # (..., S) sums of the first n

    A, F, S = prefix(draws.f * draws.score), prefix(draws.f), prefix(draws.score)
    baseline = ((A - F * S / n) / (n - 1)).masked_fill(n < 2, math.nan)  # n = 1: no other sample
    return {
        "pathwise": (prefix(draws.pathwise) / n).numpy(),
        "reinforce": (A / n).numpy(),
        "baseline": baseline.numpy(),
    }


def gradient_spread(
    family: str,
    objective: str,
    values: dict[str, float],
    c: float = 0.0,
    *,
    repeats: int = DEFAULT_REPEATS,
    sizes=SAMPLE_SIZES,
    temperature: float = TEMPERATURE,
    seed: int = SEED,
) -> Spread:
    """Every estimator's R estimates at every n in `sizes` (the n-sample estimates of a repeat share its first n
    samples), and the exact gradient."""
    fam, _ = _lookup(family, objective)
    draws = per_sample(
        family, objective, values, c, repeats=repeats, samples=max(sizes), temperature=temperature, seed=seed
    )
    return Spread(
        family=family,
        objective=objective,
        parameters=tuple(p.name for p in fam.parameters),
        sizes=np.asarray(sizes),
        estimates=estimates_from(draws, sizes),
        exact=exact_gradient(family, objective, values, c),
        value=expected_value(family, objective, values, c),
        relaxed=fam.relaxed,
    )


def estimator_label(estimator: str, relaxed: bool) -> str:
    return RELAXED_LABEL if relaxed and estimator == "pathwise" else ESTIMATOR_LABELS[estimator]


def noise_verdict(std: dict[str, float], mean: dict[str, float], exact: float, *, relaxed: bool) -> str:
    """The caption's comparison of pathwise and REINFORCE at one n, worded by which is the less precise. Both are
    unbiased for a continuous family, so the ratio of their spreads squared is the ratio of samples each needs; a
    relaxation is biased, so it is judged by its root-mean-square error, bias included, which more samples do not
    shrink below the bias."""
    pathwise, reinforce = std["pathwise"], std["reinforce"]
    if relaxed:
        bias = mean["pathwise"] - exact
        rmse = math.hypot(pathwise, bias)
        better = "the relaxation" if rmse < reinforce else "REINFORCE"
        return (
            f"The relaxation is biased (mean {mean['pathwise']:.4g} against the exact {exact:.4g}): its root-mean-"
            f"square error is {rmse:.3g}, REINFORCE's {reinforce:.3g}, so {better} is the more precise here. More "
            f"samples shrink only the spread; the relaxation's bias stays."
        )
    if pathwise <= 0 or reinforce <= 0:
        return ""
    noisier, ratio = (
        ("REINFORCE", reinforce / pathwise)
        if reinforce >= pathwise
        else ("Here the reparameterized estimate", pathwise / reinforce)
    )
    return f"{noisier} is {ratio:.1f}× noisier: it needs about {ratio**2:.0f}× as many samples for the same precision."


# --- figures ---------------------------------------------------------------------------------------------------------


def spread_figure(
    spread: Spread, *, parameter: int, n: int, title: str | None = None, height: int = CHART_HEIGHT
) -> go.Figure:
    """Log-log: the standard deviation of each estimator's R estimates against n (one trace per estimator, named by
    its label; an estimator with no spread at all is left out, the log axis has no 0), a dotted 1/sqrt(n) guide
    through REINFORCE at n = 1 and a line at the chosen n."""
    sizes = spread.sizes.astype(float)
    data = []
    for estimator in ESTIMATORS:
        std = spread.std(estimator)[parameter]
        if not np.any(std > 0):
            continue
        label = estimator_label(estimator, spread.relaxed)
        data.append(
            viz._line(
                sizes,
                np.where(std > 0, std, np.nan),
                label,
                f"{label}<br>n = %{{x}}: std %{{y:.3g}}<extra></extra>",
                mode="lines+markers",
                line={"color": ESTIMATOR_COLOURS[estimator]},
            )
        )
    anchor = spread.std("reinforce")[parameter, 0]
    if anchor > 0:
        data.append(
            viz._line(
                sizes, anchor / np.sqrt(sizes), "∝ 1/√n", "1/√n guide<extra></extra>",
                line={"color": "#9e9e9e", "dash": "dot"},
            )
        )  # fmt: skip
    layout = viz._chart_layout(
        title,
        height,
        xaxis={"type": "log", "title": {"text": "samples n"}},
        yaxis={"type": "log", "title": {"text": "std of the estimate"}, "exponentformat": "power"},
        shapes=[  # the chosen n (shapes take data values on a log axis, unlike annotations)
            {
                "type": "line",
                "x0": n,
                "x1": n,
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "line": {"color": viz.STEP_COLOUR, "width": 1, "dash": "dash"},
            }
        ],
        legend={"orientation": "h", "y": -0.25},
    )
    return viz._figure(data, layout)


def estimates_figure(
    spread: Spread, *, parameter: int, n: int, title: str | None = None, height: int = CHART_HEIGHT, bins: int = 60
) -> go.Figure:
    """Histograms of the R estimates at n, one trace per estimator over shared bins across the middle 99% of all
    estimates (an estimator without estimates at this n, the baseline at n = 1, is left out), and the exact
    gradient as a vertical line (trace "exact")."""
    s = spread.at(n)
    shown = {e: spread.estimates[e][parameter, :, s] for e in ESTIMATORS}
    shown = {e: v for e, v in shown.items() if np.all(np.isfinite(v))}
    exact = float(spread.exact[parameter])
    pooled = np.concatenate([*shown.values(), [exact]])
    low, high = np.percentile(pooled, [0.5, 99.5])
    low, high = min(low, exact), max(high, exact)
    width = max(high - low, 1e-6 * max(1.0, abs(exact))) / bins
    data = [
        {
            "type": "histogram",
            "x": values,
            "name": estimator_label(e, spread.relaxed),
            "xbins": {"start": low - width / 2, "end": high + width / 2, "size": width},
            "marker": {"color": ESTIMATOR_COLOURS[e]},
            "opacity": 0.6,
            "hovertemplate": f"{estimator_label(e, spread.relaxed)}<br>%{{x}}: %{{y}} repeats<extra></extra>",
        }
        for e, values in shown.items()
    ]
    data.append(
        {
            "type": "scatter",
            "x": [exact, exact],
            "y": [0, 1],
            "yaxis": "y2",
            "mode": "lines",
            "name": "exact",
            "line": {"color": EXACT_COLOUR, "width": 2},
            "hovertemplate": f"exact gradient {exact:.4g}<extra></extra>",
        }
    )
    layout = viz._chart_layout(
        title,
        height,
        barmode="overlay",
        xaxis={"title": {"text": "gradient estimate"}, "range": [low - width, high + width]},
        yaxis={"title": {"text": "repeats"}},
        yaxis2={"overlaying": "y", "range": [0, 1], "visible": False},
        legend={"orientation": "h", "y": -0.25},
    )
    return viz._figure(data, layout)


EXPLANATIONS = {
    "pathwise": Explanation(
        "DRAW eq. 6 (z_t drawn as μ_t + σ_t ε)",
        r"\begin{gathered}z = g_\theta(\varepsilon),\ \text{e.g. } z_t = \mu_t + \sigma_t\,\varepsilon \\"
        r" \nabla_\theta\, \mathbb{E}_{q_\theta}[f(z)]"
        r" = \mathbb{E}_{\varepsilon}\!\left[f'(z)\, \nabla_\theta z\right]\end{gathered}",
        "Reparameterization moves θ through the sample and uses the slope f′: each sample says which way to go.",
    ),
    "score": Explanation(
        "score-function identity (REINFORCE)",
        r"\nabla_\theta\, \mathbb{E}_{q_\theta}[f(z)] = \mathbb{E}_{q_\theta}\!\left[(f(z) - b)\,"
        r"\nabla_\theta \log q_\theta(z)\right]",
        "REINFORCE only weighs samples by f: unbiased for any f, any q (discrete too) and any b that does not depend "
        "on z, but noisy.",
    ),
    "spread": Explanation(
        "the mean of n independent estimates",
        r"\operatorname{std}\big(\hat g_n\big) = \operatorname{std}\big(\hat g_1\big) / \sqrt{n}",
        "Every line falls like 1/√n (the dotted guide); the vertical gap between them is how much noisier one "
        "estimator is: usually REINFORCE, which scores samples instead of differentiating through them (a relaxed "
        "discrete z can be the noisier, and is biased besides).",
    ),
    "estimates": Explanation(
        "eq. 6 against the score-function identity",
        r"\begin{gathered}\hat g_n = \tfrac{1}{n}\sum_{i=1}^{n} \nabla_\theta f(g_\theta(\varepsilon_i))"
        r"\quad\text{vs} \\ \hat g_n = \tfrac{1}{n}\sum_{i=1}^{n} (f(z_i) - b_i)\,\nabla_\theta \log q_\theta(z_i)"
        r"\end{gathered}",
        "Unbiased estimators centre on the black exact line; their width is the noise one gradient step carries.",
    ),
}


# --- which torch.distributions can be reparameterized ----------------------------------------------------------------

BASE_CLASSES = ("Distribution", "ExponentialFamily")  # bases the distributions build on, not distributions
_t = torch.tensor
_EYE = torch.eye(2)
EXAMPLES: dict[str, Callable[[], D.Distribution]] = {  # small valid parameters for each class in torch.distributions
    "Bernoulli": lambda: D.Bernoulli(probs=_t(0.3)),
    "Beta": lambda: D.Beta(_t(2.0), _t(3.0)),
    "Binomial": lambda: D.Binomial(10, probs=_t(0.3)),
    "Categorical": lambda: D.Categorical(probs=_t([0.2, 0.3, 0.5])),
    "Cauchy": lambda: D.Cauchy(_t(0.0), _t(1.0)),
    "Chi2": lambda: D.Chi2(_t(3.0)),
    "ContinuousBernoulli": lambda: D.ContinuousBernoulli(probs=_t(0.3)),
    "Dirichlet": lambda: D.Dirichlet(_t([1.0, 2.0, 3.0])),
    "Exponential": lambda: D.Exponential(_t(1.0)),
    "FisherSnedecor": lambda: D.FisherSnedecor(_t(3.0), _t(5.0)),
    "Gamma": lambda: D.Gamma(_t(2.0), _t(1.0)),
    "GeneralizedPareto": lambda: D.GeneralizedPareto(_t(0.0), _t(1.0), _t(0.1)),
    "Geometric": lambda: D.Geometric(probs=_t(0.3)),
    "Gumbel": lambda: D.Gumbel(_t(0.0), _t(1.0)),
    "HalfCauchy": lambda: D.HalfCauchy(_t(1.0)),
    "HalfNormal": lambda: D.HalfNormal(_t(1.0)),
    "Independent": lambda: D.Independent(D.Normal(torch.zeros(2), torch.ones(2)), 1),
    "InverseGamma": lambda: D.InverseGamma(_t(3.0), _t(1.0)),
    "Kumaraswamy": lambda: D.Kumaraswamy(_t(2.0), _t(3.0)),
    "LKJCholesky": lambda: D.LKJCholesky(2, _t(1.0)),
    "Laplace": lambda: D.Laplace(_t(0.0), _t(1.0)),
    "LogNormal": lambda: D.LogNormal(_t(0.0), _t(1.0)),
    "LogisticNormal": lambda: D.LogisticNormal(torch.zeros(2), torch.ones(2)),
    "LowRankMultivariateNormal": lambda: D.LowRankMultivariateNormal(torch.zeros(2), torch.ones(2, 1), torch.ones(2)),
    "MixtureSameFamily": lambda: D.MixtureSameFamily(
        D.Categorical(probs=_t([0.5, 0.5])), D.Normal(_t([-1.0, 1.0]), _t([1.0, 1.0]))
    ),
    "Multinomial": lambda: D.Multinomial(5, probs=_t([0.2, 0.3, 0.5])),
    "MultivariateNormal": lambda: D.MultivariateNormal(torch.zeros(2), _EYE),
    "NegativeBinomial": lambda: D.NegativeBinomial(_t(5.0), probs=_t(0.3)),
    "Normal": lambda: D.Normal(_t(0.0), _t(1.0)),
    "OneHotCategorical": lambda: D.OneHotCategorical(probs=_t([0.2, 0.3, 0.5])),
    "OneHotCategoricalStraightThrough": lambda: D.OneHotCategoricalStraightThrough(probs=_t([0.2, 0.3, 0.5])),
    "Pareto": lambda: D.Pareto(_t(1.0), _t(2.0)),
    "Poisson": lambda: D.Poisson(_t(3.0)),
    "RelaxedBernoulli": lambda: D.RelaxedBernoulli(_t(0.5), probs=_t(0.3)),
    "RelaxedOneHotCategorical": lambda: D.RelaxedOneHotCategorical(_t(0.5), probs=_t([0.2, 0.3, 0.5])),
    "StudentT": lambda: D.StudentT(_t(3.0)),
    "TransformedDistribution": lambda: D.TransformedDistribution(D.Normal(_t(0.0), _t(1.0)), [D.ExpTransform()]),
    "Uniform": lambda: D.Uniform(_t(0.0), _t(1.0)),
    "VonMises": lambda: D.VonMises(_t(0.0), _t(1.0)),
    "Weibull": lambda: D.Weibull(_t(1.0), _t(2.0)),
    "Wishart": lambda: D.Wishart(_t(3.0), _EYE),
}
DISCRETE = "not reparameterizable: discrete — use REINFORCE or a relaxation"
IMPLICIT = "implicit reparameterization (Figurnov et al. 2018)"
HOW = {  # class name -> how its rsample writes z as a differentiable g_theta(eps); "not ..." when it has none
    "Bernoulli": DISCRETE,
    "Beta": f"{IMPLICIT}: X / (X + Y) of two Gammas",
    "Binomial": DISCRETE,
    "Categorical": DISCRETE,
    "Cauchy": "location-scale: z = x₀ + γ ε, ε standard Cauchy",
    "Chi2": f"{IMPLICIT}: a Gamma(ν/2, 1/2)",
    "ContinuousBernoulli": "inverse CDF: z = F⁻¹(u)",
    "Dirichlet": f"{IMPLICIT}: normalised Gammas",
    "Exponential": "inverse CDF (a scale): z = ε / λ, ε = −log(1 − u) ~ Exp(1)",
    "FisherSnedecor": f"{IMPLICIT}: a ratio of two Gammas",
    "Gamma": f"{IMPLICIT}: dz/dα = −(∂F/∂α) / q(z); the rate scales z",
    "GeneralizedPareto": "inverse CDF: z = F⁻¹(u)",
    "Geometric": DISCRETE,
    "Gumbel": "inverse CDF: z = μ − β log(−log u)",
    "HalfCauchy": "a transform of a Cauchy: z = |ε| γ",
    "HalfNormal": "a transform of a Normal: z = |σ ε|",
    "Independent": "as its base distribution (the example wraps a Normal)",
    "InverseGamma": f"{IMPLICIT}: 1 / Gamma",
    "Kumaraswamy": "inverse CDF: z = (1 − u^{1/b})^{1/a}",
    "LKJCholesky": "not reparameterized in torch: sampled (onion method) without a gradient path",
    "Laplace": "location-scale, ε by inverse CDF: z = μ − b sign(u) log(1 − |u|)",
    "LogNormal": "location-scale in log space: z = exp(μ + σ ε)",
    "LogisticNormal": "location-scale then a stick-breaking transform of a Normal",
    "LowRankMultivariateNormal": "location-scale: z = μ + W ε₁ + √D ε₂",
    "MixtureSameFamily": "not reparameterizable: the component choice is discrete",
    "Multinomial": DISCRETE,
    "MultivariateNormal": "location-scale: z = μ + L ε, L the Cholesky factor of Σ",
    "NegativeBinomial": DISCRETE,
    "Normal": "location-scale: z = μ + σ ε, ε ~ N(0, 1) (DRAW eq. 6)",
    "OneHotCategorical": DISCRETE,
    "OneHotCategoricalStraightThrough": "straight-through: a hard one-hot sample, gradient taken as the "
    "probabilities' (biased; Bengio et al. 2013)",
    "Pareto": "inverse CDF: z = x_m exp(ε / α), ε ~ Exp(1)",
    "Poisson": DISCRETE,
    "RelaxedBernoulli": "relaxation (Concrete, Maddison et al. 2017): σ((logit p + logit u) / τ), biased for τ > 0",
    "RelaxedOneHotCategorical": "relaxation (Gumbel-softmax, Jang et al. 2017): softmax((log p + g) / τ), "
    "biased for τ > 0",
    "StudentT": f"location-scale of a Normal over √(Chi2/ν); {IMPLICIT} for ν",
    "TransformedDistribution": "as its base distribution, through the transforms (the example: exp of a Normal)",
    "Uniform": "location-scale: z = a + (b − a) u",
    "VonMises": "not reparameterized in torch: sampled by rejection without a gradient path (an implicit "
    "gradient exists, Figurnov et al. 2018)",
    "Weibull": "inverse CDF: z = λ ε^{1/k}, ε ~ Exp(1)",
    "Wishart": f"Bartlett decomposition of Normals and Chi2s ({IMPLICIT})",
}
UNDESCRIBED = "not described on this page"


def distribution_classes() -> list[type]:
    """Every distribution class torch.distributions exports (the abstract bases left out), by name."""
    found = {
        name: obj
        for name, obj in vars(D).items()
        if inspect.isclass(obj) and issubclass(obj, D.Distribution) and name not in BASE_CLASSES
    }
    return [found[name] for name in sorted(found)]


def rsample_table() -> list[dict]:
    """One row per class of `distribution_classes`: has_rsample read from torch (the class attribute, or, where torch
    makes it a property that depends on the parameters, from an instance of EXAMPLES; None when neither is there),
    whether its support is discrete (from the instance), and how it is reparameterized (HOW)."""
    rows = []
    for cls in distribution_classes():
        name = cls.__name__
        instance = EXAMPLES[name]() if name in EXAMPLES else None
        attribute = inspect.getattr_static(cls, "has_rsample")
        if isinstance(attribute, bool):
            flag = attribute
        else:
            flag = bool(instance.has_rsample) if instance is not None else None
        rows.append(
            {
                "distribution": name,
                "has_rsample": flag,
                "support": "—" if instance is None else ("discrete" if instance.support.is_discrete else "continuous"),
                "how": HOW.get(name, UNDESCRIBED),
            }
        )
    return rows
