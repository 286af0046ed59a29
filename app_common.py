"""Streamlit helpers shared by app.py and every page: the checkpoint picker, cached models and cached traces, and
presentation mode.

Models are loaded once per file version with st.cache_resource and shared by every session: they are in
eval mode and only ever run under torch.inference_mode, never mutated. Traces (generation, reconstruction, the
latents' finished images) are cached with st.cache_resource too, keyed by the checkpoint's `key` instead of the model
object: a class of 30 on one model holds one copy of the model and one of each trace, and a rerun hands the
page that copy instead of unpickling its own (st.cache_data would). They are shared read-only, and torch
enforces it: they were made under inference_mode, and an in-place change of an inference tensor raises.

Presentation mode (sidebar toggle or `?present=1` in the URL) is for a projector: the sidebar and Streamlit's
header are hidden, margins shrink, pages draw their figures `figure_px` larger and put their settings in
`controls()` (folded away while presenting), and each page's main view fits 1280 x 720 without scrolling.
"""

from __future__ import annotations

import gc
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from draw_core.data import DatasetMissingError, get_dataset, resolve_data_dir
from draw_core.data.images import (
    FORMAT_NAMES,
    ImageError,
    ModelInput,
    canvas_to_grey,
    fit_drawing,
    prepare_digit,
    prepare_file,
)
from draw_core.io import catalog
from draw_core.io.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from draw_core.nn.kinds import ModelKind, kind_of
from draw_core.nn.model import GenerationTrace, ReconstructionTrace
from draw_core.present import views
from draw_core.present.latent import prior_z

# Streamlit collects garbage after every rerun (runner.postScriptGC); with torch, Plotly and Streamlit imported that is
# a walk over ~400,000 objects, 0.2-0.5 s of CPU a rerun, more than the rerun itself. The imports are here for good:
# moving them out of the collector's reach once makes that collection nearly free, and closed sessions are still
# collected right away.
gc.collect()
gc.freeze()

SELECTED_KEY = "_selected"  # session key of the Selected checkpoint of the current run, set by app_frame
PICKER_KEY = "checkpoint"  # session key of the sidebar's checkpoint choice (also the Generate page's URL key)
UPLOAD_KEY = "checkpoint_upload"
UPLOAD_CHOICE = "upload"
REMEMBERED_KEY = "_remembered"  # session key of the set of widget keys `remember` keeps across page switches
SAMPLES = 16  # samples per seed on the Generate and Latent pages
MAX_SEED = 2**31 - 1
# The app's pages in teaching order: (file in pages/, title, icon, what a student sees there). app.py builds the
# navigation from it, Home the lesson plan. The icons are emoji, not `:material/...:` names: Streamlit makes a page's
# icon the tab's favicon, and fetches a Material one from Google's font server, which an offline classroom can't
# reach and a private one shouldn't.
LESSON = [
    ("home.py", "Home", "🏠", "What DRAW is, this lesson's plan, and the selected model's card."),
    (
        "generate.py",
        "Generate",
        "🖌️",
        "A digit appears stroke by stroke from random z while the write window moves over the canvas (Fig. 1); "
        "the same z drawn on a canvas four times larger.",
    ),
    (
        "reconstruct.py",
        "Reconstruct",
        "🔁",
        "What the encoder reads of a digit (yours, drawn or uploaded), the error it sees at each step (eq. 3), "
        "and how much the noise in z moves the result.",
    ),
    (
        "why_not_autoencoder.py",
        "Why not an autoencoder?",
        "🤔",
        "The same network trained without the KL term reconstructs as well, but its samples from N(0, I) are "
        "nothing like digits: its codes never learned to look like the prior.",
    ),
    (
        "reparameterization.py",
        "Reparameterization",
        "🎲",
        "Why z = μ + σ ε (eq. 6) usually gives far less noisy gradients than the score function (REINFORCE), "
        "and which distributions allow it.",
    ),
    (
        "latent.py",
        "Latent explorer",
        "🎛️",
        "Drag z with sliders, interpolate between two samples, walk a 2-D grid of codes.",
    ),
    (
        "attention_lab.py",
        "Attention lab",
        "🔍",
        "The Gaussian filterbank itself (eqs 19–26): move the grid, change its stride, blur and size on a real image.",
    ),
    (
        "attention_at_work.py",
        "Attention at work",
        "👁️",
        "DRAW's differentiable glimpses against RAM's sampled ones, finding a digit in clutter (sec. 4.1, Table 1).",
    ),
    (
        "evaluate.py",
        "Evaluate",
        "📏",
        "The test bound in nats (and bits/dim for colour), KL per step, attention against no attention.",
    ),
    (
        "train.py",
        "Train",
        "🏋️",
        "Train a model on the server and watch its samples, KL and glimpses improve as it learns.",
    ),
]

