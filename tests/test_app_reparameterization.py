"""AppTest of the Reparameterization page: needs no model; the charts follow the sliders (n, theta, the family and
the objective), the has_rsample table is read from torch, and the page links to Attention at work."""

import pytest
from app_support import assert_no_exception, figure, open_page, use_folders

from draw_core.present import reparam, viz

PAGE = "reparameterization.py"


@pytest.fixture
def at(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])  # no checkpoint at all
    return open_page(PAGE)


def rerun(at):
    at.run()
    assert_no_exception(at)
    return at


def captions(at) -> str:
    return " ".join(caption.value for caption in at.caption)


def traces(spec: dict) -> dict[str, dict]:
    return {trace["name"]: trace for trace in spec["data"]}


def test_renders_without_a_model_with_both_charts_their_equations_and_the_table(at):
    spread = figure(at, "Spread of ∂E/∂μ estimates over 200 repeats")
    assert list(traces(spread)) == ["reparameterization", "REINFORCE", "REINFORCE + baseline", "∝ 1/√n"]
    estimates = traces(figure(at, "The 200 estimates of ∂E/∂μ at n = 10"))
    assert viz.spec_array(estimates["exact"]["x"]) == pytest.approx([2.0, 2.0])  # Normal(1, 1), f = z^2: 2 mu
    for name in ("pathwise", "score", "spread", "estimates"):  # every chart and formula: what to notice
        assert reparam.EXPLANATIONS[name].notice in captions(at)
    assert any("eq. 6" in md.value and "μ_t + σ_t ε" in md.value for md in at.markdown)  # DRAW's own trick
    table = at.dataframe[0].value
    rows = table.set_index("distribution")["has_rsample"]
    assert len(table) == len(reparam.distribution_classes())
    assert bool(rows["Normal"]) is True and bool(rows["Bernoulli"]) is False
    link = at.get("page_link")[0].proto
    assert link.page == "attention_at_work" and link.label == "Attention at work"


def test_moving_n_and_theta_reruns_the_charts(at):
    at.select_slider(key="reparam_n").set_value(100)
    rerun(at)
    estimates = figure(at, "at n = 100")
    result = reparam.gradient_spread("Normal", "square", {"mu": 1.0, "sigma": 1.0})
    shown = viz.spec_array(traces(estimates)["reparameterization"]["x"])
    assert shown == pytest.approx(result.estimates["pathwise"][0, :, result.at(100)])
    assert "At n = 100:" in captions(at)
    at.slider(key="reparam_Normal_mu").set_value(-0.5)
    at.radio(key="reparam_Normal_wrt").set_value("sigma")
    rerun(at)
    exact = traces(figure(at, "estimates of ∂E/∂σ at n = 100"))["exact"]
    assert viz.spec_array(exact["x"]) == pytest.approx([2.0, 2.0])  # 2 sigma
    at.slider(key="reparam_Normal_sigma").set_value(1.5)
    rerun(at)
    assert viz.spec_array(traces(figure(at, "∂E/∂σ at n = 100"))["exact"]["x"]) == pytest.approx([3.0, 3.0])


def test_at_one_sample_the_baseline_is_left_out_and_said_so(at):
    at.select_slider(key="reparam_n").set_value(1)
    rerun(at)
    assert "exact" in traces(figure(at, "at n = 1")) and "REINFORCE + baseline" not in traces(figure(at, "at n = 1"))
    assert "needs n ≥ 2" in captions(at)


def test_a_step_objective_warns_that_the_pathwise_gradient_is_zero(at):
    at.selectbox(key="reparam_f").set_value("step")
    rerun(at)
    assert at.slider(key="reparam_c").value == 0.5
    assert any("exactly 0 for every sample" in warning.value for warning in at.warning)
    assert "reparameterization" not in traces(figure(at, "Spread of"))  # no spread at all: nothing on a log axis


def test_a_discrete_family_gets_a_temperature_and_the_relaxation_bias(at):
    at.selectbox(key="reparam_family").set_value("Bernoulli")
    rerun(at)
    assert at.slider(key="reparam_temperature").value == reparam.TEMPERATURE
    assert any("biased" in info.value for info in at.info)
    assert "relaxation" in traces(figure(at, "Spread of ∂E/∂p"))
    at.slider(key="reparam_temperature").set_value(0.1)
    rerun(at)
    assert any("τ = 0.1" in info.value for info in at.info)
    at.selectbox(key="reparam_family").set_value("Categorical")
    at.selectbox(key="reparam_f").set_value("offset")
    rerun(at)
    figure(at, "Spread of ∂E/∂θ")


def test_an_objective_constant_where_the_samples_fall_says_so_instead_of_a_blank_chart(at):
    at.selectbox(key="reparam_family").set_value("Bernoulli")
    at.selectbox(key="reparam_f").set_value("step")
    rerun(at)
    at.slider(key="reparam_c").set_value(1.5)  # z is 0 or 1: 1[z > 1.5] is 0 for every sample
    rerun(at)
    assert any("takes one value wherever" in info.value and "nothing to compare" in info.value for info in at.info)
    assert not at.get("plotly_chart"), "no empty log axes"
