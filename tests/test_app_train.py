"""AppTest of the Train page: start a tiny run, watch it, stop it; bad settings and a busy server are refused; the
form folds away while a run goes; the classifiers of sec. 4.1 train from the page too."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from app_support import (
    TINY,
    TINY_COLOUR,
    TINY_TWO,
    assert_no_exception,
    figures,
    open_page,
    tiny_checkpoint,
    use_folders,
)
from test_app_evaluate import fake_cifar
from test_jobs import cluttered_from_sample  # noqa: F401 (a fixture)
from timeline_support import follower, picture

from draw_core.config import DrawConfig, TrainConfig
from draw_core.data import get_dataset, mnist
from draw_core.io.checkpoint import load_checkpoint
from draw_core.present import views, viz
from draw_core.presets import preset_names
from draw_core.training import devices, jobs

HANG_GUARD_S = 60  # only so a broken run fails the test instead of hanging it; nothing here measures speed
TINY_SETTINGS = {  # number inputs of the page -> a model and a run that take well under a second here
    "train_T_mnist-small": 4,
    "train_lstm_mnist-small": 32,
    "train_z_mnist-small": 8,
    "train_batch_size": 8,
    "train_eval_limit": 20,
    "train_log_every": 1,
    "train_glimpse_every": 1,
    "train_sample_every": 2,
}


@pytest.fixture
def page(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path, runs=[])
    at = open_page("train.py")
    at.selectbox(key="train_preset").set_value("mnist-small").run()
    at.selectbox(key="train_dataset_generate").set_value("mnist-sample")
    at.run()
    for key, value in TINY_SETTINGS.items():
        at.number_input(key=key).set_value(value)
    yield at
    manager = jobs.get_manager()
    manager.stop_all()
    for job in manager.jobs():
        job.wait(HANG_GUARD_S)


def start_from_page(at, name: str, steps: int):
    at.number_input(key="train_steps").set_value(steps)
    at.text_input(key="train_name").set_value(name)
    at.button(key="train_start").click().run()
    assert_no_exception(at)
    return jobs.get_manager().get(name)


def rerun_until(at, predicate, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)
        at.run()
        assert_no_exception(at)


def form_open(at) -> bool:
    return next(element for element in at.expander if element.label == "New run").proto.expanded


def metric(at, label: str) -> str:
    return next(element.value for element in at.metric if element.label == label)


def drawn(spec: dict, name: str) -> bool:
    """Whether a figure draws something called `name`, as a trace or as a layout shape."""
    return any(item.get("name") == name for item in [*spec["data"], *spec["layout"].get("shapes", [])])


def chart(at, key: str) -> dict:
    """The spec of the Plotly chart drawn with `key`."""
    found = [spec for element, spec in zip(at.get("plotly_chart"), figures(at), strict=True) if key in element.proto.id]
    assert len(found) == 1, f"expected one chart with key {key}, found {len(found)}"
    return found[0]


def explained(at, *names: str) -> None:
    """Each named chart is shown with its equation and what to notice (views.EXPLANATIONS)."""
    latex = " ".join(element.value for element in at.latex)
    captions = " ".join(caption.value for caption in at.caption)
    for name in names:
        assert views.EXPLANATIONS[name].latex in latex and views.EXPLANATIONS[name].notice in captions, name


def test_a_tiny_run_started_from_the_page_finishes_and_is_offered_in_the_picker(page, tmp_path):
    job = start_from_page(page, "from-page", steps=6)
    assert job is not None, [e.value for e in page.error]
    assert job.snapshot().model_config == DrawConfig(T=4, enc_size=32, dec_size=32, z_size=8)
    rerun_until(page, lambda: not job.running, "the run to finish")
    page.run()
    assert_no_exception(page)
    assert job.snapshot().status == "finished", job.snapshot().error
    path = tmp_path / "runs" / "from-page.safetensors"
    assert path.exists() and load_checkpoint(path).meta["step"] == 6
    assert any("from-page" in element.value and "picker" in element.value for element in page.success)
    # Another browser session (AppTest keeps the sidebar of a first run only, so it opens the Home page) is
    # offered the new checkpoint in its picker and shows its card.
    other_session = open_page()
    picker = other_session.sidebar.selectbox(key="checkpoint")
    assert "from-page (run) · mnist-sample · 28×28" in picker.options  # its dataset and image size beside its name
    picker.set_value("run/from-page").run()
    assert_no_exception(other_session)
    assert any(header.value == "Model card: from-page" for header in other_session.header)
    loss = chart(page, "train_loss_chart")
    kl = next(trace for trace in loss["data"] if trace["name"] == "KL")
    assert kl["yaxis"] == "y2" and loss["layout"]["yaxis2"]["side"] == "right"  # L^z on its own axis
    snapshot = job.snapshot()
    test_bound = next(trace for trace in loss["data"] if trace["name"] == "test bound")
    assert list(viz.spec_array(test_bound["y"])) == pytest.approx([snapshot.test.value])
    strip = chart(page, "train_strip")  # sample_every=2: the fixed z decoded at steps 2, 4 and 6
    assert strip["layout"]["yaxis"]["ticktext"] == ["step 2", "step 4", "step 6"]
    for key in ("train_kl_chart", "train_samples"):
        chart(page, key)
    glimpses = chart(page, "train_glimpses")  # the live reconstruction: every step of it, for the browser
    assert len(viz.timeline_steps(glimpses)) == 4 and glimpses["layout"]["meta"]["timeline"]["initial"] == 4
    assert {"input x · read window windows", "σ(c<sub>t</sub>) · write window windows"} <= {
        image["name"] for image in glimpses["layout"]["images"]
    }
    canvases = snapshot.glimpses.canvases[:, 0]  # (T, H, W)
    for step in (1, 4):
        shown, _ = picture(glimpses, "σ(c<sub>t</sub>) · write window", step)
        scale = shown.shape[0] // (28 + 2 * viz.window_pad(28, 28))
        pad = viz.window_pad(28, 28) * scale
        grey = shown[pad : pad + 28 * scale : scale, pad : pad + 28 * scale : scale, 0] / 255.0
        assert grey == pytest.approx(canvases[step - 1].numpy(), abs=1 / 254 + 1e-6)
    assert follower(page)["chart"] == "train_glimpses"
    explained(page, "loss", "kl_training", "train_samples", "strip", "read", "write")
    page.slider(key="train_glimpse_step").set_value(2).run()
    assert follower(page)["step"] == 2 and chart(page, "train_glimpses") == glimpses  # the slider moves the browser


def test_stop_on_the_page_ends_the_run_with_a_checkpoint_and_its_test_bound(page):
    assert form_open(page)
    job = start_from_page(page, "stop-me", steps=1_000_000)
    assert not form_open(page)  # folded while the run goes, so the live view is in sight
    rerun_until(page, lambda: job.snapshot().glimpses is not None, "the first glimpses")
    assert any("stop-me" in header.value for header in page.subheader)
    assert any("device `cpu`" in caption.value for caption in page.caption)  # 'auto' resolved on this CPU machine
    assert metric(page, "Test bound (nats)") == "not yet"
    page.button(key="train_stop").click().run()
    assert_no_exception(page)
    assert job.wait(HANG_GUARD_S)
    page.run()
    snapshot = job.snapshot()
    meta = load_checkpoint(job.path).meta
    assert snapshot.status == "stopped" and meta["stopped"] is True
    assert any("Stopped at step" in element.value for element in page.success)
    assert metric(page, "Test bound (nats)") == f"{meta['test_elbo_nats']:.2f}"  # the final weights, tested
    assert form_open(page)  # nothing runs: the form is back


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train_T_mnist-small", 0, "T=0 is out of range"),
        ("train_lstm_mnist-small", 100_000, "enc_size=100000 is out of range"),
        ("train_lstm_mnist-small", 4096, "DRAW_MAX_PARAMS"),
    ],
)
def test_out_of_range_settings_are_refused_before_anything_starts(page, key, value, message):
    page.number_input(key=key).set_value(value)
    assert start_from_page(page, f"refused-{abs(value)}", steps=10) is None
    assert any(message in element.value for element in page.error), [e.value for e in page.error]


def test_the_batch_size_range_follows_the_memory_limit(page, monkeypatch):
    small = DrawConfig.preset("mnist-small")
    for megabytes in ("1024", "768"):  # both fit fewer than mnist-sample's 500 images (that cap: test below)
        monkeypatch.setenv("DRAW_MAX_TRAIN_MEMORY_MB", megabytes)
        page.number_input(key="train_T_mnist-small").set_value(small.T)
        page.number_input(key="train_lstm_mnist-small").set_value(small.enc_size)
        page.number_input(key="train_z_mnist-small").set_value(small.z_size)
        page.run()
        fits = devices.largest_batch(small, int(megabytes) * 2**20)
        batch = page.number_input(key="train_batch_size")
        assert batch.proto.has_max and int(batch.proto.max) == fits
        batch.set_value(fits + 1000).run()  # beyond the range: the widget keeps a value inside it
        assert page.number_input(key="train_batch_size").value <= fits
    assert f"At most {fits:,} images per batch fit in the 0.8 GB" in page.number_input(key="train_batch_size").help


def test_a_limit_that_fits_no_image_is_said_and_start_refuses(page, monkeypatch):
    monkeypatch.setenv("DRAW_MAX_TRAIN_MEMORY_MB", "512")  # all of it torch's own start-up share (RUNTIME_BYTES)
    page.run()
    assert_no_exception(page)
    assert devices.largest_batch(DrawConfig(T=4, enc_size=32, dec_size=32, z_size=8), 512 * 2**20) == 0
    assert int(page.number_input(key="train_batch_size").proto.max) == 1  # not unbounded
    assert any("At most 0 images" in warning.value for warning in page.warning)
    assert start_from_page(page, "does-not-fit", steps=5) is None
    assert page.error


def test_steps_and_minutes_follow_the_run_length_limits(page, monkeypatch):
    monkeypatch.setenv("DRAW_MAX_RUN_STEPS", "300")
    monkeypatch.setenv("DRAW_MAX_RUN_HOURS", "0.5")
    page.run()
    assert int(page.number_input(key="train_steps").proto.max) == 300
    assert page.number_input(key="train_steps").value == 300  # the default 500 does not fit
    page.radio(key="train_until").set_value("minutes").run()
    assert page.number_input(key="train_minutes").proto.max == 30.0


def test_with_an_admin_token_start_and_stop_wait_for_it(page, monkeypatch):
    monkeypatch.setenv("DRAW_ADMIN_TOKEN", "chalk")
    page.run()
    assert page.button(key="train_start").proto.disabled
    page.text_input(key="train_token").set_value("cheese").run()
    assert any("not the teacher's token" in element.value for element in page.error)
    assert page.button(key="train_start").proto.disabled
    page.text_input(key="train_token").set_value("chalk").run()
    assert not page.button(key="train_start").proto.disabled
    job = start_from_page(page, "teacher-run", steps=1_000_000)
    assert job is not None and job.running
    student = open_page("train.py")  # another browser session, without the token
    assert student.button(key="train_stop").proto.disabled and student.button(key="train_start").proto.disabled
    assert job.running
    page.button(key="train_stop").click().run()
    assert_no_exception(page)
    assert job.wait(HANG_GUARD_S) and job.snapshot().status == "stopped"


def test_an_unsafe_run_name_is_refused(page):
    assert start_from_page(page, "../outside", steps=5) is None
    assert any("run name '../outside' is not allowed" in element.value for element in page.error)


def tiny_job(manager, name: str, steps: int):
    settings = dict(dataset="mnist-sample", batch_size=8, device="cpu", eval_every=0)
    job = manager.start(name, DrawConfig(T=4, enc_size=32, dec_size=32, z_size=8), TrainConfig(steps=steps, **settings))
    # Under way before the page runs: a job's start loads the data with np.load, whose header parse (ast) must not
    # meet the page's script compile in another thread on Python 3.11.7 ("AST constructor recursion depth
    # mismatch", CPython #106905).
    deadline = time.monotonic() + HANG_GUARD_S
    while job.running and job.snapshot().step == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return job


def test_a_second_start_while_busy_names_the_running_job(page, tmp_path):
    other = tiny_job(jobs.get_manager(), "projector-run", 1_000_000)
    assert start_from_page(page, "student-run", steps=5) is None
    assert any("already running: 'projector-run'" in element.value for element in page.error)
    other.stop()
    assert other.wait(HANG_GUARD_S)


def test_an_older_run_going_on_after_the_latest_ended_is_shown_and_can_be_stopped(page, monkeypatch):
    # DRAW_MAX_JOBS = 2: the latest run ended while an older one goes on, so the page shows the one still training.
    manager = jobs.get_manager()
    monkeypatch.setattr(manager, "max_running", 2)  # DRAW_MAX_JOBS=2, which the server reads when it starts
    older = tiny_job(manager, "older", 10**6)
    latest = tiny_job(manager, "latest", 2)
    assert latest.wait(HANG_GUARD_S) and older.running
    page.run(timeout=20)  # a page that reran itself whenever some run was going would never finish this run
    assert_no_exception(page)
    assert "older: running" in page.subheader[-1].value
    page.button(key="train_stop").click().run()
    assert_no_exception(page)
    assert older.wait(HANG_GUARD_S) and older.snapshot().status == "stopped"


def test_several_running_runs_are_picked_to_watch(page, monkeypatch):
    manager = jobs.get_manager()
    monkeypatch.setattr(manager, "max_running", 2)
    first, second = tiny_job(manager, "first", 10**6), tiny_job(manager, "second", 10**6)
    page.run()
    assert page.selectbox(key="train_watch").options == ["second", "first"]  # the newest first
    assert "second: running" in page.subheader[-1].value
    page.selectbox(key="train_watch").set_value("first").run()
    assert "first: running" in page.subheader[-1].value
    page.button(key="train_stop").click().run()
    assert first.wait(HANG_GUARD_S) and first.snapshot().status == "stopped" and second.running
    second.stop()
    assert second.wait(HANG_GUARD_S)


def test_a_stop_pressed_for_a_run_that_ended_meanwhile_stops_no_other_run(page):
    manager = jobs.get_manager()
    ending = tiny_job(manager, "ending", 10**6)
    page.run()
    assert "ending: running" in page.subheader[-1].value  # the Stop button is drawn for this run
    ending.stop()
    assert ending.wait(HANG_GUARD_S)
    successor = tiny_job(manager, "successor", 10**6)  # another session's run starts before the click arrives
    page.button(key="train_stop").click().run()
    assert_no_exception(page)
    assert any("'ending' had already ended" in element.value for element in page.info)
    assert successor.running
    successor.stop()
    assert successor.wait(HANG_GUARD_S)


def data_here(root: Path) -> Path:
    """A data root where MNIST (its four IDX files, empty: the pickers look only at which files are there) and
    CIFAR-10's JPEG copy (its two split folders, empty) count as here, and SVHN does not: for listing, not loading."""
    for path in mnist.mnist_files(root):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    for split in ("train", "test"):
        (root / "cifar10-jpeg" / split).mkdir(parents=True)
    return root


