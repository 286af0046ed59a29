"""Training jobs that belong to the server process: start, watch from any session, stop.

The app's Train page starts a run with `get_manager().start(...)`; the run is a `draw_core.training.trainer.Trainer`
(the same loop as the CLI) in a worker thread, writing its checkpoint to RUNS_DIR/<name>.safetensors
(`draw_core.io.catalog.runs_dir()`), where the checkpoint picker of every page finds it. The manager is
one object per process, not per browser session: closing a tab does not end a run, and every session
that opens the Train page watches the same job. A job trains any model kind (draw_core.nn.kinds): the DRAW
generator, or the attention classifiers of sec. 4.1 (DRAW's read-only classifier and RAM), on a dataset of the
registry whose task and image size fit the model.

Limits (draw_core.settings, checked by `JobManager.start` before anything runs, each refusal a JobError that says
what would be allowed): DRAW_ADMIN_TOKEN (only a session that gives it may start or stop jobs), DRAW_MAX_JOBS,
DRAW_MAX_RUN_STEPS and DRAW_MAX_RUN_HOURS (a run still going at that age is stopped like a Stop, with its checkpoint),
DRAW_MAX_PARAMS, DRAW_MAX_TRAIN_MEMORY_MB together with the memory free on the device (the estimate of
draw_core.training.devices), and DRAW_MAX_RUNS_DISK_MB with the disk free. A manager removes the temporary files of
killed saves from the runs folder when it starts.

The worker reports through `JobProgress`, a lock-protected record; `Job.snapshot()` returns an
immutable copy (`JobSnapshot`) that a page can read at any time: status, step/total, ETA, images/s, the history of
the objective's per-batch figures (DRAW: reconstruction and KL; a classifier: its error), the figure per glimpse
(DRAW: KL per step), the test figures measured so far, and live glimpses of the dataset's example image with the
current weights every few steps (`GlimpseSnapshot`: DRAW reconstructs it; `ClassifierGlimpses`: a classifier's
windows or retina on it, and what it believes after each glimpse). A generator also keeps its latest samples and a
strip of samples from the same fixed z over training time (`StripRow`). A stopped run's final weights are tested too
(the loop skips that when stopped): the figure goes into the snapshot and into the checkpoint's card.

Why a thread and not a subprocess: torch releases the GIL inside its ops, so a training thread leaves
the Streamlit server responsive; the progress record is plain Python objects shared under a lock (no
serialisation of tensors, no polling of files), stop is a threading.Event, and a job starts at once
without importing torch again. The trade-off: a crash in native code (a CUDA fault, the OS killing the
process for memory) takes the server down with it, and a thread cannot be killed, only asked to stop
between steps. The thread is a daemon so that stopping the server is never blocked by a run: when the process
exits (Streamlit's Ctrl+C or SIGTERM runs the atexit hooks), each running job is stopped and given up to
EXIT_SAVE_S to write its checkpoint at the step it reached; its checkpoints are also written atomically every
`checkpoint_every` steps, so a process killed outright loses at most that much.

Letters used in shape comments: T steps, C channels, H height, W width, n samples.
"""

from __future__ import annotations

import atexit
import hmac
import logging
import math
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from draw_core import settings
from draw_core.config import TrainConfig
from draw_core.data import DatasetSpec, binarize, get_dataset
from draw_core.evaluate import check_dataset
from draw_core.io import catalog
from draw_core.io.checkpoint import remove_stale_temporaries
from draw_core.nn.attention import AttentionParams
from draw_core.nn.kinds import kind_of, kind_of_config
from draw_core.nn.model import DRAW
from draw_core.present.attention_at_work import DrawGlimpses, RamGlimpses, draw_glimpses, ram_glimpses
from draw_core.present.latent import prior_z
from draw_core.training.devices import (
    check_parameter_count,
    device_name,
    estimate_training_bytes,
    largest_batch,
    select_device,
    training_memory_limit,
)
from draw_core.training.objectives import TestFigure
from draw_core.training.trainer import Trainer, TrainEvent, TrainingDiverged

