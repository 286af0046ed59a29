"""Train: start a training run on the server, watch it learn, stop it. Any preset of draw_core.presets: the DRAW
generator (loss, samples from a fixed z over time, live reconstructions) or one of the attention classifiers of
sec. 4.1, DRAW's read-only classifier and RAM (running error, test error, their glimpses on an example image).

The run is a job of `draw_core.training.jobs`: it belongs to the server process, not to this browser tab, so closing
the tab does not end it and every session that opens this page watches the same run. While it runs, the
live view below refreshes about once a second (`st.fragment(run_every=1)`), and the New run form is folded away.

The live glimpses are one timeline figure (app_views.follow): the browser moves through every step of the latest
reconstruction or glimpses without a rerun, and stays on its step when new weights bring a new figure.

The dataset picker offers only the datasets of the preset's task that are on this server, its own first, and says
what each of the others needs (how_to_get); a generator's likelihood is its dataset's (Bernoulli for binary digits,
the discretised logistic for 8-bit colour). Colour runs show their glimpses and samples in colour, their test bound in
bits/dim too, and which copy of CIFAR-10 their figures are measured on.

The server's limits (draw_core.settings) shape the form: the batch size goes up to what fits in the memory a run may
use (DRAW_MAX_TRAIN_MEMORY_MB, or less when less is free), steps and minutes up to DRAW_MAX_RUN_STEPS and
DRAW_MAX_RUN_HOURS; with DRAW_ADMIN_TOKEN set, Start and Stop wait for the teacher's token.
"""

import datetime
import math

import plotly.graph_objects as go
import streamlit as st
import torch

import app_common
import app_views
from draw_core import settings as limits
from draw_core.config import TrainConfig
from draw_core.data import dataset_names, get_dataset
from draw_core.nn.kinds import get_kind
from draw_core.nn.likelihood import LEVEL_LIKELIHOODS, nats_to_bits_per_dim
from draw_core.present import attention_at_work as work
from draw_core.present import views, viz
from draw_core.presets import get_preset, preset_names
from draw_core.training.devices import (
    available_devices,
    hardware_name,
    largest_batch,
    select_device,
    training_memory_limit,
)
from draw_core.training.jobs import (
    ClassifierGlimpses,
    GlimpseSnapshot,
    Job,
    JobError,
    JobSnapshot,
    get_manager,
    token_accepted,
)
from draw_core.training.objectives import objective_for

STATUS_ICONS = {
    "running": ":material/progress_activity:",
    "finished": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "failed": ":material/error:",
}
MODEL_FIELDS = {  # model kind -> the network settings the form offers: (config fields, label, widget key part)
    "draw": (
        (("T",), "Steps T", "T"),
        (("read_n",), "Read N", "read_n"),
        (("write_n",), "Write N", "write_n"),
        (("z_size",), "z size", "z"),
        (("enc_size", "dec_size"), "LSTM units", "lstm"),
    ),
    "draw-classifier": (
        (("glimpses",), "Glimpses", "glimpses"),
        (("read_n",), "Read N", "read_n"),
        (("hidden",), "LSTM units", "lstm"),
    ),
    "ram": (
        (("glimpses",), "Glimpses", "glimpses"),
        (("patch",), "Patch P", "patch"),
        (("scales",), "Scales", "scales"),
        (("hidden",), "LSTM units", "lstm"),
    ),
}
TEST_FIGURES = {  # the objective's test figure -> (metric label, format of its value)
    "test_elbo_nats": ("Test bound (nats)", "{:.2f}"),
    "test_recon_nats": ("Test reconstruction (nats)", "{:.2f}"),
    "test_error": ("Test error", "{:.2%}"),
}
TIMED_WARMUP_STEPS = 20  # warm-up of a run the clock ends: its steps are unknown, and a slow model makes few
RUNS_POLL_S = 2  # seconds between this page's checks for a run started or ended by any session
ERROR_WINDOW = 20  # reports averaged in a classifier's running training error
FORM_KEY = "train_form"  # session key of the New run expander's open state
GLIMPSES_KEY = "train_glimpses"  # chart key of the live glimpses' timeline
GLIMPSE_PX = 200  # screen pixels across an image panel of a generator's live glimpses
CLASSIFIER_NAMES = {"draw-classifier": "DRAW", "ram": "RAM"}  # a classifier's name in its glimpses' titles

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


