"""draw_core.present.viz builders of the Train page: the loss history split into L^x and L^z (L^z on its own axis),
a classifier's error and loss terms, and the strip of samples from one fixed z over training."""

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from draw_core.present import viz


def traces(figure) -> dict[str, dict]:
    spec = figure.to_dict()
    go.Figure(spec)  # what Plotly accepts (the builders skip its validation)
    return {trace["name"]: trace for trace in spec["data"]}


def test_loss_history_has_recon_kl_and_their_sum_over_the_steps():
    spec = viz.loss_history_figure([10, 20, 40], [200.0, 150.0, 120.0], [5.0, 12.5, 20.0]).to_dict()
    lines = {trace["name"]: trace for trace in spec["data"]}
    assert set(lines) == {"reconstruction", "KL", "total"}
    for trace in lines.values():
        assert list(viz.spec_array(trace["x"])) == [10, 20, 40]
    assert list(viz.spec_array(lines["reconstruction"]["y"])) == [200.0, 150.0, 120.0]
    assert list(viz.spec_array(lines["KL"]["y"])) == [5.0, 12.5, 20.0]
    assert list(viz.spec_array(lines["total"]["y"])) == [205.0, 162.5, 140.0]  # eq. 12: L = L^x + L^z


def test_kl_has_its_own_axis_on_the_right_and_the_test_bound_is_marked():
    figure = viz.loss_history_figure(
        [1, 2, 3], [800.0, 300.0, 120.0], [0.5, 8.0, 20.0], test_steps=[3], test_values=[141.5]
    )
    lines = traces(figure)
    assert lines["KL"]["yaxis"] == "y2" and lines["reconstruction"]["yaxis"] == lines["total"]["yaxis"] == "y"
    right = figure.to_dict()["layout"]["yaxis2"]
    assert right["overlaying"] == "y" and right["side"] == "right"  # scaled to L^z alone, not to 800 nats
    assert list(viz.spec_array(lines["test bound"]["x"])) == [3]
    assert list(viz.spec_array(lines["test bound"]["y"])) == [141.5]
    assert lines["test bound"].get("yaxis", "y") == "y"  # a bound in nats beside L
    assert "test bound" not in traces(viz.loss_history_figure([1], [1.0], [1.0]))  # none measured yet: no trace


def test_loss_history_of_no_steps_is_an_empty_chart():
    spec = viz.loss_history_figure([], [], []).to_dict()
    assert all(len(viz.spec_array(trace["y"])) == 0 for trace in spec["data"])


def test_loss_history_refuses_series_of_different_lengths():
    with pytest.raises(ValueError, match="same length"):
        viz.loss_history_figure([1, 2], [1.0], [1.0, 2.0])


def test_running_mean_averages_each_value_with_those_before_it():
    assert viz.running_mean([1.0, 0.0, 0.5, 0.5], 2).tolist() == [1.0, 0.5, 0.25, 0.5]
    assert viz.running_mean([3.0, 1.0, 2.0], 10).tolist() == [3.0, 2.0, 2.0]  # fewer at the start
    with pytest.raises(ValueError, match="window must be >= 1"):
        viz.running_mean([1.0], 0)


def test_error_history_shows_batches_their_running_mean_and_the_test_error():
    figure = viz.error_history_figure(
        [5, 10, 15, 20], [1.0, 0.0, 0.5, 0.5], test_steps=[10, 20], test_errors=[0.9, 0.4], window=2
    )
    lines = traces(figure)
    assert list(viz.spec_array(lines["batch error"]["y"])) == [1.0, 0.0, 0.5, 0.5]
    assert list(viz.spec_array(lines["running mean"]["y"])) == [1.0, 0.5, 0.25, 0.5]
    assert list(viz.spec_array(lines["test error"]["x"])) == [10, 20]
    assert list(viz.spec_array(lines["test error"]["y"])) == pytest.approx([0.9, 0.4])
    assert figure.to_dict()["layout"]["yaxis"]["tickformat"] == ".0%"
    with pytest.raises(ValueError, match="same length"):
        viz.error_history_figure([1, 2], [0.5])


def test_training_curves_draw_one_line_per_series():
    lines = traces(viz.training_curves_figure([1, 2], {"cross_entropy": [2.3, 2.0], "reinforce": [0.1, -0.2]}))
    assert set(lines) == {"cross_entropy", "reinforce"}
    assert list(viz.spec_array(lines["reinforce"]["y"])) == pytest.approx([0.1, -0.2])


def test_the_sample_strip_stacks_one_row_per_step_named_on_the_left():
    rows = torch.stack([torch.full((2, 1, 4, 4), value) for value in (0.0, 0.5, 1.0)])  # (R=3, n=2, 1, 4, 4)
    figure = viz.sample_strip_figure([100, 200, 1500], rows, padding=1)
    spec = figure.to_dict()
    go.Figure(spec)
    pixels = viz.spec_array(spec["data"][0]["z"])
    assert pixels.shape == (1 + 3 * 5, 1 + 2 * 5)  # 3 rows and 2 columns of 4x4 images, 1-pixel gaps
    for r, value in enumerate((0.0, 0.5, 1.0)):
        assert np.all(pixels[1 + 5 * r : 5 + 5 * r, 1:5] == value)  # row r holds the samples of step r
    axis = spec["layout"]["yaxis"]
    assert axis["ticktext"] == ["step 100", "step 200", "step 1,500"]
    assert axis["tickvals"] == [2.5, 7.5, 12.5]  # the centres of the rows' pixels
    with pytest.raises(ValueError, match="R = len"):
        viz.sample_strip_figure([100, 200], rows)
