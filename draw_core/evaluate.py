"""Test-set bounds in nats: the single-sample ELBO (eq. 12) and the k-sample importance-weighted bound.

python -m draw_core.evaluate CKPT [--samples k] [--limit n] [--dataset mnist] [--data-dir DIR] [--json]

Bad flags and files end with `error: ...` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from draw_core.data import DatasetMissingError, get_dataset
from draw_core.io.checkpoint import CheckpointError, load_checkpoint
from draw_core.nn.kinds import get_kind
from draw_core.training.evaluation import evaluate


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
    for flag, value in (("--samples", args.samples), ("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    try:
        ckpt = load_checkpoint(args.checkpoint)
        if not get_kind(ckpt.kind).generates:
            raise CheckpointError(
                f"{args.checkpoint} holds a '{ckpt.kind}' model; this command measures the ELBO of generators "
                "(kind 'draw')"
            )
        dataset = args.dataset or ckpt.meta.get("dataset", "mnist")
        images = get_dataset(dataset).test_set(args.data_dir, args.limit)
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