def batch_size_limit(kind: str, model: dict, device: str, dataset: str) -> tuple[int | None, str]:
    """The largest batch the memory a run may use allows for this model, and no larger than the dataset's training
    set, with a caption saying why; None (and why) when the model's settings are not valid yet (Start then says what
    is wrong)."""
    try:
        limit, source = training_memory_limit(select_device(device))
        fits = largest_batch(get_kind(kind).config_class(**model), limit)
    except ValueError as error:
        return None, f"No batch size limit until the model is valid: {error}"
    why = f"At most {fits:,} images per batch fit in the {limit / 2**30:.1f} GB {source}."
    images = get_dataset(dataset).train_size
    if 0 < images < fits:
        return images, why + f" {dataset} has {images:,} training images: no batch can be larger."
    return fits, why


def dataset_key(kind: str) -> str:
    """The session key of the dataset picker for a model of `kind`: one choice per task (generators learn images,
    classifiers labelled images), so a preset of the other task keeps its own."""
    return f"train_dataset_{get_kind(kind).task}"


def follow_preset() -> None:
    """Another preset: the dataset picker goes to that preset's own dataset (or the nearest one here)."""
    st.session_state.pop(dataset_key(get_preset(st.session_state["train_preset"]).kind), None)


def dataset_choice(column, preset) -> str | None:
    """The dataset picker for the preset's model: the registry's datasets of its task that are on this server
    (spec.available), the preset's own first chosen; every other one of its task is named with what it needs
    (how_to_get). None when none is here."""
    task = get_kind(preset.kind).task
    names = [name for name in dataset_names() if get_dataset(name).task == task]
    here = [name for name in names if get_dataset(name).available()]
    missing = [name for name in names if name not in here]
    key = dataset_key(preset.kind)
    if st.session_state.get(key) not in here:  # first visit, another preset, or its dataset went away
        st.session_state[key] = views.training_dataset(preset.dataset, here)
    dataset = None
    if here:
        dataset = column.selectbox(
            "Dataset",
            here,
            key=key,
            format_func=lambda name: f"{name} · {views.image_shape(*get_dataset(name).shape)}",
            help="the datasets on this server this preset's model can learn from: "
            + ("labelled images to classify" if task == "classify" else "images to generate"),
        )
        if preset.dataset in missing:
            column.caption(f"The {preset.name} preset's own dataset is not here: it trains on {dataset} instead.")
    if missing:
        column.info(
            "Not on this server, so not listed:\n\n" + "\n".join(f"- {get_dataset(n).how_to_get()}" for n in missing)
        )
    return dataset


def model_settings(preset_name: str, dataset: str) -> tuple[str, dict] | None:
    """The preset's network for the dataset's image size, with the settings of MODEL_FIELDS editable; returns (kind,
    config fields), or None (and says why) when the preset does not fit the dataset's images."""
    preset = get_preset(preset_name)
    spec = get_dataset(dataset)
    channels, height, width = spec.shape
    data = dict(channels=channels, height=height, width=width)
    if get_kind(preset.kind).generates:  # D(X | c_T) of eq. 9 is the data's: Bernoulli for binary pixels, else logistic
        data["likelihood"] = spec.likelihood
    try:
        defaults = preset.build(**data)
    except ValueError as error:
        st.error(f"The {preset_name} preset does not fit {dataset}'s {views.image_shape(*spec.shape)} images: {error}")
        return None
    fields = MODEL_FIELDS[preset.kind]
    model = defaults.to_dict()
    switched_off = {
        "read_n": not getattr(defaults, "read_attn", True),
        "write_n": not getattr(defaults, "write_attn", True),
    }
    # Keys carry the preset, so choosing another preset shows that preset's values.
    for column, (names, label, key) in zip(st.columns(len(fields)), fields, strict=True):
        value = column.number_input(
            label,
            value=getattr(defaults, names[0]),
            step=1,
            key=f"train_{key}_{preset_name}",
            disabled=switched_off.get(names[0], False),
        )
        model.update(dict.fromkeys(names, value))
    return preset.kind, model


