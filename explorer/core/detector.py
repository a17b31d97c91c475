"""The radio source detector (paper 3, CLARAN): Faster R-CNN over a field, boxes with an iC_jP class.

Shared by training (:mod:`training.detector`) and the explorer's Detect page: the input rendering, the
network and the post-filter live here, so a real FITS field goes through exactly what the detector
was trained on.

- Inputs (:func:`render_input`), zero-centred by the training set's mean per channel inside the network:
  - D1: the radio image on DS9's "log min max" scale, y = log10(1000 x + 1) / log10(1001) with x the image
    min-max scaled to [0, 1] (DS9 divides by log10(1000); we end at exactly 1);
  - D3: radio contours over W1, as two channels: W1 on the same scale, and the radio's contour lines at
    5σ, 10σ, 20σ, ... (σ: :func:`explorer.core.islands.background_rms`). Paper 3 drew the contours in
    colour over W1 in a 3-channel PNG; the two channels hold the same information;
  - D4: D3 with every pixel outside the convex hull of the 5σ contours set to the training set's mean
    of D3, per channel.
- Network: torchvision's Faster R-CNN on a backbone of :mod:`explorer.core.backbones` (ResNet-18 for the
  CPU, VGG-16 as in the paper) with an FPN over its last three stages. The field is upscaled bilinearly
  to ``input_size`` (paper: 132 -> 600 px). Anchors are square only, paper 3's six sizes 16-512 px on the
  600-px image (scaled with ``input_size``), two per pyramid level. 5 proposals per image at test time.
- Boxes are in the field's 0-based pixel frame (pixel i spans i +- 0.5), the frame of ``sources.csv``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage
from scipy.spatial import ConvexHull, Delaunay, QhullError
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign

from explorer.core.backbones import build_backbone
from explorer.core.errors import InputError
from explorer.core.fitsio import cutout_with_wcs
from explorer.core.islands import CLASSES, background_rms

FIELD_PIXELS = 132               # a Radio Galaxy Zoo subject: 3' of FIRST at 1.375"/px
FIELD_SCALE_ARCSEC = 1.375
INPUTS = ("D1", "D3", "D4")
CHANNELS = {"D1": ("radio",), "D3": ("W1", "radio contours"), "D4": ("W1", "radio contours")}
CONTOUR_SIGMA = 5.0            # paper 3: the lowest contour at 5 sigma; then each level doubles
PAPER_INPUT_SIZE = 600
PAPER_ANCHORS = (16, 32, 64, 128, 256, 512)
PROBABILITY_CUT = 0.8          # paper 3, section 6.1.1
_DS9_LOG_EXPONENT = 1000.0


@dataclass
class DetectorConfig:
    architecture: str = "resnet18"
    input: str = "D1"
    input_size: int = 264                 # the field upscaled to this many pixels (paper: 600)
    classes: tuple[str, ...] = CLASSES
    fpn_channels: int = 128
    box_head: int = 1024                   # paper: two FC layers of 4096
    proposals_test: int = 5
    proposals_train: int = 2000
    channel_mean: list[float] = field(default_factory=lambda: [0.0])
    outside_fill: list[float] = field(default_factory=list)   # D4: the training set's mean of D3, per channel

    def to_dict(self) -> dict:
        return {**asdict(self), "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, values: dict) -> "DetectorConfig":
        return cls(**{**values, "classes": tuple(values.get("classes", CLASSES))})

    @property
    def anchors(self) -> tuple[tuple[int, ...], ...]:
        """Paper 3's six anchor sizes on this input size, two per level of the three-level pyramid."""
        sizes = [max(2, round(s * self.input_size / PAPER_INPUT_SIZE)) for s in PAPER_ANCHORS]
        return tuple(tuple(sizes[i:i + 2]) for i in range(0, 6, 2))


def needs_infrared(kind: str) -> bool:
    return "W1" in CHANNELS[kind]


def _log_min_max(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float64)
    finite = np.isfinite(image)
    if not finite.any():
        raise InputError("the field has no finite pixels")
    low, high = image[finite].min(), image[finite].max()
    scaled = np.where(finite, (image - low) / (high - low) if high > low else 0.0, 0.0)
    return (np.log10(_DS9_LOG_EXPONENT * scaled + 1.0) / np.log10(_DS9_LOG_EXPONENT + 1.0)).astype(np.float32)


def contour_lines(radio: np.ndarray) -> np.ndarray:
    """1 on the pixels where the radio crosses 5σ, 10σ, 20σ, ... (each level's inner edge), else 0."""
    image = np.nan_to_num(np.asarray(radio, np.float64), nan=-np.inf)
    level, lines = CONTOUR_SIGMA * background_rms(radio), np.zeros(image.shape, bool)
    while level > 0 and (image >= level).any():
        above = image >= level
        lines |= above & ~ndimage.binary_erosion(above, border_value=0)
        level *= 2
    return lines.astype(np.float32)


def convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """The pixels whose centres lie in the convex hull of ``mask``'s pixels (its bounding box when flat)."""
    rows, cols = np.nonzero(mask)
    inside = np.asarray(mask, bool).copy()
    if len(rows) == 0:
        return inside
    points = np.column_stack([cols, rows]).astype(float)
    try:
        hull = Delaunay(points[ConvexHull(points).vertices])
    except QhullError:                      # fewer than three pixels, or all on one line
        inside[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        return inside
    yy, xx = np.indices(mask.shape)
    return inside | (hull.find_simplex(np.column_stack([xx.ravel(), yy.ravel()])) >= 0).reshape(mask.shape)


def render_input(radio: np.ndarray, kind: str = "D1", *, infrared: np.ndarray | None = None,
                 outside_fill=None) -> np.ndarray:
    """One field [H, W] (any units) -> the detector's input [C, H, W] float32.

    ``infrared``: the W1 image on the radio's grid (D3, D4). ``outside_fill``: D4's value per channel
    outside the contours' hull (the training set's mean of D3).
    """
    if kind not in INPUTS:
        raise ValueError(f"unknown detector input {kind!r}; available: {', '.join(INPUTS)}")
    if not needs_infrared(kind):
        return _log_min_max(radio)[None]
    if infrared is None:
        raise InputError(f"this detector reads {kind} (radio contours over a WISE W1 image): give a W1 image "
                         "of the same field too")
    if np.shape(infrared) != np.shape(radio):
        raise InputError(f"the W1 image is {np.shape(infrared)} pixels but the radio field is {np.shape(radio)}")
    stacked = np.stack([_log_min_max(infrared), contour_lines(radio)])
    if kind == "D4":
        if outside_fill is None or len(outside_fill) != len(stacked):
            raise ValueError(f"D4 needs the training set's D3 mean per channel ({len(stacked)} values)")
        lowest = np.nan_to_num(np.asarray(radio, float), nan=-np.inf) >= CONTOUR_SIGMA * background_rms(radio)
        if lowest.any():
            outside = ~convex_hull_mask(lowest)
            stacked[:, outside] = np.asarray(outside_fill, np.float32)[:, None]
    return stacked


class _PyramidBackbone(nn.Module):
    """A project backbone's last three stages through an FPN: what torchvision's detectors expect."""

    def __init__(self, architecture: str, in_channels: int, out_channels: int):
        super().__init__()
        self.body = build_backbone(architecture, in_channels)
        with torch.no_grad():
            widths = [m.shape[1] for m in self.body.eval().feature_maps(torch.zeros(1, in_channels, 64, 64))[-3:]]
        self.fpn = FeaturePyramidNetwork(widths, out_channels)
        self.out_channels = out_channels

    def forward(self, x):
        maps = self.body.feature_maps(x)[-3:]
        return self.fpn({str(i): m for i, m in enumerate(maps)})


def build_detector(config: DetectorConfig) -> FasterRCNN:
    """A randomly initialised detector (+1 class: background)."""
    channels = len(config.channel_mean)
    backbone = _PyramidBackbone(config.architecture, channels, config.fpn_channels)
    anchors = AnchorGenerator(sizes=config.anchors, aspect_ratios=((1.0,),) * len(config.anchors))
    pooler = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2)
    head = TwoMLPHead(config.fpn_channels * 7 * 7, config.box_head)
    return FasterRCNN(
        backbone, min_size=config.input_size, max_size=config.input_size,
        image_mean=list(config.channel_mean), image_std=[1.0] * channels,
        rpn_anchor_generator=anchors, box_roi_pool=pooler, box_head=head,
        box_predictor=FastRCNNPredictor(config.box_head, len(config.classes) + 1),
        rpn_pre_nms_top_n_train=config.proposals_train, rpn_post_nms_top_n_train=config.proposals_train,
        rpn_pre_nms_top_n_test=1000, rpn_post_nms_top_n_test=config.proposals_test,
        rpn_nms_thresh=0.7, rpn_fg_iou_thresh=0.7, rpn_bg_iou_thresh=0.3, rpn_batch_size_per_image=256,
        box_fg_iou_thresh=0.5, box_bg_iou_thresh=0.5, box_batch_size_per_image=128, box_positive_fraction=0.25,
        box_score_thresh=0.0, box_detections_per_img=config.proposals_test)


