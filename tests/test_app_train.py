"""AppTest of the Train page: start a tiny run, watch it, stop it; bad settings and a busy server are refused."""

from __future__ import annotations

import time

import pytest
from app_support import assert_no_exception, open_page, use_folders

from draw_core.config import DrawConfig, TrainConfig
from draw_core.io.checkpoint import load_checkpoint
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
    at.selectbox(key="train_dataset").set_value("mnist-sample")
    at.selectbox(key="train_preset").set_value("mnist-small")
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


def markdown_text(at) -> str:
    return "\n".join(element.value for element in [*at.success, *at.error, *at.subheader, *at.markdown])


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
    assert "from-page (run)" in picker.options
    picker.set_value("run/from-page").run()
    assert_no_exception(other_session)
    assert any(header.value == "Model card: from-page" for header in other_session.header)
    charts = [chart.proto.id for chart in page.get("plotly_chart")]
    assert len(charts) >= 5  # loss, KL per step, samples, and the glimpses' read and write windows


def test_stop_on_the_page_ends_the_run_with_a_checkpoint(page):
    job = start_from_page(page, "stop-me", steps=1_000_000)
    rerun_until(page, lambda: job.snapshot().glimpses is not None, "the first glimpses")
    assert any("stop-me" in header.value for header in page.subheader)
    page.button(key="train_stop").click().run()
    assert_no_exception(page)
    assert job.wait(HANG_GUARD_S)
    page.run()
    snapshot = job.snapshot()
    assert snapshot.status == "stopped" and load_checkpoint(job.path).meta["stopped"] is True
    assert any("Stopped at step" in element.value for element in page.success)


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
    for megabytes in ("4096", "1024"):
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
    assert f"At most {fits:,} images per batch fit in the 1.0 GB" in page.number_input(key="train_batch_size").help


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


def test_a_second_start_while_busy_names_the_running_job(page, tmp_path):
    other = jobs.get_manager().start(
        "projector-run",
        DrawConfig(T=4, enc_size=32, dec_size=32, z_size=8),
        TrainConfig(dataset="mnist-sample", batch_size=8, steps=1_000_000, device="cpu", eval_every=0),
    )
    assert start_from_page(page, "student-run", steps=5) is None
    assert any("already running: 'projector-run'" in element.value for element in page.error)
    other.stop()
    assert other.wait(HANG_GUARD_S)
