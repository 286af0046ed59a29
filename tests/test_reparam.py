"""draw_core.present.reparam: the exact gradients by hand, both estimators unbiased (the score function for every
family, the pathwise one for the continuous ones), their spread (reparameterization tighter, the baseline helps,
1/sqrt(n)), the relaxation's bias, the prefix sums on a hand case, the figures and the live has_rsample table."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.distributions as D

from draw_core.present import reparam

NORMAL = {"mu": 0.7, "sigma": 1.3}


def phi(x: float) -> float:
    return math.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize(
    ("family", "objective", "values", "c", "expected"),
    [
        ("Normal", "square", NORMAL, 0.0, [2 * 0.7, 2 * 1.3]),  # E = mu^2 + sigma^2
        ("Normal", "offset", NORMAL, 2.0, [2 * (0.7 - 2.0), 2 * 1.3]),  # E = (mu - c)^2 + sigma^2
        # E = Phi((mu - c) / sigma): d/dmu = phi / sigma, d/dsigma = -phi (mu - c) / sigma^2
        ("Normal", "step", NORMAL, 1.0, [phi(-0.3 / 1.3) / 1.3, phi(-0.3 / 1.3) * 0.3 / 1.3**2]),
        ("Exponential", "square", {"rate": 2.0}, 0.0, [-4 / 2.0**3]),  # E = 2 / rate^2
        ("Exponential", "step", {"rate": 2.0}, 0.5, [-0.5 * math.exp(-1.0)]),  # E = exp(-rate c)
        ("Gamma", "square", {"alpha": 2.0, "beta": 0.5}, 0.0, [(2 * 2 + 1) / 0.25, -2 * 2 * 3 / 0.125]),
        ("Bernoulli", "offset", {"p": 0.3}, 2.0, [(1 - 2) ** 2 - (0 - 2) ** 2]),  # d/dp = f(1) - f(0)
    ],
)
def test_exact_gradients_match_the_hand_derivatives(family, objective, values, c, expected):
    assert reparam.exact_gradient(family, objective, values, c) == pytest.approx(expected, rel=1e-6)


def test_the_categorical_gradient_is_the_covariance_of_f_and_k():
    theta = 0.5
    p = np.exp(theta * np.arange(4))
    p /= p.sum()
    k = np.arange(4.0)
    expected = (p * k**2 * k).sum() - (p * k**2).sum() * (p * k).sum()  # d/dtheta E[f] = Cov(f(k), k), f = k^2
    assert reparam.exact_gradient("Categorical", "square", {"theta": theta}) == pytest.approx([expected], rel=1e-6)


UNBIASED = [
    ("Normal", "square", NORMAL, 0.0),
    ("Normal", "offset", NORMAL, -1.0),
    ("Exponential", "offset", {"rate": 1.5}, 1.0),
    ("Gamma", "square", {"alpha": 0.8, "beta": 1.5}, 0.0),
    ("Bernoulli", "offset", {"p": 0.3}, 2.0),
    ("Categorical", "square", {"theta": 0.5}, 0.0),
    ("Normal", "step", NORMAL, 1.0),
]


@pytest.mark.parametrize(("family", "objective", "values", "c"), UNBIASED)
def test_estimators_are_unbiased_where_they_should_be(family, objective, values, c):
    """The mean of R estimates lies within 4.5 standard errors of the exact gradient: the score function for every
    family and objective, the pathwise gradient for a continuous family and a smooth f."""
    repeats = 1000
    spread = reparam.gradient_spread(family, objective, values, c, repeats=repeats, sizes=(100,))
    unbiased = ["reinforce", "baseline"]
    if not reparam.FAMILIES[family].relaxed and reparam.OBJECTIVES[objective].smooth:
        unbiased.append("pathwise")
    for estimator in unbiased:
        error = np.abs(spread.mean(estimator)[:, 0] - spread.exact)
        assert np.all(error < 4.5 * spread.std(estimator)[:, 0] / math.sqrt(repeats)), (estimator, error)


def test_normal_z_squared_both_estimators_centre_on_2mu_and_2sigma():
    spread = reparam.gradient_spread("Normal", "square", NORMAL, repeats=2000, sizes=(10,))
    assert spread.exact == pytest.approx([1.4, 2.6])
    for estimator in reparam.ESTIMATORS:
        standard_error = spread.std(estimator)[:, 0] / math.sqrt(2000)
        assert np.all(np.abs(spread.mean(estimator)[:, 0] - [1.4, 2.6]) < 4 * standard_error)


def test_reparameterization_is_tighter_than_reinforce_for_a_normal_at_n_1():
    spread = reparam.gradient_spread("Normal", "square", NORMAL, repeats=2000, sizes=(1,))
    pathwise, reinforce = spread.std("pathwise")[:, 0], spread.std("reinforce")[:, 0]
    assert pathwise[0] == pytest.approx(2 * 1.3, rel=0.05)  # d/dmu z^2 = 2 z, z ~ N(mu, sigma^2): std 2 sigma
    assert np.all(pathwise * 1.5 < reinforce)


@pytest.mark.parametrize(("objective", "c"), [("square", 0.0), ("offset", -3.0)])
def test_the_baseline_reduces_reinforce_variance(objective, c):
    spread = reparam.gradient_spread("Normal", objective, NORMAL, c, repeats=1000, sizes=(1, 10, 100))
    assert np.all(np.isnan(spread.estimates["baseline"][:, :, 0]))  # n = 1: no other sample to leave in
    assert np.all(spread.std("baseline")[:, 1:] < spread.std("reinforce")[:, 1:])


def test_the_spread_falls_like_one_over_root_n():
    spread = reparam.gradient_spread("Normal", "square", NORMAL, repeats=2000, sizes=(1, 100))
    for estimator in ("pathwise", "reinforce"):
        ratio = spread.std(estimator)[:, 0] / spread.std(estimator)[:, 1]
        assert ratio == pytest.approx([10.0, 10.0], rel=0.15), estimator


def test_a_step_has_no_pathwise_gradient_but_reinforce_finds_it():
    spread = reparam.gradient_spread("Normal", "step", NORMAL, 1.0, repeats=500, sizes=(1, 100))
    assert np.all(spread.estimates["pathwise"] == 0.0)
    assert np.all(spread.exact > 0.05)  # moving mu or sigma up moves mass above c = 1
    assert spread.mean("reinforce")[:, 1] == pytest.approx(spread.exact, abs=0.02)


def test_the_relaxed_categorical_gradient_is_finite():
    for temperature in (0.05, 0.5, 2.0):
        spread = reparam.gradient_spread(
            "Categorical", "offset", {"theta": -2.0}, 1.0, repeats=100, temperature=temperature
        )
        assert np.all(np.isfinite(spread.estimates["pathwise"]))
        assert np.any(spread.estimates["pathwise"] != 0)


def test_the_relaxation_trades_bias_for_variance_with_its_temperature():
    def relaxed(temperature: float) -> tuple[float, float]:
        spread = reparam.gradient_spread(
            "Bernoulli", "square", {"p": 0.3}, repeats=1000, sizes=(100,), temperature=temperature
        )
        return abs(float(spread.mean("pathwise")[0, 0] - spread.exact[0])), float(spread.std("pathwise")[0, 0])

    cold_bias, cold_std = relaxed(0.1)
    warm_bias, warm_std = relaxed(1.0)
    assert warm_bias > 0.3  # exact 1: the relaxed gradient at tau = 1 is far off
    assert cold_bias < warm_bias / 3 and cold_std > warm_std


def test_the_verdict_names_the_noisier_estimator_and_judges_a_relaxation_by_its_error():
    unbiased = {"pathwise": 0.0, "reinforce": 0.0}
    verdict = reparam.noise_verdict({"pathwise": 1.0, "reinforce": 3.0}, unbiased, 0.0, relaxed=False)
    assert verdict.startswith("REINFORCE is 3.0× noisier") and "about 9× as many samples" in verdict
    verdict = reparam.noise_verdict({"pathwise": 2.0, "reinforce": 1.0}, unbiased, 0.0, relaxed=False)
    assert "reparameterized estimate is 2.0× noisier" in verdict and "about 4×" in verdict
    # spread 0.3 and bias 0.4: root-mean-square error 0.5, better than REINFORCE's 0.6, worse than its 0.4
    biased = {"pathwise": 1.4, "reinforce": 1.0}
    better = reparam.noise_verdict({"pathwise": 0.3, "reinforce": 0.6}, biased, 1.0, relaxed=True)
    assert "error is 0.5," in better and "so the relaxation is the more precise" in better
    worse = reparam.noise_verdict({"pathwise": 0.3, "reinforce": 0.4}, biased, 1.0, relaxed=True)
    assert "so REINFORCE is the more precise" in worse


def test_a_warm_relaxation_of_a_confident_bernoulli_loses_to_reinforce():
    """p = 0.95, tau = 0.5, f = z^2 at n = 10 (a setting the page offers): the relaxed estimates scatter widely around
    a biased mean while REINFORCE's stay near the exact 1, so the page must not call REINFORCE the noisier."""
    spread = reparam.gradient_spread("Bernoulli", "square", {"p": 0.95}, repeats=200, sizes=(10,), temperature=0.5)
    std = {e: float(spread.std(e)[0, 0]) for e in reparam.ESTIMATORS}
    mean = {e: float(spread.mean(e)[0, 0]) for e in reparam.ESTIMATORS}
    assert std["pathwise"] > std["reinforce"]
    verdict = reparam.noise_verdict(std, mean, float(spread.exact[0]), relaxed=True)
    assert "so REINFORCE is the more precise" in verdict and "noisier" not in verdict


