"""Home: what DRAW is, and the selected model's card."""

import streamlit as st

import app_common
from draw_core.present import views

selected = app_common.page_setup()
st.title("DRAW Studio")
st.markdown(
    """
**DRAW** (*Deep Recurrent Attentive Writer*, Gregor et al. 2015, [arXiv:1502.04623](https://arxiv.org/abs/1502.04623))
is a variational autoencoder that draws an image in **T steps** instead of all at once. At every step an
encoder LSTM **reads** a small patch of the image through a grid of Gaussian filters (*selective attention*),
picks a latent code z<sub>t</sub>, and a decoder LSTM **writes** a patch onto a canvas through another grid.
Generating means running only the decoder from random z<sub>1</sub>…z<sub>T</sub>: you can watch the window
move and the digit appear stroke by stroke, like the paper's Fig. 1.

- **Generate**: step through samples with the write window drawn on the canvas.
- **Reconstruct**: give it a digit (test set, drawing, upload) and watch what it reads and writes.
- **Latent explorer**: move z with sliders, interpolate between seeds, walk a 2-D grid.
- **Attention lab**: play with the filterbank itself (eqs 19–26), no model needed.
- **Attention at work**: DRAW's differentiable glimpses against RAM's sampled ones, hunting a digit in clutter
  (sec. 4.1, Table 1).
- **Evaluate**: the test bound in nats, KL per step, attention vs no attention.
- **Train**: train a generator or a classifier while you watch its glimpses learn; the run then appears in the
  sidebar's picker.
""",
    unsafe_allow_html=True,
)

if selected is None:
    st.info(app_common.HOW_TO_GET_A_CHECKPOINT)
    st.stop()


card, cfg = selected.card, selected.config
st.header(f"Model card: {selected.name}")
st.caption(views.model_caption(selected.model_kind, cfg, card.get("dataset")) + f" · {selected.model_kind.description}")
if card.get("description"):
    st.write(card["description"])
bound = card.get("test_elbo_nats")
seconds = card.get("train_seconds")
columns = st.columns(4)
columns[0].metric("Test bound", f"{bound:.2f} nats" if isinstance(bound, (int, float)) else "not measured")
columns[1].metric("Dataset", str(card.get("dataset", "unknown")))
columns[2].metric("Training time", app_common.format_duration(seconds))
columns[3].metric("Steps", f"{card['step']:,}" if isinstance(card.get("step"), int) else "unknown")
left, right = st.columns(2)
left.subheader("Config")
left.table(views.config_table(cfg))
right.subheader("Card")
right.table(views.card_table(card, duration=app_common.format_duration))
with st.expander("The raw model card (JSON)"):
    st.json(card, expanded=True)
st.caption(
    "The test bound is the negative ELBO (eq. 12) in nats per image on the fixed binarisation of the test set: "
    "lower is better; the paper reports ≤ 80.97 nats on MNIST with attention."
)
