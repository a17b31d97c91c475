"""Paper 3's detector evaluation: non-interpolated AP per class at IoU > 0.5, mAP, box widths.

A detection is a true positive when its IoU with a not yet matched ground-truth box of its class in the
same field exceeds 0.5; detections are taken in order of probability over the whole test set, and
AP_m = sum_k P(k) tp(k) / |T_m| (P(k): the precision of the first k). The 3-class variant (1C / 2C / 3C)
collapses the classes of both detections and truth to their component count.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from explorer.core.detector import DetectorConfig, detect
from training.radio_fields import Fields

BOX = ["x0", "y0", "x1", "y1"]
IOU_CUT = 0.5


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (x0, y0, x1, y1) with each of ``others`` [M, 4]."""
    others = np.asarray(others, float).reshape(-1, 4)
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]) - inter)


def match(detections: pd.DataFrame, truth: pd.DataFrame, cls: str) -> pd.DataFrame:
    """The class's detections, most probable first, with ``tp`` and the matched truth row (``truth_row``)."""
    mine = detections[detections["det_class"] == cls].sort_values("det_prob", ascending=False, kind="stable")
    targets = truth[truth["det_class"] == cls]
    by_field = {f: g for f, g in targets.groupby("field")}
    used, tp, matched = set(), [], []
    for _, d in mine.iterrows():
        candidates = by_field.get(d["field"])
        best, row = 0.0, None
        if candidates is not None:
            overlaps = iou(d[BOX].to_numpy(float), candidates[BOX].to_numpy(float))
            for k in np.argsort(-overlaps):
                if candidates.index[k] not in used:
                    best, row = overlaps[k], candidates.index[k]
                    break
        hit = best > IOU_CUT
        if hit:
            used.add(row)
        tp.append(hit)
        matched.append(row if hit else -1)
    return mine.assign(tp=tp, truth_row=matched)


def average_precision(detections: pd.DataFrame, truth: pd.DataFrame, cls: str) -> float:
    """Paper 3's AP of one class (NaN when the truth has none of it)."""
    n_truth = int((truth["det_class"] == cls).sum())
    if n_truth == 0:
        return float("nan")
    tp = match(detections, truth, cls)["tp"].to_numpy(bool)
    precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    return float(np.sum(precision[tp]) / n_truth)


def components_only(table: pd.DataFrame) -> pd.DataFrame:
    """iC_jP -> iC (paper 3's Table 6)."""
    return table.assign(det_class=table["det_class"].str.split("_").str[0])


def evaluate(model, config: DetectorConfig, fields: Fields, *, device="cpu") -> dict:
    """AP per class and mAP (6 and 3 classes), box-width correlation per class, seconds per field."""
    start = time.perf_counter()
    found = detect(model, config, list(fields.images), device=device, batch_size=1)
    seconds = (time.perf_counter() - start) / len(fields.images)
    detections = pd.concat([d.assign(field=f) for d, f in zip(found, fields.catalog["id"])], ignore_index=True)
    truth = fields.sources.reset_index(drop=True)
    ap = {c: average_precision(detections, truth, c) for c in config.classes}
    collapsed_truth, collapsed = components_only(truth), components_only(detections)
    ap3 = {c: average_precision(collapsed, collapsed_truth, c) for c in ("1C", "2C", "3C")}
    widths = {}
    for c in config.classes:
        hits = match(detections, truth, c)
        hits = hits[hits["tp"]]
        if len(hits) > 2:
            true_width = truth.loc[hits["truth_row"], "x1"].to_numpy() - truth.loc[hits["truth_row"], "x0"].to_numpy()
            widths[c] = float(np.corrcoef(hits["x1"] - hits["x0"], true_width)[0, 1])
    return {"ap": ap, "map": float(np.nanmean(list(ap.values()))), "ap_3class": ap3,
            "map_3class": float(np.nanmean(list(ap3.values()))), "width_correlation": widths,
            "seconds_per_field": seconds, "test_fields": len(fields.images), "test_sources": len(truth)}
