"""Write draw_core/data/assets/mnist_test_sample.npz: the first N real MNIST test digits from the IDX files.

python tools/make_mnist_sample.py --data-dir ../shared/data --n 500
"""

import argparse

import numpy as np

from draw_core.arguments import whole_number
from draw_core.data import resolve_data_dir
from draw_core.data.mnist import SAMPLE_PATH
from draw_core.io.files import write_npz_atomically

TEST_DIGITS = 10_000  # MNIST's test split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir", default=None, help="folder holding MNIST/raw/ (default: $DRAW_DATA_DIR or ./data)"
    )
    parser.add_argument("--n", type=whole_number(1, TEST_DIGITS), default=500, help="number of test digits to keep")
    args = parser.parse_args(argv)
    from torchvision.datasets import MNIST

    try:
        test = MNIST(root=str(resolve_data_dir(args.data_dir)), train=False, download=False)
    except RuntimeError as error:  # torchvision's "Dataset not found"
        parser.exit(2, f"error: {error}\n")
    images = test.data[: args.n].numpy().astype(np.uint8)
    labels = test.targets[: args.n].numpy().astype(np.uint8)
    write_npz_atomically(SAMPLE_PATH, images=images, labels=labels)  # the shipped sample: replaced whole or not at all
    print(f"wrote {len(images)} digits to {SAMPLE_PATH}")


if __name__ == "__main__":
    main()
