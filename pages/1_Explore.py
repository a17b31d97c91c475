"""Explore: the latent map; click a source for its neighbours, box/lasso for a group."""
from functools import partial

import streamlit as st

from explorer.app import ui, views
from explorer.app.figures import focus_overlays


def select_on_map(loaded: ui.Loaded) -> None:
    """Points resolve through their customdata; on a density map a box or lasso resolves over the
    whole catalogue, not only the points drawn."""
    ui.on_map_select(loaded.path)
    rows = loaded.map.selection(st.session_state.get(ui.MAP_KEY))
    if rows is not None:
        st.session_state[ui.FOCUS_KEY] = views.Focus(loaded.path, "selection", tuple(rows.tolist())) if len(rows) else None


context = ui.context()
loaded, bundle = context.loaded, context.loaded.bundle

st.markdown(f"#### {bundle.name} — {bundle.n:,} sources")
k, dedup_arcsec = ui.neighbour_controls("explore")
focus = ui.current_focus(loaded)
result = ui.neighbour_result(loaded, focus.row, k, dedup_arcsec) if focus and focus.kind == "source" else None
overlays = focus_overlays(result.row, result.neighbours.rows) if result else ()

map_column, detail_column = st.columns([2.8, 1.2])
with map_column:
    st.plotly_chart(loaded.map.figure(context.style, overlays), key=ui.MAP_KEY,
                    on_select=partial(select_on_map, loaded), selection_mode=("points", "box", "lasso"),
                    config={"displaylogo": False, "scrollZoom": True})
    if loaded.map.is_density:
        st.caption(f"Shading: all {bundle.n:,} sources per cell (and the colour column's mean or majority). "
                   f"Points: a sample of {len(loaded.map.drawn):,} spread over the map (zoom in to click "
                   "between them). Box and lasso select every source inside, drawn or not.")
with detail_column:
    if result:
        ui.source_panel(bundle, result.row)
        st.button("Clear", on_click=ui.clear_focus, icon=":material/close:")
    else:
        st.info("Click a source to see its nearest neighbours. Use box or lasso select (top-right of the map) "
                "to pick a group and download it.", icon=":material/touch_app:")

if result:
    ui.neighbour_panel(loaded, result.row, k, dedup_arcsec, key="explore.neighbours")
elif focus:
    rows = focus.rows
    st.subheader(f"Selection: {len(rows):,} sources")
    if len(rows) > views.SELECTION_GALLERY_CAP:
        st.caption(f"Showing the first {views.SELECTION_GALLERY_CAP} of {len(rows):,}; the CSV has all of them.")
    st.html(views.selection_gallery(bundle, rows))
    ui.export_buttons(bundle, lambda: views.source_table(bundle, rows), "selection", key="explore.selection")
