"""Test-set bounds in nats: the single-sample ELBO (eq. 12) and the k-sample importance-weighted bound.

python -m draw_core.evaluate CKPT [--samples k] [--limit n] [--dataset mnist] [--data-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from .checkpoint import CheckpointError, load_checkpoint
from .data import DatasetMissingError, fixed_test_set
from .elbo import iwae_bound, loss_terms
from .model import DRAW


@dataclass
class EvalResult:
    n: int  # test digits evaluated
    elbo_nats: float  # mean single-sample negative ELBO (eq. 12), an upper bound on -log p(x)
    recon_nats: float  # mean L^x
    kl_nats: float  # mean L^z
    iwae_nats: float | None  # mean k-sample bound (None when k = 1)
    k: int  # importance samples
    bits_per_dim: float  # elbo_nats / (pixels * ln 2)
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
) -> EvalResult:
    """Bounds on binary `images` (N, C, H, W); the latents are drawn from a generator seeded by `seed`.

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
        terms = loss_terms(model(x, generator=generator), x)
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
    pixels = images[0].numel()
    elbo = totals["elbo"] / n
    return EvalResult(
        n=n,
        elbo_nats=elbo,
        recon_nats=totals["recon"] / n,
        kl_nats=totals["kl"] / n,
        iwae_nats=totals["iwae"] / n if k > 1 else None,
        k=k,
        bits_per_dim=elbo / (pixels * math.log(2)),
        kl_per_step=(kl_per_step / n).tolist(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m draw_core.evaluate", description="Test-set bound of a checkpoint in nats."
    )
    parser.add_argument("checkpoint", help="path to a .safetensors checkpoint")
    parser.add_argument(
        "--samples", "-k", type=int, default=1, help="importance samples for the IWAE bound (1: ELBO only)"
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first n test digits")
    parser.add_argument("--dataset", default=None, help="dataset name (default: the checkpoint's)")
    parser.add_argument(
        "--data-dir", default=None, help="folder holding MNIST/raw/ (default: $DRAW_DATA_DIR or ./data)"
    )
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent samples")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        dataset = args.dataset or ckpt.meta.get("dataset", "mnist")
        images = fixed_test_set(dataset, args.data_dir, args.limit)
    except (CheckpointError, DatasetMissingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    with tqdm(total=len(images), desc="evaluate", unit="img", disable=args.json, file=sys.stderr) as bar:
        result = evaluate(
            ckpt.model,
            images,
            k=args.samples,
            batch_size=args.batch_size,
            seed=args.seed,
            on_progress=lambda done, n: bar.update(done - bar.n),
        )
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "dataset": dataset, **asdict(result)}))
        return 0
    print(f"checkpoint      {args.checkpoint}")
    print(f"dataset         {dataset} (test, {result.n} digits, fixed binarisation)")
    print(f"ELBO bound      {result.elbo_nats:.2f} nats  (recon {result.recon_nats:.2f} + KL {result.kl_nats:.2f})")
    if result.iwae_nats is not None:
        print(f"IWAE bound k={result.k:<4d}{result.iwae_nats:.2f} nats")
    print(f"bits/dim        {result.bits_per_dim:.4f}")
    print("KL per step     " + " ".join(f"{v:.2f}" for v in result.kl_per_step))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
