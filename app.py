"""The latent-space explorer: ``streamlit run app.py`` (or ``make run``).

The pages live in ``pages/``; each draws the shared sidebar (bundle, colour-by,
point size, opacity) through ``explorer.app.ui.context()``.
"""
import streamlit as st

from explorer.app import ui

st.set_page_config(page_title="Latent-space explorer", layout="wide")
ui.run_guarded(st.navigation([
    st.Page(ui.EXPLORE_PAGE, title="Explore", icon=":material/scatter_plot:", default=True),
    st.Page(ui.SEARCH_PAGE, title="Similarity search", icon=":material/travel_explore:"),
    st.Page(ui.FINETUNE_PAGE, title="Fine-tune", icon=":material/model_training:"),
]))
