"""draw_core.attention against the paper's eqs 19-29 (Gregor et al. 2015), on hand-computable cases.

The hand-computed checks run on both hot paths (fused and plain); the fused backward passes are gradchecked.
"""

import functools
import math

import pytest
import torch

from draw_core.nn.attention import (
    AttentionParams,
    attention_params,
    extract,
    filterbank,
    grid_centres,
    read,
    window,
    window_geometry,
    write,
)

PATHS = pytest.mark.parametrize("path", ["fused", "plain"])


def params(gx, gy, delta, sigma2, gamma=1.0, dtype=torch.float64) -> AttentionParams:
    """Pixel-unit params for a batch of one."""
    return AttentionParams(*(torch.tensor([v], dtype=dtype) for v in (gx, gy, delta, sigma2, gamma)))


def moderate_raw(B: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """Random raw attention whose windows stay well inside a 28 x 28 image for N = 5 (centres in [2, 27])."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.empty(B, 5, dtype=dtype)
    raw[:, :2].uniform_(-0.5, 0.5, generator=g)  # g~ -> centres in [7.25, 21.75]
    raw[:, 2].uniform_(-0.5, 0.5, generator=g)  # log sigma^2
    raw[:, 3].uniform_(-2.0, -1.0, generator=g)  # log delta~ -> delta <= 6.75 / e
    raw[:, 4].uniform_(-1.0, 1.0, generator=g)  # log gamma
    return raw


def test_eqs_22_to_24_by_hand():
    # raw zeros on 28 x 28: gX = gY = (28 + 1) / 2 * (0 + 1) = 14.5, delta = (28 - 1) / (N - 1), sigma^2 = gamma = 1.
    p = attention_params(torch.zeros(1, 5), N=5, height=28, width=28)
    assert p.gx.item() == pytest.approx(14.5)
    assert p.gy.item() == pytest.approx(14.5)
    assert p.delta.item() == pytest.approx(27 / 4)
    assert p.sigma2.item() == pytest.approx(1.0)
    assert p.gamma.item() == pytest.approx(1.0)
    # A non-square image tells A (width) from B (height): A = 30, B = 20, N = 3.
    raw = torch.tensor([[0.5, -0.5, math.log(4.0), math.log(2.0), math.log(3.0)]])
    p = attention_params(raw, N=3, height=20, width=30)
    assert p.gx.item() == pytest.approx(31 / 2 * 1.5)  # eq. 22: 23.25
    assert p.gy.item() == pytest.approx(21 / 2 * 0.5)  # eq. 23: 5.25
    assert p.delta.item() == pytest.approx((30 - 1) / (3 - 1) * 2)  # eq. 24 uses max(A, B): 29
    assert p.sigma2.item() == pytest.approx(4.0)
    assert p.gamma.item() == pytest.approx(3.0)


def test_attention_params_refuses_bad_input():
    with pytest.raises(ValueError, match="5 values"):
        attention_params(torch.zeros(2, 4), N=5, height=28, width=28)
    with pytest.raises(ValueError, match="N must be >= 2"):
        attention_params(torch.zeros(2, 5), N=1, height=28, width=28)


@pytest.mark.parametrize(
    "N, expected", [(2, [13.5, 15.5]), (5, [10.5, 12.5, 14.5, 16.5, 18.5]), (4, [11.5, 13.5, 15.5, 17.5])]
)
def test_grid_centres_eq_19_by_hand(N, expected):
    # mu^i = g + (i - N/2 - 0.5) delta for i = 1..N with g = 14.5, delta = 2: the grid is centred on g.
    mu_x, mu_y = grid_centres(params(14.5, 14.5, 2.0, 1.0), N)
    assert mu_x[0].tolist() == pytest.approx(expected)
    assert mu_y[0].tolist() == pytest.approx(expected)


@PATHS
def test_filter_rows_sum_to_one(path):
    p = attention_params(moderate_raw(16, seed=1), N=5, height=28, width=28)
    Fx, Fy = filterbank(p, 5, 28, 28, path=path)
    assert Fx.shape == (16, 5, 28) and Fy.shape == (16, 5, 28)
    torch.testing.assert_close(Fx.sum(-1), torch.ones(16, 5, dtype=Fx.dtype))
    torch.testing.assert_close(Fy.sum(-1), torch.ones(16, 5, dtype=Fy.dtype))
    assert (Fx >= 0).all() and (Fy >= 0).all()


@PATHS
def test_filter_centres_of_mass_are_the_grid(path):
    # Window well inside the image, sigma = 1: each row's centre of mass is mu_i (1-based pixels, eq. 25).
    gx, gy, delta, N = 14.5, 12.3, 2.2, 5
    Fx, Fy = filterbank(params(gx, gy, delta, sigma2=1.0), N, height=28, width=30, path=path)
    assert Fx.shape == (1, N, 30) and Fy.shape == (1, N, 28)
    com_x = (Fx[0] * torch.arange(1, 31, dtype=Fx.dtype)).sum(-1)  # (N,)
    com_y = (Fy[0] * torch.arange(1, 29, dtype=Fy.dtype)).sum(-1)  # (N,)
    hand_x = [gx + (i - N / 2 - 0.5) * delta for i in range(1, N + 1)]  # 10.1, 12.3, 14.5, 16.7, 18.9
    hand_y = [gy + (i - N / 2 - 0.5) * delta for i in range(1, N + 1)]  # 7.9, 10.1, 12.3, 14.5, 16.7
    assert com_x.tolist() == pytest.approx(hand_x, abs=1e-3)
    assert com_y.tolist() == pytest.approx(hand_y, abs=1e-3)
    assert com_x.mean().item() == pytest.approx(gx, abs=1e-3)
    assert com_y.mean().item() == pytest.approx(gy, abs=1e-3)
    assert com_x.diff().tolist() == pytest.approx([delta] * (N - 1), abs=1e-3)
    assert com_y.diff().tolist() == pytest.approx([delta] * (N - 1), abs=1e-3)


@PATHS
def test_filter_rows_are_gaussians_of_variance_sigma2(path):
    # eq. 25: F_X[i, a] = exp(-(a - mu_i)^2 / (2 sigma^2)) / Z_X. Well inside the image the normalised rows are
    # discretised Gaussians, whose variance is sigma^2 (not sigma^4, not sigma).
    sigma2, N = 2.25, 3
    Fx, _ = filterbank(params(14.0, 14.0, 3.0, sigma2), N, height=28, width=28, path=path)
    a = torch.arange(1, 29, dtype=Fx.dtype)
    mu = torch.tensor([11.0, 14.0, 17.0], dtype=Fx.dtype)
    variance = (Fx[0] * (a - mu[:, None]) ** 2).sum(-1)
    assert variance.tolist() == pytest.approx([sigma2] * N, abs=1e-4)
    # One entry by hand: row 2 (mu = 14), pixel 15, relative to pixel 14: exp(-1 / (2 * 2.25)).
    assert (Fx[0, 1, 14] / Fx[0, 1, 13]).item() == pytest.approx(math.exp(-1 / 4.5))


def read_write_loss(raw: torch.Tensor, path: str, N: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Filters, a read and a write from raw (B, 5) on fixed random images; returns (Fx, Fy, scalar loss)."""
    B = raw.shape[0]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(B, 1, 28, 28, generator=g)
    x_hat = torch.rand(B, 1, 28, 28, generator=g) - 0.5
    w = torch.randn(B, 1, N, N, generator=g)
    p = attention_params(raw, N, 28, 28)
    Fx, Fy = filterbank(p, N, 28, 28, path=path)
    loss = read(x, x_hat, Fx, Fy, p.gamma, path=path).sum() + write(w, Fx, Fy, p.gamma, path=path).square().sum()
    return Fx, Fy, loss


def test_fused_float32_filters_hold_no_subnormal_floats_and_match_the_plain_path():
    # A 100 x 100 image, sigma^2 = 20: eq. 25's tails run through float32's subnormal range (below 1.2e-38), which
    # x86 CPUs compute in microcode. The fused path cuts them to 0; the plain path, the paper as written, keeps them.
    p = params(gx=30.0, gy=70.0, delta=8.0, sigma2=20.0, dtype=torch.float32)
    fused = filterbank(p, 12, 100, 100, path="fused")
    plain = filterbank(p, 12, 100, 100, path="plain")
    tiny = torch.finfo(torch.float32).tiny
    assert any(((F > 0) & (F < tiny)).any() for F in plain), "the case must reach the subnormal range"
    for F_fused, F_plain in zip(fused, plain, strict=True):
        assert not ((F_fused > 0) & (F_fused < tiny)).any()
        torch.testing.assert_close(F_fused, F_plain, rtol=1e-5, atol=1e-7)


@PATHS
def test_window_off_the_image_reads_zeros_with_finite_gradients(path):
    # g~X = g~Y = 5: the centre is at (28 + 1) / 2 * 6 = 87, far right/below of a 28 x 28 image; small delta and sigma.
    raw = torch.tensor([[5.0, 5.0, 0.0, -3.0, 0.0], [-8.0, 0.0, 0.0, -3.0, 0.0]], requires_grad=True)
    Fx, Fy, loss = read_write_loss(raw, path)
    assert torch.all(Fx[0] == 0) and torch.all(Fy[0] == 0)
    assert torch.all(Fx[1] == 0)  # second window is far left
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(raw.grad).all()


@PATHS
@pytest.mark.parametrize("value", [1e4, -1e4, 1e6, -1e6, math.inf, -math.inf])
def test_extreme_raw_values_give_finite_outputs_and_gradients(value, path):
    raw = torch.full((3, 5), value)
    raw[1, 0] = 0.0  # mixed rows: one extreme in all but the centre
    raw[2, 2:] = 0.0  # one extreme only in the centre
    raw.requires_grad_(True)
    Fx, Fy, loss = read_write_loss(raw, path)
    assert torch.isfinite(Fx).all() and torch.isfinite(Fy).all()
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(raw.grad).all()


def identity_params(dtype=torch.float32) -> AttentionParams:
    # N = width = 28, delta = 1 (log delta~ = log((N - 1) / (max(A, B) - 1)) = 0), tiny sigma, gamma = 1, centred grid:
    # mu^i = 14.5 + (i - 14.5) = i, so filter row i picks pixel i exactly.
    raw = torch.tensor([[0.0, 0.0, -10.0, math.log(27 / 27), 0.0]], dtype=dtype)
    return attention_params(raw, N=28, height=28, width=28)


@PATHS
def test_full_grid_with_unit_stride_reads_the_image_back_exactly(path):
    p = identity_params()
    assert p.delta.item() == pytest.approx(1.0)
    Fx, Fy = filterbank(p, 28, 28, 28, path=path)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 1, 28, 28, generator=g)
    x_hat = torch.rand(1, 1, 28, 28, generator=g) - 0.5
    torch.testing.assert_close(extract(x, Fx, Fy, path=path), x, atol=1e-5, rtol=0)
    r = read(x, x_hat, Fx, Fy, p.gamma, path=path)  # eq. 27 with gamma = 1
    torch.testing.assert_close(r, torch.cat([x, x_hat], dim=1).flatten(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(write(x, Fx, Fy, p.gamma, path=path), x, atol=1e-5, rtol=0)  # eq. 29 writes it back too


@PATHS
def test_colour_channels_share_the_filters(path):
    p = identity_params()
    Fx, Fy = filterbank(p, 28, 28, 28, path=path)
    x = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(4))
    Fx2, Fy2 = Fx.expand(2, -1, -1), Fy.expand(2, -1, -1)
    torch.testing.assert_close(extract(x, Fx2, Fy2, path=path), x, atol=1e-5, rtol=0)


@PATHS
def test_write_is_the_adjoint_of_read(path):
    # <F_Y x F_X^T, w> = <x, F_Y^T w F_X> with gamma = 1, for random windows (float64 for a tight check).
    B, C, N = 8, 2, 5
    raw = moderate_raw(B, seed=7)
    raw[:, 2] = torch.linspace(-3, 2, B, dtype=raw.dtype)  # narrow to wide filters
    p = attention_params(raw, N, 28, 28)
    Fx, Fy = filterbank(p, N, 28, 28, path=path)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(B, C, 28, 28, generator=g, dtype=torch.float64)
    w = torch.randn(B, C, N, N, generator=g, dtype=torch.float64)
    ones = torch.ones(B, dtype=torch.float64)
    lhs = (extract(x, Fx, Fy, path=path) * w).sum((1, 2, 3))
    rhs = (x * write(w, Fx, Fy, ones, path=path)).sum((1, 2, 3))
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-10)
    # and write divides by gamma (eq. 29)
    gamma = torch.full((B,), 4.0, dtype=torch.float64)
    torch.testing.assert_close(write(w, Fx, Fy, gamma, path=path), write(w, Fx, Fy, ones, path=path) / 4)


