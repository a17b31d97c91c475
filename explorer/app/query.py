"""One-shot out-of-sample search: a position, an uploaded image or a fetched cutout as a query.

The query image goes through exactly the bundle's path — :func:`explorer.core.preprocess.preprocess`
with the manifest's parameters, then the bundle's encoder — and then FAISS finds its
neighbours. Its place on the map is the similarity-weighted mean of its neighbours'
positions (:func:`explorer.core.search.place_on_map`; umap's ``transform`` is far too slow).

- :func:`query_by_coordinates`: a catalogue source within ``radius_arcsec`` answers with its
  stored embedding; otherwise a cutout is fetched from a provider (:mod:`explorer.core.sky.cutouts`)
  and embedded. Either way the nearest catalogue source and its separation are reported.
- :func:`query_by_image`: an image (e.g. from :func:`explorer.core.sky.upload.read_uploaded_fits`).
- :func:`query_by_examples`: several catalogue sources as positives (and negatives) at once.
- :func:`source_links`: SIMBAD, NED, Legacy Survey viewer and Aladin Lite links for a position.

Nothing here imports Streamlit; pages call these functions and show the results.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from explorer.core.errors import InputError
from explorer.core.preprocess import as_nchw, preprocess, to_thumbnails
from explorer.core.search import Neighbours, neighbours_of_vector, place_on_map, typicality
from explorer.app.views import (MATCH_RADIUS_ARCSEC, SourceMatch, catalog_coords, format_separation, nearest_source,
                                neighbour_table)
from explorer.core.sky.links import LINKS, source_links
from explorer.core.surveys import FIRST



@dataclass
class QueryResult:
    vector: np.ndarray                  # [D] L2-normalised embedding of the query
    neighbours: Neighbours
    map_xy: np.ndarray                  # [2] placement on the bundle's map
    origin: str                         # "catalogue", the provider's name, or "image"
    position: SkyCoord | None = None    # the queried position (None for an image without WCS)
    match: SourceMatch | None = None    # the nearest catalogue source and its separation
    image: np.ndarray | None = None     # the cutout that was embedded (None: a stored embedding was used)
    wcs: WCS | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    typicality: float | None = None     # percentile of the best similarity among the catalogue's own (None: unknown)

    @property
    def used_catalogue_source(self) -> bool:
        return self.origin == "catalogue"

    @property
    def unlike_the_bundle(self) -> bool:
        """An out-of-sample query less similar to its best match than 99 % of sources are to theirs."""
        return self.typicality is not None and self.typicality < OUT_OF_DISTRIBUTION_PERCENTILE


OUT_OF_DISTRIBUTION_PERCENTILE = 1.0


def query_typicality(bundle, neighbours: Neighbours) -> float | None:
    """Where a query's best similarity falls among the catalogue sources' nearest-neighbour similarities."""
    percentiles = (bundle.manifest.quality.get("neighbourhood") or {}).get("nearest_similarity_percentiles")
    if not percentiles or not len(neighbours.similarity):
        return None
    return typicality(float(neighbours.similarity.max()), percentiles)


def pixel_scale_arcsec(bundle) -> float:
    """The pixel scale the bundle's encoder was trained at."""
    return float(bundle.manifest.data.pixel_scale_arcsec)


def cutout_geometry(bundle) -> tuple[float, int]:
    """(size in arcsec, pixels) of the cutout a query needs: the centre crop the encoder sees."""
    pixels = int(bundle.preprocessing().crop_pixels)
    return pixels * pixel_scale_arcsec(bundle), pixels


def survey_choices(bundle) -> dict[str, str]:
    """Where a cutout can come from for a position outside the catalogue: label -> survey string
    for :func:`explorer.core.sky.cutouts.provider_for`. The bundle's own FITS folder comes first: it needs no network."""
    choices = {}
    spec = bundle.manifest.data.spec
    if spec and not spec.startswith("sim:") and Path(spec).is_dir():
        choices[f"this bundle's FITS images ({Path(spec).name})"] = f"local:{spec}"
    choices[f"{FIRST.skyview} from SkyView"] = FIRST.skyview
    choices[f"{FIRST.name} from hips2fits ({FIRST.hips})"] = f"hips:{FIRST.hips}"
    return choices


def query_thumbnail(bundle, image: np.ndarray) -> np.ndarray:
    """A query cutout as the bundle shows its own sources: same preprocessing, same stretch."""
    x = np.asarray(image, dtype=np.float32)
    return to_thumbnails(preprocess(as_nchw(x if x.ndim == 2 else x[None]), bundle.preprocessing()),
                         bundle.manifest.data.bands)[0]