PAGES_DIR = Path(__file__).parent / "pages"


def lesson_pages() -> list[tuple[str, str, str, str]]:
    """The LESSON entries whose page file is there: a server may leave a page out by removing its file."""
    return [entry for entry in LESSON if (PAGES_DIR / entry[0]).exists()]


def page_link(file: str, *, container=st, **kwargs) -> None:
    """st.page_link to pages/<file> in `container`; nothing when the page's file is not there (app.py leaves such a
    page out of the navigation, and a link to it would raise)."""
    if (PAGES_DIR / file).exists():
        container.page_link(f"pages/{file}", **kwargs)


HOW_TO_GET_A_CHECKPOINT = (
    "No checkpoint is selected. Pick one in the sidebar (leave presentation mode to see it), upload a `.safetensors` "
    "checkpoint there, train one on "
    "the **Train** page, or from a terminal: `python -m draw_core.train --preset mnist-small --dataset mnist-sample "
    "--steps 500 --batch-size 64 --out runs/demo.safetensors`."
)
PRESENT_KEY = "present"  # session key of the presentation toggle, and the URL flag (?present=1) that opens it on
PRESENT_SCALE = 1.4  # how much larger figures are drawn in presentation mode (figure_px)
# Presentation mode's look: no sidebar, no Streamlit header, thin margins, a smaller title, a page menu and the exit
# button top right.
PRESENT_CSS = """<style>
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
header[data-testid="stHeader"] { display: none !important; }
[data-testid="stMainBlockContainer"] { padding: 0.5rem 1.5rem 1rem !important; max-width: none !important; }
[data-testid="stMainBlockContainer"] h1 { font-size: 1.9rem; padding: 0; }
.st-key-present_exit { position: fixed; top: 0.4rem; right: 0.8rem; z-index: 999991; width: auto !important; }
.st-key-present_pages { position: fixed; top: 0.4rem; right: 12.5rem; z-index: 999991; width: auto !important; }
</style>"""
NEEDS = {  # what a page can ask of a model kind (a ModelKind flag) -> how its message names such models
    "generates": "generators (models that draw images from z)",
    "classifies": "classifiers",
}


@dataclass(frozen=True)
class Selected:
    """The checkpoint every page works with in this run."""

    key: str  # identifies these exact weights in caches: "<path>@<mtime_ns>" or "upload:<sha256>"
    name: str
    source: str  # 'shipped', 'run' or 'upload'
    checkpoint: Checkpoint = field(repr=False)
    card: dict = field(default_factory=dict)  # the model card (shipped) or the stored meta

    @property
    def model(self):
        return self.checkpoint.model

    @property
    def model_kind(self) -> ModelKind:
        """Which network the checkpoint holds (draw_core.nn.kinds), e.g. the 'draw' generator."""
        return kind_of(self.model)

    @property
    def config(self):
        return self.checkpoint.config


def entry_id(entry: catalog.CheckpointEntry) -> str:
    """How a checkpoint is named in the picker's state and in URLs: 'shipped/mnist', 'run/my-run'."""
    return f"{entry.kind}/{entry.name}"


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _load_file(path: str, modified_ns: int) -> Checkpoint:
    """One load per file version (`modified_ns` changes when a training run rewrites the file)."""
    return load_checkpoint(path)


