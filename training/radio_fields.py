"""Simulated FIRST-like radio fields for source detection (paper 3, CLARAN): several sources per field.

A field is what a Radio Galaxy Zoo subject is: 3′ of FIRST resampled to 132 px at 1.375″/px, with a WISE
W1-like infrared image on the same grid (:mod:`training.infrared`: the host at each radio core, field
galaxies and stars). Sources come
from :mod:`training.simulate` (its morphologies, sizes, brightness and beam-correlated noise), are rendered
together on FIRST's own 1.8″ grid, then resampled bilinearly, as the RGZ cutouts were. Each source's class
iC_jP is *measured*, not assumed: :func:`explorer.core.islands.find_islands` runs on the noisy field (the
code that labels real images), and each island goes to the source that gives it most flux. Its box is a
square centred on the source with side = its largest angular size (paper 3).

``python -m training.radio_fields --n 2000 --seed 0 --out data/fields`` writes a FITS catalogue directory:
``fits/<id>.fits`` (one field each, with a WCS; the radio image first, W1 in the ``W1`` extension), ``catalog.csv`` (one row per field) and ``sources.csv``
(one row per source: class, box in pixels and on the sky).
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before numpy is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("radio_fields")

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage
from tqdm.auto import tqdm

from explorer.core.atomic import check_output_folder
from explorer.core.config import cache_dir
from explorer.core.detector import FIELD_PIXELS, FIELD_SCALE_ARCSEC, box_to_sky
from explorer.core.errors import InputError, cli_entry
from explorer.core.islands import OUT_OF_SCOPE, find_islands, morphology_class
from training import infrared, simulate
from training.data import parse_sim_spec

FIELD_VERSION = 2                                   # 2: a W1 image in every field
SOURCES_PER_FIELD = {1: 0.75, 2: 0.18, 3: 0.07}     # most RGZ subjects hold one radio source
MAX_EXTENT_FRACTION = 0.8                           # a source's box fits in the field with room to spare
FIELD_SIMULATIONS = {"fields": {"n": 500, "seed": 0, "mix": "simulated"}}
# Paper 3's training sources per class (Table 3). mix=paper draws fields towards it from a larger pool:
# the simulator's own mix is ~70 % 1C_1P with 1-4 % of 1C_3P and 2C_3P, where RGZ has ~10 % of each.
PAPER_TRAIN_MIX = {"1C_1P": 3518, "1C_2P": 810, "1C_3P": 728, "2C_2P": 647, "2C_3P": 609, "3C_3P": 666}
MIXES = ("simulated", "paper")
POOL_FACTOR = 4
CHUNK = 64                                          # fields per noise stream; fixed, so bytes never depend on it

SOURCE_COLUMNS = {
    "field": {"unit": "", "description": "id of the field (catalog.csv) that holds the source"},
    "source": {"unit": "", "description": "source identifier"},
    "morphology": {"unit": "", "description": "simulated morphology (training.simulate)"},
    "det_class": {"unit": "", "description": "iC_jP measured on the noisy field, or out_of_scope"},
    "components": {"unit": "", "description": "islands above 4 sigma assigned to the source"},
    "peaks": {"unit": "", "description": "prominent peaks in those islands"},
    "las_arcsec": {"unit": "arcsec", "description": "largest angular size (noise-free, 5 % of peak)"},
    "x0": {"unit": "pix", "description": "box left edge (0-based pixel coordinates, pixel i spans i +- 0.5)"},
    "y0": {"unit": "pix", "description": "box bottom edge"},
    "x1": {"unit": "pix", "description": "box right edge"},
    "y1": {"unit": "pix", "description": "box top edge"},
    "ra": {"unit": "deg", "description": "box centre, right ascension (ICRS)"},
    "dec": {"unit": "deg", "description": "box centre, declination (ICRS)"},
    "peak_snr": {"unit": "", "description": "brightest noise-free pixel of the source over the noise rms"},
    "core_x": {"unit": "pix", "description": "radio core (the host's position), 0-based field pixel x"},
    "core_y": {"unit": "pix", "description": "radio core (the host's position), 0-based field pixel y"},
    "w1_host_mag": {"unit": "mag", "description": "W1 magnitude (Vega) of the host at the radio core"},
}
FIELD_COLUMNS = {
    "id": {"unit": "", "description": "field identifier"},
    "ra": {"unit": "deg", "description": "field centre, right ascension (ICRS)"},
    "dec": {"unit": "deg", "description": "field centre, declination (ICRS)"},
    "n_sources": {"unit": "", "description": "radio sources in the field"},
    "in_scope": {"unit": "", "description": "every source is one of paper 3's six classes"},
}


# ----------------------------------------------------------------------------- boxes and the sky
def field_wcs(ra: float, dec: float) -> WCS:
    return simulate.make_wcs(ra, dec, FIELD_PIXELS, FIELD_SCALE_ARCSEC)


def source_box(noise_free: np.ndarray, pixel_scale_arcsec: float = FIELD_SCALE_ARCSEC) -> tuple[np.ndarray, float]:
    """Paper 3's box of one source: a square centred on its extent (>= 5 % of peak), side = its LAS."""
    las = float(simulate.largest_angular_size(noise_free[None], pixel_scale_arcsec=pixel_scale_arcsec)[0])
    rows, cols = np.nonzero(noise_free >= simulate.LAS_LEVEL * noise_free.max())
    cx, cy = (cols.min() + cols.max()) / 2, (rows.min() + rows.max()) / 2
    half = max(las / pixel_scale_arcsec, 1.0) / 2
    return np.array([cx - half, cy - half, cx + half, cy + half]), las


