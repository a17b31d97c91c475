"""Is the map organised by physics? k-NN scores on held-out sources, next to chance.

- size: k-NN regression R^2 of log10 angular size from the 2-D map;
- class: k-NN accuracy of the morphology class from the full embeddings.
Chance is the same score after shuffling the labels of the fitting part.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

SIZE_COLUMNS = ("las_arcsec", "size")
CLASS_COLUMNS = ("morphology", "fr_class")
MAX_MAJORITY = 0.8  # a class column where one class dominates says little about the map (MiraBest's morphology)


def _first(catalog: pd.DataFrame, names) -> str | None:
    return next((c for c in names if c in catalog.columns), None)


def _class_column(catalog: pd.DataFrame) -> str | None:
    for column in CLASS_COLUMNS:
        if column in catalog.columns:
            shares = catalog[column].astype("string").value_counts(normalize=True)
            if len(shares) > 1 and shares.iloc[0] <= MAX_MAJORITY:
                return column
    return None


def knn_scores(features: np.ndarray, target: np.ndarray, *, classify: bool, seed: int = 0, k: int = 10,
               held_out: float = 0.2) -> dict:
    """Held-out k-NN score (accuracy or R^2) and the same with shuffled labels."""
    fit_idx, test_idx = train_test_split(np.arange(len(target)), test_size=held_out, random_state=seed,
                                         stratify=target if classify else None)
    model = (KNeighborsClassifier if classify else KNeighborsRegressor)(n_neighbors=min(k, len(fit_idx)))
    metric = accuracy_score if classify else r2_score
    shuffled = np.random.default_rng(seed).permutation(target[fit_idx])
    score = metric(target[test_idx], model.fit(features[fit_idx], target[fit_idx]).predict(features[test_idx]))
    chance = metric(target[test_idx], model.fit(features[fit_idx], shuffled).predict(features[test_idx]))
    return {"score": float(score), "chance": float(chance), "held_out": int(len(test_idx))}


def map_organisation(embeddings: np.ndarray, map_xy: np.ndarray, catalog: pd.DataFrame, seed: int = 0) -> dict:
    out = {}
    size_col = _first(catalog, SIZE_COLUMNS)
    if size_col is not None:
        size = pd.to_numeric(catalog[size_col], errors="coerce").to_numpy()
        ok = np.isfinite(size) & (size > 0)
        if ok.sum() >= 20:
            out["log_size_r2_from_map"] = {"column": size_col, **knn_scores(np.asarray(map_xy)[ok], np.log10(size[ok]),
                                                                            classify=False, seed=seed)}
    class_col = _class_column(catalog)
    if class_col is not None:
        labels = catalog[class_col].astype("string")
        ok = labels.notna().to_numpy()
        counts = labels[ok].value_counts()
        if ok.sum() >= 20 and len(counts) > 1 and counts.min() >= 2:
            out["class_accuracy_from_embeddings"] = {
                "column": class_col,
                **knn_scores(np.asarray(embeddings)[ok], labels[ok].to_numpy(dtype=str), classify=True, seed=seed)}
    return out


def encoder_features(encoder, preprocessed: np.ndarray, params, *, device="cpu") -> np.ndarray:
    """L2-normalised [N, D] representations of preprocessed cutouts (the bundle's own embedding path)."""
    from explorer.core.encoder import embed

    return embed(encoder, preprocessed, params, device=device, progress=False)


def pixel_features(preprocessed: np.ndarray, params) -> np.ndarray:
    """The pixel baseline: the encoder's input pixels themselves, flattened and L2-normalised."""
    from explorer.core.preprocess import encoder_input

    x = np.concatenate([encoder_input(preprocessed[i:i + 1024], params).flatten(1).numpy()
                        for i in range(0, len(preprocessed), 1024)])
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def random_init_encoder(architecture: str, in_channels: int, seed: int):
    """An untrained encoder of the given architecture, the same for the same seed."""
    import torch

    from explorer.core.encoder import build_encoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder, _ = build_encoder(architecture, in_channels)
    return encoder.eval()


def effective_rank(features: np.ndarray) -> float:
    """Roy & Vetterli's effective rank: exp of the entropy of the normalised singular values of the
    centred features. 1 for features on a line (collapse), D for isotropic D-dimensional features."""
    x = np.asarray(features, dtype=np.float64)
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    if s.sum() <= 1e-12 * max(len(x), 1):
        return 1.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def projection_spread(projections: np.ndarray) -> float:
    """BYOL/SimSiam's collapse signal: the mean per-dimension std of the L2-normalised projections,
    times sqrt(d) so that 1 means spread over the sphere and 0 means every image maps to one point."""
    z = np.asarray(projections, dtype=np.float64)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return float(z.std(0).mean() * np.sqrt(z.shape[1]))


def baseline_organisation(images: np.ndarray, catalog: pd.DataFrame, params, architecture: str = "resnet18",
                          seed: int = 0) -> dict:
    """The same scores for the two baselines every learned representation stands beside, on the same sources:

    - ``random init``: an untrained encoder of the same architecture and input, its own PCA -> UMAP map;
    - ``pixels``: the preprocessed encoder-input pixels themselves (L2-normalised), their own PCA -> UMAP map.

    ``images`` are preprocessed cutouts row-aligned with ``catalog``; the maps use ``training.embed``'s defaults.
    """
    encoder = random_init_encoder(architecture, images.shape[1], seed)
    features = {"random init": encoder_features(encoder, images, params), "pixels": pixel_features(images, params)}
    return {name: organisation(x, catalog, seed) for name, x in features.items()}


def organisation(features: np.ndarray, catalog: pd.DataFrame, seed: int = 0) -> dict:
    """:func:`map_organisation` of features with their own PCA -> UMAP map (``training.embed``'s defaults)."""
    from training.embed import MapConfig, fit_map

    maps = MapConfig()
    map_xy, _, _ = fit_map(features, maps.pca_components, maps.umap_neighbors, maps.umap_min_dist, seed)
    return map_organisation(features, map_xy, catalog, seed=seed)


BASELINE_SOURCES = 1000  # sources the bundle's baseline comparison is scored on (three maps are fitted)


def compare_with_baselines(embeddings: np.ndarray, images: np.ndarray, catalog: pd.DataFrame, params,
                           architecture: str, seed: int = 0, *, sources: int = BASELINE_SOURCES,
                           checkpoint: dict | None = None) -> dict:
    """The bundle's ``quality["baselines"]``: each score of the learned embeddings beside a random-init encoder
    and the pixels, on the same random ``sources`` sources (each representation with its own map), plus the
    training monitor's last scores when the checkpoint has them. ``not_beaten`` names the scores where
    the learned encoder is no better than random init."""
    rows = np.sort(np.random.default_rng(seed).permutation(len(embeddings))[:sources])
    sample = catalog.iloc[rows].reset_index(drop=True)
    learned = organisation(np.asarray(embeddings[rows]), sample, seed)
    base = baseline_organisation(np.asarray(images[rows]), sample, params, architecture, seed)
    comparison = [{"score": name, "column": q["column"], "learned": q["score"],
                   "random init": base["random init"].get(name, {}).get("score"),
                   "pixels": base["pixels"].get(name, {}).get("score"), "chance": q["chance"], "sources": len(rows)}
                  for name, q in learned.items()]
    comparison += monitor_comparison(checkpoint or {})
    return {"comparison": comparison,
            "not_beaten": [c["score"] for c in comparison
                           if c["random init"] is not None and c["learned"] <= c["random init"]]}


def monitor_comparison(checkpoint: dict) -> list[dict]:
    """The representation monitor's last scores in a checkpoint, beside its random-init and pixel rows."""
    baselines = checkpoint.get("baselines") or {}
    measured = [r for r in checkpoint.get("history", []) if r.get("epoch", 0) > 0 and "linear" in r]
    if not measured or "linear" not in baselines.get("random init", {}):
        return []
    last, column = measured[-1], checkpoint["config"].get("monitor", {}).get("label_column", "")
    return [{"score": f"monitor_{kind}", "column": column, "learned": last[kind],
             "random init": baselines["random init"][kind], "pixels": baselines.get("pixels", {}).get(kind),
             "epoch": int(last["epoch"])} for kind in ("linear", "knn") if kind in last]


def baseline_report(baselines: dict) -> list[str]:
    """Lines for the CLI: each score beside random init and pixels, and a warning where pre-training loses."""
    lines = [f"{'representation quality':<40}{'learned':>9}{'random init':>13}{'pixels':>9}"]
    for c in baselines.get("comparison", []):
        cells = [c["learned"], c["random init"], c["pixels"]]
        name = f"{c['score']} ({c['column']})"
        lines.append(f"{name:<40}" + "".join(f"{'-' if v is None else f'{v:.3f}':>{w}}"
                                              for v, w in zip(cells, (9, 13, 9))))
    if baselines.get("not_beaten"):
        lines.append(f"WARNING: the pre-trained encoder is no better than a random-init encoder on "
                     f"{', '.join(baselines['not_beaten'])}: its pre-training has not learned these yet")
    return lines
