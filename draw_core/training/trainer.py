"""The one training loop, a small `Trainer`, used by the CLI (draw_core.train) and by the app's live jobs.

    trainer = Trainer.create(model_cfg, train_cfg, out, data_dir=..., resume=True)
    done = trainer.run()        # or trainer.train_step() / trainer.test() / trainer.save() one at a time

Adam on the objective of the model's kind (training/objectives.py: DRAW's negative ELBO, eq. 12) with a warm-up +
cosine learning-rate schedule (driven by steps or by the time budget, whichever is further along), global
gradient-norm clipping, periodic evaluation on the fixed test set, atomic checkpoints every N steps and at the end,
resume from the last checkpoint, and a guard that stops a run whose loss or gradients stop being finite before
that step is applied, saving the last good weights. TrainConfig.amp = 'bf16' computes the loss under bfloat16
autocast (`precision`) and TrainConfig.compile runs it through torch.compile (`use_network`).

Data parallelism wraps, it does not rewrite: `network` (what the loss calls) may be a DistributedDataParallel
wrapper of `model` (what is saved), the stream may be a shard, `is_main` says whether this process evaluates,
reports and writes checkpoints, and `schedule_time` is the clock all processes agree on
(draw_core.training.distributed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from draw_core.config import DrawConfig, TrainConfig
from draw_core.data import get_dataset
from draw_core.io.catalog import read_card
from draw_core.io.checkpoint import PROVENANCE_KEYS, CheckpointError, load_checkpoint, save_checkpoint
from draw_core.nn.kinds import kind_of_config
from draw_core.nn.model import DRAW, couple_colours
from draw_core.training.devices import hardware_name, select_device
from draw_core.training.objectives import BatchLoss, TestFigure, objective_for


def total_train_seconds(meta: dict) -> float:
    """Training seconds behind a checkpoint's weights, every earlier run included: its own record of the total, else
    its run's seconds plus the total (or, in files written before totals were kept, the seconds) that the run it
    started from (PROVENANCE_KEYS) recorded. Runs older than that record are not known here."""

    def seconds(value) -> float | None:  # a card may be edited by hand: only a finite number counts
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    if seconds(meta.get("total_train_seconds")) is not None:
        return seconds(meta["total_train_seconds"])
    earlier = next((meta[key] for key in PROVENANCE_KEYS if isinstance(meta.get(key), dict)), {})
    before = seconds(earlier.get("total_train_seconds", earlier.get("train_seconds")))
    return (seconds(meta.get("train_seconds")) or 0.0) + (before or 0.0)


def checkpoint_total_seconds(path: str | Path, meta: dict) -> float:
    """`total_train_seconds` of the checkpoint at `path` with stored `meta`: from its model card when it is a shipped
    file (the card records the whole history its meta may not), else from the meta."""
    return total_train_seconds(read_card(Path(path)) or meta)


SAMPLES_PER_REPORT = 16  # samples carried by a 'step' event every sample_every steps
EVAL_BATCH = 100  # test images per evaluation batch (a Stop is checked between batches)


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN or infinite; the step was not applied. `reason` says what and where; the
    message adds which file holds the last good weights."""

    def __init__(self, reason: str, kept: str):
        super().__init__(f"{reason}; {kept}")
        self.reason = reason


@dataclass
class TrainEvent:
    """A progress report from the loop. `kind` is 'step', 'eval', 'checkpoint' or 'done'."""

    kind: str
    step: int  # optimisation steps done
    total_steps: int
    elapsed_s: float  # training seconds, including earlier runs of a resumed checkpoint
    epoch: float  # passes over the training set
    loss: float = math.nan  # mean loss of the last batch (DRAW: negative ELBO in nats)
    report: dict[str, float] = field(default_factory=dict)  # the objective's figures of the last batch
    per_step: list[float] = field(default_factory=list)  # a figure per glimpse (DRAW: mean KL of each step)
    images_per_s: float = math.nan  # throughput since the previous report
    lr: float = math.nan
    progress: float = 0.0  # fraction of the run done (steps or time budget)
    samples: torch.Tensor | None = None  # (n, C, H, W) fresh samples, on 'step' reports every sample_every
    test: TestFigure | None = None  # on 'eval' and 'done': the latest test figure
    checkpoint: str | None = None  # on 'checkpoint' and 'done': where it was written
    stopped: bool = False  # on 'done': ended by should_stop rather than by steps or time

    @property
    def recon(self) -> float:
        """DRAW: mean L^x of the last batch (eq. 9)."""
        return self.report.get("recon", math.nan)

    @property
    def kl(self) -> float:
        """DRAW: mean L^z of the last batch (eq. 11)."""
        return self.report.get("kl", math.nan)

    @property
    def kl_per_step(self) -> list[float]:
        return self.per_step

    @property
    def test_elbo(self) -> float | None:
        """DRAW: the test bound in nats, when this event carries one."""
        return self.test.value if self.test is not None and self.test.name == "test_elbo_nats" else None


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


