"""Data-parallel training under torchrun: the same Trainer in every process, DistributedDataParallel between them.

    torchrun --nproc_per_node=N -m draw_core.train --batch-size B ...          # one machine, N processes
    torchrun --nnodes=M --node_rank=I --nproc_per_node=N --master_addr=HOST --master_port=PORT \
        -m draw_core.train --batch-size B ...                                   # M machines, run once on each

`python -m draw_core.train` calls `train_here`: under torchrun (RANK, WORLD_SIZE and LOCAL_RANK set) it trains
data-parallel with `train_distributed`, otherwise it is the plain one-process `train`. In a data-parallel run:
- `--batch-size` is the global batch B; each of the W ranks computes the loss of its b = B / W images. A W that does
  not divide B is refused on every rank before anything starts.
- Every rank draws the same global batch (same seed: same shuffle, same binarisation) and keeps its own rows
  (`ShardedStream`), so the ranks read disjoint parts of every epoch and together exactly what one process reads.
- DRAW's latent noise (eq. 6) is cut the same way (`DrawShard`), so the W ranks compute what one process computes on
  the global batch, and DistributedDataParallel's all-reduce averages the W slices' gradients into the global batch's
  gradient: W processes follow one process with batch B to float rounding (tests/test_distributed.py checks it).
- Rank 0 alone evaluates, reports and writes checkpoints (atomically, draw_core.io.checkpoint); the reported loss is
  the global batch's (`GlobalReport`); a time budget and the learning rate go by one clock agreed by all ranks.
- The backend is gloo on CPU and nccl on CUDA, one GPU per process (cuda:LOCAL_RANK).
- The checkpoint's meta records world_size, per_rank_batch and backend. `--resume` loads the same file on every rank
  (on several machines --out must be on a filesystem they all see; differing resumed steps are refused).
A rank that cannot join the run, or loses the others during it, stops with a DistributedError naming the rank and
the cause; the last checkpoint rank 0 wrote stays whole, and `--resume` continues from it.

Letters: W processes (world size), B global batch, b = B / W per-rank batch; T, Z as in draw_core.nn.model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from draw_core.config import TrainConfig
from draw_core.nn.model import DRAW, standard_normal
from draw_core.training.devices import select_device
from draw_core.training.objectives import BatchLoss
from draw_core.training.trainer import Trainer, TrainEvent, TrainingDiverged, train

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # set by torchrun in every process it starts
RENDEZVOUS_VARIABLES = ("MASTER_ADDR", "MASTER_PORT")  # where the processes meet (torchrun sets them too)
JOIN_TIMEOUT_S = 1800.0  # PyTorch's default; it also bounds a collective, e.g. the wait while rank 0 evaluates


class DistributedError(RuntimeError):
    """A data-parallel run could not start or lost a process; the message names the rank and what to check."""


@dataclass(frozen=True)
class World:
    rank: int  # this process among all of the run's (RANK); rank 0 evaluates, reports and writes checkpoints
    local_rank: int  # this process among its machine's (LOCAL_RANK); on CUDA it trains on cuda:LOCAL_RANK
    world_size: int  # processes in the run (WORLD_SIZE), W

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.world_size}"


def torchrun_world(environ: Mapping[str, str] | None = None) -> World | None:
    """The World torchrun describes in the environment, or None when this process was not started by it."""
    environ = os.environ if environ is None else environ
    present = [name for name in TORCHRUN_VARIABLES if name in environ]
    if not present:
        return None
    missing = [name for name in TORCHRUN_VARIABLES if name not in environ]
    if missing:
        raise DistributedError(
            f"{', '.join(present)} set but {', '.join(missing)} not: start data-parallel training with torchrun, "
            "which sets all of RANK, WORLD_SIZE and LOCAL_RANK"
        )
    try:
        rank, local_rank, world_size = (int(environ[name]) for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    except ValueError:
        values = {name: environ[name] for name in TORCHRUN_VARIABLES}
        raise DistributedError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers, got {values}") from None
    if not (world_size >= 1 and 0 <= rank < world_size and 0 <= local_rank <= rank):
        raise DistributedError(
            f"RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={world_size}: expected 0 <= LOCAL_RANK <= RANK < "
            "WORLD_SIZE"
        )
    return World(rank=rank, local_rank=local_rank, world_size=world_size)


def is_main_process() -> bool:
    """Whether this process reports and writes (true outside torchrun, and on rank 0 under it)."""
    return os.environ.get("RANK", "0") == "0"


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """b = B / W, or a ValueError when the W processes cannot share the global batch B evenly."""
    if batch_size % world_size:
        lower, higher = batch_size // world_size * world_size, (batch_size // world_size + 1) * world_size
        options = f"{lower} or {higher}" if lower else f"{higher}"
        raise ValueError(
            f"--batch-size {batch_size} is the global batch and must split evenly over the {world_size} processes "
            f"(each computes batch-size / {world_size} images): use a multiple of {world_size}, e.g. {options}"
        )
    return batch_size // world_size


def rank_device(requested: str, world: World) -> str:
    """The device of this rank: cuda:LOCAL_RANK when CUDA is asked for (or 'auto' finds it), else the CPU."""
    device = select_device(requested)
    if device.type == "cuda":
        if device.index is not None:
            raise ValueError(
                f"--device {requested}: under torchrun each process trains on cuda:LOCAL_RANK; pass --device cuda "
                "(and choose the GPUs with CUDA_VISIBLE_DEVICES)"
            )
        if world.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"{world} has LOCAL_RANK {world.local_rank} but this machine has {torch.cuda.device_count()} GPUs: "
                "start at most one process per GPU (--nproc_per_node)"
            )
        return f"cuda:{world.local_rank}"
    if device.type != "cpu" and requested == "auto":  # 'auto' found MPS: gloo's CPU is the data-parallel choice
        return "cpu"
    if device.type != "cpu":
        raise ValueError(
            f"data-parallel training runs on the CPU (gloo) or on CUDA (nccl), not on {device}: pass --device cpu"
        )
    return "cpu"


def backend_for(device: torch.device) -> str:
    """The collective backend of a device: nccl between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def _rows(batch, world: World):
    """This rank's rows [rank b, (rank + 1) b) of a global batch (a tensor, or a tuple of them such as images and
    labels)."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(_rows(part, world) for part in batch)
    b = len(batch) // world.world_size
    return batch[world.rank * b : (world.rank + 1) * b]  # (b, ...)


class ShardedStream:
    """One rank's part of a stream of global batches. Every rank draws the same global batch from the same seed and
    keeps its rows, so the W parts are disjoint and together are the batch one process would train on."""

    def __init__(self, stream, world: World):
        self.stream = stream  # of global batches (B, ...)
        self.world = world
        self.images = stream.images  # the whole training set: epochs count passes over it

    def next(self):
        """(b, ...) this rank's rows of the next global batch."""
        return _rows(self.stream.next(), self.world)


