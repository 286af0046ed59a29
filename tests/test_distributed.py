"""Data-parallel training (draw_core.training.distributed) for real: torchrun starts 2 CPU processes that meet over
gloo on the loopback address. Two processes with batch 4 each must follow one process with batch 8 to float
rounding (same weights, same loss curve), only rank 0 may write, a torchrun run must resume, and a rank that dies,
an unreachable rendezvous or a batch the processes cannot share must stop with a clear error and a whole checkpoint.

Run as a script (`torchrun ... tests/test_distributed.py OUT RECORD ...`), this file is the worker those launches
start: the CLI's own `train_here`, plus a record of every checkpoint write and every reported loss of its rank.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from draw_core.config import DrawConfig, TrainConfig
from draw_core.data import get_dataset
from draw_core.io.checkpoint import load_checkpoint
from draw_core.nn.model import DRAW
from draw_core.training import distributed
from draw_core.training import trainer as trainer_module
from draw_core.training.distributed import (
    DistributedError,
    DrawShard,
    ShardedStream,
    World,
    per_rank_batch,
    torchrun_world,
    train_distributed,
    train_here,
)
from draw_core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"  # git-ignored: the loss curves of the last run of the equivalence test
TINY = DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4)  # = --preset mnist --T 3 --enc-size 16 ...
TINY_ARGS = ["--preset", "mnist", "--T", "3", "--enc-size", "16", "--dec-size", "16", "--z-size", "4"]
GLOBAL_BATCH = 8


def tiny_train(steps: int, checkpoint_every: int) -> TrainConfig:
    """The TrainConfig `python -m draw_core.train` builds from cli_args(steps, checkpoint_every)."""
    return TrainConfig(
        dataset="mnist-sample",
        batch_size=GLOBAL_BATCH,
        steps=steps,
        device="cpu",
        eval_every=0,
        eval_limit=16,
        checkpoint_every=checkpoint_every,
        sample_every=0,
        log_every=1,  # only how often losses are reported: the training itself is the CLI's
    )


def cli_args(steps: int, checkpoint_every: int) -> list[str]:
    return [
        *TINY_ARGS,
        *("--dataset", "mnist-sample", "--batch-size", str(GLOBAL_BATCH), "--steps", str(steps), "--device", "cpu"),
        *("--eval-every", "0", "--eval-limit", "16", "--checkpoint-every", str(checkpoint_every)),
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    """torchrun with `processes` processes on this machine, meeting at 127.0.0.1 on a free port."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={processes}",
        "--master_addr=127.0.0.1",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, f"--master_port={free_port()}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_worker(out: Path, record: Path, steps: int, checkpoint_every: int, die_after: int = 0):
    args = [str(out), str(record), str(steps), str(checkpoint_every), str(die_after)]
    return torchrun(str(Path(__file__)), *args)


def weight_difference(first: dict, second: dict) -> float:
    return max((first[k] - second[k]).abs().max().item() for k in first)


def checkpoint_difference(a: Path, b: Path) -> float:
    return weight_difference(load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict())


def write_loss_curves(two: list[float], one: list[float]) -> None:
    import plotly.graph_objects as go

    ARTIFACTS.mkdir(exist_ok=True)
    curves = {"torchrun, 2 processes x batch 4": two, "1 process x batch 8": one}
    (ARTIFACTS / "distributed_loss_curves.json").write_text(json.dumps(curves, indent=1) + "\n")
    figure = go.Figure(
        [go.Scatter(x=list(range(1, len(v) + 1)), y=v, name=k, mode="lines+markers") for k, v in curves.items()]
    )
    figure.update_layout(xaxis_title="step", yaxis_title="loss of the global batch (nats per image)")
    figure.write_html(ARTIFACTS / "distributed_loss_curves.html", include_plotlyjs="cdn")


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """A torchrun run of 2 processes (batch 4 each) whose rank 1 dies after 5 steps; rank 0 checkpoints every 2."""
    folder = tmp_path_factory.mktemp("interrupted")
    out, record = folder / "out" / "run.safetensors", folder / "record"
    launched = run_worker(out, record, steps=1000, checkpoint_every=2, die_after=5)
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    return out, launched, ranks


