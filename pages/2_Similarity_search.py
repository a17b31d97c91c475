"""Similarity search: an object name, sky coordinates, an uploaded FITS cutout or several examples -> the most
similar sources."""
import numpy as np
import streamlit as st

from explorer.app import query, ui, views
from explorer.core.errors import InputError
from explorer.app.latent_map import Marks, focus_marks
from explorer.app.images import GalleryItem, to_rgb
from explorer.core.sky.coords import EXAMPLES, FRAMES
from explorer.core.sky.cutouts import provider_for
from explorer.core.sky.links import LINK_TITLES
from explorer.core.sky.names import position_of
from explorer.core.sky.upload import DEFAULT_MAX_BYTES, read_uploaded_fits

NO_FETCH = "catalogue only (no cutout)"
MODES = ["Name or coordinates", "Upload a FITS cutout", "Several examples"]

context = ui.context()
loaded, bundle = context.loaded, context.loaded.bundle


@st.cache_resource(max_entries=8, show_spinner="Opening the cutout provider…")
def cutout_provider(survey: str):
    return provider_for(survey)


st.markdown(f"#### Similarity search — {bundle.name}")
ui.filter_note(context)
mode = st.segmented_control("Query", MODES, key=ui.remember("search.mode", MODES[0], MODES)) or MODES[0]
k, dedup_arcsec = ui.neighbour_controls("search")
allowed = context.keep

result = None
try:
    if mode == "Upload a FITS cutout":
        scale = query.pixel_scale_arcsec(bundle)
        uploaded = st.file_uploader(f"FITS image with a celestial WCS (≤ {DEFAULT_MAX_BYTES // 2**20} MB; the encoder "
                                    f"works at {scale:g}″/px)", type=["fits", "fit", "fts", "gz"], key="search.upload")
        resample = st.checkbox("Resample to the encoder's pixel scale when the image's differs",
                               key=ui.remember("search.resample", False))
        if uploaded is None:
            st.info("Upload a cutout centred on the source you want to match.", icon=":material/upload_file:")
            st.stop()
        image, wcs = read_uploaded_fits(uploaded.getvalue(), uploaded.name, expected_pixel_scale_arcsec=scale,
                                        resample=resample)
        with st.spinner("Embedding the cutout…"):
            result = query.query_by_image(bundle, image, k, wcs=wcs, dedup_arcsec=dedup_arcsec, allowed=allowed)
        title = uploaded.name
    elif mode == "Several examples":
        chosen = ui.examples(loaded)
        ids = bundle.catalog["id"].astype(str)
        left, right = st.columns(2)
        positive = left.multiselect("Positive examples", chosen.positive, default=chosen.positive,
                                    format_func=lambda r: ids.iat[r], key=f"search.positive.{len(chosen.positive)}")
        negative = right.multiselect("Negative examples", chosen.negative, default=chosen.negative,
                                     format_func=lambda r: ids.iat[r], key=f"search.negative.{len(chosen.negative)}")
        chosen.positive[:], chosen.negative[:] = positive, negative  # removing a chip removes the example
        if not positive:
            st.info("Add examples from the Explore page: click a source (or select a group) and press "
                    "\"Positive example\" or \"Negative example\". The query is the mean of the positives' "
                    "embeddings minus the mean of the negatives'.", icon=":material/playlist_add:")
            st.stop()
        result = query.query_by_examples(bundle, positive, negative, k, dedup_arcsec=dedup_arcsec, allowed=allowed)
        title = f"{len(positive)} positive" + (f", {len(negative)} negative" if negative else "")
    else:
        position_column, frame_column, radius_column = st.columns([3, 1, 1])
        text = position_column.text_input("Object name or sky position", key=ui.remember("search.position", ""),
                                          placeholder="M 87, " + EXAMPLES.replace("'", ""))
        frame = frame_column.selectbox("Frame", list(FRAMES), key=ui.remember("search.frame", next(iter(FRAMES)), FRAMES))
        radius = radius_column.number_input("Match radius (arcsec)", 0.1, 3600.0, step=1.0,
                                            key=ui.remember("search.radius", views.MATCH_RADIUS_ARCSEC))
        surveys = query.survey_choices(bundle)
        fetch = st.selectbox("When no catalogue source is within the radius, fetch a cutout from",
                             [NO_FETCH, *surveys], key=ui.remember("search.survey", NO_FETCH, [NO_FETCH, *surveys]))
        if not text.strip():
            st.info(f"Enter an object name or coordinates in decimal degrees or sexagesimal, e.g. {EXAMPLES}.",
                    icon=":material/info:")
            st.stop()
        with st.spinner("Resolving the position…"):
            position = position_of(text, frame=frame)
        st.caption(f"Query position {views.format_position(position)}")
        provider = cutout_provider(surveys[fetch]) if fetch != NO_FETCH else None
        with st.spinner("Searching…"):
            result = query.query_by_coordinates(bundle, position, provider, k, radius, dedup_arcsec=dedup_arcsec,
                                                allowed=allowed)
        title = text.strip()