def test_draws_are_reproducible_from_the_seed_and_leave_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    one = reparam.per_sample("Gamma", "square", {"alpha": 2.0, "beta": 1.0}, repeats=4, samples=5, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    again = reparam.per_sample("Gamma", "square", {"alpha": 2.0, "beta": 1.0}, repeats=4, samples=5, seed=3)
    other = reparam.per_sample("Gamma", "square", {"alpha": 2.0, "beta": 1.0}, repeats=4, samples=5, seed=4)
    assert torch.equal(one.pathwise, again.pathwise) and not torch.equal(one.pathwise, other.pathwise)


def test_prefix_sums_give_each_estimator_on_a_hand_case():
    draws = reparam.PerSample(
        f=torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64),
        score=torch.tensor([[[1.0, -1.0, 2.0]]], dtype=torch.float64),
        pathwise=torch.tensor([[[0.5, 1.5, 4.0]]], dtype=torch.float64),
    )
    got = reparam.estimates_from(draws, (1, 2, 3))
    assert got["pathwise"][0, 0] == pytest.approx([0.5, 1.0, 2.0])
    assert got["reinforce"][0, 0] == pytest.approx([1.0, -0.5, 5 / 3])  # (1/n) sum f s
    # leave-one-out: n = 2, b = (2, 1): ((1-2)1 + (2-1)(-1))/2 = -1; n = 3, b = (2.5, 2, 1.5): (-1.5 + 0 + 3)/3
    assert np.isnan(got["baseline"][0, 0, 0])
    assert got["baseline"][0, 0, 1:] == pytest.approx([-1.0, 0.5])
    with pytest.raises(ValueError, match="sample sizes must lie in 1..3"):
        reparam.estimates_from(draws, (1, 4))


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="unknown family 'Poisson'"):
        reparam.gradient_spread("Poisson", "square", {"rate": 1.0})
    with pytest.raises(ValueError, match=r"takes the parameters \['mu', 'sigma'\]"):
        reparam.gradient_spread("Normal", "square", {"mu": 1.0})
    with pytest.raises(ValueError, match="temperature must be > 0"):
        reparam.per_sample("Bernoulli", "square", {"p": 0.3}, repeats=2, samples=2, temperature=0.0)
    spread = reparam.gradient_spread("Normal", "square", NORMAL, repeats=10, sizes=(1, 5))
    with pytest.raises(ValueError, match=r"n = 3 is not one of the sample sizes \[1, 5\]"):
        spread.at(3)


