"""Pictures of DRAW's output as PNG and GIF bytes (Pillow), shared by the sample CLI and the app's downloads.

Letters used in shape comments:
    T steps, n images, C channels (1: grey, 3: RGB), H height, W width, s the integer upscale factor.

Digits are drawn as the paper draws them (ink white on black); colour images (C = 3) in their colours. An
attention window is drawn as in the paper's Fig. 1: a red rectangle spanning the N x N grid, its border wider the
sharper the filters (precision 1/sigma); on a colour picture, which may be red itself, it gets a one-pixel black
edge on both sides. Windows come only from `draw_core.attention.window_geometry`; a 0-based image coordinate v
becomes the pixel v * s + s / 2 of the upscaled picture, so lines pass through pixel centres.

GIF frames hold at most 256 colours. Grey frames are mapped exactly onto 255 grey levels and the window's red; a
colour frame gets its own palette of 255 colours (Pillow's median cut, no dithering) and the window's red as its
256th, so the window is always exactly WINDOW_COLOUR.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid

from draw_core.nn.attention import WindowGeometry

WINDOW_COLOUR = (255, 0, 0)
HALO_COLOUR = (0, 0, 0)  # the edge round a window drawn on a colour picture
PAD_GREY = 128  # colour of the gaps between tiles
GIF_SCALE = 8  # default upscale of a one-sample GIF: 224 x 224 pixels for MNIST, large enough for a slide
MIN_LABEL_HEIGHT = 14  # pixels of the strip under a GIF frame that shows the step, at least
LABEL_FRACTION = 0.09  # ... and this fraction of a tile's height, so the step stays readable on a large GIF
# Window border width in image pixels is 0.5 / sigma, kept within these bounds.
MIN_LINE_WIDTH = 0.25
MAX_LINE_WIDTH = 1.5
# GIF frames of grey images are mapped exactly onto a fixed palette, 255 grey levels and the window's red, so
# no colour is approximated (Pillow's own quantizer bins colours to 6 bits) and the red stays exactly red.
_GREY_LEVELS = 255
_RED_INDEX = _GREY_LEVELS
_GREY_RED_PALETTE = [v for i in range(_GREY_LEVELS) for v in (round(i * 255 / (_GREY_LEVELS - 1)),) * 3]
_GREY_RED_PALETTE += list(WINDOW_COLOUR)
_COLOUR_LEVELS = 255  # a colour frame's own palette entries; entry 255 is the window's red


def window_line_width(sigma: float) -> float:
    """Border width of a drawn attention window in image pixels: grows with the precision 1/sigma (Fig. 1)."""
    return min(MAX_LINE_WIDTH, max(MIN_LINE_WIDTH, 0.5 / float(sigma)))


def _to_uint8_rgb(images: torch.Tensor, scale: int) -> torch.Tensor:
    """images (n, C, H, W) in [0, 1] -> (n, 3, H s, W s) uint8, upscaled by pixel repetition."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (n, C, H, W) with C = 1 (grey) or 3 (RGB), got {tuple(images.shape)}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    pixels = images.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8)
    pixels = pixels.expand(-1, 3, -1, -1)  # (n, 3, H, W)
    return pixels.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)  # (n, 3, H s, W s)


def _tile(tiles: torch.Tensor, nrow: int, padding: int) -> Image.Image:
    """tiles (n, 3, h, w) uint8 -> one RGB picture, `nrow` tiles per row, `padding` grey pixels around them.

    A single tile comes back as it is, without padding (make_grid's rule).
    """
    return to_pil_image(make_grid(tiles, nrow=nrow, padding=padding, pad_value=PAD_GREY))


def draw_window(
    picture: Image.Image, window: WindowGeometry, index: tuple[int, ...], scale: int, *, halo: bool = False
) -> None:
    """Draw window[index] on `picture` (upscaled `scale` times) in place: a red rectangle centred on the grid edges;
    `halo` edges it with one black pixel on both sides, so it stands out on a colour picture."""
    x0, y0, x1, y1 = (float(v[index]) * scale + scale / 2 for v in (window.x0, window.y0, window.x1, window.y1))
    width = max(1, round(window_line_width(float(window.sigma[index])) * scale))
    before, after = (width - 1) // 2, width - 1 - (width - 1) // 2  # the line covers [v - before, v + after]
    limit = max(picture.size) + width + 1  # far-off windows: keep Pillow's coordinates small, still off the picture

    def pixel(v: float, shift: int) -> int:
        return min(limit, max(-limit, math.floor(v + 0.5) + shift))

    box = [pixel(x0, -before), pixel(y0, -before), pixel(x1, after), pixel(y1, after)]
    draw = ImageDraw.Draw(picture)
    if halo:
        draw.rectangle([box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1], outline=HALO_COLOUR, width=width + 2)
    draw.rectangle(box, outline=WINDOW_COLOUR, width=width)


def label_height(tile_height: int) -> int:
    """Height in pixels of the step label under GIF frames whose tiles are `tile_height` pixels high."""
    return max(MIN_LABEL_HEIGHT, round(LABEL_FRACTION * tile_height))