def embed_cutout(bundle, image: np.ndarray) -> np.ndarray:
    """The bundle encoder's L2-normalised [D] embedding of one image ([H, W] or [C, H, W], survey units)."""
    params = bundle.preprocessing()
    x = np.asarray(image, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise InputError(f"expected one image of shape [H, W] or [C, H, W], got shape {x.shape}")
    x = as_nchw(x if x.ndim == 2 else x[None])
    channels = bundle.manifest.encoder.in_channels
    if x.shape[1] != channels:
        raise InputError(f"the image has {x.shape[1]} band(s) but the bundle's encoder takes {channels}")
    if min(x.shape[-2:]) < params.crop_pixels:
        raise InputError(f"the image is {x.shape[-1]}x{x.shape[-2]} px; the encoder needs at least "
                         f"{params.crop_pixels}x{params.crop_pixels} px at {pixel_scale_arcsec(bundle):g}\"/px")
    if not np.isfinite(x).any():
        raise InputError("the image has no finite pixels")
    from explorer.core.encoder import embed  # torch takes seconds to import: only image queries need it

    return embed(bundle.encoder(), preprocess(x, params), params, progress=False)[0]


def _search(bundle, vector: np.ndarray, k: int, *, exclude_row, dedup_arcsec: float | None,
            position: SkyCoord | None, allowed: np.ndarray | None) -> tuple[Neighbours, np.ndarray]:
    radec = (float(position.icrs.ra.deg), float(position.icrs.dec.deg)) if position is not None else None
    neighbours = neighbours_of_vector(bundle, vector, k, exclude_row=exclude_row, dedup_arcsec=dedup_arcsec,
                                      query_radec=radec, allowed=allowed)
    return neighbours, place_on_map(bundle.map_xy, neighbours.rows, neighbours.similarity)


def query_by_image(bundle, image: np.ndarray, k: int, *, wcs: WCS | None = None,
                   dedup_arcsec: float | None = None, allowed: np.ndarray | None = None) -> QueryResult:
    """Neighbours of an image the bundle has never seen (an upload, a cutout)."""
    start = time.perf_counter()
    vector = embed_cutout(bundle, image)
    embedded = time.perf_counter()
    position = None
    if wcs is not None:
        height, width = np.shape(image)[-2:]
        position = wcs.pixel_to_world((width - 1) / 2, (height - 1) / 2).icrs
    neighbours, xy = _search(bundle, vector, k, exclude_row=None, dedup_arcsec=dedup_arcsec, position=position,
                             allowed=allowed)
    timings = {"embed": embedded - start, "search": time.perf_counter() - embedded}
    match = nearest_source(_catalog_coords(bundle), position) if position is not None else None
    return QueryResult(vector, neighbours, xy, "image", position, match, np.asarray(image), wcs, timings,
                       typicality=query_typicality(bundle, neighbours))


def query_by_coordinates(bundle, coord: SkyCoord, provider, k: int, radius_arcsec: float = MATCH_RADIUS_ARCSEC, *,
                         dedup_arcsec: float | None = None, allowed: np.ndarray | None = None) -> QueryResult:
    """Neighbours of whatever is at ``coord``: the catalogue source there, else a fetched cutout.

    ``provider`` (see :mod:`explorer.core.sky.cutouts`) is only asked when no catalogue source lies
    within ``radius_arcsec``; pass ``None`` to never fetch (then the answer is an InputError
    saying nothing is within the radius).
    """
    start = time.perf_counter()
    coord = coord.icrs
    match = nearest_source(_catalog_coords(bundle), coord, radius_arcsec)
    matched = time.perf_counter()
    if match.within_radius:
        vector = np.asarray(bundle.embeddings[match.row])
        neighbours, xy = _search(bundle, vector, k, exclude_row=match.row, dedup_arcsec=dedup_arcsec,
                                 position=coord, allowed=allowed)
        return QueryResult(vector, neighbours, xy, "catalogue", coord, match,
                           timings={"match": matched - start, "search": time.perf_counter() - matched})
    if provider is None:
        raise InputError(f"no catalogue source within {radius_arcsec:g}″ (nearest: "
                         f"{format_separation(match.separation_arcsec)}); "
                         "choose a survey to fetch a cutout from")
    size_arcsec, pixels = cutout_geometry(bundle)
    image, wcs = provider.cutout(coord, size_arcsec, pixels)
    fetched = time.perf_counter()
    result = query_by_image(bundle, image, k, wcs=wcs, dedup_arcsec=dedup_arcsec, allowed=allowed)
    result.origin, result.position, result.match = provider.name, coord, match
    result.timings = {"match": matched - start, "cutout": fetched - matched, **result.timings}
    return result


def query_by_examples(bundle, positives, negatives=(), k: int = 12, *, dedup_arcsec: float | None = None,
                      allowed: np.ndarray | None = None) -> QueryResult:
    """Neighbours of several examples at once: the mean of the positives' embeddings minus the mean of the
    negatives', normalised (how one looks for a rare class from a handful of examples). The examples
    themselves are left out of the answer."""
    positives, negatives = [int(r) for r in positives], [int(r) for r in negatives]
    if not positives:
        raise InputError("pick at least one positive example")
    if set(positives) & set(negatives):
        raise InputError("a source cannot be both a positive and a negative example")
    vector = np.asarray(bundle.embeddings[np.sort(positives)], dtype=np.float32).mean(axis=0)
    if negatives:
        vector = vector - np.asarray(bundle.embeddings[np.sort(negatives)], dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(vector))
    if norm < 1e-6:
        raise InputError("the positives and negatives cancel out (their mean embeddings are the same); "
                         "change the examples")
    vector = vector / norm
    start = time.perf_counter()
    neighbours, xy = _search(bundle, vector, k, exclude_row=positives + negatives, dedup_arcsec=dedup_arcsec,
                             position=None, allowed=allowed)
    return QueryResult(vector, neighbours, xy, "examples", timings={"search": time.perf_counter() - start})


_CATALOG_COORDS: dict[tuple, SkyCoord] = {}


def _catalog_coords(bundle) -> SkyCoord:
    """The bundle's positions, kept per bundle so astropy's KD-tree on them is built once."""
    key = (str(bundle.path), bundle.manifest.created, bundle.n)
    if key not in _CATALOG_COORDS:
        _CATALOG_COORDS.clear()  # one bundle at a time is open
        _CATALOG_COORDS[key] = catalog_coords(bundle)
    return _CATALOG_COORDS[key]


def result_table(bundle, result: QueryResult) -> pd.DataFrame:
    """The neighbour table (rank, similarity, id, ra, dec, properties) with SIMBAD/NED/Legacy Survey links."""
    table = neighbour_table(bundle, result.neighbours)
    links = [source_links(ra, dec) for ra, dec in zip(table["ra"], table["dec"])]
    for name in LINKS:
        table[name] = [link[name] for link in links]
    return table