log = logging.getLogger(__name__)

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EXIT_SAVE_S = 30.0  # when the process exits, how long it waits for stopped runs to write their checkpoints
KEPT_ENDED = 8  # ended jobs a server keeps in memory (their live views); older ones are forgotten, files kept
MAX_HISTORY_POINTS = 1000  # loss history kept per job; older points are thinned, never dropped from the start
GLIMPSE_SEED = 0  # binarises the example image (Bernoulli data) and draws the z noise of every live reconstruction
STRIP_SEED = 0  # seeds the fixed z of the sample strip (draw_core.present.latent.prior_z)
STRIP_SAMPLES = 8  # samples per strip row, one per fixed z
MAX_STRIP_ROWS = 12  # strip rows kept per job; older rows are thinned evenly, the first and the latest always kept
CHECKPOINT_HEADER_BYTES = 64 * 1024  # allowance for a checkpoint's header (config, meta, optimizer settings)
GB = 1024**3


class JobError(ValueError):
    """A job could not be started; the message says why and what to do."""


class JobBusyError(JobError):
    """A job was started while the maximum number of jobs were already running."""


class JobForbiddenError(JobError):
    """A session without the teacher's token (DRAW_ADMIN_TOKEN) tried to start or stop a job."""


def token_accepted(token: str | None) -> bool:
    """Whether `token` may start and stop jobs: always when DRAW_ADMIN_TOKEN is unset, else only that token."""
    expected = settings.admin_token()
    if expected is None:
        return True
    return isinstance(token, str) and hmac.compare_digest(token.encode(), expected.encode())


def check_token(token: str | None) -> None:
    if not token_accepted(token):
        raise JobForbiddenError(
            "on this server only the teacher starts and stops training runs (DRAW_ADMIN_TOKEN is set): enter the "
            "token first"
        )


def check_run_length(train_cfg: TrainConfig) -> None:
    """Steps and time budget within DRAW_MAX_RUN_STEPS and DRAW_MAX_RUN_HOURS."""
    max_steps, max_seconds = settings.max_run_steps(), settings.max_run_seconds()
    if train_cfg.steps > max_steps:
        raise JobError(
            f"steps={train_cfg.steps:,} is over this server's limit of {max_steps:,} steps per run "
            "(DRAW_MAX_RUN_STEPS); ask for fewer steps, or a time budget"
        )
    if train_cfg.time_budget_s is not None and train_cfg.time_budget_s > max_seconds:
        raise JobError(
            f"a time budget of {train_cfg.time_budget_s / 3600:.2f} h is over this server's limit of "
            f"{max_seconds / 3600:.2f} h per run (DRAW_MAX_RUN_HOURS)"
        )


def check_memory(model_cfg, train_cfg: TrainConfig, *, running: tuple[Job, ...] = ()) -> None:
    """The run's memory estimate within DRAW_MAX_TRAIN_MEMORY_MB and the device's free memory, less the estimated
    peaks of the `running` jobs on that device (counted in full: between steps they hold less than at their peak);
    and the network within DRAW_MAX_PARAMS. The refusal says which batch size would fit."""
    try:
        device = select_device(train_cfg.device)
        check_parameter_count(model_cfg)
        reserved = sum(
            estimate_training_bytes(job._model_cfg, job._train_cfg.batch_size)
            for job in running
            if select_device(job._train_cfg.device) == device
        )
    except ValueError as error:
        raise JobError(str(error)) from None
    limit, source = training_memory_limit(device, reserved=reserved)
    need = estimate_training_bytes(model_cfg, train_cfg.batch_size)
    if need > limit:
        fits = largest_batch(model_cfg, limit)
        advice = (
            f"with this model a batch size of at most {fits:,} fits"
            if fits
            else "not even a batch of one image fits: choose fewer steps or glimpses, smaller LSTMs or attention"
        )
        raise JobError(
            f"this run would need about {need / GB:.1f} GB of memory (the model, Adam and the activations of a batch "
            f"of {train_cfg.batch_size:,}), more than the {limit / GB:.1f} GB {source}; {advice}"
        )