def grid_png(images: torch.Tensor, *, nrow: int = 8, scale: int = 2, padding: int = 2) -> bytes:
    """PNG of images (n, C, H, W) in [0, 1] tiled `nrow` per row, each upscaled `scale` times."""
    picture = _tile(_to_uint8_rgb(images, scale), nrow, padding)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def generation_frames(
    canvases: torch.Tensor, windows: WindowGeometry | None, *, nrow: int = 8, scale: int = 4, padding: int = 2
) -> list[Image.Image]:
    """One RGB picture per step of canvases (T, n, C, H, W) in [0, 1], all n samples tiled, each with its window.

    `windows` has (T, n) fields (window_geometry of a GenerationTrace's write_attn) or is None (no write
    attention). Under the tiles a strip says which step the frame shows ("step t/T", its height label_height of a
    tile's); it also keeps every frame distinct, so Pillow's GIF writer never merges two identical steps and a GIF
    has exactly T frames.
    """
    if canvases.dim() != 5:
        raise ValueError(f"canvases must have shape (T, n, C, H, W), got {tuple(canvases.shape)}")
    T, n = canvases.shape[:2]
    if windows is not None and tuple(windows.x0.shape) != (T, n):
        raise ValueError(f"windows must have (T, n) = {(T, n)} fields, got {tuple(windows.x0.shape)}")
    label = label_height(canvases.shape[3] * scale)
    font = ImageFont.load_default(size=label - 3)
    halo = canvases.shape[2] == 3  # a colour picture may be red where the window is
    frames = []
    for t in range(T):
        tiles = _to_uint8_rgb(canvases[t], scale)  # (n, 3, H s, W s)
        if windows is not None:
            drawn = []
            for i, tile in enumerate(tiles):
                picture = to_pil_image(tile)  # drawn per tile so a window never spills onto a neighbour
                draw_window(picture, windows, (t, i), scale, halo=halo)
                drawn.append(pil_to_tensor(picture))
            tiles = torch.stack(drawn)
        grid = _tile(tiles, nrow, padding)
        frame = Image.new("RGB", (grid.width, grid.height + label))
        frame.paste(grid, (0, 0))
        corner = (max(2, label // 6), grid.height + 1)
        ImageDraw.Draw(frame).text(corner, f"step {t + 1}/{T}", fill=(255, 255, 255), font=font)
        frames.append(frame)
    return frames


def _grey_red_palette_image(frame: Image.Image) -> Image.Image:
    """An RGB picture of grey levels and window red -> the same picture in "P" mode on the fixed palette."""
    rgb = np.asarray(frame.convert("RGB"), dtype=np.int32)  # (h, w, 3)
    red = np.all(rgb == WINDOW_COLOUR, axis=-1)  # (h, w)
    index = np.where(red, _RED_INDEX, np.rint(rgb.mean(-1) * (_GREY_LEVELS - 1) / 255)).astype(np.uint8)
    picture = Image.frombytes("P", frame.size, index.tobytes())
    picture.putpalette(_GREY_RED_PALETTE)
    return picture


def _colour_red_palette_image(frame: Image.Image) -> Image.Image:
    """An RGB picture -> "P" mode on its own palette: 255 colours by median cut (no dithering) and the window's red
    as entry 255, which exactly the window's pixels get."""
    rgb = frame.convert("RGB")
    quantized = rgb.quantize(colors=_COLOUR_LEVELS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = quantized.getpalette()[: 3 * _COLOUR_LEVELS]
    palette += [0] * (3 * _COLOUR_LEVELS - len(palette)) + list(WINDOW_COLOUR)
    index = np.array(quantized, dtype=np.uint8)  # (h, w)
    index[np.all(np.asarray(rgb) == WINDOW_COLOUR, axis=-1)] = _COLOUR_LEVELS
    picture = Image.frombytes("P", frame.size, index.tobytes())
    picture.putpalette(palette)
    return picture


def gif_bytes(frames: list[Image.Image], *, frame_ms: int = 100, final_ms: int = 1500, grey: bool = True) -> bytes:
    """An endlessly looping GIF of RGB `frames`, the last held for `final_ms`. `grey`: grey pictures plus red only;
    otherwise each frame gets its own palette (see the module docstring)."""
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    frames = [(_grey_red_palette_image if grey else _colour_red_palette_image)(f) for f in frames]
    durations = [frame_ms] * (len(frames) - 1) + [final_ms]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return buffer.getvalue()


def generation_gif(
    canvases: torch.Tensor,
    window: WindowGeometry | None,
    *,
    scale: int = GIF_SCALE,
    frame_ms: int = 100,
    final_ms: int = 1500,
) -> bytes:
    """Animated GIF of one sample's generation: canvases (T, C, H, W) in [0, 1], window with (T,) fields or None,
    each image pixel drawn as scale x scale pixels, the step number under every frame."""
    windows = None if window is None else WindowGeometry(**{k: v.unsqueeze(1) for k, v in vars(window).items()})
    return generation_grid_gif(canvases.unsqueeze(1), windows, scale=scale, frame_ms=frame_ms, final_ms=final_ms)


def generation_grid_gif(
    canvases: torch.Tensor,
    windows: WindowGeometry | None,
    *,
    nrow: int = 8,
    scale: int = 4,
    padding: int = 2,
    frame_ms: int = 100,
    final_ms: int = 1500,
) -> bytes:
    """Animated GIF of several samples' generation tiled per frame: canvases (T, n, C, H, W), windows (T, n) or None."""
    frames = generation_frames(canvases, windows, nrow=nrow, scale=scale, padding=padding)
    return gif_bytes(frames, frame_ms=frame_ms, final_ms=final_ms, grey=canvases.shape[2] == 1)
