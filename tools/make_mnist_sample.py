"""Write draw_core/data/assets/mnist_test_sample.npz: the first N real MNIST test digits from the IDX files.

python tools/make_mnist_sample.py --data-dir ../shared/data --n 500
"""

import argparse

import numpy as np

from draw_core.data import resolve_data_dir
from draw_core.data.mnist import SAMPLE_PATH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir", default=None, help="folder holding MNIST/raw/ (default: $DRAW_DATA_DIR or ./data)"
    )
    parser.add_argument("--n", type=int, default=500, help="number of test digits to keep")
    args = parser.parse_args()
    from torchvision.datasets import MNIST

    test = MNIST(root=str(resolve_data_dir(args.data_dir)), train=False, download=False)
    images = test.data[: args.n].numpy().astype(np.uint8)
    labels = test.targets[: args.n].numpy().astype(np.uint8)
    SAMPLE_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(SAMPLE_PATH, images=images, labels=labels)
    print(f"wrote {len(images)} digits to {SAMPLE_PATH}")


if __name__ == "__main__":
    main()