class DrawShard(nn.Module):
    """DRAW on one rank's rows of the global batch with the same rows of the global batch's latent noise: every rank
    draws the (T, B, Z) noise one process would draw (same seed) and keeps its b columns, so z_t = mu_t + sigma_t *
    noise (eq. 6) is what one process computes for those images."""

    def __init__(self, model: DRAW, world: World):
        super().__init__()
        self.model = model
        self.world = world

    def forward(self, x: torch.Tensor, *, sample: bool = True):
        """DRAW.forward on this rank's rows x (b, C, H, W); sample=False takes z_t = mu_t (no noise), as it does."""
        cfg = self.model.cfg
        b = x.shape[0]
        if not sample:
            return self.model.run(x, x.new_zeros(cfg.T, b, cfg.z_size))
        noise = standard_normal((cfg.T, b * self.world.world_size, cfg.z_size), None, x.device)  # (T, B, Z)
        return self.model.run(x, noise[:, self.world.rank * b : (self.world.rank + 1) * b])  # eq. 6 on (T, b, Z)


def shard_network(model: nn.Module, world: World, seed: int) -> nn.Module:
    """What this rank's loss calls, before DistributedDataParallel wraps it: DRAW with its slice of the global noise
    (DrawShard); a model of another kind as it is, with its own random stream on every rank but rank 0 (seed + rank),
    so that the ranks do not draw the same randomness for different images."""
    if isinstance(model, DRAW):
        return DrawShard(model, world)
    if world.rank:
        torch.manual_seed(seed + world.rank)
    return model


