"""draw_core.render: GIF frames with the write window where window_geometry puts it and the step under each,
GIFs large enough for slides, and PNG grids."""

import io
import math

import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from draw_core.nn.attention import AttentionParams, window_geometry
from draw_core.present.render import (
    MAX_LINE_WIDTH,
    generation_gif,
    generation_grid_gif,
    grid_png,
    label_height,
    window_line_width,
)

SCALE = 4
SIDE = 28 * SCALE  # 112
LABEL = 14  # the step label's height under 112-pixel tiles: the 14-pixel minimum (0.09 x 112 = 10)


def stacked_params(rows: list[tuple[float, float, float, float]], n: int | None = None) -> AttentionParams:
    """(gx, gy, delta, sigma2) per step, gamma 1: fields (T,), or (T, n) with the same window for every sample."""
    values = torch.tensor([[*row, 1.0] for row in rows])  # (T, 5)
    fields = values.unbind(1)
    if n is not None:
        fields = [f.unsqueeze(1).expand(-1, n) for f in fields]
    return AttentionParams(*fields)


def frames_of(gif: bytes) -> list[Image.Image]:
    image = Image.open(io.BytesIO(gif))
    frames = []
    for t in range(image.n_frames):
        image.seek(t)
        frames.append(image.convert("RGB"))
    return frames


def red_mask(picture: Image.Image) -> torch.Tensor:
    """(H, W) bool: pixels that are exactly the window's red."""
    r, g, b = pil_to_tensor(picture.convert("RGB")).int()  # (H, W) each
    return (r == 255) & (g == 0) & (b == 0)


def outline(x0: int, y0: int, x1: int, y1: int, size: int = SIDE) -> torch.Tensor:
    """(size, size) bool: a one-pixel rectangle outline with corners (x0, y0), (x1, y1), clipped to the picture."""
    mask = torch.zeros(size + 40, size + 40, dtype=torch.bool)  # room for edges off the picture, offset by 20
    o = 20
    mask[o + y0 : o + y1 + 1, o + x0] = True
    mask[o + y0 : o + y1 + 1, o + x1] = True
    mask[o + y0, o + x0 : o + x1 + 1] = True
    mask[o + y1, o + x0 : o + x1 + 1] = True
    return mask[o : o + size, o : o + size]


# Hand-computed windows for N = 5 (eqs 19-20: mu^i = g + (i - 3) delta, 1-based; 0-based is mu - 1;
# the pixel of a 0-based coordinate v at scale 4 is 4 v + 2). sigma^2 = 100: sigma = 10, the thinnest border.
WINDOWS = [
    # gx, gy, delta, sigma2 -> 0-based x from .. to, y from .. to -> pixels
    ((14.5, 14.5, 2.0, 100.0), (40, 40, 72, 72)),  # x, y: 9.5 .. 17.5
    ((10.5, 20.5, 1.0, 100.0), (32, 72, 48, 88)),  # x: 7.5 .. 11.5, y: 17.5 .. 21.5
    ((2.5, 14.5, 2.0, 100.0), (-8, 40, 24, 72)),  # x: -2.5 .. 5.5, its left edge is off the picture
]


def test_generation_gif_draws_each_step_window_where_window_geometry_puts_it():
    T = len(WINDOWS)
    canvases = torch.zeros(T, 1, 28, 28)  # black canvas: the only red is the window
    geometry = window_geometry(stacked_params([w for w, _ in WINDOWS]), 5)
    gif = generation_gif(canvases, geometry, scale=SCALE, frame_ms=80, final_ms=900)
    image = Image.open(io.BytesIO(gif))
    assert image.format == "GIF" and image.n_frames == T
    frames = frames_of(gif)
    assert frames[0].size == (SIDE, SIDE + LABEL)
    for t, (_, box) in enumerate(WINDOWS):
        red = red_mask(frames[t])
        assert not red[SIDE:].any(), "no red in the label strip"
        assert torch.equal(red[:SIDE], outline(*box)), f"step {t}: window not at {box}"
    image.seek(0)
    assert image.info["duration"] == 80
    image.seek(T - 1)
    assert image.info["duration"] == 900


def test_digits_are_white_on_black():
    canvases = torch.zeros(1, 1, 28, 28)
    canvases[0, 0, 5, 7] = 1.0
    canvases[0, 0, 6, 7] = 0.5
    frame = frames_of(generation_gif(canvases, None, scale=SCALE))[0]
    assert frame.getpixel((7 * SCALE + 1, 5 * SCALE + 1)) == (255, 255, 255)
    assert frame.getpixel((7 * SCALE + 1, 6 * SCALE + 1)) == pytest.approx((128, 128, 128), abs=1)
    assert frame.getpixel((0, 0)) == (0, 0, 0)
    assert not red_mask(frame).any()


