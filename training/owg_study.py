"""Paper 4's study (OWG) in one command: the band-prediction pretext on an SDSS-like cluster sky, then richness
regression with few labels, frozen and fine-tuned, in k-fold cross-validation.

    python -m training.owg_study --out runs/owg-study                          # the CPU default (~20 min)
    python -m training.owg_study --config configs/owg_study_gpu.yaml --out runs/owg-gpu --device cuda

Steps, each resumed when the command is run again:

1. simulate the cluster sky (:mod:`training.clusters`): the cross-validation sky, and an independent
   validation sky of another seed;
2. pre-train the band classifier (``training.train``, ``configs/owg_band_prediction.yaml``) on the
   cross-validation sky's images (no labels), and embed both skies (``training.embed``);
3. the pretext's accuracy per band on the validation sky, beside a classifier that sees only each image's
   noise statistics (its pixel-value percentiles), to show how much of the pretext is trivial;
4. choose α of the loss MSE + α std(|y - ŷ|) (paper 4 does not give it) on the validation sky: the frozen
   richness head with each of ``alphas``, scored on a held-out part of that sky by MAE + σ;
5. ``training.evaluate --fractions`` on the cross-validation sky: ``folds`` folds, each label fraction drawn
   ``repeats`` times per fold, the same subsets for every model:
   - frozen: paper 4's Table S2 head on the embedding, beside a random-init encoder of the same architecture
     and an MLP on the pixels;
   - fine-tuned: the extractor and the head trained together, beside the same network from scratch (paper 4's
     "no pre-training"), at ``finetune_fractions``.

The target is λ itself, so MAE and σ (the standard deviation of the residuals) are in λ.
``<OUT>/results/``: ``results.json``, ``results.md`` (paper 4's Table 1 layout, its numbers beside ours) and
``richness.png`` (MAE and σ against the label fraction).
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("owg_study")

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.core.atomic import atomic_path, save_figure, write_json
from explorer.core.errors import InputError, cli_entry
from training import cli
from training.config import TrainConfig, load_config, repo_path
from training.options import build, limited, read_yaml

LABEL = "richness"
METRICS = ("mae", "intrinsic_scatter")
# Paper 4's Table 1 (SEEDS.md section 4): MAE and scatter by label fraction (%), units of λ not given.
PAPER = {"fractions": [1, 5, 10, 20, 40, 50, 100],
         "mae": {"no pre-training": [2.392, .479, .294, .240, .207, .198, .183],
                 "OWG": [.419, .257, .255, .220, .190, .182, .162]},
         "sigma": {"no pre-training": [1.330, .581, .455, .371, .345, .282, .257],
                   "OWG": [.517, .332, .312, .292, .256, .231, .203]}}


@dataclass
class OwgStudyConfig:
    clusters: int = limited(1000, 20, 200_000)        # the cross-validation sky
    validation_clusters: int = limited(400, 20, 200_000)
    seed: int = limited(0, 0)
    validation_seed: int = limited(1, 0)
    pixels: int = limited(32, 16, 512)              # the grid over 2 Mpc (paper-scale: configs/owg_study_gpu.yaml)
    pretext_epochs: int = limited(12, 1)             # overrides the recipe's optim.epochs (paper: 100)
    folds: int = limited(5, 2)                       # paper: 10
    fractions: str = "1,5,10,20,50,100"
    repeats: int = limited(2, 1)                     # paper: 3
    alphas: str = "0,0.5,1,2"
    finetune_fractions: str = "10,100"
    finetune_repeats: int = limited(1, 1)
    finetune_epochs: int = limited(5, 1)
    finetune_base_lr: float = limited(4e-4, 1e-9, 1.0)
    recipe: str = "configs/owg_band_prediction.yaml"


def load_study(path: str | Path) -> OwgStudyConfig:
    return build(OwgStudyConfig, read_yaml(path, "study config"), str(path))


def spec(n: int, seed: int) -> str:
    return f"sim:clusters?n={n}&seed={seed}"


def study_recipe(study: OwgStudyConfig) -> TrainConfig:
    """The pretext recipe at the study's grid and epochs, checked to be the band prediction."""
    recipe = load_config(repo_path(study.recipe))
    if recipe.method != "band_prediction":
        raise InputError(f"{study.recipe}: the study's recipe must be the band-prediction pretext "
                         "(method: band_prediction)")
    size = {"crop_pixels": study.pixels, "input_pixels": study.pixels}
    return dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, pixels=study.pixels),
                               preprocessing=dataclasses.replace(recipe.preprocessing, **size),
                               optim=dataclasses.replace(recipe.optim, epochs=study.pretext_epochs))


