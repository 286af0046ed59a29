"""Evaluate: the test bound in nats (and bits per dimension) of one or more checkpoints of one image size, KL per
step, attention vs no attention samples; a CIFAR-10 bound says which copy of the data it was measured on."""

import streamlit as st

import app_common
import app_views
from draw_core.data import get_dataset
from draw_core.io import catalog
from draw_core.io.checkpoint import CheckpointError
from draw_core.nn.likelihood import nats_to_bits_per_dim
from draw_core.present import views, viz
from draw_core.training.evaluation import EvalResult, evaluate

selected = app_common.require_checkpoint()

st.title("Evaluate")
st.caption(
    "The negative ELBO L = Lˣ + Lᶻ (eq. 12) in nats per test image, an upper bound on −log p(x); with k > 1 "
    "importance samples, the tighter IWAE bound. Bits per dimension divide it by the image's C·H·W sub-pixels and "
    "ln 2, the figure colour models are compared on. Binary test sets are binarised once with a fixed seed; colour "
    "ones are 8-bit levels under the discretised logistic."
)


@st.cache_resource
def results() -> dict:
    """Bounds computed so far, shared by every session: (model key, dataset, digits, k) -> EvalResult.

    Kept by hand rather than with st.cache_data so the computation can drive this page's progress bar."""
    return {}


entries = {app_common.entry_id(e): e for e in catalog.list_checkpoints()}
configs = {key: catalog.read_meta(entry.path).get("config") for key, entry in entries.items()}
current = st.session_state[app_common.PICKER_KEY]
names = {key: entry.label for key, entry in entries.items()}
if current == app_common.UPLOAD_CHOICE:
    names[current] = f"{selected.name} (upload)"
    configs[current] = selected.config.to_dict()
attention = {key: views.attention_label(configs.get(key)) for key in names}
shapes = {key: views.config_shape(configs.get(key)) for key in names}
contrast = [
    key for key in names if attention[key] not in (attention[current], "unknown") and shapes[key] == shapes[current]
]  # the other kind of attention, on images of the same size
if st.session_state.get("_evaluate_for") != current:  # the sidebar picked another model: start from its default
    st.session_state.pop("evaluate_checkpoints", None)
    st.session_state["_evaluate_for"] = current
chosen = st.multiselect(
    "Checkpoints", list(names), default=[current, *contrast[:1]], format_func=names.get, key="evaluate_checkpoints"
)


def load(key: str) -> app_common.Selected:
    return selected if key == app_common.UPLOAD_CHOICE else app_common.load_entry(entries[key])


models = {}  # the chosen generators: the bound in nats and samples are what a generator has to show
for key in chosen:
    try:
        model = load(key)
    except (CheckpointError, OSError) as error:
        st.error(f"{names[key]} can't be loaded: {error}")
        continue
    if model.model_kind.generates:
        models[key] = model
    else:
        kind = model.model_kind
        st.info(f"{names[key]} is a `{kind.name}` model ({kind.description}): it has no bound in nats to show here.")
if chosen and not models:
    st.stop()

first_key = next(iter(models), None)  # the test images are those of the first generator's image size
first = models[first_key] if first_key is not None else selected
shape = (first.config.channels, first.config.height, first.config.width)
for key, model in list(models.items()):
    cfg = model.config
    if (cfg.channels, cfg.height, cfg.width) != shape:
        del models[key]
        st.info(
            f"{names[key]} takes {views.image_shape(cfg.channels, cfg.height, cfg.width)} images, not the "
            f"{views.image_shape(*shape)} of {names[first_key]}: evaluate it on its own."
        )
sizes = app_common.loadable_test_sets(views.evaluation_datasets(first.config, prefer=first.card.get("dataset")))
if not sizes:
    st.info(f"No test set of {views.image_shape(*shape)} images is available here.")
    st.stop()
dataset_column, digits_column, k_column, button_column = st.columns(4, vertical_alignment="bottom")
dataset = dataset_column.selectbox(
    "Test images from",
    list(sizes),
    key="evaluate_dataset",
    format_func=lambda name: f"{name} ({sizes[name]:,} images)",
    help="Registered datasets of this image size whose files are here (full MNIST: under DRAW_DATA_DIR).",
)
limit = sizes[dataset]
digits = int(digits_column.number_input("How many", 10, limit, min(100, limit), step=10, key="evaluate_digits"))
dims = shape[0] * shape[1] * shape[2]  # sub-pixels of one image: bits/dim = nats / (C H W ln 2)
k = int(k_column.number_input("Importance samples k", 1, 100, 1, key="evaluate_k", help="k = 1: the ELBO"))


button_column.button(
    "Evaluate", type="primary", key="evaluate_run", on_click=app_common.request_click, args=("evaluate_requested",)
)
run = st.session_state.pop("evaluate_requested", False)

store = results()
rows, curves = [], {}
for key, model in models.items():
    wanted = (model.key, dataset, digits, k)
    if wanted not in store and run:
        bar = st.progress(0.0, text=f"{names[key]}: evaluating {digits} test images…")
        images = get_dataset(dataset).test_set(limit=digits)
        store[wanted] = evaluate(
            model.model,
            images,
            k=k,
            batch_size=min(100, digits),
            on_progress=lambda done, total, bar=bar, name=names[key]: bar.progress(
                done / total, text=f"{name}: {done}/{total} test images"
            ),
        )
        bar.empty()
    result: EvalResult | None = store.get(wanted)
    if result is None:
        continue
    row = {
        "checkpoint": names[key],
        "images": result.n,
        "bound (nats)": round(result.elbo_nats, 2),
        "bits/dim": round(result.bits_per_dim, 4),
        "reconstruction Lˣ": round(result.recon_nats, 2),
        "KL Lᶻ": round(result.kl_nats, 2),
    }
    if result.iwae_nats is not None:
        row[f"IWAE k={k} (nats)"] = round(result.iwae_nats, 2)
        row[f"IWAE k={k} (bits/dim)"] = round(nats_to_bits_per_dim(result.iwae_nats, dims), 4)
    rows.append(row)
    curves[names[key]] = result.kl_per_step
if rows:
    st.dataframe(rows, hide_index=True, key="evaluate_table")
    st.caption(f"Per test image of {dataset}: bits/dim = nats / ({dims:,} sub-pixels × ln 2).")
    if copy := views.data_copy(dataset):
        st.caption(f"Measured on {copy}.")
    st.plotly_chart(
        viz.kl_curves_figure(curves, title="KL per step (nats): where each model spends its code"), key="evaluate_kl"
    )
    app_views.explain(views.EXPLANATIONS["kl_curves"])
elif models:
    st.info("Press **Evaluate** to compute the bounds (results are kept for everyone using this server).")

if models:
    st.subheader("Samples side by side")
    seed = int(st.session_state.get("seed", 0))
    columns = st.columns(len(models))
    for column, (key, model) in zip(columns, models.items(), strict=True):
        trace = app_common.generation(model.model, model.key, seed)
        label = views.attention_label(model.config.to_dict())
        column.plotly_chart(
            viz.image_grid_figure(trace.canvases[-1], nrow=4, title=f"{names[key]}: {label}", size=300),
            key=f"evaluate_samples_{key}",
            width="content",
        )
    st.caption(f"16 samples from the prior with seed {seed} (the Generate page's seed).")
    app_views.explain(views.EXPLANATIONS["samples"])
