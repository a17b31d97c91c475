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


def baseline_organisation(cutouts, params, architecture: str = "resnet18", seed: int = 0) -> dict:
    """The same scores for the two baselines every learned representation stands beside, on the same sources:

    - ``random init``: an untrained encoder of the same architecture and input, its own PCA -> UMAP map;
    - ``pixels``: the preprocessed encoder-input pixels themselves (L2-normalised), their own PCA -> UMAP map.

    ``cutouts`` is a :class:`training.dataset.Cutouts`; the maps use ``training.embed``'s defaults.
    """
    import torch

    from explorer.core.encoder import build_encoder, embed
    from explorer.core.preprocess import centre_crop, encoder_input
    from training.embed import MapConfig, fit_map

    pre = centre_crop(cutouts.images, params.crop_pixels)
    torch.manual_seed(seed)
    encoder, _ = build_encoder(architecture, cutouts.images.shape[1])
    features = {"random init": embed(encoder, pre, params, progress=False),
                "pixels": np.concatenate([encoder_input(pre[i:i + 1024], params).flatten(1).numpy()
                                          for i in range(0, len(pre), 1024)])}
    maps = MapConfig()
    out = {}
    for name, x in features.items():
        x = (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        map_xy, _, _ = fit_map(x, maps.pca_components, maps.umap_neighbors, maps.umap_min_dist, seed)
        out[name] = map_organisation(x, map_xy, cutouts.catalog, seed=seed)
    return out