def noise_statistics(single_band: np.ndarray) -> np.ndarray:
    """Per single-band image [M, H, W]: percentiles of its pixel values (sign-kept log), the noise and the sky a
    classifier can read without looking at any galaxy."""
    q = np.percentile(single_band.reshape(len(single_band), -1), [1, 5, 16, 50, 84, 95, 99], axis=1).T
    return np.sign(q) * np.log10(1 + np.abs(q) * 1e6)


def pretext_accuracy(checkpoint: Path, train_spec: str, validation_spec: str, device) -> dict:
    """The band classifier's accuracy per band on ``validation_spec``, beside logistic regression on each image's
    :func:`noise_statistics` (trained on ``train_spec``)."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from explorer.core.encoder import resolve_device
    from explorer.core.preprocess import centre_crop, encoder_input
    from training.dataset import open_cutouts
    from training.methods import method_class
    from training.train import encoder_from_checkpoint, load_checkpoint

    state = load_checkpoint(checkpoint)
    encoder, recipe = encoder_from_checkpoint(state)
    model = method_class(recipe.method)(encoder, encoder.dim, recipe.options)
    model.load_state_dict(state["model"])
    device = resolve_device(device)
    model.to(device).eval()

    def single_bands(data_spec):
        cutouts = open_cutouts(data_spec, pixels=recipe.data.pixels, pixel_scale_arcsec=recipe.data.pixel_scale_arcsec,
                               params=recipe.preprocessing, progress=False)
        images = centre_crop(np.asarray(cutouts.images), recipe.preprocessing.crop_pixels)
        return images, cutouts.bands

    images, bands = single_bands(validation_spec)
    labels = np.tile(np.arange(len(bands)), len(images))
    predicted = []
    with torch.no_grad():
        for start in range(0, len(images), 64):
            x = encoder_input(images[start:start + 64], recipe.preprocessing).to(device)
            predicted.append(model.logits(x.reshape(-1, 1, *x.shape[-2:])).argmax(1).cpu().numpy())
    predicted = np.concatenate(predicted)
    train_images, _ = single_bands(train_spec)
    trivial = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    trivial.fit(noise_statistics(train_images.reshape(-1, *train_images.shape[-2:])),
                np.tile(np.arange(len(bands)), len(train_images)))
    guessed = trivial.predict(noise_statistics(images.reshape(-1, *images.shape[-2:])))
    confusion = np.zeros((len(bands), len(bands)), int)
    np.add.at(confusion, (labels, predicted), 1)
    return {"bands": bands, "images": int(len(labels)),
            "accuracy": float((predicted == labels).mean()),
            "per_band": {b: float((predicted[labels == i] == i).mean()) for i, b in enumerate(bands)},
            "noise_statistics_accuracy": float((guessed == labels).mean()),
            "noise_statistics_per_band": {b: float((guessed[labels == i] == i).mean()) for i, b in enumerate(bands)},
            "confusion": confusion.tolist()}


def _evaluate(argv: list[str]) -> dict:
    from training.evaluate import evaluate

    results, folder = evaluate(argv)
    results["cells"] = json.loads((folder / "cells.json").read_text())["cells"]
    return results


def choose_alpha(bundle: Path, out: Path, study: OwgStudyConfig, device: str) -> dict:
    """α with the lowest MAE + σ of the frozen richness head on a held-out third of the validation sky."""
    scores = {}
    for alpha in sorted({float(a) for a in study.alphas.split(",")}):
        results = _evaluate(["--bundle", str(bundle), "--label-column", LABEL, "--head", "bandwise",
                             "--loss", "mse+scatter", "--alpha", str(alpha), "--test-fraction", "0.33",
                             "--labels", str(int(0.67 * study.validation_clusters) - 1), "--seeds", "2",
                             "--no-baselines", "--device", device, "--out", str(out / f"alpha-{alpha:g}")])
        row = results["curves"]["bandwise"][-1]
        scores[f"{alpha:g}"] = {"mae": row["mae"], "sigma": row["intrinsic_scatter"],
                                "score": row["mae"] + row["intrinsic_scatter"]}
    best = min(scores, key=lambda a: scores[a]["score"])
    return {"alpha": float(best), "scores": scores, "criterion": "MAE + σ of λ on 33 % of the validation sky"}


def sweep(bundle: Path, out: Path, study: OwgStudyConfig, alpha: float, device: str, *, finetune: bool) -> dict:
    argv = ["--bundle", str(bundle), "--label-column", LABEL, "--loss", "mse+scatter", "--alpha", str(alpha),
            "--folds", str(study.folds), "--device", device, "--out", str(out)]
    if finetune:
        argv += ["--head", "finetune", "--finetune-head", "bandwise", "--fractions", study.finetune_fractions,
                 "--seeds", str(study.finetune_repeats), "--stages", "6", "--lr-decay", "1",
                 "--epochs", str(study.finetune_epochs), "--base-lr", str(study.finetune_base_lr)]
    else:
        argv += ["--head", "bandwise", "--fractions", study.fractions, "--seeds", str(study.repeats)]
    return _evaluate(argv)


def table(results: dict, method: str) -> list[dict]:
    """A model's curve, each label count with its fraction (%) of the training folds."""
    fraction = {}
    for percent, count in results["config"]["fractions"].items():
        fraction.setdefault(count, float(percent))
    return [{**row, "fraction": fraction[row["labels"]]} for row in results["curves"][method]]


