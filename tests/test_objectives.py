"""Objectives: the classifiers' test error counts what argmax gets wrong; RAM is judged on its mean locations."""

import pytest
import torch

from draw_core.data import get_dataset
from draw_core.nn.classifier import ClassifierConfig, DrawClassifier
from draw_core.nn.ram import RAM, RamConfig
from draw_core.training.objectives import objective_for

SMALL_DRAW = ClassifierConfig(glimpses=2, read_n=4, hidden=16)
SMALL_RAM = RamConfig(glimpses=2, patch=4, scales=2, glimpse_hidden=8, location_hidden=8, glimpse_size=16, hidden=16)


@pytest.fixture(scope="module")
def cluttered():
    images, labels = get_dataset("mnist-cluttered").sample()
    return images[:40], labels[:40]


@pytest.mark.parametrize(("kind", "model_class", "cfg"), [("draw-classifier", DrawClassifier, SMALL_DRAW)])
def test_test_error_is_the_fraction_argmax_gets_wrong(cluttered, kind, model_class, cfg):
    torch.manual_seed(0)
    model = model_class(cfg).eval()
    images, labels = cluttered
    figure = objective_for(kind).test(model, (images, labels), seed=0, should_stop=None)
    with torch.no_grad():
        wrong = (model.classify(images).logits.argmax(-1) != labels).float().mean().item()
    assert figure.name == "test_error" and figure.n == 40 and figure.value == pytest.approx(wrong)


def test_ram_is_tested_on_its_policy_mean_and_trains_on_samples(cluttered):
    torch.manual_seed(0)
    model = RAM(SMALL_RAM).eval()
    images, labels = cluttered
    objective = objective_for("ram")
    first = objective.test(model, (images, labels), seed=0, should_stop=None)
    again = objective.test(model, (images, labels), seed=1, should_stop=None)
    assert first == again, "the test figure of RAM does not depend on sampling"
    loss = objective.batch_loss(model.train(), (images[:8], labels[:8]))
    assert {"cross_entropy", "reinforce", "baseline", "error"} == set(loss.report)
    loss.loss.backward()
    assert model.location.weight.grad is not None and model.location.weight.grad.abs().sum() > 0


def test_a_stop_cuts_the_test_short(cluttered):
    model = DrawClassifier(SMALL_DRAW).eval()
    images, labels = cluttered
    figure = objective_for("draw-classifier").test(
        model, (images.repeat(20, 1, 1, 1), labels.repeat(20)), seed=0, should_stop=lambda: True
    )
    assert figure.n == 500  # one evaluation batch, then the Stop is seen


def test_kl_weight_zero_is_a_deterministic_autoencoder():
    from draw_core.config import DrawConfig
    from draw_core.nn.model import DRAW

    torch.manual_seed(0)
    model = DRAW(DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4))
    x = get_dataset("mnist-sample").test_set(limit=8)
    autoencoder = objective_for("draw", kl_weight=0.0)
    first, second = autoencoder.batch_loss(model, x), autoencoder.batch_loss(model, x)
    assert first.loss.item() == second.loss.item(), "z = mu: no noise, the same loss twice"
    assert first.loss.item() == pytest.approx(first.report["recon"]), "no KL in the loss"
    figure = autoencoder.test(model, x, seed=0, should_stop=None)
    assert figure.name == "test_recon_nats" and figure.value == pytest.approx(first.report["recon"], rel=1e-5)
    beta = objective_for("draw", kl_weight=2.0).batch_loss(model, x)
    assert beta.loss.item() == pytest.approx(beta.report["recon"] + 2 * beta.report["kl"], rel=1e-4)
    with pytest.raises(ValueError, match="DRAW generators only"):
        objective_for("ram", kl_weight=0.0)


def test_code_weight_adds_half_the_squared_code_norm_to_a_plain_autoencoder():
    from draw_core.config import DrawConfig, TrainConfig
    from draw_core.nn.model import DRAW

    torch.manual_seed(0)
    model = DRAW(DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4))
    x = get_dataset("mnist-sample").test_set(limit=8)
    plain = objective_for("draw", kl_weight=0.0).batch_loss(model, x)
    penalised = objective_for("draw", kl_weight=0.0, code_weight=0.5).batch_loss(model, x)
    mu = model(x, sample=False).mu.detach()  # (T, B, Z)
    per_image = [sum(float(v) ** 2 for v in mu[:, b].flatten()) / 2 for b in range(x.shape[0])]
    assert penalised.report["code"] == pytest.approx(sum(per_image) / len(per_image), rel=1e-5)
    assert penalised.loss.item() == pytest.approx(plain.loss.item() + 0.5 * penalised.report["code"], rel=1e-5)
    with pytest.raises(ValueError, match="needs kl_weight=0"):
        TrainConfig(kl_weight=1.0, code_weight=0.1)
    with pytest.raises(ValueError, match="plain autoencoder"):
        objective_for("draw", kl_weight=1.0, code_weight=0.1)
    with pytest.raises(ValueError, match="DRAW generators only"):
        objective_for("draw-classifier", code_weight=0.1)
