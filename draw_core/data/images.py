"""A user's picture (an uploaded file or a drawing) turned into the model's input.

Any image file is first decoded to 8-bit grey ('L') or 8-bit colour ('RGB') pixels (`decode_image`), and every
conversion on the way is written down in words, so the app can say what it did: transparency composited onto paper
that shows the strokes, an animation's last frame taken, a photo turned upright, a palette expanded, 16-bit levels
scaled to 8 bits (Pillow's own convert would clip them at 255), another colour space turned into RGB. Only a GIF, PNG
(APNG) or WebP animation gives its last frame: the second picture of a camera's multi-picture JPEG (MPO) is a preview,
and any other file gives its first. A file is refused (ImageError, saying why) when it is empty, too large, too many
pixels, an animation too long to decode, not an image, or damaged.

For a grey model the picture is then prepared like an MNIST digit. MNIST digits are white ink on black, their
bounding box scaled to fit a 20 x 20 box (aspect kept) and placed in the 28 x 28 field so that their centre of mass
is the field's centre. `prepare_digit` does the same to any grey picture: it inverts a light background, stretches
the ink to [0, 1], crops to the ink, resizes (Pillow) and centres by centre of mass. For other model sizes the box is
20/28 of the side. A colour picture given to a grey model is converted to grey first (ITU-R 601 luma).

For a colour model (CIFAR-10, SVHN: natural images that fill their frame) the picture is cropped to the model's
aspect ratio about its centre and resized; a grey picture is copied into red, green and blue.

A drawing on a field larger than one MNIST digit (mnist-two's 60 x 60 holds two digits where they were put) is
scaled to the model's size as drawn (`fit_drawing`) instead of centred; an uploaded picture for such a field keeps its
layout the same way (`fit_picture`), made white ink on black as `prepare_digit` does.
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
MAX_FRAMES = 1_000  # refuse longer animations before decoding them: the last frame is reached through all the others
MAX_ANIMATION_PIXELS = 8 * MAX_PIXELS  # ... and those of more pixels (frames x width x height): under a second of CPU
ANIMATION_FORMATS = ("GIF", "PNG", "WEBP")  # Pillow's names of the formats whose frames are an animation
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WebP", "TIFF")  # the formats uploads are said to be read in
FORMAT_NAMES = ", ".join(IMAGE_FORMATS[:-1]) + f" or {IMAGE_FORMATS[-1]}"  # as messages name them
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 weights of red, green and blue, as Pillow's "L"
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


def _over_the_pixel_limit(size: str) -> ImageError:
    """The refusal of a picture of `size` pixels ('5000 x 5000'), more than MAX_PIXELS."""
    return ImageError(
        f"the image is {size} pixels, over the {MAX_PIXELS:,} pixel limit: expected a picture of one digit or one scene"
    )


def _animation_frames(picture: Image.Image) -> int:
    """How many frames of `picture` are an animation that ends on the picture: those of an animated GIF, PNG (APNG)
    or WebP, counted from the file without decoding them; 1 for any other file (a camera JPEG's second picture is a
    preview, a TIFF's pages are pages). ImageError when decoding them all would cost too much."""
    if picture.format not in ANIMATION_FORMATS:
        return 1
    frames = picture.n_frames
    width, height = picture.size
    if frames > MAX_FRAMES:
        raise ImageError(
            f"the animation has {frames:,} frames, over the {MAX_FRAMES:,} frame limit: expected a picture or a "
            "short animation"
        )
    if frames * width * height > MAX_ANIMATION_PIXELS:
        raise ImageError(
            f"the animation is {frames:,} frames of {width} x {height} pixels, over the {MAX_ANIMATION_PIXELS:,} pixel "
            "limit of all frames together: expected a picture or a short animation"
        )
    return frames


def _open(data: bytes) -> tuple[Image.Image, list[str]]:
    """The picture of the image file `data`, loaded (an animation's last frame, turned upright: `_last_frame_upright`)
    and a note for each of those conversions. ImageError for an empty, oversized or unreadable file, an animation too
    long to decode, or a damaged file, whichever frame the damage is in."""
    if not data:
        raise ImageError(f"the file is empty: expected an image ({FORMAT_NAMES})")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"the file is {len(data):,} bytes, over the {MAX_UPLOAD_BYTES:,} byte limit for images")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data))
            width, height = picture.size
            if width * height > MAX_PIXELS:
                raise _over_the_pixel_limit(f"{width} x {height}")
            frames = _animation_frames(picture)
            picture.load()
            return _last_frame_upright(picture, frames)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # Pillow's own limit, met in Image.open
        raise _over_the_pixel_limit(f"more than {Image.MAX_IMAGE_PIXELS:,}") from None
    except UnidentifiedImageError:
        raise ImageError(f"the file is not an image that can be read: expected {FORMAT_NAMES}") from None
    except Exception as error:  # damage makes Pillow's decoders raise OSError, ValueError, ... (a cut GIF: IndexError)
        raise ImageError(f"the file is damaged or cut short ({type(error).__name__}: {error})") from None


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


