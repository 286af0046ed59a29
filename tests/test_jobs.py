"""The training job manager (draw_core.training.jobs), without Streamlit: start, watch, stop, failures, one at a
time; generators and the classifiers of sec. 4.1; the fixed-z sample strip; a stopped run's test figure."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import draw_core.training.jobs as jobs
import draw_core.training.objectives as objectives_module
from draw_core import settings
from draw_core.config import DrawConfig, TrainConfig
from draw_core.data import get_dataset, mnist, registry
from draw_core.io import catalog
from draw_core.io.checkpoint import load_checkpoint
from draw_core.nn.classifier import ClassifierConfig
from draw_core.nn.elbo import LossTerms
from draw_core.nn.kinds import kind_of_config
from draw_core.nn.model import DRAW
from draw_core.nn.ram import RamConfig
from draw_core.presets import get_preset
from draw_core.training import devices
from draw_core.training.objectives import objective_for
from draw_core.training.trainer import TrainEvent

TINY = DrawConfig(T=4, enc_size=32, dec_size=32, z_size=8)
TINY_DRAW_CLASSIFIER = ClassifierConfig(glimpses=3, read_n=4, hidden=16)
TINY_RAM = RamConfig(glimpses=3, patch=4, scales=2, glimpse_hidden=8, location_hidden=8, glimpse_size=16, hidden=16)
HANG_GUARD_S = 60  # only so a broken job fails the test instead of hanging it; nothing here measures speed


def tiny_train(**changes) -> TrainConfig:
    settings = dict(
        dataset="mnist-sample",
        batch_size=8,
        steps=30,
        warmup_steps=0,
        log_every=1,
        sample_every=2,
        eval_every=0,
        eval_limit=20,
        checkpoint_every=0,
        device="cpu",
    )
    return TrainConfig(**{**settings, **changes})


def wait_for(job: jobs.Job, predicate, what: str) -> jobs.JobSnapshot:
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        snapshot = job.snapshot()
        if predicate(snapshot):
            return snapshot
        if not job.running and not predicate(job.snapshot()):
            pytest.fail(f"job ended ({snapshot.status}, {snapshot.error}) before {what}")
        time.sleep(0.02)
    job.stop()
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def cluttered_from_sample(monkeypatch):
    """mnist-cluttered made from the shipped MNIST sample instead of MNIST's files (both splits), so the classifiers
    train anywhere; its example image is the same as with the real data (it comes from the sample anyway)."""
    monkeypatch.setattr(registry.ClutteredMnist, "required_files", lambda self, root: [mnist.SAMPLE_PATH])
    monkeypatch.setattr(registry.ClutteredMnist, "_digits", lambda self, split, data_dir: mnist.load_sample())


@pytest.fixture
def manager(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAW_RUNS_DIR", str(tmp_path / "runs"))
    created = jobs.JobManager(max_running=1)
    yield created
    created.stop_all()
    for job in created.jobs():
        job.wait(HANG_GUARD_S)


def test_progress_arrives_then_stop_ends_within_one_step_with_a_stopped_checkpoint(manager, tmp_path):
    job = manager.start("watch", TINY, tiny_train(steps=1_000_000), glimpse_every=2)
    assert job.path == tmp_path / "runs" / "watch.safetensors"
    first = wait_for(job, lambda s: s.step >= 3 and s.glimpses is not None and s.samples is not None, "progress")
    later = wait_for(job, lambda s: s.step > first.step + 2, "more steps")
    assert later.history_steps == tuple(sorted(later.history_steps)) and len(later.history_steps) >= 3
    assert set(later.history) == {"loss", "recon", "kl"}
    assert all(len(values) == len(later.history_steps) for values in later.history.values())
    assert all(math.isfinite(v) and v > 0 for v in later.history["recon"] + later.history["kl"])
    assert later.history["loss"] == pytest.approx(
        [r + k for r, k in zip(later.history["recon"], later.history["kl"], strict=True)]
    )
    assert len(later.per_step) == TINY.T
    assert later.device == "cpu" and later.kind == "draw"
    assert later.samples.shape == (16, 1, 28, 28)
    glimpses = later.glimpses
    assert glimpses.canvases.shape == (TINY.T, 1, 28, 28) and glimpses.image.shape == (1, 28, 28)
    assert set(glimpses.image.unique().tolist()) <= {0.0, 1.0}  # mnist-sample is Bernoulli data: binarised
    assert glimpses.read_attn.gx.shape == (TINY.T,) and glimpses.write_attn.sigma2.shape == (TINY.T,)
    assert (glimpses.read_n, glimpses.write_n) == (TINY.read_n, TINY.write_n)
    assert later.status == "running" and later.eta_s is not None and later.images_per_s > 0

    job.stop()
    assert job.wait(HANG_GUARD_S)
    final = job.snapshot()
    assert final.status == "stopped" and final.error is None and not final.evaluating
    assert final.steps_after_stop in (0, 1)  # the loop finishes at most the step it was in
    checkpoint = load_checkpoint(job.path)
    assert checkpoint.meta["stopped"] is True and checkpoint.meta["finished"] is False
    assert checkpoint.meta["step"] == final.step == final.last_checkpoint_step
    assert checkpoint.config == TINY
    # The stopped run's final weights were tested after all, on every test image asked for, and the card says so.
    assert final.test.name == "test_elbo_nats" and final.test_step == final.step and final.test.n == 20
    assert checkpoint.meta["test_elbo_nats"] == final.test.value


def test_glimpses_change_as_the_weights_learn(manager):
    job = manager.start("learn", TINY, tiny_train(steps=1_000_000, lr=1e-2), glimpse_every=1)
    early = wait_for(job, lambda s: s.glimpses is not None, "a glimpse").glimpses
    late = wait_for(job, lambda s: s.glimpses is not None and s.glimpses.step >= early.step + 5, "a later glimpse")
    job.stop()
    assert job.wait(HANG_GUARD_S)
    assert torch.equal(early.image, late.glimpses.image)  # the same example image every time
    assert not torch.allclose(early.canvases, late.glimpses.canvases)  # drawn by different weights


def test_a_finished_job_is_listed_in_the_catalog(manager):
    job = manager.start("done", TINY, tiny_train(steps=5, eval_every=0))
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "finished" and snapshot.step == 5 and snapshot.progress == 1.0
    assert snapshot.test.name == "test_elbo_nats" and snapshot.test.value > 0  # the final bound on 20 test digits
    assert snapshot.test_step == 5 and snapshot.test_history == ((5, snapshot.test.value),)
    entries = {entry.name: entry for entry in catalog.list_checkpoints() if entry.kind == "run"}
    assert entries["done"].path == job.path
    assert entries["done"].card["finished"] is True and entries["done"].card["step"] == 5


def test_an_exception_inside_the_job_surfaces_and_frees_the_slot(manager, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    real_run = jobs.Trainer.run
    monkeypatch.setattr(jobs.Trainer, "run", out_of_memory)
    job = manager.start("oom", TINY, tiny_train())
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "failed"
    assert "OutOfMemoryError" in snapshot.error and "Tried to allocate 2.00 GiB" in snapshot.error
    monkeypatch.setattr(jobs.Trainer, "run", real_run)
    assert manager.start("after-oom", TINY, tiny_train(steps=2)).wait(HANG_GUARD_S)


def test_an_unknown_or_missing_dataset_is_refused_before_anything_starts(manager, tmp_path, monkeypatch):
    with pytest.raises(jobs.JobError, match="unknown dataset 'no-such-set': expected one of .*'mnist-cluttered'"):
        manager.start("nodata", TINY, tiny_train(dataset="no-such-set"))
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(jobs.JobError, match=r"mnist is not on this server: it needs .*train-images-idx3-ubyte"):
        manager.start("nodata", TINY, tiny_train(dataset="mnist"))
    assert manager.jobs() == [] and not manager.checkpoint_path("nodata").exists()


def test_a_dataset_of_the_other_task_or_size_is_refused(manager):
    with pytest.raises(jobs.JobError, match="mnist-cluttered is a classification dataset"):
        manager.start("gen-on-labels", TINY, tiny_train(dataset="mnist-cluttered"))
    with pytest.raises(jobs.JobError, match="mnist-sample has no labels to score a 'draw-classifier'"):
        manager.start("classify-digits", TINY_DRAW_CLASSIFIER, tiny_train(dataset="mnist-sample"))
    with pytest.raises(jobs.JobError, match="mnist-sample holds 1x28x28 images; the model takes 1x20x20"):
        manager.start("wrong-size", DrawConfig(T=2, height=20, width=20), tiny_train())
    assert manager.jobs() == []


def test_nan_loss_fails_the_job_and_keeps_the_last_good_checkpoint(manager, monkeypatch):
    real_loss_terms = objectives_module.loss_terms
    calls = {"n": 0}

    def poisoned_after_seven(result, x):
        terms = real_loss_terms(result, x)
        calls["n"] += 1
        if calls["n"] <= 7:
            return terms
        return LossTerms(recon=terms.recon * math.nan, kl=terms.kl, kl_per_step=terms.kl_per_step)

    monkeypatch.setattr(objectives_module, "loss_terms", poisoned_after_seven)
    job = manager.start("nan", TINY, tiny_train(checkpoint_every=3))
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "failed"
    assert "TrainingDiverged" in snapshot.error and "step 8" in snapshot.error
    assert "saved" not in snapshot.error, "the page says which checkpoint is kept, once"
    assert snapshot.last_checkpoint_step == 7  # step 8 was not applied: step 7's weights, though the last save was 6
    assert load_checkpoint(job.path).meta["step"] == 7  # the last good weights, loadable


def test_a_second_start_while_busy_is_refused_naming_the_running_job(manager):
    first = manager.start("teacher-run", TINY, tiny_train(steps=1_000_000))
    with pytest.raises(jobs.JobBusyError, match="'teacher-run'"):
        manager.start("student-run", TINY, tiny_train())
    assert manager.get("student-run") is None and manager.running() == [first]
    first.stop()
    assert first.wait(HANG_GUARD_S)
    assert manager.start("student-run", TINY, tiny_train(steps=2)).wait(HANG_GUARD_S)


def test_two_jobs_may_run_when_the_setting_allows_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAW_MAX_JOBS", "2")
    manager = jobs.JobManager(runs_dir=tmp_path)
    assert manager.max_running == 2
    both = [manager.start(name, TINY, tiny_train(steps=1_000_000)) for name in ("a", "b")]
    with pytest.raises(jobs.JobBusyError, match="'a'.*'b'"):
        manager.start("c", TINY, tiny_train())
    manager.stop_all()
    assert all(job.wait(HANG_GUARD_S) for job in both)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_max_jobs_setting_is_refused(monkeypatch, value):
    monkeypatch.setenv("DRAW_MAX_JOBS", value)
    with pytest.raises(settings.SettingError, match=f"DRAW_MAX_JOBS='{value}' must be a whole number >= 1"):
        jobs.JobManager()


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 65, "sp ace", "semi;colon"])
def test_unsafe_run_names_are_refused(manager, name):
    with pytest.raises(jobs.JobError, match="run name"):
        manager.start(name, TINY, tiny_train())
    assert manager.jobs() == []


def test_an_existing_run_is_refused_unless_resumed(manager):
    assert manager.start("again", TINY, tiny_train(steps=3)).wait(HANG_GUARD_S)
    with pytest.raises(jobs.JobError, match="already exists.*resume"):
        manager.start("again", TINY, tiny_train(steps=6))
    resumed = manager.start("again", TINY, tiny_train(steps=6), resume=True)
    assert resumed.wait(HANG_GUARD_S)
    assert resumed.snapshot().status == "finished"
    assert load_checkpoint(resumed.path).meta["step"] == 6  # went on from step 3


def test_the_manager_is_one_per_process_shared_by_every_caller():
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(jobs.get_manager())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(manager is jobs.get_manager() for manager in seen)


def step_event(step: int, progress: float, elapsed_s: float) -> TrainEvent:
    return TrainEvent(
        kind="step",
        step=step,
        total_steps=100,
        elapsed_s=elapsed_s,
        epoch=0.0,
        report={"recon": float(step), "kl": 1.0},
        progress=progress,
    )


def blank_progress() -> jobs.JobProgress:
    return jobs.JobProgress(
        jobs.JobSnapshot(
            name="h",
            status="running",
            checkpoint_path="h",
            model_config=TINY,
            train_config=tiny_train(),
            device="cpu",
            resume=False,
            started_at=0.0,
            stop_requested=False,
        )
    )


def test_loss_history_is_thinned_evenly_and_keeps_its_start():
    progress = blank_progress()
    reports = 2 * jobs.MAX_HISTORY_POINTS + 10
    for step in range(1, reports + 1):
        progress.record_step(step_event(step, step / reports, float(step)), None)
    steps = progress.read().history_steps
    assert len(steps) <= jobs.MAX_HISTORY_POINTS and steps[0] == 1
    assert {b - a for a, b in itertools.pairwise(steps)} == {4}  # one even stride after two halvings
    assert progress.read().history["recon"] == tuple(float(s) for s in steps)  # every series thinned alike
    assert progress.read().history["kl"] == (1.0,) * len(steps)


def test_eta_is_exact_for_a_time_budget_and_unknown_before_progress():
    assert jobs.estimate_eta(elapsed_s=30.0, progress=0.25) == pytest.approx(90.0)
    assert jobs.estimate_eta(elapsed_s=5.0, progress=0.0) is None
    assert jobs.estimate_eta(elapsed_s=50.0, progress=1.0) == 0.0


# Issue 11: a teacher's control and the server's limits.


def test_with_an_admin_token_only_sessions_that_give_it_start_and_stop_jobs(manager, monkeypatch):
    monkeypatch.setenv("DRAW_ADMIN_TOKEN", "s3cret")
    for token in (None, "", "S3CRET", "s3cret "):
        assert not jobs.token_accepted(token)
        with pytest.raises(jobs.JobForbiddenError, match="DRAW_ADMIN_TOKEN"):
            manager.start("student", TINY, tiny_train(steps=1_000_000), token=token)
    assert manager.jobs() == []
    job = manager.start("teacher", TINY, tiny_train(steps=1_000_000), token="s3cret")
    with pytest.raises(jobs.JobForbiddenError):
        manager.stop("teacher", token="guess")
    assert job.running and not job.snapshot().stop_requested
    manager.stop("teacher", token="s3cret")
    assert job.wait(HANG_GUARD_S) and job.snapshot().status == "stopped"
    monkeypatch.delenv("DRAW_ADMIN_TOKEN")
    assert jobs.token_accepted(None)  # no token set: every session may
    with pytest.raises(jobs.JobError, match="no training job named 'nobody'"):
        manager.stop("nobody")


def test_runs_longer_than_the_limits_are_refused(manager, monkeypatch):
    monkeypatch.setenv("DRAW_MAX_RUN_STEPS", "100")
    with pytest.raises(jobs.JobError, match=r"steps=101 is over this server's limit of 100 .*DRAW_MAX_RUN_STEPS"):
        manager.start("long", TINY, tiny_train(steps=101))
    monkeypatch.setenv("DRAW_MAX_RUN_HOURS", "2")
    with pytest.raises(jobs.JobError, match=r"3.00 h is over this server's limit of 2.00 h .*DRAW_MAX_RUN_HOURS"):
        manager.start("slow", TINY, tiny_train(steps=100, time_budget_s=3 * 3600.0))
    assert manager.jobs() == []


def test_a_run_that_reaches_the_time_limit_stops_with_its_checkpoint(manager, monkeypatch):
    monkeypatch.setattr(settings, "max_run_seconds", lambda: 1.0)
    job = manager.start("capped", TINY, tiny_train(steps=1_000_000))
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "stopped" and "DRAW_MAX_RUN_HOURS" in snapshot.note
    assert load_checkpoint(job.path).meta["step"] == snapshot.step > 0


def test_a_run_that_needs_more_memory_than_allowed_is_refused_saying_what_fits(manager, monkeypatch):
    paper = DrawConfig.preset("mnist")
    monkeypatch.setenv("DRAW_MAX_TRAIN_MEMORY_MB", "1024")
    limit = 1024 * 2**20
    fits = devices.largest_batch(paper, limit)
    assert devices.estimate_training_bytes(paper, fits) <= limit < devices.estimate_training_bytes(paper, fits + 1)
    with pytest.raises(jobs.JobError, match=f"a batch size of at most {fits:,} fits") as error:
        manager.start("big-batch", paper, tiny_train(batch_size=fits + 1))
    assert "DRAW_MAX_TRAIN_MEMORY_MB" in str(error.value) and "1.0 GB" in str(error.value)
    jobs.check_memory(paper, tiny_train(batch_size=fits))  # the batch it names passes
    wide = DrawConfig(height=256, width=256, channels=4, T=256, read_n=12, write_n=12)  # ~1 GB saved per image
    with pytest.raises(jobs.JobError, match="not even a batch of one image fits"):
        jobs.check_memory(wide, tiny_train(batch_size=1))  # no dataset has its size: the estimate alone
    monkeypatch.setattr(devices, "free_memory_bytes", lambda device: 700 * 2**20)  # less free than the cap
    with pytest.raises(jobs.JobError, match=r"0.7 GB free on cpu now"):
        manager.start("squeezed", paper, tiny_train(batch_size=fits))
    assert manager.jobs() == []


def test_a_model_over_the_parameter_limit_or_a_bad_device_is_refused(manager, monkeypatch):
    monkeypatch.setenv("DRAW_MAX_PARAMS", "1000")
    with pytest.raises(jobs.JobError, match="over this server's limit of 1,000 .*DRAW_MAX_PARAMS"):
        manager.start("params", TINY, tiny_train())
    monkeypatch.delenv("DRAW_MAX_PARAMS")
    with pytest.raises(jobs.JobError, match="unknown device 'bogus'"):
        manager.start("device", TINY, tiny_train(device="bogus"))
    assert manager.jobs() == []


def test_runs_may_not_fill_more_disk_than_allowed(manager, monkeypatch):
    manager.runs_dir.mkdir(parents=True)
    old = manager.runs_dir / "old.safetensors"
    with open(old, "wb") as handle:
        handle.truncate(3 * 2**20)  # 3 MB of earlier runs
    need = jobs.checkpoint_bytes(TINY)
    monkeypatch.setenv("DRAW_MAX_RUNS_DISK_MB", "3")
    with pytest.raises(
        jobs.JobError, match=r"holds 3 MB of checkpoints.*over the 3 MB allowed \(DRAW_MAX_RUNS_DISK_MB\)"
    ):
        manager.start("one-more", TINY, tiny_train(steps=2))
    monkeypatch.setenv("DRAW_MAX_RUNS_DISK_MB", "4")
    assert 3 * 2**20 + need <= 4 * 2**20
    assert manager.start("one-more", TINY, tiny_train(steps=2)).wait(HANG_GUARD_S)


def test_a_run_under_way_that_has_not_written_its_checkpoint_counts_against_the_disk_limit(manager, monkeypatch):
    monkeypatch.setattr(manager, "max_running", 2)
    manager.runs_dir.mkdir(parents=True)
    with open(manager.runs_dir / "old.safetensors", "wb") as handle:
        handle.truncate(4 * 2**20 - int(1.5 * jobs.checkpoint_bytes(TINY)))  # room left for one checkpoint, not two
    monkeypatch.setenv("DRAW_MAX_RUNS_DISK_MB", "4")
    first = manager.start("first", TINY, tiny_train(steps=1_000_000, checkpoint_every=0))  # writes only at its end
    assert not first.path.exists()
    with pytest.raises(jobs.JobError, match="DRAW_MAX_RUNS_DISK_MB"):
        manager.start("second", TINY, tiny_train(steps=2))
    first.stop()
    assert first.wait(HANG_GUARD_S)


def test_a_run_under_way_counts_against_the_free_memory_of_the_next(manager, monkeypatch):
    """With DRAW_MAX_JOBS = 2, a second Start must leave room for the first run's peak, which the free memory seen
    between its steps does not show: a batch that fits alone is refused beside it, saying so."""
    monkeypatch.setattr(manager, "max_running", 2)
    alone = devices.estimate_training_bytes(TINY, 8)
    monkeypatch.setattr(devices, "free_memory_bytes", lambda device: int(1.5 * alone))  # room for one run, not two
    jobs.check_memory(TINY, tiny_train())  # fits alone
    first = manager.start("first", TINY, tiny_train(steps=1_000_000))
    with pytest.raises(jobs.JobError, match=r"free on cpu now, less 0\.\d GB for the runs already training there"):
        manager.start("second", TINY, tiny_train(steps=2))
    first.stop()
    assert first.wait(HANG_GUARD_S)
    assert manager.start("second", TINY, tiny_train(steps=2)).wait(HANG_GUARD_S), "fits once the first has ended"


def test_a_new_manager_removes_stale_temporary_files(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    stale = runs / ".mnist.safetensors.k2j3h4.tmp"
    fresh = runs / ".other.safetensors.a8b7c6.tmp"  # a save in progress
    unrelated = runs / "notes.tmp"
    for path in (stale, fresh, unrelated):
        path.write_bytes(b"partial")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    os.utime(unrelated, (time.time() - 3600, time.time() - 3600))
    jobs.JobManager(runs_dir=runs, max_running=1)
    assert sorted(p.name for p in runs.iterdir()) == sorted([fresh.name, unrelated.name])


# Issue 13 item 6: the classifiers train as jobs too; their live view is glimpses and the error.


@pytest.mark.parametrize("cfg", [TINY_DRAW_CLASSIFIER, TINY_RAM], ids=["draw-classifier", "ram"])
def test_a_classifier_trains_as_a_job_with_its_glimpses_and_errors(manager, cluttered_from_sample, cfg):
    job = manager.start(
        "classifier", cfg, tiny_train(dataset="mnist-cluttered", batch_size=4, steps=6, eval_every=3), glimpse_every=2
    )
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "finished", snapshot.error
    assert snapshot.kind == kind_of_config(cfg).name
    errors = snapshot.history["error"]
    assert len(errors) == len(snapshot.history_steps) == 6
    assert all(value in {0.0, 0.25, 0.5, 0.75, 1.0} for value in errors)  # a batch of 4: k/4 misclassified
    assert [step for step, _ in snapshot.test_history] == [3, 6] and snapshot.test.name == "test_error"
    assert all(0.0 <= value <= 1.0 and value * 20 == round(value * 20) for _, value in snapshot.test_history)
    assert snapshot.samples is None and snapshot.sample_strip == ()  # a classifier draws nothing
    glimpses = snapshot.glimpses
    assert isinstance(glimpses, jobs.ClassifierGlimpses) and glimpses.step == 6
    assert torch.equal(glimpses.image, get_dataset("mnist-cluttered").example())  # the registry's example image
    trace = glimpses.trace
    assert trace.probabilities.shape == (cfg.glimpses, 10)
    assert torch.allclose(trace.probabilities.sum(-1), torch.ones(cfg.glimpses))
    if isinstance(cfg, ClassifierConfig):
        assert trace.windows.gx.shape == (cfg.glimpses,) and trace.glimpses.shape == (cfg.glimpses, 1, 4, 4)
    else:
        assert trace.patches.shape == (cfg.glimpses, cfg.scales, 4) and trace.retina.shape == (cfg.glimpses, 2, 1, 4, 4)
    checkpoint = load_checkpoint(job.path)
    assert checkpoint.kind == snapshot.kind and checkpoint.meta["test_error"] == snapshot.test.value


@pytest.mark.skipif(not get_dataset("mnist-cluttered").available(), reason="MNIST is not on this machine")
def test_a_classifier_trains_on_the_real_cluttered_mnist(manager):
    job = manager.start("real", TINY_DRAW_CLASSIFIER, tiny_train(dataset="mnist-cluttered", batch_size=4, steps=3))
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "finished", snapshot.error
    assert snapshot.test.name == "test_error" and snapshot.test.n == 20  # on the fixed test set's first 20
    assert snapshot.glimpses.image.shape == (1, 100, 100)


def count_saved_bytes(cfg, batch: int) -> int:
    """Bytes of the distinct non-parameter storages autograd saves for one full pass of the kind's training loss."""
    kind = kind_of_config(cfg)
    model = kind.model_class(cfg)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in parameters:
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    x = torch.rand(batch, cfg.channels, cfg.height, cfg.width)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        objective_for(kind.name).batch_loss(model, (x, torch.zeros(batch, dtype=torch.long)))
    return sum(storages.values())


