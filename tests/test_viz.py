"""draw_core.viz: figures built without Streamlit; windows where the filterbank says they are, timelines that hold
every step."""

import numpy as np
import plotly.graph_objects
import pytest
import torch

from draw_core.nn.attention import AttentionParams, filterbank, window_geometry
from draw_core.present import viz
from draw_core.present.render import window_line_width
from draw_core.present.views import Window

H = W = 28


def params(gx=14.0, gy=10.0, delta=3.0, sigma2=0.25, gamma=1.0, shape=()) -> AttentionParams:
    def full(v):
        return torch.full(shape, float(v))

    return AttentionParams(gx=full(gx), gy=full(gy), delta=full(delta), sigma2=full(sigma2), gamma=full(gamma))


def centre_of_mass(row: torch.Tensor) -> float:
    """Filter row over the paper's 1-based pixels -> its mean position, 0-based."""
    pixels = torch.arange(1, len(row) + 1, dtype=row.dtype)
    return float((row * pixels).sum() / row.sum()) - 1


def window_figure(p: AttentionParams, N: int = 5, pad: int = 0, **kwargs):
    fig = viz.image_figure(torch.zeros(1, H, W), pad=pad)
    return viz.add_window(fig, window_geometry(p, N), params=p, **kwargs)


def box(fig, kind: str = "write") -> tuple[float, ...]:
    return viz.window_box(fig.to_dict()["data"], kind)


# sigma = 1 and every filter at least 4 sigma inside the image: the sampled Gaussian's mean is its mu to ~1e-8.
@pytest.mark.parametrize("gx,gy,delta,N", [(14.0, 12.0, 3.0, 5), (9.5, 18.0, 1.5, 2), (14.0, 14.5, 1.5, 12)])
def test_rectangle_corners_are_the_centres_of_mass_of_the_first_and_last_filters(gx, gy, delta, N):
    p = params(gx=gx, gy=gy, delta=delta, sigma2=1.0)
    Fx, Fy = filterbank(params(gx=gx, gy=gy, delta=delta, sigma2=1.0, shape=(1,)), N, H, W)  # (1, N, W), (1, N, H)
    x0, y0, x1, y1 = box(window_figure(p, N))
    assert x0 == pytest.approx(centre_of_mass(Fx[0, 0]), abs=1e-4)
    assert x1 == pytest.approx(centre_of_mass(Fx[0, -1]), abs=1e-4)
    assert y0 == pytest.approx(centre_of_mass(Fy[0, 0]), abs=1e-4)
    assert y1 == pytest.approx(centre_of_mass(Fy[0, -1]), abs=1e-4)


def test_rectangle_corners_by_hand():
    # eq. 19: mu_i = gX + (i - N/2 - 0.5) delta; N = 5, delta = 3 -> offsets -6 .. +6; 0-based = mu - 1.
    assert box(window_figure(params(gx=14, gy=10, delta=3))) == pytest.approx((7, 3, 19, 15))
    outline = viz.window_outline(window_figure(params()).to_dict()["data"])
    assert outline["line"]["dash"] == "solid"  # wholly inside: drawn as it is


def test_border_width_grows_as_sigma_shrinks():
    def width(sigma: float) -> float:
        return viz.window_outline(window_figure(params(sigma2=sigma**2)).to_dict()["data"])["line"]["width"]

    assert width(1.6) < width(1.0) < width(0.5)
    # the on-screen width is render.window_line_width (image pixels) times the screen pixels per image pixel
    assert width(1.0) == pytest.approx(window_line_width(1.0) * (viz.IMAGE_PIXELS - 8) / W)


def test_read_and_write_windows_are_named_apart_and_coloured():
    p = params()
    fig = viz.add_window(window_figure(p), window_geometry(params(gx=5, gy=5), 2), kind="read")
    assert box(fig, "write")[0] == pytest.approx(7)
    assert box(fig, "read")[0] == pytest.approx(2.5)  # N = 2: mu_1 = 5 + (1 - 1 - 0.5) 3 = 3.5
    data = fig.to_dict()["data"]
    assert viz.window_outline(data, "read")["line"]["color"] != viz.window_outline(data, "write")["line"]["color"]
    with pytest.raises(ValueError, match="kind"):
        viz.add_window(fig, window_geometry(p, 2), kind="glimpse")


