"""Label efficiency: test error against the number of training labels (paper 1's protocol).

    python -m training.evaluate --bundle <B> --label-column <C> [--filter "confidence == 'confident'"]
        [--test-data <DATA> | --test-fraction f] --labels 36,72,145,291,437,583,656,729 --seeds 10
        --head linear|mlp|knn|bandwise|finetune [--baseline-supervised] --out <DIR>

    python -m training.evaluate ... --fractions 1,5,10,20,50,100 --folds 10 --seeds 3   (paper 4's protocol)

For every seed, one stratified random ranking of the training pool gives nested label subsets
(the 36 labels are inside the 72, ...); each (seed, labels) cell trains a head and scores it on a
fixed held-out set: a stratified ``--test-fraction`` of the (filtered) labelled sources, or the
labelled sources of ``--test-data``. With ``--fractions`` (paper 4) the labelled sources are cut into ``--folds``
stratified folds instead; each fold is the test set once, and each percentage of the other folds' labels (of the
smallest such pool, so that every fold trains on the same count) is drawn ``--seeds`` times per fold, the same
subsets for every method. ``--baseline-supervised`` adds the same architecture trained
from scratch on the same labels. In the same run and on the same cells, every frozen head is also
trained on a **random-init encoder** of the bundle's architecture and input (seed 0) and on the
**pixels** (the encoder's input, flattened), and a fine-tune is compared with supervised training
from scratch and a linear head on the pixels (``--no-baselines`` skips them). Where the pre-trained
encoder does not beat random init, the CLI says so and ``results.json`` records it. Finished cells are kept in ``<DIR>/cells.json`` (with a
classifier's predicted class for every test source, in test-set order), so a rerun resumes. Outputs: ``results.json`` (mean and standard error per label count), ``learning_curve.png``
and ``learning_curve.html``.
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("evaluate")

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from explorer.core.atomic import atomic_path, check_output_folder, save_figure, write_json
from explorer.core.bundle import Bundle, load_bundle
from explorer.core.encoder import embed, resolve_device
from explorer.core.errors import InputError, cli_entry
from training import cli
from explorer.core.headplots import learning_curve_figure
from explorer.core.heads import HEAD_KINDS, LabelSet, Prediction, Task, budget_subset, embedding_bands, filter_rows, \
    fit_head, headline, label_set, score, split_labels, stratified_folds, summarise
from training.data import load_data
from training.dataset import preprocess_rows
from training.finetune import (FinetuneRecipe, build_model, bundle_encoder, bundle_images,
                               finetune, fresh_encoder, predict_images, recipe_from)
from training.quality import encoder_features, pixel_features, random_init_encoder

BASELINE_HEADS = {f"{baseline} {kind}": (baseline, kind) for baseline in ("random-init", "pixels") for kind in HEAD_KINDS}
CELLS_FILE, RESULTS_FILE = "cells.json", "results.json"
SUMMARY_METRICS = {"classification": ("error", "accuracy"), "regression": ("rmse", "mae", "r2", "intrinsic_scatter")}


def parse_fractions(text: str) -> list[float]:
    """--fractions: percentages in (0, 100]."""
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise InputError(f"--fractions must be comma-separated percentages, got {text!r}") from None
    if not values or values[0] <= 0 or values[-1] > 100:
        raise InputError(f"--fractions must be percentages in (0, 100], got {text!r}")
    return values


def parse_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise InputError(f"--labels must be comma-separated integers, got {text!r}") from None
    if not counts or counts[0] < 2:
        raise InputError(f"--labels needs counts of at least 2, got {text!r}")
    return counts


@dataclass
class HeldOut:
    """The fixed test set: its targets, and its embeddings / images on demand."""
    y: np.ndarray
    features: np.ndarray | None = None      # frozen heads
    images: torch.Tensor | None = None      # fine-tuning (preprocessed with a rotation margin)
    rows: np.ndarray | None = None          # bundle rows, when the test set is part of the bundle
    positions: np.ndarray | None = None     # ... and its positions among the labelled sources
    source: str = ""


def external_test_set(spec: str, bundle: Bundle, task: Task, expression: str | None, *, need_images: bool,
                      device) -> HeldOut:
    """Labelled sources of another data spec, encoded with the bundle's encoder, classes mapped to the bundle's;
    their images are kept (with the rotation margin) for fine-tuning and for the baselines' features."""
    data = load_data(spec, pixels=bundle.manifest.data.pixels, pixel_scale_arcsec=bundle.manifest.data.pixel_scale_arcsec)
    labels = label_set(data.catalog, task.column, kind=task.kind, log=task.log,
                       candidates=filter_rows(data.catalog, expression))
    y = labels.y
    if task.kind == "classification":
        unknown = sorted(set(labels.task.classes) - set(task.classes))
        if unknown:
            raise InputError(f"--test-data has classes the bundle's labels lack: {', '.join(unknown)}")
        y = np.searchsorted(np.asarray(task.classes), np.asarray(labels.task.classes)[labels.y])
    params = bundle.preprocessing()
    images = torch.from_numpy(preprocess_rows(data, labels.rows, params, margin_for_rotation=True))
    features = None if need_images else embed(bundle.encoder(), images, params, device=device,
                                              desc="embedding test data")
    return HeldOut(y, features=features, images=images, source=spec)


