"""Training jobs that belong to the server process: start, watch from any session, stop.

The app's Train page starts a run with `get_manager().start(...)`; the run is `draw_core.train.train` (the
same loop as the CLI) in a worker thread, writing its checkpoint to RUNS_DIR/<name>.safetensors
(`draw_core.catalog.runs_dir()`), where the checkpoint picker of every page finds it. The manager is
one object per process, not per browser session: closing a tab does not end a run, and every session
that opens the Train page watches the same job.

Limits (draw_core.settings, checked by `JobManager.start` before anything runs, each refusal a JobError that says
what would be allowed): DRAW_ADMIN_TOKEN (only a session that gives it may start or stop jobs), DRAW_MAX_JOBS,
DRAW_MAX_RUN_STEPS and DRAW_MAX_RUN_HOURS (a run still going at that age is stopped like a Stop, with its checkpoint),
DRAW_MAX_PARAMS, DRAW_MAX_TRAIN_MEMORY_MB together with the memory free on the device (the estimate of
draw_core.training.devices), and DRAW_MAX_RUNS_DISK_MB with the disk free. A manager removes the temporary files of
killed saves from the runs folder when it starts.

The worker reports through `JobProgress`, a lock-protected record; `Job.snapshot()` returns an
immutable copy (`JobSnapshot`) that a page can read at any time: status, step/total, ETA, images/s, the
loss history (reconstruction and KL), KL per step, the latest samples, and live glimpses (`GlimpseSnapshot`,
a fixed test digit reconstructed with the current weights every few steps).

Why a thread and not a subprocess: torch releases the GIL inside its ops, so a training thread leaves
the Streamlit server responsive; the progress record is plain Python objects shared under a lock (no
serialisation of tensors, no polling of files), stop is a threading.Event, and a job starts at once
without importing torch again. The trade-off: a crash in native code (a CUDA fault, the OS killing the
process for memory) takes the server down with it, and a thread cannot be killed, only asked to stop
between steps. The thread is a daemon so that stopping the server is never blocked by a run; the
run's checkpoints are written atomically every `checkpoint_every` steps, so at most that much is lost.

Letters used in shape comments: T steps, C channels, H height, W width, n samples.
"""

from __future__ import annotations

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
from draw_core.config import DrawConfig, TrainConfig
from draw_core.data import binarize, load_sample
from draw_core.io import catalog
from draw_core.io.checkpoint import remove_stale_temporaries
from draw_core.nn.attention import AttentionParams
from draw_core.nn.model import DRAW
from draw_core.training.devices import (
    check_parameter_count,
    estimate_training_bytes,
    largest_batch,
    select_device,
    training_memory_limit,
)
from draw_core.training.trainer import TrainEvent, train

log = logging.getLogger(__name__)

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_HISTORY_POINTS = 1000  # loss history kept per job; older points are thinned, never dropped from the start
GLIMPSE_SEED = 0  # binarises the fixed digit and draws the z noise of every live reconstruction
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


def check_memory(model_cfg: DrawConfig, train_cfg: TrainConfig) -> None:
    """The run's memory estimate within DRAW_MAX_TRAIN_MEMORY_MB and the device's free memory (and the network within
    DRAW_MAX_PARAMS); the refusal says which batch size would fit."""
    try:
        device = select_device(train_cfg.device)
        check_parameter_count(model_cfg)
    except ValueError as error:
        raise JobError(str(error)) from None
    limit, source = training_memory_limit(device)
    need = estimate_training_bytes(model_cfg, train_cfg.batch_size)
    if need > limit:
        fits = largest_batch(model_cfg, limit)
        advice = (
            f"with this model a batch size of at most {fits:,} fits"
            if fits
            else "not even a batch of one image fits: choose fewer steps T, smaller LSTMs or attention"
        )
        raise JobError(
            f"this run would need about {need / GB:.1f} GB of memory (the model, Adam and the activations of a batch "
            f"of {train_cfg.batch_size:,}), more than the {limit / GB:.1f} GB {source}; {advice}"
        )


def checkpoint_bytes(model_cfg: DrawConfig) -> int:
    """The size of a run's checkpoint: float32 weights and Adam's two moments, plus the header."""
    return 3 * 4 * check_parameter_count(model_cfg) + CHECKPOINT_HEADER_BYTES