def constant_predictors(bundle: Path, folds: int) -> dict:
    """MAE and σ of predicting each training pool's mean λ, and its median, on its fold (the same folds as the
    sweeps): what a model must beat to have learned anything about richness. λ's tail is long, so the median is
    the constant with the smallest MAE and the mean the one with the smallest squared error."""
    from explorer.core.bundle import load_bundle
    from explorer.core.heads import label_set, regression_metrics, stratified_folds

    labels = label_set(load_bundle(bundle).catalog, LABEL)
    parts = stratified_folds(labels, folds, 0)   # training.evaluate's split seed
    floors = {}
    for name, constant in (("mean", np.mean), ("median", np.median)):
        scores = [regression_metrics(labels.y[test], np.full(len(test), constant(np.delete(labels.y, test))))
                  for test in parts]
        floors[name] = {m: float(np.mean([s[m] for s in scores])) for m in METRICS}
    return floors


def run_study(study: OwgStudyConfig, out: Path, *, device: str = "auto", progress: bool = True) -> dict:
    from training.embed import embed_once
    from training.train import train

    out = Path(out)
    recipe = study_recipe(study)
    cv, validation = spec(study.clusters, study.seed), spec(study.validation_clusters, study.validation_seed)
    checkpoint = train(recipe, cv, out / "runs" / "band-prediction", device=device, progress=progress)
    bundle = embed_once(checkpoint, cv, out / "bundles" / "clusters", device=device, progress=progress)
    validation_bundle = embed_once(checkpoint, validation, out / "bundles" / "validation", device=device,
                                   progress=progress)
    pretext = pretext_accuracy(checkpoint, cv, validation, device)
    alpha = choose_alpha(validation_bundle, out / "evaluations" / "alpha", study, device)
    frozen = sweep(bundle, out / "evaluations" / "frozen", study, alpha["alpha"], device, finetune=False)
    tuned = sweep(bundle, out / "evaluations" / "finetune", study, alpha["alpha"], device, finetune=True)
    models = {"OWG, frozen": table(frozen, "bandwise"), "random init, frozen": table(frozen, "random-init bandwise"),
              "pixels, MLP": table(frozen, "pixels mlp"), "OWG, fine-tuned": table(tuned, "finetune"),
              "no pre-training (from scratch)": table(tuned, "supervised")}
    results = {"config": {**dataclasses.asdict(study), "device": device, "data": cv, "validation": validation,
                          "pool_size": frozen["config"]["pool_size"], "test_size": frozen["config"]["test_size"]},
               "constant_predictors": constant_predictors(bundle, study.folds), "pretext": pretext, "alpha": alpha, "models": models, "not_beaten": {
                   "frozen": frozen["not_beaten"], "fine-tuned": tuned["not_beaten"]}, "paper": PAPER}
    folder = out / "results"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "results.json", results)
    with atomic_path(folder / "results.md") as tmp:
        tmp.write_text(markdown(results))
    plot_results(results, folder)
    return results


