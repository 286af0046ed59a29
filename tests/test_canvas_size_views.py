"""draw_core.present.canvas_size: the same z on a larger canvas, and the parameter count against the image size."""

import dataclasses

import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F

from draw_core.config import DrawConfig
from draw_core.nn.model import DRAW
from draw_core.present import canvas_size, viz
from draw_core.training.devices import parameter_count

SMALL = DrawConfig(height=12, width=10, T=3, read_n=2, write_n=3, enc_size=8, dec_size=6, z_size=4)
COLOUR = DrawConfig(
    height=8, width=8, channels=3, T=2, read_n=2, write_n=3, enc_size=8, dec_size=8, z_size=3, likelihood="logistic"
)


def latents(cfg: DrawConfig, seed: int = 0) -> torch.Tensor:
    return torch.randn(cfg.T, cfg.z_size, generator=torch.Generator().manual_seed(seed))


def test_canvas_choices_name_the_sizes_and_a_model_without_write_attention_says_why_not():
    assert canvas_size.canvas_sizes(DrawConfig()) == {1: "28×28 (the model's)", 2: "56×56 (2×)", 4: "112×112 (4×)"}
    assert canvas_size.canvas_sizes(DrawConfig(height=60, width=60))[4] == "240×240 (4×)"
    assert canvas_size.canvas_shape(SMALL, 2) == "24×20"
    assert canvas_size.why_not_larger(DrawConfig()) is None
    reason = canvas_size.why_not_larger(DrawConfig(write_attn=False))
    assert "no write attention" in reason and "eq. 18" in reason and "28×28" in reason


def test_the_text_gives_the_models_patch_values():
    assert canvas_size.patch_values(DrawConfig()) == 64 * 25  # T N^2
    assert canvas_size.patch_values(COLOUR) == 2 * 6 * 9  # T K N^2, K = 2C for the logistic's mean and log-scale
    text = canvas_size.canvas_text(DrawConfig())
    assert "1,600 patch values (T·K·N² = 64·1·5²)" in text
    assert "eqs 22–24" in text and "σ grows by s" in text and "1/γ grows by s²" in text and "not more detail" in text


@pytest.mark.parametrize("cfg", [SMALL, COLOUR], ids=["grey", "colour"])
@pytest.mark.parametrize("scale", [2, 4])
def test_draw_larger_draws_the_same_z_on_the_larger_canvas(cfg, scale):
    model = DRAW(cfg).eval()
    z = latents(cfg)
    drawn = canvas_size.draw_larger(model, z, scale)
    own = model.generate(1, z=z.unsqueeze(1)).canvases[-1, 0]
    large = model.generate(1, z=z.unsqueeze(1), canvas=(cfg.height * scale, cfg.width * scale)).canvases[-1, 0]
    assert drawn.scale == scale
    assert drawn.large.shape == (cfg.channels, cfg.height * scale, cfg.width * scale)
    torch.testing.assert_close(drawn.own, own)
    torch.testing.assert_close(drawn.large, large)
    assert drawn.pooled_gap == pytest.approx(float((F.avg_pool2d(large[None], scale)[0] - own).abs().mean()))
    other = canvas_size.draw_larger(model, latents(cfg, seed=1), scale)
    assert not torch.allclose(other.large, drawn.large)  # it is this z that is drawn


def test_scale_one_is_the_models_own_picture_and_bad_requests_are_refused():
    model = DRAW(SMALL).eval()
    drawn = canvas_size.draw_larger(model, latents(SMALL), 1)
    torch.testing.assert_close(drawn.large, drawn.own)
    assert drawn.pooled_gap == 0
    with pytest.raises(ValueError, match="scale must be one of"):
        canvas_size.draw_larger(model, latents(SMALL), 3)
    with pytest.raises(ValueError, match=r"z must have shape \(T=3, Z=4\)"):
        canvas_size.draw_larger(model, torch.zeros(3, 1, 4), 2)
    plain = DRAW(dataclasses.replace(SMALL, write_attn=False)).eval()
    with pytest.raises(ValueError, match="write attention"):
        canvas_size.draw_larger(plain, latents(SMALL), 2)


