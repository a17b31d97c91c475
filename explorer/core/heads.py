"""Few-label heads on frozen embeddings: linear probe, MLP and k-NN, for classification and regression.

The one library behind the Fine-tune page, ``training.finetune`` and ``training.evaluate``:

- **tasks** — a label column becomes a :class:`LabelSet`: categorical -> classification,
  numeric -> regression (optionally of log10 of a positive quantity). Empty cells are unlabelled.
- **label budgets** — :func:`stratified_order` ranks the labelled sources so that every prefix is a
  stratified random subset (by class, or by quantile bin for regression); prefixes of one ranking
  are the nested subsets of paper 1's label-efficiency protocol.
- **heads** — linear probe with paper 1's recipe (SGD lr 0.1, momentum 0.9, batch 64, 100 epochs),
  a one-hidden-layer MLP (AdamW), and a cosine k-NN (FAISS). Classification losses carry class
  weights n / (K n_c) against imbalance; regression uses MSE or paper 4's MSE + alpha * std(|y - y_hat|)
  on the standardised target.
- **metrics** — accuracy, error, per-class precision/recall, confusion matrix; MAE, RMSE, R^2,
  bias and intrinsic scatter (see :func:`regression_metrics`).
- **storage** — heads go to ``<bundle>/heads/<name>/`` (``head.safetensors`` + ``head.json``, no
  pickles); predictions for every source go to the ``predictions/<name>.parquet`` sidecar, which
  :func:`explorer.core.bundle.load_bundle` appends to the catalogue as colour-by columns.

Training length: paper 1's 100 epochs at batch 64 are kept for up to ``SAMPLE_BUDGET / 100`` labels
(4,096, far beyond paper 1's 729). Larger label sets train for ``SAMPLE_BUDGET / n`` epochs (at least
one), so 100,000 labels train in seconds; the batch size stays at the paper's 64.
"""
from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer.core.atomic import atomic_directory, atomic_path, write_json
from explorer.core.bundle import PREDICTIONS_DIR, is_missing
from explorer.core.config import HEAD_KINDS, TASK_KINDS
from explorer.core.filters import is_numeric
from explorer.core.encoder import resolve_device
from explorer.core.errors import InputError

REGRESSION_LOSSES = ("mse", "mse+scatter")
HEADS_DIR = "heads"
HEAD_WEIGHTS, HEAD_META = "head.safetensors", "head.json"
SAMPLE_BUDGET = 409_600          # training samples seen at most: 100 epochs of 4,096 labels
EIGEN_SAMPLE = 16_384           # rows that estimate the top covariance eigenvalue of large label sets
REGRESSION_STRATA = 10           # quantile bins that stratify regression label subsets
RESERVED_NAMES = ("user_label",)  # the labels sidecar (explorer.core.labels)
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


@dataclass(frozen=True)
class Recipe:
    """Optimiser settings of a trainable head."""
    optimizer: str = "sgd"      # sgd (paper 1's linear probe) or adamw
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 100
    hidden: int = 0             # MLP hidden units; 0 is the linear probe
    dropout: float = 0.0
    bandwise: bool = False      # paper 4's Table S2 head on a band-wise embedding (BandwiseHead)


RECIPES = {
    "linear": Recipe(),  # paper 1 (SEEDS.md section 1)
    "mlp": Recipe(optimizer="adamw", lr=1e-3, momentum=0.0, weight_decay=1e-2, hidden=256, dropout=0.2),
    # paper 4 trains it with SGD (momentum 0.9, lr 5e-6 for richness) through the whole network; on frozen
    # features AdamW at 1e-3 converges within the sample budget
    "bandwise": Recipe(optimizer="adamw", lr=1e-3, momentum=0.0, weight_decay=1e-2, bandwise=True),
}
KNN_NEIGHBOURS = 10


class Cancelled(Exception):
    """Training stopped because the user asked (a cancel event was set)."""


