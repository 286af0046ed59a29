"""draw_core.latent: seeded prior draws, KL per dimension, interpolation, walks, z as JSON."""

import math

import pytest
import torch

from draw_core.config import DrawConfig
from draw_core.nn.elbo import loss_terms
from draw_core.nn.model import DRAW
from draw_core.present import latent


def test_prior_z_is_seeded_and_is_what_generate_would_draw():
    a, b = latent.prior_z(3, 4, 5, n=2), latent.prior_z(3, 4, 5, n=2)
    assert a.shape == (4, 2, 5) and torch.equal(a, b)
    assert not torch.equal(a, latent.prior_z(4, 4, 5, n=2))
    model = DRAW(DrawConfig(T=4, enc_size=8, dec_size=8, z_size=5)).eval()
    trace = model.generate(2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(trace.z, a)


def test_kl_per_dimension_sums_to_the_loss_kl():
    torch.manual_seed(0)
    model = DRAW(DrawConfig(T=3, enc_size=8, dec_size=8, z_size=4)).eval()
    x = torch.rand(6, 1, 28, 28).bernoulli()
    kl = latent.kl_per_dimension(model, x, torch.Generator().manual_seed(1))
    assert kl.shape == (3, 4) and (kl >= 0).all()
    with torch.no_grad():
        terms = loss_terms(model(x, generator=torch.Generator().manual_seed(1)), x)
    assert kl.sum(1) == pytest.approx(terms.kl_per_step.mean(1), rel=1e-5)


def test_kl_per_dimension_keeps_each_dimension_its_own_nats():
    """A stand-in posterior with mu_t,b,d = d and sigma = 1: eq. 11 per dimension is d^2 / 2 whatever the step and
    image, so a KL spread evenly over the dimensions (or summed over them) would show."""
    T, B, Z = 2, 3, 4
    mu = torch.arange(Z, dtype=torch.float32).expand(T, B, Z)

    class StandIn:
        device = torch.device("cpu")

        def __call__(self, images, generator=None):
            return type("Result", (), {"mu": mu, "logvar": torch.zeros(T, B, Z)})()

    kl = latent.kl_per_dimension(StandIn(), torch.zeros(B, 1, 4, 4))
    assert kl.tolist() == [[0.0, 0.5, 2.0, 4.5]] * T


def test_dims_by_kl_orders_by_step_or_total():
    kl = torch.tensor([[0.1, 3.0, 2.0], [5.0, 0.0, 1.0]])
    assert latent.dims_by_kl(kl, step=0) == [1, 2, 0]
    assert latent.dims_by_kl(kl, step=1) == [0, 2, 1]
    assert latent.dims_by_kl(kl) == [0, 1, 2]  # totals 5.1, 3.0, 3.0: ties keep index order


def test_interpolation_hits_both_ends_and_keeps_the_norm_on_the_great_circle():
    z_a = torch.zeros(2, 2)
    z_a[0, 0] = 2.0
    z_b = torch.zeros(2, 2)
    z_b[1, 1] = 2.0  # orthogonal to z_a, same norm
    path = latent.interpolate(z_a, z_b, 3)
    assert path.shape == (3, 2, 2)
    assert torch.equal(path[0], z_a) and torch.allclose(path[-1], z_b, atol=1e-6)
    # the midpoint of a quarter circle of radius 2: (2 cos 45deg, 2 sin 45deg)
    assert path[1, 0, 0] == pytest.approx(math.sqrt(2)) and path[1, 1, 1] == pytest.approx(math.sqrt(2))
    same = latent.interpolate(z_b, z_b, 4)
    assert torch.allclose(same, z_b.expand(4, 2, 2))
    with pytest.raises(ValueError, match="at least 2"):
        latent.interpolate(z_a, z_b, 1)


def test_walk_grid_sets_two_dimensions_row_and_column():
    z = torch.arange(12, dtype=torch.float32).view(3, 4)  # T = 3, Z = 4
    values = torch.tensor([-1.0, 0.0, 1.0])
    grid = latent.walk_grid(z, (1, 3), values, step=2)
    assert grid.shape == (9, 3, 4)
    assert grid[5, 2, 1] == 0.0 and grid[5, 2, 3] == 1.0  # row 1, column 2
    assert torch.equal(grid[5, :2], z[:2])  # other steps untouched
    assert torch.equal(grid[5, 2, [0, 2]], z[2, [0, 2]])  # other dimensions untouched
    every = latent.walk_grid(z, (0, 2), values)
    assert (every[6, :, 0] == 1.0).all() and (every[6, :, 2] == -1.0).all()
    with pytest.raises(ValueError, match="out of range"):
        latent.walk_grid(z, (0, 4), values)


def test_z_json_round_trip_and_broadcast():
    z = torch.tensor([[0.5, -1.25], [2.0, 0.0], [1.0, 1.0]])
    assert torch.equal(latent.z_from_json(latent.z_to_json(z), 3, 2), z)
    assert torch.equal(latent.z_from_json("[1, 2]", 3, 2), torch.tensor([[1.0, 2.0]] * 3))


@pytest.mark.parametrize(
    "text,message",
    [
        ("[1, 2", "not valid JSON"),
        ('{"z": 1}', "must be"),
        ("[[1, 2], [3]]", "must be"),
        ("[1, 2, 3]", "shape"),
        ("[[1, 2], [3, 4]]", "shape"),
        ("[NaN, 1]", "NaN"),
        ("[true, 1]", "numbers only"),
        ('["1", 2]', "numbers only"),
        ("[1" + "0" * 400 + ", 1]", "must be"),  # an integer no float holds: an error line, not a traceback
        ("[9, 1]", r"a value of 9 in size: expected values within ±4"),
    ],
)
def test_bad_z_json_is_refused_with_a_reason(text, message):
    with pytest.raises(ValueError, match=message):
        latent.z_from_json(text, 3, 2, limit=4.0)


def test_busiest_step_is_the_step_whose_dimensions_spend_the_most_in_total():
    kl = torch.tensor([[0.9, 0.0, 0.0], [0.4, 0.4, 0.4], [0.1, 0.1, 0.1]])  # (T=3, Z=3): step 1 holds the biggest
    assert latent.busiest_step(kl) == 1  # dimension, but step 2 spends 1.2 nats against 0.9


class CountingModel:
    """A DRAW that counts how often its decoder runs."""

    def __init__(self, model: DRAW):
        self.model, self.calls = model, 0

    def generate(self, n, z):
        self.calls += 1
        return self.model.generate(n, z=z)


def test_recent_decodes_decode_each_z_once_and_forget_the_oldest():
    model = DRAW(DrawConfig(T=3, enc_size=8, dec_size=8, z_size=2)).eval()
    counting = CountingModel(model)
    decodes = latent.RecentDecodes(capacity=2)
    z = [torch.full((3, 2), float(v)).numpy() for v in range(3)]  # three different (T, Z) latents
    first = decodes.decode(counting, "m", z[0])
    assert torch.equal(first.canvases, model.generate(1, z=torch.from_numpy(z[0])[:, None]).canvases)
    assert first.canvases.shape == (3, 1, 1, 28, 28)
    assert decodes.decode(counting, "m", z[0].copy()) is first and counting.calls == 1  # same values: no decode
    decodes.decode(counting, "other model", z[0])  # another model's drawing of the same z is its own
    assert counting.calls == 2 and len(decodes) == 2
    decodes.decode(counting, "m", z[0])  # used again: now "other model" is the least recently used
    decodes.decode(counting, "m", z[1])  # a third entry pushes that out
    assert counting.calls == 3 and len(decodes) == 2
    decodes.decode(counting, "m", z[0])
    assert counting.calls == 3
    decodes.decode(counting, "other model", z[0])
    assert counting.calls == 4
    with pytest.raises(ValueError, match="capacity"):
        latent.RecentDecodes(capacity=0)
