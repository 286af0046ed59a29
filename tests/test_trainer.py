"""The Trainer: one step moves the weights, events arrive in order, save + resume continue the same run."""

import dataclasses
import math

import pytest
import torch

from draw_core.config import DrawConfig, TrainConfig
from draw_core.data import get_dataset
from draw_core.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from draw_core.training.evaluation import evaluate
from draw_core.training.objectives import objective_for
from draw_core.training.trainer import Trainer, clip_gradients, learning_rate, total_train_seconds

TINY = DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4)


def tiny_train(**changes) -> TrainConfig:
    settings = dict(
        dataset="mnist-sample",
        batch_size=8,
        steps=6,
        warmup_steps=0,
        log_every=2,
        eval_every=3,
        eval_limit=16,
        checkpoint_every=3,
        sample_every=0,
        device="cpu",
    )
    return TrainConfig(**{**settings, **changes})


def test_train_step_moves_every_weight_and_counts(tmp_path):
    trainer = Trainer.create(TINY, tiny_train(), tmp_path / "run.safetensors")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result, lr = trainer.train_step()
    assert trainer.step == 1 and lr == trainer.cfg.lr  # no warm-up, progress 0: the cosine is at its peak
    assert torch.isfinite(result.loss) and set(result.report) == {"recon", "kl"} and len(result.per_step) == TINY.T
    after = trainer.model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before), "Adam's first step moves every parameter"


def test_the_rate_warms_up_then_follows_the_cosine_down_to_its_floor():
    """lr 1, 10 steps, 2 warm-up steps, floor 0.1: the cosine 0.1 + 0.9 (1 + cos(pi p)) / 2 at progress p."""
    cfg = tiny_train(lr=1.0, steps=10, warmup_steps=2, lr_min_ratio=0.1)
    assert learning_rate(cfg, 0, 0.0) == pytest.approx(0.5 * 1.0), "half-way up the warm-up, cosine at its peak"
    assert learning_rate(cfg, 1, 0.0) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 0.1)) / 2)
    assert learning_rate(cfg, 5, 0.0) == pytest.approx(0.55), "half-way: the mean of peak and floor"
    assert learning_rate(cfg, 10, 0.0) == pytest.approx(0.1)
    assert learning_rate(cfg, 25, 0.0) == pytest.approx(0.1), "past the end the floor holds"


def test_a_time_budget_ahead_of_the_steps_drives_the_schedule():
    cfg = tiny_train(lr=1.0, steps=1000, warmup_steps=0, lr_min_ratio=0.1, time_budget_s=60.0)
    assert learning_rate(cfg, 10, 30.0) == pytest.approx(0.55), "half the time gone, 1% of the steps"
    assert learning_rate(cfg, 500, 6.0) == pytest.approx(0.55), "half the steps gone, a tenth of the time"
    assert learning_rate(cfg, 0, 90.0) == pytest.approx(0.1)


def gradients(*values: list[float]) -> list[torch.nn.Parameter]:
    """Parameters whose .grad holds `values` (one parameter per list)."""
    parameters = [torch.nn.Parameter(torch.zeros(len(v))) for v in values]
    for parameter, v in zip(parameters, values, strict=True):
        parameter.grad = torch.tensor(v)
    return parameters


def test_clipping_scales_the_global_norm_down_to_the_limit_and_returns_the_norm_before():
    parameters = gradients([3.0, 0.0], [0.0, 4.0])  # global norm 5
    assert clip_gradients(parameters, 1.0).item() == pytest.approx(5.0)
    assert [p.grad.tolist() for p in parameters] == [pytest.approx([0.6, 0.0]), pytest.approx([0.0, 0.8])]
    small = gradients([0.3, 0.4])
    assert clip_gradients(small, 1.0).item() == pytest.approx(0.5)
    assert small[0].grad.tolist() == pytest.approx([0.3, 0.4]), "a norm under the limit is left alone"