def check_model_and_data(model_cfg, train_cfg: TrainConfig, data_dir: str | None) -> DatasetSpec:
    """The model's kind is registered, its network within DRAW_MAX_PARAMS, its device one this server has, the
    dataset fits it (task and image size, draw_core.evaluate.check_dataset) and is on this server; returns the
    dataset's spec."""
    try:
        kind = kind_of_config(model_cfg)
        check_parameter_count(model_cfg)
        select_device(train_cfg.device)
        check_dataset(kind, model_cfg, train_cfg.dataset)
    except ValueError as error:  # an unknown kind or dataset, or one that does not fit
        raise JobError(str(error)) from None
    spec = get_dataset(train_cfg.dataset)
    if train_cfg.batch_size > spec.train_size:  # refused now, not by the batch stream once the run has started
        raise JobError(
            f"a batch of {train_cfg.batch_size:,} is larger than {spec.name}'s {spec.train_size:,} training images: "
            "choose a smaller batch"
        )
    if not spec.available(data_dir):
        raise JobError(spec.how_to_get(data_dir))
    return spec


def checkpoint_bytes(model_cfg) -> int:
    """The size of a run's checkpoint: float32 weights and Adam's two moments, plus the header."""
    return 3 * 4 * check_parameter_count(model_cfg) + CHECKPOINT_HEADER_BYTES


def check_disk(runs_dir: Path, path: Path, model_cfg, pending: int = 0) -> None:
    """The runs folder's checkpoints, with this run's (replacing `path` when it exists) and `pending` bytes of runs
    under way that have not written theirs yet, within DRAW_MAX_RUNS_DISK_MB; and room on the disk for the
    checkpoint and its temporary copy."""
    need, cap = checkpoint_bytes(model_cfg), settings.max_runs_disk_bytes()
    used = pending + sum(p.stat().st_size for p in runs_dir.glob(f"*{catalog.EXTENSION}") if p.is_file() and p != path)
    if used + need > cap:
        raise JobError(
            f"the runs folder {runs_dir} holds {used / 2**20:,.0f} MB of checkpoints; this run's ({need / 2**20:,.1f} "
            f"MB) would take it over the {cap / 2**20:,.0f} MB allowed (DRAW_MAX_RUNS_DISK_MB): delete old runs first"
        )
    free = shutil.disk_usage(runs_dir).free
    if free < 2 * need:  # the checkpoint and the temporary file it is written to
        raise JobError(
            f"only {free / 2**20:,.0f} MB are free on the disk of {runs_dir}; this run needs {2 * need / 2**20:,.1f} MB"
        )


def check_run_name(name: str) -> str:
    """A run name becomes a file name: letters, digits, '.', '_', '-', starting with a letter or digit, <= 64."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
        raise JobError(
            f"run name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit (it becomes the checkpoint's file name)"
        )
    return name


@dataclass(frozen=True)
class GlimpseSnapshot:
    """A DRAW generator's reconstruction of the example image with the weights of training step `step` (batch
    dimension removed)."""

    step: int  # training step whose weights made it
    image: torch.Tensor  # (C, H, W) the input x (binarised for Bernoulli data)
    canvases: torch.Tensor  # (T, C, H, W) sigma(c_t) after every step
    read_attn: AttentionParams | None  # (T,) fields; None without read attention
    write_attn: AttentionParams | None  # (T,) fields; None without write attention
    read_n: int  # read grid size N
    write_n: int  # write grid size N


@dataclass(frozen=True)
class ClassifierGlimpses:
    """A classifier's glimpses of the example image with the weights of training step `step`: DRAW's read windows
    or RAM's retina at every glimpse, what it read and its class probabilities after each glimpse."""

    step: int  # training step whose weights made it
    image: torch.Tensor  # (C, H, W) the dataset's example image
    trace: DrawGlimpses | RamGlimpses  # draw_core.present.attention_at_work, (T, ...) per glimpse