@pytest.mark.parametrize("cfg", [TINY_DRAW_CLASSIFIER, TINY_RAM], ids=["draw-classifier", "ram"])
def test_the_memory_estimate_counts_a_classifiers_saved_tensors(cfg):
    assert devices.saved_bytes_per_image(cfg) == count_saved_bytes(cfg, 1)  # 2- and 3-glimpse passes give all 3
    assert count_saved_bytes(cfg, 4) <= 4 * devices.saved_bytes_per_image(cfg)
    parameters = sum(p.numel() for p in kind_of_config(cfg).model_class(cfg).parameters())
    assert devices.parameter_count(cfg) == parameters
    zero = devices.estimate_training_bytes(cfg, 0)
    assert zero == devices.RUNTIME_BYTES + devices.PARAMETER_COPIES * 4 * parameters
    factor = 6.0 if isinstance(cfg, RamConfig) else devices.BACKWARD_FACTOR
    input_copies = 8 * 4 * cfg.channels * cfg.height * cfg.width  # a 100 x 100 image's floor: 320 kB
    assert devices.estimate_training_bytes(cfg, 10) == pytest.approx(
        zero + 10 * max(factor * devices.saved_bytes_per_image(cfg), input_copies), abs=1
    )


def test_a_classifier_over_the_memory_limit_is_refused_saying_what_fits(manager, cluttered_from_sample, monkeypatch):
    monkeypatch.setenv("DRAW_MAX_TRAIN_MEMORY_MB", "600")
    paper = ClassifierConfig()  # Table 3's classifier: 8 glimpses, read 12x12, LSTM 256
    fits = devices.largest_batch(paper, 600 * 2**20)
    assert 0 < fits < 10_000
    with pytest.raises(jobs.JobError, match=f"a batch size of at most {fits:,} fits"):
        manager.start("big", paper, tiny_train(dataset="mnist-cluttered", batch_size=fits + 1))
    assert manager.jobs() == []


