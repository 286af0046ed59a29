"""draw_core.viz: figures built without Streamlit; windows where the filterbank says they are."""

import numpy as np
import pytest
import torch

from draw_core.nn.attention import AttentionParams, filterbank, window_geometry
from draw_core.present import viz
from draw_core.present.render import window_line_width

H = W = 28


def params(gx=14.0, gy=10.0, delta=3.0, sigma2=0.25, gamma=1.0, shape=()) -> AttentionParams:
    def full(v):
        return torch.full(shape, float(v))

    return AttentionParams(gx=full(gx), gy=full(gy), delta=full(delta), sigma2=full(sigma2), gamma=full(gamma))


def centre_of_mass(row: torch.Tensor) -> float:
    """Filter row over the paper's 1-based pixels -> its mean position, 0-based."""
    pixels = torch.arange(1, len(row) + 1, dtype=row.dtype)
    return float((row * pixels).sum() / row.sum()) - 1


def window_figure(p: AttentionParams, N: int = 5, **kwargs):
    fig = viz.image_figure(torch.zeros(1, H, W))
    return viz.add_window(fig, window_geometry(p, N), params=p, **kwargs)


# sigma = 1 and every filter at least 4 sigma inside the image: the sampled Gaussian's mean is its mu to ~1e-8.
@pytest.mark.parametrize("gx,gy,delta,N", [(14.0, 12.0, 3.0, 5), (9.5, 18.0, 1.5, 2), (14.0, 14.5, 1.5, 12)])
def test_rectangle_corners_are_the_centres_of_mass_of_the_first_and_last_filters(gx, gy, delta, N):
    p = params(gx=gx, gy=gy, delta=delta, sigma2=1.0)
    Fx, Fy = filterbank(params(gx=gx, gy=gy, delta=delta, sigma2=1.0, shape=(1,)), N, H, W)  # (1, N, W), (1, N, H)
    rect = viz.window_shape(window_figure(p, N).to_dict(), "write")
    assert rect["type"] == "rect"
    assert rect["x0"] == pytest.approx(centre_of_mass(Fx[0, 0]), abs=1e-4)
    assert rect["x1"] == pytest.approx(centre_of_mass(Fx[0, -1]), abs=1e-4)
    assert rect["y0"] == pytest.approx(centre_of_mass(Fy[0, 0]), abs=1e-4)
    assert rect["y1"] == pytest.approx(centre_of_mass(Fy[0, -1]), abs=1e-4)


def test_rectangle_corners_by_hand():
    # eq. 19: mu_i = gX + (i - N/2 - 0.5) delta; N = 5, delta = 3 -> offsets -6 .. +6; 0-based = mu - 1.
    rect = viz.window_shape(window_figure(params(gx=14, gy=10, delta=3)).to_dict(), "write")
    assert (rect["x0"], rect["x1"], rect["y0"], rect["y1"]) == pytest.approx((7, 19, 3, 15))


def test_border_width_grows_as_sigma_shrinks():
    widths = [viz.window_shape(window_figure(params(sigma2=s**2)).to_dict())["line"]["width"] for s in (1.6, 1.0, 0.5)]
    assert widths[0] < widths[1] < widths[2]
    # the on-screen width is render.window_line_width (image pixels) times the screen pixels per image pixel
    assert widths[1] == pytest.approx(window_line_width(1.0) * viz.IMAGE_PIXELS / W)


def test_read_and_write_windows_are_named_apart_and_coloured():
    p = params()
    fig = viz.add_window(window_figure(p), window_geometry(params(gx=5, gy=5), 2), kind="read")
    spec = fig.to_dict()
    assert viz.window_shape(spec, "write")["x0"] == pytest.approx(7)
    assert viz.window_shape(spec, "read")["x0"] == pytest.approx(2.5)  # N = 2: mu_1 = 5 + (1 - 1 - 0.5) 3 = 3.5
    assert viz.window_shape(spec, "read")["line"]["color"] != viz.window_shape(spec, "write")["line"]["color"]
    with pytest.raises(ValueError, match="kind"):
        viz.add_window(fig, window_geometry(p, 2), kind="glimpse")


def test_grid_centre_markers_sit_on_the_grid_and_hover_the_parameters():
    p = params(gx=14, gy=10, delta=3, sigma2=0.25, gamma=2.5)
    spec = window_figure(p, show_centres=True).to_dict()
    markers = next(trace for trace in spec["data"] if trace.get("name") == "write-centres")
    assert len(viz.spec_array(markers["x"])) == 25
    assert sorted(set(np.round(viz.spec_array(markers["x"]), 4))) == [7, 10, 13, 16, 19]
    assert sorted(set(np.round(viz.spec_array(markers["y"]), 4))) == [3, 6, 9, 12, 15]
    hover = markers["hovertemplate"]
    for expected in ("g<sub>X</sub> = 14.000", "g<sub>Y</sub> = 10.000", "δ = 3.000", "σ = 0.500", "γ = 2.500"):
        assert expected in hover
    assert not any(trace.get("name") == "write-centres" for trace in window_figure(p).to_dict()["data"])


def test_image_figure_has_y_down_and_square_pixels():
    image = torch.zeros(1, H, W)
    image[0, 2, 5] = 1.0
    spec = viz.image_figure(image).to_dict()
    assert spec["layout"]["yaxis"]["range"] == [H - 0.5, -0.5]
    assert spec["layout"]["yaxis"]["scaleanchor"] == "x"
    z = viz.spec_array(spec["data"][0]["z"])
    assert z.shape == (H, W) and z[2, 5] == 1.0