@dataclass(frozen=True)
class StripRow:
    """Samples from the fixed z of the sample strip (STRIP_SEED), decoded with the weights of step `step`."""

    step: int
    images: torch.Tensor  # (n, C, H, W) sigma(c_T) of each fixed z


@dataclass(frozen=True)
class JobSnapshot:
    """What a page shows of a job at one moment; a copy, safe to read while the job goes on."""

    name: str
    status: str  # 'running', 'finished', 'stopped' or 'failed'
    checkpoint_path: str  # where the run's checkpoint is (or will be) written
    model_config: object  # the config of the model's kind (DrawConfig, ClassifierConfig, RamConfig)
    train_config: TrainConfig
    device: str  # the device it trains on, resolved ('cpu', 'cuda:0', 'mps'; never 'auto')
    resume: bool
    started_at: float  # time.time() when start() was called
    stop_requested: bool
    step: int = 0  # optimisation steps done (including those of a resumed checkpoint)
    total_steps: int = 0
    progress: float = 0.0  # fraction of the run done (steps or time budget, whichever leads)
    elapsed_s: float = 0.0  # training seconds reported by the loop
    eta_s: float | None = None  # estimated seconds left; None until the first report
    images_per_s: float = math.nan
    epoch: float = 0.0
    lr: float = math.nan
    history_steps: tuple[int, ...] = ()  # steps of the history, thinned evenly when long
    history: dict[str, tuple[float, ...]] = field(default_factory=dict)  # 'loss' and the objective's report at them
    per_step: tuple[float, ...] = ()  # latest figure of each glimpse (DRAW: mean KL of each of the T steps)
    samples: torch.Tensor | None = None  # (n, C, H, W) latest fresh samples in [0, 1] (generators only)
    samples_step: int | None = None
    sample_strip: tuple[StripRow, ...] = ()  # fixed-z samples over training time, oldest first (generators only)
    glimpses: GlimpseSnapshot | ClassifierGlimpses | None = None
    test: TestFigure | None = None  # latest test figure (DRAW: the bound in nats; a classifier: its error)
    test_step: int | None = None
    test_history: tuple[tuple[int, float], ...] = ()  # (step, value) of every test figure so far
    evaluating: bool = False  # testing a stopped run's final weights
    last_checkpoint: str | None = None  # the last checkpoint actually written
    last_checkpoint_step: int | None = None
    error: str | None = None  # why the job failed
    finished_at: float | None = None  # time.time() when it ended
    steps_after_stop: int | None = None  # final step minus the last reported step when stop() was asked
    note: str | None = None  # why the server stopped it, when it did (a limit of draw_core.settings)

    @property
    def kind(self) -> str:
        """The model kind's name (draw_core.nn.kinds)."""
        return kind_of_config(self.model_config).name


