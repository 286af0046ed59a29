"""MNIST as DRAW reads it: grey levels from torchvision, binarised for the Bernoulli likelihood of eq. 9.

Binarisation (documented in every model card):
- training: a fresh Bernoulli sample of the grey levels for every batch ("dynamic" binarisation);
- evaluation: one fixed Bernoulli sample of the test set drawn with `TEST_BINARIZATION_SEED`.

The shipped sample (`SAMPLE_PATH`, made by tools/make_mnist_sample.py) is the first 500 real MNIST test digits,
for the app and for tests that must run anywhere.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from draw_core.io.files import write_atomically

TEST_BINARIZATION_SEED = 0
SAMPLE_PATH = Path(__file__).parent / "assets" / "mnist_test_sample.npz"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Each IDX file's size: a 16-byte (images) or 8-byte (labels) header, then one byte a pixel or a label.
MNIST_BYTES = dict(
    zip(MNIST_FILES, (16 + 60_000 * 28 * 28, 8 + 60_000, 16 + 10_000 * 28 * 28, 8 + 10_000), strict=True)
)


class CorruptFileError(ValueError):
    """A dataset file is there but is not what it should be; the message names it."""


def load_sample() -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped sample of real MNIST test digits: images (N, 1, 28, 28) in [0, 1] and labels (N,)."""
    with np.load(SAMPLE_PATH) as sample:
        images = torch.from_numpy(sample["images"]).float().div_(255).unsqueeze(1)
        labels = torch.from_numpy(sample["labels"]).long()
    return images, labels


def mnist_files(root: Path) -> list[Path]:
    """The four IDX files torchvision reads under `root` (uncompressed: torchvision unpacks .gz files only when it
    downloads them)."""
    return [root / "MNIST" / "raw" / name for name in MNIST_FILES]


def load_mnist(train: bool, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey levels (N, 1, 28, 28) in [0, 1] and labels (N,) of MNIST's training or test split, read by torchvision.

    Raises RuntimeError (torchvision's) when the files are not there; the registry turns that into
    DatasetMissingError after trying the download. A file that is there with the wrong size raises CorruptFileError
    naming it (no download then: it would not replace a damaged file).
    """
    from torchvision.datasets import MNIST

    split = [path for path in mnist_files(root) if path.name.startswith("train" if train else "t10k")]
    for path in mnist_files(root):  # torchvision reads a split only when all four files are there
        unpack_gzipped(path)
    if all(path.is_file() for path in split):  # there: read them or say which one is damaged, never download
        for path in split:
            if path.stat().st_size != MNIST_BYTES[path.name]:
                raise CorruptFileError(
                    f"{path} holds {path.stat().st_size:,} bytes, MNIST's {path.name} has {MNIST_BYTES[path.name]:,}: "
                    "it is truncated or not MNIST's file; replace it"
                )
        dataset = MNIST(root=str(root), train=train, download=False)
    else:
        try:
            dataset = MNIST(root=str(root), train=train, download=False)
        except RuntimeError:
            dataset = MNIST(root=str(root), train=train, download=True)
    return dataset.data.unsqueeze(1).float().div_(255), dataset.targets.long()


def unpack_gzipped(path: Path) -> None:
    """Write IDX file `path` from `path`.gz beside it when only the gzipped file is there (any gzip of it: torchvision
    itself unpacks only files whose checksum is the official archive's, and would try the network for any other)."""
    packed = path.with_name(path.name + ".gz")
    if path.is_file() or not packed.is_file():
        return
    try:
        data = gzip.decompress(packed.read_bytes())  # at most MNIST's 47 MB
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        message = f"{packed} could not be unpacked ({error}): it is damaged or not gzip; replace it"
        raise CorruptFileError(message) from None
    write_atomically(path, data)


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Bernoulli sample of grey levels in [0, 1]: each pixel is 1 with probability its grey level."""
    return torch.bernoulli(images, generator=generator)


def fixed_binarization(images: torch.Tensor) -> torch.Tensor:
    """The evaluation set's one binarisation, drawn with TEST_BINARIZATION_SEED."""
    return binarize(images, torch.Generator().manual_seed(TEST_BINARIZATION_SEED))


class BatchStream:
    """Endless shuffled batches of freshly binarised training images; `epoch` counts full passes. Every batch is
    full: the N mod B images a permutation has left after its last full batch are skipped in that epoch (a different
    few each time, so none is left out for long)."""

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int):
        if len(images) == 0:
            raise ValueError("the training set is empty")
        if not (1 <= batch_size <= len(images)):  # a larger batch would be the whole set, and count an epoch a step
            raise ValueError(
                f"batch_size={batch_size} must be between 1 and the number of training images {len(images):,}"
            )
        self.images = images
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self._order = torch.randperm(len(images), generator=self.generator)
        self._position = 0

    def next_indices(self) -> torch.Tensor:
        """The indices of the next batch (a new shuffle at each epoch)."""
        if self._position + self.batch_size > len(self._order):
            if self._position > 0:
                self.epoch += 1
            self._order = torch.randperm(len(self.images), generator=self.generator)
            self._position = 0
        index = self._order[self._position : self._position + self.batch_size]
        self._position += self.batch_size
        return index

    def next(self) -> torch.Tensor:
        return binarize(self.images[self.next_indices()], self.generator)