def test_the_preset_picker_lists_every_preset_and_the_datasets_follow_its_task(page, monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(data_here(tmp_path / "data")))
    page.run()
    assert page.selectbox(key="train_preset").options == preset_names()
    assert "mnist-sample · 28×28" in page.selectbox(key="train_dataset_generate").options
    assert not any("cluttered" in name for name in page.selectbox(key="train_dataset_generate").options)
    assert page.text_input(key="train_name").value.startswith("mnist-small-")
    page.selectbox(key="train_preset").set_value("mnist-cluttered-ram").run()
    assert_no_exception(page)
    assert page.selectbox(key="train_dataset_classify").options == ["mnist-cluttered · 100×100"]
    assert {"Glimpses", "Patch P", "Scales", "LSTM units"} <= {element.label for element in page.number_input}
    assert page.number_input(key="train_sample_every").proto.disabled  # a classifier draws no samples
    assert page.text_input(key="train_name").value.startswith("mnist-cluttered-ram-")  # the offered name follows
    page.text_input(key="train_name").set_value("my-own-name").run()
    page.selectbox(key="train_preset").set_value("mnist-cluttered-draw").run()
    assert page.text_input(key="train_name").value == "my-own-name"  # a name typed in is kept
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path / "no-data"))
    page.run()
    assert_no_exception(page)
    assert not [box for box in page.selectbox if box.key == "train_dataset_classify"]  # nothing here to choose
    assert any(get_dataset("mnist-cluttered").how_to_get() in element.value for element in page.info)
    assert any("No dataset a draw-classifier model learns from" in element.value for element in page.warning)
    assert not [button for button in page.button if button.key == "train_start"]  # nothing to start


