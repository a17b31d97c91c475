"""Explore: the latent map; click a source (or any thumbnail) for its neighbours, box/lasso for a group."""
import streamlit as st

from explorer.app import ui, views
from explorer.app.latent_map import Marks, focus_marks

MAP_KEY = "explore.map"

context = ui.context()
loaded, bundle = context.loaded, context.loaded.bundle

st.markdown(f"#### {bundle.name} — {bundle.n:,} sources")
ui.filter_note(context)
k, dedup_arcsec = ui.neighbour_controls("explore")
focus = ui.current_focus(loaded)
result = ui.neighbour_result(context, focus.row, k, dedup_arcsec) if focus and focus.kind == "source" else None
if result:
    marks = focus_marks(result.row, result.neighbours.rows)
elif focus:  # a selection (box, lasso, saved, suggested): ringed on the map
    marks = Marks(selection=tuple(views.kept_rows(focus.rows, context.keep)[:views.SELECTION_OVERLAY_CAP].tolist()))
else:
    marks = Marks()

map_column, detail_column = st.columns([2.8, 1.2])
with map_column:
    map_tab, sky_tab = st.tabs(["Latent map", "On the sky"])
    with map_tab:
        ui.map_view(context, marks, key=MAP_KEY)
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
        st.info("Click a source to see its nearest neighbours; hover one for its cutout. Use Lasso or Box (above "
                "the map) to pick a group and download it.", icon=":material/touch_app:")
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
        ui.export_buttons(bundle.manifest.columns, lambda: views.source_table(bundle, rows), "selection", key="explore.selection")
        ui.example_buttons(loaded, rows[:ui.MAX_EXAMPLES], key="explore.selection")
        ui.save_selection_form(context, rows)
        ui.selection_summary(context, rows)
