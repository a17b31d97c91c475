"""Similarity search: a sky position -> the nearest catalogue source -> its neighbours."""
import streamlit as st

from explorer import ui, views
from explorer.errors import InputError
from explorer.sky.coords import EXAMPLES, FRAMES, parse_coordinates

context = ui.context()
loaded, bundle = context.loaded, context.loaded.bundle

st.markdown(f"#### Similarity search — {bundle.name}")
position_column, frame_column, radius_column = st.columns([3, 1, 1])
text = position_column.text_input("Sky position", key="search.position", placeholder=EXAMPLES.replace("'", ""))
frame = frame_column.selectbox("Frame", list(FRAMES), key="search.frame")
radius = radius_column.number_input("Match radius (arcsec)", 0.1, 3600.0, views.MATCH_RADIUS_ARCSEC, 1.0,
                                    key="search.radius")
k, dedup_arcsec = ui.neighbour_controls("search")

if not text.strip():
    st.info(f"Enter coordinates in decimal degrees or sexagesimal, e.g. {EXAMPLES}.", icon=":material/info:")
    st.stop()
try:
    position = parse_coordinates(text, frame=frame)
except InputError as e:
    st.error(str(e), icon=":material/error:")
    st.stop()

match = views.nearest_source(loaded.sky, position, radius)
where = views.format_position(position)
nearest_id = str(bundle.catalog["id"].iat[match.row])
if not match.within_radius:
    st.warning(f"Nothing within {radius:g}″ of {where}. The nearest catalogue source, {nearest_id}, "
               f"is {views.format_separation(match.separation_arcsec)} away.", icon=":material/location_off:")
    st.stop()

st.success(f"Nearest catalogue source to {where}: **{nearest_id}**, "
           f"{views.format_separation(match.separation_arcsec)} away.", icon=":material/my_location:")
source_column, result_column = st.columns([1, 3])
with source_column:
    ui.source_panel(bundle, match.row)
    if st.button("Show on the map", icon=":material/scatter_plot:"):
        ui.focus_on_source(loaded, match.row)
        st.switch_page(ui.EXPLORE_PAGE)
with result_column:
    ui.neighbour_panel(loaded, match.row, k, dedup_arcsec, key="search.neighbours")