def test_image_grid_tiles_with_torchvision_layout():
    images = torch.zeros(5, 1, H, W)
    images[3] = 1.0  # second row, second column with nrow=2... (index 3 -> row 1, col 1)
    z = viz.spec_array(viz.image_grid_figure(images, nrow=2, padding=1).to_dict()["data"][0]["z"])
    assert z.shape == (3 * H + 4, 2 * W + 3)
    assert z[1 + H + 1 + 10, 1 + W + 1 + 10] == 1.0
    assert z[1 + 10, 1 + 10] == 0.0
    assert z[0, 0] == pytest.approx(viz.GRID_PAD)


def test_kl_bars_highlight_the_chosen_step():
    spec = viz.kl_per_step_figure(torch.tensor([3.0, 2.0, 1.0]), step=2).to_dict()
    bar = spec["data"][0]
    assert list(viz.spec_array(bar["y"])) == [3.0, 2.0, 1.0]
    assert bar["marker"]["color"][1] != bar["marker"]["color"][0] == bar["marker"]["color"][2]


def test_attention_over_time_plots_each_parameter_over_t():
    T = 4
    p = AttentionParams(
        gx=torch.arange(T, dtype=torch.float32),
        gy=torch.ones(T),
        delta=torch.full((T,), 2.0),
        sigma2=torch.full((T,), 4.0),
        gamma=torch.full((T,), 0.5),
    )
    spec = viz.attention_over_time(p, step=3).to_dict()
    traces = {trace["name"]: trace for trace in spec["data"]}
    assert list(viz.spec_array(traces["g<sub>X</sub>"]["y"])) == [0, 1, 2, 3]
    assert list(viz.spec_array(traces["σ"]["y"])) == [2, 2, 2, 2]
    assert list(viz.spec_array(traces["g<sub>X</sub>"]["x"])) == [1, 2, 3, 4]
    assert any(shape.get("x0") == 3 for shape in spec["layout"]["shapes"])


def test_generation_animation_frames_move_the_window_and_have_play_pause():
    T, N = 3, 5
    canvases = torch.rand(T, 1, H, W)
    p = AttentionParams(
        gx=torch.tensor([8.0, 14.0, 20.0]),
        gy=torch.full((T,), 14.0),
        delta=torch.full((T,), 2.0),
        sigma2=torch.tensor([4.0, 1.0, 0.25]),
        gamma=torch.ones(T),
    )
    spec = viz.generation_animation(canvases, window_geometry(p, N)).to_dict()
    assert [frame["name"] for frame in spec["frames"]] == ["1", "2", "3"]
    lefts = [min(viz.spec_array(frame["data"][1]["x"])) for frame in spec["frames"]]
    assert lefts == pytest.approx([8 - 4 - 1, 14 - 4 - 1, 20 - 4 - 1])
    widths = [frame["data"][1]["line"]["width"] for frame in spec["frames"]]
    assert widths[0] < widths[1] < widths[2]
    z = viz.spec_array(spec["frames"][2]["data"][0]["z"])
    assert z == pytest.approx(canvases[2, 0].numpy(), abs=1e-3)
    labels = [button["label"] for button in spec["layout"]["updatemenus"][0]["buttons"]]
    assert any("Play" in label for label in labels) and any("Pause" in label for label in labels)
    assert all(b["method"] == "animate" for b in spec["layout"]["updatemenus"][0]["buttons"])
    assert len(spec["layout"]["sliders"][0]["steps"]) == T


def test_generation_animation_without_write_attention_has_no_window():
    spec = viz.generation_animation(torch.rand(2, 1, H, W), None).to_dict()
    assert len(spec["data"]) == 1 and all(len(frame["data"]) == 1 for frame in spec["frames"])


def test_filterbank_figure_shows_the_weights():
    Fx, _ = filterbank(params(shape=(1,)), 3, H, W)
    spec = viz.filterbank_figure(Fx[0], axis="x").to_dict()
    assert viz.spec_array(spec["data"][0]["z"]) == pytest.approx(Fx[0].numpy(), abs=1e-4)
    with pytest.raises(ValueError, match="axis"):
        viz.filterbank_figure(Fx[0], axis="z")


def test_every_builder_makes_a_spec_plotly_accepts():
    """The builders skip Plotly's validation for speed; here every one of them goes through it."""
    import plotly.graph_objects as go

    T = 3
    p = params(shape=(T,))
    window = window_geometry(params(), 5)
    Fx, _ = filterbank(params(shape=(1,)), 3, H, W)
    figures = [
        viz.add_window(viz.image_figure(torch.rand(1, H, W), title="t"), window, params=params(), show_centres=True),
        viz.signed_image_figure(torch.rand(H, W) - 0.5, title="signed"),
        viz.attention_over_time(p, step=2, title="over t"),
        viz.kl_per_step_figure(torch.rand(T), step=1),
        viz.kl_curves_figure({"a": [1.0, 2.0], "b": [0.5, 0.1]}),
        viz.loss_history_figure([1, 2], [3.0, 2.0], [1.0, 1.5]),
        viz.image_grid_figure(torch.rand(4, 1, H, W), nrow=2, title="grid"),
        viz.generation_animation(torch.rand(T, 1, H, W), window_geometry(p, 5)),
        viz.filterbank_figure(Fx[0], axis="x", title="F_X"),
    ]
    plotly_js_scales = {"Greys", "Viridis", "RdBu", "Blues", "Reds", "Hot", "Jet", "Electric", "Bluered"}
    for fig in figures:
        spec = fig.to_dict()
        go.Figure(spec)  # raises ValueError on any invalid property
        for trace in spec["data"] + [t for frame in spec.get("frames", []) for t in frame["data"]]:
            scale = trace.get("colorscale")
            # a name only Plotly's Python side knows ("gray", "RdBu_r") would reach plotly.js unexpanded
            assert scale is None or isinstance(scale, list) or scale in plotly_js_scales, scale
