"""A representation monitor for pre-training: is the encoder learning, or collapsing?

Paper 1 watches linear evaluation while it pre-trains. Every ``monitor.every`` epochs (and before the
first, when the encoder is still its random initialisation) the loop asks :meth:`Monitor.measure`
for, on a fixed set of monitored cutouts:

- ``linear`` and ``knn``: cross-validated scores (accuracy, or R^2 for a numeric label) of the
  project's own linear-probe and k-NN heads on the frozen, L2-normalised features, when the recipe
  names a label column. The evaluation's test split (``test_fraction`` / ``split_seed``, as
  ``training.evaluate`` draws it) is left out, so choosing the best checkpoint never sees it;
- ``effective_rank`` of the features (1 = collapsed onto a line);
- ``projection_spread``: the per-dimension std of the normalised projections times sqrt(d)
  (BYOL's collapse signal: 0 when every image maps to one point).

The monitored sources are the training data's, or those of ``monitor.data`` (e.g. real images while
training on simulations). The epoch-0 row is the random-init encoder of the same architecture and seed; :meth:`Monitor.pixels`
scores the pixel baseline once. Both are measured in the same run as the training they judge.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.core.errors import InputError
from explorer.core.heads import LabelSet, filter_rows, fit_head, label_set, score, split_labels, stratified_order
from training.options import fraction, limited
from training.quality import effective_rank, encoder_features, pixel_features, projection_spread


@dataclass
class MonitorConfig:
    label_column: str = ""          # catalogue column of labels; "" monitors collapse only
    data: str = ""                  # data spec of the monitored sources; "" = the training data
    filter: str = ""                # pandas expression choosing the labelled sources
    test_fraction: float = fraction(0.0)   # the evaluation's held-out test part: never monitored
    split_seed: int = limited(0, 0)
    every: int = limited(5, 1)       # epochs between measurements (the last epoch is always measured)
    folds: int = limited(5, 2, 20)
    select: str = limited("linear", choices=("linear", "knn"))  # the score that picks best.pt
    max_images: int = limited(2000, 10)


SCORES = ("linear", "knn")


class Monitor:
    def __init__(self, config: MonitorConfig, data, params, device: torch.device | str = "cpu"):
        self.config, self.params, self.device = config, params, torch.device(device)
        catalog = data.catalog
        self.labels = None
        if config.label_column:
            if config.label_column not in catalog.columns:
                raise InputError(f"monitor.label_column {config.label_column!r} is not a catalogue column; the data "
                                 f"has {', '.join(map(str, catalog.columns))}")
            labels = label_set(catalog, config.label_column,
                               candidates=filter_rows(catalog, config.filter or None, "monitor.filter"))
            pool, _ = split_labels(labels, config.test_fraction, config.split_seed)
            pool = pool[stratified_order(labels.strata()[pool], config.split_seed)[:config.max_images]]
            if len(pool) < 2 * config.folds:
                raise InputError(f"monitor: {len(pool)} labelled sources are too few for {config.folds} folds")
            rows = labels.rows[pool]
            self.labels = LabelSet(labels.task, np.arange(len(rows)), labels.y[pool])
            # fold f holds every folds-th source of a stratified ranking: each fold keeps the class mix
            self.fold = np.empty(len(rows), dtype=np.int64)
            self.fold[stratified_order(self.labels.strata(), config.split_seed)] = np.arange(len(rows)) % config.folds
        else:
            rows = np.sort(np.random.default_rng(config.split_seed).permutation(len(catalog))[:config.max_images])
        self.rows = rows
        self.images = data.read(self.rows)

    @property
    def metric(self) -> str:
        return "" if self.labels is None else ("accuracy" if self.labels.task.kind == "classification" else "r2")

    def probe(self, features: np.ndarray) -> dict:
        """Cross-validated linear-probe and k-NN scores of frozen features (mean over the folds)."""
        if self.labels is None:
            return {}
        out = {}
        for kind in SCORES:
            values = []
            for f in range(self.config.folds):
                train, test = np.flatnonzero(self.fold != f), np.flatnonzero(self.fold == f)
                head = fit_head(kind, features, self.labels, train, device="cpu", seed=f)
                values.append(score(self.labels, test, head.predict(features[test]))[self.metric])
            out[kind] = float(np.mean(values))
        return out

    def _own_rng(self):
        """Heads seed torch; the training run's random state must not notice (a resumed run draws the same)."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def _own_rng(self):
        """Heads seed torch; the training run's random state must not notice (a resumed run draws the same)."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def measure(self, model) -> dict:
        """The monitor's row for a method's current encoder (and projector, when it has one)."""
        was_training = model.training
        model.eval()
        try:
            with self._own_rng():
                features = encoder_features(model.encoder, self.images, self.params, device=self.device)
                row = {**self.probe(features), "effective_rank": effective_rank(features)}
                projections = model.projections(self.images, self.params, self.device)
                if projections is not None:
                    row["projection_spread"] = projection_spread(projections)
        finally:
            model.train(was_training)
        return row

    def pixels(self) -> dict:
        """The pixel baseline's scores on the same sources and folds."""
        with self._own_rng():
            features = pixel_features(self.images, self.params)
            return {**self.probe(features), "effective_rank": effective_rank(features)}

    def selected(self, row: dict) -> float | None:
        return row.get(self.config.select)


def describe(row: dict, baselines: dict) -> str:
    """One line for the progress output: the scores beside random init and pixels."""
    parts = []
    for kind in SCORES:
        if kind in row:
            reference = "/".join(f"{baselines[b][kind]:.3f}" for b in ("random init", "pixels") if kind in baselines.get(b, {}))
            parts.append(f"{kind} {row[kind]:.3f}" + (f" (random init/pixels {reference})" if reference else ""))
    parts.append(f"rank {row['effective_rank']:.1f}")
    if "projection_spread" in row:
        parts.append(f"spread {row['projection_spread']:.2f}")
    return ", ".join(parts)
