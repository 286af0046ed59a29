"""The one training loop, used by the CLI and by the app's live training jobs.

    python -m draw_core.train --preset mnist --steps N --batch-size B --data-dir DIR --out PATH \
        [--resume] [--device cpu|cuda]

Adam on the negative ELBO (eq. 12) with a warm-up + cosine learning-rate schedule (driven by steps or
by the time budget, whichever is further along), global gradient-norm clipping, periodic evaluation of
the test bound, atomic checkpoints every N steps and at the end, resume from the last checkpoint, and a
guard that stops a run whose loss or gradients stop being finite, keeping the last good checkpoint.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import DrawConfig, TrainConfig
from .data import BatchStream, DatasetMissingError, fixed_test_set, load_images
from .elbo import loss_terms
from .evaluate import evaluate
from .model import DRAW


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN or infinite."""


@dataclass
class TrainEvent:
    """A progress report from the loop. `kind` is 'step', 'eval', 'checkpoint' or 'done'."""

    kind: str
    step: int  # optimisation steps done
    total_steps: int
    elapsed_s: float  # training seconds, including earlier runs of a resumed checkpoint
    epoch: float  # passes over the training set
    loss: float = math.nan  # mean negative ELBO of the last batch, nats
    recon: float = math.nan  # mean L^x of the last batch
    kl: float = math.nan  # mean L^z of the last batch
    kl_per_step: list[float] = field(default_factory=list)  # mean KL of each step on the last batch
    images_per_s: float = math.nan  # throughput since the previous report
    lr: float = math.nan
    progress: float = 0.0  # fraction of the run done (steps or time budget)
    samples: torch.Tensor | None = None  # (n, C, H, W) fresh samples, on 'step' reports every sample_every
    test_elbo: float | None = None  # on 'eval' and 'done': the test bound in nats
    checkpoint: str | None = None  # on 'checkpoint' and 'done': where it was written
    stopped: bool = False  # on 'done': ended by should_stop rather than by steps or time


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; anything else is passed to torch.device and checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for but MPS is not available on this machine")
    return device


def available_devices() -> list[str]:
    """The devices this machine can train on, best first."""
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices + ["cpu"]


def hardware_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} thread{'s' if threads > 1 else ''}"


