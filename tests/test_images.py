"""draw_core.data.images: uploads of any mode and drawings prepared for grey (like MNIST) and colour models, each
conversion named, bad files refused with a reason."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from draw_core.data.images import (
    FORMAT_NAMES,
    IMAGE_FORMATS,
    MAX_ANIMATION_PIXELS,
    MAX_FRAMES,
    MAX_PIXELS,
    MAX_UPLOAD_BYTES,
    ImageError,
    canvas_to_grey,
    decode_image,
    fit_drawing,
    prepare_digit,
    prepare_file,
)


def upload(data: bytes) -> torch.Tensor:
    """An image file prepared for a 28 x 28 grey model, as the app prepares an upload."""
    return prepare_file(data).image


def grey_levels(data: bytes) -> np.ndarray:
    """An image file decoded to grey levels (H, W) in [0, 1] (a colour picture through ITU-R 601 luma)."""
    return np.asarray(decode_image(data).image.convert("L"), dtype=np.float32) / 255.0


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
    x = upload(png(paper))
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
    grey = grey_levels(png(rgba, "RGBA"))
    assert grey[0, 0] == 1.0 and grey[20, 22] == 0.0
    x = upload(png(rgba, "RGBA"))
    assert x[0, 0, 0] == 0 and ink_box(x)[0] == 20


def test_jpeg_and_colour_images_are_converted_to_grey():
    rgb = np.full((64, 64, 3), 255, dtype=np.uint8)
    rgb[10:54, 28:36] = (200, 0, 0)  # a red stroke on white
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    x = upload(buffer.getvalue())
    assert x.shape == (1, 28, 28) and ink_box(x)[0] == 20


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"this is a text file, not a picture\n" * 10, "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|damaged"),
        (b"\x00" * (MAX_UPLOAD_BYTES + 1), "over the"),
    ],
)
def test_bad_files_are_refused_with_a_reason(data, message):
    with pytest.raises(ImageError, match=message):
        upload(data)


def test_huge_picture_is_refused_before_decoding():
    buffer = io.BytesIO()
    Image.new("L", (5000, 5000), 255).save(buffer, format="PNG")  # small file, 25 million pixels
    assert len(buffer.getvalue()) < MAX_UPLOAD_BYTES
    with pytest.raises(ImageError, match="pixel limit"):
        upload(buffer.getvalue())


def test_truncated_png_is_refused():
    data = png(np.zeros((64, 64), dtype=np.uint8) + np.arange(64, dtype=np.uint8))
    with pytest.raises(ImageError, match="damaged|not an image"):
        upload(data[: len(data) // 2])


def test_blank_picture_is_refused():
    with pytest.raises(ImageError, match="blank"):
        upload(png(np.full((30, 30), 255, dtype=np.uint8)))


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


# --- any mode, colour models, notes (issue 14) -------------------------------------------------------------------


def encoded(picture: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=format)
    return buffer.getvalue()


def test_a_16_bit_grey_png_is_scaled_to_8_bits_not_clipped():
    levels = np.array([[0, 257 * 10, 257 * 128, 65535]], dtype=np.uint16).repeat(4, 0)  # (4, 4)
    data = encoded(Image.fromarray(levels))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    picture = decode_image(data)
    assert picture.image.mode == "L"
    assert np.asarray(picture.image)[0].tolist() == [0, 10, 128, 255]  # Pillow's convert("L") gives 0, 255, 255, 255
    assert any("16-bit" in note for note in picture.notes)
    assert grey_levels(data)[0] == pytest.approx([0, 10 / 255, 128 / 255, 1])


def test_a_palette_png_is_expanded_to_its_colours_with_a_note():
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[:, 4:] = (0, 0, 200)
    data = encoded(Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE))
    assert Image.open(io.BytesIO(data)).mode == "P"
    picture = decode_image(data)
    assert picture.image.mode == "RGB" and picture.image.getpixel((6, 1)) == (0, 0, 200)
    assert picture.notes == ("a palette image (mode P) expanded to its RGB colours",)


def test_rgba_is_composited_onto_white_for_a_colour_model_too():
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)  # transparent
    rgba[:, :16] = (10, 200, 30, 255)  # opaque green on the left half
    prepared = prepare_file(png(rgba, "RGBA"), channels=3, height=32, width=32)
    assert prepared.image.shape == (3, 32, 32)
    assert prepared.image[:, 5, 5].tolist() == pytest.approx([10 / 255, 200 / 255, 30 / 255])
    assert prepared.image[:, 5, 25].tolist() == [1.0, 1.0, 1.0]  # transparent: white paper
    assert prepared.notes == ("transparent pixels (mode RGBA) composited onto white paper",)


def test_grey_into_a_colour_model_is_copied_into_three_channels_and_resized():
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))  # (64, 64), a left-to-right ramp
    prepared = prepare_file(png(grey), channels=3, height=32, width=32)
    image = prepared.image
    assert image.shape == (3, 32, 32)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert float(image[0, 16, 0]) < 0.05 and float(image[0, 16, -1]) > 0.95  # the ramp kept its direction
    assert prepared.notes == (
        "grey copied into red, green and blue for this colour model",
        "cropped about its centre to the model's aspect ratio and resized from 64×64 to 32×32 pixels",
    )


def test_a_wide_colour_picture_is_cropped_about_its_centre():
    rgb = np.zeros((40, 120, 3), dtype=np.uint8)
    rgb[:, :40] = (255, 0, 0)  # red left third, blue right third, green middle
    rgb[:, 40:80] = (0, 255, 0)
    rgb[:, 80:] = (0, 0, 255)
    image = prepare_file(png(rgb), channels=3, height=32, width=32).image
    assert image[1].mean() > 0.95 and image[0].max() < 0.05 and image[2].max() < 0.05  # only the green middle


def test_a_picture_of_the_models_size_is_taken_as_it_is():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    prepared = prepare_file(png(rgb), channels=3, height=32, width=32)
    assert prepared.notes == ()
    assert torch.equal(prepared.image, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)


def test_colour_into_a_grey_model_is_converted_with_a_note():
    rgb = np.full((64, 64, 3), 255, dtype=np.uint8)
    rgb[10:54, 28:36] = (200, 0, 0)
    prepared = prepare_file(png(rgb), channels=1)
    assert prepared.image.shape == (1, 28, 28) and ink_box(prepared.image)[0] == 20
    assert prepared.notes == ("colour converted to grey (ITU-R 601 luma) for this grey model",)
    assert prepare_file(png(rgb[..., 0]), channels=1).notes == ()  # a grey file: nothing converted


def test_other_modes_say_what_was_converted():
    cmyk = encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")  # red in CMYK
    picture = decode_image(cmyk)
    assert picture.image.mode == "RGB" and picture.notes == ("colours in mode CMYK converted to RGB",)
    bilevel = decode_image(encoded(Image.new("1", (8, 8), 1)))
    assert bilevel.image.mode == "L" and np.asarray(bilevel.image).min() == 255 and "mode 1" in bilevel.notes[0]
    grey_alpha = decode_image(png(np.zeros((8, 8, 2), dtype=np.uint8)))  # LA, fully transparent
    assert grey_alpha.image.mode == "L" and np.asarray(grey_alpha.image).min() == 255


def test_channels_must_be_grey_or_rgb():
    with pytest.raises(ValueError, match="channels must be 1"):
        prepare_file(png(np.zeros((8, 8), dtype=np.uint8)), channels=2)


def test_a_drawing_on_a_large_field_is_scaled_as_drawn():
    drawing = np.zeros((300, 300), dtype=np.float32)
    drawing[0:50, 0:50] = 1.0  # top-left corner: stays there
    field = fit_drawing(drawing, height=60, width=60)
    assert field.shape == (1, 60, 60)
    assert field[0, :10, :10].min() == 1.0 and field[0, 10:, :].max() == 0 and field[0, :, 10:].max() == 0
    with pytest.raises(ImageError, match="blank"):
        fit_drawing(np.zeros((30, 30)), height=60, width=60)


def test_white_ink_on_transparency_is_composited_onto_black_paper():
    rgba = np.zeros((50, 50, 4), dtype=np.uint8)  # transparent
    rgba[10:40, 20:26] = (255, 255, 255, 255)  # opaque white stroke, the MNIST look
    picture = decode_image(png(rgba, "RGBA"))
    grey = np.asarray(picture.image.convert("L"))
    assert grey[0, 0] == 0 and grey[20, 22] == 255
    assert picture.notes == ("transparent pixels (mode RGBA) composited onto black paper (its strokes are light)",)
    assert ink_box(upload(png(rgba, "RGBA")))[0] == 20, "the stroke is the digit, scaled to the 20 px box"


def test_an_animation_gives_its_last_frame_with_a_note():
    blank = Image.new("L", (40, 40), 255)
    drawn = blank.copy()
    drawn.paste(0, (15, 5, 21, 35))  # the finished drawing: a dark bar, 6 wide and 30 tall
    buffer = io.BytesIO()
    blank.save(buffer, format="GIF", save_all=True, append_images=[drawn], duration=100)
    picture = decode_image(buffer.getvalue())
    assert "an animation of 2 frames: its last frame is used" in picture.notes
    grey = np.asarray(picture.image.convert("L"))
    assert grey[20, 18] == 0 and grey[20, 5] == 255
    assert ink_box(upload(buffer.getvalue())) == (20, 4)  # 30 x 6 scaled to the 20 px box


def test_a_photo_is_turned_upright_by_its_exif_orientation():
    grey = np.full((40, 60), 255, dtype=np.uint8)
    grey[5:35, 10:16] = 0  # stored on its side: a bar 30 tall and 6 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show the stored pixels rotated 90° clockwise
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="JPEG", exif=exif, quality=95)
    picture = decode_image(buffer.getvalue())
    assert picture.image.size == (40, 60), "width and height swap when the picture is turned upright"
    assert picture.notes == ("turned upright as its EXIF orientation (6) says",)
    height, width = ink_box(upload(buffer.getvalue()))
    assert width == 20 and height < 8, "the bar lies across once upright"


# --- damaged and oversized animations, camera JPEGs, decompression bombs, formats, large fields -------------------


def animated_gif(width: int, height: int, frames: int) -> bytes:
    """A GIF animation of `frames` frames on a width x height screen, each frame a single pixel at the top left: a few
    bytes a frame, the way a small file holds a long animation of large frames."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\xff\xff\xff\x00\x00\x00"  # 2 colours
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"  # one pixel, LZW-coded
    return screen + frame * frames + b";"


