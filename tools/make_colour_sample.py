"""Write draw_core/data/assets/cifar10_test_sample.npz: N CIFAR-10 test images from the JPEG copy, classes in turn.

Image j of the sample is the (j // 10)-th test image of class j % 10 in the image folder's file order, so the 64
default images hold 6 or 7 of every class. Saved: 'images' uint8 (N, 3, 32, 32), 'labels' (N,), 'classes' (the
class names), 'test_index' (each image's index in the test split as the registry orders it) and 'source'.

PYTHONPATH=. python tools/make_colour_sample.py --data-dir ../shared/data --n 64
"""

import argparse

import numpy as np
import torch

from draw_core.arguments import whole_number
from draw_core.data import resolve_data_dir
from draw_core.data.colour import CIFAR_JPEG, CIFAR_SAMPLE_PATH, read_image_folder
from draw_core.io.files import write_npz_atomically

TEST_IMAGES = 10_000  # CIFAR-10's test split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir", default=None, help=f"folder holding {CIFAR_JPEG}/test/ (default: $DRAW_DATA_DIR or ./data)"
    )
    parser.add_argument("--n", type=whole_number(1, TEST_IMAGES), default=64, help="number of test images to keep")
    args = parser.parse_args(argv)
    folder = resolve_data_dir(args.data_dir).resolve() / CIFAR_JPEG / "test"
    try:
        images, labels, classes = read_image_folder(folder)
    except ValueError as error:  # no copy there, or not one of <class>/<image> folders
        parser.exit(2, f"error: {error}\n")
    by_class = [torch.nonzero(labels == c).flatten() for c in range(len(classes))]
    rarest = min(len(indices) for indices in by_class)
    if args.n > rarest * len(classes):  # the classes take turns: the rarest one runs out first
        parser.exit(
            2,
            f"error: the copy holds {rarest} test images of its rarest class, so at most {rarest * len(classes)} "
            f"of {len(classes)} classes in turn: got --n {args.n}\n",
        )
    index = torch.stack([by_class[j % len(classes)][j // len(classes)] for j in range(args.n)])
    write_npz_atomically(  # the shipped sample: replaced whole or not at all
        CIFAR_SAMPLE_PATH,
        images=images[index].numpy(),
        labels=labels[index].numpy().astype(np.uint8),
        classes=np.array(classes),
        test_index=index.numpy(),
        source=np.array(f"CIFAR-10 test images from the JPEG (quality 75) re-encoded copy {CIFAR_JPEG}/test"),
    )
    print(f"wrote {len(index)} images to {CIFAR_SAMPLE_PATH} ({CIFAR_SAMPLE_PATH.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
