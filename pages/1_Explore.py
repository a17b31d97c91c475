"""Explore: the latent map; click a source (or any thumbnail) for its neighbours, box/lasso for a group."""
from functools import partial

import streamlit as st

from explorer.app import ui, views
from explorer.app.figures import NEIGHBOUR_COLOUR, Overlay, focus_overlays


def select_on_map(context: ui.Context) -> None:
    """Points resolve through their customdata; on a density map a box or lasso resolves over the
    whole (filtered) catalogue, not only the points drawn."""
    loaded = context.loaded
    ui.on_map_select(loaded.path)
    rows = loaded.map.selection(st.session_state.get(ui.MAP_KEY), context.row_filter)
    if rows is not None:
        ui.set_focus(views.Focus(loaded.path, "selection", tuple(rows.tolist())) if len(rows) else None)


context = ui.context()
loaded, bundle = context.loaded, context.loaded.bundle

st.markdown(f"#### {bundle.name} — {bundle.n:,} sources")
ui.filter_note(context)
k, dedup_arcsec = ui.neighbour_controls("explore")
focus = ui.current_focus(loaded)
result = ui.neighbour_result(context, focus.row, k, dedup_arcsec) if focus and focus.kind == "source" else None
if result:
    overlays = focus_overlays(result.row, result.neighbours.rows)
elif focus:  # a selection (box, lasso, saved, suggested): ringed on the map
    overlays = (Overlay("selection", tuple(views.kept_rows(focus.rows, context.keep)[:views.SELECTION_OVERLAY_CAP]),
                        "circle-open", NEIGHBOUR_COLOUR, 1.8),)
else:
    overlays = ()

map_column, detail_column = st.columns([2.8, 1.2])
with map_column:
    map_tab, sky_tab = st.tabs(["Latent map", "On the sky"])
    with map_tab:
        st.plotly_chart(loaded.map.figure(context.style, overlays, row_filter=context.row_filter), key=ui.MAP_KEY,
                        on_select=partial(select_on_map, context), selection_mode=("points", "box", "lasso"),
                        config={"displaylogo": False, "scrollZoom": True})
        if loaded.map.is_density:
            st.caption(f"Shading: all {loaded.map.shown(context.row_filter).n:,} sources per cell (and the colour "
                       f"column's mean or majority). Points: a sample of {len(loaded.map.shown(context.row_filter).drawn):,} "
                       "spread over the map (zoom in to click between them). Box and lasso select every source inside, "
                       "drawn or not.")
    with sky_tab:
        marked = result.neighbours.rows if result else (views.kept_rows(focus.rows, context.keep) if focus else ())
        sky = loaded.sky_map.figure(marked, source=result.row if result else None, keep=context.keep,
                                    key=context.row_filter)
        st.plotly_chart(sky, key="explore.sky", config={"displaylogo": False, "scrollZoom": True})
        ui.aladin_panel(loaded, (result.row, *marked) if result else marked)
with detail_column:
    ui.trail_controls(loaded)
    if result:
        ui.source_panel(bundle, result.row, context.display)
        ui.example_buttons(loaded, [result.row], key="explore.source")
        st.button("Clear", on_click=ui.clear_focus, icon=":material/close:")
    else:
        st.info("Click a source to see its nearest neighbours. Use box or lasso select (top-right of the map) "
                "to pick a group and download it.", icon=":material/touch_app:")
    ui.saved_selections(context)

if result:
    ui.neighbour_panel(context, result.row, k, dedup_arcsec, key="explore.neighbours")
elif focus:
    rows = views.kept_rows(focus.rows, context.keep)
    st.subheader(f"Selection: {len(rows):,} sources")
    if len(rows) < len(focus.rows):
        st.caption(f"{len(focus.rows) - len(rows):,} selected sources are hidden by the filter.")
    if len(rows):
        if len(rows) > views.SELECTION_GALLERY_CAP:
            st.caption(f"Showing the first {views.SELECTION_GALLERY_CAP} of {len(rows):,}; the CSV has all of them. "
                       "Click a thumbnail to search from it.")
        ui.gallery(loaded, views.selection_gallery(bundle, rows, display=context.display), key="explore.selection.gallery")
        ui.export_buttons(bundle, lambda: views.source_table(bundle, rows), "selection", key="explore.selection")
        ui.example_buttons(loaded, rows[:ui.MAX_EXAMPLES], key="explore.selection")
        ui.save_selection_form(context, rows)
        ui.selection_summary(context, rows)