@st.cache_resource(max_entries=4, show_spinner="Checking the uploaded checkpoint…")
def _load_upload(digest: str, _data: bytes) -> Checkpoint:
    return load_checkpoint(_data)


def remember(key: str, default):
    """Keep a widget's value across page switches; the first time it is `default`. Call it before the widget is
    created. Streamlit drops a widget's state at the end of every run that does not draw the widget (a run of
    another page), so the key is listed for `keep_remembered`, which app_frame calls on every run of every page."""
    st.session_state.setdefault(REMEMBERED_KEY, set()).add(key)
    st.session_state[key] = st.session_state.get(key, default)
    return st.session_state[key]


def url_int(name: str, default: int, low: int, high: int) -> int:
    """An integer from the URL's query parameters (a shared link) moved into [low, high], or `default` when it is
    missing or malformed."""
    try:
        return min(max(low, int(st.query_params.get(name, default))), high)
    except ValueError:
        return default


def remember_within(key: str, default: int, low: int, high: int) -> int:
    """remember(key, default), moved into [low, high] before its widget is drawn: a value remembered for another
    model (a longer T, a larger sample) would be out of this one's range."""
    st.session_state[key] = min(max(low, int(remember(key, default))), high)
    return st.session_state[key]


def request_click(key: str, value=True) -> None:
    """A button's callback: the click (`value`, e.g. what the button was drawn for) is kept in the session under `key`
    until the page pops it, so it also survives the rerun page_setup may make before the page is drawn."""
    st.session_state[key] = value


def keep_remembered() -> None:
    """Write every remembered widget value back as a value of the session's own: one that outlives the run of a
    page that does not draw its widget (Streamlit's documented way to carry widget state across pages)."""
    for key in st.session_state.get(REMEMBERED_KEY, ()):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def load_entry(entry: catalog.CheckpointEntry) -> Selected:
    """A listed checkpoint, loaded once per file version; raises CheckpointError or OSError."""
    modified_ns = entry.path.stat().st_mtime_ns
    checkpoint = _load_file(str(entry.path), modified_ns)
    return Selected(
        f"{entry.path}@{modified_ns}", entry.name, entry.kind, checkpoint, {**checkpoint.meta, **entry.card}
    )


def _uploaded_checkpoint() -> Selected | None:
    """The uploaded checkpoint. A good upload is kept in the session: a file uploader forgets its file when the
    page changes, and can't be given it back."""
    upload = st.sidebar.file_uploader(
        "Checkpoint file (.safetensors)", type=["safetensors"], key=UPLOAD_KEY, help="Validated before use."
    )
    file_id, kept = st.session_state.get("_uploaded", (None, None))
    if upload is None:
        if kept is not None:
            st.sidebar.caption(f"Using the uploaded **{kept.name}**; upload another file to replace it.")
        return kept
    if upload.file_id == file_id:  # hash and check each upload once, not on every rerun
        return kept
    refused_id, refusal = st.session_state.get("_upload_refused", (None, None))
    if upload.file_id == refused_id:  # a refused file is not read again on every widget's rerun
        st.sidebar.error(refusal)
        return None
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    try:
        checkpoint = _load_upload(digest, data)
    except CheckpointError as error:
        refusal = f"This checkpoint can't be used: {error}"
        st.session_state["_upload_refused"] = (upload.file_id, refusal)
        st.sidebar.error(refusal)
        return None
    name = upload.name.removesuffix(catalog.EXTENSION)
    card = {**checkpoint.meta, "config": checkpoint.config.to_dict()}  # as the catalog makes a run's card
    selected = Selected(f"upload:{digest}", name, "upload", checkpoint, card)
    st.session_state["_uploaded"] = (upload.file_id, selected)
    return selected