MEASURE_SCRIPT = """
import dataclasses, re, sys
import torch
torch.set_num_threads(1)
from draw_core.data.cluttered import ClutteredStream
from draw_core.data.mnist import load_sample
from draw_core.nn.kinds import kind_of_config
from draw_core.nn.model import DRAW
from draw_core.presets import get_preset
from draw_core.training.objectives import objective_for

def status_mb(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

cfg, batch = get_preset(sys.argv[1]).build(), int(sys.argv[2])
if len(sys.argv) > 3:
    cfg = dataclasses.replace(cfg, glimpses=int(sys.argv[3]))
kind = kind_of_config(cfg)
model, objective = kind.model_class(cfg), objective_for(kind.name)
optimizer = torch.optim.Adam(model.parameters())
stream = ClutteredStream(*load_sample(), batch, 0)

def step(batch):
    loss = objective.batch_loss(model, batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()

x, y = stream.next()
step((x[:1], y[:1]))  # Adam's moments and torch's first-use allocations exist from here on
open("/proc/self/clear_refs", "w").write("5")
before = status_mb("VmRSS")
step(stream.next())
step(stream.next())
print(status_mb("VmHWM") - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc/self/clear_refs")
@pytest.mark.parametrize(
    ("preset", "glimpses"), [("mnist-cluttered-draw", 8), ("mnist-cluttered-ram", 8), ("mnist-cluttered-ram", 1)]
)
def test_the_memory_estimate_covers_a_measured_classifier_training_step(preset, glimpses):
    """The rise of peak memory over two training steps on batches of 64 from the cluttered stream (as devices.py's
    docstring measured them) stays below the estimate less its runtime allowance; with one glimpse the input's own
    copies, not the saved tensors, set the peak (INPUT_COPIES)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_SCRIPT, preset, "64", str(glimpses)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    measured = float(result.stdout) * 2**20
    cfg = dataclasses.replace(get_preset(preset).build(), glimpses=glimpses)
    estimate = devices.estimate_training_bytes(cfg, 64) - devices.RUNTIME_BYTES
    assert measured < estimate < 3.5 * measured, (measured / 2**20, estimate / 2**20)


