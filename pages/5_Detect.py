"""Detect: radio sources in a field (paper 3, CLARAN): boxes, iC_jP classes and probabilities, on the sky."""
from pathlib import Path

import streamlit as st

from explorer.app import detections, ui
from explorer.core.detector import FIELD_PIXELS, FIELD_SCALE_ARCSEC, PROBABILITY_CUT, detect_field
from explorer.core.errors import InputError
from explorer.core.export import to_csv_bytes, to_votable_bytes
from explorer.core.sky.upload import DEFAULT_MAX_BYTES, read_uploaded_fits

ui.context()
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


model, config = _detector(str(run), (Path(run) / detections.CHECKPOINT).stat().st_mtime_ns)
uploaded = st.file_uploader(f"FITS radio image with a celestial WCS (≤ {DEFAULT_MAX_BYTES // 2**20} MB); its central "
                            f"{FIELD_PIXELS * FIELD_SCALE_ARCSEC / 60:.1f}′ is resampled to the detector's "
                            f"{FIELD_SCALE_ARCSEC}″ pixels", type=["fits", "fit", "fts", "gz"], key="detect.upload")
confident = st.toggle(f"Keep only P ≥ {PROBABILITY_CUT} (or the best detection when none is)", value=True,
                      key="detect.filter", help="Paper 3's post-filter (section 6.1.1).")
if uploaded is None:
    st.info("Upload a FIRST-like radio image to see the sources the detector finds in it.",
            icon=":material/upload_file:")
    st.stop()
try:
    field, wcs = read_uploaded_fits(uploaded.getvalue(), uploaded.name, expected_pixel_scale_arcsec=FIELD_SCALE_ARCSEC,
                                    resample=True, pixels=FIELD_PIXELS)
except InputError as e:
    st.error(str(e), icon=":material/error:")
    st.stop()
with st.spinner("Detecting…"):
    found = detect_field(model, config, field, wcs, apply_filter=confident)
st.plotly_chart(detections.detections_figure(field, found, uploaded.name), key="detect.figure")
table = found[["det_class", "det_prob", "ra", "dec", "side_arcsec"]]
st.dataframe(table, hide_index=True)
stem = Path(uploaded.name).name.split(".")[0]
left, right = st.columns(2)
left.download_button("Download CSV", to_csv_bytes(table), f"{stem}-detections.csv", "text/csv")
right.download_button("Download VOTable", to_votable_bytes(table, detections.COLUMNS, name="detections"),
                      f"{stem}-detections.xml", "application/x-votable+xml")