@dataclass
class JobProgress:
    """The worker writes, pages read; every access goes through `lock`."""

    snapshot: JobSnapshot
    history_stride: int = 1  # keep every history_stride-th report in the history
    reports: int = 0  # step reports seen
    strip_stride: int = 1  # keep every strip_stride-th strip row
    strip_rows: int = 0  # strip rows seen
    strip_kept: tuple[StripRow, ...] = ()  # the rows on the stride (the snapshot adds the latest after them)
    step_at_stop: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self) -> JobSnapshot:
        with self.lock:
            return self.snapshot

    def update(self, **changes) -> None:
        with self.lock:
            self.snapshot = replace(self.snapshot, **changes)

    def record_step(self, event: TrainEvent, glimpses: GlimpseSnapshot | ClassifierGlimpses | None) -> None:
        with self.lock:
            current = self.snapshot
            steps, history = current.history_steps, current.history
            if self.reports % self.history_stride == 0:
                figures = {"loss": event.loss, **event.report}
                steps = steps + (event.step,)
                history = {name: history.get(name, ()) + (value,) for name, value in figures.items()}
                if len(steps) > MAX_HISTORY_POINTS:
                    steps, history = steps[::2], {name: values[::2] for name, values in history.items()}
                    self.history_stride *= 2
            self.reports += 1
            changes = dict(
                step=event.step,
                total_steps=event.total_steps,
                progress=event.progress,
                elapsed_s=event.elapsed_s,
                eta_s=estimate_eta(event.elapsed_s, event.progress),
                images_per_s=event.images_per_s,
                epoch=event.epoch,
                lr=event.lr,
                history_steps=steps,
                history=history,
                per_step=tuple(event.per_step),
            )
            if event.samples is not None:
                changes.update(samples=event.samples.detach().cpu(), samples_step=event.step)
            if glimpses is not None:
                changes.update(glimpses=glimpses)
            self.snapshot = replace(current, **changes)

    def record_strip(self, row: StripRow) -> None:
        """Add a row to the sample strip: every strip_stride-th row is kept, and the stride doubles (keeping every
        other row) when more than MAX_STRIP_ROWS are kept; the latest row always shows after the kept ones."""
        with self.lock:
            latest: tuple[StripRow, ...] = ()
            if self.strip_rows % self.strip_stride == 0:
                self.strip_kept += (row,)
                if len(self.strip_kept) > MAX_STRIP_ROWS:  # an odd count: [::2] keeps the first and the newest
                    self.strip_kept = self.strip_kept[::2]
                    self.strip_stride *= 2
            else:
                latest = (row,)
            self.strip_rows += 1
            self.snapshot = replace(self.snapshot, sample_strip=self.strip_kept + latest)

    def record_test(self, figure: TestFigure | None, step: int) -> None:
        """A test figure measured on the weights of `step` (one per step in the history: a later one replaces it)."""
        if figure is None:
            return
        with self.lock:
            earlier = tuple(point for point in self.snapshot.test_history if point[0] != step)
            self.snapshot = replace(
                self.snapshot, test=figure, test_step=step, test_history=earlier + ((step, figure.value),)
            )

    def request_stop(self) -> None:
        with self.lock:
            if not self.snapshot.stop_requested:
                self.step_at_stop = self.snapshot.step
                self.snapshot = replace(self.snapshot, stop_requested=True)

    def finish(self, status: str, *, step: int | None = None, error: str | None = None) -> None:
        with self.lock:
            changes = dict(
                status=status,
                finished_at=time.time(),
                error=error,
                eta_s=0.0 if status == "finished" else None,
                evaluating=False,
            )
            if step is not None:
                changes["step"] = step
                if self.step_at_stop is not None:
                    changes["steps_after_stop"] = step - self.step_at_stop
            self.snapshot = replace(self.snapshot, **changes)


def estimate_eta(elapsed_s: float, progress: float) -> float | None:
    """Seconds left at the average pace so far: exact for a time budget, a linear guess for steps."""
    if progress <= 0:
        return None
    return max(0.0, elapsed_s * (1 - progress) / progress)


def reconstruct_glimpses(model: DRAW, image: torch.Tensor, step: int) -> GlimpseSnapshot:
    """Reconstruct one image (C, H, W) with the model's current weights and fixed z noise."""
    trace = model.reconstruct(image.unsqueeze(0), generator=torch.Generator().manual_seed(GLIMPSE_SEED))

    def first(params: AttentionParams | None) -> AttentionParams | None:
        return None if params is None else params.map(lambda value: value[:, 0].detach().cpu())  # (T,)

    cfg = model.cfg
    return GlimpseSnapshot(
        step=step,
        image=image,
        canvases=trace.canvases[:, 0].detach().cpu(),  # (T, C, H, W)
        read_attn=first(trace.read_attn),
        write_attn=first(trace.write_attn),
        read_n=cfg.read_n,
        write_n=cfg.write_n,
    )


def live_glimpses(model: torch.nn.Module, image: torch.Tensor, step: int) -> GlimpseSnapshot | ClassifierGlimpses:
    """What the live view shows of `model` on the example image (C, H, W) at training step `step`: a generator's
    reconstruction, or a classifier's glimpses (DRAW's read windows, RAM's retina at its policy's mean)."""
    kind = kind_of(model).name
    if kind == "draw":
        return reconstruct_glimpses(model, image, step)
    trace = draw_glimpses(model, image) if kind == "draw-classifier" else ram_glimpses(model, image)
    return ClassifierGlimpses(step=step, image=image, trace=trace)