# ----------------------------------------------------------------------------- rendering
def _resample(stamps: np.ndarray) -> np.ndarray:
    """FIRST stamps [m, 150, 150] at 1.8″ -> the central field [m, 132, 132] at 1.375″ (bilinear)."""
    ratio = FIELD_SCALE_ARCSEC / simulate.PIXEL_SCALE_ARCSEC
    grid = (np.arange(FIELD_PIXELS) - (FIELD_PIXELS - 1) / 2) * ratio + (simulate.PIXELS - 1) / 2
    rows, cols = np.meshgrid(grid, grid, indexing="ij")
    return np.stack([ndimage.map_coordinates(s, [rows, cols], order=1) for s in stamps]).astype(np.float32)


def _place(rng: np.random.Generator, sizes_px: np.ndarray) -> np.ndarray | None:
    """Box centres (FIRST pixels from the field centre) for boxes of these sides, apart and inside."""
    field = FIELD_PIXELS * FIELD_SCALE_ARCSEC / simulate.PIXEL_SCALE_ARCSEC
    offsets = []
    for side in sizes_px:
        room = (field - side) / 2 - 2
        for _ in range(50):
            candidate = rng.uniform(-room, room, 2)
            if all(np.max(np.abs(candidate - o)) > (side + s) / 2 + 2 for o, s in zip(offsets, sizes_px)):
                offsets.append(candidate)
                break
        else:
            return None
    return np.array(offsets)