def test_clipping_survives_gradients_whose_float32_squares_overflow():
    parameters = gradients([3e20, 0.0], [0.0, 4e20])  # finite in float32, but 9e40 is not
    assert not torch.isfinite(torch.linalg.vector_norm(parameters[0].grad)), "float32 sums would overflow here"
    norm = clip_gradients(parameters, 1.0)
    assert torch.isfinite(norm) and norm.item() == pytest.approx(5e20)
    assert [p.grad.tolist() for p in parameters] == [pytest.approx([0.6, 0.0]), pytest.approx([0.0, 0.8])]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nan_or_inf_gradient_still_gives_a_non_finite_norm(bad):
    assert not torch.isfinite(clip_gradients(gradients([1.0, bad]), 1.0))


def test_run_reports_in_order_and_writes_its_test_figure(tmp_path):
    events = []
    out = tmp_path / "run.safetensors"
    done = Trainer.create(TINY, tiny_train(), out, on_event=lambda e, _m: events.append((e.kind, e.step))).run()
    assert events == [
        ("step", 2),
        ("eval", 3),
        ("checkpoint", 3),
        ("step", 4),
        ("step", 6),
        ("eval", 6),
        ("checkpoint", 6),
        ("done", 6),
    ]
    assert done.test is not None and done.test.name == "test_elbo_nats" and done.test.n == 16
    assert done.test_elbo == done.test.value > 0
    meta = load_checkpoint(out).meta
    assert meta["step"] == 6 and meta["finished"] and meta["test_elbo_nats"] == pytest.approx(done.test.value)
    # the recorded figure is the saved weights' ELBO on the first eval_limit test images with the run's seed
    # (Bernoulli test digits binarised by their fixed seed), measured again here outside the Trainer
    images = get_dataset("mnist-sample").test_set(None, 16)
    again = evaluate(load_checkpoint(out).model.eval(), images, batch_size=100, seed=tiny_train().seed)
    assert again.n == 16 and meta["test_elbo_nats"] == pytest.approx(again.elbo_nats, rel=1e-6)


def test_resume_continues_step_optimizer_and_clock(tmp_path):
    out = tmp_path / "run.safetensors"
    first = Trainer.create(TINY, tiny_train(steps=3), out)
    first.run()
    saved = load_checkpoint(out)
    resumed = Trainer.create(TINY, tiny_train(steps=5), out, resume=True)
    assert resumed.step == 3 and resumed.elapsed_before == pytest.approx(saved.meta["train_seconds"])
    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)
    exp_avg = [s["exp_avg"] for s in resumed.optimizer.state_dict()["state"].values()]
    assert exp_avg and all(torch.count_nonzero(m) > 0 for m in exp_avg), "Adam's moments come back"
    assert resumed.run().step == 5


def test_resume_refuses_another_config(tmp_path):
    out = tmp_path / "run.safetensors"
    Trainer.create(TINY, tiny_train(steps=1, eval_every=0, checkpoint_every=0), out).run()
    other = DrawConfig(T=3, enc_size=16, dec_size=16, z_size=5)
    with pytest.raises(ValueError, match="differs from the requested"):
        Trainer.create(other, tiny_train(), out, resume=True)


def test_unknown_kind_has_no_objective():
    with pytest.raises(ValueError, match="no training objective for model kind 'gan'"):
        objective_for("gan")


def test_init_from_starts_a_new_run_from_another_checkpoints_weights(tmp_path):
    source = tmp_path / "source.safetensors"
    Trainer.create(TINY, tiny_train(steps=4, eval_every=0, checkpoint_every=0), source).run()
    trained = load_checkpoint(source)
    fine_tune = Trainer.create(TINY, tiny_train(steps=2), tmp_path / "tune.safetensors", init_from=source)
    assert fine_tune.step == 0 and fine_tune.elapsed_before == 0.0  # a fresh schedule, not the source's step 4
    assert not fine_tune.optimizer.state, "a fresh Adam"
    for name, value in trained.model.state_dict().items():
        torch.testing.assert_close(fine_tune.model.state_dict()[name], value)
    fine_tune.run()
    meta = load_checkpoint(tmp_path / "tune.safetensors").meta
    assert meta["step"] == 2 and meta["init_from"]["step"] == 4 and meta["init_from"]["checkpoint"] == str(source)


