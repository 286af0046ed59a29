"""Train: start a DRAW training run on the server, watch it learn (loss, samples, live glimpses), stop it.

The run is a job of `draw_core.jobs`: it belongs to the server process, not to this browser tab, so closing
the tab does not end it and every session that opens this page watches the same run. While it runs, the
live view below refreshes about once a second (`st.fragment(run_every=1)`).

The server's limits (draw_core.settings) shape the form: the batch size goes up to what fits in the memory a run may
use (DRAW_MAX_TRAIN_MEMORY_MB, or less when less is free), steps and minutes up to DRAW_MAX_RUN_STEPS and
DRAW_MAX_RUN_HOURS; with DRAW_ADMIN_TOKEN set, Start and Stop wait for the teacher's token.
"""

import datetime

import streamlit as st
import torch

import app_common
from draw_core import settings as limits
from draw_core.config import PRESETS, DrawConfig, TrainConfig
from draw_core.data import dataset_names, get_dataset
from draw_core.nn.attention import window_geometry
from draw_core.present import viz
from draw_core.training.devices import (
    available_devices,
    hardware_name,
    largest_batch,
    select_device,
    training_memory_limit,
)
from draw_core.training.jobs import JobError, JobSnapshot, get_manager, token_accepted

STATUS_ICONS = {
    "running": ":material/progress_activity:",
    "finished": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "failed": ":material/error:",
}

manager = get_manager()


def session_token() -> str | None:
    """The teacher's token this session entered (None when it entered none); asks for it while DRAW_ADMIN_TOKEN is
    set and this session has not given it."""
    token = st.session_state.get("_train_token")
    if token_accepted(token):
        return token
    st.info("On this server only the teacher starts and stops training runs: enter the token to do so.")
    entered = st.text_input("Teacher token", type="password", key="train_token")
    if entered and token_accepted(entered):
        st.session_state["_train_token"] = entered
        return entered
    if entered:
        st.error("That is not the teacher's token.")
    return None


def batch_size_limit(model: dict, device: str) -> tuple[int | None, str]:
    """The largest batch the memory a run may use allows for this model, and a caption saying why; None (and why)
    when the model's settings are not valid yet (Start then says what is wrong)."""
    try:
        limit, source = training_memory_limit(select_device(device))
        fits = largest_batch(DrawConfig(**model), limit)
    except ValueError as error:
        return None, f"No batch size limit until the model is valid: {error}"
    return fits, f"At most {fits:,} images per batch fit in the {limit / 2**30:.1f} GB {source}."