def settings(allowed: bool) -> tuple[str, str, dict, dict, int] | None:
    """The New run form; returns (name, model kind, its config fields, TrainConfig fields, glimpse_every) when Start
    is pressed (it can be pressed only when this session is `allowed` to start jobs)."""
    app_common.remember("train_preset", "mnist-small")
    preset_column, data_column, device_column = st.columns(3)
    preset_name = preset_column.selectbox(
        "Preset",
        preset_names(),
        key="train_preset",
        on_change=follow_preset,
        help="mnist-small trains a generator in minutes on a CPU; mnist is the paper's configuration (Table 3); "
        "svhn and cifar10 are its colour rows; mnist-two is the two-digit experiment of sec. 4 (its sizes are this "
        "app's choice); mnist-cluttered-draw and mnist-cluttered-ram are the classifiers of Table 1",
    )
    preset = get_preset(preset_name)
    preset_column.caption(f"{get_kind(preset.kind).description}: {preset.note}")
    dataset = dataset_choice(data_column, preset)
    devices = available_devices()
    device = device_column.selectbox(
        "Device", ["auto", *devices], key="train_device", help="auto: CUDA, then MPS, then CPU"
    )
    device_column.caption("This machine: " + "; ".join(f"`{d}` {hardware_name(torch.device(d))}" for d in devices))
    if dataset is None:
        st.warning(f"No dataset a {preset.kind} model learns from is on this server: see above for what each needs.")
        return None
    network = model_settings(preset_name, dataset)
    if network is None:
        return None
    kind, model = network
    generates = get_kind(kind).generates

    max_batch, batch_help = batch_size_limit(kind, model, device, dataset)
    if max_batch == 0:
        st.warning(f"{batch_help} Make the model smaller, or give runs more memory (DRAW_MAX_TRAIN_MEMORY_MB).")
    largest = None if max_batch is None else max(1, max_batch)  # Start refuses a batch that does not fit
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
        max_value=largest,
        value=min(64, largest or 64),
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
        sample_every = columns[2].number_input(
            "Samples every (steps)",
            value=50,
            step=10,
            key="train_sample_every",
            disabled=not generates,
            help="fresh samples, and a row of the fixed-z strip (a classifier draws none)",
        )
        checkpoint_every = columns[3].number_input("Checkpoint every (steps)", value=200, step=50, key="train_ckpt")
        eval_every = columns[4].number_input("Test every (steps, 0: end)", value=500, step=100, key="train_eval")
        eval_limit = columns[5].number_input("Test images", value=500, step=100, key="train_eval_limit")

    fresh_name = f"{preset_name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    offered_name, offered_for = st.session_state.get("_train_offered", (None, None))  # the name this page made
    # A new name when the last Start used it, or when the name offered (and kept) was made for another preset.
    taken = st.session_state.pop("_train_name_taken", False)
    if taken or (st.session_state.get("train_name") == offered_name and offered_for != preset_name):
        st.session_state["train_name"] = fresh_name
    if app_common.remember("train_name", fresh_name) == fresh_name:
        st.session_state["_train_offered"] = (fresh_name, preset_name)
    name = st.text_input("Run name", key="train_name", help="the checkpoint becomes runs/<name>.safetensors")
    st.button(
        "Start training",
        key="train_start",
        type="primary",
        icon=":material/play_arrow:",
        disabled=not allowed,
        on_click=app_common.request_click,
        args=("_train_start_requested",),
    )
    if not st.session_state.pop("_train_start_requested", False):
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
        sample_every=sample_every if generates else 0,
        checkpoint_every=checkpoint_every,
        eval_every=eval_every,
        eval_limit=eval_limit,
        # a short demo still reaches the peak rate: a tenth of its steps (at most 200); a timed run's steps are unknown
        warmup_steps=min(TrainConfig.warmup_steps, max(0, steps // 10)) if minutes is None else TIMED_WARMUP_STEPS,
    )
    return name.strip(), kind, model, train, glimpse_every


def start(name: str, kind: str, model: dict, train: dict, glimpse_every: int, token: str | None) -> bool:
    """Validate every setting (the kind's config, TrainConfig, then the server's checks in JobManager.start: the
    token, the device, the run name, the dataset, memory, disk and run length) before anything starts; True when
    the run started."""
    try:
        model_cfg = get_kind(kind).config_class(**model)
        train_cfg = TrainConfig(**train)
        manager.start(name, model_cfg, train_cfg, glimpse_every=glimpse_every, token=token)
    except (ValueError, JobError) as error:  # JobError is a ValueError too: busy, bad or taken name, limits
        st.error(f"Not started: {error}")
        return False
    st.session_state["_train_started"] = name
    st.session_state["_train_name_taken"] = True
    return True


def test_metric(job: JobSnapshot) -> tuple[str, str, str | None]:
    """(label, value, help) of the latest test figure of the job's objective."""
    if job.test is None:
        label, _ = TEST_FIGURES[objective_for(job.kind, job.train_config.kl_weight).test_name]
        return label, "testing…" if job.evaluating else "not yet", None
    label, form = TEST_FIGURES[job.test.name]
    value, measured = form.format(job.test.value), f"on {job.test.n:,} test images at step {job.test_step:,}"
    cfg = job.model_config
    if job.test.name == "test_elbo_nats" and getattr(cfg, "likelihood", None) in LEVEL_LIKELIHOODS:  # colour: bits/dim
        bits = nats_to_bits_per_dim(job.test.value, cfg.channels * cfg.height * cfg.width)
        value, measured = f"{value} · {bits:.3f} bits/dim", f"{measured}; bits/dim = nats / (C·H·W · ln 2)"
    return label, value, measured


def progress_section(job: JobSnapshot) -> None:
    time_budget = job.train_config.time_budget_s
    if time_budget:
        elapsed, budget = app_common.format_duration(job.elapsed_s), app_common.format_duration(time_budget)
        text = f"step {job.step:,} · {elapsed} of {budget}"
    else:
        text = f"step {job.step:,} / {job.total_steps:,}"
    if job.status == "running" and not job.stop_requested:
        text += " · ETA " + app_common.format_duration(job.eta_s, "estimating…")
    st.progress(min(1.0, max(0.0, job.progress)), text=text)
    columns = st.columns(5)
    columns[0].metric("Images / s", f"{job.images_per_s:,.0f}" if math.isfinite(job.images_per_s) else "–")
    if "error" in job.history:
        errors = job.history["error"]
        latest = f"{viz.running_mean(errors, ERROR_WINDOW)[-1]:.1%}" if errors else "–"
        columns[1].metric("Training error", latest, help=f"mean over the last {ERROR_WINDOW} reported batches")
    else:
        losses = job.history.get("loss", ())
        columns[1].metric("Batch loss (nats)", f"{losses[-1]:.1f}" if losses else "–")
    label, value, explained = test_metric(job)
    columns[2].metric(label, value, help=explained)
    columns[3].metric("Training time", app_common.format_duration(job.elapsed_s))
    columns[4].metric("Epochs", f"{job.epoch:.2f}")


def test_points(job: JobSnapshot) -> tuple[list[int], list[float]]:
    return [step for step, _ in job.test_history], [value for _, value in job.test_history]


def generator_charts(job: JobSnapshot) -> None:
    """DRAW: the loss (KL on its own axis) with the test bound, KL per step, samples, glimpses, the fixed-z strip."""
    loss_column, kl_column = st.columns(2)
    test_steps, test_values = test_points(job)
    loss_column.plotly_chart(
        viz.loss_history_figure(
            job.history_steps,
            job.history.get("recon", ()),
            job.history.get("kl", ()),
            test_steps=test_steps,
            test_values=test_values,
        ),
        key="train_loss_chart",
    )
    app_views.explain(views.EXPLANATIONS["loss"], loss_column)
    if job.per_step:
        kl_column.plotly_chart(
            viz.kl_per_step_figure(list(job.per_step), title=f"KL per step t at training step {job.step}"),
            key="train_kl_chart",
        )
        app_views.explain(views.EXPLANATIONS["kl_training"], kl_column)
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
        app_views.explain(views.EXPLANATIONS["train_samples"], samples_column)
    with glimpse_column:
        reconstruction_glimpses(job)
    if job.sample_strip:
        st.plotly_chart(
            viz.sample_strip_figure(
                [row.step for row in job.sample_strip],
                torch.stack([row.images for row in job.sample_strip]),
                title="the same z decoded as training goes on",
                size=560,
            ),
            key="train_strip",
            width="content",
        )
        app_views.explain(views.EXPLANATIONS["strip"])


def run_key(job: JobSnapshot) -> str:
    """What tells one run from another in the figure caches: a run started again under the name of a failed one
    reaches the same step numbers with other weights."""
    return f"{job.name}@{job.started_at}"


@st.cache_resource(max_entries=4, show_spinner=False)
def reconstruction_timeline(run: str, step: int, _glimpses: GlimpseSnapshot) -> go.Figure:
    """A generator's live reconstruction (made by run `run`, a run_key, at training step `step`) as a timeline: the
    input with the read window of step t, the canvas sigma(c_t) with the write window, the finished sigma(c_T);
    shared by every session that watches the run, built once per report."""
    g = _glimpses
    T = len(g.canvases)
    read = views.window_at(g.read_attn, g.read_n, slice(None))  # (T,) fields, or None
    write = views.window_at(g.write_attn, g.write_n, slice(None))
    padded = read is not None or write is not None
    colour = g.image.shape[0] == 3  # a colour image and its canvases are drawn in colour, anything else in grey
    image = (g.image if colour else g.image.mean(0)).numpy()  # (3, H, W) or (H, W)
    canvases = (g.canvases if colour else g.canvases.mean(1)).numpy()  # (T, 3, H, W) or (T, H, W)
    row = [
        viz.ImagePanel(
            image,
            "input x · read window" if read is not None else "input x",
            GLIMPSE_PX,
            padded=padded,
            windows=(("read", read, False),) if read is not None else (),
            colour=colour,
        ),
        viz.ImagePanel(
            canvases,
            "σ(c<sub>t</sub>) · write window" if write is not None else "σ(c<sub>t</sub>)",
            GLIMPSE_PX,
            padded=padded,
            windows=(("write", write, False),) if write is not None else (),
            colour=colour,
        ),
        viz.ImagePanel(canvases[-1], f"final σ(c<sub>{T}</sub>)", GLIMPSE_PX, padded=padded, colour=colour),
    ]
    labels = [
        " · ".join(
            [f"t = {t + 1} of {T}"]
            + ([f"read: {viz.window_label(read, t)}"] if read is not None else [])
            + ([f"write: {viz.window_label(write, t)}"] if write is not None else [])
        )
        for t in range(T)
    ]
    return viz.timeline_figure([row], T=T, labels=labels)


@st.cache_resource(max_entries=4, show_spinner=False)
def classifier_timeline(run: str, step: int, kind: str, _glimpses: ClassifierGlimpses) -> go.Figure:
    """A classifier's live glimpses (run `run`, training step `step`) as a timeline (work.glimpse_timeline)."""
    return work.glimpse_timeline(_glimpses.image, {CLASSIFIER_NAMES[kind]: _glimpses.trace})


def timeline_view(figure: go.Figure, T: int, explained: list) -> None:
    """The live glimpses' timeline with its step slider, the browser's controls and each piece explained."""
    step = app_common.step_controls(T, key="train_glimpse_step", label="Glimpse step t")
    st.plotly_chart(figure, key=GLIMPSES_KEY, width="content")
    app_views.follow(
        GLIMPSES_KEY, T=T, step=step, initial=figure.layout.meta["timeline"]["initial"], step_key="train_glimpse_step"
    )
    for column, explanation in zip(st.columns(len(explained)), explained, strict=True):
        app_views.explain(explanation, column)


def reconstruction_glimpses(job: JobSnapshot) -> None:
    glimpses = job.glimpses
    if glimpses is None:
        st.caption("Live glimpses appear after the first report.")
        return
    windows = [
        where
        for where, shown in (
            ("the read window of step t on the input", glimpses.read_attn),
            ("the write window on the canvas σ(c<sub>t</sub>)", glimpses.write_attn),
        )
        if shown is not None
    ]
    st.caption(
        f"The dataset's example image reconstructed with the weights of training step {glimpses.step}"
        + (f": {' and '.join(windows)}." if windows else ": this model reads and writes the whole image (eqs 17-18)."),
        unsafe_allow_html=True,
    )
    explained = [
        views.EXPLANATIONS[name]
        for name, shown in (("read", glimpses.read_attn), ("write", glimpses.write_attn))
        if shown is not None
    ]
    timeline_view(
        reconstruction_timeline(run_key(job), glimpses.step, glimpses),
        len(glimpses.canvases),
        explained or [views.EXPLANATIONS["canvas_whole"]],
    )


def classifier_charts(job: JobSnapshot) -> None:
    """A classifier: its running error with the test error, its loss terms, and its glimpses of the example."""
    error_column, loss_column = st.columns(2)
    test_steps, test_values = test_points(job)
    error_column.plotly_chart(
        viz.error_history_figure(
            job.history_steps,
            job.history.get("error", ()),
            test_steps=test_steps,
            test_errors=test_values,
            window=ERROR_WINDOW,
        ),
        key="train_error_chart",
    )
    app_views.explain(views.EXPLANATIONS["classifier_error"], error_column)
    terms = {name: values for name, values in job.history.items() if name not in ("loss", "error")}
    curves = {"loss (what Adam minimises)": job.history.get("loss", ()), **terms}
    loss_column.plotly_chart(
        viz.training_curves_figure(job.history_steps, curves, title="Training loss per batch"),
        key="train_curves_chart",
    )
    app_views.explain(views.EXPLANATIONS["classifier_loss"], loss_column)
    if isinstance(job.glimpses, ClassifierGlimpses):
        classifier_glimpses(job, job.glimpses)
    else:
        st.caption("Live glimpses appear after the first report.")


def classifier_glimpses(job: JobSnapshot, glimpses: ClassifierGlimpses) -> None:
    """DRAW's read window (eqs 19-24) or RAM's retina on the example image at every glimpse, what it read there, and
    the class probabilities after each glimpse: one timeline."""
    st.caption(
        f"The dataset's example image seen by the classifier with the weights of training step {glimpses.step}: where "
        f"it looks at glimpse t, what it reads there, and what it believes after that glimpse."
    )
    looks = "ram_retina" if job.kind == "ram" else "draw_read"
    timeline_view(
        classifier_timeline(run_key(job), glimpses.step, job.kind, glimpses),
        len(glimpses.trace.probabilities),
        [work.EXPLANATIONS[looks], work.EXPLANATIONS["probabilities"]],
    )


def watched_job() -> Job | None:
    """The run the page shows: with several running (DRAW_MAX_JOBS > 1) the one picked here, else the running one,
    else the latest of this server."""
    running = manager.running()
    if len(running) > 1:
        names = [job.name for job in reversed(running)]  # the newest first
        name = st.selectbox("Watch run", names, key="train_watch", help=f"{len(running)} runs are training")
        return manager.get(name)
    return running[0] if running else manager.latest()


def running_keys() -> tuple[str, ...]:
    return tuple(run_key(job.snapshot()) for job in manager.running())


def rerun_when_runs_change(keys_drawn: tuple[str, ...]) -> None:
    """A run started (by any session) or ended since the page was drawn: redraw it all, so the view follows the new
    run and the sidebar's picker offers an ended run's checkpoint."""
    if running_keys() != keys_drawn:
        st.rerun()


def stop_run(requested: str, token: str | None) -> None:
    """Stop the run the Stop button was drawn for (its run_key), never another run shown since the click."""
    name = requested.partition("@")[0]  # run names have no '@' (jobs.check_run_name)
    job = manager.get(name)
    if job is None or not job.running or run_key(job.snapshot()) != requested:
        st.info(f"'{name}' had already ended: nothing was stopped.")
        return
    try:
        manager.stop(name, token=token)
        st.toast(f"Stopping '{name}': it finishes the current step, saves and tests its checkpoint")
    except JobError as error:
        st.error(f"Not stopped: {error}")


def live_view(name: str | None, token: str | None) -> None:
    """Run `name` of this server; its fragment refreshes every second while it trains. Stop needs `token` when
    DRAW_ADMIN_TOKEN is set."""
    job = manager.get(name) if name is not None else None
    if job is None:
        st.info("No training run on this server yet: choose the settings above and press Start.")
        return
    snapshot = job.snapshot()
    title_column, stop_column = st.columns([5, 1], vertical_alignment="bottom")
    state = snapshot.status
    if snapshot.status == "running" and snapshot.stop_requested:
        state = "testing the final weights…" if snapshot.evaluating else "stopping…"
    cfg, settings_used = snapshot.model_config, snapshot.train_config
    title_column.subheader(f"{STATUS_ICONS[snapshot.status]} {snapshot.name}: {state}")
    copy = views.data_copy(settings_used.dataset)
    title_column.caption(
        f"{settings_used.dataset} · {views.image_shape(cfg.channels, cfg.height, cfg.width)} · {snapshot.kind} · "
        f"{views.config_caption(cfg)} · batch {settings_used.batch_size} · lr {settings_used.lr:g} · device "
        f"`{snapshot.device}` → `{snapshot.checkpoint_path}`"
        + (f"  \nIts figures are measured on {copy}." if copy else "")
    )
    if snapshot.status == "running":
        stop_column.button(
            "Stop",
            key="train_stop",
            icon=":material/stop:",
            disabled=snapshot.stop_requested or not token_accepted(token),
            help="ends the run, saves its checkpoint and tests its final weights",
            on_click=app_common.request_click,
            args=("_train_stop_requested", run_key(snapshot)),
        )
    if requested := st.session_state.pop("_train_stop_requested", None):
        stop_run(requested, token)
    if snapshot.status == "failed":
        kept = (
            f"The last good checkpoint (step {snapshot.last_checkpoint_step}) is kept at `{snapshot.last_checkpoint}`."
            if snapshot.last_checkpoint
            else "No checkpoint had been written yet."
        )
        st.error(f"The run failed: {snapshot.error}\n\n{kept}")
    elif snapshot.status == "stopped" and snapshot.last_checkpoint is None:
        st.info("Stopped before its first step: no checkpoint was written.")
    elif snapshot.status in ("finished", "stopped"):
        st.success(
            f"{'Finished' if snapshot.status == 'finished' else 'Stopped'} at step {snapshot.step:,}; the checkpoint "
            f"`{snapshot.checkpoint_path}` is in the sidebar's checkpoint picker as **{snapshot.name} (run)**."
            + (f" Stopped by the server: {snapshot.note}." if snapshot.note else "")
        )
    progress_section(snapshot)
    if get_kind(snapshot.kind).classifies:
        classifier_charts(snapshot)
    else:
        generator_charts(snapshot)


app_common.page_setup()  # the shared sidebar; this page trains its own models
st.title("Train")
st.caption(
    "Train on this server with the same loop as `python -m draw_core.train`: Adam on the objective of the model's "
    "kind, the negative ELBO (eq. 12) for DRAW, the cross-entropy of the final class scores for the classifiers of "
    "sec. 4.1 (with REINFORCE for RAM's glimpse locations). The run keeps going if you close this tab, and everyone "
    "who opens this page watches it."
)
token = session_token() if limits.admin_token() else None
if started := st.session_state.pop("_train_started", None):
    st.toast(f"Training run '{started}' started")
running = manager.running()
with st.expander("New run", expanded=not running, key=FORM_KEY, on_change="rerun"):
    request = settings(allowed=token_accepted(token))
if request is not None and start(*request, token=token):
    st.session_state.pop(FORM_KEY, None)  # folded when the page is drawn again (the expander's default)
    st.rerun()
st.fragment(run_every=RUNS_POLL_S)(rerun_when_runs_change)(running_keys())
shown = watched_job()
watching = shown is not None and shown.running
st.fragment(run_every=1 if watching else None)(live_view)(shown.name if shown else None, token)
