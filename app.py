"""DRAW Studio: `streamlit run app.py`. Navigation over the page files in pages/, and around every page the
sidebar they share: the checkpoint picker (app_common.app_frame). Each page file starts with
app_common.page_setup() or require_checkpoint(), which hand it the selected checkpoint.
"""

from pathlib import Path

import streamlit as st

import app_common

PAGES_DIR = Path(__file__).parent / "pages"
# (file in pages/, title, icon); a page whose file is missing is left out of the navigation. The icons are emoji, not
# `:material/...:` names: Streamlit makes a page's icon the tab's favicon, and fetches a Material one from Google's
# font server, which an offline classroom can't reach and a private one shouldn't.
PAGES = [
    ("home.py", "Home", "🏠"),
    ("generate.py", "Generate", "🖌️"),
    ("reconstruct.py", "Reconstruct", "🔁"),
    ("latent.py", "Latent explorer", "🎛️"),
    ("attention_lab.py", "Attention lab", "🔍"),
    ("attention_at_work.py", "Attention at work", "👁️"),
    ("why_not_autoencoder.py", "Why not an autoencoder?", "🤔"),
    ("reparameterization.py", "Reparameterization", "🎲"),
    ("evaluate.py", "Evaluate", "📏"),
    ("train.py", "Train", "🏋️"),
]

pages = [
    st.Page(PAGES_DIR / file, title=title, icon=icon, default=file == "home.py")
    for file, title, icon in PAGES
    if (PAGES_DIR / file).exists()
]
page = st.navigation(pages)
app_common.app_frame()
page.run()