# Issue 12 item 9: a strip of samples from one fixed z over training; a stopped run's bound; the device used.


def test_fixed_z_samples_use_the_same_z_whatever_the_global_seed():
    torch.manual_seed(1)
    model = DRAW(TINY).eval()
    first = jobs.fixed_z_samples(model)
    torch.manual_seed(2)  # the global generator moves on; the strip's z does not
    assert torch.equal(jobs.fixed_z_samples(model), first)
    assert first.shape == (jobs.STRIP_SAMPLES, 1, 28, 28) and 0 <= first.min() and first.max() <= 1
    assert not torch.equal(first[0], first[1])  # one z per sample, not one for all
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1)
    assert not torch.allclose(jobs.fixed_z_samples(model), first)  # other weights draw other samples from it


def strip_row(step: int) -> jobs.StripRow:
    return jobs.StripRow(step=step, images=torch.full((2, 1, 3, 3), float(step)))


def test_the_strip_keeps_its_first_row_even_spacing_and_the_latest_row():
    progress = blank_progress()
    rows = 5 * jobs.MAX_STRIP_ROWS + 3
    for index in range(rows):
        progress.record_strip(strip_row(index))
        steps = [row.step for row in progress.read().sample_strip]
        assert steps[0] == 0 and steps[-1] == index  # the first and the newest row are always shown
        assert len(steps) <= jobs.MAX_STRIP_ROWS + 1
        kept = steps if index % progress.strip_stride == 0 else steps[:-1]
        assert len({b - a for a, b in itertools.pairwise(kept)}) <= 1  # the kept rows are evenly spaced
    assert progress.strip_stride == 8  # 63 rows: the stride doubled three times to keep at most 12 rows
    assert all(torch.equal(row.images, strip_row(row.step).images) for row in progress.read().sample_strip)