def test_a_padded_image_shows_a_window_reaching_past_it_whole():
    pad = viz.window_pad(H, W)
    assert pad == 4  # 15% of 28, rounded
    fig = window_figure(params(gx=27.0, gy=14.0, delta=1.0), N=5, pad=pad)  # columns 24 .. 28: one past the image
    layout = fig.to_dict()["layout"]
    assert layout["xaxis"]["range"] == [-0.5 - pad, W - 0.5 + pad]
    assert layout["yaxis"]["range"] == [H - 0.5 + pad, -0.5 - pad]  # y down
    assert layout["plot_bgcolor"] == viz.PAD_COLOUR
    frame = next(shape for shape in layout["shapes"] if shape["name"] == "image-frame")
    assert (frame["x0"], frame["y0"], frame["x1"], frame["y1"]) == (-0.5, -0.5, W - 0.5, H - 0.5)
    assert box(fig)[2] == pytest.approx(28.0)  # beyond the last column, yet drawn where it is
    assert viz.window_outline(fig.to_dict()["data"])["line"]["dash"] == "solid"


def test_a_window_larger_than_the_image_is_clipped_to_the_view_and_dotted():
    pad = viz.window_pad(H, W)
    # N = 12, delta = 10 around the middle: the grid spans 110 pixels, 4 times the image
    fig = window_figure(params(gx=14.5, gy=14.5, delta=10.0, sigma2=1.0), N=12, pad=pad)
    inset = window_line_width(1.0) / 2
    lo, hi = -0.5 - pad + inset, W - 0.5 + pad - inset
    assert box(fig) == pytest.approx((lo, lo, hi, hi))  # along the view's edges, half a border inside
    assert viz.window_outline(fig.to_dict()["data"])["line"]["dash"] == "dot"


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
    # the middle centre, plotted at 0-based column 13, row 9, hovers the paper's pixel numbers: g_X = 14, g_Y = 10
    middle = np.round(viz.spec_array(markers["customdata"]), 4)[12]
    assert middle.tolist() == [14, 10] and "pixel a = %{customdata[0]:.2f}" in hover
    assert not any(trace.get("name") == "write-centres" for trace in window_figure(p).to_dict()["data"])


def test_image_figure_has_y_down_and_square_pixels():
    image = torch.zeros(1, H, W)
    image[0, 2, 5] = 1.0
    spec = viz.image_figure(image).to_dict()
    assert spec["layout"]["yaxis"]["range"] == [H - 0.5, -0.5]
    assert spec["layout"]["yaxis"]["scaleanchor"] == "x"
    z = viz.spec_array(spec["data"][0]["z"])
    assert z.shape == (H, W) and z[2, 5] == 1.0


def test_signed_images_have_a_colour_legend_from_blue_through_white_to_red():
    spec = viz.signed_image_figure(torch.rand(H, W) - 0.5, colorbar="error").to_dict()
    heatmap = spec["data"][0]
    assert heatmap["showscale"] and heatmap["colorbar"]["title"]["text"] == "error"
    assert (heatmap["zmin"], heatmap["zmax"]) == (-1.0, 1.0)
    assert heatmap["colorscale"] == viz.SIGNED
    assert spec["layout"]["margin"]["r"] > viz.COLORBAR_PIXELS  # room for the legend
    assert not viz.image_figure(torch.rand(H, W)).to_dict()["data"][0]["showscale"]


def test_image_grid_tiles_with_torchvision_layout():
    images = torch.zeros(5, 1, H, W)
    images[3] = 1.0  # second row, second column with nrow=2... (index 3 -> row 1, col 1)
    z = viz.spec_array(viz.image_grid_figure(images, nrow=2, padding=1).to_dict()["data"][0]["z"])
    assert z.shape == (3 * H + 4, 2 * W + 3)
    assert z[1 + H + 1 + 10, 1 + W + 1 + 10] == 1.0
    assert z[1 + 10, 1 + 10] == 0.0
    assert z[0, 0] == pytest.approx(viz.GRID_PAD)