def by_hand(cfg: DrawConfig, side: int, attention: bool) -> int:
    """DRAW's parameters counted from the equations' layer sizes (weights and biases of four linear layers)."""
    C, K, E, D, Z = cfg.channels, cfg.canvas_channels, cfg.enc_size, cfg.dec_size, cfg.z_size
    read = 2 * C * (cfg.read_n**2 if attention else side * side)  # eq. 27 or eq. 17
    head = K * (cfg.write_n**2 if attention else side * side) + (10 if attention else 0)  # eq. 28 or 18, eq. 21
    encoder = (read + D + E) * 4 * E + 4 * E  # eq. 5, input and recurrent weights fused
    posterior = E * 2 * Z + 2 * Z  # eqs 1-2
    decoder = (Z + D) * 4 * D + 4 * D  # eq. 7
    return encoder + posterior + decoder + D * head + head


def test_parameter_counts_are_flat_with_attention_and_grow_with_the_pixels_without():
    sides = (28, 56, 112)
    counts = canvas_size.parameter_counts(SMALL, sides)
    assert counts["attention"] == [by_hand(SMALL, side, True) for side in sides]
    assert len(set(counts["attention"])) == 1
    assert counts["no attention"] == [by_hand(SMALL, side, False) for side in sides]
    growth = [b - a for a, b in zip(counts["no attention"], counts["no attention"][1:], strict=False)]
    assert growth[1] == 4 * growth[0]  # the pixel-sized layers grow with side^2: 4x for each doubling
    assert counts["attention"][0] == parameter_count(dataclasses.replace(SMALL, height=28, width=28))


def test_a_model_without_attention_is_compared_with_the_papers_grids():
    plain = dataclasses.replace(SMALL, read_attn=False, write_attn=False)
    counts = canvas_size.parameter_counts(plain, (28,))
    assert counts["attention"] == [by_hand(dataclasses.replace(plain, read_n=2, write_n=5), 28, True)]
    colour = canvas_size.parameter_counts(COLOUR, (32,))
    assert colour["no attention"] == [by_hand(COLOUR, 32, False)]  # 3 channels read, 6 canvas channels written


def test_a_model_with_one_kind_of_attention_keeps_its_own_grid_for_it():
    """The shipped cifar10 reads 12×12 without write attention: its 'attention' line reads through its own 12×12
    grid and writes through the paper's 5×5."""
    read_only = dataclasses.replace(SMALL, read_n=4, write_attn=False)
    counts = canvas_size.parameter_counts(read_only, (28,))
    assert counts["attention"] == [by_hand(dataclasses.replace(read_only, read_n=4, write_n=5), 28, True)]
    write_only = dataclasses.replace(SMALL, write_n=4, read_attn=False)
    counts = canvas_size.parameter_counts(write_only, (28,))
    assert counts["attention"] == [by_hand(dataclasses.replace(write_only, read_n=2, write_n=4), 28, True)]


def test_the_parameters_figure_draws_each_variant_on_a_log_axis_with_the_models_side():
    counts = {"attention": [10, 10], "no attention": [100, 400]}
    spec = canvas_size.parameters_figure((28, 56), counts, model_side=28, title="t").to_dict()
    assert [trace["name"] for trace in spec["data"]] == ["attention", "no attention"]
    assert viz.spec_array(spec["data"][1]["y"]).tolist() == [100, 400]
    assert viz.spec_array(spec["data"][0]["x"]).tolist() == [28, 56]
    assert spec["layout"]["yaxis"]["type"] == "log"
    assert spec["layout"]["shapes"][0]["x0"] == 28
    go.Figure(spec)  # a valid Plotly figure (validated, which the builder skips)


@pytest.mark.parametrize("channels", [1, 3])
def test_the_picture_figure_holds_the_image_as_a_png_of_square_pixels(channels):
    image = torch.rand(channels, 5, 7, generator=torch.Generator().manual_seed(0))
    spec = canvas_size.picture_figure(image, title="own", size=70).to_dict()
    assert spec["data"] == [] and spec["layout"]["title"]["text"] == "own"
    picture = spec["layout"]["images"][0]
    assert (picture["x"], picture["y"], picture["sizex"], picture["sizey"]) == (-0.5, -0.5, 7, 5)
    pixels = viz.png_pixels(picture["source"])
    assert pixels.shape[:2] == (50, 70)  # 10 picture pixels per image pixel
    block = pixels[10:20, 30:40, :3].reshape(-1, 3)
    assert (block == block[0]).all()  # image pixel (1, 3), one colour all over its square
    expected = image[:, 1, 3].expand(3) * 255
    tolerance = 0.51 if channels == 3 else 1.01  # grey goes through the 255 levels of the palette, then 0..255
    assert block[0] == pytest.approx(expected.numpy(), abs=tolerance)
    go.Figure(spec)