def check_disk(runs_dir: Path, path: Path, model_cfg: DrawConfig) -> None:
    """The runs folder's checkpoints, with this run's (replacing `path` when it exists), within
    DRAW_MAX_RUNS_DISK_MB; and room on the disk for the checkpoint and its temporary copy."""
    need, cap = checkpoint_bytes(model_cfg), settings.max_runs_disk_bytes()
    used = sum(p.stat().st_size for p in runs_dir.glob(f"*{catalog.EXTENSION}") if p.is_file() and p != path)
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
    """A fixed test digit reconstructed with the weights of training step `step` (batch dimension removed)."""

    step: int  # training step whose weights made it
    digit: torch.Tensor  # (C, H, W) the binarised input x
    canvases: torch.Tensor  # (T, C, H, W) sigma(c_t) after every step
    read_attn: AttentionParams | None  # (T,) fields; None without read attention
    write_attn: AttentionParams | None  # (T,) fields; None without write attention
    read_n: int  # read grid size N
    write_n: int  # write grid size N


@dataclass(frozen=True)
class JobSnapshot:
    """What a page shows of a job at one moment; a copy, safe to read while the job goes on."""

    name: str
    status: str  # 'running', 'finished', 'stopped' or 'failed'
    checkpoint_path: str  # where the run's checkpoint is (or will be) written
    model_config: DrawConfig
    train_config: TrainConfig
    device: str  # as asked for ('auto', 'cpu', 'cuda', ...)
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
    history_steps: tuple[int, ...] = ()  # steps of the loss history, thinned evenly when long
    history_recon: tuple[float, ...] = ()  # mean L^x (nats) at those steps
    history_kl: tuple[float, ...] = ()  # mean L^z (nats) at those steps
    kl_per_step: tuple[float, ...] = ()  # latest mean KL of each of the T steps
    samples: torch.Tensor | None = None  # (n, C, H, W) latest fresh samples in [0, 1]
    samples_step: int | None = None
    glimpses: GlimpseSnapshot | None = None
    test_elbo: float | None = None  # latest test bound, nats
    test_elbo_step: int | None = None
    last_checkpoint: str | None = None  # the last checkpoint actually written
    last_checkpoint_step: int | None = None
    error: str | None = None  # why the job failed
    finished_at: float | None = None  # time.time() when it ended
    steps_after_stop: int | None = None  # steps the loop finished after stop() was asked (0 or 1)
    note: str | None = None  # why the server stopped it, when it did (a limit of draw_core.settings)

    @property
    def active(self) -> bool:
        return self.status == "running"