def test_a_colour_image_is_drawn_in_its_colours_and_a_grid_of_them_too():
    image = torch.zeros(3, 4, 5)
    image[0, 1, 2] = 1.0  # a red pixel at row 1, column 2
    image[:, 3, 4] = 0.5  # a mid grey one at row 3, column 4
    spec = viz.image_figure(image, colorbar="ignored").to_dict()
    picture = spec["data"][0]
    assert picture["type"] == "image" and picture["colormodel"] == "rgb"
    z = np.asarray(picture["z"])
    assert z.shape == (4, 5, 3)
    assert z[1, 2].tolist() == [255, 0, 0] and z[3, 4].tolist() == [128, 128, 128] and z[0, 0].tolist() == [0, 0, 0]
    assert spec["layout"]["yaxis"]["range"] == [3.5, -0.5] and spec["layout"]["margin"]["r"] == 4  # no legend
    grid = np.asarray(viz.image_grid_figure(torch.ones(2, 3, 4, 4), nrow=2, padding=1).to_dict()["data"][0]["z"])
    assert grid.shape == (6, 11, 3) and grid[1, 1].tolist() == [255, 255, 255]
    assert grid[0, 0].tolist() == [round(255 * viz.GRID_PAD)] * 3
    signed = viz.signed_image_figure(image - 0.5).to_dict()["data"][0]  # a signed scale still averages the channels
    assert signed["type"] == "heatmap" and viz.spec_array(signed["z"]).shape == (4, 5)


def test_a_colour_panel_of_a_timeline_moves_its_rgb_pictures_with_the_step():
    T, scale = 2, 10
    frames = torch.zeros(T, 3, 4, 4)
    frames[0, 2] = 1.0  # step 1 all blue
    frames[1, 1, 2, 3] = 1.0  # step 2 black but one green pixel
    panel = viz.ImagePanel(frames.numpy(), "colour", 4 * scale, colour=True)
    spec = viz.timeline_figure([[panel]], T=T, labels=["a", "b"]).to_dict()
    blue, green = (picture_at(spec, "colour", t) for t in range(T))
    assert blue.shape == (4 * scale, 4 * scale, 4)
    assert tuple(blue[5, 5, :3]) == (0, 0, 255)
    assert tuple(green[2 * scale + 5, 3 * scale + 5, :3]) == (0, 255, 0) and tuple(green[5, 5, :3]) == (0, 0, 0)
    still = viz.ImagePanel(frames[0].numpy(), "still", 4 * scale, colour=True, padded=True)
    spec = viz.timeline_figure([[still]], T=T, labels=["a", "b"]).to_dict()
    assert not any(key.startswith("images[0]") for key in viz.timeline_steps(spec)[0])  # it does not move
    pixels = viz.png_pixels(spec["layout"]["images"][0]["source"])
    assert tuple(pixels[0, 0, :3]) == viz._rgb(viz.PAD_COLOUR)


def test_kl_bars_highlight_the_chosen_step():
    spec = viz.kl_per_step_figure(torch.tensor([3.0, 2.0, 1.0]), step=2).to_dict()
    bar = spec["data"][0]
    assert list(viz.spec_array(bar["y"])) == [3.0, 2.0, 1.0]
    assert bar["marker"]["color"][1] != bar["marker"]["color"][0] == bar["marker"]["color"][2]


# --- timelines ---


def track(gx: list[float], *, delta: float = 2.0, sigma2: list[float] | None = None, N: int = 5) -> Window:
    """A window over len(gx) steps at height 14 (a trace's (T,) fields)."""
    T = len(gx)
    p = AttentionParams(
        gx=torch.tensor(gx),
        gy=torch.full((T,), 14.0),
        delta=torch.full((T,), delta),
        sigma2=torch.tensor(sigma2) if sigma2 is not None else torch.ones(T),
        gamma=torch.linspace(0.5, 2.0, T),
    )
    return Window(params=p, geometry=window_geometry(p, N))


