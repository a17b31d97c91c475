"""Detect: radio sources in a field (paper 3, CLARAN): boxes, iC_jP classes and probabilities, on the sky;
each detection searched in the bundle in one click."""
from pathlib import Path

import streamlit as st
from astropy import units as u
from astropy.coordinates import SkyCoord

from explorer.app import detections, query, ui, views
from explorer.app.images import GalleryItem, to_rgb
from explorer.core.detector import FIELD_PIXELS, FIELD_SCALE_ARCSEC, PROBABILITY_CUT, detect_field, needs_infrared
from explorer.core.errors import InputError
from explorer.core.config import home
from explorer.core.sky.coords import EXAMPLES, FRAMES
from explorer.core.sky.cutouts import provider_for
from explorer.core.sky.names import position_of
from explorer.core.sky.upload import DEFAULT_MAX_BYTES, read_uploaded_image

MODES = ["Upload a FITS", "Name or coordinates", "Local collection"]
SEARCHED = "detect.searched"          # (field label, detection number) whose neighbours are shown

context = ui.context()
loaded, bundle = context.loaded, context.loaded.bundle
st.subheader("Detect radio sources in a field")
runs = detections.detector_runs()
if not runs:
    st.info("No trained detector yet. Train one (about 30 minutes on 2 CPU cores):\n\n"
            "`python -m training.detector --config configs/claran_d1.yaml --out .cache/detectors/claran-d1`",
            icon=":material/info:")
    st.stop()
run = st.selectbox("Detector", runs, format_func=lambda p: p.name, key="detect.run")


@st.cache_resource(max_entries=2, show_spinner="Loading the detector…")
def _detector(path: str, stamp: int):
    from training.detector import load_detector

    return load_detector(path)


@st.cache_resource(max_entries=8, show_spinner="Opening the cutout provider…")
def cutout_provider(survey: str):
    return provider_for(survey)


model, config = _detector(str(run), (Path(run) / detections.CHECKPOINT).stat().st_mtime_ns)
wants_w1 = needs_infrared(config.input)
mode = st.segmented_control("Field", MODES, key=ui.remember("detect.mode", MODES[0], MODES)) or MODES[0]
confident = st.toggle(f"Keep only P ≥ {PROBABILITY_CUT} (or the best detection when none is)", value=True,
                      key="detect.filter", help="Paper 3's post-filter (section 6.1.1).")
field_note = f"{FIELD_PIXELS * FIELD_SCALE_ARCSEC / 60:.1f}′ resampled to the detector's {FIELD_SCALE_ARCSEC}″ pixels"
try:
    if mode == "Upload a FITS":
        uploaded = st.file_uploader(f"FITS radio image with a celestial WCS (≤ {DEFAULT_MAX_BYTES // 2**20} MB); its "
                                    f"central {field_note}", type=["fits", "fit", "fts", "gz"], key="detect.upload")
        uploaded_w1 = (st.file_uploader(f"WISE W1 image of the same field ({config.input} reads radio contours over W1)",
                                        type=["fits", "fit", "fts", "gz"], key="detect.upload_w1")
                       if wants_w1 else None)
        if uploaded is None or (wants_w1 and uploaded_w1 is None):
            st.info("Upload a FIRST-like radio image" + (" and its W1 image" if wants_w1 else "") +
                    " to see the sources the detector finds in it.", icon=":material/upload_file:")
            st.stop()
        image, wcs = read_uploaded_image(uploaded.getvalue(), uploaded.name)
        w1 = read_uploaded_image(uploaded_w1.getvalue(), uploaded_w1.name) if wants_w1 else None
        field = detections.field_from_image(image, wcs, uploaded.name, w1)
    else:
        surveys = query.survey_choices(bundle)
        if mode == "Local collection":
            collections = detections.local_collections(bundle)
            if not collections:
                st.info(f"No local FITS folder: {bundle.name} was not built from one, and "
                        f"{home() / 'collections'} holds none. Put a folder of images with a WCS (a mosaic, survey "
                        "tiles) there, or upload an image or give a position.", icon=":material/folder_off:")
                st.stop()
            names = list(collections)
            survey = collections[st.selectbox("Local FITS folder", names,
                                              key=ui.remember("detect.collection", names[0], names))]
            rows = detections.catalogue_sources(survey.removeprefix("local:"))
            if rows is not None:
                chosen = st.selectbox("Source at the field's centre", range(len(rows)),
                                      format_func=lambda r: str(rows["id"].iat[r]), key="detect.local_source")
                position = SkyCoord(rows["ra"].iat[chosen] * u.deg, rows["dec"].iat[chosen] * u.deg)
                label = str(rows["id"].iat[chosen])
        if mode == "Name or coordinates" or (mode == "Local collection" and rows is None):
            text_column, frame_column = st.columns([3, 1])
            text = text_column.text_input("Object name or sky position at the field's centre",
                                          key=ui.remember("detect.position", ""),
                                          placeholder="3C 273, " + EXAMPLES.replace("'", ""))
            frame = frame_column.selectbox("Frame", list(FRAMES), key=ui.remember("detect.frame", next(iter(FRAMES)), FRAMES))
            if mode == "Name or coordinates":
                labels = list(surveys)
                survey = surveys[st.selectbox("Radio image from", labels,
                                              key=ui.remember("detect.survey", labels[0], labels))]
            if not text.strip():
                st.info(f"Enter an object name or coordinates, e.g. {EXAMPLES}.", icon=":material/info:")
                st.stop()
            with st.spinner("Resolving the position…"):
                position = position_of(text, frame=frame)
            label = text.strip()
        if wants_w1 and survey.startswith("local:"):
            raise InputError(f"this detector reads {config.input} (radio contours over W1): give a position and a "
                             "survey, or upload the radio and W1 images")
        with st.spinner(f"Fetching the {field_note}…"):
            field = detections.field_from_provider(cutout_provider(survey), position, label,
                                                   cutout_provider(detections.W1_SURVEY) if wants_w1 else None)
    with st.spinner("Detecting…"):
        found = detections.numbered(detect_field(model, config, field.radio, field.wcs, infrared=field.infrared,
                                                 apply_filter=confident))