class GlobalReport:
    """An objective whose per-batch figures are the global batch's: the loss's value, its report and its per-step
    figures are averaged over the ranks (one all-reduce), while the loss's gradient stays this rank's (which
    DistributedDataParallel averages). The finite-loss guard therefore stops every rank at the same step."""

    def __init__(self, objective, world_size: int):
        self.objective = objective
        self.world_size = world_size

    def __getattr__(self, name: str):
        return getattr(self.objective, name)

    def batch_loss(self, network: nn.Module, batch) -> BatchLoss:
        result = self.objective.batch_loss(network, batch)
        names, n = list(result.report), len(result.report)
        rest = torch.tensor([*result.report.values(), *result.per_step], dtype=torch.float64)
        figures = torch.cat([result.loss.detach().double().reshape(1), rest.to(result.loss.device)])  # (1 + n + T,)
        dist.all_reduce(figures)
        figures /= self.world_size
        loss = result.loss + (figures[0].to(result.loss.dtype) - result.loss).detach()  # value global, gradient local
        values = figures[1:].tolist()
        return BatchLoss(loss=loss, report=dict(zip(names, values[:n], strict=True)), per_step=values[n:])


class DataParallelTrainer(Trainer):
    """The Trainer of one rank (see the module docstring): a sharded stream, DistributedDataParallel around the
    sharded network, global batch figures, rank 0 alone evaluating and writing."""

    def __init__(self, *, world: World, backend: str, **options):
        train_cfg: TrainConfig = options["train_cfg"]
        meta = {
            **(options.pop("meta_extra", None) or {}),
            "world_size": world.world_size,
            "per_rank_batch": per_rank_batch(train_cfg.batch_size, world.world_size),
            "backend": backend,
        }
        super().__init__(is_main=world.rank == 0, meta_extra=meta, **options)
        self.hardware = f"{world.world_size} processes, each on {self.hardware}"  # the card's hardware: all of them
        self.world = world
        self.stream = ShardedStream(self.stream, world)
        self.objective = GlobalReport(self.objective, world.world_size)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.use_network(DistributedDataParallel(shard_network(self.model, world, train_cfg.seed), device_ids))

    def schedule_time(self) -> float:
        """The largest `elapsed` of all ranks when a time budget runs (so they agree on the rate and on the end)."""
        if not self.cfg.time_budget_s:
            return self.elapsed  # steps alone drive the schedule: nothing to agree on
        clock = torch.tensor([self.elapsed], dtype=torch.float64, device=self.device)
        dist.all_reduce(clock, op=dist.ReduceOp.MAX)
        return clock.item()

    def check_same_start(self) -> None:
        """Every rank must start from the same step (all resumed the same file, or none did)."""
        mine = torch.tensor([self.step], device=self.device)
        steps = [torch.zeros_like(mine) for _ in range(self.world.world_size)]
        dist.all_gather(steps, mine)
        starts = [int(step.item()) for step in steps]
        if len(set(starts)) > 1:
            raise DistributedError(
                f"{self.world}: the ranks start from different steps {starts} (rank r at starts[r]): every rank must "
                f"read the same --out {self.out} (on several machines, put it on a filesystem they all see)"
            )


def _kept(world: World, out: Path, trainer: Trainer | None) -> str:
    """What a stopped data-parallel run leaves: rank 0 names this run's last checkpoint or says there is none."""
    if world.rank != 0:
        return "rank 0's message says which checkpoint of this run is kept"
    saved = None if trainer is None else trainer.last_saved_step
    if saved is None:
        return (
            f"this run has written no checkpoint yet: start it again without --resume (with --force, as {out} may "
            "hold an earlier run)"
        )
    return f"its last checkpoint (step {saved}) stays whole at {out}; rerun with --resume to continue from it"