def test_a_job_draws_a_strip_row_from_the_fixed_z_every_sample_every_steps(manager):
    job = manager.start("strip", TINY, tiny_train(steps=7, sample_every=3))
    assert job.wait(HANG_GUARD_S)
    strip = job.snapshot().sample_strip
    assert [row.step for row in strip] == [3, 6, 7]  # every sample_every steps, and the final weights
    final = load_checkpoint(job.path).model.eval()
    assert torch.allclose(strip[-1].images, jobs.fixed_z_samples(final), atol=1e-6)  # made by the saved weights
    assert not torch.allclose(strip[0].images, strip[-1].images)  # the same z, drawn as the model learned


def test_a_stopped_run_is_tested_on_its_final_weights(manager):
    job = manager.start("tested", TINY, tiny_train(steps=1_000_000, eval_every=0))
    wait_for(job, lambda s: s.step >= 3, "a few steps")
    job.stop()
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "stopped" and snapshot.test_step == snapshot.step
    checkpoint = load_checkpoint(job.path)
    spec = get_dataset("mnist-sample")
    again = objective_for("draw").test(checkpoint.model, spec.test_set(None, 20), seed=0, should_stop=None)
    assert again.n == snapshot.test.n == 20  # every test digit, although the Stop was set
    assert snapshot.test.value == pytest.approx(again.value, rel=1e-5)  # the saved weights' bound
    assert checkpoint.meta["test_elbo_nats"] == snapshot.test.value and checkpoint.meta["stopped"] is True


