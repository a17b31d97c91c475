"""The latent-space explorer: ``streamlit run app.py`` (or ``make run``).

This entry script draws the shared sidebar (bundle, colour-by, point size, opacity)
and hands this run's choices to the page the user is on.
"""
import streamlit as st

from explorer import ui
from explorer.config import bundles_dir

st.set_page_config(page_title="Latent-space explorer", layout="wide")
page = st.navigation([
    st.Page(ui.EXPLORE_PAGE, title="Explore", icon=":material/scatter_plot:", default=True),
    st.Page(ui.SEARCH_PAGE, title="Similarity search", icon=":material/travel_explore:"),
])
context = ui.sidebar()
if context is None:
    st.title("Latent-space explorer")
    st.info(ui.NO_BUNDLE.format(where=bundles_dir()), icon=":material/info:")
    st.stop()
st.session_state[ui.CONTEXT_KEY] = context
page.run()