def _cell(row: dict | None, metric: str) -> str:
    if row is None or row.get(metric) is None:
        return "–"
    se = row.get(f"{metric}_se")
    return f"{row[metric]:.2f}" + (f" ± {se:.2f}" if se else "")


def markdown(results: dict) -> str:
    cfg, pretext, paper = results["config"], results["pretext"], results["paper"]
    fractions = sorted({r["fraction"] for rows in results["models"].values() for r in rows})
    lines = [f"Richness λ on {cfg['clusters']:,} simulated clusters ({cfg['pixels']} px over 2 Mpc), "
             f"{cfg['folds']}-fold cross-validation (about {cfg['test_size']} test clusters per fold; "
             f"{cfg['repeats']} draws per fold and fraction for frozen heads, {cfg['finetune_repeats']} for "
             f"fine-tuning); loss MSE + α std(|y − ŷ|) with α = {results['alpha']['alpha']:g} (chosen on the "
             "validation sky); MAE and σ in λ, mean ± s.e. over folds and draws.", "",
             "| model | metric | " + " | ".join(f"{f:g} %" for f in fractions) + " |",
             "|---|---|" + "---|" * len(fractions)]
    for metric, label in (("mae", "MAE"), ("intrinsic_scatter", "σ")):
        for name, rows in results["models"].items():
            at = {r["fraction"]: r for r in rows}
            lines.append(f"| {name} | {label} | " + " | ".join(_cell(at.get(f), metric) for f in fractions) + " |")
    for name, floor in results["constant_predictors"].items():
        lines.append(f"| the training folds' {name} λ, for every cluster | MAE {floor['mae']:.2f} | "
                     f"σ {floor['intrinsic_scatter']:.2f} |" + " |" * (len(fractions) - 1))
    lines += ["", "Paper 4's Table 1 (24,596 SDSS clusters, 10 folds, 3 runs; units of λ not given):", "",
              "| model | metric | " + " | ".join(f"{f} %" for f in paper["fractions"]) + " |",
              "|---|---|" + "---|" * len(paper["fractions"])]
    for key, label in (("mae", "MAE"), ("sigma", "σ")):
        for name, values in paper[key].items():
            lines.append(f"| {name} | {label} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    bands = pretext["bands"]
    lines += ["", f"Band-prediction pretext on the validation sky ({pretext['images']:,} single-band images):", "",
              "| classifier | all | " + " | ".join(bands) + " |", "|---|---|" + "---|" * len(bands),
              f"| OWG network | {pretext['accuracy']:.3f} | "
              + " | ".join(f"{pretext['per_band'][b]:.3f}" for b in bands) + " |",
              f"| noise statistics only (logistic regression on pixel percentiles) | "
              f"{pretext['noise_statistics_accuracy']:.3f} | "
              + " | ".join(f"{pretext['noise_statistics_per_band'][b]:.3f}" for b in bands) + " |", ""]
    return "\n".join(lines)


def plot_results(results: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    for ax, (metric, label) in zip(axes, (("mae", "MAE of λ"), ("intrinsic_scatter", "σ of λ (residual std)"))):
        for name, rows in results["models"].items():
            style = "--" if name.startswith(("random", "pixels", "no pre")) else "-"
            ax.errorbar([r["fraction"] for r in rows], [r[metric] for r in rows],
                        yerr=[r[f"{metric}_se"] or 0.0 for r in rows], marker="o", ls=style, capsize=3, label=name)
        for name, floor in results["constant_predictors"].items():
            ax.axhline(floor[metric], color="grey", ls=":" if name == "mean" else "-.", lw=1,
                       label=f"training folds' {name} λ")
        ax.set_xscale("log")
        ax.set_xlabel("labelled fraction of the training folds (%)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("richness against label fraction (k-fold cross-validation)")
    fig.tight_layout()
    save_figure(fig, folder / "richness.png")


@cli_entry
def main(argv=None):
    cli.study_main("owg_study", load_study, run_study, markdown, argv)


if __name__ == "__main__":
    main()
