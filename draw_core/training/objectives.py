"""What a training run minimises and how it is judged on the test set, one objective per model kind.

The Trainer knows nothing about DRAW's ELBO or about classification: it asks the objective of the model's kind
for the loss of a batch (with the numbers a progress report shows) and for the test figure of a fixed test set.
`objective_for(kind_name)` picks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from draw_core.nn.classifier import classification_loss, error_rate
from draw_core.nn.elbo import loss_terms
from draw_core.nn.ram import ram_loss
from draw_core.training.evaluation import classification_error, evaluate


@dataclass
class BatchLoss:
    loss: torch.Tensor  # () the mean loss of the batch, what backward() differentiates
    report: dict[str, float] = field(default_factory=dict)  # per-batch figures for progress events (nats, rates)
    per_step: list[float] = field(default_factory=list)  # a figure per glimpse (DRAW: mean KL of each step)


@dataclass(frozen=True)
class TestFigure:
    name: str  # meta key it is stored under, e.g. 'test_elbo_nats'
    value: float
    n: int  # test images it covers (fewer than asked when a Stop cut it short)


class ElboObjective:
    """The negative ELBO of eq. 12 (sec. 2.1): reconstruction L^x (eq. 9) plus the latents' KL L^z (eq. 11).

    `kl_weight` (beta) scales L^z; beta = 1 is the paper's loss, judged by the test ELBO. beta = 0 is a plain
    autoencoder with DRAW's architecture: z_t = mu_t with no noise and no KL, judged by its reconstruction cost L^x
    (the question "why not a plain autoencoder?": nothing pulls its codes toward the prior it would be sampled from).
    `code_weight` adds lambda * 1/2 sum_t |mu_t|^2 to such an autoencoder: the code penalty of a regularised autoencoder
    (Ghosh et al. 2020, "From Variational to Deterministic Autoencoders", sec. 3). Without it DRAW's deterministic
    encoder-decoder loop grew its codes without bound and diverged; the penalty bounds their size, not their shape,
    so they still need not look like N(0, I).
    """

    lower_is_better = True

    def __init__(self, kl_weight: float = 1.0, code_weight: float = 0.0):
        if code_weight > 0 and kl_weight > 0:
            raise ValueError(f"{code_weight=} applies to a plain autoencoder (kl_weight=0), not {kl_weight=}")
        self.kl_weight = kl_weight
        self.code_weight = code_weight
        self.sample = kl_weight > 0
        self.test_name = "test_elbo_nats" if self.sample else "test_recon_nats"

    def batch_loss(self, network: torch.nn.Module, batch: torch.Tensor) -> BatchLoss:
        result = network(batch, sample=self.sample)
        terms = loss_terms(result, batch)
        loss = terms.recon + self.kl_weight * terms.kl if self.kl_weight != 1 else terms.total  # eq. 12 (beta = 1)
        report = {"recon": terms.recon.detach().mean().item(), "kl": terms.kl.detach().mean().item()}
        if self.code_weight > 0:
            code_size = 0.5 * result.mu.square().sum((0, 2))  # (B,) 1/2 sum_t |mu_t|^2
            loss = loss + self.code_weight * code_size
            report["code"] = code_size.detach().mean().item()
        return BatchLoss(
            loss=loss.mean(),
            report=report,
            per_step=terms.kl_per_step.detach().mean(1).tolist(),
        )

    def test(
        self, model: torch.nn.Module, test_set: torch.Tensor, *, seed: int, should_stop: Callable[[], bool] | None
    ) -> TestFigure:
        result = evaluate(model, test_set, batch_size=100, seed=seed, should_stop=should_stop, sample=self.sample)
        return TestFigure(self.test_name, result.elbo_nats if self.sample else result.recon_nats, result.n)

    def samples(self, model: torch.nn.Module, n: int) -> torch.Tensor | None:
        """(n, C, H, W) fresh samples from the prior, for the progress view."""
        return model.generate(n).canvases[-1].cpu()


class ClassificationObjective:
    """Sec. 4.1: the attention classifier minimises the cross-entropy of its final class scores, by backpropagation
    through the glimpse windows; it is judged by its test error (Table 1)."""

    test_name = "test_error"
    lower_is_better = True

    def batch_loss(self, network: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> BatchLoss:
        x, labels = batch
        logits = network(x).logits
        return BatchLoss(
            loss=classification_loss(logits, labels), report={"error": error_rate(logits.detach(), labels).item()}
        )

    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """(B, K) class scores of a test batch."""
        return model.classify(x).logits

    def test(
        self,
        model: torch.nn.Module,
        test_set: tuple[torch.Tensor, torch.Tensor],
        *,
        seed: int,
        should_stop: Callable[[], bool] | None,
    ) -> TestFigure:
        images, labels = test_set
        n, error = classification_error(
            lambda x: self.predict(model, x), images, labels, device=model.device, should_stop=should_stop
        )
        return TestFigure(self.test_name, error, n)

    def samples(self, model: torch.nn.Module, n: int) -> None:
        return None  # a classifier draws nothing


class RamObjective(ClassificationObjective):
    """RAM (Mnih et al. 2014): cross-entropy for the classifier, REINFORCE with a learned baseline for the sampled
    glimpse locations (draw_core.nn.ram.ram_loss). At test time the policy's mean location is taken (no sampling)."""

    def batch_loss(self, network: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> BatchLoss:
        x, labels = batch
        terms = ram_loss(network(x), labels)
        report = {
            name: getattr(terms, name).detach().item() for name in ("cross_entropy", "reinforce", "baseline", "error")
        }
        return BatchLoss(loss=terms.total, report=report)

    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model.classify(x, sample=False).logits


OBJECTIVES: dict[str, type] = {"draw": ElboObjective, "draw-classifier": ClassificationObjective, "ram": RamObjective}


def objective_for(kind_name: str, kl_weight: float = 1.0, code_weight: float = 0.0):
    """A new objective for models of kind `kind_name` (`kl_weight`: beta of a DRAW generator's loss; `code_weight`:
    a plain autoencoder's code penalty)."""
    if kind_name not in OBJECTIVES:
        raise ValueError(f"no training objective for model kind {kind_name!r}: expected one of {sorted(OBJECTIVES)}")
    if kind_name == "draw":
        return ElboObjective(kl_weight, code_weight)
    if kl_weight != 1.0 or code_weight != 0.0:
        raise ValueError(f"{kl_weight=} and {code_weight=} apply to DRAW generators only, not to kind {kind_name!r}")
    return OBJECTIVES[kind_name]()