class Evaluation:
    """One label-efficiency study: its configuration, the finished cells, and how to run the rest."""

    def __init__(self, args, bundle: Bundle):
        self.args, self.bundle = args, bundle
        self.out = Path(args.out).expanduser()
        if not (self.out / CELLS_FILE).is_file():  # a new evaluation: never into a folder holding something else
            check_output_folder(self.out, "evaluation folder", lambda p: (p / CELLS_FILE).is_file())
        self.methods = [args.head] + baseline_methods(args.head, supervised=args.baseline_supervised,
                                                      baselines=not args.no_baselines)
        self.device = resolve_device(args.device)
        if not args.no_baselines and (bundle.manifest.encoder is None or not bundle.manifest.data.spec):
            raise InputError(f"bundle {bundle.name!r} does not record its encoder and data, so the random-init and "
                             "pixel baselines cannot be computed; pass --no-baselines to evaluate without them")
        self.needs_images = any(m in ("finetune", "supervised") for m in self.methods)
        candidates = filter_rows(bundle.catalog, args.filter)
        self.labels = label_set(bundle.catalog, args.label_column, kind=args.task, log=args.log, candidates=candidates,
                                unit=bundle.column_unit(args.label_column))
        self.folds: list[np.ndarray] = []
        if args.fractions:
            if args.test_data:
                raise InputError("--fractions runs k-fold cross-validation, where every fold is the test set once; "
                                 "drop --test-data")
            self.folds = stratified_folds(self.labels, args.folds, args.split_seed)
            smallest = len(self.labels) - max(len(f) for f in self.folds)
            self.fractions = {f"{p:g}": max(2, int(round(p / 100 * smallest))) for p in parse_fractions(args.fractions)}
            self.counts = sorted(set(self.fractions.values()))
            self.use_fold(0)
        else:
            self.counts = parse_counts(args.labels)
            if args.test_data:
                self.pool = np.arange(len(self.labels))
                self.test = external_test_set(args.test_data, bundle, self.labels.task, args.filter,
                                              need_images=self.needs_images, device=self.device)
            else:
                self.pool, test = split_labels(self.labels, args.test_fraction, args.split_seed)
                self.test = self.held_out(test, f"{args.test_fraction:g} of the labelled sources (split seed "
                                                f"{args.split_seed})")
        too_many = [c for c in self.counts if c > len(self.pool)]
        if too_many:
            raise InputError(f"only {len(self.pool)} labelled sources are available for training, fewer than the "
                             f"requested {', '.join(map(str, too_many))}; lower --labels or --test-fraction")
        self.config = {"bundle": str(Path(bundle.path).resolve()), "label_column": args.label_column,
                       "filter": args.filter, "task": self.labels.task.to_dict(), "test": self.test.source,
                       "test_size": int(len(self.test.y)), "pool_size": int(len(self.pool)), "labels": self.counts,
                       "seeds": args.seeds, "methods": self.methods, "device": str(self.device),

                       "weighted": not args.no_class_weights, "loss": args.loss, "alpha": args.alpha,
                       "finetune": asdict(recipe_from(args)) if self.needs_images else None}
        if self.folds:
            self.config |= {"folds": len(self.folds), "fractions": self.fractions}
        self.cells = self._resume()
        self._images = None
        self._baseline_features: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def held_out(self, positions: np.ndarray, source: str) -> HeldOut:
        """Labelled sources at ``positions`` as the test set."""
        rows = self.labels.rows[positions]
        return HeldOut(self.labels.y[positions], features=np.asarray(self.bundle.embeddings)[rows], rows=rows,
                       positions=positions, source=source)

    def use_fold(self, fold: int) -> None:
        """k-fold mode: fold ``fold`` is the test set, the other folds the training pool."""
        self.pool = np.sort(np.concatenate([f for i, f in enumerate(self.folds) if i != fold]))
        self.test = self.held_out(self.folds[fold], f"each of {len(self.folds)} stratified folds in turn (split seed "
                                                    f"{self.args.split_seed})")

    def _resume(self) -> list[dict]:
        path = self.out / CELLS_FILE
        if not path.is_file():
            return []
        saved = json.loads(path.read_text())
        comparable = {k: v for k, v in saved["config"].items() if k not in ("labels", "seeds", "methods", "device")}
        mine = {k: v for k, v in self.config.items() if k not in ("labels", "seeds", "methods", "device")}
        if comparable != mine:
            raise InputError(f"{self.out} holds an evaluation with other settings; choose a new --out")
        return saved["cells"]

    def todo(self) -> list[tuple[int, str, int, int]]:
        done = {(c.get("fold", 0), c["method"], c["seed"], c["labels"]) for c in self.cells}
        return [(f, m, s, n) for f in range(max(len(self.folds), 1)) for s in range(self.args.seeds)
                for n in self.counts for m in self.methods if (f, m, s, n) not in done]

    def images(self) -> torch.Tensor:
        if self._images is None:
            self._images = bundle_images(self.bundle)
        return self._images

    def baseline_features(self, baseline: str) -> tuple[np.ndarray, np.ndarray]:
        """(features of the labelled sources, in ``labels`` order; features of the test set) of a baseline."""
        if baseline not in self._baseline_features:
            images, params = self.images(), self.bundle.preprocessing()
            enc = self.bundle.manifest.encoder
            encoder = random_init_encoder(enc.architecture, enc.in_channels, seed=0) if baseline != "pixels" else None

            def features(x):
                return pixel_features(x, params) if encoder is None else \
                    encoder_features(encoder, x, params, device=self.device)

            external = features(self.test.images) if self.test.positions is None else None
            self._baseline_features[baseline] = (features(images[torch.from_numpy(self.labels.rows)]), external)
        labelled, external = self._baseline_features[baseline]
        return labelled, external if self.test.positions is None else labelled[self.test.positions]

    def predict_test(self, method: str, train: np.ndarray, seed: int) -> Prediction:
        """Train one cell's model on ``labels`` positions ``train`` and predict the held-out set."""
        args = self.args
        common = dict(weighted=not args.no_class_weights, loss=args.loss, alpha=args.alpha)
        bands = embedding_bands(self.bundle.manifest.encoder)
        if method in HEAD_KINDS:
            head = fit_head(method, self.bundle.embeddings, self.labels, train, device=args.device, seed=seed,
                            bands=bands, **common)
            return head.predict(self.test.features)
        if method in BASELINE_HEADS:
            baseline, kind = BASELINE_HEADS[method]
            labelled, test = self.baseline_features(baseline)
            local = LabelSet(self.labels.task, np.arange(len(self.labels)), self.labels.y)
            return fit_head(kind, labelled, local, train, device=args.device, seed=seed, bands=bands,
                            **common).predict(test)
        recipe = recipe_from(args, supervised=method == "supervised")
        torch.manual_seed(seed)
        encoder = fresh_encoder(self.bundle) if recipe.supervised else bundle_encoder(self.bundle, args.checkpoint)
        model = build_model(encoder, self.labels, train, recipe)
        images, params = self.images(), self.bundle.preprocessing()
        finetune(model, images, params, self.labels, train, recipe, device=self.device, seed=seed, progress=False,
                 **common)
        if self.test.rows is not None:
            return predict_images(model, images, params, self.test.rows, self.labels.task, device=self.device)
        return predict_images(model, self.test.images, params, np.arange(len(self.test.y)), self.labels.task,
                              device=self.device)

    def run(self) -> None:
        todo = self.todo()
        if self.cells:
            print(f"resuming: {len(self.cells)} cell(s) done, {len(todo)} to go")
        for fold, method, seed, count in tqdm(todo, desc="label-efficiency cells", unit="cell"):
            if self.folds:
                self.use_fold(fold)
            held_out = LabelSet(self.labels.task, np.arange(len(self.test.y)), self.test.y)
            train = budget_subset(self.labels, self.pool, count, seed + 1000 * fold)
            prediction = self.predict_test(method, train, seed)
            cell = {"method": method, "fold": fold, "seed": seed, "labels": count,
                    "metrics": score(held_out, np.arange(len(self.test.y)), prediction)}
            if self.labels.task.kind == "classification":  # per source, for accuracy against other columns
                cell["predicted"] = prediction.codes.tolist()
            self.cells.append(cell)
            write_json(self.out / CELLS_FILE, {"config": self.config, "cells": self.cells})

    def results(self) -> dict:
        metrics = SUMMARY_METRICS[self.labels.task.kind]
        curves = {m: summarise([c for c in self.cells if c["method"] == m and c["labels"] in self.counts
                                and c["seed"] < self.args.seeds], metrics) for m in self.methods}
        metric = headline(self.labels.task)[0]
        spread = "folds x repeats" if self.folds else "seeds"
        return {"config": self.config, "metric": metric, "standard_error": f"std over {spread} (ddof 1) / sqrt(count)",
                "curves": curves, "not_beaten": not_beaten(curves, self.methods[0], metric)}


