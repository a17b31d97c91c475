"""The Detect page's parts that need no Streamlit: which detector to use, and the figure of its boxes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.core.config import REPO_ROOT, home
from explorer.core.detector import render_input

CHECKPOINT = "checkpoint.pt"
MARKER = "detector.json"          # written by training.detector beside its checkpoint
COLUMNS = {"det_class": {"unit": "", "description": "iC_jP: i components, j peaks (paper 3)"},
           "det_prob": {"unit": "", "description": "detector probability of the class"},
           "ra": {"unit": "deg", "description": "box centre, right ascension (ICRS)"},
           "dec": {"unit": "deg", "description": "box centre, declination (ICRS)"},
           "side_arcsec": {"unit": "arcsec", "description": "side of the square box"}}


def detector_runs() -> list[Path]:
    """Trained detectors (folders with ``detector.json`` beside a checkpoint, as ``training.detector`` writes):
    ``$EXPLORER_HOME/detectors/*`` first, then the repository's ``runs/*``."""
    found = []
    for folder in (home() / "detectors", REPO_ROOT / "runs"):
        if folder.is_dir():
            found += sorted(p.parent for p in folder.glob(f"*/{MARKER}") if (p.parent / CHECKPOINT).is_file())
    return found


def detections_figure(field: np.ndarray, detections: pd.DataFrame, title: str = "") -> go.Figure:
    """The field as the detector sees it (D1), north up, with each box, its class and probability."""
    image = render_input(field)[0]
    figure = go.Figure(go.Heatmap(z=image, colorscale="gray", showscale=False, hoverinfo="skip"))
    for _, d in detections.iterrows():
        figure.add_shape(type="rect", x0=d["x0"], y0=d["y0"], x1=d["x1"], y1=d["y1"], line={"color": "#ffb000", "width": 2})
        figure.add_annotation(x=d["x0"], y=d["y1"], text=f"{d['det_class']} {d['det_prob']:.2f}", showarrow=False,
                              xanchor="left", yanchor="bottom", font={"color": "#ffb000", "size": 12})
    figure.update_layout(title=title, height=560, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         xaxis={"visible": False, "constrain": "domain"},
                         yaxis={"visible": False, "scaleanchor": "x"})
    return figure
