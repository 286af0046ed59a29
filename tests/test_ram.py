"""draw_core.nn.ram: the Recurrent Attention Model: shapes, the retina against crop-and-pool and by hand, the
location policy's log-density, which gradient reaches which network, the baseline learning the mean reward."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from draw_core.nn.kinds import get_kind
from draw_core.nn.ram import RAM, RamConfig, RamResult, ram_loss, summed_area_table

SMALL = RamConfig(height=32, width=32, glimpses=3, patch=4, scales=3, glimpse_hidden=16, location_hidden=16,
                  glimpse_size=32, hidden=32)  # fmt: skip


def model_for(cfg: RamConfig, seed: int = 0) -> RAM:
    torch.manual_seed(seed)
    return RAM(cfg)


def images(cfg: RamConfig, B: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(B, cfg.channels, cfg.height, cfg.width, generator=torch.Generator().manual_seed(seed))


def test_shapes_of_the_paper_configuration():
    cfg = RamConfig()  # Table 1: 8 glimpses of 12 x 12 at 4 scales on 100 x 100
    result = model_for(cfg).classify(images(cfg, 3), generator=torch.Generator().manual_seed(0))
    assert isinstance(result, RamResult)
    assert result.logits.shape == (3, 10) and result.step_logits.shape == (8, 3, 10)
    assert torch.equal(result.step_logits[-1], result.logits)
    assert result.locations.shape == result.location_means.shape == (8, 3, 2)
    assert result.log_probs.shape == result.baselines.shape == (8, 3)
    assert result.glimpses.shape == (8, 3, 4, 12, 12)


def test_patch_corners_by_hand():
    model = model_for(RamConfig())  # patches 12, 24, 48, 96 wide on 100 x 100
    centre = model.patch_corners(torch.tensor([0.0, 0.0]))
    # (0, 0) is pixel edge 50 on both axes: each patch starts half its width before it.
    assert centre.tolist() == [[44, 44], [38, 38], [26, 26], [2, 2]]
    # x = -1 is the left edge (column edge 0), y = 0.5 is row edge 75; the row comes first in a corner.
    assert model.patch_corners(torch.tensor([-1.0, 0.5])).tolist() == [[69, -6], [63, -12], [51, -24], [27, -48]]


def test_one_bright_pixel_is_seen_at_every_scale_averaged_over_its_block():
    model = model_for(RamConfig())
    x = torch.zeros(1, 1, 100, 100)
    x[0, 0, 50, 49] = 1.0
    retina = model.retina(summed_area_table(x), torch.zeros(1, 2))  # (1, 4, 12, 12)
    for s in range(4):
        # patch s starts at row 50 - 6 * 2^s, column 50 - 6 * 2^s: the pixel falls in block (6, 5) at every scale
        expected = torch.zeros(12, 12)
        expected[6, 5] = 1 / 4**s
        assert torch.allclose(retina[0, s], expected), s


def retina_by_crop_and_pool(model: RAM, x: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
    """Each patch cut from a zero-padded copy of x at `patch_corners`, then average-pooled, one at a time."""
    cfg = model.cfg
    pad = 2 * cfg.height + 2 * cfg.width  # far more than any patch reaches past the image (locations within +-2)
    padded = F.pad(x, (pad, pad, pad, pad))
    out = []
    for b in range(len(x)):
        scales = []
        for s, (r, c) in enumerate(model.patch_corners(locations[b]).tolist()):
            side = cfg.patch * 2**s
            crop = padded[b : b + 1, :, r + pad : r + pad + side, c + pad : c + pad + side]
            scales.append(F.avg_pool2d(crop, 2**s)[0])  # (C, P, P)
        out.append(torch.cat(scales))
    return torch.stack(out)


@pytest.mark.parametrize("channels", [1, 3])
def test_retina_equals_cropping_a_zero_padded_image_and_average_pooling(channels):
    cfg = dataclasses.replace(SMALL, channels=channels, height=30, width=26, patch=5)
    model = model_for(cfg)
    x = images(cfg, 6)
    locations = torch.tensor([[0.0, 0.0], [0.3, -0.7], [1.0, 1.0], [-1.3, 0.2], [0.9, -1.8], [-2.5, 3.0]])
    retina = model.retina(summed_area_table(x), locations)
    assert retina.shape == (6, 3 * channels, 5, 5)
    assert torch.allclose(retina, retina_by_crop_and_pool(model, x, locations), atol=1e-6)


def test_location_log_prob_is_the_gaussian_policy_density():
    model = model_for(SMALL)
    x = images(SMALL, 5)
    result = model.classify(x, generator=torch.Generator().manual_seed(1))
    std = SMALL.location_std
    normal = torch.distributions.Normal(result.location_means, std)
    assert torch.allclose(result.log_probs, normal.log_prob(result.locations).sum(-1))
    assert not torch.allclose(result.locations, result.location_means), "sample=True draws around the mean"
    mean_only = model.classify(x, sample=False)
    assert torch.equal(mean_only.locations, mean_only.location_means)
    # at the mean, each of the two coordinates has density 1 / (sqrt(2 pi) std)
    by_hand = 2 * (-math.log(std) - 0.5 * math.log(2 * math.pi))
    assert torch.allclose(mean_only.log_probs, torch.full((3, 5), by_hand))


def test_sampling_is_seeded():
    model = model_for(SMALL)
    x = images(SMALL, 4)
    a = model.classify(x, generator=torch.Generator().manual_seed(7))
    b = model.classify(x, generator=torch.Generator().manual_seed(7))
    c = model.classify(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.locations, b.locations) and not torch.equal(a.locations, c.locations)


def grads(module: torch.nn.Module) -> list:
    return [p.grad for p in module.parameters()]


def test_cross_entropy_never_reaches_the_location_network_through_the_sampled_locations():
    model = model_for(SMALL)
    result = model.classify(images(SMALL, 8), generator=torch.Generator().manual_seed(0))
    assert not result.locations.requires_grad
    ram_loss(result, torch.randint(10, (8,))).cross_entropy.backward()
    assert grads(model.location) == [None, None], "the locations are detached: no pathwise gradient"
    assert grads(model.baseline) == [None, None]
    assert all(g is not None for g in grads(model.what) + grads(model.core) + grads(model.output))


def test_reinforce_gradient_of_a_single_glimpse_by_hand():
    """With one glimpse, l ~ N(tanh(b), std^2) from h_0 = 0, and the REINFORCE term -(1/B) sum log pi(l) (R - b_1)
    has d/db_k = -(1/B) sum (R - b_1) (l_k - m_k) / std^2 (1 - m_k^2), m = tanh(b) (score function of a Gaussian)."""
    cfg = dataclasses.replace(SMALL, glimpses=1)
    model = model_for(cfg)
    result = model.classify(images(cfg, 16), generator=torch.Generator().manual_seed(2))
    labels = result.logits.argmax(-1).clone()
    labels[:6] = (labels[:6] + 1) % 10  # 10 right answers, 6 wrong
    ram_loss(result, labels).reinforce.backward()
    reward = (torch.arange(16) >= 6).float()
    advantage = (reward - result.baselines[0]).detach()  # (B,)
    m, l = result.location_means[0].detach(), result.locations[0]  # (B, 2)
    expected = -(advantage[:, None] * (l - m) / cfg.location_std**2 * (1 - m**2)).mean(0)
    assert torch.allclose(model.location.bias.grad, expected, rtol=1e-4, atol=1e-6)
    assert torch.count_nonzero(model.location.weight.grad) == 0, "h_0 = 0 feeds the first mean"
    assert grads(model.baseline) == [None, None], "the advantage is a constant for the policy"


def test_reinforce_with_several_glimpses_trains_the_location_network_only():
    """Mnih et al. sec. 4: the location network is trained by REINFORCE, the rest by the cross-entropy."""
    model = model_for(SMALL)
    result = model.classify(images(SMALL, 8), generator=torch.Generator().manual_seed(0))
    ram_loss(result, torch.randint(10, (8,))).reinforce.backward()
    assert model.location.weight.grad.abs().sum() > 0, "later means read the state the glimpses built"
    others = (model.what, model.where, model.what_out, model.where_out, model.core, model.output, model.baseline)
    assert all(g is None for module in others for g in grads(module))


def test_the_baseline_is_trained_by_its_own_error_only():
    model = model_for(SMALL)
    result = model.classify(images(SMALL, 8), generator=torch.Generator().manual_seed(0))
    ram_loss(result, torch.randint(10, (8,))).baseline.backward()
    assert model.baseline.weight.grad.abs().sum() > 0
    assert all(g is None for g in grads(model.core) + grads(model.location) + grads(model.what))


def test_the_baseline_learns_the_mean_reward():
    """Labels that agree with the model's answer 70% of the time, whatever the image: the best baseline is 0.7."""
    cfg = dataclasses.replace(SMALL, height=16, width=16, glimpses=2, scales=2)
    model = model_for(cfg)
    optimiser = torch.optim.Adam(model.baseline.parameters(), lr=0.03)
    generator = torch.Generator().manual_seed(0)
    for step in range(120):
        result = model.classify(images(cfg, 64, seed=step), generator=generator)
        answer = result.logits.argmax(-1)
        agree = torch.rand(64, generator=generator) < 0.7
        labels = torch.where(agree, answer, (answer + 1) % 10)
        optimiser.zero_grad()
        ram_loss(result, labels).baseline.backward()
        optimiser.step()
    with torch.no_grad():
        baselines = model.classify(images(cfg, 512, seed=999), generator=generator).baselines
    assert abs(baselines.mean().item() - 0.7) < 0.05, baselines.mean().item()