def format_duration(seconds: float | None, unknown: str = "unknown") -> str:
    """A duration for people: '45 s', '12 min 05 s', '1 h 50 min'; `unknown` when there is none."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return unknown
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def app_frame() -> None:
    """What app.py draws around every page: the page config and the sidebar with the checkpoint picker and the
    presentation toggle. The page icon is an emoji: a `:material/...:` icon is fetched from Google's font server
    as the tab's favicon, which an offline classroom can't reach and a private one shouldn't."""
    st.set_page_config(page_title="DRAW Studio", page_icon="✏️", layout="wide")
    keep_remembered()
    st.sidebar.title("DRAW Studio")
    st.session_state[SELECTED_KEY] = checkpoint_sidebar()
    presentation_toggle()


def presentation() -> bool:
    """Whether this session is in presentation mode (pages lay out for a 1280 x 720 projector)."""
    return bool(st.session_state.get(PRESENT_KEY, False))


def figure_px(pixels: int) -> int:
    """A figure's size in screen pixels: `pixels`, or PRESENT_SCALE times that in presentation mode."""
    return round(pixels * PRESENT_SCALE) if presentation() else pixels


def controls(label: str = "Settings"):
    """The container a page puts its settings in: the page itself, or in presentation mode a closed expander named
    `label`, so that the main view below fits the projector's 1280 x 720 (widgets keep their values either way)."""
    return st.expander(label, icon=":material/tune:") if presentation() else st.container()


def presentation_toggle() -> None:
    """The sidebar's presentation toggle; the URL says ?present=1 while it is on, so a reload or a shared link opens
    the same way. In presentation mode the sidebar is hidden, so a page menu and an exit button sit top right."""
    if PRESENT_KEY not in st.session_state:
        st.session_state[PRESENT_KEY] = st.query_params.get(PRESENT_KEY) == "1"
    st.sidebar.toggle(
        "Presentation mode",
        key=PRESENT_KEY,
        help="For a projector: hides this sidebar, draws figures larger and fits each page's main view in "
        "1280×720. `?present=1` in the URL opens a page this way.",
    )
    if not presentation():
        st.query_params.pop(PRESENT_KEY, None)
        return
    st.query_params[PRESENT_KEY] = "1"
    st.html(PRESENT_CSS)

    def leave() -> None:
        st.session_state[PRESENT_KEY] = False

    st.button("Exit presentation", icon=":material/close_fullscreen:", key="present_exit", on_click=leave)
    with st.popover("Pages", icon=":material/menu:", key="present_pages"):  # the sidebar's page menu is hidden
        for file, title, icon, _ in lesson_pages():
            st.page_link(f"pages/{file}", label=title, icon=icon)


def page_setup() -> Selected | None:
    """Every page file starts with this. Returns the checkpoint app.py's sidebar selected in this run.

    Streamlit treats a folder named pages/ as a classic multipage app, and runs a page's file without
    app.py, until some session has run app.py's st.navigation: the first visit after the server starts
    through a deep link (/generate?seed=...) does that, and so does every AppTest run of a page. Then this
    switches Streamlit over to app.py's navigation and reruns, so every page is drawn inside app.py.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()
    return st.session_state.get(SELECTED_KEY)


def checkpoint_sidebar() -> Selected | None:
    """The sidebar's checkpoint picker (shipped, runs, or an upload); remembers the choice in the session."""
    entries = {entry_id(e): e for e in catalog.list_checkpoints()}
    options = [*entries, UPLOAD_CHOICE]
    choice = st.session_state.get(PICKER_KEY)
    if choice not in options:  # first run (maybe from a shared URL) or a vanished run
        vanished = choice
        wanted = st.query_params.get(PICKER_KEY)
        choice = wanted if wanted in options else options[0]
        if vanished is not None:
            st.sidebar.warning(f"{vanished} is no longer on this server (deleted or renamed): showing {choice}.")
    st.session_state[PICKER_KEY] = choice  # written back, so the choice survives page switches (see remember)
    choice = st.sidebar.selectbox(
        "Checkpoint",
        options,
        key=PICKER_KEY,
        format_func=lambda o: (
            "Upload a checkpoint…"
            if o == UPLOAD_CHOICE
            else f"{entries[o].label} · {views.checkpoint_summary(entries[o].card)}"  # e.g. cifar10 · 32×32×3
        ),
    )
    if choice == UPLOAD_CHOICE:
        selected = _uploaded_checkpoint()
    else:
        try:
            selected = load_entry(entries[choice])
        except (CheckpointError, OSError) as error:
            st.sidebar.error(f"{entries[choice].label} can't be loaded: {error}")
            selected = None
    if selected is not None:
        st.sidebar.caption(
            views.config_caption(selected.config)
            + "  \n"
            + views.model_caption(selected.model_kind, selected.config, selected.card.get("dataset"))
        )
    return selected