@contextlib.contextmanager
def _stop_on_sigterm(world: World, out: Path, running: dict):
    """torchrun ends the other processes with SIGTERM when one fails: turn it into a DistributedError (which also
    removes a checkpoint's temporary file, should rank 0 be writing one). `running` holds the rank's trainer once
    it exists, for the message."""

    def stop(signum, _frame):
        raise DistributedError(
            f"{world}: stopped by the launcher (signal {signum}): another rank failed or the run was cancelled; "
            + _kept(world, out, running.get("trainer"))
        )

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except BaseException:
        # This rank is already ending with an error that says what is kept; the launcher's SIGTERM, which follows
        # when a rank fails, must not kill it (the default action) before that error is printed.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise
    signal.signal(signal.SIGTERM, previous)


def join(world: World, backend: str, timeout_s: float) -> None:
    """Join the run's process group at MASTER_ADDR:MASTER_PORT; a DistributedError when that fails in time."""
    missing = [name for name in RENDEZVOUS_VARIABLES if name not in os.environ]
    if missing:
        raise DistributedError(f"{world}: {', '.join(missing)} not set: start data-parallel training with torchrun")
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        dist.init_process_group(
            backend, rank=world.rank, world_size=world.world_size, timeout=datetime.timedelta(seconds=timeout_s)
        )
    except dist.DistError as error:  # DistNetworkError, DistStoreError: nobody answered, or not all ranks came
        raise DistributedError(
            f"{world} could not join the run at {where} within {timeout_s:g} s ({type(error).__name__}: {error}). "
            "Check that every machine was started with the same --master_addr/--master_port (or --rdzv-endpoint) and "
            "--nnodes, that the address is reachable from here (firewall), and that no rank failed to start"
        ) from None


def train_distributed(
    world: World,
    model_cfg,
    train_cfg: TrainConfig,
    out: str | Path,
    *,
    data_dir: str | None = None,
    resume: bool = False,
    timeout_s: float = JOIN_TIMEOUT_S,
    **options,
) -> TrainEvent:
    """This rank's part of a data-parallel run (see the module docstring); returns the 'done' event (on ranks other
    than 0 it carries no checkpoint). Raises ValueError for a batch or a device the run cannot use, before joining."""
    out = Path(out)
    per_rank_batch(train_cfg.batch_size, world.world_size)
    train_cfg = dataclasses.replace(train_cfg, device=rank_device(train_cfg.device, world))
    device = torch.device(train_cfg.device)
    backend = backend_for(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    join(world, backend, timeout_s)
    try:
        running = {}
        with _stop_on_sigterm(world, out, running):
            trainer = running["trainer"] = DataParallelTrainer.create(
                model_cfg, train_cfg, out, data_dir=data_dir, resume=resume, world=world, backend=backend, **options
            )
            try:
                trainer.check_same_start()
                return trainer.run()
            except (TrainingDiverged, DistributedError):
                raise
            except RuntimeError as error:  # gloo and nccl report a dead peer or a lost network as RuntimeErrors
                raise DistributedError(
                    f"{world}: stopped at step {trainer.step + 1} by {type(error).__name__}: {error}\n"
                    "In a data-parallel run this usually means that another rank died or the network failed (see "
                    "the other ranks' messages); " + _kept(world, out, trainer)
                ) from error
    finally:
        dist.destroy_process_group()


def train_here(model_cfg, train_cfg: TrainConfig, out: str | Path, **options) -> TrainEvent:
    """`train` in this process: one rank of a data-parallel run under torchrun, else the plain one-process loop."""
    world = torchrun_world()
    if world is None:
        return train(model_cfg, train_cfg, out, **options)
    return train_distributed(world, model_cfg, train_cfg, out, **options)
