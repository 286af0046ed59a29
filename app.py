"""DRAW Studio: `streamlit run app.py`. Navigation over the page files in pages/, and around every page the
sidebar they share: the checkpoint picker (app_common.app_frame). The pages come in teaching order
(app_common.LESSON); a page whose file is missing is left out. Each page file starts with
app_common.page_setup() or require_checkpoint(), which hand it the selected checkpoint.
"""

import streamlit as st

import app_common

pages = [
    st.Page(app_common.PAGES_DIR / file, title=title, icon=icon, default=file == "home.py")
    for file, title, icon, _ in app_common.lesson_pages()
]
page = st.navigation(pages)
app_common.app_frame()
page.run()