def require_checkpoint(*, need: str | None = None) -> Selected:
    """page_setup() for pages that need a model: without a checkpoint, say how to get one and stop the page.

    `need` names what the page's model must do, a ModelKind flag ('generates' or 'classifies'); a checkpoint of
    another kind gets a message naming its kind instead of the page.
    """
    if need is not None and need not in NEEDS:
        raise ValueError(f"need must be one of {sorted(NEEDS)} or None, got {need!r}")
    selected = page_setup()
    if selected is None:
        st.info(HOW_TO_GET_A_CHECKPOINT)
        st.stop()
    kind = selected.model_kind
    if need is not None and not getattr(kind, need):
        st.info(
            f"This page shows {NEEDS[need]} only. **{selected.name}** is a `{kind.name}` model "
            f"({kind.description}): pick another checkpoint in the sidebar."
        )
        st.stop()
    return selected


def step_controls(T: int, *, key: str = "step", label: str = "Step t", default: int | None = None) -> int:
    """A step slider 1..T with previous/next buttons, first at `default` (T when None); the step under `key` is
    shared by the pages that use that key and survives switches."""
    remember_within(key, T if default is None else default, 1, T)

    def shift(by: int) -> None:
        st.session_state[key] = min(max(1, st.session_state[key] + by), T)

    previous, slider, following = st.columns([1, 8, 1], vertical_alignment="bottom")
    previous.button(
        "", icon=":material/chevron_left:", key=f"{key}_previous", on_click=shift, args=(-1,), help="previous step"
    )
    following.button(
        "", icon=":material/chevron_right:", key=f"{key}_next", on_click=shift, args=(1,), help="next step"
    )
    if T == 1:
        slider.caption("t = 1 (this model has a single step)")
        return 1
    return slider.slider(label, 1, T, key=key)


@st.cache_resource(max_entries=16, show_spinner=False)  # a paper-size trace of 16 samples is ~3 MB
def generation(_model, model_key: str, seed: int, n: int = SAMPLES) -> GenerationTrace:
    """n samples from the prior drawn with `seed` (latent.prior_z), decoded: canvases, windows and z."""
    cfg = _model.cfg
    return _model.generate(n, z=prior_z(seed, cfg.T, cfg.z_size, n))


@st.cache_resource(max_entries=64, show_spinner=False)
def decode_final(_model, model_key: str, z: np.ndarray) -> torch.Tensor:
    """Only the finished images sigma(c_T) (n, C, H, W) of latents z (T, n, Z): what strips and grids show. A copy,
    made under inference_mode (so still read-only): a view would keep all T canvases alive in the cache."""
    canvases = _model.generate(z.shape[1], z=torch.from_numpy(z)).canvases  # (T, n, C, H, W)
    with torch.inference_mode():
        return canvases[-1].clone()


@st.cache_resource(max_entries=64, show_spinner=False)
def reconstruction(_model, model_key: str, image: np.ndarray, seed: int) -> ReconstructionTrace:
    """One pass of the model over image (1, C, H, W) (numpy) with posterior noise drawn from `seed`."""
    return _model.reconstruct(torch.from_numpy(image), generator=torch.Generator().manual_seed(int(seed)))


@st.cache_data(show_spinner="Loading the test images…")
def evaluation_size(dataset: str, data_dir: str) -> int:
    """How many images the fixed test set of a registered dataset under `data_dir` holds (loaded once per server)."""
    return len(get_dataset(dataset).test_set(data_dir))


