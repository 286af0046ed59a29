"""The one training loop, used by the CLI (draw_core.train) and by the app's live training jobs.

Adam on the negative ELBO (eq. 12) with a warm-up + cosine learning-rate schedule (driven by steps or
by the time budget, whichever is further along), global gradient-norm clipping, periodic evaluation of
the test bound, atomic checkpoints every N steps and at the end, resume from the last checkpoint, and a
guard that stops a run whose loss or gradients stop being finite, keeping the last good checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from draw_core.config import DrawConfig, TrainConfig
from draw_core.data import get_dataset
from draw_core.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from draw_core.nn.elbo import loss_terms
from draw_core.nn.model import DRAW
from draw_core.training.devices import hardware_name, select_device
from draw_core.training.evaluation import evaluate


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
    spec = get_dataset(train_cfg.dataset)
    test_images = spec.test_set(data_dir, train_cfg.eval_limit)
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
    stream = spec.train_stream(data_dir, train_cfg.batch_size, seed=train_cfg.seed + step)
    hardware = hardware_name(device)
    last_good = {"step": None}

    def emit(event: TrainEvent) -> None:
        if on_event is not None:
            model.eval()
            on_event(event, model)
            model.train()

    def epochs_done() -> float:
        return step * train_cfg.batch_size / len(stream.images)

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