def test_a_run_stopped_before_its_first_step_is_not_tested(manager, monkeypatch):
    monkeypatch.setattr(jobs.Job, "_should_stop", lambda self: True)
    job = manager.start("at-once", TINY, tiny_train(steps=10))
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "stopped" and snapshot.step == 0 and snapshot.test is None
    assert not job.path.exists() and snapshot.last_checkpoint is None, "no untrained file for the picker"


def test_the_snapshot_names_the_device_resolved(manager, monkeypatch):
    job = manager.start("auto", TINY, tiny_train(steps=1, device="auto"))
    assert job.wait(HANG_GUARD_S)
    assert job.snapshot().device == devices.device_name(devices.select_device("auto")) != "auto"
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert devices.device_name(torch.device("cuda")) == "cuda:1"  # 'cuda' is the current CUDA device
    assert devices.device_name(torch.device("cuda:0")) == "cuda:0"
    assert devices.device_name(torch.device("cpu")) == "cpu"


def test_only_the_most_recent_ended_runs_are_kept_in_memory_and_every_file_stays(manager, monkeypatch):
    monkeypatch.setattr(jobs, "KEPT_ENDED", 2)
    for name in ("a", "b", "c", "d"):
        assert manager.start(name, TINY, tiny_train(steps=1, eval_every=0)).wait(HANG_GUARD_S)
    assert [job.name for job in manager.jobs()] == ["b", "c", "d"], "two ended ones kept when d started, and d"
    assert all(manager.checkpoint_path(name).exists() for name in "abcd")
    going = manager.start("e", TINY, tiny_train(steps=1_000_000, eval_every=0))
    assert [job.name for job in manager.jobs()] == ["c", "d", "e"], "the running job is never forgotten"
    going.stop()
    assert going.wait(HANG_GUARD_S)