# ----------------------------------------------------------------------------- tasks and labels
@dataclass(frozen=True)
class Task:
    column: str
    kind: str                       # classification or regression
    classes: tuple[str, ...] = ()   # classification: class names, index = code
    log: bool = False               # regression of log10(column)
    unit: str = ""                  # the column's unit

    @property
    def target(self) -> str:
        """The quantity a regression head predicts, e.g. ``log10(las_arcsec)``."""
        return f"log10({self.column})" if self.log else self.column

    @property
    def target_unit(self) -> str:
        if not self.unit:
            return ""
        return f"log10({self.unit})" if self.log else self.unit

    def to_dict(self) -> dict:
        return {**asdict(self), "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        return cls(d["column"], d["kind"], tuple(d.get("classes", ())), bool(d.get("log", False)), d.get("unit", ""))


@dataclass
class LabelSet:
    """The labelled sources of one column: bundle rows and their targets."""
    task: Task
    rows: np.ndarray        # int64 bundle rows that carry a label
    y: np.ndarray           # int64 class codes, or float64 targets (log10 applied when task.log)

    def __len__(self) -> int:
        return len(self.rows)

    def strata(self) -> np.ndarray:
        """Class codes, or quantile bins of the target, for stratified subsets."""
        if self.task.kind == "classification":
            return self.y
        bins = min(REGRESSION_STRATA, max(1, len(self.y) // 2))
        edges = np.quantile(self.y, np.linspace(0, 1, bins + 1)[1:-1])
        return np.searchsorted(edges, self.y, side="right")

    def subset(self, positions: np.ndarray) -> "LabelSet":
        return LabelSet(self.task, self.rows[positions], self.y[positions])


def filter_rows(catalog: pd.DataFrame, expression: str | None, where: str = "--filter") -> np.ndarray:
    """Boolean mask of the rows a pandas query expression keeps (all rows without one); ``where`` names the
    option in messages."""
    if not expression:
        return np.ones(len(catalog), dtype=bool)
    try:
        kept = catalog.eval(expression)
    except Exception as e:  # pandas raises many kinds for a bad expression; the user needs the one line
        raise InputError(f"{where} {expression!r} cannot be evaluated on the catalogue: {e}") from None
    if not (isinstance(kept, pd.Series) and pd.api.types.is_bool_dtype(kept)):
        raise InputError(f"{where} {expression!r} must give True/False per source, e.g. \"confidence == 'confident'\"")
    if not kept.any():
        raise InputError(f"{where} {expression!r} keeps no sources")
    return kept.to_numpy(dtype=bool)


def detect_task_kind(series: pd.Series) -> str:
    """Numeric columns are regression targets; anything else (text, categories, booleans) is classes."""
    return "regression" if is_numeric(series) else "classification"


def label_set(catalog: pd.DataFrame, column: str, *, kind: str = "auto", log: bool = False,
              candidates: np.ndarray | None = None, unit: str = "") -> LabelSet:
    """The labelled rows of ``column`` (restricted to the boolean mask ``candidates`` when given)."""
    if column not in catalog.columns:
        raise InputError(f"no column {column!r} in the catalogue; choose one of {', '.join(map(str, catalog.columns))}")
    series = catalog[column]
    kind = detect_task_kind(series) if kind == "auto" else kind
    if kind not in TASK_KINDS:
        raise InputError(f"unknown task {kind!r}; use auto, classification or regression")
    keep = ~is_missing(series)
    if candidates is not None:
        keep &= np.asarray(candidates, dtype=bool)
    rows = np.flatnonzero(keep).astype(np.int64)
    if kind == "classification":
        if log:
            raise InputError("the log option is for regression of a positive quantity, not for classes")
        text = series.iloc[rows].astype("string").str.strip().to_numpy(dtype=str)
        classes, codes = np.unique(text, return_inverse=True)
        if len(classes) < 2:
            found = f"only the class {str(classes[0])!r}" if len(classes) else "no labels at all"
            raise InputError(f"label column {column!r} has {found}; a classifier needs at least two classes")
        return LabelSet(Task(column, kind, tuple(str(c) for c in classes), unit=unit), rows, codes.astype(np.int64))
    values = pd.to_numeric(series.iloc[rows], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        examples = ", ".join(repr(v) for v in pd.unique(series.iloc[rows[bad]].astype(str))[:3])
        raise InputError(f"column {column!r} has {bad.sum()} non-numeric value(s) (e.g. {examples}); "
                         "a regression needs numbers — clean the column or treat it as classes")
    if log:
        if (values <= 0).any():
            raise InputError(f"log10 of {column!r} needs positive values, but {(values <= 0).sum()} are ≤ 0")
        values = np.log10(values)
    if len(values) < 2 or np.ptp(values) == 0:
        raise InputError(f"column {column!r} has {len(values)} label(s) with a single value; "
                         "a regression needs at least two different values")
    return LabelSet(Task(column, kind, log=log, unit=unit), rows, values)


def stratified_order(strata: np.ndarray, seed: int) -> np.ndarray:
    """A random ranking of positions whose every prefix is a stratified sample.

    Systematic sampling per stratum with a random start: the r-th member (random order) of a
    stratum of size m gets the key (r + u) / m, u ~ U(0, 1); sorting the keys interleaves the
    strata in proportion, so the first n positions hold each stratum's share of n (±1), and
    every stratum appears once n exceeds the number of strata. Prefixes are nested.
    """
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    keys = np.empty(len(strata))
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        keys[rng.permutation(members)] = (np.arange(len(members)) + rng.random()) / len(members)
    return np.argsort(keys + 1e-9 * rng.random(len(keys)), kind="stable")


def split_labels(labels: LabelSet, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pool, test) positions into ``labels``: a fixed stratified held-out part and the rest."""
    if not 0 <= test_fraction < 1:
        raise InputError(f"the held-out fraction must be in [0, 1), got {test_fraction}")
    order = stratified_order(labels.strata(), seed)
    n_test = int(round(test_fraction * len(order)))
    if test_fraction > 0 and (n_test < 1 or n_test >= len(order)):
        raise InputError(f"{len(order)} labels cannot be split into training and a {test_fraction:.0%} held-out part")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def stratified_folds(labels: LabelSet, folds: int, seed: int = 0) -> list[np.ndarray]:
    """``folds`` disjoint stratified parts of ``labels`` (sorted positions) that together hold every label."""
    if not 2 <= folds <= len(labels):
        raise InputError(f"{len(labels)} labels cannot be split into {folds} folds; use 2 to {len(labels)} folds")
    # each stratum shuffled, then all of them dealt round the folds in turn: every fold gets each stratum's
    # share (±1) and the folds' sizes differ by one at most
    strata, rng = labels.strata(), np.random.default_rng(seed)
    dealt = np.concatenate([rng.permutation(np.flatnonzero(strata == value)) for value in np.unique(strata)])
    fold = np.empty(len(dealt), np.int64)
    fold[dealt] = (np.arange(len(dealt)) + rng.integers(folds)) % folds
    return [np.flatnonzero(fold == f) for f in range(folds)]


def budget_subset(labels: LabelSet, pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A stratified random subset of ``n`` positions from ``pool`` (nested in n for a fixed seed)."""
    if n > len(pool):
        raise InputError(f"{n} labels were requested but only {len(pool)} labelled sources are available "
                         f"for training in {labels.task.column!r}")
    if n < 2:
        raise InputError(f"a head needs at least 2 training labels, got {n}")
    return pool[stratified_order(labels.strata()[pool], seed)[:n]]


# ----------------------------------------------------------------------------- heads
@dataclass
class Prediction:
    """A head's output for some sources: class probabilities, or target values."""
    task: Task
    proba: np.ndarray | None = None     # classification: float32 [N, K]
    value: np.ndarray | None = None     # regression: float64 [N], in target units (log10 when task.log)

    @property
    def codes(self) -> np.ndarray:
        return self.proba.argmax(1)

    @property
    def confidence(self) -> np.ndarray:
        return self.proba.max(1)


@contextmanager
def _cpu_threads(device: torch.device, threads: int = 1):
    """Small-batch steps run fastest single-threaded on CPU (thread hand-offs cost more than the maths)."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def feature_scale(x: torch.Tensor) -> torch.Tensor:
    """Per-feature divisor: the standard deviation times sqrt of the top eigenvalue of the z-scored covariance.

    Embedding dimensions are strongly correlated, so z-scored features can have a covariance
    eigenvalue in the hundreds, where SGD at paper 1's lr 0.1 and momentum 0.9 diverges (MSE) or
    oscillates (cross-entropy). Scaling the top eigenvalue to 1 keeps that recipe stable on any bundle.
    """
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    sample = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:EIGEN_SAMPLE]]
    z = ((sample - x.mean(0)) / std).double()
    gram = z @ z.T if len(z) < z.shape[1] else z.T @ z   # same non-zero eigenvalues; the smaller matrix
    with _cpu_threads(torch.device("cpu")):              # threaded LAPACK crawls on a busy 2-core machine
        top = torch.linalg.eigvalsh(gram / max(len(z), 1))[-1].clamp_min(1e-12)
    return std * top.sqrt().float()


class BandwiseHead(nn.Module):
    """Paper 4's richness head (Table S2) on the [D x C] map of a band-wise embedding ([B, C * D], band-major):
    the D features are channels over the C bands, then a 1x1 convolution (``width``), a 3x3 convolution (16) and a
    3x3 convolution (64), each with BatchNorm and ReLU, then FC 1024 -> 512 -> the outputs. The paper does not
    give the 1x1 convolution's width; 64 here."""

    def __init__(self, band_dim: int, bands: int, outputs: int, width: int = 64):
        super().__init__()
        self.bands, self.band_dim = bands, band_dim

        def block(inputs, channels, kernel):
            return [nn.Conv2d(inputs, channels, kernel, padding=kernel // 2), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]

        self.convs = nn.Sequential(*block(band_dim, width, 1), *block(width, 16, 3), *block(16, 64, 3))
        self.fc = nn.Sequential(nn.Linear(64 * bands, 1024), nn.ReLU(inplace=True), nn.Linear(1024, 512),
                                nn.ReLU(inplace=True), nn.Linear(512, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = x.reshape(len(x), self.bands, self.band_dim).transpose(1, 2)[..., None]   # [B, D, C, 1]
        return self.fc(torch.flatten(self.convs(bands), 1))


class HeadNet(nn.Module):
    """Scale the features (:func:`feature_scale`), then a linear layer, a one-hidden-layer MLP, or paper 4's
    :class:`BandwiseHead` (``bands`` > 0)."""

    def __init__(self, dim: int, outputs: int, hidden: int = 0, dropout: float = 0.0, bands: int = 0):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        self.register_buffer("target_mean", torch.zeros(1))   # regression targets are standardised too
        self.register_buffer("target_std", torch.ones(1))
        if bands:
            self.body = BandwiseHead(dim // bands, bands, outputs)
        else:
            self.body = (nn.Linear(dim, outputs) if hidden == 0 else
                         nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, outputs)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.feature_mean) / self.feature_std)


def outputs_for(task: Task) -> int:
    return len(task.classes) if task.kind == "classification" else 1


def class_weights(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """n / (K n_c) per class ('balanced'); classes absent from the training labels weigh 0."""
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(codes) / (n_classes * np.maximum(counts, 1)), 0.0)


def regression_loss(pred: torch.Tensor, target: torch.Tensor, loss: str = "mse", alpha: float = 1.0) -> torch.Tensor:
    """MSE, or paper 4's MSE + alpha * std(|y - y_hat|) (population std over the batch)."""
    residual = target - pred
    value = residual.pow(2).mean()
    if loss == "mse+scatter":
        value = value + alpha * residual.abs().std(unbiased=False)
    elif loss != "mse":
        raise InputError(f"unknown regression loss {loss!r}; use one of {', '.join(REGRESSION_LOSSES)}")
    return value


def loss_function(task: Task, train_codes: np.ndarray | None, *, weighted: bool, loss: str, alpha: float,
                  device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss of a task: class-weighted cross-entropy, or a regression loss on standardised targets."""
    if task.kind == "classification":
        weight = None
        if weighted:
            weight = torch.tensor(class_weights(train_codes, len(task.classes)), dtype=torch.float32, device=device)
        return lambda logits, y: nn.functional.cross_entropy(logits, y, weight=weight)
    return lambda out, y: regression_loss(out[:, 0], y, loss, alpha)


def budgeted_epochs(n: int, epochs: int) -> int:
    return max(1, min(epochs, math.ceil(SAMPLE_BUDGET / max(n, 1))))


def train_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, optimizer: torch.optim.Optimizer, *,
               epochs: int, batch_size: int, seed: int, on_epoch: Callable[[int, int], None] | None = None,
               cancel: threading.Event | None = None) -> list[float]:
    """Minibatch training on tensors already on the device; returns the mean loss of every epoch."""
    n = len(x)
    epochs = budgeted_epochs(n, epochs)
    generator = torch.Generator().manual_seed(seed)
    history = []
    model.train()
    with _cpu_threads(x.device):
        for epoch in range(epochs):
            order = torch.randperm(n, generator=generator).to(x.device)
            total = torch.zeros((), device=x.device)
            for start in range(0, n, batch_size):
                batch = order[start:start + batch_size]
                loss = loss_fn(model(x[batch]), y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(batch)
            history.append(float(total) / n)
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            if on_epoch is not None:
                on_epoch(epoch + 1, epochs)
    model.eval()
    return history


def make_optimizer(recipe: Recipe, params) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


@dataclass
class FrozenHead:
    """A trained head on frozen embeddings: a :class:`HeadNet` (linear, mlp) or a k-NN memory (knn)."""
    kind: str
    task: Task
    dim: int
    config: dict = field(default_factory=dict)
    net: HeadNet | None = None
    memory: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None   # knn: vectors, targets, class weights

    def predict(self, features: np.ndarray, *, batch_size: int = 65_536) -> Prediction:
        features = np.asarray(features, dtype=np.float32)
        if self.kind == "knn":
            return self._predict_knn(features)
        device = next(self.net.parameters()).device
        outs = []
        with torch.no_grad():
            for start in range(0, len(features), batch_size):
                chunk = torch.tensor(features[start:start + batch_size])  # a copy: bundle embeddings are read-only
                outs.append(self.net(chunk.to(device)).float().cpu())
        out = torch.cat(outs) if outs else torch.zeros((0, outputs_for(self.task)))
        if self.task.kind == "classification":
            return Prediction(self.task, proba=torch.softmax(out, 1).numpy())
        value = out[:, 0].double() * self.net.target_std.double().cpu() + self.net.target_mean.double().cpu()
        return Prediction(self.task, value=value.numpy())

    def _predict_knn(self, features: np.ndarray) -> Prediction:
        vectors, targets, weights = self.memory
        k = min(self.config["k"], len(vectors))
        _, found = knn_search(vectors, features, k)
        if self.task.kind == "regression":
            return Prediction(self.task, value=targets[found].mean(1))
        votes = np.zeros((len(features), len(self.task.classes)))
        codes = targets[found].astype(np.int64)
        np.add.at(votes, (np.arange(len(features))[:, None], codes), weights[codes])
        return Prediction(self.task, proba=(votes / votes.sum(1, keepdims=True)).astype(np.float32))

    def tensors(self) -> dict[str, torch.Tensor]:
        if self.kind == "knn":
            vectors, targets, weights = self.memory
            return {"vectors": torch.from_numpy(vectors), "targets": torch.from_numpy(np.asarray(targets, np.float64)),
                    "class_weights": torch.from_numpy(np.asarray(weights, np.float64))}
        return {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine neighbours (FAISS inner product on L2-normalised vectors): (similarity, positions)."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(normalise(vectors))
    return index.search(normalise(queries), k)


def fit_head(kind: str, features: np.ndarray, labels: LabelSet, positions: np.ndarray, *, device: str = "auto",
             seed: int = 0, weighted: bool = True, loss: str = "mse", alpha: float = 1.0, epochs: int | None = None,
             k: int = KNN_NEIGHBOURS, bands: int = 0, on_epoch: Callable[[int, int], None] | None = None,
             cancel: threading.Event | None = None) -> FrozenHead:
    """Train a head on the embeddings of ``labels.rows[positions]``.

    ``features`` are the bundle's [N, D] embeddings (indexed by bundle row); ``bands``: how many bands a band-wise
    embedding holds side by side (:func:`embedding_bands`), which the ``bandwise`` head needs. ``device`` is
    auto, cpu or cuda (an InputError when CUDA is asked for and absent); k-NN runs on CPU (FAISS).
    """
    if kind not in HEAD_KINDS:
        raise InputError(f"unknown head {kind!r}; use one of {', '.join(HEAD_KINDS)}")
    dev = resolve_device(device)
    train = labels.subset(np.asarray(positions, dtype=np.int64))
    x = np.ascontiguousarray(np.asarray(features)[train.rows], dtype=np.float32)
    task = labels.task
    if kind == "knn":
        weights = np.ones(len(task.classes))  # votes per class; regression has no classes
        if weighted and task.kind == "classification":
            weights = class_weights(train.y, len(task.classes))
        config = {"k": int(k), "metric": "cosine", "weighted_votes": bool(weighted), "n_train": len(train)}
        return FrozenHead(kind, task, x.shape[1], config, memory=(normalise(x), train.y, weights))

    recipe = RECIPES[kind] if epochs is None else replace(RECIPES[kind], epochs=epochs)
    if recipe.bandwise and (bands < 1 or x.shape[1] % bands):
        raise InputError(f"the {kind} head (paper 4's Table S2) needs a band-wise embedding, bands side by side; "
                         f"this one is {x.shape[1]}-d with {bands or 'no'} bands: train with a *-bandwise encoder")
    bands = bands if recipe.bandwise else 0
    torch.manual_seed(seed)
    net = HeadNet(x.shape[1], outputs_for(task), recipe.hidden, recipe.dropout, bands)
    xt = torch.from_numpy(x)
    net.feature_mean.copy_(xt.mean(0))
    # per-feature scales from a few labels blow up features that were ~0 on them; the convolutions of paper 4's
    # head share weights over bands, so one scale for every feature
    net.feature_std.copy_(xt.std().clamp_min(1e-6).expand(x.shape[1]) if bands else feature_scale(xt))
    if task.kind == "classification":
        yt = torch.from_numpy(train.y)
    else:
        y = torch.from_numpy(train.y)
        net.target_mean.fill_(float(y.mean()))
        net.target_std.fill_(max(float(y.std(unbiased=False)), 1e-12))
        yt = ((y - y.mean()) / net.target_std.double()).float()
    net = net.to(dev)
    loss_fn = loss_function(task, train.y, weighted=weighted, loss=loss, alpha=alpha, device=dev)
    history = train_loop(net, xt.to(dev), yt.to(dev), loss_fn, make_optimizer(recipe, net.parameters()),
                         epochs=recipe.epochs, batch_size=recipe.batch_size, seed=seed, on_epoch=on_epoch, cancel=cancel)
    config = {**asdict(recipe), "epochs_run": len(history), "final_loss": history[-1], "n_train": len(train),
              "class_weighted": bool(weighted and task.kind == "classification"),
              "regression_loss": loss if task.kind == "regression" else None, "alpha": alpha, "seed": seed,
              "device": str(dev), "bands": bands}
    return FrozenHead(kind, task, x.shape[1], config, net=net.eval())


# ----------------------------------------------------------------------------- metrics
def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes) -> dict:
    """Accuracy, error, the confusion matrix (rows: true, columns: predicted) and per-class precision/recall.

    A class never predicted has no precision (None); a class absent from ``y_true`` has no recall.
    """
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    correct = np.diag(confusion)
    predicted, support = confusion.sum(0), confusion.sum(1)
    accuracy = float(correct.sum() / max(len(y_true), 1))
    per_class = {str(c): {"precision": _ratio(correct[i], predicted[i]), "recall": _ratio(correct[i], support[i]),
                          "support": int(support[i])} for i, c in enumerate(classes)}
    return {"n": int(len(y_true)), "accuracy": accuracy, "error": 1.0 - accuracy, "classes": [str(c) for c in classes],
            "confusion": confusion.tolist(), "per_class": per_class}


def _ratio(a, b) -> float | None:
    return float(a / b) if b else None


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Scores of residuals r = y - y_hat.

    mae = mean |r|; rmse = sqrt(mean r^2); r2 = 1 - sum r^2 / sum (y - mean y)^2;
    bias = mean r; intrinsic_scatter = std(r) (population, ddof 0): the spread left once a
    constant offset is removed; std_abs_residual = std(|r|), the term of paper 4's loss.
    """
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    r = y_true - y_pred
    total = ((y_true - y_true.mean()) ** 2).sum() if len(y_true) else 0.0
    return {"n": int(len(r)), "mae": float(np.abs(r).mean()), "rmse": float(np.sqrt((r ** 2).mean())),
            "r2": float(1 - (r ** 2).sum() / total) if total > 0 else None, "bias": float(r.mean()),
            "intrinsic_scatter": float(r.std()), "std_abs_residual": float(np.abs(r).std())}


def score(labels: LabelSet, positions: np.ndarray, prediction: Prediction) -> dict:
    """Metrics of a prediction for the sources ``labels.rows[positions]`` (row-aligned with it)."""
    truth = labels.y[positions]
    if labels.task.kind == "classification":
        return classification_metrics(truth, prediction.codes, labels.task.classes)
    return regression_metrics(truth, prediction.value)


def headline(task: Task) -> tuple[str, str]:
    """The metric a learning curve shows, and how to read it."""
    return ("error", "test error (lower is better)") if task.kind == "classification" else \
        ("rmse", f"test RMSE of {task.target} (lower is better)")


def local_scatter(features: np.ndarray, reference: np.ndarray, residuals: np.ndarray, k: int = KNN_NEIGHBOURS) -> np.ndarray:
    """Per source: RMS of the residuals of its k nearest reference sources in embedding space.

    The regression heads' ``uncertainty``: with held-out labelled sources as the reference it is an
    out-of-sample error bar that is large where the head fits its neighbourhood poorly.
    """
    k = min(k, len(reference))
    _, found = knn_search(np.asarray(reference), np.asarray(features), k)
    return np.sqrt((np.asarray(residuals)[found] ** 2).mean(1))


# ----------------------------------------------------------------------------- learning curves
def summarise(cells: list[dict], metrics: tuple[str, ...]) -> list[dict]:
    """Mean and standard error (std with ddof 1 / sqrt(seeds)) of each metric per label count."""
    table = []
    for count in sorted({c["labels"] for c in cells}):
        group = [c for c in cells if c["labels"] == count]
        row = {"labels": count, "seeds": len(group)}
        for name in metrics:
            values = np.array([c["metrics"][name] for c in group if c["metrics"].get(name) is not None], float)
            row[name] = float(values.mean()) if len(values) else None
            row[f"{name}_se"] = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
        table.append(row)
    return table


def curve_counts(budget: int, classes: int, points: int = 5) -> list[int]:
    """Label counts for a quick learning curve: geometric steps up to the budget."""
    low = min(budget, max(2, 2 * classes, budget // 16))
    return sorted({int(round(v)) for v in np.geomspace(low, budget, points)})


# ----------------------------------------------------------------------------- predictions sidecar
def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise InputError(f"head name {name!r}: use a letter then letters, digits or _ (at most 48 characters)")
    if name in RESERVED_NAMES:
        raise InputError(f"head name {name!r} is reserved; choose another")
    return name


def prediction_table(name: str, labels: LabelSet, prediction: Prediction, n: int, *, train: np.ndarray,
                     test: np.ndarray, uncertainty: np.ndarray | None = None) -> tuple[pd.DataFrame, dict]:
    """Row-aligned prediction columns for all ``n`` sources, and their units and descriptions.

    ``train``/``test`` are positions into ``labels``. Columns: ``<name>_class``, ``_prob``, ``_correct``
    (classification) or ``_pred``, ``_uncertainty``, ``_residual`` (regression), and ``_split``.
    """
    task = labels.task
    split = np.full(n, "unlabelled", dtype=object)
    split[labels.rows] = "labelled (unused)"
    split[labels.rows[train]] = "train"
    split[labels.rows[test]] = "test"
    source = f"{name} head on {task.column!r}"
    columns = {f"{name}_split": {"unit": "", "description": f"{source}: train / test / labelled (unused) / unlabelled"}}
    table = {}
    if task.kind == "classification":
        classes = np.asarray(task.classes, dtype=object)
        correct = pd.array([pd.NA] * n, dtype="boolean")
        correct[labels.rows] = prediction.codes[labels.rows] == labels.y
        table = {f"{name}_class": pd.array(classes[prediction.codes], dtype="string"),
                 f"{name}_prob": prediction.confidence.astype(np.float32),
                 f"{name}_correct": correct}
        columns |= {f"{name}_class": {"unit": "", "description": f"{source}: predicted class"},
                    f"{name}_prob": {"unit": "", "description": f"{source}: probability of the predicted class"},
                    f"{name}_correct": {"unit": "", "description": f"{source}: prediction equals the label "
                                                                   "(empty where unlabelled)"}}
    else:
        residual = np.full(n, np.nan)
        residual[labels.rows] = labels.y - prediction.value[labels.rows]
        table = {f"{name}_pred": prediction.value.astype(np.float64),
                 f"{name}_uncertainty": (np.full(n, np.nan) if uncertainty is None else uncertainty).astype(np.float64),
                 f"{name}_residual": residual}
        unit = task.target_unit
        columns |= {f"{name}_pred": {"unit": unit, "description": f"{source}: predicted {task.target}"},
                    f"{name}_uncertainty": {"unit": unit, "description": f"{source}: RMS residual of the "
                                            f"{KNN_NEIGHBOURS} nearest held-out labelled sources in embedding space"},
                    f"{name}_residual": {"unit": unit, "description": f"{source}: label minus prediction "
                                                                      "(empty where unlabelled)"}}
    table[f"{name}_split"] = pd.array(split, dtype="string")
    return pd.DataFrame(table), columns


def _base_columns(bundle_path: Path) -> set[str]:
    import pyarrow.parquet as pq

    return set(pq.read_schema(bundle_path / "catalog.parquet").names)


def write_predictions(bundle_path: str | Path, name: str, table: pd.DataFrame, columns: dict, *,
                      check_collisions: bool = True) -> Path:
    """Write ``predictions/<name>.parquet`` and its ``.json`` (units, descriptions), each atomically.

    The JSON goes first, so the columns never appear without their descriptions.
    """
    bundle_path = Path(bundle_path)
    if check_collisions:
        taken = _base_columns(bundle_path)
        for other in (bundle_path / PREDICTIONS_DIR).glob("*.parquet"):
            if other.stem != name:
                import pyarrow.parquet as pq
                taken |= set(pq.read_schema(other).names)
        clash = sorted(set(table.columns) & taken)
        if clash:
            raise InputError(f"prediction column(s) {', '.join(clash)} already exist in the bundle; choose another name")
    out = bundle_path / PREDICTIONS_DIR / f"{name}.parquet"
    write_json(out.with_suffix(".json"), {"columns": columns})
    with atomic_path(out) as tmp:
        table.to_parquet(tmp, index=False)
    return out


def save_head(bundle_path: str | Path, name: str, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """``heads/<name>/``: the weights as safetensors and the metadata as JSON, replaced as one folder."""
    from safetensors.torch import save_file

    folder = Path(bundle_path) / HEADS_DIR / name
    with atomic_directory(folder) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp / HEAD_WEIGHTS)
        write_json(tmp / HEAD_META, {"format_version": 1, "name": name,
                                     "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **meta})
    return folder


def head_metadata(bundle_path: str | Path, name: str) -> dict:
    from explorer.core.bundle import read_json

    path = Path(bundle_path) / HEADS_DIR / name / HEAD_META
    if not path.is_file():
        raise InputError(f"no head {name!r} in {Path(bundle_path).name}")
    meta = read_json(path)
    missing = [k for k in ("name", "kind", "task") if k not in meta]
    if missing:
        raise InputError(f"heads/{name}/{HEAD_META}: damaged, it lacks {', '.join(missing)}")
    return meta


def saved_heads(bundle_path: str | Path) -> list[dict]:
    """Metadata of every head saved in a bundle, newest first."""
    folders = sorted((Path(bundle_path) / HEADS_DIR).glob(f"*/{HEAD_META}"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [head_metadata(bundle_path, p.parent.name) for p in folders]


def head_exists(bundle_path: str | Path, name: str) -> bool:
    return (Path(bundle_path) / HEADS_DIR / name / HEAD_META).is_file()


def free_name(bundle_path: str | Path, base: str) -> str:
    """``base``, or ``base_2``, ``base_3``... : the first name no saved head has (new heads are versioned)."""
    name, version = base, 1
    while head_exists(bundle_path, name):
        version += 1
        name = f"{base}_{version}"
    return name


def check_new_name(bundle_path: str | Path, name: str, *, replace: bool = False) -> str:
    """A valid head name that is free, or whose head the user chose to replace."""
    check_name(name)
    if head_exists(bundle_path, name) and not replace:
        meta = head_metadata(bundle_path, name)
        metrics = meta.get("metrics") or {}
        scored = f", held-out accuracy {metrics['accuracy']:.1%}" if "accuracy" in metrics else \
            (f", held-out RMSE {metrics['rmse']:.4g}" if "rmse" in metrics else "")
        raise InputError(f"a head named {name!r} already exists ({meta['kind']} on {meta['task']['column']}{scored}); "
                         f"choose another name, or replace it deliberately")
    return name


def load_head(bundle_path: str | Path, name: str, *, device: str = "cpu") -> FrozenHead:
    """Rebuild a saved frozen head (linear, mlp or knn) from its safetensors and JSON."""
    from safetensors.torch import load_file

    meta = head_metadata(bundle_path, name)
    if meta["kind"] not in HEAD_KINDS:
        raise InputError(f"head {name!r} is a {meta['kind']} head: it needs the images, and its predictions are in "
                         f"{PREDICTIONS_DIR}/{name}.parquet")
    from explorer.core.bundle import reading

    weights = Path(bundle_path) / HEADS_DIR / name / HEAD_WEIGHTS
    with reading(weights, "head"):
        tensors = load_file(weights)
        task = Task.from_dict(meta["task"])
        if meta["kind"] == "knn":
            memory = (tensors["vectors"].numpy(), tensors["targets"].numpy(), tensors["class_weights"].numpy())
            if task.kind == "classification":
                memory = (memory[0], memory[1].astype(np.int64), memory[2])
            return FrozenHead("knn", task, meta["dim"], meta["config"], memory=memory)
        recipe = meta["config"]
        net = HeadNet(meta["dim"], outputs_for(task), recipe["hidden"], recipe["dropout"], recipe.get("bands", 0))
        net.load_state_dict(tensors)
    return FrozenHead(meta["kind"], task, meta["dim"], meta["config"], net=net.to(resolve_device(device)).eval())


# ----------------------------------------------------------------------------- one call: train and publish
@dataclass(frozen=True)
class HeadSpec:
    """Everything that defines a head trained from a bundle's label column."""
    column: str
    name: str
    head: str = "linear"            # linear, mlp, knn (the finetune CLI adds finetune / supervised)
    task: str = "auto"              # auto, classification or regression
    log: bool = False
    budget: int | None = None       # training labels; None: every label outside the held-out part
    test_fraction: float = 0.2
    seed: int = 0
    split_seed: int = 0
    device: str = "auto"
    weighted: bool = True
    loss: str = "mse"
    alpha: float = 1.0
    curve_points: int = 5           # label counts of the learning curve (0: none)
    curve_seeds: int = 3
    replace: bool = False           # overwrite a saved head of the same name (never silently)


@dataclass
class HeadReport:
    """What a trained head did: held-out metrics, the data for its plots, and where it was written."""
    spec: HeadSpec
    task: Task
    metrics: dict
    test_truth: np.ndarray
    test_prediction: Prediction
    n_train: int
    curve: list[dict]
    predictions_path: Path
    head_path: Path
    columns: dict


@dataclass
class Split:
    labels: LabelSet
    pool: np.ndarray
    test: np.ndarray
    train: np.ndarray


def prepare(catalog: pd.DataFrame, spec: HeadSpec, unit: str = "") -> Split:
    """Labels of the spec's column, the fixed held-out part, and the training subset of the budget."""
    labels = label_set(catalog, spec.column, kind=spec.task, log=spec.log, unit=unit)
    pool, test = split_labels(labels, spec.test_fraction, spec.split_seed)
    budget = len(pool) if spec.budget is None else int(spec.budget)
    classes = len(labels.task.classes)
    if labels.task.kind == "classification" and budget < classes:
        raise InputError(f"a budget of {budget} label(s) cannot include each of the {classes} classes of "
                         f"{spec.column!r}; use at least {classes}")
    return Split(labels, pool, test, budget_subset(labels, pool, budget, spec.seed))


def publish(bundle, spec: HeadSpec, split: Split, prediction: Prediction, tensors: dict, meta: dict,
            metrics: dict, curve: list[dict]) -> tuple[Path, Path, dict]:
    """Write the predictions sidecar for every source and save the head into the bundle."""
    labels = split.labels
    uncertainty = None
    if labels.task.kind == "regression":
        reference = split.test if len(split.test) >= 2 else split.train
        residuals = labels.y[reference] - prediction.value[labels.rows[reference]]
        uncertainty = local_scatter(bundle.embeddings, np.asarray(bundle.embeddings)[labels.rows[reference]], residuals)
    table, columns = prediction_table(spec.name, labels, prediction, bundle.n, train=split.train, test=split.test,
                                      uncertainty=uncertainty)
    predictions = write_predictions(bundle.path, spec.name, table, columns)
    head = save_head(bundle.path, spec.name, tensors, {
        **meta, "task": labels.task.to_dict(), "spec": asdict(spec), "metrics": metrics, "learning_curve": curve,
        "columns": list(columns), "bundle": {"name": bundle.name, "n": bundle.n, "dim": bundle.dim},
        "train_ids": bundle.catalog["id"].to_numpy()[labels.rows[split.train]].tolist()})
    return predictions, head, columns


def embedding_bands(encoder) -> int:
    """How many bands a bundle's embedding holds side by side (a ``*-bandwise`` encoder), else 0."""
    return encoder.in_channels if encoder is not None and encoder.architecture.endswith("-bandwise") else 0


def frozen_head_kinds(encoder) -> list[str]:
    """The frozen heads a bundle's embedding can take: ``bandwise`` only on a band-wise one."""
    return [k for k in HEAD_KINDS if k != "bandwise" or embedding_bands(encoder)]


def train_frozen_head(bundle, spec: HeadSpec, *, on_progress: Callable[[float, str], None] | None = None,
                      cancel: threading.Event | None = None) -> HeadReport:
    """Train a linear / MLP / k-NN head on a bundle's embeddings, score it on held-out labels, draw a
    quick learning curve, and write its predictions for every source and the head into the bundle."""
    check_new_name(bundle.path, spec.name, replace=spec.replace)
    split = prepare(bundle.catalog, spec, bundle.column_unit(spec.column))
    labels, features = split.labels, np.asarray(bundle.embeddings, dtype=np.float32)
    report = on_progress or (lambda fraction, message: None)
    counts = curve_counts(len(split.train), len(labels.task.classes), spec.curve_points) if spec.curve_points else []
    steps = 1 + len(counts) * spec.curve_seeds
    fit = dict(device=spec.device, weighted=spec.weighted, loss=spec.loss, alpha=spec.alpha, cancel=cancel,
               bands=embedding_bands(bundle.manifest.encoder))

    head = fit_head(spec.head, features, labels, split.train, seed=spec.seed,
                    on_epoch=lambda e, total: report(e / total / steps, f"training: epoch {e}/{total}"), **fit)
    test_prediction = head.predict(features[labels.rows[split.test]])
    metrics = score(labels, split.test, test_prediction) if len(split.test) else {}

    cells = []
    for seed in range(spec.curve_seeds if counts else 0):
        for count in counts:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            train = budget_subset(labels, split.pool, count, seed)
            cell_head = fit_head(spec.head, features, labels, train, seed=seed, **fit)
            cells.append({"seed": seed, "labels": count,
                          "metrics": score(labels, split.test, cell_head.predict(features[labels.rows[split.test]]))})
            report((1 + len(cells)) / steps, f"learning curve: {count} labels, seed {seed}")
    curve = summarise(cells, (headline(labels.task)[0],)) if len(split.test) else []

    report(1.0, "predicting every source")
    prediction = head.predict(features)
    meta = {"kind": spec.head, "dim": head.dim, "config": head.config}
    predictions_path, head_path, columns = publish(bundle, spec, split, prediction, head.tensors(), meta, metrics, curve)
    return HeadReport(spec, labels.task, metrics, labels.y[split.test], test_prediction, len(split.train), curve,
                      predictions_path, head_path, columns)



# ----------------------------------------------------------------------------- a saved head's results
def held_out_values(catalog: pd.DataFrame, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) target values of a regression head's held-out sources, from the catalogue columns."""
    task, name = Task.from_dict(meta["task"]), meta["name"]
    test = catalog[f"{name}_split"].astype("string").eq("test").fillna(False).to_numpy(dtype=bool)
    truth = pd.to_numeric(catalog.loc[test, task.column], errors="coerce").to_numpy(dtype=float)
    return (np.log10(truth) if task.log else truth), catalog.loc[test, f"{name}_pred"].to_numpy(dtype=float)


def predictions_export(catalog: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """id, ra, dec, the label column and a head's prediction columns: the page's CSV / VOTable download."""
    columns = ["id", "ra", "dec", meta["task"]["column"], *meta["columns"]]
    return catalog[[c for c in dict.fromkeys(columns) if c in catalog.columns]]


def default_label_column(catalog: pd.DataFrame, preferred: str | None = None) -> str | None:
    """The column a head can train on first: ``preferred`` (the user's own labels) when it has two classes,
    else the first categorical column with two labelled classes, else the first numeric one with two values."""
    def trainable(column: str) -> bool:
        try:
            label_set(catalog, column)
            return True
        except InputError:
            return False

    columns = [c for c in catalog.columns if c not in ("id", "ra", "dec")]
    categorical = [c for c in columns if detect_task_kind(catalog[c]) == "classification"]
    ordered = ([preferred] if preferred in columns else []) + categorical + [c for c in columns if c not in categorical]
    return next((c for c in ordered if trainable(c)), columns[0] if columns else None)
