"""Test-set bounds in nats: the single-sample ELBO (eq. 12) and the k-sample importance-weighted bound."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from draw_core.nn.elbo import iwae_bound, loss_terms
from draw_core.nn.likelihood import nats_to_bits_per_dim
from draw_core.nn.model import DRAW


@dataclass
class EvalResult:
    n: int  # test digits evaluated
    elbo_nats: float  # mean single-sample negative ELBO (eq. 12), an upper bound on -log p(x)
    recon_nats: float  # mean L^x
    kl_nats: float  # mean L^z
    iwae_nats: float | None  # mean k-sample bound (None when k = 1)
    k: int  # importance samples
    bits_per_dim: float  # elbo_nats / (C H W ln 2), the sub-pixels of one image
    kl_per_step: list[float]  # mean KL of each step, nats


@torch.no_grad()
def evaluate(
    model: DRAW,
    images: torch.Tensor,
    *,
    k: int = 1,
    batch_size: int = 500,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    sample: bool = True,
) -> EvalResult:
    """Bounds on binary `images` (N, C, H, W); the latents are drawn from a generator seeded by `seed`
    (sample=False takes z_t = mu_t: then recon_nats is an autoencoder's reconstruction cost and the ELBO is no bound).

    `should_stop` is checked between batches; when it fires, the result covers the `n` digits done so far.
    """
    generator = torch.Generator().manual_seed(seed)
    device = model.device
    n = len(images)
    if n == 0:
        raise ValueError("no test images to evaluate")
    totals = {"elbo": 0.0, "recon": 0.0, "kl": 0.0, "iwae": 0.0}
    kl_per_step = torch.zeros(model.cfg.T, dtype=torch.float64)
    iwae_batch = max(1, batch_size // k)
    done = 0
    for start in range(0, n, batch_size):
        if done and should_stop is not None and should_stop():
            break
        x = images[start : start + batch_size].to(device)
        terms = loss_terms(model(x, generator=generator, sample=sample), x)
        totals["elbo"] += terms.total.sum().item()
        totals["recon"] += terms.recon.sum().item()
        totals["kl"] += terms.kl.sum().item()
        kl_per_step += terms.kl_per_step.sum(1).double().cpu()
        if k > 1:
            for sub in range(0, len(x), iwae_batch):
                totals["iwae"] += iwae_bound(model, x[sub : sub + iwae_batch], k, generator=generator).sum().item()
        done += len(x)
        if on_progress is not None:
            on_progress(done, n)
    n = done
    elbo = totals["elbo"] / n
    return EvalResult(
        n=n,
        elbo_nats=elbo,
        recon_nats=totals["recon"] / n,
        kl_nats=totals["kl"] / n,
        iwae_nats=totals["iwae"] / n if k > 1 else None,
        k=k,
        bits_per_dim=nats_to_bits_per_dim(elbo, images[0].numel()),
        kl_per_step=(kl_per_step / n).tolist(),
    )


@torch.no_grad()
def classification_error(
    predict: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    should_stop: Callable[[], bool] | None = None,
) -> tuple[int, float]:
    """(images done, fraction misclassified) of `predict` (x -> class scores (B, K)) on labelled images (Table 1).

    `should_stop` is checked between batches; when it fires, the figure covers the images done so far.
    """
    if len(images) == 0:
        raise ValueError("no test images to evaluate")
    wrong = done = 0
    for start in range(0, len(images), batch_size):
        if done and should_stop is not None and should_stop():
            break
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        wrong += (predict(x).argmax(-1) != y).sum().item()
        done += len(x)
    return done, wrong / done
