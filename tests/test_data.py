"""draw_core.data: the registry, the shipped sample, binarisation, the fixed test set, and a clear error when MNIST is
missing."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST

from draw_core.data import (
    BatchStream,
    DatasetMissingError,
    binarize,
    dataset_names,
    get_dataset,
    load_sample,
    resolve_data_dir,
)
from draw_core.data.mnist import MNIST_FILES
from draw_core.data.registry import DatasetCorruptError

SAMPLE = get_dataset("mnist-sample")
MNIST_SPEC = get_dataset("mnist")


def test_load_sample_is_real_digits():
    images, labels = load_sample()
    assert images.dtype == torch.float32 and images.dim() == 4 and images.shape[1:] == (1, 28, 28)
    assert 100 <= len(images) <= 1000
    assert labels.shape == (len(images),) and labels.dtype == torch.int64
    assert images.min() == 0 and images.max() == 1
    assert torch.equal(images * 255, (images * 255).round())  # 8-bit grey levels
    assert set(labels.tolist()) == set(range(10))
    assert 0.10 < images.mean().item() < 0.16  # MNIST's mean grey level is about 0.13
    assert torch.equal(SAMPLE.load("test")[0], images)


def test_binarize_gives_bernoulli_samples_of_the_grey_levels():
    images, _ = load_sample()
    binary = binarize(images, torch.Generator().manual_seed(0))
    assert binary.shape == images.shape
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    assert binary.mean().item() == pytest.approx(images.mean().item(), abs=0.005)
    assert torch.all(binary[images == 0] == 0) and torch.all(binary[images == 1] == 1)
    again = binarize(images, torch.Generator().manual_seed(0))
    other = binarize(images, torch.Generator().manual_seed(1))
    assert torch.equal(binary, again) and not torch.equal(binary, other)


def test_fixed_test_set_is_deterministic():
    first = SAMPLE.test_set()
    second = SAMPLE.test_set()
    assert torch.equal(first, second)
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(SAMPLE.test_set(limit=50), first[:50])
    # It is a binarisation of the sample, not of something else.
    images, _ = load_sample()
    assert torch.all(first[images == 0] == 0) and torch.all(first[images == 1] == 1)


def test_batch_stream_gives_fresh_binary_batches_and_counts_epochs():
    images, _ = load_sample()
    stream = BatchStream(images[:40], batch_size=16, seed=0)
    batches = [stream.next() for _ in range(5)]  # 2 full batches per pass over 40 images
    assert all(b.shape == (16, 1, 28, 28) for b in batches)
    assert all(set(b.unique().tolist()) <= {0.0, 1.0} for b in batches)
    assert stream.epoch == 2
    with pytest.raises(ValueError, match="empty"):
        BatchStream(images[:0], batch_size=4, seed=0)
    for size in (0, 41):  # no batch at all, or one larger than the set (it would count an epoch every step)
        with pytest.raises(
            ValueError, match=f"batch_size={size} must be between 1 and the number of training images 40"
        ):
            BatchStream(images[:40], batch_size=size, seed=0)


def test_batch_stream_binarises_afresh_every_time():
    """Grey 0.5 everywhere: every pixel of every batch is a fair coin, drawn again at every visit (a stream that
    binarised once would give the same picture back in the next epoch)."""
    grey = torch.full((8, 1, 4, 4), 0.5)
    stream = BatchStream(grey, batch_size=8, seed=0)  # one batch per epoch, so each batch holds every image
    batches = torch.stack([stream.next() for _ in range(20)])  # (20 epochs, 8, 1, 4, 4)
    assert not torch.equal(batches[0], batches[1]), "the next epoch's coins are new"
    assert batches.mean().item() == pytest.approx(0.5, abs=0.02)  # 2,560 fair coins: sd 0.01
    per_pixel = batches.mean(0)  # over 20 epochs no place kept its first draw (by chance: 2^-19 each)
    assert ((per_pixel > 0) & (per_pixel < 1)).all()


def test_bad_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'") as error:
        get_dataset("cifar")
    assert all(name in str(error.value) for name in dataset_names())
    with pytest.raises(ValueError, match="split must be"):
        SAMPLE.load("validation")


def test_registry_specs_describe_their_data():
    assert {"mnist", "mnist-sample"} <= set(dataset_names())
    for name in dataset_names():
        spec = get_dataset(name)
        assert spec.name == name and spec.source and spec.licence and spec.description
        if not spec.has_sample():  # svhn ships none: its sample needs the data (tests/test_colour_data.py)
            with pytest.raises(DatasetMissingError):
                spec.sample()
            continue
        images, labels = spec.sample()
        assert tuple(images.shape[1:]) == spec.shape and len(labels) == len(images)
        assert tuple(spec.example().shape) == spec.shape
        assert torch.equal(spec.example(), images[spec.example_index])
    assert MNIST_SPEC.likelihood == "bernoulli" and MNIST_SPEC.task == "generate"


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("DRAW_DATA_DIR")
    assert str(resolve_data_dir()) == "data"


@pytest.fixture
def no_download(monkeypatch):
    """torchvision's download fails at once (the network is blocked; it must not be tried for real or hang)."""
    attempts = []

    def fail(self):
        attempts.append(self.root)
        raise RuntimeError("download blocked in tests")

    monkeypatch.setattr(MNIST, "download", fail)
    return attempts


