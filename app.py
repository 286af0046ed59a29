"""DRAW Studio: `streamlit run app.py`. Navigation over the page files in pages/, and around every page the
sidebar they share: the checkpoint picker (app_common.app_frame). Each page file starts with
app_common.page_setup() or require_checkpoint(), which hand it the selected checkpoint.
"""

from pathlib import Path

import streamlit as st

import app_common

PAGES_DIR = Path(__file__).parent / "pages"
PAGES = [  # (file in pages/, title, icon); a page whose file is missing is left out of the navigation
    ("home.py", "Home", ":material/home:"),
    ("generate.py", "Generate", ":material/brush:"),
    ("reconstruct.py", "Reconstruct", ":material/replay:"),
    ("latent.py", "Latent explorer", ":material/tune:"),
    ("attention_lab.py", "Attention lab", ":material/center_focus_strong:"),
    ("attention_at_work.py", "Attention at work", ":material/visibility:"),
    ("evaluate.py", "Evaluate", ":material/straighten:"),
    ("train.py", "Train", ":material/model_training:"),
]

pages = [
    st.Page(PAGES_DIR / file, title=title, icon=icon, default=file == "home.py")
    for file, title, icon in PAGES
    if (PAGES_DIR / file).exists()
]
page = st.navigation(pages)
app_common.app_frame()
page.run()
