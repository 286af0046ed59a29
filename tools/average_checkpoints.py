"""Average the weights of checkpoints of one model (a uniform "model soup", Wortsman et al. 2022): fine-tunes that
started from the same file sit in one basin of the loss, and the mean of their weights often scores better than
each of them; the file they started from may be one of the inputs (it pulls the mean towards the start).

    python tools/average_checkpoints.py runs/ft-a.safetensors runs/ft-b.safetensors \
        checkpoints/mnist-cluttered-draw.safetensors --out runs/soup.safetensors

The inputs must be of one model kind with one config. The output's meta keeps the first fine-tune's (its training
config, dataset, init_from) and adds `averaged_from` (each input's path, step and training seconds); its
`train_seconds` are the fine-tunes' own seconds together and `total_train_seconds` adds, once, the training behind
the file they started from, so the card made by tools/export_checkpoint.py counts every run that went into the mean.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from draw_core.io.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from draw_core.training.trainer import checkpoint_total_seconds


def average(checkpoints: list[Checkpoint]) -> torch.nn.Module:
    """The first checkpoint's model holding the elementwise mean of all their weights (computed in float64)."""
    states = [checkpoint.model.state_dict() for checkpoint in checkpoints]
    mean = {
        key: (sum(state[key].double() for state in states) / len(states)).to(states[0][key].dtype) for key in states[0]
    }
    model = checkpoints[0].model
    model.load_state_dict(mean)
    return model


def soup_meta(paths: list[Path], checkpoints: list[Checkpoint]) -> dict:
    """The meta of the mean of `checkpoints` (read from `paths`): see the module docstring."""

    # a file as (path, step): a shipped file is replaced by its fine-tunes, so one path can name several starts
    def start_of(checkpoint: Checkpoint) -> tuple[Path, object] | None:
        start = checkpoint.meta.get("init_from")
        if isinstance(start, dict) and start.get("checkpoint"):
            return Path(start["checkpoint"]).resolve(), start.get("step")
        return None

    keys = [(path.resolve(), checkpoint.meta.get("step")) for path, checkpoint in zip(paths, checkpoints, strict=True)]
    every_start = {start_of(checkpoint) for checkpoint in checkpoints} - {None}
    starts = {  # what the inputs started from -> the seconds behind it; a start's own start is in those already
        start_of(checkpoint): float(checkpoint.meta["init_from"].get("total_train_seconds") or 0.0)
        for key, checkpoint in zip(keys, checkpoints, strict=True)
        if key not in every_start and start_of(checkpoint) is not None
    }
    own, total = 0.0, sum(starts.values())
    for key, checkpoint in zip(keys, checkpoints, strict=True):
        if key in starts:
            continue  # a start among the inputs: its training is counted once, above
        seconds = float(checkpoint.meta.get("train_seconds") or 0.0)
        own += seconds
        total += seconds if start_of(checkpoint) else checkpoint_total_seconds(key[0], checkpoint.meta)
    first = next(c for key, c in zip(keys, checkpoints, strict=True) if key not in starts)
    dropped = ("created", "finished", "total_train_seconds")  # set anew: when the mean was made, what it cost
    return {
        **{key: value for key, value in first.meta.items() if key not in dropped},
        "averaged_from": [
            {"checkpoint": str(path), "step": c.meta.get("step"), "train_seconds": c.meta.get("train_seconds")}
            for path, c in zip(paths, checkpoints, strict=True)
        ],
        "train_seconds": round(own, 1),
        "total_train_seconds": round(total, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="two or more checkpoints of one model")
    parser.add_argument("--out", type=Path, required=True, help="where to write the averaged checkpoint")
    args = parser.parse_args(argv)
    if len(args.checkpoints) < 2:
        parser.error(f"averaging needs at least 2 checkpoints, got {len(args.checkpoints)}")
    if args.out.exists():
        parser.error(f"--out {args.out} exists: choose another path (nothing is overwritten)")
    try:
        checkpoints = [load_checkpoint(path) for path in args.checkpoints]
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    first = checkpoints[0]
    for path, checkpoint in zip(args.checkpoints[1:], checkpoints[1:], strict=True):
        if checkpoint.kind != first.kind or checkpoint.config.to_dict() != first.config.to_dict():
            print(
                f"error: {path} is a {checkpoint.kind} model of config {checkpoint.config.to_dict()}, "
                f"{args.checkpoints[0]} a {first.kind} of {first.config.to_dict()}: only one model's weights average",
                file=sys.stderr,
            )
            return 2
    save_checkpoint(average(checkpoints), args.out, meta=soup_meta(args.checkpoints, checkpoints))
    print(f"wrote {args.out}: the mean of {len(checkpoints)} checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
