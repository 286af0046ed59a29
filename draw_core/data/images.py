"""A user's picture (an uploaded file or a drawing) turned into the model's input.

Any image file is first decoded to 8-bit grey ('L') or 8-bit colour ('RGB') pixels (`decode_image`), and every
conversion on the way is written down in words, so the app can say what it did: transparency composited onto paper
that shows the strokes, an animation's last frame taken, a photo turned upright, a palette expanded, 16-bit levels
scaled to 8 bits (Pillow's own convert would clip them at 255), another colour space turned into RGB.

For a grey model the picture is then prepared like an MNIST digit. MNIST digits are white ink on black, their
bounding box scaled to fit a 20 x 20 box (aspect kept) and placed in the 28 x 28 field so that their centre of mass
is the field's centre. `prepare_digit` does the same to any grey picture: it inverts a light background, stretches
the ink to [0, 1], crops to the ink, resizes (Pillow) and centres by centre of mass. For other model sizes the box is
20/28 of the side. A colour picture given to a grey model is converted to grey first (ITU-R 601 luma).

For a colour model (CIFAR-10, SVHN: natural images that fill their frame) the picture is cropped to the model's
aspect ratio about its centre and resized; a grey picture is copied into red, green and blue.

A drawing on a field larger than one MNIST digit (mnist-two's 60 x 60 holds two digits where they were put) is
scaled to the model's size as drawn (`fit_drawing`) instead of centred.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # refuse larger files before decoding them
MAX_PIXELS = 16_000_000  # refuse larger pictures (width x height) before decoding them: decompression bombs
BOX_FRACTION = 20 / 28  # MNIST: the digit's bounding box fits in 20 x 20 of the 28 x 28 field
INK_THRESHOLD = 0.05  # after stretching to [0, 1], pixels above this count as ink for the bounding box
MIN_CONTRAST = 0.02  # a picture whose ink and background differ by less than this is blank
TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
EXIF_ORIENTATION = 0x0112  # the EXIF tag a camera sets instead of turning the pixels; 1 means upright


class ImageError(ValueError):
    """A picture could not be used as a model's input; the message says why."""


@dataclass(frozen=True)
class Picture:
    """A decoded image file: 8-bit pixels in mode 'L' (grey) or 'RGB', and each conversion made to get them."""

    image: Image.Image
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelInput:
    """A picture prepared for a model: image (C, H, W) in [0, 1] and each conversion made on the way, in words."""

    image: torch.Tensor
    notes: tuple[str, ...] = ()


def _open(data: bytes) -> Image.Image:
    """The image file `data`, loaded; ImageError for an empty, oversized, unreadable or corrupted file."""
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
                    "expected a picture of one digit or one scene"
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
    return picture


def _wide_levels(picture: Image.Image) -> tuple[Image.Image, str]:
    """A grey picture of more than 8 bits ('I;16...', 'I', 'F') as 8-bit 'L', scaled rather than clipped."""
    levels = np.asarray(picture, dtype=np.float64)
    if picture.mode in SIXTEEN_BIT_MODES or (picture.mode == "I" and levels.max(initial=0) > 255):
        eight = np.clip(levels, 0, 65535) / 257  # 65535 -> 255
        note = f"16-bit grey levels (mode {picture.mode}) scaled to 8 bits (÷ 257)"
    elif picture.mode == "F" and levels.max(initial=0) <= 1:
        eight = np.clip(levels, 0, 1) * 255
        note = "floating-point grey levels in [0, 1] (mode F) scaled to 8 bits"
    else:
        eight = np.clip(levels, 0, 255)
        note = f"grey levels of mode {picture.mode} read as 8 bits"
    return Image.fromarray(np.rint(eight).astype(np.uint8), mode="L"), note


def _last_frame_upright(picture: Image.Image) -> tuple[Image.Image, list[str]]:
    """An animation's last frame (a drawing animation ends on the finished drawing), turned upright by the EXIF
    orientation a phone camera writes instead of turning the pixels; a note for each."""
    notes = []
    frames = getattr(picture, "n_frames", 1)
    if frames > 1:
        picture.seek(frames - 1)
        picture.load()
        notes.append(f"an animation of {frames} frames: its last frame is used")
    orientation = picture.getexif().get(EXIF_ORIENTATION, 1)
    if orientation != 1:
        picture = ImageOps.exif_transpose(picture)
        notes.append(f"turned upright as its EXIF orientation ({orientation}) says")
    return picture, notes


def _paper_is_dark(rgba: Image.Image) -> bool:
    """Whether a transparent picture's opaque strokes are light (median grey level over 127: white ink, as MNIST),
    so that they need dark paper to be seen."""
    pixels = np.asarray(rgba)
    opaque = pixels[..., 3] > 127
    if not opaque.any():
        return False
    luma = pixels[..., :3][opaque].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float(np.median(luma)) > 127