except InputError as e:
    st.error(str(e), icon=":material/error:")
    st.stop()

match = result.match
if mode == "Upload a FITS cutout" and result.position is not None:
    st.caption(f"Cutout centre {views.format_position(result.position)}")
if match is not None:
    nearest_id = str(bundle.catalog["id"].iat[match.row])
    separation = views.format_separation(match.separation_arcsec)
    if result.used_catalogue_source:
        st.success(f"Catalogue source **{nearest_id}**, {separation} from the query position.",
                   icon=":material/my_location:")
    else:
        st.warning(f"No catalogue source within the match radius; the nearest, {nearest_id}, is {separation} away. "
                   f"Searching with the cutout from {result.origin}.", icon=":material/location_off:")

if result.unlike_the_bundle:
    st.warning(f"This query is unlike anything in **{bundle.name}**: its best match is less similar to it than "
               f"{100 - result.typicality:.1f} % of the bundle's sources are to their own nearest neighbour. "
               "Treat the matches below with care (another survey, band or resolution?).",
               icon=":material/travel_explore:")
elif result.typicality is not None and result.image is not None:
    st.caption(f"Typicality: its best match is as similar as a source at the {result.typicality:.0f}th percentile "
               "of the bundle's own nearest-neighbour similarities.")
query_column, result_column = st.columns([1, 3])
with query_column:
    if result.used_catalogue_source:
        ui.source_panel(bundle, match.row, context.display)
        if st.button("Show on the map", icon=":material/scatter_plot:"):
            ui.focus_on_source(loaded, match.row)
            st.switch_page(ui.EXPLORE_PAGE)
        thumbnail, title = bundle.thumbnails[match.row], str(bundle.catalog["id"].iat[match.row])
    elif result.image is None:  # several examples: their median look
        thumbnail = np.median(np.asarray(bundle.thumbnails[np.sort(positive)], dtype=np.float32), axis=0).astype(np.uint8)
        st.image(to_rgb(thumbnail, context.display), caption=f"median of the {len(positive)} positives", width="stretch")
    else:
        thumbnail = query.query_thumbnail(bundle, result.image)
        st.image(to_rgb(thumbnail, context.display), caption=f"query cutout ({result.origin})", width="stretch")
    x, y = result.map_xy
    st.caption(f"Placed on the map at ({x:.2f}, {y:.2f}): the similarity-weighted mean of its neighbours.")
with result_column:
    found = len(result.neighbours.rows)
    st.subheader(f"{found} most similar sources")
    note = f" Duplicates within {dedup_arcsec:g}″ merged." if dedup_arcsec else ""
    among = " Among the filtered sources only." if context.row_filter else ""
    st.caption(f"Cosine similarity in the full {bundle.dim}-d embedding space.{note}{among} "
               "Click a thumbnail to explore from that source.")
    ui.gallery(loaded, views.neighbour_gallery(bundle, GalleryItem(thumbnail, title, ("query",), highlight=True),
                                               result.neighbours, context.display),
               key="search.gallery", switch_to_explore=True)
    table = query.result_table(bundle, result)
    ui.export_buttons(bundle.manifest.columns, lambda: table, "similar_sources", key="search.results")
    link = st.column_config.LinkColumn
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={name: link(title, display_text=title) for name, title in LINK_TITLES.items()})

st.subheader("On the map")
st.caption("Click a source to explore from it.")
neighbour_rows = tuple(int(r) for r in result.neighbours.rows)
if result.used_catalogue_source:
    marks = focus_marks(match.row, neighbour_rows)
else:  # placed where the search put it; several examples are boxed
    marks = Marks(neighbours=neighbour_rows, placed=tuple(result.map_xy),
                  examples=tuple(int(r) for r in positive) if result.image is None else ())
ui.map_view(context, marks, key="search.map", height=480, switch_to_explore=True)
