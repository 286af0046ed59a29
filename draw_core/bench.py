"""Benchmarks (a command, not a test): training throughput against the machine's matmul limit, generation
latency, and the making of cluttered MNIST (the app's server-side rerun time is tools/bench_app.py: this package never
imports Streamlit).

    python -m draw_core.bench train --preset mnist --batch-size 128 --steps 20 [--path both] [--device D] [--json]
        [--compile-mode default|reduce-overhead] [--compile-glimpses K]
    python -m draw_core.bench generate [--preset mnist] [--repeats 20] [--json]
    python -m draw_core.bench clutter [--images 10000] [--repeats 5] [--json]

`train` measures the model's two hot paths (draw_core.nn.hot_path: the fused CPU autograd Functions and the plain
torch operations) side by side, one row each, their steps interleaved so both see the same state of the machine.
Every figure is the median over repeats; `--json` prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from draw_core.arguments import check_compile_glimpses, whole_number
from draw_core.config import COMPILE_MODES, PRESETS, DrawConfig, TrainConfig
from draw_core.data.cluttered import make_cluttered
from draw_core.data.mnist import load_sample
from draw_core.nn.model import DRAW
from draw_core.training.devices import hardware_name, select_device
from draw_core.training.objectives import ElboObjective
from draw_core.training.trainer import backward_step


def forward_flops_per_image(cfg: DrawConfig) -> int:
    """Multiply-adds x 2 of one forward pass over one image, counted from the layer shapes (matmuls only)."""
    E, D, Z, C, H, W = cfg.enc_size, cfg.dec_size, cfg.z_size, cfg.channels, cfg.height, cfg.width
    head_out = cfg.write_size + 5 * cfg.write_attn + 5 * cfg.read_attn
    per_step = 2 * (cfg.read_size + D + E) * 4 * E  # encoder LSTM, eq. 5
    per_step += 2 * E * 2 * Z  # posterior, eqs 1-2
    per_step += 2 * (Z + D) * 4 * D  # decoder LSTM, eq. 7
    per_step += 2 * D * head_out  # write patch and attention parameters
    if cfg.read_attn:
        N = cfg.read_n
        per_step += 2 * C * (2 * N * H * W + 2 * N * W * N)  # F_Y x F_X^T on x and x_hat, eq. 27
    if cfg.write_attn:
        N = cfg.write_n
        per_step += C * (2 * H * N * N + 2 * H * N * W)  # F_Y^T w F_X, eq. 29
    return cfg.T * per_step


def train_flops_per_image(cfg: DrawConfig) -> int:
    """Forward + backward: the backward pass of a matmul costs two forward ones."""
    return 3 * forward_flops_per_image(cfg)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_burst(rows: int, inner: int, cols: int, device: torch.device):
    """A function running fp32 (rows x inner) @ (inner x cols) matmuls, and the FLOPs of one call of it."""
    a = torch.randn(rows, inner, device=device)
    b = torch.randn(inner, cols, device=device)
    repeats = 20 if device.type == "cpu" else 200

    def run():
        for _ in range(repeats):
            a @ b

    return run, 2 * rows * inner * cols * repeats


def bench_train(
    cfg: DrawConfig,
    batch_size: int,
    steps: int,
    warmup: int,
    device: torch.device,
    paths: tuple[str, ...] = ("fused", "plain"),
    compile_mode: str | None = None,
    compile_glimpses: int = 1,
) -> list[dict]:
    """Images/s of full training steps (forward, backward, clipping, Adam) after `warmup` uncounted steps, one row
    per hot path in `paths` (each its own model, built from the same seed). With `compile_mode` the plain path's
    glimpses run through torch.compile in that mode, `compile_glimpses` of them a call (DRAW.compile_step, as
    `train --compile` does); compiling happens in the warm-up steps.

    The matmul limit is measured at the model's largest matmul shape (the encoder's, eq. 5) in bursts interleaved
    with the timed steps (one step of every path, then one burst), so all see the same state of a shared machine;
    each fraction is the median of the per-pair fractions.
    """
    x = torch.bernoulli(torch.full((batch_size, cfg.channels, cfg.height, cfg.width), 0.2)).to(device)
    steppers = []
    for path in paths:
        torch.manual_seed(0)
        model = DRAW(cfg, hot_path=path).to(device).train()
        if compile_mode is not None and path == "plain":
            model.compile_step(mode=compile_mode, glimpses_per_call=compile_glimpses)
        steppers.append(_training_step(model, torch.optim.Adam(model.parameters(), lr=1e-4), x))
    burst, burst_flops = matmul_burst(batch_size, cfg.read_size + cfg.dec_size + cfg.enc_size, 4 * cfg.enc_size, device)
    for _ in range(warmup):
        for step in steppers:
            step()
        burst()
    flops = train_flops_per_image(cfg)
    step_times = [[] for _ in paths]  # per path, per timed step
    limits = []
    for _ in range(steps):
        for times, step in zip(step_times, steppers, strict=True):
            times.append(_median_time(step, 1, device))
        limits.append(burst_flops / _median_time(burst, 3, device))
    rows = []
    for path, times in zip(paths, step_times, strict=True):
        seconds = statistics.median(times)
        images_per_s = batch_size / seconds
        rows.append(
            {
                "bench": "train",
                "path": path,
                "device": str(device),
                "hardware": hardware_name(device),
                "batch_size": batch_size,
                "compile_mode": compile_mode if path == "plain" else None,
                "compile_glimpses": compile_glimpses if compile_mode is not None and path == "plain" else None,
                "config": cfg.to_dict(),
                "step_ms": seconds * 1e3,
                "train_images_per_s": images_per_s,
                "train_flops_per_image": flops,
                "achieved_gflops": images_per_s * flops / 1e9,
                "matmul_gflops": statistics.median(limits) / 1e9,
                "fraction_of_matmul_limit": statistics.median(
                    batch_size / t * flops / limit for t, limit in zip(times, limits, strict=True)
                ),
            }
        )
    return rows


def _training_step(model: DRAW, optimizer: torch.optim.Optimizer, x: torch.Tensor):
    """A function running one training step of `model` on the batch x, as the trainer runs it."""

    def step():
        backward_step(ElboObjective(), model, optimizer, x, TrainConfig.grad_clip)
        optimizer.step()

    return step


def bench_generate(cfg: DrawConfig, repeats: int, device: torch.device) -> dict:
    """Latency of one T-step sample and of a batch of 64, as the app's generation calls them."""
    model = DRAW(cfg).to(device).eval()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        model.generate(1, generator=generator)
    one = _median_time(lambda: model.generate(1, generator=generator), repeats, device)
    batch = _median_time(lambda: model.generate(64, generator=generator), max(3, repeats // 4), device)
    return {
        "bench": "generate",
        "device": str(device),
        "hardware": hardware_name(device),
        "config": cfg.to_dict(),
        "one_sample_ms": one * 1e3,
        "batch64_ms": batch * 1e3,
    }


def bench_clutter(images: int, repeats: int) -> dict:
    """Seconds to make `images` 100 x 100 cluttered MNIST images (issue 13: 10,000 in seconds), from the shipped
    sample's digits; every draw of a fresh training batch or of the fixed test set runs the same code."""
    digits, labels = load_sample()
    generator = torch.Generator().manual_seed(0)
    make_cluttered(digits, labels, min(images, 256), generator=generator)
    seconds = _median_time(
        lambda: make_cluttered(digits, labels, images, generator=generator), repeats, torch.device("cpu")
    )
    return {
        "bench": "clutter",
        "hardware": hardware_name(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "images": images,
        "seconds": seconds,
        "images_per_s": images / seconds,
    }


def print_rows(rows: list[dict], as_json: bool) -> None:
    """One JSON object per row, or a table: one line per field, one column per row (side by side)."""
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    shown = [{k: v for k, v in row.items() if k not in ("config", "rerun_ms_all")} for row in rows]
    keys = list(dict.fromkeys(key for row in shown for key in row))
    cells = [[_cell(row.get(key, "")) for row in shown] for key in keys]
    key_width = max(map(len, keys))
    widths = [max(len(line[i]) for line in cells) for i in range(len(shown))]
    for key, line in zip(keys, cells, strict=True):
        values = "  ".join(f"{text:>{width}}" for text, width in zip(line, widths, strict=True))
        print(f"{key:<{key_width}}  {values}")
    print()


def _cell(value) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)


def _device(parser: argparse.ArgumentParser, name: str) -> torch.device:
    """select_device(name), or a usage error (exit code 2) saying what was wrong with the device."""
    try:
        return select_device(name)
    except ValueError as error:  # a name torch does not know, one nothing runs on ('meta'), one not on this machine
        parser.error(f"argument --device: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m draw_core.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="training images/s and fraction of the matmul limit, per hot path")
    train.add_argument("--batch-size", type=whole_number(1), default=128)
    train.add_argument("--steps", type=whole_number(1), default=10, help="timed steps (the median is reported)")
    train.add_argument("--warmup", type=whole_number(0), default=3)
    train.add_argument("--device", default="auto")
    train.add_argument(
        "--path", choices=("fused", "plain", "both"), default="both", help="which hot path(s) to time (default both)"
    )
    train.add_argument(
        "--compile-mode",
        choices=COMPILE_MODES,
        default=None,
        help="torch.compile the plain path's glimpse in this mode",
    )
    train.add_argument(
        "--compile-glimpses",
        type=whole_number(1),
        default=1,
        help="with --compile-mode: glimpses unrolled into one compiled call (DRAW.compile_step)",
    )
    generate = sub.add_parser("generate", help="latency of one sample and of a batch of 64")
    generate.add_argument("--repeats", type=whole_number(1), default=20)
    generate.add_argument("--device", default="cpu")
    clutter = sub.add_parser("clutter", help="seconds to make cluttered 100 x 100 MNIST images")
    clutter.add_argument("--images", type=whole_number(1), default=10_000)
    clutter.add_argument("--repeats", type=whole_number(1), default=5)
    for p in (train, generate):
        p.add_argument("--preset", choices=sorted(PRESETS), default="mnist")
    for p in (train, generate, clutter):
        p.add_argument("--threads", type=whole_number(1), default=None, help="CPU threads for torch")
        p.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    if args.command == "clutter":
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        print_rows([bench_clutter(args.images, args.repeats)], args.json)
        return 0
    device = _device(train if args.command == "train" else generate, args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = DrawConfig.preset(args.preset)
    if args.command == "train":
        try:
            check_compile_glimpses(args.compile_glimpses, cfg.T, whose="the preset's ")
        except ValueError as error:
            train.error(str(error))
    if args.command == "train":
        paths = ("fused", "plain") if args.path == "both" else (args.path,)
        rows = bench_train(
            cfg, args.batch_size, args.steps, args.warmup, device, paths, args.compile_mode, args.compile_glimpses
        )
    else:
        rows = [bench_generate(cfg, args.repeats, device)]
    print_rows(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
