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
import math
import sys
from pathlib import Path

import torch

from draw_core.io.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from draw_core.io.files import check_writable
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


def start_of(path: Path, checkpoint: Checkpoint) -> tuple[tuple[Path, int | None], float] | None:
    """The file `checkpoint` (read from `path`) started from, as (its resolved path, step), and the training seconds
    behind that file, from the meta's `init_from`; None when it started afresh. A ValueError says which part of the
    record is not of the type the trainer writes (a hand-edited or hostile meta)."""
    start = checkpoint.meta.get("init_from")
    if start is None:
        return None
    where = f"{path} has an invalid meta: init_from"
    if not isinstance(start, dict):
        raise ValueError(f"{where}={start!r} must be an object (checkpoint, step, total_train_seconds) or null")
    file, step, seconds = start.get("checkpoint"), start.get("step"), start.get("total_train_seconds", 0.0)
    if not isinstance(file, str) or not file:
        raise ValueError(f"{where}'s checkpoint={file!r} must be a file path")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
        raise ValueError(f"{where}'s step={step!r} must be a whole number")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
        raise ValueError(f"{where}'s total_train_seconds={seconds!r} must be a finite number of seconds")
    return (Path(file).resolve(), step), float(seconds)


def soup_meta(paths: list[Path], checkpoints: list[Checkpoint]) -> dict:
    """The meta of the mean of `checkpoints` (read from `paths`): see the module docstring. A ValueError when an
    input's `init_from` is not a record the trainer writes."""
    # a file as (path, step): a shipped file is replaced by its fine-tunes, so one path can name several starts
    keys = [(path.resolve(), checkpoint.meta.get("step")) for path, checkpoint in zip(paths, checkpoints, strict=True)]
    begun = [start_of(path, checkpoint) for path, checkpoint in zip(paths, checkpoints, strict=True)]
    every_start = {start[0] for start in begun if start is not None}
    starts = {  # what the inputs started from -> the seconds behind it; a start's own start is in those already
        start[0]: start[1] for key, start in zip(keys, begun, strict=True) if key not in every_start and start
    }
    own, total = 0.0, sum(starts.values())
    for key, checkpoint, start in zip(keys, checkpoints, begun, strict=True):
        if key in starts:
            continue  # a start among the inputs: its training is counted once, above
        seconds = float(checkpoint.meta.get("train_seconds") or 0.0)
        own += seconds
        total += seconds if start else checkpoint_total_seconds(key[0], checkpoint.meta)
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
    try:  # writable now, not after every input is loaded
        check_writable(args.out, replace=False, to_replace="choose another path (nothing is overwritten)")
    except ValueError as error:
        parser.error(f"--out: {error}")
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
    try:
        meta = soup_meta(args.checkpoints, checkpoints)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    save_checkpoint(average(checkpoints), args.out, meta=meta)
    print(f"wrote {args.out}: the mean of {len(checkpoints)} checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
