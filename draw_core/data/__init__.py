"""Datasets by name (`get_dataset`, `dataset_names`) and the image tools the app uses.

`draw_core.data.registry` holds the specs; `draw_core.data.mnist` the binarised MNIST they are built on;
`draw_core.data.cluttered` and `draw_core.data.two_digit` make cluttered and two-digit images from MNIST on the fly;
`draw_core.data.colour` reads CIFAR-10 and SVHN at 256 levels; `draw_core.data.images` turns uploads and drawings
into model inputs.
"""

from draw_core.data.mnist import TEST_BINARIZATION_SEED, BatchStream, binarize, load_sample
from draw_core.data.registry import DatasetMissingError, DatasetSpec, dataset_names, get_dataset, resolve_data_dir

__all__ = [
    "TEST_BINARIZATION_SEED",
    "BatchStream",
    "DatasetMissingError",
    "DatasetSpec",
    "binarize",
    "dataset_names",
    "get_dataset",
    "load_sample",
    "resolve_data_dir",
]