def test_a_fine_tune_keeps_where_it_started_and_counts_every_runs_seconds_when_resumed(tmp_path):
    source, tune = tmp_path / "source.safetensors", tmp_path / "tune.safetensors"
    Trainer.create(TINY, tiny_train(steps=2, eval_every=0, checkpoint_every=0), source).run()
    first = load_checkpoint(source).meta
    assert first["total_train_seconds"] == first["train_seconds"]  # one run: its own seconds
    first = {**first, "train_seconds": 100.0, "total_train_seconds": 100.0}  # a source that took a while
    save_checkpoint(load_checkpoint(source).model, source, meta=first)
    Trainer.create(TINY, tiny_train(steps=2, eval_every=0), tune, init_from=source).run()
    Trainer.create(TINY, tiny_train(steps=4, eval_every=0), tune, resume=True).run()  # no --init-from this time
    meta = load_checkpoint(tune).meta
    assert meta["step"] == 4 and meta["init_from"]["checkpoint"] == str(source), "resuming lost the provenance"
    assert meta["init_from"]["total_train_seconds"] == 100.0
    assert meta["total_train_seconds"] == pytest.approx(meta["train_seconds"] + 100.0, abs=0.11)


def test_total_training_seconds_follow_the_record_back_as_far_as_it_goes():
    assert total_train_seconds({"train_seconds": 10.0}) == 10.0
    assert total_train_seconds({"train_seconds": 10.0, "total_train_seconds": 99.0}) == 99.0
    old_style = {"train_seconds": 10.0, "init_from": {"train_seconds": 5.0}}  # written before totals were kept
    assert total_train_seconds(old_style) == 15.0
    chained = {"train_seconds": 10.0, "continued_from": {"train_seconds": 5.0, "total_train_seconds": 50.0}}
    assert total_train_seconds(chained) == 60.0
    assert total_train_seconds({}) == 0.0
    # a hand-edited card: what is no finite number of seconds is not counted, and raises nothing
    assert total_train_seconds({"train_seconds": 10.0, "init_from": {"train_seconds": [1]}}) == 10.0
    assert total_train_seconds({"train_seconds": "x", "total_train_seconds": float("inf")}) == 0.0


def test_init_from_refuses_another_config_and_an_existing_run_to_resume(tmp_path):
    source = tmp_path / "source.safetensors"
    Trainer.create(TINY, tiny_train(steps=1, eval_every=0, checkpoint_every=0), source).run()
    with pytest.raises(CheckpointError, match="differs from the requested"):
        Trainer.create(
            DrawConfig(T=3, enc_size=8, dec_size=8, z_size=4), tiny_train(), tmp_path / "x", init_from=source
        )
    with pytest.raises(ValueError, match="not both"):
        Trainer.create(TINY, tiny_train(), source, resume=True, init_from=source)


def test_a_logistic_checkpoint_fine_tunes_into_a_colour_coupled_preset(tmp_path):
    # `train --init-from` a 'logistic' colour checkpoint with a 'logistic-coupled' config: the same weights, the
    # coupling added at zero (so the same bound at step 0), then trained; any other config change is still refused.
    from test_app_evaluate import fake_cifar

    data = fake_cifar(tmp_path / "data")
    colour = DrawConfig(height=32, width=32, channels=3, T=2, read_n=3, write_n=3, enc_size=8, dec_size=8, z_size=2)
    plain_cfg = dataclasses.replace(colour, likelihood="logistic")
    coupled_cfg = dataclasses.replace(colour, likelihood="logistic-coupled")
    train = tiny_train(dataset="cifar10", steps=3, eval_every=0, checkpoint_every=0, eval_limit=4)
    source = tmp_path / "plain.safetensors"
    Trainer.create(plain_cfg, train, source, data_dir=str(data)).run()
    plain = load_checkpoint(source).model
    fine_tune = Trainer.create(
        coupled_cfg, train, tmp_path / "coupled.safetensors", data_dir=str(data), init_from=source
    )
    assert fine_tune.model.cfg == coupled_cfg and torch.equal(fine_tune.model.coupling, torch.zeros(3))
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(fine_tune.model.state_dict()[name], value)
    fine_tune.run()
    tuned = load_checkpoint(tmp_path / "coupled.safetensors")
    assert tuned.config == coupled_cfg and not torch.equal(tuned.model.coupling, torch.zeros(3))  # it learned
    assert "'logistic' model given colour coupling 0" in tuned.meta["init_from"]["coupled"]
    with pytest.raises(CheckpointError, match="differs from the requested"):
        Trainer.create(
            dataclasses.replace(coupled_cfg, T=3), train, tmp_path / "other.safetensors", data_dir=str(data),
            init_from=source,
        )  # fmt: skip