def test_two_processes_follow_one_process_with_the_global_batch_and_only_rank_0_writes(interrupted_run, tmp_path):
    out, _launched, ranks = interrupted_run
    assert ranks[0]["saves"] == [str(out)] * 2 and ranks[1]["saves"] == []  # steps 2 and 4; rank 1 none
    assert ranks[1]["losses"] == []  # rank 1 reports nothing
    assert [step for step, _loss in ranks[0]["losses"]] == [1, 2, 3, 4, 5]
    saved = load_checkpoint(out)  # (before the reference: building a model draws from torch's global generator)
    one = Trainer.create(TINY, tiny_train(steps=1000, checkpoint_every=2), tmp_path / "run.safetensors")
    one_losses = [one.train_step()[0].loss.item() for _ in range(4)]  # one process, the global batch
    assert weight_difference(saved.model.state_dict(), one.model.state_dict()) < 1e-5  # rank 0's file at step 4
    one_losses.append(one.train_step()[0].loss.item())
    two_losses = [loss for _step, loss in ranks[0]["losses"]]
    write_loss_curves(two_losses, one_losses)
    assert two_losses == pytest.approx(one_losses, rel=1e-5)  # the global batch's loss, not rank 0's half
    meta = saved.meta
    assert (meta["world_size"], meta["per_rank_batch"], meta["backend"]) == (2, 4, "gloo")
    assert meta["hardware"].startswith("2 processes, each on "), meta["hardware"]


def test_a_rank_that_dies_stops_the_run_with_a_clear_error_and_a_whole_checkpoint(interrupted_run):
    out, launched, _ranks = interrupted_run
    assert launched.returncode != 0
    assert "DistributedError: rank 0 of 2:" in launched.stderr, launched.stderr[-3000:]
    assert "its last checkpoint (step 4) stays whole at" in launched.stderr and "rerun with --resume" in launched.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.safetensors"]  # no temporary file left
    saved = load_checkpoint(out)  # whole: it loads, with the last step rank 0 finished writing
    assert saved.meta["step"] == 4 and saved.optimizer_state is not None


def test_torchrun_resumes_the_last_good_checkpoint(interrupted_run, tmp_path):
    out, one = tmp_path / "two.safetensors", tmp_path / "one.safetensors"
    shutil.copy(interrupted_run[0], out)
    shutil.copy(interrupted_run[0], one)
    resumed = torchrun("-m", "draw_core.train", *cli_args(steps=7, checkpoint_every=0), "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("done: 7 steps") == 1  # rank 0 alone reports
    assert load_checkpoint(out).meta["step"] == 7
    Trainer.create(TINY, tiny_train(steps=7, checkpoint_every=0), one, resume=True).run()  # one process
    assert checkpoint_difference(out, one) < 1e-5  # both ranks resumed the weights and Adam's state of the file


def test_a_batch_the_processes_cannot_share_is_refused_on_every_rank_before_joining(tmp_path, monkeypatch, capsys):
    assert per_rank_batch(8, 2) == 4
    with pytest.raises(ValueError, match="multiple of 3, e.g. 6 or 9"):
        per_rank_batch(8, 3)
    for name in ("MASTER_ADDR", "MASTER_PORT"):  # nothing to join: the refusal cannot depend on the others
        monkeypatch.delenv(name, raising=False)
    for rank in range(3):
        with pytest.raises(ValueError, match="--batch-size 8 is the global batch"):
            train_distributed(World(rank=rank, local_rank=rank, world_size=3), TINY, tiny_train(2, 0), tmp_path / "x")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    from draw_core.train import main

    assert main([*cli_args(steps=2, checkpoint_every=0), "--out", str(tmp_path / "x")]) == 2
    assert "multiple of 3" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_unreachable_rendezvous_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))  # nobody listens there
    with pytest.raises(DistributedError, match=r"rank 1 of 2 could not join the run at 127\.0\.0\.1:\d+ within 1 s"):
        train_distributed(
            World(rank=1, local_rank=1, world_size=2), TINY, tiny_train(2, 0), tmp_path / "x", timeout_s=1
        )
    assert not any(tmp_path.iterdir())


def test_a_run_stopped_before_its_first_checkpoint_says_not_to_resume_and_other_ranks_defer_to_rank_0(tmp_path):
    out = tmp_path / "run.safetensors"
    message = distributed._kept(World(0, 0, 2), out, None)
    assert "has written no checkpoint yet: start it again without --resume" in message
    assert "rank 0's message" in distributed._kept(World(1, 1, 2), out, None)


def test_auto_picks_the_cpu_for_data_parallel_training_where_it_would_pick_mps(monkeypatch):
    monkeypatch.setattr(distributed, "select_device", lambda name: torch.device("mps"))
    assert distributed.rank_device("auto", World(0, 0, 2)) == "cpu"
    with pytest.raises(ValueError, match="not on mps: pass --device cpu"):
        distributed.rank_device("mps", World(0, 0, 2))