def test_window_geometry_is_the_grid_in_zero_based_coordinates():
    # gX = 14.5, gY = 10.0, delta = 2, N = 5: mu_X = 10.5 .. 18.5 and mu_Y = 6 .. 14 in the paper's 1-based pixels.
    geometry = window_geometry(params(14.5, 10.0, 2.0, sigma2=0.25), 5)
    assert geometry.x0.item() == pytest.approx(9.5)
    assert geometry.x1.item() == pytest.approx(17.5)
    assert geometry.y0.item() == pytest.approx(5.0)
    assert geometry.y1.item() == pytest.approx(13.0)
    assert geometry.centres_x[0].tolist() == pytest.approx([9.5, 11.5, 13.5, 15.5, 17.5])
    assert geometry.centres_y[0].tolist() == pytest.approx([5.0, 7.0, 9.0, 11.0, 13.0])
    assert geometry.sigma.item() == pytest.approx(0.5)
    # The same numbers the filters use: a row's centre of mass (1-based) is the geometry's centre + 1.
    Fx, _ = filterbank(params(14.5, 10.0, 2.0, sigma2=0.25), 5, 28, 28)
    com = (Fx[0] * torch.arange(1, 29, dtype=Fx.dtype)).sum(-1)
    assert (com - 1).tolist() == pytest.approx(geometry.centres_x[0].tolist(), abs=1e-6)


