"""Turn a training checkpoint into a shipped one: weights only (optionally float16), evaluated, with a model card.

    python tools/export_checkpoint.py artifacts/mnist.safetensors --name mnist --data-dir ../shared/data --k 10 \
        --command "python -m draw_core.train ..."
    python tools/export_checkpoint.py runs/mnist-cluttered-draw.safetensors --name mnist-cluttered-draw \
        --dataset mnist-cluttered --data-dir ../shared/data --command "..."

Classifier checkpoints (kinds that classify) get their test error on the fixed cluttered test set instead of bounds,
beside Table 1's, and the test set's generator in the card.

Writes checkpoints/<name>.safetensors and checkpoints/<name>.json (or into --out-dir); an existing file of the pair
is replaced only with --force, and is refused before anything is measured without it. The bounds in the card are
measured on the exported file itself (after any float16 rounding): the single-sample ELBO and the k-sample IWAE bound
on the full test set of the run's dataset (--dataset: another one, as the GPU recipe's test does), and the ELBO on
the dataset's shipped sample (which the test suite re-checks).

`--notes-from CARD` carries the hand-written notes of an earlier card (NOTE_FIELDS: what the export cannot measure,
such as the CIFAR-10 card's Gaussian yardstick) into the new one, so that re-exporting a model (as the GPU recipe
does) does not lose them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from draw_core.arguments import whole_number
from draw_core.data import TEST_BINARIZATION_SEED, DatasetMissingError, get_dataset
from draw_core.data.cluttered import CLUTTERED_TEST_SEED
from draw_core.io.catalog import shipped_dir
from draw_core.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from draw_core.io.files import check_writable
from draw_core.nn.kinds import get_kind
from draw_core.training.devices import select_device
from draw_core.training.evaluation import evaluate
from draw_core.training.objectives import objective_for
from draw_core.training.trainer import total_train_seconds

PAPER_NATS = {"mnist": 80.97, "mnist-noattn": 87.40}  # Gregor et al. 2015, Table 2
PAPER_ERROR = {"draw-classifier": 0.0336, "ram": 0.0811}  # Table 1, 8 glimpses, 100x100 cluttered MNIST
MAX_BYTES = 8 * 1024 * 1024
# Card fields written by hand, not measured by the export: the preset's name and, on CIFAR-10, the full-covariance
# Gaussian measured by tools/gaussian_baseline.py on the same copy, with the target beside it.
NOTE_FIELDS = ("preset", "gaussian_bits_per_dim", "gaussian_note", "target_bits_per_dim")


def carried_notes(card_path: str | None, dataset: str) -> dict:
    """The NOTE_FIELDS of an earlier card of a model on the same dataset ({} without one)."""
    if card_path is None:
        return {}
    earlier = json.loads(Path(card_path).read_text())
    if not isinstance(earlier, dict):
        raise ValueError(
            f"--notes-from {card_path} is not a model card: expected a JSON object, got {type(earlier).__name__}"
        )
    if earlier.get("dataset") != dataset:
        raise ValueError(
            f"--notes-from {card_path} is a card of a model on {earlier.get('dataset')!r}, not on {dataset!r}: "
            "its notes would describe other data"
        )
    return {key: earlier[key] for key in NOTE_FIELDS if key in earlier}


def generator_figures(shipped, args) -> dict:
    """The bounds of a DRAW generator on its dataset's test set (binarised once for the Bernoulli likelihood, 8-bit
    levels for the logistic one), ELBO and IWAE, and the ELBO on the dataset's shipped sample. An autoencoder
    (trained with kl_weight 0) is measured as it was trained, z = mu: its recon_nats is the figure, its "ELBO" is
    no bound."""
    spec = get_dataset(args.dataset)
    autoencoder = shipped.meta.get("train_config", {}).get("kl_weight") == 0
    k = 1 if autoencoder else args.k
    test = spec.test_set(args.data_dir, args.limit)
    full = evaluate(shipped.model, test, k=k, batch_size=500, sample=not autoencoder)
    sample = evaluate(shipped.model, spec.sample_test_set(args.data_dir), batch_size=500, sample=not autoencoder)
    if spec.likelihood == "bernoulli":
        data = (
            "binarisation",
            (
                "training: a fresh Bernoulli sample of the grey levels for every batch; test: one fixed Bernoulli "
                f"sample of the test images drawn with torch seed {TEST_BINARIZATION_SEED} (draw_core.data.registry)"
            ),
        )
    else:
        coupled = ", colours coupled (PixelCNN++ sec. 2.2)" if shipped.model.coupling is not None else ""
        data = ("data", f"8-bit levels k/255 as they are, discretised logistic likelihood{coupled}")
    copy = {"data_copy": spec.copy_description(args.data_dir)} if hasattr(spec, "copy_description") else {}
    if shipped.model.coupling is not None:  # 'logistic-coupled': the learned a_ij, pairs (G,R), (B,R), (B,G)
        copy["colour_coupling"] = [round(a, 4) for a in torch.tanh(shipped.model.coupling).tolist()]
    return {
        data[0]: data[1],
        **copy,
        "autoencoder": autoencoder,
        "test_n": full.n,
        "test_elbo_nats": None if autoencoder else round(full.elbo_nats, 3),
        "test_recon_nats": round(full.recon_nats, 3),
        "test_kl_nats": None if autoencoder else round(full.kl_nats, 3),  # an autoencoder's sigma head is untrained
        "test_iwae_nats": round(full.iwae_nats, 3) if full.iwae_nats is not None else None,
        "test_iwae_k": k,
        "test_bits_per_dim": None if autoencoder else round(full.bits_per_dim, 5),
        "sample_elbo_nats": None if autoencoder else round(sample.elbo_nats, 3),
        "sample_recon_nats": round(sample.recon_nats, 3),
        "sample_n": sample.n,
        "paper_nats": PAPER_NATS.get(args.name),
    }


def classifier_figures(shipped, args) -> dict:
    """The test error of a classifier on the fixed cluttered test set and on the shipped sample, beside Table 1."""
    objective = objective_for(shipped.kind)
    spec = get_dataset(args.dataset)
    full = objective.test(shipped.model, spec.test_set(args.data_dir, args.limit), seed=0, should_stop=None)
    sample = objective.test(shipped.model, spec.sample(), seed=0, should_stop=None)
    return {
        "test_set": (
            f"{spec.description}: each of the 10,000 MNIST test digits placed once, all draws from one torch "
            f"generator seeded {CLUTTERED_TEST_SEED} (draw_core/data/cluttered.py documents the generator)"
        ),
        "glimpses": shipped.config.glimpses,
        "test_n": full.n,
        "test_error": round(full.value, 5),
        "sample_error": round(sample.value, 5),
        "sample_n": sample.n,
        "paper_error": PAPER_ERROR.get(shipped.kind),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="training checkpoint")
    parser.add_argument("--name", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--dataset", default=None, help="whose test set the card's figures are measured on (default: the run's own)"
    )
    parser.add_argument("--device", default="cpu", help="where the bounds are computed (cpu, cuda)")
    parser.add_argument("--k", type=whole_number(1), default=10, help="importance samples of the IWAE bound")
    parser.add_argument("--limit", type=whole_number(1), default=None, help="test digits (default: all 10,000)")
    parser.add_argument("--command", required=True, help="the exact training command, for the card")
    parser.add_argument("--threads", type=whole_number(1), default=None)
    parser.add_argument("--out-dir", default=None, help="where to write (default: the shipped checkpoints' folder)")
    parser.add_argument("--force", action="store_true", help="replace an existing <name>.safetensors or <name>.json")
    parser.add_argument(
        "--hardware-note",
        default=None,
        help="what the run shared the machine with, for the card (written after the run's own hardware, which its "
        "meta already names: do not repeat it)",
    )
    parser.add_argument("--notes-from", default=None, help="an earlier card whose NOTE_FIELDS the new card keeps")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.name in ("", ".", "..") or Path(args.name).name != args.name:
        parser.error(f"--name must be a plain file name (no folders), got {args.name!r}")
    out = Path(args.out_dir or shipped_dir()) / f"{args.name}.safetensors"
    try:  # before anything is measured: a shipped file is replaced only when asked
        for path in (out, out.with_suffix(".json")):
            check_writable(path, replace=args.force)
    except ValueError as error:
        parser.error(str(error))
    try:
        select_device(args.device)
    except ValueError as error:
        parser.error(f"argument --device: {error}")
    try:
        card = export(args, parser, out)
    except (CheckpointError, DatasetMissingError, ValueError, OSError) as error:  # OSError: --notes-from, --out-dir
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(card, indent=2))


def export(args: argparse.Namespace, parser: argparse.ArgumentParser, out: Path) -> dict:
    """Write the shipped file at `out` and its card beside it; both replace the old ones only once the new file is
    measured, so a failure (a dataset that is not here, a bad flag found late) leaves the shipped pair as it was."""
    source = load_checkpoint(args.source)
    args.dataset = args.dataset or source.meta.get("dataset") or source.meta.get("train_config", {}).get("dataset")
    if args.dataset is None:
        parser.error(f"{args.source} names no dataset in its meta: pass --dataset")
    notes = carried_notes(args.notes_from, args.dataset)
    get_dataset(args.dataset)  # an unknown name ends here, before anything is written
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as work:
        card = measured_card(args, out=Path(work) / out.name, source=source, notes=notes)
        os.replace(Path(work) / out.name, out)
        os.replace(Path(work) / out.with_suffix(".json").name, out.with_suffix(".json"))
    return card


def measured_card(args: argparse.Namespace, *, out: Path, source, notes: dict) -> dict:
    """Save `source`'s weights at `out` (float16 if float32 is over MAX_BYTES), measure them, and write the card
    (with the carried `notes`) beside them; returns the card."""
    meta = {k: v for k, v in source.meta.items() if k not in ("created",)}
    save_checkpoint(source.model, out, meta=meta)
    dtype = "float32"
    if out.stat().st_size > MAX_BYTES:
        save_checkpoint(source.model, out, meta=meta, dtype=torch.float16)
        dtype = "float16"
    shipped = load_checkpoint(out, map_location=args.device)
    started = time.perf_counter()
    measured = (classifier_figures if get_kind(shipped.kind).classifies else generator_figures)(shipped, args)
    train_config = shipped.meta.get("train_config", {})
    card = {
        "name": args.name,
        "kind": shipped.kind,
        "config": shipped.config.to_dict(),
        "dataset": args.dataset,
        "steps": shipped.meta["step"],
        "epochs": shipped.meta.get("epochs"),
        "batch_size": train_config.get("batch_size"),
        "train_seconds": shipped.meta.get("train_seconds"),
        "total_train_seconds": round(total_train_seconds(shipped.meta), 1),  # earlier runs' included
        "hardware": ", ".join(filter(None, [shipped.meta.get("hardware"), args.hardware_note])),
        "device": shipped.meta.get("device"),
        "world_size": shipped.meta.get("world_size", 1),  # processes of a data-parallel run (torchrun)
        "per_rank_batch": shipped.meta.get("per_rank_batch", train_config.get("batch_size")),
        "backend": shipped.meta.get("backend"),  # gloo or nccl; None for one process
        "continued_from": shipped.meta.get("continued_from"),  # the earlier training a run continued, if any
        "init_from": shipped.meta.get("init_from"),  # the checkpoint a fine-tune (train --init-from) started from
        **({"averaged_from": shipped.meta["averaged_from"]} if "averaged_from" in shipped.meta else {}),  # a soup's
        **measured,
        "weights_dtype": dtype,
        "command": args.command,
        "export_command": (
            f"python tools/export_checkpoint.py {args.source} --name {args.name} "
            + (f"--data-dir {args.data_dir} " if args.data_dir else "")
            + f"--dataset {args.dataset} --device {args.device} --k {args.k}"
            + (f" --limit {args.limit}" if args.limit else "")
            + (f" --notes-from {args.notes_from}" if args.notes_from else "")
        ),
        "eval_seconds": round(time.perf_counter() - started, 1),
        "created": shipped.meta.get("created"),
        **notes,
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


if __name__ == "__main__":
    main()
