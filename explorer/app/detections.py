"""The Detect page's parts that need no Streamlit: which detector, which field, its boxes, and a search per box.

A :class:`Field` is the detector's 3′ field (from an upload, a survey or a local FITS collection) together
with a way to cut any position out of where it came from, so that each detection can be cut out at the
bundle's own pixel scale, embedded and searched (:func:`search_detection`), like a one-shot query.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from explorer.app import query
from explorer.core.config import REPO_ROOT, home
from explorer.core.detector import FIELD_PIXELS, FIELD_SCALE_ARCSEC, field_around, render_input
from explorer.core.errors import InputError
from explorer.core.fitsio import catalogue_files, cutout_with_wcs

CHECKPOINT = "checkpoint.pt"
MARKER = "detector.json"          # written by training.detector beside its checkpoint
FIELD_ARCSEC = FIELD_PIXELS * FIELD_SCALE_ARCSEC
W1_SURVEY = "WISE 3.4"            # SkyView's name for W1, for detectors that read D3 or D4
COLUMNS = {"number": {"unit": "", "description": "detection number on the figure"},
           "det_class": {"unit": "", "description": "iC_jP: i components, j peaks (paper 3)"},
           "det_prob": {"unit": "", "description": "detector probability of the class"},
           "ra": {"unit": "deg", "description": "box centre, right ascension (ICRS)"},
           "dec": {"unit": "deg", "description": "box centre, declination (ICRS)"},
           "side_arcsec": {"unit": "arcsec", "description": "side of the square box"}}

Cut = Callable[[SkyCoord, float, int], tuple[np.ndarray, WCS]]     # (position, size arcsec, pixels) -> image, WCS


@dataclass
class Field:
    """A field on the detector's grid and where it came from."""
    radio: np.ndarray                 # [132, 132]
    wcs: WCS
    label: str
    cut: Cut
    infrared: np.ndarray | None = None


def detector_runs() -> list[Path]:
    """Trained detectors (folders with ``detector.json`` beside a checkpoint, as ``training.detector`` writes):
    ``$EXPLORER_HOME/detectors/*`` first, then the repository's ``runs/*``."""
    found = []
    for folder in (home() / "detectors", REPO_ROOT / "runs"):
        if folder.is_dir():
            found += sorted(p.parent for p in folder.glob(f"*/{MARKER}") if (p.parent / CHECKPOINT).is_file())
    return found


def local_collections(bundle) -> dict[str, str]:
    """Local FITS folders a field can come from (label -> ``local:<folder>``): the bundle's own FITS folder,
    then each folder in ``$EXPLORER_HOME/collections`` (a mosaic, a survey's tiles, any images with a WCS)."""
    found = {label: survey for label, survey in query.survey_choices(bundle).items() if survey.startswith("local:")}
    folder = home() / "collections"
    if folder.is_dir():
        found |= {f"{p.name} ({folder.name})": f"local:{p}" for p in sorted(folder.iterdir()) if p.is_dir()}
    return found


def catalogue_sources(folder: str | Path) -> pd.DataFrame | None:
    """id, ra, dec of the sources of a folder with a catalog.csv; None for a plain folder of images."""
    if not (Path(folder) / "catalog.csv").is_file():
        return None
    return catalogue_files(folder)[0]


def _single_plane(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image, np.float32)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise InputError(f"{what} has {image.shape[0]} planes; the detector reads one radio image")
    return image


def field_from_image(image: np.ndarray, wcs: WCS, label: str, infrared: tuple[np.ndarray, WCS] | None = None) -> Field:
    """The field around an image's centre (an upload), and cut-outs from that image; W1 resampled alike."""
    image = _single_plane(image, label)
    height, width = image.shape
    centre = wcs.pixel_to_world((width - 1) / 2, (height - 1) / 2)
    radio, field_wcs = field_around(image, wcs, centre)
    w1 = None if infrared is None else field_around(_single_plane(infrared[0], "the W1 image"), infrared[1], centre)[0]
    if w1 is not None and not np.isfinite(w1).any():
        raise InputError("the W1 image does not cover the radio field")

    def cut(position: SkyCoord, size_arcsec: float, pixels: int):
        return cutout_with_wcs(image, wcs, position, pixels, size_arcsec / pixels)

    return Field(radio, field_wcs, label, cut, w1)


def field_from_provider(provider, position: SkyCoord, label: str, infrared_provider=None) -> Field:
    """The field centred on a position from a cutout provider (a survey or a local FITS collection)."""
    radio, wcs = provider.cutout(position, FIELD_ARCSEC, FIELD_PIXELS)
    radio = _single_plane(radio, label)
    if not np.isfinite(radio).any():
        raise InputError(f"{provider.name} has no data at {label}")
    w1 = None
    if infrared_provider is not None:
        w1 = _single_plane(infrared_provider.cutout(position, FIELD_ARCSEC, FIELD_PIXELS)[0], "the W1 image")
    return Field(radio, wcs, label, provider.cutout, w1)


def numbered(found: pd.DataFrame) -> pd.DataFrame:
    """The detections with their number on the figure (1 = the most probable)."""
    return found.reset_index(drop=True).assign(number=lambda t: np.arange(1, len(t) + 1))


def export_name(label: str) -> str:
    """A file and VOTable name for a field's detections: letters, digits and underscores (a valid XML id)."""
    stem = Path(label).name.split(".")[0]
    return "detections_" + re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_")


def search_detection(bundle, field: Field, detection: pd.Series, k: int, *, allowed=None,
                     dedup_arcsec: float | None = None) -> query.QueryResult:
    """Cut a detection out at the bundle's pixel scale (centred on its box), embed it and find its neighbours."""
    size_arcsec, pixels = query.cutout_geometry(bundle)
    position = SkyCoord(float(detection["ra"]) * u.deg, float(detection["dec"]) * u.deg)
    image, wcs = field.cut(position, size_arcsec, pixels)
    return query.query_by_image(bundle, np.asarray(image, np.float32), k, wcs=wcs, allowed=allowed,
                                dedup_arcsec=dedup_arcsec)


def detections_figure(field: np.ndarray, detections: pd.DataFrame, title: str = "") -> go.Figure:
    """The field as the detector sees it (D1), north up, with each numbered box, its class and probability."""
    image = render_input(field)[0]
    figure = go.Figure(go.Heatmap(z=image, colorscale="gray", showscale=False, hoverinfo="skip"))
    for _, d in numbered(detections).iterrows():
        figure.add_shape(type="rect", x0=d["x0"], y0=d["y0"], x1=d["x1"], y1=d["y1"], line={"color": "#ffb000", "width": 2})
        figure.add_annotation(x=d["x0"], y=d["y1"], text=f"#{d['number']} {d['det_class']} {d['det_prob']:.2f}",
                              showarrow=False, xanchor="left", yanchor="bottom", font={"color": "#ffb000", "size": 12})
    figure.update_layout(title=title, height=560, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         xaxis={"visible": False, "constrain": "domain"},
                         yaxis={"visible": False, "scaleanchor": "x"})
    return figure
