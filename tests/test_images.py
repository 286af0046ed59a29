"""draw_core.images: uploads and drawings prepared like MNIST digits, bad files refused with a reason."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from draw_core.data.images import (
    MAX_UPLOAD_BYTES,
    ImageError,
    canvas_to_grey,
    prepare_digit,
    prepare_upload,
    read_image,
)


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def centre_of_mass(image: torch.Tensor) -> tuple[float, float]:
    plane = image[0]
    rows, cols = torch.arange(plane.shape[0]), torch.arange(plane.shape[1])
    mass = plane.sum()
    return float((plane.sum(1) * rows).sum() / mass), float((plane.sum(0) * cols).sum() / mass)


def ink_box(image: torch.Tensor, threshold: float = 0.05) -> tuple[int, int]:
    ink = image[0] > threshold
    rows = torch.nonzero(ink.any(1)).flatten()
    cols = torch.nonzero(ink.any(0)).flatten()
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def test_dark_digit_on_white_paper_becomes_white_on_black_20_box_centred():
    paper = np.full((200, 120), 255, dtype=np.uint8)
    paper[20:180, 30:70] = 0  # a tall black bar (160 x 40), off-centre
    x = prepare_upload(png(paper))
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert x[0, 0, 0] == 0 and x.max() == pytest.approx(1.0, abs=0.02)  # background black, ink white
    height, width = ink_box(x)
    assert height == 20 and width in (5, 6, 7)  # longest side 20, aspect 4:1 kept
    cy, cx = centre_of_mass(x)
    assert cy == pytest.approx(13.5, abs=0.5) and cx == pytest.approx(13.5, abs=0.5)


def test_small_white_blob_in_a_corner_is_scaled_up_and_centred():
    grey = np.zeros((60, 60), dtype=np.float32)
    grey[2:10, 45:55] = 0.8  # 8 x 10 blob of grey ink near the top right
    x = prepare_digit(grey)
    assert ink_box(x) == (16, 20)
    cy, cx = centre_of_mass(x)
    assert (cy, cx) == pytest.approx((13.5, 13.5), abs=0.5)
    assert x.max() == pytest.approx(1.0, abs=0.02)  # ink stretched to full white


def test_other_model_sizes_use_a_proportional_box():
    grey = np.zeros((40, 40), dtype=np.float32)
    grey[5:35, 10:20] = 1.0
    x = prepare_digit(grey, height=56, width=56)
    assert x.shape == (1, 56, 56) and ink_box(x)[0] == 40


def test_transparent_png_with_dark_strokes_reads_as_ink_on_paper():
    rgba = np.zeros((50, 50, 4), dtype=np.uint8)  # fully transparent
    rgba[10:40, 20:26] = (0, 0, 0, 255)  # opaque black stroke
    grey = read_image(png(rgba, "RGBA"))
    assert grey[0, 0] == 1.0 and grey[20, 22] == 0.0
    x = prepare_upload(png(rgba, "RGBA"))
    assert x[0, 0, 0] == 0 and ink_box(x)[0] == 20


def test_jpeg_and_colour_images_are_converted_to_grey():
    rgb = np.full((64, 64, 3), 255, dtype=np.uint8)
    rgb[10:54, 28:36] = (200, 0, 0)  # a red stroke on white
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    x = prepare_upload(buffer.getvalue())
    assert x.shape == (1, 28, 28) and ink_box(x)[0] == 20


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"this is a text file, not a picture\n" * 10, "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|truncated|corrupted"),
        (b"\x00" * (MAX_UPLOAD_BYTES + 1), "over the"),
    ],
)
def test_bad_files_are_refused_with_a_reason(data, message):
    with pytest.raises(ImageError, match=message):
        prepare_upload(data)


def test_huge_picture_is_refused_before_decoding():
    buffer = io.BytesIO()
    Image.new("L", (5000, 5000), 255).save(buffer, format="PNG")  # small file, 25 million pixels
    assert len(buffer.getvalue()) < MAX_UPLOAD_BYTES
    with pytest.raises(ImageError, match="pixel limit"):
        prepare_upload(buffer.getvalue())


def test_truncated_png_is_refused():
    data = png(np.zeros((64, 64), dtype=np.uint8) + np.arange(64, dtype=np.uint8))
    with pytest.raises(ImageError, match="truncated|corrupted|not an image"):
        prepare_upload(data[: len(data) // 2])


def test_blank_picture_is_refused():
    with pytest.raises(ImageError, match="blank"):
        prepare_upload(png(np.full((30, 30), 255, dtype=np.uint8)))


def test_canvas_white_strokes_on_black_and_transparent_pixels():
    rgba = np.zeros((100, 100, 4), dtype=np.uint8)  # transparent: black
    rgba[20:80, 45:55] = (255, 255, 255, 255)
    grey = canvas_to_grey(rgba)
    assert grey[0, 0] == 0 and grey[50, 50] == pytest.approx(1.0, abs=1e-3)
    x = prepare_digit(grey)
    assert ink_box(x)[0] == 20
    with pytest.raises(ImageError, match="blank"):
        prepare_digit(canvas_to_grey(np.zeros((100, 100, 4), dtype=np.uint8)))
    with pytest.raises(ImageError, match=r"\(H, W, 4\)"):
        canvas_to_grey(np.zeros((10, 10, 3), dtype=np.uint8))
