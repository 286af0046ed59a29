"""Write draw_core/data/assets/cifar10_test_sample.npz: N CIFAR-10 test images from the JPEG copy, classes in turn.

Image j of the sample is the (j // 10)-th test image of class j % 10 in the image folder's file order, so the 64
default images hold 6 or 7 of every class. Saved: 'images' uint8 (N, 3, 32, 32), 'labels' (N,), 'classes' (the
class names), 'test_index' (each image's index in the test split as the registry orders it) and 'source'.

PYTHONPATH=. python tools/make_colour_sample.py --data-dir ../shared/data --n 64
"""

import argparse

import numpy as np
import torch

from draw_core.data import resolve_data_dir
from draw_core.data.colour import CIFAR_JPEG, CIFAR_SAMPLE_PATH, read_image_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir", default=None, help=f"folder holding {CIFAR_JPEG}/test/ (default: $DRAW_DATA_DIR or ./data)"
    )
    parser.add_argument("--n", type=int, default=64, help="number of test images to keep")
    args = parser.parse_args()
    folder = resolve_data_dir(args.data_dir).resolve() / CIFAR_JPEG / "test"
    images, labels, classes = read_image_folder(folder)
    by_class = [torch.nonzero(labels == c).flatten() for c in range(len(classes))]
    index = torch.stack([by_class[j % len(classes)][j // len(classes)] for j in range(args.n)])
    CIFAR_SAMPLE_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
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