def simulate_fields(n: int = 500, seed: int = 0, *, progress: bool = True) -> "Fields":
    """``n`` fields: radio float32 [n, 132, 132] (Jy/beam), W1 (DN), their catalogue and their sources."""
    if n < 1:
        raise InputError(f"the number of simulated fields must be at least 1, got {n}")
    if seed < 0:
        raise InputError(f"the simulation seed must be zero or positive, got {seed}")
    rng = np.random.default_rng(seed)
    counts = rng.choice(list(SOURCES_PER_FIELD), size=n, p=list(SOURCES_PER_FIELD.values()))
    params, components, unit = _source_pool(rng, int(counts.sum()))

    images = np.empty((n, FIELD_PIXELS, FIELD_PIXELS), np.float32)
    w1 = np.empty_like(images)
    ratio = FIELD_SCALE_ARCSEC / simulate.PIXEL_SCALE_ARCSEC
    fields, sources, next_source = [], [], 0
    for start in tqdm(range(0, n, CHUNK), desc="simulating radio fields", unit="batch", disable=not progress):
        stop = min(start + CHUNK, n)
        noise = simulate.beam_noise(stop - start, np.random.default_rng([seed, start // CHUNK]))
        for f in range(start, stop):
            picks = np.arange(next_source, next_source + counts[f])
            next_source += counts[f]
            centres = _place(rng, unit["side_px"][picks])
            if centres is None:                                 # no room for all: keep the first source
                picks, centres = picks[:1], np.zeros((1, 2))
            offsets = centres - unit["centre_px"][picks]        # move each box centre, not each core
            shifted = components[picks].copy()
            shifted[..., 0] += offsets[:, :1]
            shifted[..., 1] += offsets[:, 1:]
            alone = simulate.render_model(shifted, beam=True) * unit["scale"][picks, None, None]
            resampled = _resample(np.concatenate([alone, alone.sum(0, keepdims=True) + noise[f - start][None]]))
            images[f] = resampled[-1]
            ra, dec = params.loc[picks[0], ["ra", "dec"]]
            rows = _label_sources(resampled[-1], resampled[:-1], field_wcs(ra, dec))
            cores = offsets / ratio + (FIELD_PIXELS - 1) / 2       # each core sat at its stamp's centre
            w1[f], host_mags = infrared.render_w1(cores, params.loc[picks, "z"].to_numpy(), [seed, 31, f])
            field_id = f"FIELD{seed:03d}-{f:06d}"
            for k, (row, p, core, mag) in enumerate(zip(rows, picks, cores, host_mags)):
                row.update(field=field_id, source=f"{field_id}-{k}", morphology=params.loc[p, "morphology"],
                           core_x=round(float(core[0]), 3), core_y=round(float(core[1]), 3),
                           w1_host_mag=round(float(mag), 3))
                sources.append(row)
            fields.append({"id": field_id, "ra": round(float(ra), 6), "dec": round(float(dec), 6),
                           "n_sources": len(rows), "in_scope": all(r["det_class"] != OUT_OF_SCOPE for r in rows)})
    table = pd.DataFrame(sources)[list(SOURCE_COLUMNS)]
    return Fields(images, pd.DataFrame(fields), table, w1)


def _source_pool(rng, m: int):
    """``m`` simulated sources that fit a field, with the flux scale and box side of each."""
    limit = MAX_EXTENT_FRACTION * FIELD_PIXELS * FIELD_SCALE_ARCSEC
    kept_params, kept_components, scales, sides, centres = [], [], [], [], []
    while sum(len(p) for p in kept_params) < m:
        params, components = simulate.draw_sources(max(2 * m, 16), rng)
        unit = simulate.render_model(components, beam=True)
        las = simulate.largest_angular_size(unit)
        fits = np.flatnonzero(las <= limit)
        kept_params.append(params.iloc[fits])
        kept_components.append(components[fits])
        scales.append(params["target_snr"].to_numpy()[fits] * simulate.NOISE_JY_PER_BEAM / unit[fits].max(axis=(1, 2)))
        sides.append(np.maximum(las[fits], simulate.BEAM_FWHM_ARCSEC) / simulate.PIXEL_SCALE_ARCSEC)
        boxes = [source_box(unit[i], simulate.PIXEL_SCALE_ARCSEC)[0] for i in fits]
        centres.append(np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in boxes]).reshape(-1, 2)
                       - (simulate.PIXELS - 1) / 2)
    width = max(c.shape[1] for c in kept_components)
    components = np.concatenate([np.pad(c, ((0, 0), (0, width - c.shape[1]), (0, 0))) for c in kept_components])
    params = pd.concat(kept_params, ignore_index=True)
    unit = {"scale": np.concatenate(scales)[:m], "side_px": np.concatenate(sides)[:m],
            "centre_px": np.concatenate(centres)[:m]}
    return params.iloc[:m], components[:m], unit


def _label_sources(field: np.ndarray, alone: np.ndarray, wcs: WCS) -> list[dict]:
    """Class, box and sky position of each source in one field (``alone``: its noise-free images)."""
    islands = find_islands(field)
    owner = [int(np.argmax([a[island.mask].sum() for a in alone])) for island in islands]
    sigma = simulate.NOISE_JY_PER_BEAM
    rows = []
    for s, image in enumerate(alone):
        mine = [island for island, o in zip(islands, owner) if o == s]
        components, peaks = len(mine), sum(len(island.peaks) for island in mine)
        box, las = source_box(image)
        centre, _ = box_to_sky(box, wcs)
        rows.append({"det_class": morphology_class(components, peaks) if components else OUT_OF_SCOPE,
                     "components": components, "peaks": peaks, "las_arcsec": round(las, 2),
                     **dict(zip(("x0", "y0", "x1", "y1"), np.round(box, 3))),
                     "ra": round(float(centre.ra.deg), 6), "dec": round(float(centre.dec.deg), 6),
                     "peak_snr": round(float(image.max() / sigma), 2)})
    return rows


# ----------------------------------------------------------------------------- catalogue directory
def _provenance(n: int, seed: int, mix: str) -> dict:
    return {"generator": "training.radio_fields", "version": FIELD_VERSION, "n": int(n), "seed": int(seed), "mix": mix}


def fields_header():
    header = simulate.fits_header(FIELD_PIXELS, FIELD_SCALE_ARCSEC)
    header["TELESCOP"] = ("SIMULATED", "FIRST-like 3' field resampled to 1.375\"/px (training.radio_fields)")
    return header


def paper_mix(pool: "Fields", n: int, seed: int) -> "Fields":
    """``n`` in-scope fields of ``pool`` whose sources' classes follow paper 3's training mix as closely as the
    pool allows: the rarest class's fields are taken first, each class up to its share, never overfilling
    another's; what is left is filled at random."""
    scope = pool.in_scope()
    classes = scope.sources.groupby("field")["det_class"].apply(list).reindex(scope.catalog["id"]).tolist()
    expected = n * len(scope.sources) / max(len(scope.catalog), 1)
    quota = {c: w / sum(PAPER_TRAIN_MIX.values()) * expected for c, w in PAPER_TRAIN_MIX.items()}
    order = np.random.default_rng([seed, 53]).permutation(len(classes))
    counts, keep, kept = dict.fromkeys(quota, 0), np.zeros(len(classes), bool), 0
    in_pool = scope.sources["det_class"].value_counts()
    for c in sorted(quota, key=lambda c: in_pool.get(c, 0)):
        for i in order:
            if counts[c] >= quota[c] or kept >= n:
                break
            if not keep[i] and c in classes[i] and all(counts[d] < quota[d] for d in classes[i]):
                keep[i], kept = True, kept + 1
                for d in classes[i]:
                    counts[d] += 1
    keep[[i for i in order if not keep[i]][:n - kept]] = True
    return scope.subset(keep)


def simulate_fields_to_directory(out_dir, n: int = 500, seed: int = 0, mix: str = "simulated", *,
                                 progress: bool = True) -> Path:
    """Simulate fields into a FITS catalogue directory; a complete one with the same n, seed and mix is kept.

    ``mix="paper"``: ``n`` fields drawn by :func:`paper_mix` from ``POOL_FACTOR * n`` simulated ones.
    """
    if mix not in MIXES:
        raise InputError(f"the class mix must be one of {', '.join(MIXES)}, got {mix!r}")
    out_dir = Path(out_dir)
    wanted = _provenance(n, seed, mix)
    try:
        if json.loads((out_dir / "provenance.json").read_text()) == wanted:
            return out_dir
    except (OSError, ValueError):
        pass
    check_output_folder(out_dir, "simulated field catalogue", lambda p: (p / "provenance.json").exists(), overwrite=True)
    fields = (simulate_fields(n, seed, progress=progress) if mix == "simulated"
              else paper_mix(simulate_fields(POOL_FACTOR * n, seed, progress=progress), n, seed))
    return simulate.write_fits_catalogue(out_dir, fields.images, fields.catalog,
                                         columns={**FIELD_COLUMNS, **SOURCE_COLUMNS}, header=fields_header(),
                                         extensions={"W1": (fields.infrared, infrared.w1_header())},
                                         provenance=wanted, tables={"sources.csv": fields.sources}, progress=progress)


def read_sources(directory) -> pd.DataFrame:
    """``sources.csv`` of a field catalogue directory."""
    path = Path(directory) / "sources.csv"
    if not path.is_file():
        raise InputError(f"{directory} has no sources.csv: it is not a field catalogue (training.radio_fields)")
    return pd.read_csv(path)


@dataclass
class Fields:
    """Radio fields [N, H, W], their catalogue (one row each), their sources (``sources.csv``) and, when
    the fields have one, the W1 image of each [N, H, W] on the same grid."""
    images: np.ndarray
    catalog: pd.DataFrame
    sources: pd.DataFrame
    infrared: np.ndarray | None = None

    def in_scope(self) -> "Fields":
        """The fields whose every source is one of the six classes (paper 3 kept only those)."""
        return self.subset(self.catalog["in_scope"].astype(bool).to_numpy())

    def subset(self, keep: np.ndarray) -> "Fields":
        """The fields where ``keep`` (a boolean mask) is true, in their order."""
        catalog = self.catalog[keep].reset_index(drop=True)
        return Fields(self.images[keep], catalog, self.sources[self.sources["field"].isin(catalog["id"])],
                      None if self.infrared is None else self.infrared[keep])

    def boxes(self, index: int) -> pd.DataFrame:
        return self.sources[self.sources["field"] == self.catalog["id"].iloc[index]]


def open_fields(spec: str, *, progress: bool = True) -> Fields:
    """``sim:fields?n=500&seed=0[&mix=paper]`` (simulated once into the cache) or a field catalogue directory."""
    if spec.startswith("sim:"):
        sim = parse_sim_spec(spec, FIELD_SIMULATIONS)
        mixed = "" if sim["mix"] == "simulated" else f"-mix{sim['mix']}"
        folder = simulate_fields_to_directory(cache_dir() / "fields" / f"n{sim['n']}-seed{sim['seed']}{mixed}",
                                              sim["n"], sim["seed"], sim["mix"], progress=progress)
    else:
        folder = Path(spec)
        if not (folder / "catalog.csv").is_file():
            raise InputError(f"{spec} is neither sim:fields?n=500&seed=0 nor a field catalogue directory "
                             "(catalog.csv + sources.csv, from python -m training.radio_fields)")
    sources = read_sources(folder)
    catalog = pd.read_csv(folder / "catalog.csv")
    radio, w1 = [], []
    for file in tqdm(catalog["file"], desc="reading fields", unit="field", disable=not progress):
        with fits.open(folder / file) as hdus:
            radio.append(hdus[0].data.astype(np.float32))
            if "W1" in hdus:
                w1.append(hdus["W1"].data.astype(np.float32))
    return Fields(np.stack(radio), catalog, sources, np.stack(w1) if len(w1) == len(radio) else None)


@cli_entry
def main(argv=None) -> int:
    from training import cli

    args = cli.parser("radio_fields").parse_args(argv)
    out = simulate_fields_to_directory(args.out, args.n, args.seed, args.mix)
    sources = read_sources(out)
    print(sources["det_class"].value_counts().to_string())
    print(f"wrote {args.n} fields, {len(sources)} sources: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