def test_stacked_params_give_per_step_geometry():
    steps = [attention_params(moderate_raw(3, seed=s), 5, 28, 28) for s in range(4)]
    stacked = AttentionParams.stack(steps)
    assert stacked.gx.shape == (4, 3)
    geometry = window_geometry(stacked, 5)
    assert geometry.x0.shape == (4, 3) and geometry.centres_x.shape == (4, 3, 5)
    assert geometry.x0[2].tolist() == pytest.approx(window_geometry(stacked.step(2), 5).x0.tolist())
    assert geometry.x0[2].tolist() == pytest.approx(window_geometry(steps[2], 5).x0.tolist())


@pytest.mark.parametrize("height, width", [(28, 28), (12, 17)])
def test_filterbank_backward_matches_finite_differences(height, width):
    # The filterbank's backward is written out by hand (one autograd node); gradcheck compares it in float64 with
    # central differences, for windows inside the image, half off it, and with broad and narrow filters.
    raw = torch.tensor(
        [[0.1, -0.2, 0.3, -0.5, 0.0], [0.9, 0.8, -1.0, 0.2, 0.0], [-0.3, 0.4, 1.5, -1.5, 0.0]], dtype=torch.float64
    )
    p = attention_params(raw, N=3, height=height, width=width)
    inputs = tuple(t.clone().requires_grad_(True) for t in (p.gx, p.gy, p.delta, p.sigma2))

    def filters(gx, gy, delta, sigma2):
        return filterbank(AttentionParams(gx, gy, delta, sigma2, p.gamma), 3, height, width, path="fused")

    assert torch.autograd.gradcheck(filters, inputs)


