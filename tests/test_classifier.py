"""draw_core.nn.classifier: the DRAW attention classifier (sec. 4.1): shapes, the first window by hand, the gradient
through the filterbank against finite differences, a tiny overfit, the config's checks and its model kind."""

import dataclasses
import math

import pytest
import torch

from draw_core.data import load_sample
from draw_core.data.cluttered import make_cluttered
from draw_core.nn.classifier import (
    ClassificationResult,
    ClassifierConfig,
    DrawClassifier,
    classification_loss,
    error_rate,
)
from draw_core.nn.kinds import get_kind

SMALL = ClassifierConfig(height=40, width=40, glimpses=4, read_n=8, hidden=64)


def model_for(cfg: ClassifierConfig, seed: int = 0) -> DrawClassifier:
    torch.manual_seed(seed)
    return DrawClassifier(cfg)


def test_shapes_of_the_paper_configuration():
    cfg = ClassifierConfig()  # Table 3: 8 glimpses, 12 x 12 read, LSTM 256 on 100 x 100
    result = model_for(cfg).classify(torch.rand(3, 1, 100, 100))
    assert isinstance(result, ClassificationResult)
    assert result.logits.shape == (3, 10)
    assert result.step_logits.shape == (8, 3, 10)
    assert torch.equal(result.step_logits[-1], result.logits)
    for name in ("gx", "gy", "delta", "sigma2", "gamma"):
        assert getattr(result.read_attn, name).shape == (8, 3), name
    assert result.glimpses.shape == (8, 3, 1, 12, 12)


def test_colour_images_are_read_through_one_window_per_step():
    """Channel c of the image is (c + 1) times channel 0, so with one window for all channels every glimpse's
    channel c is (c + 1) times its channel 0 (eq. 27 is linear in x); each channel read through its own window
    would break that."""
    cfg = dataclasses.replace(SMALL, channels=3, height=30, width=20)
    grey = torch.rand(2, 1, 30, 20, generator=torch.Generator().manual_seed(0))
    result = model_for(cfg).classify(torch.cat([grey, 2 * grey, 3 * grey], dim=1) / 3)
    assert result.glimpses.shape == (4, 2, 3, 8, 8) and result.logits.shape == (2, 10)
    first = result.glimpses[:, :, :1]  # (T, B, 1, N, N)
    torch.testing.assert_close(result.glimpses, first * torch.tensor([1.0, 2.0, 3.0])[:, None, None])
    assert first.abs().sum() > 0


def test_the_first_window_covers_the_whole_image_with_overlapping_filters():
    result = model_for(ClassifierConfig()).classify(torch.ones(2, 1, 100, 100))
    first = result.read_attn.step(0)
    # eqs 22-24 by hand for a 100 x 100 image and N = 12: centre (A + 1) / 2, stride (100 - 1) / (12 - 1) = 9.
    assert torch.allclose(first.gx, torch.full((2,), 50.5)) and torch.allclose(first.gy, torch.full((2,), 50.5))
    assert torch.allclose(first.delta, torch.full((2,), 9.0))
    assert torch.allclose(first.sigma2, torch.full((2,), 4.5**2))
    assert torch.allclose(first.gamma, torch.ones(2))
    # Normalised filters (eqs 25-26) over a blank-free image of ones read exactly ones: every filter sees the image.
    assert torch.allclose(result.glimpses[0], torch.ones(2, 1, 12, 12), atol=1e-5)


def test_the_glimpse_is_scaled_by_gamma():
    """Eq. 27 multiplies the read by γ: with log γ = log 3 in the first window's bias, an image of ones (which the
    normalised filters of eqs 25-26 read as exactly ones) gives a first glimpse of threes."""
    model = model_for(ClassifierConfig())
    with torch.no_grad():
        model.window_head.bias[4] = math.log(3.0)
    result = model.classify(torch.ones(2, 1, 100, 100))
    assert torch.allclose(result.read_attn.step(0).gamma, torch.full((2,), 3.0))
    assert torch.allclose(result.glimpses[0], torch.full((2, 1, 12, 12), 3.0), atol=1e-4)