def learning_rate(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    """Linear warm-up, then cosine decay to lr * lr_min_ratio over the run (steps or time, whichever leads)."""
    progress = run_progress(cfg, step, elapsed_s)
    warmup = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    cosine = cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * warmup * cosine


def run_progress(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    progress = step / cfg.steps
    if cfg.time_budget_s:
        progress = max(progress, elapsed_s / cfg.time_budget_s)
    return min(1.0, progress)


def backward_step(model: DRAW, optimizer: torch.optim.Optimizer, x: torch.Tensor, grad_clip: float):
    """The ELBO of a batch (eq. 12), its gradients and their clipping; the caller checks them and steps."""
    terms = loss_terms(model(x), x)
    loss = terms.total.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    return terms, loss, grad_norm


def train(
    model_cfg: DrawConfig,
    train_cfg: TrainConfig,
    out: str | Path,
    *,
    data_dir: str | None = None,
    resume: bool = False,
    on_event: Callable[[TrainEvent, DRAW], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainEvent:
    """Train and checkpoint to `out`; returns the final 'done' event. Raises TrainingDiverged on NaN/inf."""
    out = Path(out)
    device = select_device(train_cfg.device)
    torch.manual_seed(train_cfg.seed)
    train_images = load_images(train_cfg.dataset, "train", data_dir)
    test_images = fixed_test_set(train_cfg.dataset, data_dir, train_cfg.eval_limit)
    model = DRAW(model_cfg)
    step, elapsed_before, test_elbo = 0, 0.0, None
    optimizer_state = None
    if resume and out.exists():
        ckpt = load_checkpoint(out)
        if ckpt.config != model_cfg:
            raise CheckpointError(
                f"cannot resume {out}: its config {ckpt.config} differs from the requested {model_cfg}"
            )
        model = ckpt.model
        step = int(ckpt.meta.get("step", 0))
        elapsed_before = float(ckpt.meta.get("train_seconds", 0.0))
        test_elbo = ckpt.meta.get("test_elbo_nats")
        optimizer_state = ckpt.optimizer_state
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    stream = BatchStream(train_images, train_cfg.batch_size, seed=train_cfg.seed + step)
    hardware = hardware_name(device)
    last_good = {"step": None}

    def emit(event: TrainEvent) -> None:
        if on_event is not None:
            model.eval()
            on_event(event, model)
            model.train()

    def epochs_done() -> float:
        return step * train_cfg.batch_size / len(train_images)

    def event(kind: str, **fields) -> TrainEvent:
        """A report stamped with the run's position now."""
        elapsed = elapsed_before + time.perf_counter() - start
        progress = run_progress(train_cfg, step, elapsed)
        return TrainEvent(kind, step, train_cfg.steps, elapsed, epochs_done(), progress=progress, **fields)

    def checkpoint(elapsed: float, *, final: bool = False, stopped: bool = False) -> str:
        meta = {
            "step": step,
            "dataset": train_cfg.dataset,
            "epochs": round(epochs_done(), 3),
            "train_seconds": round(elapsed, 1),
            "device": str(device),
            "hardware": hardware,
            "train_config": train_cfg.to_dict(),
            "test_elbo_nats": test_elbo,
            "test_elbo_limit": train_cfg.eval_limit,
            "finished": final and not stopped,
            "stopped": stopped,
        }
        save_checkpoint(model, out, meta=meta, optimizer=optimizer)
        last_good["step"] = step
        return str(out)

    def run_eval() -> float | None:
        """The test bound; a Stop during it (checked every 100 digits) keeps the previous one."""
        model.eval()
        result = evaluate(model, test_images, batch_size=100, seed=train_cfg.seed, should_stop=should_stop)
        model.train()
        return result.elbo_nats if result.n == len(test_images) else test_elbo

    start = time.perf_counter()
    report_time, report_step = start, step
    stopped = False
    while True:
        elapsed = elapsed_before + time.perf_counter() - start
        if step >= train_cfg.steps or run_progress(train_cfg, step, elapsed) >= 1.0:
            break
        if should_stop is not None and should_stop():
            stopped = True
            break
        lr = learning_rate(train_cfg, step, elapsed)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = stream.next().to(device, non_blocking=True)
        terms, loss, grad_norm = backward_step(model, optimizer, x, train_cfg.grad_clip)
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
            kept = (
                f"the last good checkpoint (step {last_good['step']}) is kept at {out}"
                if last_good["step"] is not None
                else "no checkpoint was written yet"
            )
            raise TrainingDiverged(
                f"training diverged at step {step + 1}: loss {loss.item()}, gradient norm {grad_norm.item()}; {kept}"
            )
        optimizer.step()
        step += 1
        if step % train_cfg.log_every == 0 or step == train_cfg.steps:
            now = time.perf_counter()
            samples = None
            if train_cfg.sample_every and step % train_cfg.sample_every == 0:
                samples = model.generate(16).canvases[-1].cpu()
            emit(
                event(
                    "step",
                    loss=loss.item(),
                    recon=terms.recon.mean().item(),
                    kl=terms.kl.mean().item(),
                    kl_per_step=terms.kl_per_step.mean(1).tolist(),
                    images_per_s=(step - report_step) * train_cfg.batch_size / max(now - report_time, 1e-9),
                    lr=lr,
                    samples=samples,
                )
            )
            report_time, report_step = time.perf_counter(), step
        if train_cfg.eval_every and step % train_cfg.eval_every == 0:
            test_elbo = run_eval()
            emit(event("eval", test_elbo=test_elbo))
        if train_cfg.checkpoint_every and step % train_cfg.checkpoint_every == 0:
            path = checkpoint(elapsed_before + time.perf_counter() - start)
            emit(event("checkpoint", checkpoint=path))
    if not stopped and step > 0 and (not train_cfg.eval_every or step % train_cfg.eval_every):
        test_elbo = run_eval()
    elapsed = elapsed_before + time.perf_counter() - start
    path = checkpoint(elapsed, final=True, stopped=stopped)
    done = event("done", test_elbo=test_elbo, checkpoint=path, stopped=stopped)
    emit(done)
    return done


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m draw_core.train", description="Train DRAW on a binarised dataset.")
    parser.add_argument("--preset", default="mnist", help="model preset: mnist, mnist-noattn or mnist-small")
    parser.add_argument("--dataset", default="mnist", help="mnist (full, from --data-dir) or mnist-sample (shipped)")
    parser.add_argument(
        "--data-dir", default=None, help="folder holding MNIST/raw/ (default: $DRAW_DATA_DIR or ./data)"
    )
    parser.add_argument(
        "--out", required=True, help="checkpoint path (.safetensors), written every --checkpoint-every steps"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from --out if it exists (weights, optimizer, step)"
    )
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument(
        "--time-budget", type=float, default=None, metavar="MINUTES", help="stop after this many minutes of training"
    )
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--grad-clip", type=float, default=TrainConfig.grad_clip)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--eval-every", type=int, default=TrainConfig.eval_every)
    parser.add_argument("--eval-limit", type=int, default=TrainConfig.eval_limit)
    parser.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every)
    for name in ("T", "read_n", "write_n", "enc_size", "dec_size", "z_size"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, type=int, default=None, help=f"override the preset's {name}"
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        overrides = {
            k: getattr(args, k)
            for k in ("T", "read_n", "write_n", "enc_size", "dec_size", "z_size")
            if getattr(args, k) is not None
        }
        model_cfg = DrawConfig(**{**DrawConfig.preset(args.preset).to_dict(), **overrides})
        train_cfg = TrainConfig(
            dataset=args.dataset,
            batch_size=args.batch_size,
            steps=args.steps,
            lr=args.lr,
            grad_clip=args.grad_clip,
            seed=args.seed,
            device=args.device,
            eval_every=args.eval_every,
            eval_limit=args.eval_limit,
            checkpoint_every=args.checkpoint_every,
            sample_every=0,
            time_budget_s=args.time_budget * 60 if args.time_budget else None,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    bar = tqdm(total=train_cfg.steps, desc=args.preset, unit="step", file=sys.stderr)

    def on_event(event: TrainEvent, _model: DRAW) -> None:
        bar.update(event.step - bar.n)
        if event.kind == "step":
            bar.set_postfix(
                loss=f"{event.loss:.2f}", kl=f"{event.kl:.2f}", ips=f"{event.images_per_s:.0f}", lr=f"{event.lr:.1e}"
            )
        elif event.kind == "eval":
            bar.write(
                f"step {event.step}: test ELBO {event.test_elbo:.2f} nats ({train_cfg.eval_limit} digits), "
                f"epoch {event.epoch:.2f}"
            )

    try:
        done = train(model_cfg, train_cfg, args.out, data_dir=args.data_dir, resume=args.resume, on_event=on_event)
    except (TrainingDiverged, CheckpointError, DatasetMissingError, ValueError) as error:
        bar.close()
        print(f"error: {error}", file=sys.stderr)
        return 1
    bar.close()
    print(f"done: {done.step} steps, {done.elapsed_s:.0f} s, test ELBO {done.test_elbo:.2f} nats -> {done.checkpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