def test_torchrun_world_reads_the_environment():
    assert torchrun_world({}) is None
    assert torchrun_world({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}) == World(3, 1, 4)
    with pytest.raises(DistributedError, match="set but LOCAL_RANK not"):
        torchrun_world({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(DistributedError, match="expected 0 <= LOCAL_RANK <= RANK < WORLD_SIZE"):
        torchrun_world({"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})


def test_the_shards_of_the_ranks_are_disjoint_and_together_the_global_batch():
    spec = get_dataset("mnist-sample")
    one = spec.train_stream(None, 10, seed=3)
    shards = [ShardedStream(spec.train_stream(None, 10, seed=3), World(r, r, 2)) for r in (0, 1)]
    seen = [[], []]
    for _ in range(len(one.images) // 10):  # one epoch
        batch, index = one.next(), one._order[one._position - 10 : one._position]
        parts = [shard.next() for shard in shards]
        assert [len(p) for p in parts] == [5, 5] and torch.equal(torch.cat(parts), batch)
        seen[0] += index[:5].tolist()
        seen[1] += index[5:].tolist()
    assert not set(seen[0]) & set(seen[1]) and len(seen[0]) + len(seen[1]) == len(one.images)


def test_a_labelled_batch_is_sharded_row_for_row():
    class Labelled:  # a stream of (images, labels), as the classifiers' datasets give
        images = torch.zeros(12, 1, 28, 28)

        def next(self):
            return torch.arange(6.0).view(6, 1, 1, 1).expand(6, 1, 28, 28), torch.arange(6)

    parts = [ShardedStream(Labelled(), World(r, r, 3)).next() for r in range(3)]
    assert [labels.tolist() for _images, labels in parts] == [[0, 1], [2, 3], [4, 5]]
    assert all(torch.equal(images[:, 0, 0, 0], labels.float()) for images, labels in parts)


@pytest.mark.parametrize("sample", [True, False])
def test_the_ranks_of_drawshard_compute_what_one_process_computes_on_the_global_batch(sample):
    torch.manual_seed(0)
    model = DRAW(TINY)
    x = torch.bernoulli(torch.full((6, 1, 28, 28), 0.3))
    torch.manual_seed(1)
    whole = model(x, sample=sample)
    parts = []
    for rank in range(3):  # each rank starts from the same generator state, as every rank of a run does
        torch.manual_seed(1)
        parts.append(DrawShard(model, World(rank, rank, 3))(x[2 * rank : 2 * rank + 2], sample=sample))
    for name in ("mu", "z"):
        torch.testing.assert_close(torch.cat([getattr(p, name) for p in parts], dim=1), getattr(whole, name))
    torch.testing.assert_close(torch.cat([p.canvas_steps[-1] for p in parts]), whole.canvas_steps[-1])


def worker() -> None:
    """One rank under torchrun: the CLI's train_here with a record of its checkpoint writes and reported losses."""
    parser = argparse.ArgumentParser()
    for name in ("out", "record"):
        parser.add_argument(name, type=Path)
    for name in ("steps", "checkpoint_every", "die_after"):
        parser.add_argument(name, type=int)
    args = parser.parse_args()
    rank = int(os.environ["RANK"])
    saves, losses = [], []
    save = trainer_module.save_checkpoint

    def write_record():
        args.record.mkdir(parents=True, exist_ok=True)
        (args.record / f"rank{rank}.json").write_text(json.dumps({"saves": saves, "losses": losses}))

    def recorded_save(model, path, **options):
        saves.append(str(path))
        return save(model, path, **options)

    trainer_module.save_checkpoint = recorded_save
    if args.die_after and rank == 1:
        step = Trainer.train_step

        def train_step(self):
            if self.step == args.die_after:
                write_record()
                os._exit(3)  # a rank that dies without a word, as a killed process does
            return step(self)

        Trainer.train_step = train_step
    report = lambda event, _model: event.kind == "step" and losses.append((event.step, event.loss))  # noqa: E731
    try:
        train_here(TINY, tiny_train(args.steps, args.checkpoint_every), args.out, on_event=report)
    finally:
        write_record()


if __name__ == "__main__":
    torch.set_num_threads(1)
    worker()


def test_ranks_that_resumed_different_files_are_refused_by_name(monkeypatch, tmp_path):
    """check_same_start gathers every rank's first step: rank 1 found a later file than rank 0 (another --out on a
    disk the ranks do not share), so training from two different starts is refused with both steps named."""

    def gather(into, mine):  # what all_gather returns on rank 0 when rank 1 resumed step 6
        into[0].fill_(int(mine.item()))
        into[1].fill_(6)

    monkeypatch.setattr(distributed.dist, "all_gather", gather)
    rank_0 = SimpleNamespace(step=5, device=torch.device("cpu"), world=World(0, 0, 2), out=tmp_path / "run")
    with pytest.raises(DistributedError, match=r"rank 0 of 2: the ranks start from different steps \[5, 6\]"):
        distributed.DataParallelTrainer.check_same_start(rank_0)
    same = SimpleNamespace(step=6, device=torch.device("cpu"), world=World(0, 0, 2), out=tmp_path / "run")
    distributed.DataParallelTrainer.check_same_start(same)  # both at step 6: nothing to refuse
