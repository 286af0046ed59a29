"""Colour images at 256 levels (CIFAR-10, SVHN) for a discretised logistic likelihood: readers, batches, sample.

Images are kept as uint8 tensors (N, 3, 32, 32) (one decoded copy per file or folder, cached in memory by
`functools.lru_cache` keyed by its path) and handed to models as floats k / 255 with k an integer in 0..255
(`to_levels`): never binarised.

Readers:
- CIFAR-10's original python batches (`cifar-10-batches-py/`) through torchvision.datasets.CIFAR10 (it checks their
  MD5 sums); split order: the batches' order.
- An image-folder copy (`<folder>/<class>/*.jpg`, e.g. the JPEG re-encoded `cifar10-jpeg/{train,test}` on our
  machines) listed by torchvision.datasets.ImageFolder (classes in sorted order, files sorted within a class) and
  decoded one file at a time with PIL; a file that does not decode to a 32 x 32 RGB image is a ValueError naming it.
- SVHN's cropped-digit .mat files (`train_32x32.mat`, `test_32x32.mat`) read with scipy.io.loadmat as
  torchvision.datasets.SVHN reads them ('X' (32, 32, 3, N) uint8 to (N, 3, 32, 32), label 10 to digit 0), but
  without its MD5 check, so that a file made by a test in SVHN's layout can be read; a file in another layout is a
  ValueError naming it and the layout expected.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from draw_core.data.mnist import BatchStream

SIDE = 32  # CIFAR-10 and SVHN images are 32 x 32 RGB
CIFAR_BATCHES = "cifar-10-batches-py"  # the original python batches (torchvision.datasets.CIFAR10's folder)
CIFAR_BATCH_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
CIFAR_JPEG = "cifar10-jpeg"  # the image-folder copy: cifar10-jpeg/{train,test}/<class>/*.jpg
CIFAR_SAMPLE_PATH = Path(__file__).parent / "assets" / "cifar10_test_sample.npz"
SVHN_FOLDER = "svhn"
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}  # torchvision.datasets.SVHN's file names
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"


def to_levels(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to floats k / 255 in [0, 1] (k = 0..255), the 256 levels of the discretised logistic."""
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (levels 0..255), got {images.dtype}")
    return images.float().div_(255)


@functools.lru_cache(maxsize=4)
def read_cifar_batches(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10's original python batches under `root`: uint8 (N, 3, 32, 32) and labels (N,) in the batches' order.
    torchvision's RuntimeError when they are missing or corrupted."""
    from torchvision.datasets import CIFAR10

    dataset = CIFAR10(root=str(root), train=train, download=False)
    images = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)))  # (N, H, W, 3) -> (N, 3, H, W)
    return images, torch.tensor(dataset.targets, dtype=torch.long)


def decode_rgb(path: str | Path) -> np.ndarray:
    """One image file as uint8 (32, 32, 3); a file that is truncated, corrupt or not 32 x 32 is a ValueError naming
    it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            size = image.size
            pixels = np.asarray(image.convert("RGB"))
    except (
        OSError,
        SyntaxError,
        ValueError,
    ) as error:  # PIL: OSError (truncated, unidentified), SyntaxError (bad header)
        raise ValueError(f"{path} can't be decoded as an image ({error}): replace the file with a good copy") from None
    if size != (SIDE, SIDE):
        raise ValueError(f"{path} is {size[0]}x{size[1]} pixels, expected {SIDE}x{SIDE}")
    return pixels


@functools.lru_cache(maxsize=4)
def read_image_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Every image of `folder`/<class>/*: uint8 (N, 3, 32, 32), labels (N,) and the class names, in ImageFolder's
    order (classes sorted, files sorted within each class). Decodes every file (the 50,000 training JPEGs: 10.5 s
    on one core of our shared CPU)."""
    from torchvision.datasets import ImageFolder

    try:
        listing = ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as error:  # no class folders, or no image file in them
        raise ValueError(f"{folder} can't be read as <class>/<image> folders: {error}") from None
    images = np.empty((len(listing.samples), SIDE, SIDE, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(listing.samples):
        images[i] = decode_rgb(path)
    labels = torch.tensor(listing.targets, dtype=torch.long)
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), labels, tuple(listing.classes)


@functools.lru_cache(maxsize=4)
def read_svhn_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """An SVHN cropped-digit .mat file: uint8 (N, 3, 32, 32) and digit labels (N,) in 0..9 (SVHN's label 10 is the
    digit 0). A file in another layout is a ValueError naming it and saying what was expected."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    expected = f"'X' uint8 ({SIDE}, {SIDE}, 3, N) and 'y' (N, 1) with labels 1..10"
    try:
        mat = loadmat(path)
    except (MatReadError, OSError, ValueError, TypeError, NotImplementedError) as error:  # v7.3 (HDF5): NotImplemented
        raise ValueError(
            f"{path} can't be read as a MATLAB file ({error}): expected SVHN's layout, {expected}"
        ) from None
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path} holds {sorted(k for k in mat if not k.startswith('__'))}, expected {expected}")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (SIDE, SIDE, 3) or x.shape[3] != len(y):
        raise ValueError(f"{path} has 'X' {x.dtype} {x.shape} and {len(y)} labels, expected {expected}")
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{path} has labels of type {y.dtype}, expected {expected}")
    if len(y) and not (y.min() >= 1 and y.max() <= 10):
        raise ValueError(f"{path} has labels from {y.min()} to {y.max()}, expected {expected}")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))  # (H, W, 3, N) -> (N, 3, H, W)
    return images, torch.from_numpy(y.astype(np.int64) % 10)


def load_sample(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A shipped sample (npz with uint8 'images' (N, 3, 32, 32) and 'labels' (N,)): floats k / 255 and labels."""
    with np.load(path) as sample:
        return to_levels(torch.from_numpy(sample["images"])), torch.from_numpy(sample["labels"]).long()


class LevelStream(BatchStream):
    """Endless shuffled batches (B, 3, 32, 32) of floats k / 255 from uint8 images; `epoch` counts full passes."""

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        super().__init__(images, batch_size, seed)

    def next(self) -> torch.Tensor:
        return to_levels(self.images[self.next_indices()])