def images_named(spec: dict) -> dict[str, int]:
    return {image["name"]: i for i, image in enumerate(spec["layout"]["images"])}


def picture_at(spec: dict, name: str, t: int) -> np.ndarray:
    """(h, w, 4) pixels of layout image `name` at step t (0-based) of a timeline spec."""
    index = images_named(spec)[name]
    return viz.png_pixels(viz.timeline_steps(spec)[t][f"images[{index}].source"])


def drawn_box(spec: dict, name: str, t: int, view_lo: float, scale: int) -> tuple[float, ...]:
    """The extent, in image coordinates, of what the windows picture `name` draws at step t."""
    alpha = picture_at(spec, name, t)[..., 3]
    rows, columns = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
    return (
        columns[0] / scale + view_lo,
        rows[0] / scale + view_lo,
        (columns[-1] + 1) / scale + view_lo,
        (rows[-1] + 1) / scale + view_lo,
    )


def test_generation_timeline_holds_every_step_of_the_canvas_in_grey():
    T = 3
    canvases = torch.rand(T, 1, H, W)
    spec = viz.generation_timeline(canvases, canvases - 0.5, track([8.0, 14.0, 20.0]), size=252).to_dict()
    steps = viz.timeline_steps(spec)
    assert len(steps) == T and spec["layout"]["meta"]["timeline"]["initial"] == T  # opens on the finished sample
    pad, scale = viz.window_pad(H, W), 7  # 252 screen pixels over a 36-pixel view
    for t in range(T):
        pixels = picture_at(spec, "canvas σ(c<sub>t</sub>)", t)
        assert pixels.shape == ((H + 2 * pad) * scale, (W + 2 * pad) * scale, 4)
        centres = pixels[(pad + np.arange(H)) * scale + scale // 2][:, (pad + np.arange(W)) * scale + scale // 2]
        assert np.all(centres[..., 0] == centres[..., 1])  # grey
        expected = np.rint(canvases[t, 0].numpy() * (viz.LEVELS - 1)) * 255 / (viz.LEVELS - 1)
        assert centres[..., 0] == pytest.approx(expected, abs=1.0)
        assert tuple(pixels[0, 0, :3]) == viz._rgb(viz.PAD_COLOUR)  # the margin
    # the figure itself shows the initial step
    assert spec["layout"]["images"][0]["source"] == steps[T - 1]["images[0].source"]


def test_generation_timeline_moves_the_write_window_where_eqs_19_20_put_it():
    T = 3
    window = track([8.0, 14.0, 20.0])
    spec = viz.generation_timeline(torch.rand(T, 1, H, W), torch.zeros(T, 1, H, W), window, size=252).to_dict()
    view_lo, scale = -0.5 - viz.window_pad(H, W), 7
    half = window_line_width(1.0) / 2  # the border straddles the rectangle's edge
    for t, gx in enumerate((8.0, 14.0, 20.0)):
        # N = 5, delta = 2: columns gX - 4 .. gX + 4, minus 1 for 0-based; rows 14 - 4 - 1 .. 14 + 4 - 1
        expected = (gx - 5, 9.0, gx + 3, 17.0)
        drawn = drawn_box(spec, "canvas σ(c<sub>t</sub>) windows", t, view_lo, scale)
        rounding = 1.5 / scale  # the border is a whole number of picture pixels wide
        assert drawn[:2] == pytest.approx(tuple(v - half for v in expected[:2]), abs=rounding)
        assert drawn[2:] == pytest.approx(tuple(v + half for v in expected[2:]), abs=rounding)
        red = picture_at(spec, "canvas σ(c<sub>t</sub>) windows", t)
        assert tuple(red[red[..., 3] > 0][0, :3]) == viz._rgb(viz.WINDOW_COLOURS["write"])


def test_a_sharper_window_has_a_wider_border_in_the_timeline():
    T = 2
    spec = viz.generation_timeline(
        torch.rand(T, 1, H, W), torch.zeros(T, 1, H, W), track([14.0, 14.0], sigma2=[4.0, 0.25]), size=252
    ).to_dict()
    name = "canvas σ(c<sub>t</sub>) windows"
    ink = [int((picture_at(spec, name, t)[..., 3] > 0).sum()) for t in range(T)]
    assert ink[0] < ink[1]  # sigma 2 -> 0.25: the same rectangle, a wider border


def test_a_window_larger_than_the_image_runs_dashed_along_the_edge_of_the_timeline_view():
    spec = viz.generation_timeline(
        torch.rand(1, 1, H, W), torch.zeros(1, 1, H, W), track([14.5], delta=10.0, N=12), size=252
    ).to_dict()
    alpha = picture_at(spec, "canvas σ(c<sub>t</sub>) windows", 0)[..., 3] > 0
    assert alpha[:, :3].any() and alpha[:, -3:].any()  # drawn along the left and right edges of the view...
    column = alpha[:, 1]
    assert 0.2 < column.mean() < 0.8  # ...dashed, not solid
    assert not alpha[alpha.shape[0] // 2, 10:-10].any()  # nothing across the middle


def test_generation_timeline_charts_the_window_with_gamma_on_its_own_axis_and_a_moving_step_line():
    T = 4
    window = track([8.0, 10.0, 12.0, 14.0], sigma2=[4.0, 9.0, 0.25, 1.0])
    spec = viz.generation_timeline(torch.rand(T, 1, H, W), torch.zeros(T, 1, H, W), window).to_dict()
    lines = {trace["name"]: trace for trace in spec["data"] if trace["type"] == "scatter"}
    assert list(viz.spec_array(lines["g<sub>X</sub>"]["y"])) == pytest.approx([8, 10, 12, 14])
    assert list(viz.spec_array(lines["g<sub>Y</sub>"]["y"])) == pytest.approx([14] * T)
    assert list(viz.spec_array(lines["δ"]["y"])) == pytest.approx([2.0] * T)
    assert list(viz.spec_array(lines["σ"]["y"])) == pytest.approx([2.0, 3.0, 0.5, 1.0])  # σ, not σ²
    assert list(viz.spec_array(lines["γ"]["y"])) == pytest.approx(window.params.gamma.tolist())
    axes = {name: lines[name]["yaxis"] for name in lines}
    assert axes["g<sub>X</sub>"] == axes["g<sub>Y</sub>"] and axes["δ"] == axes["σ"]
    assert len({axes["g<sub>X</sub>"], axes["δ"], axes["γ"]}) == 3  # gamma has an axis of its own
    assert "px" not in spec["layout"]["yaxis" + axes["γ"][1:]]["title"]["text"]
    for trace in lines.values():  # a click names the step
        assert list(viz.spec_array(trace["customdata"])) == [1, 2, 3, 4]
    line = images_named(spec)["step-line"]
    assert [step[f"images[{line}].x"] for step in viz.timeline_steps(spec)] == [1, 2, 3, 4]


def test_what_a_step_added_is_signed_with_a_colour_legend():
    T = 2
    added = torch.zeros(T, 1, H, W)
    added[1, 0, 5, 5], added[1, 0, 6, 6] = 1.0, -1.0
    spec = viz.generation_timeline(torch.rand(T, 1, H, W), added, None, size=252).to_dict()
    legend = next(trace for trace in spec["data"] if trace.get("name") == "legend")
    assert legend["showscale"] and (legend["zmin"], legend["zmax"]) == (-1.0, 1.0)
    assert legend["colorscale"] == viz.SIGNED
    pixels = picture_at(spec, "added at t: σ(c<sub>t</sub>) − σ(c<sub>t−1</sub>)", 1)
    scale = 9  # no window: no margin, 252 / 28
    assert tuple(pixels[5 * scale + 4, 5 * scale + 4, :3]) == viz._rgb(viz.SIGNED[-1][1])  # +1 red
    assert tuple(pixels[6 * scale + 4, 6 * scale + 4, :3]) == viz._rgb(viz.SIGNED[0][1])  # -1 blue
    assert tuple(pixels[0, 0, :3]) == (255, 255, 255)  # 0 white


def test_generation_timeline_without_write_attention_has_no_window_and_no_chart():
    spec = viz.generation_timeline(torch.rand(2, 1, H, W), torch.zeros(2, 1, H, W), None).to_dict()
    assert set(images_named(spec)) == {"canvas σ(c<sub>t</sub>)", "added at t: σ(c<sub>t</sub>) − σ(c<sub>t−1</sub>)"}
    assert not [trace for trace in spec["data"] if trace["type"] == "scatter"]


def test_reconstruction_timeline_marks_each_steps_kl_bar_and_reads_with_the_read_window():
    T = 3
    kl = torch.tensor([4.0, 1.0, 2.5])
    read = track([10.0, 14.0, 18.0], N=2)
    glimpses = torch.rand(T, 2, 2, 2)
    spec = viz.reconstruction_timeline(
        torch.rand(1, H, W),
        torch.rand(T, 1, H, W),
        torch.rand(T, 1, H, W) - 0.5,
        glimpses,
        kl,
        read=read,
        write=track([14.0, 14.0, 14.0]),
        glimpse_title="2×2 glimpse",
        size=180,
    ).to_dict()
    bars = next(trace for trace in spec["data"] if trace["type"] == "bar")
    assert list(viz.spec_array(bars["y"])) == [4.0, 1.0, 2.5] and list(viz.spec_array(bars["customdata"])) == [1, 2, 3]
    bar = images_named(spec)["step-bar"]
    steps = viz.timeline_steps(spec)
    assert [(s[f"images[{bar}].x"], s[f"images[{bar}].sizey"]) for s in steps] == [(1, 4.0), (2, 1.0), (3, 2.5)]
    names = images_named(spec)
    assert {
        "input x windows",
        "error x̂<sub>t</sub> = x − σ(c<sub>t−1</sub>) windows",
        "canvas σ(c<sub>t</sub>) windows",
    } < set(names)
    green = picture_at(spec, "input x windows", 1)
    assert tuple(green[green[..., 3] > 0][0, :3]) == viz._rgb(viz.WINDOW_COLOURS["read"])
    # the glimpse from x, 2x2 at 75 screen pixels a pixel, on one range over all steps
    peak = float(glimpses[:, :1].max())
    pixels = picture_at(spec, "read from x: 2×2 glimpse", 2)
    expected = np.rint(glimpses[2, 0].numpy() / peak * (viz.LEVELS - 1)) * 255 / (viz.LEVELS - 1)
    assert pixels[[37, 112]][:, [37, 112], 0] == pytest.approx(expected, abs=1.0)


def test_timeline_labels_say_what_each_step_shows():
    spec = viz.generation_timeline(torch.rand(2, 1, H, W), torch.zeros(2, 1, H, W), track([8.0, 14.0])).to_dict()
    labels = spec["layout"]["meta"]["timeline"]["labels"]
    assert labels[1].startswith("t = 2 of 2") and "g_X 14.0" in labels[1] and "δ 2.00" in labels[1]


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
    window = window_geometry(params(), 5)
    Fx, _ = filterbank(params(shape=(1,)), 3, H, W)
    figures = [
        viz.add_window(viz.image_figure(torch.rand(1, H, W), title="t"), window, params=params(), show_centres=True),
        viz.add_window(viz.image_figure(torch.rand(1, H, W), pad=4, colorbar="v"), window_geometry(params(), 12)),
        viz.signed_image_figure(torch.rand(H, W) - 0.5, title="signed"),
        viz.kl_per_step_figure(torch.rand(T), step=1),
        viz.kl_curves_figure({"a": [1.0, 2.0], "b": [0.5, 0.1]}),
        viz.loss_history_figure([1, 2], [3.0, 2.0], [1.0, 1.5]),
        viz.image_grid_figure(torch.rand(4, 1, H, W), nrow=2, title="grid"),
        viz.image_grid_figure(torch.rand(4, 3, H, W), nrow=2, title="colour grid"),
        viz.generation_timeline(
            torch.rand(T, 1, H, W), torch.zeros(T, 1, H, W), track([8.0, 14.0, 20.0]), show_centres=True
        ),
        viz.reconstruction_timeline(
            torch.rand(1, H, W),
            torch.rand(T, 1, H, W),
            torch.rand(T, 1, H, W),
            torch.rand(T, 2, 2, 2),
            torch.rand(T),
            read=track([8.0, 14.0, 20.0], N=2),
            write=None,
            glimpse_title="g",
        ),
        viz.filterbank_figure(Fx[0], axis="x", title="F_X"),
    ]
    plotly_js_scales = {"Greys", "Viridis", "RdBu", "Blues", "Reds", "Hot", "Jet", "Electric", "Bluered"}
    for fig in figures:
        spec = fig.to_dict()
        go.Figure(spec)  # raises ValueError on any invalid property
        for trace in spec["data"]:
            scale = trace.get("colorscale")
            # a name only Plotly's Python side knows ("gray", "RdBu_r") would reach plotly.js unexpanded
            assert scale is None or isinstance(scale, list) or scale in plotly_js_scales, scale


def test_a_probability_chart_moves_each_class_bar_and_colours_the_answer_and_the_label():
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.3, 0.5]], dtype=np.float32)  # (T, K): class 0 leads, then class 2
    chart = viz.ProbabilityChart(p, "p", 300, 200, label=1)
    spec = viz.timeline_figure([[chart]], T=2, labels=["a", "b"]).to_dict()
    plotly.graph_objects.Figure(spec)  # plotly accepts it
    names = images_named(spec)
    steps = viz.timeline_steps(spec)
    assert [[s[f"images[{names[f'p · class {k}']}].sizey"] for k in range(3)] for s in steps] == pytest.approx(p)
    colour = {k: names[f"p · class {k}"] for k in range(3)}
    red, grey = viz._rgb(viz.BAR_COLOURS["answer"]), viz._rgb(viz.BAR_COLOURS["other"])
    assert tuple(viz.png_pixels(steps[0][f"images[{colour[0]}].source"])[0, 0, :3]) == red  # step 1: 0 answers
    assert tuple(viz.png_pixels(steps[1][f"images[{colour[0]}].source"])[0, 0, :3]) == grey
    assert f"images[{colour[1]}].source" not in steps[0]  # the label is green at every step
    green = viz.png_pixels(spec["layout"]["images"][colour[1]]["source"])[0, 0, :3]
    assert tuple(green) == viz._rgb(viz.BAR_COLOURS["label"])


