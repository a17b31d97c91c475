"""Few-label heads against the usual baselines, on a 2-core CPU.

    python -m benchmarks.heads                       # about a minute
    python -m benchmarks.heads --finetune-epochs 300 # the full paper-1 fine-tune (long on CPU)

1. Linear probe (paper 1's recipe, explorer.core.heads) on 100,000 x 512 embeddings, every source
   labelled: fit, then predict all sources; beside sklearn's LogisticRegression (lbfgs, 100 iterations).
   Target: <= 5 s.
2. k-NN (FAISS, exact cosine) with a label budget, predicting all 100,000 sources; beside sklearn's
   KNeighborsClassifier (brute force). Target: <= 2 s.
3. Fine-tuning the last ResNet-18 stage on 729 MiraBest-sized (150 x 150 px) simulated images,
   70 px encoder input, on CPU: seconds per epoch and the extrapolated 300 epochs (paper 1 quotes
   4m22s on CPU for a one-layer fine-tune).

Figures depend on what else runs on the machine: the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from benchmarks.synthetic import synthetic_catalogue
from explorer.core import heads


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def row(name: str, seconds: float, accuracy: float | None, target: str = "") -> None:
    acc = "" if accuracy is None else f"{accuracy:8.3f}"
    print(f"  {name:<52s} {seconds:8.2f} s {acc:>9s}  {target}")


def frozen_heads(n: int, dim: int, knn_labels: int, seed: int = 0) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    catalog, x = synthetic_catalogue(n, dim, seed)
    labels = heads.label_set(catalog, "morphology")
    pool, test = heads.split_labels(labels, 0.2, seed)
    test_x, test_y = x[labels.rows[test]], labels.y[test]
    print(f"\n{n:,} x {dim} embeddings, {len(labels.task.classes)} classes; "
          f"accuracy on {len(test):,} held-out sources")
    print(f"  {'method':<52s} {'time':>10s} {'accuracy':>9s}")

    head, fit_s = timed(lambda: heads.fit_head("linear", x, labels, pool, device="cpu", seed=seed))
    prediction, predict_s = timed(lambda: head.predict(x))
    accuracy = float((prediction.codes[labels.rows[test]] == test_y).mean())
    row(f"linear probe, {len(pool):,} labels ({head.config['epochs_run']} epochs, batch 64)", fit_s + predict_s,
        accuracy, "target <= 5 s (fit + predict all)")
    row("  of which fit", fit_s, None)
    logistic, sk_s = timed(lambda: LogisticRegression(max_iter=100).fit(x[labels.rows[pool]], labels.y[pool]))
    _, sk_predict_s = timed(lambda: logistic.predict(x))
    row("sklearn LogisticRegression (lbfgs, 100 iterations)", sk_s + sk_predict_s,
        float((logistic.predict(test_x) == test_y).mean()))

    train = heads.budget_subset(labels, pool, min(knn_labels, len(pool)), seed)
    knn, knn_fit_s = timed(lambda: heads.fit_head("knn", x, labels, train))
    prediction, knn_s = timed(lambda: knn.predict(x))
    row(f"k-NN (FAISS, k=10), {len(train):,} labels, predict all {n:,}", knn_fit_s + knn_s,
        float((prediction.codes[labels.rows[test]] == test_y).mean()), "target <= 2 s")
    sk_knn = KNeighborsClassifier(n_neighbors=10, algorithm="brute")
    _, sk_fit_s = timed(lambda: sk_knn.fit(x[labels.rows[train]], labels.y[train]))
    predicted, sk_knn_s = timed(lambda: sk_knn.predict(x))
    row(f"sklearn KNeighborsClassifier (brute), predict all {n:,}", sk_fit_s + sk_knn_s,
        float((predicted[labels.rows[test]] == test_y).mean()))


def finetune_last_stage(images: int, epochs: int, seed: int = 0) -> None:
    from explorer.core.encoder import build_encoder
    from explorer.core.preprocess import Preprocessing, preprocess
    from training.finetune import FinetuneRecipe, build_model, finetune
    from training.simulate import simulate_sources

    raw, catalog = simulate_sources(images, seed, progress=False)
    params = Preprocessing()                    # crop 70, encoder input 70 px (paper 1)
    prepared = torch.from_numpy(preprocess(raw, params, margin_for_rotation=True))
    labels = heads.label_set(catalog, "morphology")
    encoder, _ = build_encoder("resnet18", 1)
    recipe = FinetuneRecipe(stages=1, epochs=epochs)
    model = build_model(encoder, labels, np.arange(len(labels)), recipe)
    print(f"\nfine-tune the last ResNet-18 stage: {images} images of 150 x 150 px, 70 px input, batch 64, "
          f"{torch.get_num_threads()} CPU threads")
    _, seconds = timed(lambda: finetune(model, prepared, params, labels, np.arange(len(labels)), recipe,
                                        device=torch.device("cpu"), seed=seed, progress=False))
    per_epoch = seconds / epochs
    row(f"{epochs} epoch(s)", seconds, None)
    row("per epoch", per_epoch, None)
    minutes, rest = divmod(round(per_epoch * 300), 60)
    row(f"300 epochs (paper 1's fine-tune), extrapolated: {minutes}m{rest:02d}s", per_epoch * 300, None,
        "paper 1: 4m22s on CPU (one layer)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heads", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--knn-labels", type=int, default=1_000, help="label budget of the k-NN head")
    parser.add_argument("--finetune-images", type=int, default=729)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); on a busy "
                                                     "machine 1 thread can beat 2")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    frozen_heads(args.n, args.dim, args.knn_labels)
    if args.finetune_epochs > 0:
        finetune_last_stage(args.finetune_images, args.finetune_epochs)
    print(f"\nload average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