def test_the_loss_gradient_reaches_the_window_through_the_filterbank():
    """d loss / d (g~X, g~Y, log sigma^2, log delta~, log gamma) of the first window against central finite
    differences in float64: the first four reach the loss only through the filters of eqs 25-26, the last through
    eq. 27's scale."""
    cfg = dataclasses.replace(SMALL, glimpses=2)
    model = model_for(cfg).double()
    digits, labels = load_sample()
    x, y = make_cluttered(digits, labels, 4, generator=torch.Generator().manual_seed(0), size=40, fragments=4)
    x = x.double()
    model.zero_grad()
    classification_loss(model.classify(x).logits, y).backward()
    bias = model.window_head.bias
    assert (bias.grad[:5].abs() > 1e-8).all()
    eps = 1e-6
    for i in range(5):
        with torch.no_grad():
            bias[i] += eps
            up = classification_loss(model.classify(x).logits, y)
            bias[i] -= 2 * eps
            down = classification_loss(model.classify(x).logits, y)
            bias[i] += eps
        assert math.isclose(bias.grad[i].item(), ((up - down) / (2 * eps)).item(), rel_tol=1e-4, abs_tol=1e-9), i
    assert model.window_head.weight.grad.abs().sum() > 0, "later windows are steered from the LSTM state"


def test_a_tiny_set_of_cluttered_digits_is_learned():
    digits, labels = load_sample()
    x, y = make_cluttered(digits, labels, 32, generator=torch.Generator().manual_seed(0), size=40, fragments=4)
    model = model_for(SMALL)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = error_rate(model.classify(x).logits, y).item()
    for _ in range(80):
        loss = classification_loss(model.classify(x).logits, y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = error_rate(model.classify(x).logits, y).item()
    assert before > 0.5 and after <= 1 / 32, (before, after)


def test_loss_is_the_cross_entropy_of_the_final_scores_and_error_counts_misses():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    labels = torch.tensor([0, 0, 0])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.e) + math.log(1 + math.exp(-2))) / 3
    assert math.isclose(classification_loss(logits, labels).item(), expected, rel_tol=1e-6)
    assert math.isclose(error_rate(logits, labels).item(), 1 / 3, rel_tol=1e-6)


def test_wrong_input_shape_is_refused():
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 40, 40\), got \(2, 1, 28, 28\)"):
        model_for(SMALL).classify(torch.zeros(2, 1, 28, 28))
    with pytest.raises(TypeError, match="expects a ClassifierConfig"):
        DrawClassifier({"height": 100})


def test_config_refuses_bad_values_with_what_was_expected():
    with pytest.raises(ValueError, match=r"read_n=1 is out of range: expected 2 <= read_n <= 100"):
        ClassifierConfig(read_n=1)
    with pytest.raises(ValueError, match=r"glimpses=0 is out of range: expected 1 <= glimpses <= 256"):
        ClassifierConfig(glimpses=0)
    with pytest.raises(ValueError, match=r"hidden='256' must be of type int"):
        ClassifierConfig(hidden="256")
    with pytest.raises(ValueError, match=r"classes=1 is out of range"):
        ClassifierConfig(classes=1)
    with pytest.raises(ValueError, match=r"unknown ClassifierConfig fields \['T'\]"):
        ClassifierConfig.from_dict({"T": 8})
    with pytest.raises(TypeError):
        ClassifierConfig(100, 100)  # keyword-only
    assert ClassifierConfig.from_dict(SMALL.to_dict()) == SMALL


def test_registered_as_a_classifying_kind():
    kind = get_kind("draw-classifier")
    assert kind.config_class is ClassifierConfig and kind.model_class is DrawClassifier
    assert kind.classifies and not kind.generates
    model = kind.model_class(kind.config_class.from_dict(SMALL.to_dict()))
    assert model.classify(torch.zeros(1, 1, 40, 40)).logits.shape == (1, 10)


def test_the_classifier_trains_under_bfloat16_autocast():
    """train --amp bf16 (or the GPU recipe) on mnist-cluttered-draw: the per-step layers run as plain nn.Linear under
    autocast (the summed-gradient layers are float32 work), so the backward gives float32 gradients."""
    model = model_for(dataclasses.replace(SMALL, glimpses=2))
    x, labels = torch.rand(4, 1, 40, 40), torch.tensor([0, 1, 2, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = classification_loss(model.classify(x).logits, labels)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