def decode_image(data: bytes) -> Picture:
    """Decode an image file (PNG, JPEG, GIF, BMP, WebP, TIFF, ...) of any mode to 8-bit 'L' or 'RGB' pixels.

    Transparent pixels count as paper: white under dark strokes, black under light ones (white ink, as MNIST), so
    the strokes stay visible. An animation gives its last frame; a photo is turned upright by its EXIF orientation.
    Each conversion is a note: the app shows them, so nobody wonders why their picture looks different.
    """
    picture, notes = _last_frame_upright(_open(data))
    mode = picture.mode
    if mode in ("L", "RGB"):
        return Picture(picture, tuple(notes))
    if mode in TRANSPARENT_MODES or (mode == "P" and "transparency" in picture.info):
        rgba = picture.convert("RGBA")
        dark = _paper_is_dark(rgba)
        paper = Image.new("RGBA", rgba.size, (0, 0, 0, 255) if dark else (255, 255, 255, 255))
        flat = Image.alpha_composite(paper, rgba)
        picture = flat.convert("L" if mode in ("LA", "La") else "RGB")
        shade = "black paper (its strokes are light)" if dark else "white paper"
        notes.append(f"transparent pixels (mode {mode}) composited onto {shade}")
    elif mode in (*SIXTEEN_BIT_MODES, "I", "F"):
        picture, note = _wide_levels(picture)
        notes.append(note)
    elif mode == "1":
        picture = picture.convert("L")
        notes.append("a 1-bit black-and-white image (mode 1) read as grey levels 0 and 255")
    elif mode == "P":
        picture = picture.convert("RGB")
        notes.append("a palette image (mode P) expanded to its RGB colours")
    else:
        picture = picture.convert("RGB")
        notes.append(f"colours in mode {mode} converted to RGB")
    return Picture(picture, tuple(notes))


def read_image(data: bytes) -> np.ndarray:
    """Decode an image file to grey levels (H, W) in [0, 1] (a colour picture through ITU-R 601 luma)."""
    return np.asarray(decode_image(data).image.convert("L"), dtype=np.float32) / 255.0


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


def fit_drawing(grey: np.ndarray, *, height: int, width: int) -> torch.Tensor:
    """A drawing (h, w) in [0, 1], white ink on black, scaled to the model's field (1, height, width) as drawn: what
    was drawn where stays there (each model pixel the mean of the drawing's pixels it covers)."""
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise ImageError(f"expected a grey drawing of shape (h, w), got {grey.shape}")
    if float(grey.max()) < MIN_CONTRAST:
        raise ImageError("the drawing is blank: nothing has been drawn yet")
    field = Image.fromarray(grey).resize((width, height), Image.Resampling.BOX)
    return torch.from_numpy(np.clip(np.asarray(field, dtype=np.float32), 0.0, 1.0)).unsqueeze(0)


def prepare_picture(picture: Picture, *, channels: int = 1, height: int = 28, width: int = 28) -> ModelInput:
    """A decoded picture -> a model's input (channels, height, width): a digit prepared like MNIST for a grey model,
    the picture cropped about its centre and resized for a colour one; the notes say what was converted."""
    notes = list(picture.notes)
    image = picture.image
    if channels == 1:
        if image.mode == "RGB":
            image = image.convert("L")
            notes.append("colour converted to grey (ITU-R 601 luma) for this grey model")
        grey = np.asarray(image, dtype=np.float32) / 255.0
        return ModelInput(prepare_digit(grey, height=height, width=width), tuple(notes))
    if channels != 3:
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if image.mode == "L":
        image = image.convert("RGB")
        notes.append("grey copied into red, green and blue for this colour model")
    if image.size != (width, height):
        notes.append(
            f"cropped about its centre to the model's aspect ratio and resized from {image.width}×{image.height} to "
            f"{width}×{height} pixels"
        )
        image = ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, H, W)
    return ModelInput(pixels.contiguous(), tuple(notes))


def prepare_file(data: bytes, *, channels: int = 1, height: int = 28, width: int = 28) -> ModelInput:
    """An uploaded image file -> a model's input (channels, height, width) and its notes; ImageError says what was
    wrong with the file."""
    return prepare_picture(decode_image(data), channels=channels, height=height, width=width)


def prepare_upload(data: bytes, *, height: int = 28, width: int = 28) -> torch.Tensor:
    """An uploaded image file -> a grey model's input (1, height, width), prepared like MNIST."""
    return prepare_file(data, height=height, width=width).image