def test_loss_terms_by_hand():
    result = RamResult(
        logits=torch.tensor([[2.0, 0.0], [0.0, 1.0]]),
        step_logits=torch.zeros(1, 2, 2),
        locations=torch.zeros(1, 2, 2),
        location_means=torch.zeros(1, 2, 2),
        log_probs=torch.tensor([[-1.0, -2.0]]),
        baselines=torch.tensor([[0.25, 0.5]]),
        glimpses=torch.zeros(1, 2, 1, 1, 1),
    )
    loss = ram_loss(result, torch.tensor([0, 0]))  # rewards 1 (right) and 0 (wrong)
    ce = (math.log(1 + math.exp(-2)) + math.log(1 + math.e)) / 2
    reinforce = -((-1.0) * (1 - 0.25) + (-2.0) * (0 - 0.5)) / 2
    baseline = ((1 - 0.25) ** 2 + (0 - 0.5) ** 2) / 2
    assert math.isclose(loss.cross_entropy.item(), ce, rel_tol=1e-6)
    assert math.isclose(loss.reinforce.item(), reinforce, rel_tol=1e-6)
    assert math.isclose(loss.baseline.item(), baseline, rel_tol=1e-6)
    assert math.isclose(loss.error.item(), 0.5)
    assert math.isclose(loss.total.item(), ce + reinforce + baseline, rel_tol=1e-6)