def names(figure: go.Figure) -> list[str]:
    return [trace.name for trace in figure.data]


def test_the_figures_are_valid_plotly_and_show_what_there_is():
    smooth = reparam.gradient_spread("Normal", "square", NORMAL, repeats=100)
    step = reparam.gradient_spread("Normal", "step", NORMAL, 1.0, repeats=100)
    relaxed = reparam.gradient_spread("Bernoulli", "square", {"p": 0.3}, repeats=100)
    for spread in (smooth, step, relaxed):
        for n in (1, 10):
            for figure in (
                reparam.spread_figure(spread, parameter=0, n=n, title="t"),
                reparam.estimates_figure(spread, parameter=0, n=n, title="t"),
            ):
                go.Figure(figure.to_dict())  # raises ValueError on any invalid property
    assert names(reparam.spread_figure(smooth, parameter=1, n=10)) == [
        "reparameterization", "REINFORCE", "REINFORCE + baseline", "∝ 1/√n",
    ]  # fmt: skip
    assert "reparameterization" not in names(reparam.spread_figure(step, parameter=0, n=10))  # all 0: no log point
    assert names(reparam.spread_figure(relaxed, parameter=0, n=10))[0] == "relaxation"
    at_one = reparam.estimates_figure(smooth, parameter=1, n=1)
    assert names(at_one) == ["reparameterization", "REINFORCE", "exact"]  # no baseline at n = 1
    histogram = reparam.estimates_figure(smooth, parameter=1, n=10).data
    assert list(histogram[0].x) == pytest.approx(smooth.estimates["pathwise"][1, :, smooth.at(10)].tolist())
    assert list(histogram[-1].x) == pytest.approx([2.6, 2.6])


def test_the_table_reads_has_rsample_live_from_torch():
    classes = reparam.distribution_classes()
    rows = {row["distribution"]: row for row in reparam.rsample_table()}
    assert len(rows) == len(classes) >= 40
    assert D.Distribution not in classes and D.Normal in classes and D.RelaxedOneHotCategorical in classes
    assert rows["Normal"]["has_rsample"] is True and rows["Bernoulli"]["has_rsample"] is False
    assert rows["Gamma"]["has_rsample"] is True and "implicit" in rows["Gamma"]["how"]
    assert rows["Independent"]["has_rsample"] is True  # a property: read from the example instance (of a Normal)
    for name, row in rows.items():
        assert isinstance(row["has_rsample"], bool), f"{name}: no example instance to read has_rsample from"
        assert row["how"] != reparam.UNDESCRIBED, name
        assert row["how"].startswith("not ") == (not row["has_rsample"]), name  # the text agrees with torch
        if row["support"] == "discrete" and name != "OneHotCategoricalStraightThrough":
            assert row["has_rsample"] is False, name