@pytest.mark.parametrize("via", ["argument", "environment"])
def test_missing_mnist_names_the_folder_and_the_files(tmp_path, monkeypatch, no_download, via):
    if via == "argument":
        data_dir = tmp_path
    else:
        monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path))
        data_dir = None
    assert not MNIST_SPEC.available(data_dir)
    with pytest.raises(DatasetMissingError) as error:
        MNIST_SPEC.load("train", data_dir)
    message = str(error.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert all(name in message for name in MNIST_FILES)
    assert "DRAW_DATA_DIR" in message
    assert no_download, "the download should have been tried before giving up"
    assert isinstance(error.value, FileNotFoundError)
    with pytest.raises(DatasetMissingError):
        MNIST_SPEC.test_set(data_dir)
    with pytest.raises(DatasetMissingError):
        MNIST_SPEC.train_stream(data_dir, batch_size=4, seed=0)
    assert str(tmp_path / "MNIST" / "raw") in MNIST_SPEC.how_to_get(data_dir)


def test_a_truncated_mnist_file_is_named_and_not_downloaded_again(tmp_path, no_download):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(bytes(1000))  # cut short: MNIST's has 7,840,016 bytes
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes(10_008))
    with pytest.raises(DatasetMissingError) as error:
        MNIST_SPEC.test_set(tmp_path)
    message = str(error.value)
    assert str(raw / "t10k-images-idx3-ubyte") in message and "1,000 bytes" in message and "7,840,016" in message
    assert "not found" not in message and not no_download


def write_gzipped_mnist(raw: Path) -> None:
    """MNIST's four files in IDX layout, gzipped here (so not the official archives' checksums): image i's first
    pixel is i % 256, labels i % 10."""
    raw.mkdir(parents=True)
    for prefix, n in (("train", 60_000), ("t10k", 10_000)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n) % 256
        with gzip.open(raw / f"{prefix}-images-idx3-ubyte.gz", "wb", compresslevel=1) as file:
            file.write(np.array([0x803, n, 28, 28], dtype=">i4").tobytes() + images.tobytes())
        labels = (np.arange(n) % 10).astype(np.uint8)
        with gzip.open(raw / f"{prefix}-labels-idx1-ubyte.gz", "wb") as file:
            file.write(np.array([0x801, n], dtype=">i4").tobytes() + labels.tobytes())


def test_gzipped_mnist_files_of_any_origin_are_unpacked_without_the_network(tmp_path, no_download):
    raw = tmp_path / "MNIST" / "raw"
    write_gzipped_mnist(raw)
    images, labels = MNIST_SPEC.load("test", tmp_path)
    assert images.shape == (10_000, 1, 28, 28) and labels[:12].tolist() == [*range(10), 0, 1]
    assert images[300, 0, 0, 0].item() == pytest.approx(44 / 255)  # 300 % 256
    written = {name for path in MNIST_FILES for name in (path, path + ".gz")}
    assert not no_download and {path.name for path in raw.iterdir()} == written, "nothing else, no temporary file"


def test_a_damaged_gzipped_mnist_file_is_named(tmp_path, no_download):
    raw = tmp_path / "MNIST" / "raw"
    write_gzipped_mnist(raw)
    packed = raw / "t10k-images-idx3-ubyte.gz"
    packed.write_bytes(packed.read_bytes()[:5000])  # cut short
    with pytest.raises(DatasetCorruptError, match="t10k-images-idx3-ubyte.gz could not be unpacked"):
        MNIST_SPEC.test_set(tmp_path)
    unpacked = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"}  # before the damaged file, in MNIST_FILES order
    assert not no_download and {path.name for path in raw.iterdir()} == unpacked | {f + ".gz" for f in MNIST_FILES}


def test_sample_dataset_needs_no_files(tmp_path, no_download):
    assert SAMPLE.available(tmp_path)
    assert len(SAMPLE.load("train", tmp_path)[0]) > 0
    assert not no_download


REAL_DATA_DIR = os.environ.get("DRAW_DATA_DIR")


@pytest.mark.skipif(not REAL_DATA_DIR or not MNIST_SPEC.available(REAL_DATA_DIR), reason="DRAW_DATA_DIR has no MNIST")
def test_real_mnist_from_draw_data_dir(no_download):
    train, train_labels = MNIST_SPEC.load("train")
    test, _ = MNIST_SPEC.load("test")
    assert train.shape == (60_000, 1, 28, 28) and test.shape == (10_000, 1, 28, 28)
    assert train.mean().item() == pytest.approx(0.1307, abs=5e-4)
    assert train.min() == 0 and train.max() == 1
    assert train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert not no_download
    # The shipped sample is the first real test digits (tools/make_mnist_sample.py).
    sample, _ = load_sample()
    assert torch.equal(sample, test[: len(sample)])
    assert MNIST_SPEC.available()