@dataclass
class JobProgress:
    """The worker writes, pages read; every access goes through `lock`."""

    snapshot: JobSnapshot
    history_stride: int = 1  # keep every history_stride-th report in the loss history
    reports: int = 0  # step reports seen
    step_at_stop: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self) -> JobSnapshot:
        with self.lock:
            return self.snapshot

    def update(self, **changes) -> None:
        with self.lock:
            self.snapshot = replace(self.snapshot, **changes)

    def record_step(self, event: TrainEvent, glimpses: GlimpseSnapshot | None) -> None:
        with self.lock:
            current = self.snapshot
            steps, recon, kl = current.history_steps, current.history_recon, current.history_kl
            if self.reports % self.history_stride == 0:
                steps, recon, kl = steps + (event.step,), recon + (event.recon,), kl + (event.kl,)
                if len(steps) > MAX_HISTORY_POINTS:
                    steps, recon, kl = steps[::2], recon[::2], kl[::2]
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
                history_recon=recon,
                history_kl=kl,
                kl_per_step=tuple(event.kl_per_step),
            )
            if event.samples is not None:
                changes.update(samples=event.samples.detach().cpu(), samples_step=event.step)
            if glimpses is not None:
                changes.update(glimpses=glimpses)
            self.snapshot = replace(current, **changes)

    def request_stop(self) -> None:
        with self.lock:
            if not self.snapshot.stop_requested:
                self.step_at_stop = self.snapshot.step
                self.snapshot = replace(self.snapshot, stop_requested=True)

    def finish(self, status: str, *, step: int | None = None, error: str | None = None) -> None:
        with self.lock:
            changes = dict(
                status=status, finished_at=time.time(), error=error, eta_s=0.0 if status == "finished" else None
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


def reconstruct_glimpses(model: DRAW, digit: torch.Tensor, step: int) -> GlimpseSnapshot:
    """Reconstruct one binarised digit (C, H, W) with the model's current weights and fixed z noise."""
    trace = model.reconstruct(digit.unsqueeze(0), generator=torch.Generator().manual_seed(GLIMPSE_SEED))

    def first(params: AttentionParams | None) -> AttentionParams | None:
        return None if params is None else params.map(lambda value: value[:, 0].detach().cpu())  # (T,)

    cfg = model.cfg
    return GlimpseSnapshot(
        step=step,
        digit=digit,
        canvases=trace.canvases[:, 0].detach().cpu(),  # (T, C, H, W)
        read_attn=first(trace.read_attn),
        write_attn=first(trace.write_attn),
        read_n=cfg.read_n,
        write_n=cfg.write_n,
    )


def glimpse_digit(index: int) -> torch.Tensor:
    """Digit `index` of the shipped sample, binarised once with GLIMPSE_SEED: (1, 28, 28)."""
    images, _ = load_sample()
    if not 0 <= index < len(images):
        raise JobError(f"glimpse digit index {index} is out of range: expected 0 <= index < {len(images)}")
    return binarize(images[index], torch.Generator().manual_seed(GLIMPSE_SEED))


class Job:
    """One training run in a worker thread. Read it with snapshot(); end it early with stop()."""

    def __init__(
        self,
        *,
        name: str,
        path: Path,
        model_cfg: DrawConfig,
        train_cfg: TrainConfig,
        data_dir: str | None,
        resume: bool,
        glimpse_every: int,
        digit: torch.Tensor,
        max_seconds: float,
    ):
        self.name = name
        self.path = path
        self._model_cfg = model_cfg
        self._train_cfg = train_cfg
        self._data_dir = data_dir
        self._resume = resume
        self._glimpse_every = glimpse_every
        self._digit = digit
        self._last_glimpse_step: int | None = None
        self._stop = threading.Event()
        self._max_seconds = max_seconds
        self._started = time.monotonic()
        self._progress = JobProgress(
            JobSnapshot(
                name=name,
                status="running",
                checkpoint_path=str(path),
                model_config=model_cfg,
                train_config=train_cfg,
                device=train_cfg.device,
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
        """Ask the loop to end; it finishes the step in progress, writes its checkpoint and returns."""
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

    def _on_event(self, event: TrainEvent, model: DRAW) -> None:
        if event.kind == "step":
            glimpses = None
            due = self._last_glimpse_step is None or event.step - self._last_glimpse_step >= self._glimpse_every
            if due:
                glimpses = reconstruct_glimpses(model, self._digit, event.step)
                self._last_glimpse_step = event.step
            self._progress.record_step(event, glimpses)
        elif event.kind == "eval":
            self._progress.update(test_elbo=event.test_elbo, test_elbo_step=event.step)
        elif event.kind in ("checkpoint", "done"):
            changes = dict(last_checkpoint=event.checkpoint, last_checkpoint_step=event.step)
            if event.kind == "done":
                changes.update(progress=event.progress, elapsed_s=event.elapsed_s)
                if not event.stopped:  # a finished run measured its final bound; a stopped one skips it
                    changes.update(test_elbo=event.test_elbo, test_elbo_step=event.step)
                if self._last_glimpse_step != event.step:
                    changes["glimpses"] = reconstruct_glimpses(model, self._digit, event.step)
            self._progress.update(**changes)

    def _run(self) -> None:
        try:
            done = train(
                self._model_cfg,
                self._train_cfg,
                self.path,
                data_dir=self._data_dir,
                resume=self._resume,
                on_event=self._on_event,
                should_stop=self._should_stop,
            )
            self._progress.finish("stopped" if done.stopped else "finished", step=done.step)
        except Exception as error:  # anything at all (NaN, out of memory, bad data): the page shows it
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
        model_cfg: DrawConfig,
        train_cfg: TrainConfig,
        *,
        resume: bool = False,
        data_dir: str | None = None,
        glimpse_every: int = 10,
        glimpse_index: int = 0,
        token: str | None = None,
    ) -> Job:
        """Start training `name` in the background after checking every limit of this server (module docstring);
        raises JobForbiddenError (no teacher's token), JobBusyError or JobError instead of starting."""
        check_token(token)
        if not isinstance(model_cfg, DrawConfig) or not isinstance(train_cfg, TrainConfig):
            raise JobError("start() needs a DrawConfig and a TrainConfig (they validate the settings)")
        if glimpse_every < 1:
            raise JobError(f"glimpse_every={glimpse_every} must be >= 1")
        path = self.checkpoint_path(name)
        check_run_length(train_cfg)
        check_memory(model_cfg, train_cfg)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        check_disk(self.runs_dir, path, model_cfg)
        digit = glimpse_digit(glimpse_index)
        with self._lock:
            running = [job for job in self._jobs.values() if job.running]
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
            if path.exists() and not resume:
                raise JobError(f"a run named '{name}' already exists ({path}); choose another name or resume it")
            job = Job(
                name=name,
                path=path,
                model_cfg=model_cfg,
                train_cfg=train_cfg,
                data_dir=data_dir,
                resume=resume,
                glimpse_every=glimpse_every,
                digit=digit,
                max_seconds=settings.max_run_seconds(),
            )
            self._jobs.pop(name, None)
            self._jobs[name] = job
            job._start()
        return job

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

    def stop_all(self) -> None:
        """Stop every running job (the server's own call, when it shuts down; no token needed)."""
        for job in self.running():
            job.stop()


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide job manager, shared by every browser session."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
        return _manager