def settings(allowed: bool) -> tuple[str, dict, dict, int] | None:
    """The New run form; returns (name, DrawConfig fields, TrainConfig fields, glimpse_every) when Start is pressed
    (it can be pressed only when this session is `allowed` to start jobs)."""
    generator_sets = [name for name in dataset_names() if get_dataset(name).task == "generate"]
    available = {name: get_dataset(name).available() for name in generator_sets}
    app_common.remember("train_dataset", next(name for name in generator_sets if available[name]))
    app_common.remember("train_preset", "mnist-small")
    data_column, preset_column, device_column = st.columns(3)
    dataset = data_column.selectbox(
        "Dataset",
        generator_sets,
        key="train_dataset",
        format_func=lambda name: name if available[name] else f"{name} (not on this server)",
    )
    if not available[dataset]:
        data_column.warning(get_dataset(dataset).how_to_get())
    preset = preset_column.selectbox(
        "Preset",
        list(PRESETS),
        key="train_preset",
        help="mnist-small trains in minutes on a CPU; mnist is the paper's configuration (Table 3)",
    )
    devices = available_devices()
    device = device_column.selectbox(
        "Device", ["auto", *devices], key="train_device", help="auto: CUDA, then MPS, then CPU"
    )
    device_column.caption("This machine: " + "; ".join(f"`{d}` {hardware_name(torch.device(d))}" for d in devices))

    defaults = DrawConfig.preset(preset)
    columns = st.columns(5)
    model = dict(defaults.to_dict())
    # Keys carry the preset, so choosing another preset shows that preset's values.
    model["T"] = columns[0].number_input("Steps T", value=defaults.T, step=1, key=f"train_T_{preset}")
    model["read_n"] = columns[1].number_input(
        "Read N", value=defaults.read_n, step=1, key=f"train_read_n_{preset}", disabled=not defaults.read_attn
    )
    model["write_n"] = columns[2].number_input(
        "Write N", value=defaults.write_n, step=1, key=f"train_write_n_{preset}", disabled=not defaults.write_attn
    )
    model["z_size"] = columns[3].number_input("z size", value=defaults.z_size, step=1, key=f"train_z_{preset}")
    lstm = columns[4].number_input("LSTM units", value=defaults.enc_size, step=1, key=f"train_lstm_{preset}")
    model["enc_size"] = model["dec_size"] = lstm

    max_batch, batch_help = batch_size_limit(model, device)
    max_steps, max_minutes = limits.max_run_steps(), limits.max_run_seconds() / 60
    columns = st.columns(5)
    until = columns[0].radio("Run for", ["steps", "minutes"], key="train_until", horizontal=True)
    if until == "steps":
        steps = columns[1].number_input(
            "Steps", min_value=1, max_value=max_steps, value=min(500, max_steps), step=100, key="train_steps"
        )
        minutes = None
    else:
        minutes = columns[1].number_input(
            "Minutes", min_value=0.1, max_value=max_minutes, value=min(5.0, max_minutes), step=1.0, key="train_minutes"
        )
        steps = max_steps  # the clock ends the run
    batch_size = columns[2].number_input(
        "Batch size",
        min_value=1,
        max_value=max_batch or None,
        value=min(64, max_batch or 64),
        step=16,
        key="train_batch_size",
        help=batch_help,
    )
    lr = columns[3].number_input("Learning rate", value=1e-3, step=1e-4, format="%.5f", key="train_lr")
    seed = columns[4].number_input("Seed", value=0, step=1, key="train_seed")

    with st.expander("Reporting and checkpoints"):
        columns = st.columns(6)
        log_every = columns[0].number_input("Progress every (steps)", value=5, step=1, key="train_log_every")
        glimpse_every = columns[1].number_input("Glimpses every (steps)", value=10, step=1, key="train_glimpse_every")
        sample_every = columns[2].number_input("Samples every (steps)", value=50, step=10, key="train_sample_every")
        checkpoint_every = columns[3].number_input("Checkpoint every (steps)", value=200, step=50, key="train_ckpt")
        eval_every = columns[4].number_input("Test bound every (steps, 0: end)", value=500, step=100, key="train_eval")
        eval_limit = columns[5].number_input("Test digits", value=500, step=100, key="train_eval_limit")

    fresh_name = f"{preset}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    if st.session_state.pop("_train_name_taken", False):  # the last Start used it: offer a new one
        st.session_state["train_name"] = fresh_name
    app_common.remember("train_name", fresh_name)
    name = st.text_input("Run name", key="train_name", help="the checkpoint becomes runs/<name>.safetensors")
    if not st.button(
        "Start training", key="train_start", type="primary", icon=":material/play_arrow:", disabled=not allowed
    ):
        return None
    if not available[dataset]:
        st.error(f"Not started: {get_dataset(dataset).how_to_get()}")
        return None
    train = dict(
        dataset=dataset,
        batch_size=batch_size,
        steps=steps,
        time_budget_s=None if minutes is None else minutes * 60,
        lr=lr,
        seed=seed,
        device=device,
        log_every=log_every,
        sample_every=sample_every,
        checkpoint_every=checkpoint_every,
        eval_every=eval_every,
        eval_limit=eval_limit,
        warmup_steps=min(TrainConfig.warmup_steps, max(0, steps // 10)),  # a short demo still reaches the peak rate
    )
    return name.strip(), model, train, glimpse_every


def start(name: str, model: dict, train: dict, glimpse_every: int, token: str | None) -> None:
    """Validate every setting (DrawConfig, TrainConfig, then the server's checks in JobManager.start: the token, the
    device, the run name, memory, disk and run length) before anything starts."""
    try:
        model_cfg = DrawConfig(**model)
        train_cfg = TrainConfig(**train)
        manager.start(name, model_cfg, train_cfg, glimpse_every=glimpse_every, token=token)
    except (ValueError, JobError) as error:  # JobError is a ValueError too: busy, bad or taken name, limits
        st.error(f"Not started: {error}")
        return
    st.toast(f"Training run '{name}' started")
    st.session_state["_train_name_taken"] = True


def progress_section(job: JobSnapshot) -> None:
    time_budget = job.train_config.time_budget_s
    if time_budget:
        elapsed, budget = app_common.format_duration(job.elapsed_s), app_common.format_duration(time_budget)
        text = f"step {job.step:,} · {elapsed} of {budget}"
    else:
        text = f"step {job.step:,} / {job.total_steps:,}"
    if job.status == "running":
        text += " · ETA " + app_common.format_duration(job.eta_s, "estimating…")
    st.progress(min(1.0, max(0.0, job.progress)), text=text)
    columns = st.columns(5)
    columns[0].metric("Images / s", f"{job.images_per_s:,.0f}" if job.images_per_s == job.images_per_s else "–")
    latest = job.history_recon[-1] + job.history_kl[-1] if job.history_recon else None
    columns[1].metric("Batch loss (nats)", f"{latest:.1f}" if latest is not None else "–")
    columns[2].metric(
        "Test bound (nats)",
        f"{job.test_elbo:.2f}" if job.test_elbo is not None else "not yet",
        help=f"on {job.train_config.eval_limit} test digits at step {job.test_elbo_step}" if job.test_elbo else None,
    )
    columns[3].metric("Training time", app_common.format_duration(job.elapsed_s))
    columns[4].metric("Epochs", f"{job.epoch:.2f}")


def charts_section(job: JobSnapshot) -> None:
    loss_column, kl_column = st.columns(2)
    loss_column.plotly_chart(
        viz.loss_history_figure(job.history_steps, job.history_recon, job.history_kl), key="train_loss_chart"
    )
    if job.kl_per_step:
        kl_column.plotly_chart(
            viz.kl_per_step_figure(list(job.kl_per_step), title=f"KL per step t at training step {job.step}"),
            key="train_kl_chart",
        )
    samples_column, glimpse_column = st.columns([1, 2])
    if job.samples is None:
        every = job.train_config.sample_every
        samples_column.caption(f"Fresh samples appear every {every} steps." if every else "This run draws no samples.")
    else:
        samples_column.plotly_chart(
            viz.image_grid_figure(job.samples, nrow=4, title=f"fresh samples, step {job.samples_step}", size=300),
            key="train_samples",
            width="content",
        )
    with glimpse_column:
        glimpses_section(job)


def glimpses_section(job: JobSnapshot) -> None:
    glimpses = job.glimpses
    if glimpses is None:
        st.caption("Live glimpses appear after the first report.")
        return
    T = glimpses.canvases.shape[0]
    step = app_common.step_controls(T, key="train_glimpse_step", label="Glimpse step t")
    t = step - 1
    st.caption(
        f"A fixed test digit reconstructed with the weights of training step {glimpses.step}: "
        f"the read window of step t on the input, the write window on the canvas σ(c<sub>t</sub>).",
        unsafe_allow_html=True,
    )
    read_figure = viz.image_figure(glimpses.digit, title=f"input · read t={step}", size=220)
    write_figure = viz.image_figure(glimpses.canvases[t], title=f"σ(c<sub>{step}</sub>) · write t={step}", size=220)
    if glimpses.read_attn is not None:
        viz.add_window(read_figure, window_geometry(glimpses.read_attn.step(t), glimpses.read_n), kind="read")
    if glimpses.write_attn is not None:
        viz.add_window(write_figure, window_geometry(glimpses.write_attn.step(t), glimpses.write_n), kind="write")
    final_figure = viz.image_figure(glimpses.canvases[-1], title=f"final σ(c<sub>{T}</sub>)", size=220)
    for column, figure, key in zip(
        st.columns(3), (read_figure, write_figure, final_figure), ("read", "write", "final"), strict=True
    ):
        column.plotly_chart(figure, key=f"train_glimpse_{key}", width="content")


def live_view(watching_a_run: bool, token: str | None) -> None:
    """The latest run of this server; refreshes itself every second while `watching_a_run`. Stop needs `token` when
    DRAW_ADMIN_TOKEN is set."""
    job = manager.latest()
    if job is None:
        st.info("No training run on this server yet: choose the settings above and press Start.")
        return
    if watching_a_run and not job.running:
        st.rerun()  # it just ended: redraw the whole page, so the sidebar's picker offers its checkpoint
    snapshot = job.snapshot()
    title_column, stop_column = st.columns([5, 1], vertical_alignment="bottom")
    state = "stopping…" if snapshot.status == "running" and snapshot.stop_requested else snapshot.status
    cfg = snapshot.model_config
    title_column.subheader(f"{STATUS_ICONS[snapshot.status]} {snapshot.name}: {state}")
    read = f"read {cfg.read_n}×{cfg.read_n}" if cfg.read_attn else "no read attention"
    write = f"write {cfg.write_n}×{cfg.write_n}" if cfg.write_attn else "no write attention"
    settings_used = snapshot.train_config
    title_column.caption(
        f"{settings_used.dataset} · T={cfg.T} · {read} · {write} · z={cfg.z_size} · LSTM {cfg.enc_size} · "
        f"batch {settings_used.batch_size} · lr {settings_used.lr:g} · device {snapshot.device} → "
        f"`{snapshot.checkpoint_path}`"
    )
    if snapshot.status == "running" and stop_column.button(
        "Stop",
        key="train_stop",
        icon=":material/stop:",
        disabled=snapshot.stop_requested or not token_accepted(token),
        help="ends the run and saves its checkpoint",
    ):
        try:
            manager.stop(snapshot.name, token=token)
            st.toast(f"Stopping '{snapshot.name}': it finishes the current step and saves its checkpoint")
        except JobError as error:
            st.error(f"Not stopped: {error}")
    if snapshot.status == "failed":
        kept = (
            f"The last good checkpoint (step {snapshot.last_checkpoint_step}) is kept at `{snapshot.last_checkpoint}`."
            if snapshot.last_checkpoint
            else "No checkpoint had been written yet."
        )
        st.error(f"The run failed: {snapshot.error}\n\n{kept}")
    elif snapshot.status in ("finished", "stopped"):
        st.success(
            f"{'Finished' if snapshot.status == 'finished' else 'Stopped'} at step {snapshot.step:,}; the checkpoint "
            f"`{snapshot.checkpoint_path}` is in the sidebar's checkpoint picker as **{snapshot.name} (run)**."
            + (f" Stopped by the server: {snapshot.note}." if snapshot.note else "")
        )
    progress_section(snapshot)
    charts_section(snapshot)


st.title("Train")
st.caption(
    "Train DRAW on this server with the same loop as `python -m draw_core.train`: Adam on the negative ELBO "
    "(eq. 12). The run keeps going if you close this tab, and everyone who opens this page watches it."
)
token = session_token() if limits.admin_token() else None
running = manager.running()
with st.expander("New run", expanded=not running):
    request = settings(allowed=token_accepted(token))
if request is not None:
    start(*request, token=token)
    running = manager.running()
st.fragment(run_every=1 if running else None)(live_view)(bool(running), token)
