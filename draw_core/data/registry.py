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

from draw_core.data import cluttered, colour, mnist, two_digit

SPLITS = ("train", "test")


class DatasetMissingError(FileNotFoundError):
    """The dataset's files are not where they were looked for (and could not be downloaded), or one of them is
    damaged (DatasetCorruptError): either way the dataset can't be used, and the message says which file."""


class DatasetCorruptError(DatasetMissingError):
    """A dataset file is there but truncated or not the dataset's; the message names it."""


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
    train_size: int  # images of the training split (of the standard copy): no batch may be larger

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

    def sample(self, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A small real sample shipped in the repository: images (N, C, H, W) in [0, 1], labels (N,). `data_dir`
        matters only to a dataset that ships none and takes its sample from its data (SvhnImages)."""
        raise NotImplementedError

    def has_sample(self, data_dir: str | os.PathLike | None = None) -> bool:
        """Whether `sample` can give images here (every dataset that ships a sample; see SvhnImages)."""
        return True

    def sample_test_set(self, data_dir: str | os.PathLike | None = None) -> torch.Tensor:
        """The shipped sample's images (N, C, H, W) as an evaluation sees them: binarised once with
        TEST_BINARIZATION_SEED for the Bernoulli likelihood, the 8-bit levels as they are otherwise."""
        images = self.sample(data_dir)[0]
        return mnist.fixed_binarization(images) if self.likelihood == "bernoulli" else images

    def label_text(self, label: int) -> str:
        """A label of this dataset as pages write it: its class number."""
        return str(int(label))

    def example(self, data_dir: str | os.PathLike | None = None) -> torch.Tensor:
        """(C, H, W) the image the Train page's live glimpses follow."""
        return self.sample(data_dir)[0][self.example_index]

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

    def sample(self, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return mnist.load_sample()

    def load(self, split: str, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Grey levels (N, 1, 28, 28) in [0, 1] and labels (N,) of a split; DatasetMissingError if not here."""
        self._check_split(split)
        if self.shipped_only:
            return self.sample()
        root = resolve_data_dir(data_dir)
        try:
            return mnist.load_mnist(split == "train", root)
        except mnist.CorruptFileError as error:
            raise DatasetCorruptError(str(error)) from None
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

    def sample(self, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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

    def sample(self, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The shipped MNIST sample, sample digit i first in image i with a seeded partner from the sample; grey
        levels (500, 1, 60, 60) in [0, 1]."""
        digits, labels = mnist.load_sample()
        placements = two_digit.place_pairs(
            digits, torch.arange(len(digits)), torch.Generator().manual_seed(self.sample_seed)
        )
        return two_digit.render_pairs(digits, placements), 10 * labels + labels[placements.source[:, 0]]

    def label_text(self, label: int) -> str:
        """Both digits' classes, first then second: label 1 is a 0 then a 1, written '01'."""
        return f"{int(label):02d}"

    def train_stream(self, data_dir, batch_size: int, seed: int) -> two_digit.TwoDigitStream:
        """Endless batches (B, 1, 60, 60) of fresh two-digit images from the training split, binarised afresh."""
        return two_digit.TwoDigitStream(MNIST_SPEC.load("train", data_dir)[0], batch_size, seed)

    def test_set(self, data_dir=None, limit: int | None = None) -> torch.Tensor:
        """(N, 1, 60, 60) binary: the 10,000 test digits each paired once with TWO_DIGIT_TEST_SEED, first `limit`."""
        return two_digit.fixed_two_digit_test_set(MNIST_SPEC.load("test", data_dir)[0], limit=limit)


@dataclass(frozen=True)
class ColourImages(DatasetSpec):
    """32×32 RGB images at 256 levels for the discretised logistic likelihood (draw_core.data.colour): `load`,
    `train_stream` and `test_set` give floats k/255, k = 0..255, never binarised. Subclasses say where the uint8
    images of a split come from (`_levels`)."""

    def _levels(self, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, 3, 32, 32) and labels (N,) of a split under `root` (cached by colour's readers)."""
        raise NotImplementedError

    def _read(self, split: str, data_dir) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_split(split)
        root = resolve_data_dir(data_dir)
        if not self.available(root):
            raise DatasetMissingError(self.how_to_get(root))
        return self._levels(split, root.resolve())

    def load(self, split: str, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Floats k/255 (N, 3, 32, 32) and labels (N,) of a split; DatasetMissingError if not here. The whole
        split in float32 (the CIFAR-10 training split: 614 MB); train_stream and test_set convert per batch."""
        images, labels = self._read(split, data_dir)
        return colour.to_levels(images), labels.clone()  # the cached labels stay untouched

    def train_stream(self, data_dir, batch_size: int, seed: int) -> colour.LevelStream:
        """Endless shuffled batches (B, 3, 32, 32) of floats k/255 from the training split."""
        return colour.LevelStream(self._read("train", data_dir)[0], batch_size, seed)

    def test_set(self, data_dir=None, limit: int | None = None) -> torch.Tensor:
        """(N, 3, 32, 32) floats k/255: the test split in file order, its first `limit` images."""
        images = self._read("test", data_dir)[0]
        return colour.to_levels(images[:limit] if limit else images)

    def copy_description(self, data_dir: str | os.PathLike | None = None) -> str:
        """Which copy of the data would be loaded from the data root, as a sentence for cards and pages."""
        raise NotImplementedError


@dataclass(frozen=True)
class Cifar10Images(ColourImages):
    """CIFAR-10 from the original python batches (`<root>/cifar-10-batches-py`) if they are there, else from an
    image-folder copy `<root>/cifar10-jpeg/{train,test}/<class>/*.jpg` (on our machines: all 60,000 images
    re-encoded as JPEG quality 75, not bit-identical to CIFAR-10: `copy_description` says which was read)."""

    def _batches(self, root: Path) -> Path:
        return root / colour.CIFAR_BATCHES

    def _jpeg(self, root: Path) -> Path:
        return root / colour.CIFAR_JPEG

    def required_files(self, root: Path) -> list[Path]:
        """The python batches' files, or when only the image-folder copy is here, its two split folders."""
        jpeg = [self._jpeg(root) / split for split in SPLITS]
        if not self._batches(root).is_dir() and all(folder.is_dir() for folder in jpeg):
            return jpeg
        return [self._batches(root) / name for name in colour.CIFAR_BATCH_FILES]

    def available(self, data_dir: str | os.PathLike | None = None) -> bool:
        root = resolve_data_dir(data_dir)
        return self._batches(root).is_dir() or all((self._jpeg(root) / split).is_dir() for split in SPLITS)

    def how_to_get(self, data_dir: str | os.PathLike | None = None) -> str:
        root = resolve_data_dir(data_dir)
        return (
            f"{self.name} is not on this server: it needs the original python batches in `{self._batches(root)}` "
            "(torchvision.datasets.CIFAR10(root, download=True) fetches them from "
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz), or an image-folder copy "
            f"`{self._jpeg(root)}/{{train,test}}/<class>/*.jpg`. Put either there, or start with `DRAW_DATA_DIR` "
            "pointing at the folder that holds it."
        )

    def copy_description(self, data_dir: str | os.PathLike | None = None) -> str:
        root = resolve_data_dir(data_dir)
        if self._batches(root).is_dir():
            return f"the original CIFAR-10 python batches at {self._batches(root)}"
        if self.available(root):
            return (
                f"the JPEG (quality 75) re-encoded copy at {self._jpeg(root)}, not bit-identical to the original "
                "CIFAR-10"
            )
        return f"no copy: CIFAR-10 is not under {root}"

    def _levels(self, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batches(root).is_dir():
            try:
                return colour.read_cifar_batches(self._batches(root).parent, split == "train")
            except RuntimeError as error:  # torchvision: files missing or their MD5 sums wrong
                raise DatasetMissingError(f"{self._batches(root)}: {error}. {self.how_to_get(root)}") from None
        return colour.read_image_folder(self._jpeg(root) / split)[:2]

    def sample(self, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """64 test images shipped with the app, 6 or 7 of every class, taken from the JPEG (quality 75) re-encoded
        copy, not the original batches (tools/make_colour_sample.py): floats k/255 (64, 3, 32, 32), labels (64,)."""
        return colour.load_sample(colour.CIFAR_SAMPLE_PATH)


@dataclass(frozen=True)
class SvhnImages(ColourImages):
    """SVHN's cropped digits (`<root>/svhn/{train,test}_32x32.mat`). No sample ships (there is no SVHN on our
    machines): `sample` reads the first SAMPLE_SIZE test images from the data root when the files are there and
    otherwise raises DatasetMissingError saying how to get them, so that a page says SVHN needs its data."""

    sample_size: int = 64

    def required_files(self, root: Path) -> list[Path]:
        return [root / colour.SVHN_FOLDER / colour.SVHN_FILES[split] for split in SPLITS]

    def how_to_get(self, data_dir: str | os.PathLike | None = None) -> str:
        root = resolve_data_dir(data_dir)
        urls = " and ".join(colour.SVHN_URL + colour.SVHN_FILES[split] for split in SPLITS)
        return (
            f"{self.name} is not on this server: it needs `{root / colour.SVHN_FOLDER}/train_32x32.mat` and "
            f"`test_32x32.mat`. Download {urls} into `{root / colour.SVHN_FOLDER}` (or run "
            f"torchvision.datasets.SVHN('{root / colour.SVHN_FOLDER}', split, download=True) for each split), or "
            "start with `DRAW_DATA_DIR` pointing at the folder that holds `svhn/`."
        )

    def copy_description(self, data_dir: str | os.PathLike | None = None) -> str:
        root = resolve_data_dir(data_dir)
        if self.available(root):
            return f"the SVHN cropped-digit .mat files at {root / colour.SVHN_FOLDER}"
        return f"no copy: SVHN is not under {root}"

    def _levels(self, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
        return colour.read_svhn_mat(root / colour.SVHN_FOLDER / colour.SVHN_FILES[split])

    def has_sample(self, data_dir: str | os.PathLike | None = None) -> bool:
        return self.available(data_dir)

    def sample(self, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `sample_size` test images of the data root's SVHN; DatasetMissingError when it is not here."""
        images, labels = self._read("test", data_dir)
        return colour.to_levels(images[: self.sample_size]), labels[: self.sample_size]


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
    train_size=60_000,
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
            train_size=500,
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
            train_size=60_000,
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
            train_size=60_000,
        ),
        Cifar10Images(
            name="cifar10",
            shape=(3, colour.SIDE, colour.SIDE),
            likelihood="logistic-coupled",
            task="generate",
            description="CIFAR-10 colour images, 32×32, 256 levels (50,000 train / 10,000 test)",
            source="A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009",
            licence="no licence stated by its authors (research use; cite the report)",
            example_index=0,
            train_size=50_000,
        ),
        SvhnImages(
            name="svhn",
            shape=(3, colour.SIDE, colour.SIDE),
            likelihood="logistic-coupled",
            task="generate",
            description="SVHN house-number digits, cropped 32×32 colour, 256 levels (73,257 train / 26,032 test)",
            source="Y. Netzer et al., Reading Digits in Natural Images with Unsupervised Feature Learning, 2011",
            licence="non-commercial use only (SVHN's terms)",
            example_index=0,
            train_size=73_257,
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
