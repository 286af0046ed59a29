"""draw_core.viz builders of the Train page: the loss history split into L^x and L^z."""

import pytest

from draw_core.present import viz


def test_loss_history_has_recon_kl_and_their_sum_over_the_steps():
    spec = viz.loss_history_figure([10, 20, 40], [200.0, 150.0, 120.0], [5.0, 12.5, 20.0]).to_dict()
    lines = {trace["name"]: trace for trace in spec["data"]}
    assert set(lines) == {"reconstruction", "KL", "total"}
    for trace in lines.values():
        assert list(viz.spec_array(trace["x"])) == [10, 20, 40]
    assert list(viz.spec_array(lines["reconstruction"]["y"])) == [200.0, 150.0, 120.0]
    assert list(viz.spec_array(lines["KL"]["y"])) == [5.0, 12.5, 20.0]
    assert list(viz.spec_array(lines["total"]["y"])) == [205.0, 162.5, 140.0]  # eq. 12: L = L^x + L^z


def test_loss_history_of_no_steps_is_an_empty_chart():
    spec = viz.loss_history_figure([], [], []).to_dict()
    assert all(len(viz.spec_array(trace["y"])) == 0 for trace in spec["data"])


def test_loss_history_refuses_series_of_different_lengths():
    with pytest.raises(ValueError, match="same length"):
        viz.loss_history_figure([1, 2], [1.0], [1.0, 2.0])