def test_a_stop_during_the_final_test_of_a_finished_run_still_measures_the_final_weights(tmp_path):
    """should_stop turns True once every step is done, so only the final test (200 images: two batches) sees it."""
    trainer = Trainer.create(TINY, tiny_train(steps=4, eval_every=3, eval_limit=200), tmp_path / "run.safetensors")
    trainer.should_stop = lambda: trainer.step >= 4
    done = trainer.run()
    assert not done.stopped and done.step == 4
    whole = objective_for("draw").test(trainer.model, trainer.test_set, seed=trainer.cfg.seed, should_stop=None)
    assert done.test.n == 200 and done.test.value == pytest.approx(whole.value, rel=1e-6)
    assert load_checkpoint(tmp_path / "run.safetensors").meta["test_elbo_nats"] == done.test.value


def test_a_run_stopped_before_its_first_step_writes_no_checkpoint(tmp_path):
    trainer = Trainer.create(TINY, tiny_train(), tmp_path / "run.safetensors")
    trainer.should_stop = lambda: True
    done = trainer.run()
    assert done.stopped and done.step == 0 and done.checkpoint is None
    assert not (tmp_path / "run.safetensors").exists()


def test_the_checkpoint_says_how_many_test_images_its_figure_covers_not_how_many_were_asked(tmp_path):
    trainer = Trainer.create(TINY, tiny_train(steps=2, eval_every=0, eval_limit=1000), tmp_path / "run.safetensors")
    done = trainer.run()  # mnist-sample holds 500 test digits: fewer than the 1,000 asked
    assert done.test.n == 500 and load_checkpoint(tmp_path / "run.safetensors").meta["test_limit"] == 500
    resumed = Trainer.create(
        TINY, tiny_train(steps=3, eval_every=0, eval_limit=1000), tmp_path / "run.safetensors", resume=True
    )
    assert resumed.test_figure.n == 500, "a resumed run keeps what its stored figure covered"
    resumed.save()
    assert load_checkpoint(tmp_path / "run.safetensors").meta["test_limit"] == 500


def test_a_stop_during_the_last_scheduled_test_still_measures_the_final_weights(tmp_path):
    """The run's last step is also a test step (the Train form's 500 and 500): a Stop during that test cuts it short,
    so no 'eval' event is reported for it, and the finished run measures its final weights to the end anyway."""
    holder, events = {}, []
    trainer = holder["trainer"] = Trainer.create(
        TINY,
        tiny_train(steps=2, eval_every=2, eval_limit=200, checkpoint_every=0),  # two test batches of 100
        tmp_path / "run.safetensors",
        should_stop=lambda: holder["trainer"].step == 2,  # Stop pressed once step 2 is done: during its test
        on_event=lambda event, model: events.append(event),
    )
    done = trainer.run()
    assert not done.stopped and done.test is not None and done.test.n == 200 and trainer.test_step == 2
    assert [event.kind for event in events if event.kind == "eval"] == [], "an unfinished test is no figure"
    meta = load_checkpoint(tmp_path / "run.safetensors").meta
    assert meta["finished"] and meta["test_elbo_nats"] == pytest.approx(done.test.value) and meta["test_limit"] == 200