def test_retina_squares_are_drawn_amber_where_their_boxes_are():
    boxes = np.array([[[10.5, 10.5, 16.5, 16.5]], [[2.5, 4.5, 8.5, 10.5]]], dtype=np.float32)  # (T, S=1, 4)
    panel = viz.ImagePanel(np.zeros((H, W), np.float32), "x", 2 * W, squares=(viz.Squares("retina", boxes, (1.0,)),))
    spec = viz.timeline_figure([[panel]], T=2, labels=["a", "b"]).to_dict()
    for t in range(2):
        alpha = picture_at(spec, "x windows", t)[..., 3]
        rows, columns = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
        x0, y0, x1, y1 = boxes[t, 0]
        scale = 2  # picture pixels per image pixel; the view starts at -0.5
        assert (columns[0] + columns[-1] + 1) / 2 / scale - 0.5 == pytest.approx((x0 + x1) / 2, abs=0.5)
        assert (rows[0] + rows[-1] + 1) / 2 / scale - 0.5 == pytest.approx((y0 + y1) / 2, abs=0.5)
        assert (columns[-1] - columns[0] + 1) / scale == pytest.approx(x1 - x0 + 1.0, abs=0.6)  # border 1 pixel
    amber = picture_at(spec, "x windows", 0)
    assert tuple(amber[amber[..., 3] > 0][0, :3]) == viz._rgb(viz.RETINA_COLOUR)