def test_loss_terms_by_hand_sum_the_reinforce_term_over_glimpses():
    """Mnih et al. eq. 2: the policy gradient sums log pi(l_t) (R - b_t) over the T glimpses (then averages over the
    batch); the baseline's squared error averages over steps and batch. T = 2 tells a sum from a mean."""
    result = RamResult(
        logits=torch.tensor([[2.0, 0.0], [0.0, 1.0]]),
        step_logits=torch.zeros(2, 2, 2),
        locations=torch.zeros(2, 2, 2),
        location_means=torch.zeros(2, 2, 2),
        log_probs=torch.tensor([[-1.0, -2.0], [-3.0, -0.5]]),  # (T, B)
        baselines=torch.tensor([[0.25, 0.5], [0.75, 0.125]]),
        glimpses=torch.zeros(2, 2, 1, 1, 1),
    )
    loss = ram_loss(result, torch.tensor([0, 0]))  # rewards 1 (right) and 0 (wrong)
    first = (-1.0) * (1 - 0.25) + (-3.0) * (1 - 0.75)  # image 1, both glimpses
    second = (-2.0) * (0 - 0.5) + (-0.5) * (0 - 0.125)  # image 2
    assert math.isclose(loss.reinforce.item(), -(first + second) / 2, rel_tol=1e-6)
    squares = (1 - 0.25) ** 2 + (1 - 0.75) ** 2 + (0 - 0.5) ** 2 + (0 - 0.125) ** 2
    assert math.isclose(loss.baseline.item(), squares / 4, rel_tol=1e-6)


def test_wrong_input_shape_is_refused():
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 32, 32\), got \(2, 1, 28, 28\)"):
        model_for(SMALL).classify(torch.zeros(2, 1, 28, 28))
    with pytest.raises(TypeError, match="expects a RamConfig"):
        RAM(SMALL.to_dict())


def test_config_refuses_bad_values_with_what_was_expected():
    with pytest.raises(ValueError, match=r"location_std=0 is out of range: expected 0.001 <= location_std <= 2.0"):
        RamConfig(location_std=0)
    with pytest.raises(ValueError, match=r"location_std='0.1' must be a number"):
        RamConfig(location_std="0.1")
    with pytest.raises(ValueError, match=r"scales=0 is out of range: expected 1 <= scales <= 8"):
        RamConfig(scales=0)
    with pytest.raises(ValueError, match=r"patch=1.5 must be of type int"):
        RamConfig(patch=1.5)
    with pytest.raises(ValueError, match=r"unknown RamConfig fields \['read_n'\]"):
        RamConfig.from_dict({"read_n": 12})
    assert RamConfig.from_dict(SMALL.to_dict()) == SMALL
    assert RamConfig().widest == 96


def test_registered_as_a_classifying_kind():
    kind = get_kind("ram")
    assert kind.config_class is RamConfig and kind.model_class is RAM
    assert kind.classifies and not kind.generates
    model = kind.model_class(kind.config_class.from_dict(SMALL.to_dict()))
    assert model.classify(torch.zeros(1, 1, 32, 32)).logits.shape == (1, 10)