def test_the_dataset_picker_lists_only_what_is_here_and_says_how_to_get_the_rest(page, monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(data_here(tmp_path / "data")))
    page.run()
    options = page.selectbox(key="train_dataset_generate").options
    assert options == ["mnist · 28×28", "mnist-sample · 28×28", "mnist-two · 60×60", "cifar10 · 32×32×3"]
    svhn = get_dataset("svhn").how_to_get()
    assert "train_32x32.mat" in svhn and any(svhn in element.value for element in page.info)  # said, not hidden
    for preset, dataset in (
        ("cifar10", "cifar10"),
        ("mnist-two", "mnist-two"),
        ("svhn", "cifar10"),  # SVHN is not here: the colour 32×32 images that are
    ):
        page.selectbox(key="train_preset").set_value(preset).run()
        assert_no_exception(page)
        assert page.selectbox(key="train_dataset_generate").value == dataset, preset
        assert page.number_input(key="train_batch_size").max > 1, "the memory estimate copes with the preset"
    assert any("svhn preset's own dataset is not here: it trains on cifar10" in c.value for c in page.caption)
    page.selectbox(key="train_dataset_generate").set_value("mnist").run()  # a colour preset on binary digits
    assert_no_exception(page)
    assert page.number_input(key="train_read_n_svhn").value == 12


