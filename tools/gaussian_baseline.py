"""The bits/dim of a full-covariance Gaussian on a colour dataset's test set: the yardstick issue 14 names ("a
multivariate Gaussian gets about 4.7" on the original CIFAR-10), measured on the copy we have.

    PYTHONPATH=. python tools/gaussian_baseline.py --dataset cifar10 --data-dir ../shared/data

Fit: the mean and covariance of the training images' 8-bit levels (as k/255), plus a small ridge. Test: the density
of each test image times the volume of its bin, (1/255)^D, i.e. -log N(x; m, S) + D log 255 nats, a continuous
approximation of the discretised likelihood (exact enough where the Gaussian's scale spans many levels).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from draw_core.data import DatasetMissingError, dataset_names, get_dataset
from draw_core.data.registry import ColourImages
from draw_core.nn.likelihood import nats_to_bits_per_dim

RIDGE = 1e-4  # added to the covariance's diagonal, (1/255)^2 is 1.5e-5


def gaussian_bits_per_dim(train: torch.Tensor, test: torch.Tensor) -> float:
    """train (N, C, H, W), test (M, C, H, W) in [0, 1] -> mean bits/dim of the test images under the fitted Gaussian."""
    x = train.flatten(1).double()  # (N, D)
    D = x.shape[1]
    mean = x.mean(0)
    centred = x - mean
    covariance = centred.T @ centred / (len(x) - 1) + RIDGE * torch.eye(D, dtype=torch.float64)
    distribution = torch.distributions.MultivariateNormal(mean, covariance)
    nats = -distribution.log_prob(test.flatten(1).double()) + D * math.log(255)  # (M,)
    return nats_to_bits_per_dim(nats.mean().item(), D)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    colour = [name for name in dataset_names() if isinstance(get_dataset(name), ColourImages)]  # 8-bit levels
    parser.add_argument("--dataset", default="cifar10", choices=colour)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    spec = get_dataset(args.dataset)
    started = time.perf_counter()
    try:
        train, test = spec.load("train", args.data_dir)[0], spec.test_set(args.data_dir)
    except DatasetMissingError as error:
        parser.exit(2, f"error: {error}\n")
    bits = gaussian_bits_per_dim(train, test)
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "copy": spec.copy_description(args.data_dir),
                "gaussian_test_bits_per_dim": round(bits, 4),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