def test_border_width_grows_with_precision():
    sigmas = [0.05, 0.2, 0.4, 0.8, 1.6, 3.2, 100.0]
    widths = [window_line_width(s) for s in sigmas]
    assert all(a >= b for a, b in zip(widths, widths[1:], strict=False))
    assert widths[0] > widths[-1] > 0
    assert widths[0] == MAX_LINE_WIDTH
    # A sharp window (sigma = 0.25) is drawn with a thicker border, still centred on pixel 40 / 72.
    geometry = window_geometry(stacked_params([(14.5, 14.5, 2.0, 0.25**2), (14.5, 14.5, 2.0, 100.0)]), 5)
    thick, thin = (
        red_mask(f)[:SIDE] for f in frames_of(generation_gif(torch.zeros(2, 1, 28, 28), geometry, scale=SCALE))
    )
    thick_width = round(window_line_width(0.25) * SCALE)
    assert thick_width > 1
    row = thick[56]  # a row through the middle of the left and right edges
    columns = row.nonzero().flatten().tolist()
    left = [c for c in columns if c < 56]
    right = [c for c in columns if c > 56]
    assert len(left) == len(right) == thick_width
    assert 40 in left and 72 in right
    assert abs((left[0] + left[-1]) / 2 - 40) <= 0.5 and abs((right[0] + right[-1]) / 2 - 72) <= 0.5
    assert thin[56].nonzero().flatten().tolist() == [40, 72]


def test_identical_steps_still_give_T_frames():
    # Pillow merges identical consecutive GIF frames; the step label keeps all T of them.
    T = 6
    geometry = window_geometry(stacked_params([(14.5, 14.5, 2.0, 1.0)] * T), 5)
    gif = generation_gif(torch.full((T, 1, 28, 28), 0.3), geometry)
    assert Image.open(io.BytesIO(gif)).n_frames == T


def text_rows(frame: Image.Image, top: int) -> list[int]:
    """The rows at and below `top` that have white (text) pixels."""
    pixels = pil_to_tensor(frame)[0, top:]  # (label, W) red channel of the label strip
    return (pixels > 200).any(1).nonzero().flatten().tolist()


def test_a_default_gif_is_eight_times_the_image_with_a_readable_step_under_every_frame():
    T = 3
    frames = frames_of(generation_gif(torch.zeros(T, 1, 28, 28), None))
    assert frames[0].size == (224, 224 + 20)  # 8 x 28 = 224 pixels; the label 0.09 x 224 = 20.16 -> 20 pixels
    labels = [pil_to_tensor(f)[:, 224:] for f in frames]
    assert all((label > 200).any() for label in labels), "every frame says its step"
    assert not torch.equal(labels[0], labels[1]) and not torch.equal(labels[1], labels[2])
    small = frames_of(generation_gif(torch.zeros(T, 1, 28, 28), None, scale=4))[0]
    large = frames_of(generation_gif(torch.zeros(T, 1, 28, 28), None, scale=16))[0]
    assert large.size == (448, 448 + 40)  # 0.09 x 448 = 40.3 -> 40
    small_rows, large_rows = text_rows(small, 112), text_rows(large, 448)
    assert len(large_rows) >= 2.5 * len(small_rows), "the step's text grows with the GIF"