def train_generator_from_page(page, preset: str, name: str) -> jobs.JobSnapshot:
    """A tiny run of a generator preset from the page, to its end."""
    page.selectbox(key="train_preset").set_value(preset).run()
    for field, value in {"T": 3, "read_n": 3, "write_n": 3, "z": 4, "lstm": 16}.items():
        page.number_input(key=f"train_{field}_{preset}").set_value(value)
    for key, value in {"train_batch_size": 4, "train_eval": 4, "train_eval_limit": 10, "train_sample_every": 2}.items():
        page.number_input(key=key).set_value(value)
    job = start_from_page(page, name, steps=4)
    assert job is not None, [e.value for e in page.error]
    rerun_until(page, lambda: not job.running, "the run to finish")
    page.run()
    assert_no_exception(page)
    snapshot = job.snapshot()
    assert snapshot.status == "finished", snapshot.error
    return snapshot


def test_a_colour_run_trains_from_the_page_and_shows_its_glimpses_in_colour(page, monkeypatch, tmp_path):
    monkeypatch.setenv("DRAW_DATA_DIR", str(fake_cifar(tmp_path / "data")))
    page.run()
    snapshot = train_generator_from_page(page, "cifar10", "colour-run")
    cfg = snapshot.model_config
    assert (cfg.channels, cfg.height, cfg.width, cfg.likelihood) == (3, 32, 32, "logistic-coupled")
    glimpses = chart(page, "train_glimpses")
    canvas = snapshot.glimpses.canvases[1]  # (3, H, W) at step 2
    shown, _ = picture(glimpses, "σ(c<sub>t</sub>) · write window", 2)
    scale = shown.shape[0] // (32 + 2 * viz.window_pad(32, 32))
    pad = viz.window_pad(32, 32) * scale
    rgb = shown[pad : pad + 32 * scale : scale, pad : pad + 32 * scale : scale, :3] / 255.0  # (H, W, 3)
    assert rgb == pytest.approx(canvas.permute(1, 2, 0).numpy(), abs=1 / 255 + 1e-6)
    example, _ = picture(glimpses, "input x · read window", 1)
    inside = example[pad : pad + 32 * scale : scale, pad : pad + 32 * scale : scale, :3]
    assert (inside[..., 0] != inside[..., 1]).any(), "the example CIFAR image is drawn in colour"
    assert np.asarray(chart(page, "train_samples")["data"][0]["z"]).shape[2] == 3
    bits = snapshot.test.value / (3 * 32 * 32 * math.log(2))
    assert metric(page, "Test bound (nats)") == f"{snapshot.test.value:.2f} · {bits:.3f} bits/dim"
    copy = get_dataset("cifar10").copy_description()
    assert "JPEG (quality 75)" in copy and any(f"measured on {copy}" in c.value for c in page.caption)


