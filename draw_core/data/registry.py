"""The dataset registry: one `DatasetSpec` per dataset, asked for by name.

Pages, jobs, the CLIs and the catalog ask `get_dataset(name)` what a dataset is (image shape, likelihood, task,
source, licence), whether it can be loaded here without the network (`spec.available(data_dir)`), and for its
training stream, its fixed evaluation set, its shipped sample and the example image used for live glimpses.
Only presets and tests name a dataset.

Data root: `--data-dir`, else the `DRAW_DATA_DIR` setting, else ./data (`resolve_data_dir`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from draw_core.data import cluttered, mnist, two_digit

SPLITS = ("train", "test")


class DatasetMissingError(FileNotFoundError):
    """The dataset's files are not where they were looked for (and could not be downloaded)."""


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $DRAW_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get("DRAW_DATA_DIR") or "data")


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and how to read it. Subclasses say how its splits are loaded and batched."""

    name: str  # registry key, stored in checkpoints' meta
    shape: tuple[int, int, int]  # (C, H, W) of the images a model sees
    likelihood: str | None  # 'bernoulli' (binary pixels, eq. 9) for generator data; None for classification data
    task: str  # 'generate' (DRAW learns p(x)) or 'classify' (labels are the target)
    description: str  # one line for pickers and cards
    source: str  # where the data comes from (citation)
    licence: str
    example_index: int  # index into the shipped sample of the image the Train page's live glimpses follow

    def required_files(self, root: Path) -> list[Path]:
        """Files that must exist under the data root for `available` (each may also be gzipped)."""
        raise NotImplementedError

    def available(self, data_dir: str | os.PathLike | None = None) -> bool:
        """Whether the dataset can be loaded from disk without the network."""
        root = resolve_data_dir(data_dir)
        return all(p.exists() or p.with_name(p.name + ".gz").exists() for p in self.required_files(root))

    def how_to_get(self, data_dir: str | os.PathLike | None = None) -> str:
        """What to do when the dataset is not here: which files go where (for the app and error messages)."""
        root = resolve_data_dir(data_dir)
        files = ", ".join(f"`{p}`" for p in self.required_files(root))
        return (
            f"{self.name} is not on this server: it needs {files} (optionally gzipped). Put them there, or start with "
            "`DRAW_DATA_DIR` pointing at the folder that holds them."
        )

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A small real sample shipped in the repository: images (N, C, H, W) in [0, 1], labels (N,)."""
        raise NotImplementedError

    def example(self) -> torch.Tensor:
        """(C, H, W) the image the Train page's live glimpses follow."""
        return self.sample()[0][self.example_index]

    def _missing(self, root: Path, error: Exception) -> DatasetMissingError:
        wanted = ", ".join(str(p) for p in self.required_files(root))
        return DatasetMissingError(
            f"dataset {self.name!r} not found under {root} (looked for {wanted}) and the download failed "
            f"({type(error).__name__}). Point --data-dir or DRAW_DATA_DIR at the folder that holds it."
        )

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@dataclass(frozen=True)
class BinarisedMnist(DatasetSpec):
    """MNIST digits binarised for the Bernoulli likelihood (see draw_core.data.mnist); `shipped_only` serves the
    shipped sample as both splits (for the app and tests that must run anywhere, not for honest numbers)."""

    shipped_only: bool = False

    def required_files(self, root: Path) -> list[Path]:
        return [mnist.SAMPLE_PATH] if self.shipped_only else mnist.mnist_files(root)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        return mnist.load_sample()

    def load(self, split: str, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Grey levels (N, 1, 28, 28) in [0, 1] and labels (N,) of a split; DatasetMissingError if not here."""
        self._check_split(split)
        if self.shipped_only:
            return self.sample()
        root = resolve_data_dir(data_dir)
        try:
            return mnist.load_mnist(split == "train", root)
        except Exception as error:  # torchvision's RuntimeError, or whatever the failed download raised
            raise self._missing(root, error) from None

    def train_stream(self, data_dir: str | os.PathLike | None, batch_size: int, seed: int) -> mnist.BatchStream:
        """Endless shuffled batches (B, 1, 28, 28), binarised afresh every time."""
        return mnist.BatchStream(self.load("train", data_dir)[0], batch_size, seed)

    def test_set(self, data_dir: str | os.PathLike | None = None, limit: int | None = None) -> torch.Tensor:
        """The evaluation set: the test split binarised once with TEST_BINARIZATION_SEED, first `limit` images."""
        binary = mnist.fixed_binarization(self.load("test", data_dir)[0])
        return binary[:limit] if limit else binary


@dataclass(frozen=True)
class ClutteredMnist(DatasetSpec):
    """Cluttered translated MNIST made on the fly from MNIST (draw_core.data.cluttered documents the generator):
    labelled grey-level images for classification; the test set is fixed by CLUTTERED_TEST_SEED."""

    sample_seed: int = 0  # seeds the clutter of the shipped sample's images

    def required_files(self, root: Path) -> list[Path]:
        return mnist.mnist_files(root)

    def _digits(self, split: str, data_dir) -> tuple[torch.Tensor, torch.Tensor]:
        return MNIST_SPEC.load(split, data_dir)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The shipped MNIST sample, each digit placed once in clutter cut from the sample (seeded)."""
        digits, labels = mnist.load_sample()
        return cluttered.fixed_cluttered_test_set(digits, labels, seed=self.sample_seed)

    def train_stream(self, data_dir, batch_size: int, seed: int) -> cluttered.ClutteredStream:
        """Endless batches (x (B, 1, 100, 100), y (B,)) of fresh cluttered training images."""
        return cluttered.ClutteredStream(*self._digits("train", data_dir), batch_size, seed)

    def test_set(self, data_dir=None, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (N, 1, 100, 100), y (N,)): the 10,000 test digits placed once each with CLUTTERED_TEST_SEED."""
        return cluttered.fixed_cluttered_test_set(*self._digits("test", data_dir), limit=limit)


@dataclass(frozen=True)
class TwoDigitMnist(DatasetSpec):
    """Two MNIST digits on a 60×60 canvas made on the fly (draw_core.data.two_digit documents the generator),
    binarised like MNIST; the test set is fixed by TWO_DIGIT_TEST_SEED. Labels (of the sample) are the two classes
    as a two-digit number: 10 × the first digit's class + the second's."""

    sample_seed: int = 0  # seeds the pairings and positions of the shipped sample's images

    def required_files(self, root: Path) -> list[Path]:
        return mnist.mnist_files(root)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The shipped MNIST sample, sample digit i first in image i with a seeded partner from the sample; grey
        levels (500, 1, 60, 60) in [0, 1]."""
        digits, labels = mnist.load_sample()
        placements = two_digit.place_pairs(
            digits, torch.arange(len(digits)), torch.Generator().manual_seed(self.sample_seed)
        )
        return two_digit.render_pairs(digits, placements), 10 * labels + labels[placements.source[:, 0]]

    def train_stream(self, data_dir, batch_size: int, seed: int) -> two_digit.TwoDigitStream:
        """Endless batches (B, 1, 60, 60) of fresh two-digit images from the training split, binarised afresh."""
        return two_digit.TwoDigitStream(MNIST_SPEC.load("train", data_dir)[0], batch_size, seed)

    def test_set(self, data_dir=None, limit: int | None = None) -> torch.Tensor:
        """(N, 1, 60, 60) binary: the 10,000 test digits each paired once with TWO_DIGIT_TEST_SEED, first `limit`."""
        return two_digit.fixed_two_digit_test_set(MNIST_SPEC.load("test", data_dir)[0], limit=limit)


MNIST_SOURCE = "Y. LeCun, C. Cortes, C. Burges, The MNIST database of handwritten digits"

MNIST_SPEC = BinarisedMnist(
    name="mnist",
    shape=(1, 28, 28),
    likelihood="bernoulli",
    task="generate",
    description="MNIST handwritten digits, 28×28, binarised (60,000 train / 10,000 test)",
    source=MNIST_SOURCE,
    licence="CC BY-SA 3.0",
    example_index=0,
)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        MNIST_SPEC,
        BinarisedMnist(
            name="mnist-sample",
            shape=(1, 28, 28),
            likelihood="bernoulli",
            task="generate",
            description="500 real MNIST test digits shipped with the app (both splits; for demos and tests)",
            source=MNIST_SOURCE + " (first 500 test digits)",
            licence="CC BY-SA 3.0",
            example_index=0,
            shipped_only=True,
        ),
        ClutteredMnist(
            name="mnist-cluttered",
            shape=(1, cluttered.SIZE, cluttered.SIZE),
            likelihood=None,
            task="classify",
            description="Cluttered translated MNIST, 100×100, one digit and 8 clutter fragments (Mnih et al. 2014)",
            source=MNIST_SOURCE + "; clutter as in Mnih et al. 2014, Recurrent Models of Visual Attention",
            licence="CC BY-SA 3.0",
            example_index=0,
        ),
        TwoDigitMnist(
            name="mnist-two",
            shape=(1, two_digit.SIZE, two_digit.SIZE),
            likelihood="bernoulli",
            task="generate",
            description="Two MNIST digits at random positions on a 60×60 canvas, binarised (DRAW sec. 4.2)",
            source=MNIST_SOURCE + "; two-digit images as in DRAW (Gregor et al. 2015) sec. 4.2",
            licence="CC BY-SA 3.0",
            example_index=0,
        ),
    )
}


def dataset_names() -> list[str]:
    return list(DATASETS)


def get_dataset(name: str) -> DatasetSpec:
    """The spec called `name`; an unknown name is a ValueError listing the known ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {dataset_names()}")
    return DATASETS[name]
