"""AppTest of the Train page: start a tiny run, watch it, stop it; bad settings and a busy server are refused."""

from __future__ import annotations

import time

import pytest
from app_support import assert_no_exception, open_page, use_folders

from draw_core.config import DrawConfig, TrainConfig
from draw_core.io.checkpoint import load_checkpoint
from draw_core.training import jobs

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
        ("train_batch_size", 0, "batch_size=0 is out of range"),
        ("train_steps", -5, "steps=-5 is out of range"),
    ],
)
def test_out_of_range_settings_are_refused_before_anything_starts(page, key, value, message):
    page.number_input(key=key).set_value(value)
    assert start_from_page(page, f"refused-{abs(value)}", steps=-5 if key == "train_steps" else 10) is None
    assert any(message in element.value for element in page.error), [e.value for e in page.error]


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
