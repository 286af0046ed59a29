"""A user's picture (an uploaded file or a drawing) turned into the model's input, prepared like MNIST.

MNIST digits are white ink on black, their bounding box scaled to fit a 20 x 20 box (aspect kept) and
placed in the 28 x 28 field so that their centre of mass is the field's centre. `prepare_digit` does
the same to any grey picture: it inverts a light background, stretches the ink to [0, 1], crops to the
ink, resizes (Pillow) and centres by centre of mass. For other model sizes the box is 20/28 of the side.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # refuse larger files before decoding them
MAX_PIXELS = 16_000_000  # refuse larger pictures (width x height) before decoding them: decompression bombs
BOX_FRACTION = 20 / 28  # MNIST: the digit's bounding box fits in 20 x 20 of the 28 x 28 field
INK_THRESHOLD = 0.05  # after stretching to [0, 1], pixels above this count as ink for the bounding box
MIN_CONTRAST = 0.02  # a picture whose ink and background differ by less than this is blank


class ImageError(ValueError):
    """A picture could not be used as a digit; the message says why."""


def read_image(data: bytes) -> np.ndarray:
    """Decode an image file (PNG, JPEG, GIF, BMP, WebP, TIFF, ...) to grey levels (H, W) in [0, 1].

    Transparent pixels count as white paper, so a transparent PNG with dark strokes reads as ink on paper.
    """
    if not data:
        raise ImageError("the file is empty: expected an image (PNG, JPEG, GIF, BMP, WebP, ...)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"the file is {len(data):,} bytes, over the {MAX_UPLOAD_BYTES:,} byte limit for images")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data))
            width, height = picture.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"the image is {width} x {height} pixels, over the {MAX_PIXELS:,} pixel limit: "
                    "expected a picture of one digit"
                )
            picture.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(
            f"the file is not an image that can be read ({type(error).__name__}): expected PNG, JPEG, GIF, BMP or WebP"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"the image is truncated or corrupted: {error}") from None
    if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
        rgba = picture.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        picture = Image.alpha_composite(paper, rgba)
    return np.asarray(picture.convert("L"), dtype=np.float32) / 255.0  # (H, W)


def canvas_to_grey(rgba: np.ndarray) -> np.ndarray:
    """A drawing canvas's RGBA pixels (H, W, 4) uint8 -> grey (H, W) in [0, 1]; transparent pixels are black."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[-1] != 4:
        raise ImageError(f"canvas pixels must have shape (H, W, 4), got {rgba.shape}")
    pixels = rgba.astype(np.float32) / 255.0
    luminance = pixels[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"
    return luminance * pixels[..., 3]


def _border(grey: np.ndarray) -> np.ndarray:
    return np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])


def prepare_digit(grey: np.ndarray, *, height: int = 28, width: int = 28) -> torch.Tensor:
    """A grey picture (h, w) in [0, 1] of one digit -> the model's input (1, height, width), prepared like MNIST."""
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise ImageError(f"expected a grey picture of shape (h, w), got {grey.shape}")
    if np.median(_border(grey)) > 0.5:  # light paper, dark ink: make it white ink on black
        grey = 1.0 - grey
    background = float(np.median(_border(grey)))
    contrast = float(grey.max()) - background
    if contrast < MIN_CONTRAST:
        raise ImageError("the picture is blank: no digit stands out from the background")
    ink = np.clip((grey - background) / contrast, 0.0, 1.0)  # background 0, strongest ink 1
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # crop to the ink's bounding box
    box = max(1, round(min(height, width) * BOX_FRACTION))
    scale = box / max(ink.shape)
    new_h, new_w = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    resized = Image.fromarray(ink).resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    digit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)  # (new_h, new_w)
    mass = digit.sum()
    centre_y = float((digit.sum(1) * np.arange(new_h)).sum() / mass)
    centre_x = float((digit.sum(0) * np.arange(new_w)).sum() / mass)
    top = round((height - 1) / 2 - centre_y)
    left = round((width - 1) / 2 - centre_x)
    field = np.zeros((height, width), dtype=np.float32)
    # paste digit at (top, left), clipped to the field
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(height, top + new_h), min(width, left + new_w)
    field[y0:y1, x0:x1] = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    return torch.from_numpy(field).unsqueeze(0)  # (1, height, width)


def prepare_upload(data: bytes, *, height: int = 28, width: int = 28) -> torch.Tensor:
    """An uploaded image file -> the model's input (1, height, width); ImageError says what was wrong."""
    return prepare_digit(read_image(data), height=height, width=width)
