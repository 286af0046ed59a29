"""Colour datasets (draw_core.data.colour and the registry's `cifar10`, `svhn`): 256 levels as floats k/255, the
two CIFAR-10 copies and which one was read, SVHN's .mat layout, and errors that name the bad file."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from draw_core.data import DatasetMissingError, get_dataset
from draw_core.data.colour import CIFAR_SAMPLE_PATH, LevelStream, read_svhn_mat, to_levels

CIFAR = get_dataset("cifar10")
SVHN = get_dataset("svhn")


def is_levels(images: torch.Tensor) -> bool:
    """Every value is k/255 for an integer k in 0..255."""
    k = images * 255
    return bool(images.min() >= 0 and images.max() <= 1 and torch.equal(k, k.round()))


def test_levels_are_k_over_255():
    levels = to_levels(torch.tensor([0, 1, 128, 255], dtype=torch.uint8))
    assert torch.equal(levels, torch.tensor([0.0, 1.0, 128.0, 255.0]) / 255)
    with pytest.raises(ValueError, match="must be uint8"):
        to_levels(torch.zeros(2))


def test_specs_say_what_they_are():
    for spec in (CIFAR, SVHN):
        assert spec.shape == (3, 32, 32) and spec.likelihood == "logistic-coupled" and spec.task == "generate"


def write_image_folder(root: Path, per_class: int = 2) -> dict[str, np.ndarray]:
    """A tiny cifar10-jpeg copy under root: lossless PNGs whose pixels are known, 2 classes; returns the pixels
    (H, W, 3) by 'split/class/file'."""
    pixels = {}
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "airplane"):  # listed out of order: ImageFolder sorts the classes
            folder = root / "cifar10-jpeg" / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(image).save(folder / f"{i:04d}.png")
                pixels[f"{split}/{name}/{i:04d}.png"] = image
    return pixels


def test_an_image_folder_copy_is_read_in_class_then_file_order(tmp_path):
    pixels = write_image_folder(tmp_path)
    assert CIFAR.available(tmp_path)
    assert "JPEG" in CIFAR.copy_description(tmp_path) and str(tmp_path / "cifar10-jpeg") in CIFAR.copy_description(
        tmp_path
    )
    images, labels = CIFAR.load("test", tmp_path)
    order = ["airplane/0000", "airplane/0001", "cat/0000", "cat/0001"]
    expected = torch.stack([torch.from_numpy(pixels[f"test/{name}.png"]).permute(2, 0, 1) for name in order])
    assert torch.equal(images, expected.float() / 255)
    assert labels.tolist() == [0, 0, 1, 1]
    assert torch.equal(CIFAR.test_set(tmp_path, limit=3), images[:3])
    train, _ = CIFAR.load("train", tmp_path)
    assert not torch.equal(train, images)  # the training split is its own folder


def test_the_stream_gives_shuffled_level_batches(tmp_path):
    write_image_folder(tmp_path, per_class=4)
    train, _ = CIFAR.load("train", tmp_path)
    stream = CIFAR.train_stream(tmp_path, batch_size=8, seed=0)
    batch = stream.next()
    assert batch.shape == (8, 3, 32, 32) and is_levels(batch)
    # One epoch of 8 is all 8 training images, in some order.
    assert sorted(batch.flatten(1).sum(1).tolist()) == sorted(train.flatten(1).sum(1).tolist())
    assert torch.equal(CIFAR.train_stream(tmp_path, batch_size=8, seed=0).next(), batch)
    with pytest.raises(ValueError, match="batch_size=9 must be between 1 and the number of training images 8"):
        CIFAR.train_stream(tmp_path, batch_size=9, seed=0)
    with pytest.raises(ValueError, match="must be uint8"):
        LevelStream(train, batch_size=2, seed=0)


def test_a_truncated_jpeg_is_an_error_naming_the_file(tmp_path):
    write_image_folder(tmp_path)
    bad = tmp_path / "cifar10-jpeg" / "train" / "cat" / "0002.jpg"
    Image.fromarray(np.full((32, 32, 3), 90, dtype=np.uint8)).save(bad, quality=75)
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(ValueError, match="0002.jpg can't be decoded"):
        CIFAR.load("train", tmp_path)
    wrong_size = tmp_path / "cifar10-jpeg" / "test" / "cat" / "0002.png"
    Image.fromarray(np.zeros((28, 28, 3), dtype=np.uint8)).save(wrong_size)
    with pytest.raises(ValueError, match="0002.png is 28x28 pixels, expected 32x32"):
        CIFAR.test_set(tmp_path)


def test_missing_cifar_says_where_either_copy_goes(tmp_path):
    assert not CIFAR.available(tmp_path)
    with pytest.raises(DatasetMissingError) as error:
        CIFAR.train_stream(tmp_path, batch_size=4, seed=0)
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and str(tmp_path / "cifar10-jpeg") in message
    assert "DRAW_DATA_DIR" in message
    assert CIFAR.copy_description(tmp_path).startswith("no copy")


def test_the_python_batches_come_first_and_bad_ones_are_refused(tmp_path):
    write_image_folder(tmp_path)
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    (batches / "data_batch_1").write_bytes(b"not a pickle")
    assert CIFAR.copy_description(tmp_path).startswith("the original CIFAR-10 python batches")
    with pytest.raises(DatasetMissingError, match="cifar-10-batches-py"):  # torchvision's MD5 check fails
        CIFAR.load("test", tmp_path)


def test_the_shipped_cifar_sample_holds_every_class():
    images, labels = CIFAR.sample()
    assert images.shape == (64, 3, 32, 32) and is_levels(images)
    assert labels.tolist() == [j % 10 for j in range(64)]
    assert CIFAR_SAMPLE_PATH.stat().st_size < 300_000
    with np.load(CIFAR_SAMPLE_PATH) as sample:
        assert "JPEG" in str(sample["source"]) and len(sample["classes"]) == 10


def write_svhn(folder: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An SVHN .mat pair in the real layout: X (32, 32, 3, n) uint8, y (n, 1) with 10 for the digit 0."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # 1, 2, ..., 10, 1, ...
    for name in ("train_32x32.mat", "test_32x32.mat"):
        savemat(folder / name, {"X": x, "y": y})
    return x, y


def test_svhn_mat_round_trip(tmp_path):
    x, _ = write_svhn(tmp_path / "svhn", n=12, seed=0)
    assert SVHN.available(tmp_path)
    images, labels = SVHN.load("train", tmp_path)
    assert labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]  # label 10 is the digit 0
    assert images.shape == (12, 3, 32, 32)
    # Image 4, channel 1 (green), row 7, column 20 is X[7, 20, 1, 4].
    assert round(images[4, 1, 7, 20].item() * 255) == x[7, 20, 1, 4]
    assert torch.equal(images, torch.from_numpy(x).permute(3, 2, 0, 1).float() / 255)
    assert is_levels(SVHN.test_set(tmp_path, limit=5)) and SVHN.test_set(tmp_path, limit=5).shape == (5, 3, 32, 32)
    assert SVHN.train_stream(tmp_path, batch_size=4, seed=0).next().shape == (4, 3, 32, 32)


def test_svhn_in_another_layout_is_an_error_naming_the_file(tmp_path):
    no_x = tmp_path / "no_x.mat"
    savemat(no_x, {"images": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(ValueError, match=r"no_x.mat holds \['images', 'y'\], expected 'X' uint8"):
        read_svhn_mat(no_x)
    channels_first = tmp_path / "channels_first.mat"
    savemat(channels_first, {"X": np.zeros((2, 3, 32, 32), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(ValueError, match=r"channels_first.mat has 'X' uint8 \(2, 3, 32, 32\)"):
        read_svhn_mat(channels_first)
    zero_labels = tmp_path / "zero_labels.mat"
    savemat(zero_labels, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.zeros((2, 1))})
    with pytest.raises(ValueError, match="zero_labels.mat has labels from 0"):
        read_svhn_mat(zero_labels)
    not_mat = tmp_path / "not.mat"
    not_mat.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not.mat can't be read as a MATLAB file"):
        read_svhn_mat(not_mat)
    text_labels = tmp_path / "text_labels.mat"
    savemat(text_labels, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array(["1", "2"])})
    with pytest.raises(ValueError, match="text_labels.mat has labels of type <U1"):
        read_svhn_mat(text_labels)
    hdf5 = tmp_path / "v73.mat"  # MATLAB 7.3 saves HDF5, which scipy does not read: the header says so
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 ."
    hdf5.write_bytes(header.ljust(124) + b"\x00\x02IM" + bytes(512))
    with pytest.raises(ValueError, match="v73.mat can't be read as a MATLAB file"):
        read_svhn_mat(hdf5)


def test_a_cifar_split_folder_without_class_folders_is_an_error_naming_it(tmp_path):
    write_image_folder(tmp_path)
    empty = tmp_path / "cifar10-jpeg" / "test"
    for image in empty.rglob("*.*"):
        image.unlink()
    with pytest.raises(ValueError, match=f"{empty} can't be read as <class>/<image> folders"):
        CIFAR.test_set(tmp_path)


def test_missing_svhn_says_how_to_get_it_and_its_sample_needs_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path))
    assert not SVHN.available() and not SVHN.has_sample()
    how = SVHN.how_to_get()
    assert "http://ufldl.stanford.edu/housenumbers/train_32x32.mat" in how
    assert "http://ufldl.stanford.edu/housenumbers/test_32x32.mat" in how
    assert str(tmp_path / "svhn") in how
    with pytest.raises(DatasetMissingError, match="train_32x32.mat"):
        SVHN.sample()
    with pytest.raises(DatasetMissingError):
        SVHN.test_set()
    write_svhn(tmp_path / "svhn", n=70, seed=1)
    assert SVHN.has_sample()
    images, labels = SVHN.sample()
    assert images.shape == (64, 3, 32, 32) and labels[9] == 0


def test_svhns_sample_comes_from_the_data_folder_given_not_only_the_environments(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path / "elsewhere"))
    write_svhn(tmp_path / "given" / "svhn", n=70, seed=1)
    assert not SVHN.has_sample() and SVHN.has_sample(tmp_path / "given")
    assert SVHN.sample_test_set(tmp_path / "given").shape == (64, 3, 32, 32)
    assert torch.equal(SVHN.example(tmp_path / "given"), SVHN.sample(tmp_path / "given")[0][SVHN.example_index])


REAL_DATA_DIR = os.environ.get("DRAW_DATA_DIR")
real_cifar = pytest.mark.skipif(
    not REAL_DATA_DIR or not CIFAR.available(REAL_DATA_DIR), reason="DRAW_DATA_DIR has no CIFAR-10"
)


@real_cifar
def test_real_cifar_test_split_and_the_shipped_sample():
    test = CIFAR.test_set()
    assert test.shape == (10_000, 3, 32, 32) and is_levels(test)
    images, _ = CIFAR.sample()
    with np.load(CIFAR_SAMPLE_PATH) as sample:
        assert torch.equal(test[torch.from_numpy(sample["test_index"])], images)


@real_cifar
def test_the_first_training_image_is_pils_decode_of_its_file():
    images, labels = CIFAR.load("train")
    assert images.shape == (50_000, 3, 32, 32) and labels[0] == 0
    if "JPEG" in CIFAR.copy_description():
        first = Path(REAL_DATA_DIR) / "cifar10-jpeg" / "train" / "airplane" / "0000.jpg"
        pil = np.array(Image.open(first).convert("RGB"))
        assert torch.equal(images[0], torch.from_numpy(pil).permute(2, 0, 1).float() / 255)


@pytest.mark.slow
@real_cifar
def test_real_cifar_training_mean_per_channel():
    images, _ = CIFAR.load("train")
    mean = images.mean(dim=(0, 2, 3)) * 255
    # Measured on the JPEG copy: 125.27, 122.93, 113.86; the original batches' means (0.4914, 0.4822, 0.4465 of
    # 255 = 125.31, 122.96, 113.86) lie within 0.05 of them too.
    assert mean.tolist() == pytest.approx([125.27, 122.93, 113.86], abs=0.05)
