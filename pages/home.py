"""Home: what DRAW is, the lesson's pages in teaching order (app_common.LESSON), and the selected model's card."""

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
""",
    unsafe_allow_html=True,
)
st.subheader("The lesson, page by page")
st.caption(
    "In teaching order: what DRAW does, then why each part is there. Every chart names the equation it shows and says "
    "what to notice."
)
for number, (file, title, icon, sees) in enumerate(app_common.lesson_pages()[1:], start=1):
    link, sentence = st.columns([1, 3])
    app_common.page_link(file, container=link, label=f"{number}. {title}", icon=icon)
    sentence.markdown(sees)

if selected is None:
    st.info(app_common.HOW_TO_GET_A_CHECKPOINT)
    st.stop()


card, cfg = selected.card, selected.config
st.header(f"Model card: {selected.name}")
st.caption(views.model_caption(selected.model_kind, cfg, card.get("dataset")) + f" · {selected.model_kind.description}")
if card.get("description"):
    st.write(card["description"])
headline = views.card_headline(card, classifies=selected.model_kind.classifies)
time_label, seconds = views.training_time(card)
steps = card.get("steps", card.get("step"))  # a shipped card says "steps", a run's stored meta "step"
figures = [
    *headline.figures,
    (time_label, app_common.format_duration(seconds)),
    (views.own_run_label(card, "Steps"), f"{steps:,}" if isinstance(steps, int) else "unknown"),
]
for column, (label, value) in zip(st.columns(len(figures)), figures, strict=True):
    column.metric(label, value)
left, right = st.columns(2)
left.subheader("Config")
left.table(views.config_table(cfg))
right.subheader("Card")
right.table(views.card_table(card, duration=app_common.format_duration))
with st.expander("The raw model card (JSON)"):
    st.json(card, expanded=True)
st.caption(headline.explanation)
