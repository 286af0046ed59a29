"""Datasets by name, binarised for the Bernoulli likelihood of eq. 9.

Binarisation (documented in every model card):
- training: a fresh Bernoulli sample of the grey levels for every batch ("dynamic" binarisation);
- evaluation: one fixed Bernoulli sample of the test set drawn with `TEST_BINARIZATION_SEED`.

Datasets:
- "mnist": the real MNIST (60,000 / 10,000) through torchvision, from the data root given by
  `--data-dir`, else the `DRAW_DATA_DIR` setting, else ./data.
- "mnist-sample": a few hundred real MNIST test digits shipped in the repository
  (draw_core/data/assets/mnist_test_sample.npz, made by tools/make_mnist_sample.py). Both of its splits are
  that sample; it exists for the app and for tests that must run anywhere, not for honest numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

TEST_BINARIZATION_SEED = 0
SAMPLE_PATH = Path(__file__).parent / "assets" / "mnist_test_sample.npz"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DATASETS = ("mnist", "mnist-sample")


class DatasetMissingError(FileNotFoundError):
    """The dataset's files are not where they were looked for (and could not be downloaded)."""


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $DRAW_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get("DRAW_DATA_DIR") or "data")


def load_images(name: str, split: str, data_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """Grey-level images (N, 1, 28, 28) in [0, 1] of dataset `name`, split 'train' or 'test'."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name == "mnist-sample":
        return load_sample()[0]
    if name == "mnist":
        return _load_mnist(split == "train", resolve_data_dir(data_dir))
    raise ValueError(f"unknown dataset {name!r}: expected one of {list(DATASETS)}")


def load_sample() -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped sample of real MNIST test digits: images (N, 1, 28, 28) in [0, 1] and labels (N,)."""
    with np.load(SAMPLE_PATH) as sample:
        images = torch.from_numpy(sample["images"]).float().div_(255).unsqueeze(1)
        labels = torch.from_numpy(sample["labels"]).long()
    return images, labels


def _load_mnist(train: bool, root: Path) -> torch.Tensor:
    from torchvision.datasets import MNIST

    try:
        dataset = MNIST(root=str(root), train=train, download=False)
    except RuntimeError:
        try:
            dataset = MNIST(root=str(root), train=train, download=True)
        except Exception as error:
            raise DatasetMissingError(
                f"MNIST not found under {root / 'MNIST' / 'raw'} (expected {', '.join(MNIST_FILES)}) and the download "
                f"failed ({type(error).__name__}). Point --data-dir or DRAW_DATA_DIR at the folder that holds "
                "MNIST/raw/."
            ) from None
    return dataset.data.unsqueeze(1).float().div_(255)


def dataset_available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether `name` can be loaded without the network."""
    if name == "mnist-sample":
        return SAMPLE_PATH.exists()
    raw = resolve_data_dir(data_dir) / "MNIST" / "raw"
    return all((raw / f).exists() or (raw / f"{f}.gz").exists() for f in MNIST_FILES)


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Bernoulli sample of grey levels in [0, 1]: each pixel is 1 with probability its grey level."""
    return torch.bernoulli(images, generator=generator)


def fixed_test_set(name: str, data_dir: str | os.PathLike | None = None, limit: int | None = None) -> torch.Tensor:
    """The evaluation set: the test split binarised once with TEST_BINARIZATION_SEED, first `limit` digits."""
    images = load_images(name, "test", data_dir)
    binary = binarize(images, torch.Generator().manual_seed(TEST_BINARIZATION_SEED))
    return binary[:limit] if limit else binary


class BatchStream:
    """Endless shuffled batches of freshly binarised training images; `epoch` counts full passes."""

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int):
        if len(images) == 0:
            raise ValueError("the training set is empty")
        self.images = images
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self._order = torch.randperm(len(images), generator=self.generator)
        self._position = 0

    def next(self) -> torch.Tensor:
        if self._position + self.batch_size > len(self._order):
            if self._position > 0:
                self.epoch += 1
            self._order = torch.randperm(len(self.images), generator=self.generator)
            self._position = 0
        index = self._order[self._position : self._position + self.batch_size]
        self._position += self.batch_size
        return binarize(self.images[index], self.generator)
