"""The training job manager (draw_core.jobs), without Streamlit: start, watch, stop, failures, one at a time."""

from __future__ import annotations

import itertools
import math
import os
import threading
import time

import pytest
import torch

import draw_core.training.jobs as jobs
import draw_core.training.objectives as objectives_module
from draw_core import settings
from draw_core.config import DrawConfig, TrainConfig
from draw_core.io import catalog
from draw_core.io.checkpoint import load_checkpoint
from draw_core.nn.elbo import LossTerms
from draw_core.training import devices
from draw_core.training.trainer import TrainEvent

TINY = DrawConfig(T=4, enc_size=32, dec_size=32, z_size=8)
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
    assert len(later.history_recon) == len(later.history_kl) == len(later.history_steps)
    assert all(math.isfinite(v) and v > 0 for v in later.history_recon + later.history_kl)
    assert len(later.kl_per_step) == TINY.T
    assert later.samples.shape == (16, 1, 28, 28)
    glimpses = later.glimpses
    assert glimpses.canvases.shape == (TINY.T, 1, 28, 28) and glimpses.digit.shape == (1, 28, 28)
    assert set(glimpses.digit.unique().tolist()) <= {0.0, 1.0}
    assert glimpses.read_attn.gx.shape == (TINY.T,) and glimpses.write_attn.sigma2.shape == (TINY.T,)
    assert (glimpses.read_n, glimpses.write_n) == (TINY.read_n, TINY.write_n)
    assert later.status == "running" and later.eta_s is not None and later.images_per_s > 0

    job.stop()
    assert job.wait(HANG_GUARD_S)
    final = job.snapshot()
    assert final.status == "stopped" and final.error is None
    assert final.steps_after_stop in (0, 1)  # the loop finishes at most the step it was in
    assert final.test_elbo is None and final.test_elbo_step is None  # stopping skips the final evaluation
    checkpoint = load_checkpoint(job.path)
    assert checkpoint.meta["stopped"] is True and checkpoint.meta["finished"] is False
    assert checkpoint.meta["step"] == final.step == final.last_checkpoint_step
    assert checkpoint.config == TINY


def test_glimpses_change_as_the_weights_learn(manager):
    job = manager.start("learn", TINY, tiny_train(steps=1_000_000, lr=1e-2), glimpse_every=1)
    early = wait_for(job, lambda s: s.glimpses is not None, "a glimpse").glimpses
    late = wait_for(job, lambda s: s.glimpses is not None and s.glimpses.step >= early.step + 5, "a later glimpse")
    job.stop()
    assert job.wait(HANG_GUARD_S)
    assert torch.equal(early.digit, late.glimpses.digit)  # the same fixed digit every time
    assert not torch.allclose(early.canvases, late.glimpses.canvases)  # drawn by different weights


def test_a_finished_job_is_listed_in_the_catalog(manager):
    job = manager.start("done", TINY, tiny_train(steps=5, eval_every=0))
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "finished" and snapshot.step == 5 and snapshot.progress == 1.0
    assert snapshot.test_elbo is not None and snapshot.test_elbo > 0  # the final bound on eval_limit digits
    entries = {entry.name: entry for entry in catalog.list_checkpoints() if entry.kind == "run"}
    assert entries["done"].path == job.path
    assert entries["done"].card["finished"] is True and entries["done"].card["step"] == 5


def test_an_exception_inside_the_job_surfaces_and_frees_the_slot(manager, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    real_train = jobs.train
    monkeypatch.setattr(jobs, "train", out_of_memory)
    job = manager.start("oom", TINY, tiny_train())
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "failed"
    assert "OutOfMemoryError" in snapshot.error and "Tried to allocate 2.00 GiB" in snapshot.error
    monkeypatch.setattr(jobs, "train", real_train)
    assert manager.start("after-oom", TINY, tiny_train(steps=2)).wait(HANG_GUARD_S)


def test_a_missing_dataset_fails_the_job_with_the_reason(manager):
    job = manager.start("nodata", TINY, tiny_train(dataset="no-such-set"))
    assert job.wait(HANG_GUARD_S)
    snapshot = job.snapshot()
    assert snapshot.status == "failed" and "unknown dataset 'no-such-set'" in snapshot.error
    assert not job.path.exists()


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
    assert snapshot.last_checkpoint_step == 6
    assert load_checkpoint(job.path).meta["step"] == 6  # the last good one, still loadable


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


def test_loss_history_is_thinned_evenly_and_keeps_its_start():
    progress = jobs.JobProgress(
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
    reports = 2 * jobs.MAX_HISTORY_POINTS + 10
    for step in range(1, reports + 1):
        progress.record_step(step_event(step, step / reports, float(step)), None)
    steps = progress.read().history_steps
    assert len(steps) <= jobs.MAX_HISTORY_POINTS and steps[0] == 1
    assert {b - a for a, b in itertools.pairwise(steps)} == {4}  # one even stride after two halvings
    assert progress.read().history_recon == tuple(float(s) for s in steps)


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
        manager.start("wide", wide, tiny_train(batch_size=1))
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