def baseline_methods(head: str, *, supervised: bool, baselines: bool) -> list[str]:
    """The methods scored beside ``head`` on the same cells."""
    out = ["supervised"] if supervised or (baselines and head == "finetune") else []
    if baselines:  # the pixels have no bands side by side for paper 4's head: an MLP reads them
        pixels = "pixels mlp" if head == "bandwise" else f"pixels {head}"
        out += [f"random-init {head}", pixels] if head in HEAD_KINDS else ["pixels linear"]
    return out


def not_beaten(curves: dict, method: str, metric: str) -> dict[str, list[int]]:
    """For each baseline, the label counts at which ``method`` is no better than it (lower is better)."""
    mine = {r["labels"]: r[metric] for r in curves.get(method, [])}
    out = {}
    for other, rows in curves.items():
        if other == method:
            continue
        counts = [r["labels"] for r in rows if r[metric] is not None and mine.get(r["labels"]) is not None
                  and mine[r["labels"]] >= r[metric]]
        if counts:
            out[other] = counts
    return out


def write_plots(results: dict, out: Path, task: Task) -> None:
    """learning_curve.png (matplotlib) and learning_curve.html (plotly) of the headline metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, label = headline(task)
    scale = 100.0 if metric == "error" else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for method, rows in results["curves"].items():
        x = [r["labels"] for r in rows]
        y = [np.nan if r[metric] is None else r[metric] * scale for r in rows]
        err = [0.0 if r[f"{metric}_se"] is None else r[f"{metric}_se"] * scale for r in rows]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=method)
    ax.set_xlabel("training labels")
    ax.set_ylabel(f"{label.replace('test error', 'test error (%)')}")
    ax.set_title(f"{task.target}: mean ± standard error over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "learning_curve.png")
    with atomic_path(out / "learning_curve.html") as tmp:
        learning_curve_figure(results["curves"], task).write_html(tmp, include_plotlyjs=True)


def evaluate(argv: list[str]) -> tuple[dict, Path]:
    """Run (or resume) the evaluation the command line ``argv`` describes; write its results and return them
    with the folder they are in."""
    args = cli.parser("evaluate").parse_args(argv)
    evaluation = Evaluation(args, load_bundle(args.bundle))
    evaluation.run()
    results = evaluation.results()
    write_json(evaluation.out / RESULTS_FILE, results)
    write_plots(results, evaluation.out, evaluation.labels.task)
    return results, evaluation.out


@cli_entry
def main(argv=None):
    results, out = evaluate(sys.argv[1:] if argv is None else argv)
    metric = results["metric"]
    for method, rows in results["curves"].items():
        shown = ", ".join(f"{r['labels']}: {r[metric]:.4f}" + (f"±{r[metric + '_se']:.4f}" if r[metric + '_se'] else "")
                          for r in rows)
        print(f"{method} {metric}: {shown}")
    for baseline, counts in results["not_beaten"].items():
        if baseline.startswith(("random-init", "supervised")):
            print(f"WARNING: {results['config']['methods'][0]} is no better than {baseline} at "
                  f"{', '.join(map(str, counts))} labels: the pre-training is not helping there")
    print(f"results: {out / RESULTS_FILE}")


if __name__ == "__main__":
    main()
