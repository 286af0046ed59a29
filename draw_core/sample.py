"""Samples from a checkpoint: an animated GIF of the generation (write window drawn on every frame) and a PNG grid.

python -m draw_core.sample CKPT --n 16 --gif out.gif --png grid.png [--seed S] [--scale 4] [--frame-ms 100] [--force]

Bad flags and files end with `error: ...` on stderr and exit code 2, never a traceback. An existing --gif or --png is
replaced only with --force.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

from draw_core.arguments import torch_seed, whole_number
from draw_core.io.checkpoint import CheckpointError, load_checkpoint
from draw_core.io.files import check_writable, write_atomically
from draw_core.nn.attention import window_geometry
from draw_core.nn.kinds import get_kind
from draw_core.present.render import generation_grid_gif, grid_png

MAX_FRAME_MS = 60_000  # GIF frames store centiseconds in 16 bits (655,350 ms at most); a minute is plenty
MAX_GIF_SCALED_IMAGES = 16 * 16**2  # n x scale^2 of a GIF: 16 samples at 16x hold ~0.6 GB of RGB frames for mnist
MAX_SCALE = 32  # upscale factor limit: 1024 samples of 28 x 28 at 32x already make an 800-megapixel grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m draw_core.sample", description="Generate samples from a checkpoint."
    )
    parser.add_argument("checkpoint", help="path to a .safetensors checkpoint")
    parser.add_argument("--n", type=whole_number(1, 1024), default=16, help="number of samples")
    parser.add_argument("--gif", default=None, help="write an animated GIF of the generation here")
    parser.add_argument("--png", default=None, help="write a PNG grid of the final samples here")
    parser.add_argument("--force", action="store_true", help="replace an existing --gif or --png")
    parser.add_argument("--seed", type=torch_seed, default=0, help="seed of the latents drawn from the prior")
    parser.add_argument(
        "--nrow", type=whole_number(1), default=None, help="samples per row (default: a square-ish grid)"
    )
    parser.add_argument("--scale", type=whole_number(1, MAX_SCALE), default=4, help="upscale factor of every pixel")
    parser.add_argument(
        "--frame-ms", type=whole_number(1, MAX_FRAME_MS), default=100, help="milliseconds per GIF frame"
    )
    args = parser.parse_args(argv)
    if args.gif is None and args.png is None:
        parser.error("nothing to write: give --gif and/or --png")
    try:  # before the model is loaded: a picture is replaced only when asked, and its folder must take it
        for path in filter(None, (args.gif, args.png)):
            check_writable(path, replace=args.force)
    except ValueError as error:
        parser.error(str(error))
    if args.frame_ms < 20 or args.frame_ms % 10:
        parser.error(
            f"--frame-ms must be a multiple of 10 (a GIF stores hundredths of a second) and at least 20 (browsers "
            f"play shorter frames at 100 ms), got {args.frame_ms}"
        )
    if args.gif and args.n * args.scale**2 > MAX_GIF_SCALED_IMAGES:
        parser.error(
            f"--n {args.n} at --scale {args.scale} makes GIF frames too large to hold every step's frame in memory: "
            f"keep n x scale^2 at most {MAX_GIF_SCALED_IMAGES:,} (e.g. --n 16 --scale 16)"
        )
    try:
        ckpt = load_checkpoint(args.checkpoint)
        if not get_kind(ckpt.kind).generates:
            raise CheckpointError(
                f"{args.checkpoint} holds a '{ckpt.kind}' model, which does not generate images; sample needs a "
                "generator (kind 'draw')"
            )
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cfg = ckpt.config
    trace = ckpt.model.generate(args.n, generator=torch.Generator().manual_seed(args.seed))
    nrow = args.nrow or math.ceil(math.sqrt(args.n))
    outputs = []
    if args.gif:
        windows = window_geometry(trace.write_attn, cfg.write_n) if trace.write_attn is not None else None
        data = generation_grid_gif(trace.canvases, windows, nrow=nrow, scale=args.scale, frame_ms=args.frame_ms)
        outputs.append((args.gif, data, f"GIF of {cfg.T} steps"))
    if args.png:
        outputs.append((args.png, grid_png(trace.canvases[-1], nrow=nrow, scale=args.scale), "PNG grid"))
    for path, data, what in outputs:
        try:
            write_atomically(path, data)  # an earlier file is replaced whole or not at all
        except OSError as error:
            print(f"error: cannot write {path}: {error}", file=sys.stderr)
            return 2
        print(f"wrote {what} of {args.n} samples to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
