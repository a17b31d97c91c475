"""The latent-space explorer: ``streamlit run app.py`` (or ``make run``).

``streamlit run`` finds ``app`` below and serves this file through it: Streamlit's own server, plus the map
component's routes (its script, and each map's arrays and hover cards; ``explorer.app.map_server``). It then
runs this file as the page script, where ``__name__`` is ``"__main__"``.

The pages live in ``pages/``; each draws the shared sidebar (bundle, colour-by, point size, opacity) through
``explorer.app.ui.context()``.
"""
import streamlit as st

if __name__ == "__main__":
    from explorer.app import ui

    st.set_page_config(page_title="Latent-space explorer", layout="wide")
    ui.run_guarded(st.navigation([
        st.Page(ui.EXPLORE_PAGE, title="Explore", icon=":material/scatter_plot:", default=True),
        st.Page(ui.SEARCH_PAGE, title="Similarity search", icon=":material/travel_explore:"),
        st.Page(ui.FINETUNE_PAGE, title="Fine-tune", icon=":material/model_training:"),
        st.Page(ui.COMPARE_PAGE, title="Compare", icon=":material/compare:"),
        st.Page(ui.DETECT_PAGE, title="Detect", icon=":material/center_focus_strong:"),
    ]))
else:
    from explorer.app.map_server import ROUTES

    app = st.App(__file__, routes=ROUTES)
