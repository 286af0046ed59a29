"""DRAW Studio: `streamlit run app.py`. Navigation over the page files in pages/.

Each page starts with app_common.page_setup() (or require_checkpoint()), which draws the sidebar every page
shares: the checkpoint picker.
"""

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).parent / "pages"
PAGES = [  # (file in pages/, title, icon); a page whose file is missing is left out of the navigation
    ("home.py", "Home", ":material/home:"),
    ("generate.py", "Generate", ":material/brush:"),
    ("reconstruct.py", "Reconstruct", ":material/replay:"),
    ("latent.py", "Latent explorer", ":material/tune:"),
    ("attention_lab.py", "Attention lab", ":material/center_focus_strong:"),
    ("evaluate.py", "Evaluate", ":material/straighten:"),
    ("train.py", "Train", ":material/model_training:"),
]

st.set_page_config(page_title="DRAW Studio", page_icon=":material/draw:", layout="wide")
pages = [
    st.Page(PAGES_DIR / file, title=title, icon=icon, default=file == "home.py")
    for file, title, icon in PAGES
    if (PAGES_DIR / file).exists()
]
st.navigation(pages).run()