def test_a_time_budget_of_the_servers_whole_limit_finishes_on_its_own(manager, monkeypatch):
    """The form allows a budget equal to DRAW_MAX_RUN_HOURS; the server's clock starts before the trainer's, so it
    must not stop such a run (which ends by its budget) and call it stopped by the server."""
    monkeypatch.setattr(settings, "max_run_seconds", lambda: 1.0)
    job = manager.start("whole-limit", TINY, tiny_train(steps=1_000_000, time_budget_s=1.0))
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "finished" and snapshot.note is None
    assert load_checkpoint(job.path).meta["finished"]


EXIT_SCRIPT = """
import sys, time
import torch
torch.set_num_threads(1)
import draw_core.training.jobs as jobs
from draw_core.config import DrawConfig, TrainConfig

settings = TrainConfig(dataset="mnist-sample", batch_size=8, steps=1_000_000, warmup_steps=0, eval_every=0,
                       eval_limit=16, checkpoint_every=0, sample_every=0, device="cpu")
job = jobs.get_manager().start("cut-short", DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4), settings)
while job.snapshot().step < 3:
    time.sleep(0.05)
print(job.path)
"""  # ends with the run still training: the interpreter's exit (atexit) must save it


def test_a_run_still_training_when_the_server_exits_saves_its_checkpoint(tmp_path):
    """No periodic checkpoint and the process ends mid-run (as Streamlit's Ctrl+C or SIGTERM does, which runs the
    atexit hooks while the daemon training thread still runs): the run is stopped and its weights saved."""
    env = {**os.environ, "DRAW_RUNS_DIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    meta = load_checkpoint(Path(done.stdout.strip())).meta
    assert meta["stopped"] and not meta["finished"] and meta["step"] >= 3