@pytest.mark.parametrize("height, width", [(28, 28), (12, 17)])
def test_window_is_attention_params_then_filterbank_with_a_checked_backward(height, width):
    # The fused window() is eqs 21-26 in one autograd node: the same numbers as attention_params then the plain
    # filterbank, and gradients that match finite differences in float64, including through a clamped raw value.
    raw = torch.tensor(
        [[0.1, -0.2, 0.3, -0.5, 0.2], [0.9, 0.8, -1.0, 0.2, -0.4], [-0.3, 12.0, 1.5, -1.5, 0.0]], dtype=torch.float64
    )
    params, Fx, Fy = window(raw, 3, height, width, path="fused")
    expected = attention_params(raw, 3, height, width)
    for name in ("gx", "gy", "delta", "sigma2", "gamma"):
        torch.testing.assert_close(getattr(params, name), getattr(expected, name))
    expected_x, expected_y = filterbank(expected, 3, height, width, path="plain")
    torch.testing.assert_close(Fx, expected_x)
    torch.testing.assert_close(Fy, expected_y)

    def everything(r):
        p, fx, fy = window(r, 3, height, width, path="fused")
        return fx, fy, p.gamma, p.gx, p.delta

    assert torch.autograd.gradcheck(everything, (raw.clone().requires_grad_(True),))


@pytest.mark.parametrize("channels", [1, 3])
def test_read_and_write_backward_match_finite_differences(channels):
    # extract (eq. 27 without gamma) and the write's F_Y^T w F_X (eq. 29) have their backward written out; gradcheck
    # compares it in float64 with central differences, on a non-square image and for several channels.
    g = torch.Generator().manual_seed(5)
    B, N, H, W = 2, 3, 6, 7

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64).requires_grad_(True)

    images, w, Fx, Fy = rand(B, channels, H, W), rand(B, channels, N, N), rand(B, N, W), rand(B, N, H)
    gamma = rand(B) + 0.5
    assert torch.autograd.gradcheck(functools.partial(extract, path="fused"), (images, Fx, Fy))
    assert torch.autograd.gradcheck(functools.partial(write, path="fused"), (w, Fx, Fy, gamma))
