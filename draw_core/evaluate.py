"""Test-set bounds in nats: the single-sample ELBO (eq. 12) and the k-sample importance-weighted bound; for a
classifier (sec. 4.1) its test error on the dataset's fixed test set, beside Table 1's.

python -m draw_core.evaluate CKPT [--samples k] [--limit n] [--dataset mnist] [--data-dir DIR] [--json]

Bad flags and files end with `error: ...` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from draw_core.arguments import torch_seed, whole_number
from draw_core.data import DatasetMissingError, get_dataset
from draw_core.io.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from draw_core.nn.kinds import ModelKind, get_kind
from draw_core.present.attention_at_work import TABLE_1
from draw_core.training.evaluation import evaluate
from draw_core.training.objectives import objective_for

MAX_SAMPLES = 5000  # importance samples k: Burda et al. (2016) report k up to 5,000


def check_dataset(kind: ModelKind, config, dataset: str) -> None:
    """A ValueError unless a model of `kind` and `config` can be measured on `dataset`: a generator needs a dataset
    with a likelihood, a classifier a labelled one, and both its image shape."""
    spec = get_dataset(dataset)
    if kind.classifies and spec.task != "classify":
        raise ValueError(
            f"{dataset} has no labels to score a '{kind.name}' classifier on: pick a classification dataset"
        )
    if not kind.classifies and spec.likelihood is None:
        raise ValueError(
            f"{dataset} is a classification dataset: a '{kind.name}' generator's bound needs generator data (mnist)"
        )
    shape = (config.channels, config.height, config.width)
    if tuple(spec.shape) != shape:
        raise ValueError(
            f"{dataset} holds {'x'.join(map(str, spec.shape))} images; the model takes {'x'.join(map(str, shape))}"
        )


def report_error(args: argparse.Namespace, ckpt: Checkpoint, dataset: str, test_set) -> int:
    """Print a classifier's test error, measured as its training objective measures it (RAM at its policy's mean)."""
    kind, glimpses = get_kind(ckpt.kind), ckpt.config.glimpses
    figure = objective_for(kind.name).test(ckpt.model, test_set, seed=args.seed, should_stop=None)
    paper = TABLE_1.get((kind.name, glimpses))
    if args.json:
        report = {"checkpoint": args.checkpoint, "dataset": dataset, "kind": kind.name, "glimpses": glimpses}
        print(json.dumps({**report, "n": figure.n, "test_error": figure.value, "table_1_error": paper}))
        return 0
    print(f"checkpoint      {args.checkpoint}")
    print(f"model           {kind.name}, {glimpses} glimpses: {kind.description}")
    print(f"dataset         {dataset} (fixed test set, {figure.n} images)")
    beside = f"  (Table 1, {glimpses} glimpses: {100 * paper:.2f}%)" if paper is not None else ""
    print(f"test error      {100 * figure.value:.2f}%{beside}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m draw_core.evaluate",
        description="Test-set bound of a generator in nats, or test error of a classifier.",
    )
    parser.add_argument("checkpoint", help="path to a .safetensors checkpoint")
    parser.add_argument(
        "--samples", "-k", type=whole_number(1), default=1, help="importance samples for the IWAE bound (1: ELBO only)"
    )
    parser.add_argument("--limit", type=whole_number(1), default=None, help="evaluate only the first n test digits")
    parser.add_argument("--dataset", default=None, help="dataset name (default: the checkpoint's)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data root: MNIST/raw/, the CIFAR-10 and SVHN folders (default: $DRAW_DATA_DIR or ./data)",
    )
    parser.add_argument("--batch-size", type=whole_number(1), default=500)
    parser.add_argument("--seed", type=torch_seed, default=0, help="seed of the latent samples")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.samples > MAX_SAMPLES:
        parser.error(f"--samples must be at most {MAX_SAMPLES} (Burda et al.'s largest k), got {args.samples}")
    try:
        ckpt = load_checkpoint(args.checkpoint)
        kind = get_kind(ckpt.kind)
        if kind.classifies and args.samples != 1:
            raise ValueError(f"--samples is for a generator's bound; a '{kind.name}' classifier has a test error")
        dataset = args.dataset or ckpt.meta.get("dataset", "mnist")
        check_dataset(kind, ckpt.config, dataset)
        images = get_dataset(dataset).test_set(args.data_dir, args.limit)
    except (CheckpointError, DatasetMissingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if kind.classifies:
        return report_error(args, ckpt, dataset, images)
    from tqdm import tqdm

    spec = get_dataset(dataset)
    autoencoder = ckpt.meta.get("train_config", {}).get("kl_weight") == 0  # z = mu: measured as it was trained
    if autoencoder and args.samples != 1:
        message = "--samples is for a bound; an autoencoder (kl_weight 0) has a reconstruction cost only"
        print(f"error: {message}", file=sys.stderr)
        return 2
    with tqdm(total=len(images), desc="evaluate", unit="img", disable=args.json, file=sys.stderr) as bar:
        result = evaluate(
            ckpt.model,
            images,
            k=args.samples,
            batch_size=args.batch_size,
            seed=args.seed,
            on_progress=lambda done, n: bar.update(done - bar.n),
            sample=not autoencoder,
        )
    copy = spec.copy_description(args.data_dir) if hasattr(spec, "copy_description") else None
    if args.json:
        extra = {"autoencoder": autoencoder, **({"data_copy": copy} if copy else {})}
        print(json.dumps({"checkpoint": args.checkpoint, "dataset": dataset, **extra, **asdict(result)}))
        return 0
    levels = "fixed binarisation" if spec.likelihood == "bernoulli" else "8-bit levels"
    print(f"checkpoint      {args.checkpoint}")
    print(f"dataset         {dataset} (test, {result.n:,} images, {levels})")
    if copy:
        print(f"measured on     {copy}")
    if autoencoder:
        print(f"reconstruction  {result.recon_nats:.2f} nats with z = mu (an autoencoder, kl_weight 0: no bound)")
        return 0
    print(f"ELBO bound      {result.elbo_nats:.2f} nats  (recon {result.recon_nats:.2f} + KL {result.kl_nats:.2f})")
    if result.iwae_nats is not None:
        print(f"IWAE bound k={result.k:<4d}{result.iwae_nats:.2f} nats")
    print(f"bits/dim        {result.bits_per_dim:.4f}")
    print("KL per step     " + " ".join(f"{v:.2f}" for v in result.kl_per_step))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