def test_grid_gif_tiles_samples_and_keeps_windows_inside_their_tile():
    T, n, nrow, pad = 2, 4, 2, 2
    # Same windows for all samples: step 0 centred, step 1 partly off the tile's right side (x: 21.5 .. 29.5).
    geometry = window_geometry(stacked_params([(14.5, 14.5, 2.0, 100.0), (26.5, 14.5, 2.0, 100.0)], n=n), 5)
    frames = frames_of(generation_grid_gif(torch.zeros(T, n, 1, 28, 28), geometry, nrow=nrow, scale=SCALE, padding=pad))
    assert len(frames) == T
    side = nrow * (SIDE + pad) + pad
    assert frames[0].size == (side, side + LABEL)
    for t, box in enumerate([(40, 40, 72, 72), (88, 40, 120, 72)]):
        red = red_mask(frames[t])
        for i in range(n):
            top, left = pad + (i // nrow) * (SIDE + pad), pad + (i % nrow) * (SIDE + pad)
            assert torch.equal(red[top : top + SIDE, left : left + SIDE], outline(*box)), (t, i)
        tiles_only = torch.zeros_like(red)
        for i in range(n):
            top, left = pad + (i // nrow) * (SIDE + pad), pad + (i % nrow) * (SIDE + pad)
            tiles_only[top : top + SIDE, left : left + SIDE] = True
        assert not (red & ~tiles_only).any(), "a window spilled into the padding"


def test_grid_gif_without_windows_puts_sample_i_of_step_t_in_tile_i_of_frame_t():
    T, n, nrow, pad = 3, 5, 3, 2
    level = (torch.arange(T * n, dtype=torch.float32).reshape(T, n) + 1) / (T * n + 1)  # (T, n) all different
    canvases = level[:, :, None, None, None].expand(T, n, 1, 28, 28)
    frames = frames_of(generation_grid_gif(canvases, None, nrow=nrow, scale=1, padding=pad))
    assert len(frames) == T
    assert frames[0].size == (3 * 30 + 2, 2 * 30 + 2 + label_height(28))
    for t in range(T):
        grey = pil_to_tensor(frames[t].convert("L"))[0].int()  # (height, width)
        for i in range(n):
            top, left = pad + (i // nrow) * (28 + pad), pad + (i % nrow) * (28 + pad)
            expected = round(level[t, i].item() * 255)
            assert abs(grey[top + 14, left + 14].item() - expected) <= 2, (t, i)


def test_windows_must_match_the_canvases():
    geometry = window_geometry(stacked_params([(14.5, 14.5, 2.0, 1.0)] * 3, n=2), 5)
    with pytest.raises(ValueError, match="windows must have"):
        generation_grid_gif(torch.zeros(3, 4, 1, 28, 28), geometry)


def test_far_off_windows_draw_nothing():
    geometry = window_geometry(stacked_params([(1e6, -1e6, 1e5, 1.0), (-50.0, 14.5, 2.0, 1.0)]), 5)
    frames = frames_of(generation_gif(torch.zeros(2, 1, 28, 28), geometry))
    assert not red_mask(frames[0]).any() and not red_mask(frames[1]).any()


def test_grid_png_size_and_tile_contents():
    n, nrow, scale, pad = 10, 4, 2, 2
    images = torch.arange(n).float().div(10).view(n, 1, 1, 1).expand(n, 1, 28, 28)  # image k is grey k / 10
    png = Image.open(io.BytesIO(grid_png(images, nrow=nrow, scale=scale, padding=pad)))
    assert png.format == "PNG"
    rows = math.ceil(n / nrow)
    assert png.size == (nrow * (28 * scale + pad) + pad, rows * (28 * scale + pad) + pad)  # (234, 176)
    png = png.convert("RGB")
    for k in range(n):
        x = pad + (k % nrow) * (28 * scale + pad) + 28
        y = pad + (k // nrow) * (28 * scale + pad) + 28
        assert png.getpixel((x, y)) == (round(k / 10 * 255),) * 3, k


def test_grid_png_single_image_and_colour():
    single = Image.open(io.BytesIO(grid_png(torch.ones(1, 1, 28, 28), scale=3)))
    assert single.size == (84, 84)
    colour = torch.zeros(2, 3, 28, 28)
    colour[:, 0] = 1.0  # red images
    picture = Image.open(io.BytesIO(grid_png(colour, nrow=2, scale=1, padding=0))).convert("RGB")
    assert picture.size == (56, 28) and picture.getpixel((30, 10)) == (255, 0, 0)
    with pytest.raises(ValueError, match="C = 1"):
        grid_png(torch.zeros(2, 2, 28, 28))
    with pytest.raises(ValueError, match="scale"):
        grid_png(torch.zeros(2, 1, 28, 28), scale=0)


def test_a_colour_gif_keeps_its_colours_and_draws_the_window_exactly_red_with_a_black_edge():
    T = len(WINDOWS)
    canvases = torch.zeros(T, 3, 28, 28)
    canvases[:, 0] = 230 / 255  # a red picture (230, 0, 0): a red window alone would hardly show on it
    canvases[:, 1, :, :14] = 0.5  # the left half orange (230, 128, 0)
    canvases[1, 2] = 1.0  # step 2 adds blue: (230, 0, 255) and (230, 128, 255)
    geometry = window_geometry(stacked_params([w for w, _ in WINDOWS]), 5)
    frames = frames_of(generation_gif(canvases, geometry, scale=SCALE))
    assert len(frames) == T
    for t, (_, box) in enumerate(WINDOWS):
        red = red_mask(frames[t])
        assert torch.equal(red[:SIDE], outline(*box)), f"step {t}: window not at {box}"
        pixels = pil_to_tensor(frames[t]).int()  # (3, H, W)
        x0, y0 = max(box[0], 0), box[1]
        assert pixels[:, y0 + 1, x0 + 1].tolist() == [0, 0, 0] or box[0] < 0  # the black edge inside the window
        assert pixels[:, y0 - 1, x0 + 5].tolist() == [0, 0, 0]  # ... and outside it
    far = pil_to_tensor(frames[1]).int()  # away from the window: the colours exactly (few colours, no dithering)
    assert far[:, 100, 2].tolist() == [230, 128, 255] and far[:, 100, 100].tolist() == [230, 0, 255]
    assert pil_to_tensor(frames[0]).int()[:, 100, 100].tolist() == [230, 0, 0]