@pytest.mark.skipif(not get_dataset("mnist-two").available(), reason="MNIST is not under DRAW_DATA_DIR")
def test_a_two_digit_run_trains_from_the_page_and_shows_its_60_by_60_glimpses(page):
    snapshot = train_generator_from_page(page, "mnist-two", "two-run")
    assert (snapshot.model_config.height, snapshot.glimpses.image.shape) == (60, (1, 60, 60))
    assert snapshot.model_config.likelihood == "bernoulli"
    shown, _ = picture(chart(page, "train_glimpses"), "input x · read window", 1)
    scale = shown.shape[0] // (60 + 2 * viz.window_pad(60, 60))
    pad = viz.window_pad(60, 60) * scale
    grey = shown[pad : pad + 60 * scale : scale, pad : pad + 60 * scale : scale, 0] / 255.0
    assert grey == pytest.approx(snapshot.glimpses.image[0].numpy(), abs=1 / 254 + 1e-6)  # the whole 60×60 pair
    assert metric(page, "Test bound (nats)") == f"{snapshot.test.value:.2f}"  # binary digits: nats alone


TINY_CLASSIFIERS = {  # number inputs of the page -> classifiers that train in well under a second here
    "mnist-cluttered-draw": {"glimpses": 3, "read_n": 4, "lstm": 16},
    "mnist-cluttered-ram": {"glimpses": 3, "patch": 4, "scales": 2, "lstm": 16},
}