def precision(amp: str, device: torch.device) -> torch.autocast:
    """The autocast context of TrainConfig.amp around the loss: bfloat16 for 'bf16', none (float32) for 'off'."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")


def backward_step(
    objective,
    network: torch.nn.Module,
    optimizer,
    batch,
    grad_clip: float,
    *,
    autocast: contextlib.AbstractContextManager | None = None,
):
    """The loss of a batch (inside `autocast` when given; the backward pass runs outside it, as torch advises), its
    gradients and their clipping; the caller checks them and steps."""
    with autocast or contextlib.nullcontext():
        result = objective.batch_loss(network, batch)
    optimizer.zero_grad(set_to_none=True)
    result.loss.backward()
    return result, clip_gradients(network.parameters(), grad_clip)


def clip_gradients(parameters, max_norm: float) -> torch.Tensor:
    """Scale the gradients so their global L2 norm is at most max_norm; returns the norm before clipping. The norm is
    summed in float64 (float32 on MPS, which has none): torch's clip_grad_norm_ sums float32 squares, which overflow
    to inf once a gradient nears 1e19 although every gradient is finite, and the step that clipping exists to tame
    is then reported as a divergence (seen training a plain autoencoder, issue 15). A NaN or inf gradient still gives
    a non-finite norm."""
    with_grads = [p for p in parameters if p.grad is not None]
    if not with_grads:
        return torch.zeros(())
    dtype = torch.float32 if with_grads[0].device.type == "mps" else torch.float64
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad, dtype=dtype) for p in with_grads]))
    torch.nn.utils.clip_grads_with_norm_(with_grads, max_norm, norm)
    return norm


def _gains_colour_coupling(source_cfg, model_cfg) -> bool:
    """Whether a fine-tune of a `source_cfg` model into `model_cfg` differs only by 'logistic' -> 'logistic-coupled'."""
    return (
        isinstance(source_cfg, DrawConfig)
        and isinstance(model_cfg, DrawConfig)
        and (source_cfg.likelihood, model_cfg.likelihood) == ("logistic", "logistic-coupled")
        and dataclasses.replace(source_cfg, likelihood=model_cfg.likelihood) == model_cfg
    )


def _to_device(batch, device: torch.device):
    if isinstance(batch, (tuple, list)):
        return type(batch)(part.to(device, non_blocking=True) for part in batch)
    return batch.to(device, non_blocking=True)


ADAM_STATE_KEYS = {"step", "exp_avg", "exp_avg_sq"}  # what torch's Adam keeps per parameter (amsgrad off)
# Adam's switches the Trainer never turns on (torch saves them in every param group)
ADAM_OFF = ("amsgrad", "maximize", "capturable", "differentiable", "fused", "foreach")


def check_adam_state(state: dict, parameters: list[torch.Tensor], source: Path) -> None:
    """The optimizer state of a checkpoint to resume, checked to be the Trainer's Adam for these parameters: each
    entry a scalar step and two moments of its parameter's shape, one group of finite settings. Adam takes a
    mangled state without a word and fails at its first step; this says which file and what is wrong instead."""

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"cannot resume {source}: its optimizer state is not Adam's ({why})")

    for index, values in state["state"].items():
        if set(values) != ADAM_STATE_KEYS:
            raise bad(f"parameter {index} holds {sorted(values)}, expected {sorted(ADAM_STATE_KEYS)}")
        shape = tuple(parameters[int(index)].shape)
        moments = {key: tuple(torch.as_tensor(values[key]).shape) for key in ("exp_avg", "exp_avg_sq")}
        if torch.as_tensor(values["step"]).dim() != 0 or set(moments.values()) != {shape}:
            raise bad(f"parameter {index} of shape {shape} has moments {moments} and a step of another shape")
    for group in state["param_groups"]:
        betas = group.get("betas")
        numbers = [group.get(key) for key in ("lr", "eps", "weight_decay")]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in numbers):
            raise bad(f"lr, eps and weight_decay must be finite numbers >= 0, got {numbers}")
        if not (
            isinstance(betas, list)
            and len(betas) == 2
            and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
        ):
            raise bad(f"betas must be two numbers in [0, 1), got {betas!r}")
        if any(group.get(key) for key in ADAM_OFF):
            raise bad(f"{[key for key in ADAM_OFF if group.get(key)]} must be off")


class Trainer:
    """State of one run (model, optimizer, stream, step, clock) and its operations; `run()` loops them."""

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        train_cfg: TrainConfig,
        out: str | Path,
        stream,
        test_set,
        device: torch.device,
        optimizer_state: dict | None = None,
        step: int = 0,
        elapsed_before: float = 0.0,
        test: TestFigure | None = None,
        network: torch.nn.Module | None = None,
        is_main: bool = True,
        meta_extra: dict | None = None,
        on_event: Callable[[TrainEvent, torch.nn.Module], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.model = model.to(device).train()
        self.cfg = train_cfg
        self.use_network(network if network is not None else self.model)
        self.kind = kind_of_config(model.cfg)
        self.objective = objective_for(self.kind.name, train_cfg.kl_weight, train_cfg.code_weight)
        self.out = Path(out)
        self.stream = stream
        self.test_set = test_set
        self.device = device
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train_cfg.lr)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
        self.step = step
        self.elapsed_before = elapsed_before
        self.test_figure = test
        self.test_step: int | None = step if test is not None else None  # the step test_figure was measured at
        self.is_main = is_main
        self.meta_extra = meta_extra or {}
        self.on_event = on_event
        self.should_stop = should_stop
        self.hardware = hardware_name(device)
        self.last_saved_step: int | None = step if step > 0 else None  # a resumed run's file holds its start step
        self._start = time.perf_counter()

    @classmethod
    def create(
        cls,
        model_cfg,
        train_cfg: TrainConfig,
        out: str | Path,
        *,
        data_dir: str | None = None,
        resume: bool = False,
        init_from: str | Path | None = None,
        **options,
    ) -> Trainer:
        """A run of a fresh model of `model_cfg`, or the checkpoint at `out` continued when `resume` and it exists.

        `init_from` starts a new run (step 0, a fresh optimizer and schedule) from another checkpoint's weights: a
        fine-tune, e.g. with a lower learning rate; its config must equal `model_cfg`."""
        out = Path(out)
        device = select_device(train_cfg.device)
        torch.manual_seed(train_cfg.seed)
        spec = get_dataset(train_cfg.dataset)
        kind = kind_of_config(model_cfg)
        test_name = objective_for(kind.name, train_cfg.kl_weight, train_cfg.code_weight).test_name
        model, state = kind.model_class(model_cfg), {}
        if resume and out.exists() and init_from is not None:
            raise ValueError(f"{out} exists: resume it or start from {init_from}, not both")
        if init_from is not None:
            source = load_checkpoint(init_from)
            start = {
                "checkpoint": str(init_from),
                "step": int(source.meta.get("step", 0)),
                "train_seconds": float(source.meta.get("train_seconds", 0.0)),
                "total_train_seconds": round(checkpoint_total_seconds(init_from, source.meta), 1),
            }
            if _gains_colour_coupling(source.config, model_cfg):
                model = couple_colours(source.model)
                start["coupled"] = "a 'logistic' model given colour coupling 0 (the same likelihood at step 0)"
            elif source.config != model_cfg:
                raise CheckpointError(
                    f"cannot start from {init_from}: its config {source.config} differs from the requested {model_cfg}"
                )
            else:
                model = source.model
            options.setdefault("meta_extra", {})["init_from"] = start
        if resume and out.exists():
            ckpt = load_checkpoint(out)
            if ckpt.config != model_cfg:
                raise CheckpointError(
                    f"cannot resume {out}: its config {ckpt.config} differs from the requested {model_cfg}"
                )
            model = ckpt.model
            extra = options.setdefault("meta_extra", {})
            for key in PROVENANCE_KEYS:  # a resumed fine-tune still started from where it started
                if isinstance(ckpt.meta.get(key), dict):
                    extra.setdefault(key, ckpt.meta[key])
            test = ckpt.meta.get(test_name)
            tested = ckpt.meta.get("test_limit")  # the images that figure covered, as save() wrote them
            if ckpt.optimizer_state is not None:
                check_adam_state(ckpt.optimizer_state, list(model.parameters()), out)
            state = dict(
                step=int(ckpt.meta.get("step", 0)),
                elapsed_before=float(ckpt.meta.get("train_seconds", 0.0)),
                optimizer_state=ckpt.optimizer_state,
                test=None
                if test is None
                else TestFigure(test_name, test, tested if isinstance(tested, int) else train_cfg.eval_limit),
            )
        stream = spec.train_stream(data_dir, train_cfg.batch_size, seed=train_cfg.seed + state.get("step", 0))
        test_set = spec.test_set(data_dir, train_cfg.eval_limit)
        return cls(
            model=model,
            train_cfg=train_cfg,
            out=out,
            stream=stream,
            test_set=test_set,
            device=device,
            **state,
            **options,
        )

    def use_network(self, network: torch.nn.Module) -> None:
        """Set what the loss calls (the model, or a data-parallel wrapper of it), through torch.compile when the
        config asks for it: a DRAW generator compiles its glimpse (DRAW.compile_step), a classifier its whole
        forward (8 glimpses)."""
        if self.cfg.compile and isinstance(self.model, DRAW):
            self.model.compile_step(mode=self.cfg.compile_mode, glimpses_per_call=self.cfg.compile_glimpses)
        elif self.cfg.compile:
            network = torch.compile(network, mode=self.cfg.compile_mode)
        self.network = network

    @property
    def elapsed(self) -> float:
        """Training seconds of the whole run, earlier sessions of a resumed checkpoint included."""
        return self.elapsed_before + time.perf_counter() - self._start

    @property
    def epochs(self) -> float:
        return self.step * self.cfg.batch_size / len(self.stream.images)

    def schedule_time(self) -> float:
        """The training seconds the learning-rate schedule and the time budget go by: `elapsed` here; a data-parallel
        run overrides it so that every rank uses the same number."""
        return self.elapsed

    def finished(self) -> bool:
        return self.step >= self.cfg.steps or run_progress(self.cfg, self.step, self.schedule_time()) >= 1.0

    def event(self, kind: str, **fields) -> TrainEvent:
        """A report stamped with the run's position now."""
        progress = run_progress(self.cfg, self.step, self.elapsed)
        return TrainEvent(kind, self.step, self.cfg.steps, self.elapsed, self.epochs, progress=progress, **fields)

    def emit(self, event: TrainEvent) -> None:
        if self.on_event is not None and self.is_main:
            self.model.eval()
            self.on_event(event, self.model)
            self.model.train()

    def train_step(self) -> tuple[BatchLoss, float]:
        """One Adam step on the next batch; returns the batch's loss and the learning rate it used."""
        lr = learning_rate(self.cfg, self.step, self.schedule_time())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = _to_device(self.stream.next(), self.device)
        autocast = precision(self.cfg.amp, self.device)
        result, grad_norm = backward_step(
            self.objective, self.network, self.optimizer, batch, self.cfg.grad_clip, autocast=autocast
        )
        if not (torch.isfinite(result.loss) and torch.isfinite(grad_norm)):
            loss, norm = result.loss.item(), grad_norm.item()
            reason = f"training diverged at step {self.step + 1}: loss {loss}, gradient norm {norm}"
            raise TrainingDiverged(reason, self._keep_last_good())
        self.optimizer.step()
        self.step += 1
        return result, lr

    def _keep_last_good(self) -> str:
        """After a step that was not finite (and not applied): rank 0 saves the weights and Adam state the run still
        holds, all finite, unless its last checkpoint has them already; says which file holds them."""
        if not self.is_main:  # only rank 0 of a data-parallel run writes checkpoints
            return "rank 0's message says which checkpoint is kept"
        if self.step > 0 and self.last_saved_step != self.step:
            self.emit(self.event("checkpoint", checkpoint=self.save(stopped=True)))
        if self.last_saved_step is None:
            return "no checkpoint was written yet"
        return f"the last good weights (step {self.last_saved_step}) are saved at {self.out}"

    def test(self, *, interruptible: bool = True) -> TestFigure | None:
        """The test figure of the weights now on the fixed test set, or None when a Stop cut it short (the previous
        figure stays in test_figure; `interruptible`=False: measured to the end whatever should_stop says)."""
        self.model.eval()
        should_stop = self.should_stop if interruptible else None
        figure = self.objective.test(self.model, self.test_set, seed=self.cfg.seed, should_stop=should_stop)
        self.model.train()
        if figure.n != len(self.test_set[0] if isinstance(self.test_set, tuple) else self.test_set):
            return None
        self.test_figure, self.test_step = figure, self.step
        return figure

    def save(self, *, final: bool = False, stopped: bool = False) -> str:
        """Write the checkpoint (weights, optimizer, meta) atomically to `out`."""
        meta = {
            "step": self.step,
            "dataset": self.cfg.dataset,
            "epochs": round(self.epochs, 3),
            "train_seconds": round(self.elapsed, 1),
            "total_train_seconds": round(total_train_seconds({"train_seconds": self.elapsed, **self.meta_extra}), 1),
            "device": str(self.device),
            "hardware": self.hardware,
            "train_config": self.cfg.to_dict(),
            self.objective.test_name: self.test_figure.value if self.test_figure else None,
            "test_limit": self.test_figure.n if self.test_figure else None,  # test images the figure covers
            "finished": final and not stopped,
            "stopped": stopped,
            **self.meta_extra,
        }
        save_checkpoint(self.model, self.out, meta=meta, optimizer=self.optimizer)
        self.last_saved_step = self.step
        return str(self.out)

    def _report(self, result: BatchLoss, lr: float, since: tuple[float, int]) -> None:
        samples = None
        if self.cfg.sample_every and self.step % self.cfg.sample_every == 0:
            samples = self.objective.samples(self.model, SAMPLES_PER_REPORT)
        seconds = max(time.perf_counter() - since[0], 1e-9)
        self.emit(
            self.event(
                "step",
                loss=result.loss.item(),
                report=result.report,
                per_step=result.per_step,
                images_per_s=(self.step - since[1]) * self.cfg.batch_size / seconds,
                lr=lr,
                samples=samples,
            )
        )

    def run(self) -> TrainEvent:
        """Train until the steps or the time budget are spent, or should_stop fires; returns the 'done' event."""
        self._start = time.perf_counter()
        since = (self._start, self.step)
        stopped = False
        while not self.finished():
            if self.should_stop is not None and self.should_stop():
                stopped = True
                break
            result, lr = self.train_step()
            if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
                self._report(result, lr, since)
                since = (time.perf_counter(), self.step)
            if self.is_main and self.cfg.eval_every and self.step % self.cfg.eval_every == 0:
                if (figure := self.test()) is not None:  # a Stop during it: no figure of these weights to report
                    self.emit(self.event("eval", test=figure))
            if self.is_main and self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                self.emit(self.event("checkpoint", checkpoint=self.save()))
        path = None
        if self.is_main:
            if not stopped and self.step > 0 and self.test_step != self.step:  # unmeasured, or a Stop cut it short
                self.test(interruptible=False)  # the run is over: a Stop now must not leave an older figure as final
            if self.step > 0 or not stopped:  # stopped before its first step: no untrained file in the picker
                path = self.save(final=True, stopped=stopped)
        done = self.event("done", test=self.test_figure, checkpoint=path, stopped=stopped)
        self.emit(done)
        return done


def train(model_cfg, train_cfg: TrainConfig, out: str | Path, *, data_dir: str | None = None, **options) -> TrainEvent:
    """Train and checkpoint to `out` (see Trainer.create for `resume`, `on_event`, `should_stop`); returns 'done'.

    Raises TrainingDiverged on NaN/inf.
    """
    return Trainer.create(model_cfg, train_cfg, out, data_dir=data_dir, **options).run()
