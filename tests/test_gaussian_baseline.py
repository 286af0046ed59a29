"""tools/gaussian_baseline.py: the full-covariance Gaussian yardstick in bits/dim, on data whose answer is known."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

spec = importlib.util.spec_from_file_location(
    "gaussian_baseline", Path(__file__).resolve().parent.parent / "tools" / "gaussian_baseline.py"
)
gaussian_baseline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gaussian_baseline)


def test_independent_gaussian_data_gets_its_entropy_per_dimension():
    # x ~ N(0.5, 0.1^2) on each of 4 sub-pixels: -log density per dimension is on average 0.5 log(2 pi e 0.01), and
    # each level's bin is 1/255 wide, so bits/dim = (0.5 log(2 pi e sigma^2) + log 255) / ln 2.
    g = torch.Generator().manual_seed(0)
    train = 0.5 + 0.1 * torch.randn(20000, 1, 2, 2, generator=g, dtype=torch.float64)
    test = 0.5 + 0.1 * torch.randn(5000, 1, 2, 2, generator=g, dtype=torch.float64)
    expected = (0.5 * math.log(2 * math.pi * math.e * (0.01 + gaussian_baseline.RIDGE)) + math.log(255)) / math.log(2)
    assert abs(gaussian_baseline.gaussian_bits_per_dim(train, test) - expected) < 0.02


def test_correlated_pixels_cost_fewer_bits_than_independent_ones():
    g = torch.Generator().manual_seed(1)
    shared = torch.randn(20000, 1, 1, 1, generator=g, dtype=torch.float64)
    noise = torch.randn(20000, 1, 2, 2, generator=g, dtype=torch.float64)
    correlated = 0.5 + 0.1 * (0.95 * shared + math.sqrt(1 - 0.95**2) * noise)  # every pixel has variance 0.01
    independent = 0.5 + 0.1 * noise
    bits = gaussian_baseline.gaussian_bits_per_dim
    assert bits(correlated[:15000], correlated[15000:]) < bits(independent[:15000], independent[15000:]) - 0.5


def test_missing_data_or_a_dataset_without_8_bit_levels_is_one_error_line(tmp_path, capsys):
    for argv, message in (
        (["--data-dir", str(tmp_path)], "cifar10 is not on this server"),
        (["--dataset", "mnist-sample"], "invalid choice: 'mnist-sample'"),
    ):
        with pytest.raises(SystemExit) as stopped:
            gaussian_baseline.main(argv)
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
