"""Command line of the one training loop (draw_core.training.trainer).

    python -m draw_core.train --preset mnist --steps N --batch-size B --data-dir DIR --out PATH \
        [--resume | --force] [--device cpu|cuda] [--amp bf16] \
        [--compile [--compile-mode reduce-overhead] [--compile-glimpses K]]
    torchrun --nproc_per_node=N -m draw_core.train ...   # data-parallel (draw_core.training.distributed)

Exit codes: 0 done; 2 a bad flag, checkpoint (--out, --resume, --init-from) or dataset, refused with `error: ...`
(the flags and --out before anything is loaded); 1 a run that failed while training (the loss diverged, or a
data-parallel process was lost).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from draw_core.arguments import check_compile_glimpses, torch_seed, training_minutes, whole_number
from draw_core.config import AMP_MODES, COMPILE_MODES, TrainConfig
from draw_core.data import DatasetMissingError, dataset_names
from draw_core.io.checkpoint import CheckpointError, check_output, remove_stale_temporaries
from draw_core.presets import get_preset, preset_names
from draw_core.training.devices import select_device
from draw_core.training.distributed import DistributedError, is_main_process, train_here
from draw_core.training.objectives import TestFigure
from draw_core.training.trainer import TrainEvent, TrainingDiverged

OVERRIDES = ("T", "read_n", "write_n", "enc_size", "dec_size", "z_size", "glimpses", "hidden")  # int config fields


def describe(figure: TestFigure) -> str:
    """'test ELBO 89.63 nats (1000 test images)' or 'test error 3.36% (10000 test images)'."""
    if figure.name == "test_error":
        return f"test error {100 * figure.value:.2f}% ({figure.n} test images)"
    if figure.name == "test_recon_nats":
        return f"test reconstruction {figure.value:.2f} nats, z = mu ({figure.n} test images)"
    return f"test ELBO {figure.value:.2f} nats ({figure.n} test images)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m draw_core.train", description="Train a DRAW generator or an attention classifier."
    )
    parser.add_argument("--preset", default="mnist", help=f"model preset: {', '.join(preset_names())}")
    parser.add_argument(
        "--dataset", default=None, help=f"one of {', '.join(dataset_names())} (default: the preset's dataset)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data root: MNIST/raw/, the CIFAR-10 and SVHN folders (default: $DRAW_DATA_DIR or ./data)",
    )
    parser.add_argument(
        "--out", required=True, help="checkpoint path (.safetensors), written every --checkpoint-every steps"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from --out if it exists (weights, optimizer, step)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --out with a new run")
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights (same config) with a fresh optimizer and schedule: a fine-tune",
    )
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument(
        "--time-budget",
        type=training_minutes,
        default=None,
        metavar="MINUTES",
        help="stop after this many minutes of training",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=TrainConfig.batch_size,
        help="images per step; under torchrun the global batch, split evenly over the processes",
    )
    parser.add_argument(
        "--lr", type=float, default=TrainConfig.lr, help="peak Adam rate, for the (global) batch as given: not rescaled"
    )
    parser.add_argument(
        "--kl-weight",
        type=float,
        default=TrainConfig.kl_weight,
        help="beta, the weight of the KL term (1: the ELBO; 0: a plain autoencoder, z = mu)",
    )
    parser.add_argument(
        "--code-weight",
        type=float,
        default=TrainConfig.code_weight,
        help="with --kl-weight 0: weight of the code penalty 1/2 sum_t |mu_t|^2 (a regularised autoencoder)",
    )
    parser.add_argument("--grad-clip", type=float, default=TrainConfig.grad_clip)
    parser.add_argument("--seed", type=torch_seed, default=TrainConfig.seed)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--threads", type=whole_number(1), default=None, help="CPU threads for torch")
    parser.add_argument("--eval-every", type=int, default=TrainConfig.eval_every)
    parser.add_argument("--eval-limit", type=int, default=TrainConfig.eval_limit)
    parser.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every)
    parser.add_argument("--amp", choices=AMP_MODES, default=TrainConfig.amp, help="bf16: bfloat16 autocast of the loss")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the forward (DRAW: its glimpse; for CUDA)"
    )
    parser.add_argument(
        "--compile-mode",
        choices=COMPILE_MODES,
        default=TrainConfig.compile_mode,
        help="with --compile: torch.compile's mode",
    )
    parser.add_argument(
        "--compile-glimpses",
        type=int,
        default=TrainConfig.compile_glimpses,
        help="with --compile: glimpses of a DRAW generator unrolled into one compiled call (DRAW.compile_step)",
    )
    for name in OVERRIDES:
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, type=int, default=None, help=f"override the preset's {name}"
        )
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[object, TrainConfig]:
    """Flags that argparse cannot check alone, and then --out, before anything is loaded or made: `parser.error`
    (exit code 2) on the first problem. Returns the model's config (the preset's, with the overrides) and the
    TrainConfig. An existing --out needs --resume or --force, so nothing is overwritten by accident, and its folder
    must be writable now rather than at the first checkpoint."""
    if args.resume and args.force:
        parser.error("--resume continues --out and --force replaces it: give one of them")
    if args.dataset is not None and args.dataset not in dataset_names():
        parser.error(f"unknown dataset {args.dataset!r}: expected one of {dataset_names()}")
    try:
        select_device(args.device)
        preset = get_preset(args.preset)
        model_cfg = preset.build(**{name: getattr(args, name) for name in OVERRIDES})
        train_cfg = TrainConfig(
            dataset=args.dataset or preset.dataset,
            batch_size=args.batch_size,
            steps=args.steps,
            lr=args.lr,
            kl_weight=args.kl_weight,
            code_weight=args.code_weight,
            grad_clip=args.grad_clip,
            seed=args.seed,
            device=args.device,
            eval_every=args.eval_every,
            eval_limit=args.eval_limit,
            checkpoint_every=args.checkpoint_every,
            sample_every=0,
            time_budget_s=args.time_budget * 60 if args.time_budget is not None else None,
            amp=args.amp,
            compile=args.compile,
            compile_mode=args.compile_mode,
            compile_glimpses=args.compile_glimpses,
        )
        if train_cfg.compile and preset.kind == "draw":
            check_compile_glimpses(train_cfg.compile_glimpses, model_cfg.T)
        replacing = check_output(args.out, resume=args.resume, force=args.force)  # the first thing made: its folder
    except ValueError as error:
        parser.error(str(error))
    if replacing and is_main_process():
        print(f"replacing {args.out} (--force): it is overwritten by the new run's first checkpoint", file=sys.stderr)
    for removed in remove_stale_temporaries(Path(args.out).parent):
        print(f"removed {removed}, left by a save that was killed", file=sys.stderr)
    return model_cfg, train_cfg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    model_cfg, train_cfg = check_arguments(parser, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    from tqdm import tqdm

    bar = tqdm(total=train_cfg.steps, desc=args.preset, unit="step", file=sys.stderr, disable=not is_main_process())

    def on_event(event: TrainEvent, _model: torch.nn.Module) -> None:
        bar.update(event.step - bar.n)
        if event.kind == "step":
            figures = {name: f"{value:.3g}" for name, value in event.report.items()}
            bar.set_postfix(loss=f"{event.loss:.3g}", **figures, ips=f"{event.images_per_s:.0f}", lr=f"{event.lr:.1e}")
        elif event.kind == "eval" and event.test is not None:
            bar.write(f"step {event.step}: {describe(event.test)}, epoch {event.epoch:.2f}")

    try:
        done = train_here(
            model_cfg,
            train_cfg,
            args.out,
            data_dir=args.data_dir,
            resume=args.resume,
            init_from=args.init_from,
            on_event=on_event,
        )
    except (TrainingDiverged, DistributedError, CheckpointError, DatasetMissingError, ValueError) as error:
        bar.close()
        print(f"error: {error}", file=sys.stderr)
        return 1 if isinstance(error, (TrainingDiverged, DistributedError)) else 2
    bar.close()
    if not is_main_process():
        return 0  # rank 0 of a data-parallel run reports
    figure = describe(done.test) if done.test is not None else "no test figure"
    print(f"done: {done.step} steps, {done.elapsed_s:.0f} s, {figure} -> {done.checkpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