def noise(size: tuple[int, int], seed: int, mode: str = "L") -> Image.Image:
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def animation(format: str) -> bytes:
    """Four frames of noise (nothing compresses them away) saved as an animated GIF, PNG (APNG) or WebP."""
    frames = [noise((64, 64), seed) for seed in range(4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=format, save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def camera_jpeg() -> bytes:
    """A multi-picture JPEG (MPO) as cameras write them: the photo (a dark bar on white, 60 x 40), then a preview."""
    grey = np.full((40, 60, 3), 255, dtype=np.uint8)
    grey[5:35, 10:16] = 0
    buffer = io.BytesIO()
    preview = noise((20, 20), 0, "RGB")
    Image.fromarray(grey).save(buffer, format="MPO", save_all=True, append_images=[preview], quality=95)
    return buffer.getvalue()


@pytest.mark.parametrize("format", ["GIF", "PNG", "WEBP"])
def test_a_damaged_animation_is_refused_as_damaged(format):
    data = animation(format)
    assert Image.open(io.BytesIO(data)).n_frames == 4
    with pytest.raises(ImageError, match="the file is damaged"):
        decode_image(data[: len(data) * 3 // 4])  # the first frame whole, the last cut off


def test_a_camera_jpeg_gives_its_photo_not_its_preview_and_is_no_animation():
    data = camera_jpeg()
    assert Image.open(io.BytesIO(data)).format == "MPO" and Image.open(io.BytesIO(data)).n_frames == 2
    picture = decode_image(data)
    assert picture.image.size == (60, 40) and picture.notes == ()
    grey = np.asarray(picture.image.convert("L"))
    assert grey[20, 12] < 30 and grey[20, 40] > 225


def test_a_camera_jpeg_without_its_preview_still_gives_its_photo():
    data = camera_jpeg()
    stripped = data[: data.find(b"\xff\xd8", 2)]  # up to where the second picture starts
    assert Image.open(io.BytesIO(stripped)).format == "MPO"
    picture = decode_image(stripped)
    assert picture.image.size == (60, 40) and picture.notes == ()


def test_an_animation_of_too_many_frames_is_refused_before_decoding_them():
    with pytest.raises(ImageError, match=f"{MAX_FRAMES + 1:,} frames, over the {MAX_FRAMES:,} frame limit"):
        decode_image(animated_gif(8, 8, MAX_FRAMES + 1))


def test_an_animation_of_too_many_pixels_is_refused_before_decoding_them():
    frames = MAX_ANIMATION_PIXELS // (2000 * 2000) + 1  # 33 frames of 2000 x 2000: a file of 500 bytes
    data = animated_gif(2000, 2000, frames)
    assert len(data) < 1000 and frames <= MAX_FRAMES
    with pytest.raises(ImageError, match=f"{frames} frames of 2000 x 2000 pixels, over the {MAX_ANIMATION_PIXELS:,}"):
        decode_image(data)


def test_an_animation_within_the_limits_gives_its_last_frame():
    picture = decode_image(animated_gif(100, 100, 50))
    assert picture.notes == ("an animation of 50 frames: its last frame is used",)


def png_header(width: int, height: int) -> bytes:
    """A PNG file whose header says width x height, with a 1 x 1 picture's pixel data: Pillow reads the size first."""
    data = png(np.zeros((1, 1), dtype=np.uint8))
    chunk = b"IHDR" + struct.pack(">II", width, height) + data[24:29]  # the size, then depth, colour type, ...
    return data[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


@pytest.mark.parametrize("side", [10_000, 20_000])  # over Pillow's bomb limit (a warning), over twice it (an error)
def test_a_picture_over_pillows_bomb_limit_is_refused_as_over_the_pixel_limit(side):
    assert Image.open(io.BytesIO(png_header(300, 200))).size == (300, 200)
    with pytest.raises(ImageError, match=f"over the {MAX_PIXELS:,} pixel limit: expected a picture of one digit"):
        decode_image(png_header(side, side))


@pytest.mark.parametrize("name", IMAGE_FORMATS)
def test_every_format_the_messages_name_is_read(name):
    assert name in FORMAT_NAMES
    picture = decode_image(encoded(Image.new("L", (8, 8), 128), name.upper()))
    assert picture.image.size == (8, 8) and np.asarray(picture.image.convert("L")).mean() == pytest.approx(128, abs=2)
    with pytest.raises(ImageError, match=f"expected {FORMAT_NAMES}$"):
        decode_image(b"not a picture")


def test_a_picture_for_a_large_field_keeps_its_layout_with_a_note():
    paper = np.full((60, 120), 230, dtype=np.uint8)  # light paper, twice as wide as high
    paper[10:30, 0:20] = 30  # a dark square at the left edge
    paper[40:50, 100:120] = 30  # a dark bar at the right edge
    prepared = prepare_file(png(paper), height=60, width=60, as_drawn=True)
    field = prepared.image[0]
    assert prepared.image.shape == (1, 60, 60)
    # padded to 120 x 120 (30 rows of paper above and below), then halved: each mark stays where it was
    assert field[20:30, 0:10].min() == pytest.approx(1) and field[35:40, 50:60].min() == pytest.approx(1)
    field[20:30, 0:10] = 0
    field[35:40, 50:60] = 0
    assert field.max() == 0, "only the two marks are ink, white on black"
    assert prepared.notes == (
        "laid out as in the picture, not centred like one MNIST digit: ink made white on black, padded to the "
        "model's aspect ratio and resized from 120×60 to 60×60 pixels",
    )
    with pytest.raises(ImageError, match="blank"):
        prepare_file(png(np.full((60, 60), 230, dtype=np.uint8)), height=60, width=60, as_drawn=True)


def test_a_picture_of_the_large_fields_size_is_only_made_white_on_black():
    paper = np.full((60, 60), 255, dtype=np.uint8)
    paper[5:25, 5:10] = 0
    prepared = prepare_file(png(paper), height=60, width=60, as_drawn=True)
    assert torch.equal(prepared.image[0], torch.from_numpy(paper == 0).float())
    assert prepared.notes == ("laid out as in the picture, not centred like one MNIST digit: ink made white on black",)