def fixed_z_samples(model: DRAW, n: int = STRIP_SAMPLES) -> torch.Tensor:
    """(n, C, H, W) sigma(c_T) of n draws of z from STRIP_SEED: the same z at every call, whatever the weights."""
    cfg = model.cfg
    return model.generate(n, z=prior_z(STRIP_SEED, cfg.T, cfg.z_size, n)).canvases[-1].detach().cpu()


def glimpse_image(spec: DatasetSpec, data_dir: str | None = None) -> torch.Tensor:
    """The dataset's example image (C, H, W) as its models see it (SVHN's from the data under `data_dir`):
    binarised once with GLIMPSE_SEED for a Bernoulli likelihood, grey levels otherwise."""
    image = spec.example(data_dir)
    if spec.likelihood == "bernoulli":
        return binarize(image, torch.Generator().manual_seed(GLIMPSE_SEED))
    return image


class Job:
    """One training run in a worker thread. Read it with snapshot(); end it early with stop()."""

    def __init__(
        self,
        *,
        name: str,
        path: Path,
        model_cfg,
        train_cfg: TrainConfig,
        data_dir: str | None,
        resume: bool,
        glimpse_every: int,
        image: torch.Tensor,
        max_seconds: float,
    ):
        self.name = name
        self.path = path
        self._model_cfg = model_cfg
        self._train_cfg = train_cfg
        self._data_dir = data_dir
        self._resume = resume
        self._glimpse_every = glimpse_every
        self._image = image
        self._generates = kind_of_config(model_cfg).generates
        self._last_glimpse_step: int | None = None
        self._last_strip_step: int | None = None
        self._stop = threading.Event()
        budget = train_cfg.time_budget_s
        # A run whose own time budget is within the server's limit ends by that budget (its clock starts later, once
        # the trainer is built): the limit's clock would always win the tie and call it stopped by the server.
        self._max_seconds = math.inf if budget is not None and budget <= max_seconds else max_seconds
        self._started = time.monotonic()
        self._progress = JobProgress(
            JobSnapshot(
                name=name,
                status="running",
                checkpoint_path=str(path),
                model_config=model_cfg,
                train_config=train_cfg,
                device=device_name(select_device(train_cfg.device)),
                resume=resume,
                started_at=time.time(),
                stop_requested=False,
                total_steps=train_cfg.steps,
            )
        )
        self._thread = threading.Thread(target=self._run, name=f"draw-train-{name}", daemon=True)

    def snapshot(self) -> JobSnapshot:
        return self._progress.read()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ask the loop to end; it finishes the step in progress, writes its checkpoint, tests the final weights and
        writes the checkpoint again with the test figure in its card."""
        self._progress.request_stop()
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (or `timeout` seconds passed); True when it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _start(self) -> None:
        self._thread.start()

    def _should_stop(self) -> bool:
        """A Stop, or the run reached DRAW_MAX_RUN_HOURS (then it ends like a Stop, saying why)."""
        if not self._stop.is_set() and time.monotonic() - self._started > self._max_seconds:
            self._progress.update(
                note=f"the run reached this server's limit of {self._max_seconds / 3600:.2f} h (DRAW_MAX_RUN_HOURS)"
            )
            self.stop()
        return self._stop.is_set()

    def _strip_row(self, model: torch.nn.Module, step: int) -> None:
        self._progress.record_strip(StripRow(step=step, images=fixed_z_samples(model)))
        self._last_strip_step = step

    def _on_event(self, event: TrainEvent, model: torch.nn.Module) -> None:
        if event.kind == "step":
            glimpses = None
            due = self._last_glimpse_step is None or event.step - self._last_glimpse_step >= self._glimpse_every
            if due:
                glimpses = live_glimpses(model, self._image, event.step)
                self._last_glimpse_step = event.step
            self._progress.record_step(event, glimpses)
            if event.samples is not None and self._generates:  # every sample_every steps
                self._strip_row(model, event.step)
        elif event.kind == "eval":
            self._progress.record_test(event.test, event.step)
        elif event.kind in ("checkpoint", "done"):
            changes = dict(last_checkpoint=event.checkpoint, last_checkpoint_step=event.step)
            if event.kind == "done":
                changes.update(progress=event.progress, elapsed_s=event.elapsed_s)
                if not event.stopped:  # a finished run measured its final figure; a stopped one is tested in _run
                    self._progress.record_test(event.test, event.step)
                if self._last_glimpse_step != event.step:
                    changes["glimpses"] = live_glimpses(model, self._image, event.step)
                if self._generates and self._last_strip_step not in (None, event.step):
                    self._strip_row(model, event.step)
            self._progress.update(**changes)

    def _test_after_stop(self, trainer: Trainer) -> None:
        """The test figure of a stopped run's final weights, measured to the end (the Stop that ended training no
        longer applies) and written into the checkpoint's card with them."""
        self._progress.update(evaluating=True)
        figure = trainer.test(interruptible=False)
        checkpoint = trainer.save(final=True, stopped=True)
        self._progress.record_test(figure, trainer.step)
        self._progress.update(last_checkpoint=checkpoint, last_checkpoint_step=trainer.step, evaluating=False)

    def _run(self) -> None:
        try:
            trainer = Trainer.create(
                self._model_cfg,
                self._train_cfg,
                self.path,
                data_dir=self._data_dir,
                resume=self._resume,
                on_event=self._on_event,
                should_stop=self._should_stop,
            )
            done = trainer.run()
            if done.stopped and done.step > 0:
                self._test_after_stop(trainer)
            self._progress.finish("stopped" if done.stopped else "finished", step=done.step)
        except TrainingDiverged as error:  # the page says which checkpoint holds the last good weights
            self._progress.finish("failed", error=f"TrainingDiverged: {error.reason}")
        except Exception as error:  # anything at all (out of memory, bad data): the page shows it
            log.exception("training job %r failed", self.name)
            self._progress.finish("failed", error=f"{type(error).__name__}: {str(error) or 'no message'}")
        finally:
            if self.snapshot().status == "running":  # a BaseException got through: never leave 'running' behind
                self._progress.finish("failed", error="the training thread ended unexpectedly")