@torch.no_grad()
def detect(model: FasterRCNN, config: DetectorConfig, fields: list[np.ndarray], *, infrared=None, device="cpu",
           batch_size: int = 8) -> list[pd.DataFrame]:
    """Detections per field: x0, y0, x1, y1 (field pixels), det_class, det_prob; best first.

    ``infrared``: the W1 image of each field, for detectors that read D3 or D4.
    """
    model.eval().to(device)
    infrared = [None] * len(fields) if infrared is None else infrared
    out = []
    for start in range(0, len(fields), batch_size):
        images = [torch.from_numpy(render_input(f, config.input, infrared=w, outside_fill=config.outside_fill or None))
                  .to(device) for f, w in zip(fields[start:start + batch_size], infrared[start:start + batch_size])]
        for found in model(images):
            boxes = found["boxes"].cpu().numpy() - 0.5          # torchvision's pixel edges -> pixel centres
            out.append(pd.DataFrame({
                "x0": boxes[:, 0], "y0": boxes[:, 1], "x1": boxes[:, 2], "y1": boxes[:, 3],
                "det_class": [config.classes[i - 1] for i in found["labels"].cpu().numpy()],
                "det_prob": found["scores"].cpu().numpy()}).sort_values("det_prob", ascending=False,
                                                                        ignore_index=True))
    return out


def box_to_sky(box, wcs: WCS) -> tuple[SkyCoord, u.Quantity]:
    """Square boxes (x0, y0, x1, y1; 0-based pixel coordinates) -> their centres on the sky and their sides."""
    x0, y0, x1, y1 = np.asarray(box, float).T
    centre = wcs.pixel_to_world((x0 + x1) / 2, (y0 + y1) / 2)
    scale = proj_plane_pixel_scales(wcs.celestial)[0] * u.deg
    return centre, ((x1 - x0) * scale).to(u.arcsec)


def sky_to_box(centre: SkyCoord, side: u.Quantity, wcs: WCS) -> np.ndarray:
    """The inverse of :func:`box_to_sky`: boxes [.., 4] in 0-based pixel coordinates."""
    x, y = wcs.world_to_pixel(centre)
    half = (side / (proj_plane_pixel_scales(wcs.celestial)[0] * u.deg)).to_value(u.dimensionless_unscaled) / 2
    return np.stack([x - half, y - half, x + half, y + half], axis=-1)


def detect_field(model: FasterRCNN, config: DetectorConfig, field: np.ndarray, wcs: WCS, *,
                 infrared: np.ndarray | None = None, apply_filter: bool = True, device="cpu") -> pd.DataFrame:
    """Detections in one field on the detector's grid, with RA/Dec of each box centre and its side."""
    found = detect(model, config, [field], infrared=None if infrared is None else [infrared], device=device)[0]
    if apply_filter:
        found = post_filter(found)
    centre, side = box_to_sky(found[["x0", "y0", "x1", "y1"]].to_numpy(float).reshape(-1, 4), wcs)
    return found.assign(ra=np.round(centre.icrs.ra.deg, 6), dec=np.round(centre.icrs.dec.deg, 6),
                        side_arcsec=np.round(side.to_value(u.arcsec), 2))


def field_around(image: np.ndarray, wcs: WCS, position: SkyCoord) -> tuple[np.ndarray, WCS]:
    """The detector's field (132 px at 1.375″) centred on ``position``, resampled from any image with a WCS."""
    field, field_wcs = cutout_with_wcs(image, wcs, position, FIELD_PIXELS, FIELD_SCALE_ARCSEC)
    return np.asarray(field, np.float32), field_wcs


def detection_at(detections: pd.DataFrame, x: float, y: float) -> pd.Series | None:
    """The detection of the source at pixel (x, y): the most probable box holding it, else the nearest box."""
    if detections.empty:
        return None
    holds = ((detections["x0"] <= x) & (detections["x1"] >= x) & (detections["y0"] <= y) & (detections["y1"] >= y))
    if holds.any():
        return detections[holds].sort_values("det_prob", ascending=False, kind="stable").iloc[0]
    distance = np.hypot((detections["x0"] + detections["x1"]) / 2 - x, (detections["y0"] + detections["y1"]) / 2 - y)
    return detections.iloc[int(np.argmin(distance))]


def post_filter(detections: pd.DataFrame, cut: float = PROBABILITY_CUT) -> pd.DataFrame:
    """Paper 3's filter: drop detections with P < ``cut`` unless the best one is below it (then keep that one)."""
    if detections.empty:
        return detections
    ranked = detections.sort_values("det_prob", ascending=False, ignore_index=True)
    kept = ranked[ranked["det_prob"] >= cut]
    return kept.reset_index(drop=True) if len(kept) else ranked.iloc[:1]