def _last_frame_upright(picture: Image.Image, frames: int) -> tuple[Image.Image, list[str]]:
    """The last of an animation's `frames` (a drawing animation ends on the finished drawing), turned upright by the
    EXIF orientation a phone camera writes instead of turning the pixels; a note for each."""
    notes = []
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
    luma = pixels[..., :3][opaque].astype(np.float32) @ LUMA
    return float(np.median(luma)) > 127


def decode_image(data: bytes) -> Picture:
    """Decode an image file (PNG, JPEG, GIF, BMP, WebP, TIFF, ...) of any mode to 8-bit 'L' or 'RGB' pixels.

    Transparent pixels count as paper: white under dark strokes, black under light ones (white ink, as MNIST), so
    the strokes stay visible. An animation (GIF, APNG, WebP) gives its last frame; a photo is turned upright by its
    EXIF orientation. Each conversion is a note: the app shows them, so nobody wonders why their picture looks
    different. ImageError says what was wrong with a file that can't be used.
    """
    picture, notes = _open(data)
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


def canvas_to_grey(rgba: np.ndarray) -> np.ndarray:
    """A drawing canvas's RGBA pixels (H, W, 4) uint8 -> grey (H, W) in [0, 1]; transparent pixels are black."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[-1] != 4:
        raise ImageError(f"canvas pixels must have shape (H, W, 4), got {rgba.shape}")
    pixels = rgba.astype(np.float32) / 255.0
    luminance = pixels[..., :3] @ LUMA
    return luminance * pixels[..., 3]


def _border(grey: np.ndarray) -> np.ndarray:
    return np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])


def _grey_picture(grey: np.ndarray) -> np.ndarray:
    """`grey` as float32 pixels (h, w); ImageError for any other shape."""
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise ImageError(f"expected a grey picture of shape (h, w), got {grey.shape}")
    return grey


def _white_ink_on_black(grey: np.ndarray) -> np.ndarray:
    """A grey picture (h, w) in [0, 1] as MNIST's white ink on black: light paper (its border's median) inverted,
    the paper at 0 and the strongest ink at 1; ImageError when nothing stands out from the paper."""
    if np.median(_border(grey)) > 0.5:  # light paper, dark ink: make it white ink on black
        grey = 1.0 - grey
    background = float(np.median(_border(grey)))
    contrast = float(grey.max()) - background
    if contrast < MIN_CONTRAST:
        raise ImageError("the picture is blank: no digit stands out from the background")
    return np.clip((grey - background) / contrast, 0.0, 1.0)


def prepare_digit(grey: np.ndarray, *, height: int = 28, width: int = 28) -> torch.Tensor:
    """A grey picture (h, w) in [0, 1] of one digit -> the model's input (1, height, width), prepared like MNIST."""
    ink = _white_ink_on_black(_grey_picture(grey))
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


def fit_picture(grey: np.ndarray, *, height: int, width: int) -> ModelInput:
    """A grey picture (h, w) in [0, 1] for a field that holds digits where they were put (mnist-two's 60 x 60) -> the
    model's input (1, height, width) with the picture's layout: white ink on black as in `prepare_digit`, padded with
    paper about its centre to the model's aspect ratio, then scaled like a drawing (`fit_drawing`); a note says so."""
    ink = _white_ink_on_black(_grey_picture(grey))
    h, w = ink.shape
    padded_h, padded_w = max(h, round(w * height / width)), max(w, round(h * width / height))
    steps = ["ink made white on black"]
    if (padded_h, padded_w) != (h, w):
        top, left = (padded_h - h) // 2, (padded_w - w) // 2
        ink = np.pad(ink, ((top, padded_h - h - top), (left, padded_w - w - left)))
        steps.append("padded to the model's aspect ratio")
    if (w, h) != (width, height):
        steps.append(f"resized from {w}×{h} to {width}×{height} pixels")
    what = ", ".join(steps[:-1]) + " and " + steps[-1] if len(steps) > 1 else steps[0]
    return ModelInput(
        fit_drawing(ink, height=height, width=width),
        (f"laid out as in the picture, not centred like one MNIST digit: {what}",),
    )


def prepare_picture(
    picture: Picture, *, channels: int = 1, height: int = 28, width: int = 28, as_drawn: bool = False
) -> ModelInput:
    """A decoded picture -> a model's input (channels, height, width): for a grey model a digit prepared like MNIST,
    or with `as_drawn` (a field that holds digits where they were put, like mnist-two's 60 x 60) the picture laid out
    as it is (`fit_picture`); for a colour one the picture cropped about its centre and resized, `as_drawn` or not.
    The notes say what was converted."""
    notes = list(picture.notes)
    image = picture.image
    if channels == 1:
        if image.mode == "RGB":
            image = image.convert("L")
            notes.append("colour converted to grey (ITU-R 601 luma) for this grey model")
        grey = np.asarray(image, dtype=np.float32) / 255.0
        if as_drawn:
            fitted = fit_picture(grey, height=height, width=width)
            return ModelInput(fitted.image, (*notes, *fitted.notes))
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


def prepare_file(
    data: bytes, *, channels: int = 1, height: int = 28, width: int = 28, as_drawn: bool = False
) -> ModelInput:
    """An uploaded image file -> a model's input (channels, height, width) and its notes (`prepare_picture`);
    ImageError says what was wrong with the file."""
    return prepare_picture(decode_image(data), channels=channels, height=height, width=width, as_drawn=as_drawn)