class JobManager:
    """The process's training jobs by name; at most `max_running` run at once."""

    def __init__(self, *, max_running: int | None = None, runs_dir: str | os.PathLike | None = None):
        self.max_running = settings.max_jobs() if max_running is None else max_running
        if self.max_running < 1:
            raise JobError(f"max_running={self.max_running} must be >= 1")
        self._runs_dir = Path(runs_dir) if runs_dir is not None else None
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        for removed in remove_stale_temporaries(self.runs_dir) if self.runs_dir.is_dir() else []:
            log.info("removed %s, left by a save that was killed", removed)

    @property
    def runs_dir(self) -> Path:
        """Where checkpoints go: the folder given to the constructor, else catalog.runs_dir() (env at call time)."""
        return self._runs_dir if self._runs_dir is not None else catalog.runs_dir()

    def checkpoint_path(self, name: str) -> Path:
        return self.runs_dir / f"{check_run_name(name)}{catalog.EXTENSION}"

    def start(
        self,
        name: str,
        model_cfg,
        train_cfg: TrainConfig,
        *,
        resume: bool = False,
        data_dir: str | None = None,
        glimpse_every: int = 10,
        token: str | None = None,
    ) -> Job:
        """Start training `name`, a model of any kind (`model_cfg` is its kind's config), in the background after
        checking every limit of this server (module docstring) and that the dataset fits the model and is here;
        raises JobForbiddenError (no teacher's token), JobBusyError or JobError instead of starting."""
        check_token(token)
        if not isinstance(train_cfg, TrainConfig):
            raise JobError("start() needs a TrainConfig (it validates the run's settings)")
        if glimpse_every < 1:
            raise JobError(f"glimpse_every={glimpse_every} must be >= 1")
        path = self.checkpoint_path(name)
        check_run_length(train_cfg)
        spec = check_model_and_data(model_cfg, train_cfg, data_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        image = glimpse_image(spec, data_dir)
        with self._lock:
            running = [job for job in self._jobs.values() if job.running]
            unwritten = sum(checkpoint_bytes(job._model_cfg) for job in running if not job.path.exists())
            check_disk(self.runs_dir, path, model_cfg, pending=unwritten)  # under the lock: two Starts count both
            if len(running) >= self.max_running:
                names = ", ".join(
                    f"'{job.name}' (step {job.snapshot().step}/{job.snapshot().total_steps})" for job in running
                )
                raise JobBusyError(
                    f"a training job is already running: {names}. Stop it or wait for it to finish; at most "
                    f"{self.max_running} job{'s' if self.max_running > 1 else ''} may run at once (DRAW_MAX_JOBS)."
                )
            if any(job.name == name for job in running):
                raise JobError(f"a job named '{name}' is already running; choose another run name")
            check_memory(model_cfg, train_cfg, running=tuple(running))  # under the lock, like the disk
            if path.exists() and not resume:
                raise JobError(
                    f"a run named '{name}' already exists ({path}); choose another name (`python -m "
                    f"draw_core.train` with its settings and --resume --out {path} continues it)"
                )
            job = Job(
                name=name,
                path=path,
                model_cfg=model_cfg,
                train_cfg=train_cfg,
                data_dir=data_dir,
                resume=resume,
                glimpse_every=glimpse_every,
                image=image,
                max_seconds=settings.max_run_seconds(),
            )
            self._jobs.pop(name, None)
            self._forget_old_runs()
            self._jobs[name] = job
            job._start()
        return job

    def _forget_old_runs(self) -> None:
        """Before a job starts (with the lock held): forget all but the KEPT_ENDED most recent ended jobs, since an
        ended job's snapshot holds its samples and glimpses and a server runs for a whole term. Their files stay."""
        ended = [name for name, job in self._jobs.items() if not job.running]
        for name in ended[: max(0, len(ended) - KEPT_ENDED)]:
            del self._jobs[name]

    def get(self, name: str) -> Job | None:
        with self._lock:
            return self._jobs.get(name)

    def jobs(self) -> list[Job]:
        """Every job of this process, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def running(self) -> list[Job]:
        return [job for job in self.jobs() if job.running]

    def latest(self) -> Job | None:
        """The most recently started job, running or not."""
        jobs = self.jobs()
        return jobs[-1] if jobs else None

    def stop(self, name: str, *, token: str | None = None) -> None:
        """Stop the job `name` for a session; raises JobForbiddenError without the teacher's token, JobError when
        there is no such job."""
        check_token(token)
        job = self.get(name)
        if job is None:
            raise JobError(f"there is no training job named {name!r}")
        job.stop()

    def stop_all(self, *, wait_for_saves_s: float = 0.0) -> None:
        """Stop every running job; each saves its checkpoint and tests its final weights (no token needed). With
        `wait_for_saves_s`, return once each has saved its checkpoint (it is testing, or has ended), or after that
        many seconds."""
        running = self.running()
        for job in running:
            job.stop()
        deadline = time.monotonic() + wait_for_saves_s
        for job in running:
            while job.running and not job.snapshot().evaluating and time.monotonic() < deadline:
                job.wait(0.05)


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide job manager, shared by every browser session; its runs save their checkpoints when the
    process exits (`_save_runs_at_exit`)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
            atexit.register(_save_runs_at_exit)
        return _manager


def _save_runs_at_exit() -> None:
    """atexit: the training threads are daemons, which exit would end mid-step: stop them and let each write its
    checkpoint at the step it reached (up to EXIT_SAVE_S in all)."""
    if _manager is not None:
        _manager.stop_all(wait_for_saves_s=EXIT_SAVE_S)