def loadable_test_sets(datasets: list[str]) -> dict[str, int]:
    """The test-set size of each of `datasets` that loads. One whose files are there but can't be read (a damaged
    file) is left out with a warning that names the file."""
    sizes = {}
    for name in datasets:
        try:
            sizes[name] = evaluation_size(name, str(resolve_data_dir()))
        except DatasetMissingError as error:
            st.warning(f"{name} is left out: {error}")
    return sizes


def stop_with(message: str, *, error: bool = False) -> None:
    """Say what the page is waiting for (or what was wrong, `error`) and stop this run."""
    (st.error if error else st.info)(message)
    st.stop()


def say_conversions(prepared: ModelInput) -> torch.Tensor:
    """Show what was converted to make the model's input (one visible note), and return the input (C, H, W)."""
    if prepared.notes:
        st.info("Converted for this model: " + "; ".join(prepared.notes) + ".", icon=":material/transform:")
    return prepared.image


def drawn_digit(
    *, key: str, side_px: int, stroke: int, channels: int = 1, height: int = 28, width: int = 28, as_drawn: bool = False
) -> torch.Tensor:
    """(channels, height, width) a digit drawn with the mouse on a canvas `side_px` screen pixels high (of the model's
    aspect ratio) that stands for the model's field; the page stops until there is one. The drawing is centred and
    scaled like MNIST, or with `as_drawn` (a field that holds digits where they were put, like mnist-two's 60 x 60)
    scaled to the model's size as it is. A colour model gets the grey drawing in red, green and blue, and a note
    saying so."""
    # Imported here: the component declares itself on import, which needs a running Streamlit app, and app_common is
    # also imported by plain tests.
    from streamlit_drawable_canvas import st_canvas

    drawing = st_canvas(
        stroke_width=stroke,
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=side_px,
        width=round(side_px * width / height),
        drawing_mode="freedraw",
        return_image_data=True,
        key=key,
    )
    waiting = "Draw a digit with the mouse: white ink on black, like MNIST."
    if drawing.image_data is None:
        stop_with(waiting)
    grey = canvas_to_grey(drawing.image_data)
    try:
        image = (
            fit_drawing(grey, height=height, width=width)
            if as_drawn
            else prepare_digit(grey, height=height, width=width)
        )
    except ImageError:
        stop_with(waiting)
    if channels == 1:
        return image
    return say_conversions(
        ModelInput(
            image.expand(channels, -1, -1).clone(),
            ("the grey drawing copied into red, green and blue for this colour model",),
        )
    )


def uploaded_digit(
    *,
    key: str,
    label: str,
    channels: int = 1,
    height: int = 28,
    width: int = 28,
    as_drawn: bool = False,
    waiting: str | None = None,
) -> torch.Tensor:
    """(channels, height, width) an uploaded picture, prepared for the model (draw_core.data.images.prepare_file:
    like MNIST for a grey model, or with `as_drawn` (a field that holds digits where they were put, like mnist-two's
    60 x 60) laid out as it is; cropped and resized for a colour one); the page stops until there is one, says what
    was converted, and says why a file can't be used. Any file is taken and judged by decoding it, so a file that is
    not an image gets a message rather than the uploader's own refusal."""
    upload = st.file_uploader(label, key=key, help=f"{FORMAT_NAMES}; any colour mode.")
    if upload is None:
        stop_with(waiting or f"Upload a picture of a digit: {FORMAT_NAMES}.")
    try:
        prepared = prepare_file(upload.getvalue(), channels=channels, height=height, width=width, as_drawn=as_drawn)
    except ImageError as error:
        stop_with(f"{upload.name} can't be used: {error}", error=True)
    return say_conversions(prepared)


@st.cache_resource(show_spinner=False)
def dataset_sample(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped sample of a registered dataset: images (N, C, H, W) in [0, 1], labels (N,); one read-only copy
    shared by every session."""
    return get_dataset(name).sample()
