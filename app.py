"""DRAW Studio: `streamlit run app.py`. Navigation over pages/ and the checkpoint picker every page shares."""

from pathlib import Path

import streamlit as st

import app_common

st.set_page_config(page_title="DRAW Studio", page_icon="✏️", layout="wide")

PAGES_DIR = Path(__file__).parent / "pages"
PAGES = [  # (file in pages/, title, icon); a page whose file is missing is left out of the navigation
    ("home.py", "Home", "🏠"),
    ("generate.py", "Generate", "🎨"),
    ("reconstruct.py", "Reconstruct", "🔁"),
    ("latent.py", "Latent explorer", "🎛️"),
    ("attention_lab.py", "Attention lab", "🔍"),
    ("evaluate.py", "Evaluate", "📏"),
    ("train.py", "Train", "🏋️"),
]

pages = [
    st.Page(PAGES_DIR / file, title=title, icon=icon, default=file == "home.py")
    for file, title, icon in PAGES
    if (PAGES_DIR / file).exists()
]
page = st.navigation(pages)
st.sidebar.title("DRAW Studio")
app_common.checkpoint_sidebar()
page.run()
