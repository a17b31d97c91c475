"""Radio islands and peaks: the iC_jP morphology of paper 3 (CLARAN), measured on any radio image.

A *component* is an island: 8-connected pixels above ``flood`` x sigma that hold at least one pixel above
``seed`` x sigma (Aegean's and PyBDSF's flood / seed convention; paper 3 floods at 4 sigma). A *peak* is a
local summit of an island whose topographic prominence (its height above the highest saddle that joins it
to a higher summit) is at least ``prominence`` x sigma, so noise ripples on a bright lobe are not peaks.
The same code labels simulated fields and real images, so the two are counted alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.stats import sigma_clipped_stats
from scipy import ndimage

FLOOD_SIGMA = 4.0
SEED_SIGMA = 5.0
PROMINENCE_SIGMA = 3.0
# Paper 3's six classes (Table 3); anything else is kept but marked out of scope.
CLASSES = ("1C_1P", "1C_2P", "1C_3P", "2C_2P", "2C_3P", "3C_3P")
OUT_OF_SCOPE = "out_of_scope"
_EIGHT_CONNECTED = np.ones((3, 3), bool)


@dataclass(frozen=True)
class Island:
    """One component: its pixel mask (in the image's frame), its peaks as (row, col), and its flux sum."""
    mask: np.ndarray
    peaks: tuple[tuple[int, int], ...]
    flux: float


def background_rms(image: np.ndarray) -> float:
    """The noise sigma of a radio image: sigma-clipped standard deviation of the finite pixels."""
    finite = np.asarray(image, float)[np.isfinite(image)]
    _, _, std = sigma_clipped_stats(finite, sigma=3.0, maxiters=10)
    return float(std)


def find_islands(image: np.ndarray, sigma: float | None = None, *, flood: float = FLOOD_SIGMA,
                 seed: float = SEED_SIGMA, prominence: float = PROMINENCE_SIGMA) -> list[Island]:
    """The islands of ``image`` [H, W], brightest first; ``sigma`` defaults to :func:`background_rms`."""
    image = np.nan_to_num(np.asarray(image, float), nan=-np.inf)
    sigma = background_rms(image[np.isfinite(image)]) if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"the noise sigma must be positive, got {sigma}")
    labels, count = ndimage.label(image > flood * sigma, structure=_EIGHT_CONNECTED)
    islands = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels[box] == index
        values = np.where(mask, image[box], -np.inf)
        if values.max() < seed * sigma:
            continue
        summits = _prominent_summits(values, min_prominence=prominence * sigma)
        full = np.zeros(image.shape, bool)
        full[box] = mask
        islands.append(Island(full, tuple((r + box[0].start, c + box[1].start) for r, c in summits),
                              float(image[full].sum())))
    return sorted(islands, key=lambda island: -island.flux)


def _prominent_summits(values: np.ndarray, *, min_prominence: float) -> list[tuple[int, int]]:
    """Summits of one island (``values``; -inf outside it) with prominence >= ``min_prominence``.

    Pixels join in order of decreasing value (union-find). When a pixel first touches two groups, the
    group with the lower summit ends there: its prominence is its summit minus this pixel's value.
    The island's highest summit is always a peak (every component has one).
    """
    height, width = values.shape
    flat = values.ravel()
    parent = np.full(flat.size, -1)
    summit = {}            # group root -> flat index of its highest pixel
    prominent = []

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in np.argsort(-flat, kind="stable"):
        if not np.isfinite(flat[i]):
            break
        r, c = divmod(int(i), width)
        groups = {root(n) for n in (rr * width + cc for rr in range(max(r - 1, 0), min(r + 2, height))
                                    for cc in range(max(c - 1, 0), min(c + 2, width)))
                  if parent[n] >= 0}
        parent[i] = i
        if not groups:
            summit[i] = i
            continue
        highest = max(groups, key=lambda g: flat[summit[g]])
        for group in groups - {highest}:
            if flat[summit[group]] - flat[i] >= min_prominence:
                prominent.append(summit[group])
            parent[group] = highest
            del summit[group]
        parent[i] = highest
    prominent.extend(summit.values())      # the island's highest summit is always a peak
    return [divmod(int(i), width) for i in sorted(prominent, key=lambda i: -flat[i])]


def morphology_class(components: int, peaks: int) -> str:
    """iC_jP for paper 3's six classes, else :data:`OUT_OF_SCOPE`."""
    name = f"{components}C_{peaks}P"
    return name if name in CLASSES else OUT_OF_SCOPE