def train_classifier_from_page(page, preset: str) -> jobs.JobSnapshot:
    page.selectbox(key="train_preset").set_value(preset).run()
    for field, value in TINY_CLASSIFIERS[preset].items():
        page.number_input(key=f"train_{field}_{preset}").set_value(value)
    page.number_input(key="train_batch_size").set_value(4)
    page.number_input(key="train_eval").set_value(3)
    job = start_from_page(page, f"{preset}-run", steps=6)
    assert job is not None, [e.value for e in page.error]
    rerun_until(page, lambda: not job.running, "the run to finish")
    page.run()
    assert_no_exception(page)
    snapshot = job.snapshot()
    assert snapshot.status == "finished", snapshot.error
    return snapshot


@pytest.mark.usefixtures("cluttered_from_sample")  # mnist-cluttered made from the shipped sample: runs anywhere
@pytest.mark.parametrize("preset", list(TINY_CLASSIFIERS))
def test_a_classifier_trains_from_the_page_showing_its_error_and_glimpses(page, preset):
    snapshot = train_classifier_from_page(page, preset)
    assert snapshot.kind == ("ram" if preset.endswith("ram") else "draw-classifier")
    lines = {trace["name"]: trace for trace in chart(page, "train_error_chart")["data"]}
    assert list(viz.spec_array(lines["batch error"]["y"])) == pytest.approx(snapshot.history["error"])
    assert list(viz.spec_array(lines["test error"]["x"])) == [3, 6]
    assert metric(page, "Test error") == f"{snapshot.test.value:.2%}"
    glimpses = chart(page, "train_glimpses")
    trace = snapshot.glimpses.trace
    name = "RAM" if snapshot.kind == "ram" else "DRAW"
    assert len(viz.timeline_steps(glimpses)) == 3  # every glimpse, for the browser
    looks, _ = picture(glimpses, f"{name}: {'retina' if name == 'RAM' else 'read window'} windows", 3)
    colour = viz.RETINA_COLOUR if name == "RAM" else viz.WINDOW_COLOURS["read"]
    assert tuple(looks[looks[..., 3] > 0][0, :3]) == viz._rgb(colour)  # where it looked, on the image
    bars = [i for i, image in enumerate(glimpses["layout"]["images"]) if " · class " in image.get("name", "")]
    for step in (1, 3):
        heights = [viz.timeline_steps(glimpses)[step - 1][f"images[{i}].sizey"] for i in bars]
        assert heights == pytest.approx(trace.probabilities[step - 1].tolist(), abs=1e-6)
    explained(page, "classifier_error", "classifier_loss")
    page.slider(key="train_glimpse_step").set_value(1).run()
    assert follower(page)["step"] == 1
    assert not any(key in element.proto.id for element in page.get("plotly_chart") for key in ("samples", "strip"))