except InputError as e:
    st.error(str(e), icon=":material/error:")
    st.stop()

st.plotly_chart(detections.detections_figure(field.radio, found, field.label), key="detect.figure")
table = found[list(detections.COLUMNS)]
st.dataframe(table, hide_index=True)
ui.export_buttons(detections.COLUMNS, lambda: table, detections.export_name(field.label), key="detect.export")

st.markdown(f"##### Sources like a detection in {bundle.name}")
st.caption(f"Each detection is cut out at the bundle's {query.pixel_scale_arcsec(bundle):g}″ pixels, centred on its "
           "box, embedded by the bundle's encoder and searched, as an uploaded cutout would be.")
for column, (_, d) in zip(st.columns(max(len(found), 1)), found.iterrows()):
    if column.button(f"#{d['number']} {d['det_class']}", key=f"detect.search.{d['number']}", icon=":material/search:",
                     width="stretch"):
        st.session_state[SEARCHED] = (field.label, int(d["number"]))
searched = st.session_state.get(SEARCHED)
if searched is None or searched[0] != field.label or searched[1] > len(found):
    st.stop()
detection = found.iloc[searched[1] - 1]
k, dedup_arcsec = ui.neighbour_controls("detect")
try:
    with st.spinner("Embedding the detection and searching…"):
        result = detections.search_detection(bundle, field, detection, k, allowed=context.keep,
                                             dedup_arcsec=dedup_arcsec)
except InputError as e:
    st.error(str(e), icon=":material/error:")
    st.stop()
if result.unlike_the_bundle:
    st.warning(f"Detection #{searched[1]} is unlike anything in **{bundle.name}**: treat its matches with care "
               "(another survey, band or resolution?).", icon=":material/travel_explore:")
thumbnail = query.query_thumbnail(bundle, result.image)
query_column, result_column = st.columns([1, 3])
query_column.image(to_rgb(thumbnail, context.display), width="stretch",
                   caption=f"#{searched[1]} {detection['det_class']} (P {detection['det_prob']:.2f})")
with result_column:
    st.caption(f"{len(result.neighbours.rows)} most similar sources; click one to explore from it.")
    ui.gallery(loaded, views.neighbour_gallery(bundle, GalleryItem(thumbnail, f"#{searched[1]}", ("query",), highlight=True),
                                               result.neighbours, context.display),
               key="detect.gallery", switch_to_explore=True)
    neighbours = query.result_table(bundle, result)
    st.dataframe(neighbours, hide_index=True, width="stretch")