@pytest.mark.skipif(not get_dataset("mnist-cluttered").available(), reason="MNIST is not on this machine")
def test_a_classifier_trains_from_the_page_on_the_real_cluttered_mnist(page):
    snapshot = train_classifier_from_page(page, "mnist-cluttered-draw")
    assert snapshot.train_config.dataset == "mnist-cluttered" and snapshot.glimpses.image.shape == (1, 100, 100)
    looks, _ = picture(chart(page, "train_glimpses"), "DRAW: read window windows", 3)
    assert looks[..., 3].any()  # the read window on the image


@pytest.mark.parametrize("cfg", [TINY, TINY_COLOUR, TINY_TWO], ids=["grey", "colour", "two-digit"])
def test_the_page_renders_whichever_model_the_sidebar_holds(monkeypatch, tmp_path, cfg):
    monkeypatch.setenv("DRAW_DATA_DIR", str(data_here(tmp_path / "data")))
    runs = use_folders(monkeypatch, tmp_path, runs=[])
    tiny_checkpoint(runs, "model", cfg)
    at = open_page("train.py")
    assert "cifar10 · 32×32×3" in at.selectbox(key="train_dataset_generate").options


def test_the_batch_field_stops_at_the_datasets_training_images_and_start_refuses_more(page):
    field = page.number_input(key="train_batch_size")
    assert field.max == 500, "mnist-sample trains on its 500 digits"  # memory alone would allow thousands
    assert "mnist-sample has 500 training images" in field.help
    manager = jobs.get_manager()
    with pytest.raises(jobs.JobError, match="a batch of 600 is larger than mnist-sample's 500 training images"):
        manager.start("too-big", TINY, TrainConfig(dataset="mnist-sample", batch_size=600, steps=2, device="cpu"))
    assert manager.get("too-big") is None


def test_a_timed_run_warms_up_over_a_few_steps_only(page):
    page.radio(key="train_until").set_value("minutes").run()
    page.number_input(key="train_minutes").set_value(0.5)
    page.text_input(key="train_name").set_value("timed")
    page.button(key="train_start").click().run()
    assert_no_exception(page)
    job = jobs.get_manager().get("timed")
    assert job is not None and job.snapshot().train_config.warmup_steps == 20  # not 200 of an unknown few
    job.stop()
    assert job.wait(HANG_GUARD_S)
