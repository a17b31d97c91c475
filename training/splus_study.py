"""Paper 2's study in one command: the magnitude pretext on 12-band, 5-band and RGB inputs, then star / galaxy /
quasar with few labels, frozen and fine-tuned.

    python -m training.splus_study --out runs/splus-study                       # the CPU default (~22 min)
    python -m training.splus_study --config configs/splus_study_gpu.yaml --out runs/splus-gpu --device cuda

Steps, each resumed when the command is run again: simulate the S-PLUS-like skies (:mod:`training.splus`: a
labelled training sky, an independent test sky of another seed, and paper 2's unlabelled set X_u, bright sources
measured within 0.05 mag in every band, with its own test split) -> for each input, pre-train the magnitude
regression on X_u (``training.train``) and embed the labelled training sky (``training.embed``) -> the pretext's
MAE per band on X_u's test split and on the labelled test sky -> ``training.evaluate`` twice: a frozen head on
the embeddings at every label count (beside a random-init encoder of the same input and the pixels), and paper 2's fine-tuning (the head alone, then every layer) at
``finetune_labels`` (the 12-band run also beside the same network trained from scratch). Both are
class-weighted and scored on the test sky.

``<OUT>/results/``: ``results.json``, ``results.md`` (the README's tables, paper 2's numbers beside ours),
``few_labels.png`` (accuracy against labels) and ``accuracy_r_fwhm.png`` (accuracy of the fine-tuned models on
the test sky sorted by r magnitude and by FWHM, in bins of ``bin_size`` sources).
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("splus_study")

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.core.atomic import atomic_path, save_figure, write_json
from explorer.core.errors import InputError, cli_entry
from explorer.core.heads import label_set
from training import cli
from training.config import TrainConfig, load_config, repo_path
from training.options import build, limited, read_yaml

INPUTS = ("12band", "5band", "rgb")
LABEL = "class"
# Paper 2 (SEEDS.md section 2): validation accuracy (Tables 5.3-5.4), test accuracy (5.5), quasar recall (5.6),
# quasar -> star confusion (5.7), pretext MAE (5.1, validation).
PAPER = {"frozen": {"12band": 0.6859, "5band": 0.5436, "rgb": 0.7011},
         "finetuned": {"12band": 0.9378, "5band": 0.9130, "rgb": 0.9138},
         "test_accuracy": {"12band": 0.9367, "rgb": 0.9095},
         "quasar_recall": {"12band": 0.892, "rgb": 0.770},
         "quasar_as_star": {"12band": 0.06, "rgb": 0.17},
         "pretext_mae": {"12band": 0.0490, "5band": 0.1449, "rgb": 0.0655},
         "rgb_imagenet": {"frozen": 0.8668, "finetuned": 0.9156}}


@dataclass
class SplusStudyConfig:
    train_sources: int = limited(3000, 32, 200_000)    # the labelled sky (paper 2's X_l)
    test_sources: int = limited(1000, 16, 200_000)
    seed: int = limited(0, 0)
    test_seed: int = limited(1, 0)
    # The pretext's own unlabelled sky (paper 2's X_u): drawn to r_max and cut at max_mag_err in every band.
    unlabelled_sources: int = limited(6000, 32, 200_000)  # rendered; about half pass the cut at r <= 18
    unlabelled_test_sources: int = limited(1000, 16, 200_000)
    unlabelled_seed: int = limited(3, 0)
    unlabelled_test_seed: int = limited(4, 0)
    unlabelled_r_max: float = limited(18.0, 14.5, 21.0)
    max_mag_err: float = limited(0.05, 1e-3)
    pretext_epochs: int = limited(8, 1)          # overrides the recipes' optim.epochs (paper: 100)
    labels: str = "100,500,2000"                 # nested label subsets of the frozen head's curve
    frozen_head: str = limited("mlp", choices=("linear", "mlp", "knn"))
    frozen_seeds: int = limited(2, 1)
    finetune_labels: str = "2000"
    finetune_seeds: int = limited(1, 1)
    head_epochs: int = limited(10, 0)            # paper 2: the head alone for 10 epochs ...
    finetune_epochs: int = limited(10, 1)        # ... then every layer for 100
    finetune_base_lr: float = limited(4e-4, 1e-9, 1.0)  # lr = base x 64 / 256 (paper 2: 1e-5, base 4e-5)
    bin_size: int = limited(100, 2)              # sources per bin of accuracy against r and FWHM (paper: 100)
    recipe_12band: str = "configs/splus_magnitudes.yaml"
    recipe_5band: str = "configs/splus_magnitudes_5band.yaml"
    recipe_rgb: str = "configs/splus_magnitudes_rgb.yaml"


def load_study(path: str | Path) -> SplusStudyConfig:
    return build(SplusStudyConfig, read_yaml(path, "study config"), str(path))


def spec(n: int, seed: int, inputs: str) -> str:
    return f"sim:splus?n={n}&seed={seed}&input={inputs}"


def unlabelled_spec(study: SplusStudyConfig, n: int, seed: int, inputs: str) -> str:
    """Paper 2's X_u: the sky drawn to ``unlabelled_r_max``, every source measured within ``max_mag_err``."""
    return f"{spec(n, seed, inputs)}&r_max={study.unlabelled_r_max:g}&max_mag_err={study.max_mag_err:g}"


def study_recipes(study: SplusStudyConfig) -> dict[str, TrainConfig]:
    """The three pretext recipes with the study's epochs, checked to be the magnitude regression."""
    recipes = {}
    for inputs in INPUTS:
        name = getattr(study, f"recipe_{inputs}")
        recipe = load_config(repo_path(name))
        if recipe.method != "magnitudes":
            raise InputError(f"{name}: the {inputs} recipe must be the magnitude pretext (method: magnitudes)")
        recipes[inputs] = dataclasses.replace(recipe, optim=dataclasses.replace(recipe.optim,
                                                                                 epochs=study.pretext_epochs))
    return recipes


def pretext_mae(checkpoint: Path, data: str, device) -> dict:
    """The magnitude regression's MAE on ``data``, overall and per magnitude, in magnitudes and in the /scale units
    the network regresses (paper 2's tables do not say which they give)."""
    import torch

    from explorer.core.encoder import resolve_device
    from explorer.core.preprocess import encoder_input
    from training.dataset import open_cutouts
    from training.methods import method_class
    from training.train import encoder_from_checkpoint, load_checkpoint

    state = load_checkpoint(checkpoint)
    encoder, recipe = encoder_from_checkpoint(state)
    model = method_class(recipe.method)(encoder, encoder.dim, recipe.options)
    model.load_state_dict(state["model"])
    device = resolve_device(device)
    model.to(device).eval()
    cutouts = open_cutouts(data, pixels=recipe.data.pixels, pixel_scale_arcsec=recipe.data.pixel_scale_arcsec,
                           params=recipe.preprocessing, progress=False)
    predicted = []
    with torch.no_grad():
        for start in range(0, len(cutouts.images), 256):
            x = encoder_input(np.asarray(cutouts.images[start:start + 256]), recipe.preprocessing).to(device)
            predicted.append(model.predict(x).float().cpu().numpy())
    columns = list(recipe.options.columns)
    error = np.abs(np.concatenate(predicted) - cutouts.catalog[columns].to_numpy(np.float64))
    scale = recipe.options.scale
    per_band = {c.removeprefix("mag_"): float(np.nanmean(error[:, i])) for i, c in enumerate(columns)}
    return {"mae_mag": float(np.nanmean(error)), "mae_scaled": float(np.nanmean(error)) / scale, "scale": scale,
            "per_band_mag": per_band, "n": int(len(error))}


def _evaluation(bundle: Path, out: Path, study: SplusStudyConfig, test: str, device: str, *, finetune: bool,
                baselines: bool) -> dict:
    from training.evaluate import evaluate

    argv = ["--bundle", str(bundle), "--label-column", LABEL, "--test-data", test, "--device", device, "--out", str(out)]
    if finetune:
        argv += ["--head", "finetune", "--labels", study.finetune_labels, "--seeds", str(study.finetune_seeds),
                 "--stages", "5", "--lr-decay", "1", "--head-epochs", str(study.head_epochs),
                 "--epochs", str(study.finetune_epochs), "--base-lr", str(study.finetune_base_lr)]
    else:
        argv += ["--head", study.frozen_head, "--labels", study.labels, "--seeds", str(study.frozen_seeds)]
    results, folder = evaluate(argv + ([] if baselines else ["--no-baselines"]))
    results["cells"] = json.loads((folder / "cells.json").read_text())["cells"]
    return results


def at_most_labels(results: dict, method: str) -> dict:
    """Accuracy, per-class precision and recall and the confusion at the largest label count, over every seed
    (confusions summed), and the per-source predictions of seed 0."""
    cells = [c for c in results["cells"] if c["method"] == method]
    count = max(c["labels"] for c in cells)
    cells = sorted((c for c in cells if c["labels"] == count), key=lambda c: c["seed"])
    classes = cells[0]["metrics"]["classes"]
    confusion = np.sum([c["metrics"]["confusion"] for c in cells], axis=0)
    accuracy = [c["metrics"]["accuracy"] for c in cells]
    correct, predicted, support = np.diag(confusion), confusion.sum(0), confusion.sum(1)
    per_class = {k: {"precision": float(correct[i] / predicted[i]) if predicted[i] else None,
                     "recall": float(correct[i] / support[i]) if support[i] else None} for i, k in enumerate(classes)}
    q, s = classes.index("quasar"), classes.index("star")
    return {"labels": count, "seeds": len(cells), "accuracy": float(np.mean(accuracy)),
            "accuracy_se": float(np.std(accuracy, ddof=1) / np.sqrt(len(accuracy))) if len(accuracy) > 1 else None,
            "per_class": per_class, "quasar_as_star": float(confusion[q, s] / max(support[q], 1)),
            "confusion": confusion.tolist(), "classes": classes, "predicted": cells[0]["predicted"]}


def binned_accuracy(correct: np.ndarray, by: np.ndarray, size: int) -> list[dict]:
    """Sources sorted by ``by`` (those without a value left out) and cut into bins of ``size``: the bin's median and
    accuracy (paper 2's Figs 5.8-5.9)."""
    known = np.isfinite(by)
    order = np.argsort(by[known], kind="stable")
    value, hit = by[known][order], correct[known][order]
    return [{"median": float(np.median(value[i:i + size])), "accuracy": float(hit[i:i + size].mean()),
             "n": int(len(value[i:i + size]))} for i in range(0, len(value) - size + 1, size)]


def run_study(study: SplusStudyConfig, out: Path, *, device: str = "auto", progress: bool = True) -> dict:
    from training.embed import embed_once
    from training.splus import cached_sky
    from training.train import train

    out = Path(out)
    recipes = study_recipes(study)
    tests = {inputs: spec(study.test_sources, study.test_seed, inputs) for inputs in INPUTS}
    pretext, pretext_labelled, frozen, finetuned = {}, {}, {}, {}
    for inputs, recipe in recipes.items():
        unlabelled = unlabelled_spec(study, study.unlabelled_sources, study.unlabelled_seed, inputs)
        checkpoint = train(recipe, unlabelled, out / "runs" / inputs, device=device, progress=progress)
        train_spec = spec(study.train_sources, study.seed, inputs)
        bundle = embed_once(checkpoint, train_spec, out / "bundles" / inputs, device=device, progress=progress)
        unlabelled_test = unlabelled_spec(study, study.unlabelled_test_sources, study.unlabelled_test_seed, inputs)
        pretext[inputs] = pretext_mae(checkpoint, unlabelled_test, device)
        pretext_labelled[inputs] = pretext_mae(checkpoint, tests[inputs], device)
        frozen[inputs] = _evaluation(bundle, out / "evaluations" / f"{inputs}-frozen", study, tests[inputs], device,
                                     finetune=False, baselines=True)
        finetuned[inputs] = _evaluation(bundle, out / "evaluations" / f"{inputs}-finetune", study, tests[inputs],
                                        device, finetune=True, baselines=inputs == "12band")

    head = study.frozen_head
    models = {**{f"{i} frozen": at_most_labels(frozen[i], head) for i in INPUTS},
              **{f"{i} fine-tuned": at_most_labels(finetuned[i], "finetune") for i in INPUTS},
              **{f"{i} random-init frozen": at_most_labels(frozen[i], f"random-init {head}") for i in INPUTS},
              "pixels frozen": at_most_labels(frozen["12band"], f"pixels {head}"),
              "12band from scratch": at_most_labels(finetuned["12band"], "supervised")}
    test_catalog = cached_sky(study.test_sources, study.test_seed, progress=False).catalog  # every input's rows
    truth = label_set(test_catalog, LABEL)
    if list(truth.task.classes) != models["12band frozen"]["classes"]:
        raise InputError(f"the test sky's classes {truth.task.classes} differ from the training sky's")
    rows = test_catalog.iloc[truth.rows]
    by_r, by_fwhm = {}, {}
    for name in [f"{i} fine-tuned" for i in INPUTS] + ["12band frozen", "12band random-init frozen"]:
        correct = np.asarray(models[name]["predicted"]) == truth.y
        by_r[name] = binned_accuracy(correct, rows["mag_r"].to_numpy(np.float64), study.bin_size)
        size = rows["fwhm_arcsec"].to_numpy(np.float64)
        by_fwhm[name] = binned_accuracy(correct, np.where(size > 0, size, np.nan), study.bin_size)  # 0: unmeasured
    curves = {f"{i} frozen": frozen[i]["curves"][head] for i in INPUTS}
    curves |= {f"{i} random-init": frozen[i]["curves"][f"random-init {head}"] for i in INPUTS}
    curves["pixels"] = frozen["12band"]["curves"][f"pixels {head}"]
    curves |= {f"{i} fine-tuned": finetuned[i]["curves"]["finetune"] for i in INPUTS}
    results = {"config": {**dataclasses.asdict(study), "device": device, "test": tests},
               "test_class_mix": rows[LABEL].value_counts(normalize=True).round(4).to_dict(),
               "pretext": pretext, "pretext_labelled_test": pretext_labelled,
               "models": {k: {m: v for m, v in d.items() if m != "predicted"} for k, d in models.items()},
               "curves": curves, "accuracy_by_r": by_r, "accuracy_by_fwhm": by_fwhm, "paper": PAPER}
    folder = out / "results"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "results.json", results)
    with atomic_path(folder / "results.md") as tmp:
        tmp.write_text(markdown(results))
    plot_results(results, folder)
    return results


def _f(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _acc(model: dict) -> str:
    se = model.get("accuracy_se")
    return f"{model['accuracy']:.3f}" + (f" ± {se:.3f}" if se else "")


def markdown(results: dict) -> str:
    cfg, paper, models, pretext = results["config"], results["paper"], results["models"], results["pretext"]
    lines = [f"Star / galaxy / quasar on {cfg['test_sources']:,} test sources (seed {cfg['test_seed']}); "
             f"{models['12band frozen']['labels']:,} labels for the frozen heads ({cfg['frozen_head']}, "
             f"{cfg['frozen_seeds']} seeds, mean ± s.e.), {models['12band fine-tuned']['labels']:,} for fine-tuning "
             f"({cfg['finetune_seeds']} seed(s)); class-weighted cross-entropy.", "",
             "| input | frozen | fine-tuned | quasar recall (fine-tuned) | quasar → star | random-init, frozen | "
             "paper frozen / fine-tuned (val) | paper test | paper quasar recall / → star |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i in INPUTS:
        tuned = models[f"{i} fine-tuned"]
        lines.append(f"| {i} | {_acc(models[f'{i} frozen'])} | {_acc(tuned)} | "
                     f"{_f(tuned['per_class']['quasar']['recall'])} | {_f(tuned['quasar_as_star'])} | "
                     f"{_acc(models[f'{i} random-init frozen'])} | {paper['frozen'][i]} / {paper['finetuned'][i]} | "
                     f"{paper['test_accuracy'].get(i, '–')} | {paper['quasar_recall'].get(i, '–')} / "
                     f"{paper['quasar_as_star'].get(i, '–')} |")
    lines.append(f"| pixels (12 bands), frozen head | {_acc(models['pixels frozen'])} | – | – | – | – | – | – | – |")
    scratch = models["12band from scratch"]
    lines.append(f"| 12band, trained from scratch | – | {_acc(scratch)} | "
                 f"{_f(scratch['per_class']['quasar']['recall'])} | {_f(scratch['quasar_as_star'])} | – | – | – | – |")
    lines.append(f"| RGB, ImageNet weights (paper only) | – | – | – | – | – | {paper['rgb_imagenet']['frozen']} / "
                 f"{paper['rgb_imagenet']['finetuned']} | – | – |")
    lines += ["", "Per-class precision / recall of the fine-tuned models:", "",
              "| input | star | galaxy | quasar |", "|---|---|---|---|"]
    for i in INPUTS:
        per = models[f"{i} fine-tuned"]["per_class"]
        lines.append(f"| {i} | " + " | ".join(f"{_f(per[c]['precision'])} / {_f(per[c]['recall'])}"
                                              for c in ("star", "galaxy", "quasar")) + " |")
    bands = list(pretext["12band"]["per_band_mag"])
    lines += ["", f"Pretext MAE on the unlabelled test sky ({pretext['12band']['n']:,} sources of r ≤ "
              f"{cfg['unlabelled_r_max']:g} measured within {cfg['max_mag_err']:g} mag in every band, like paper 2's "
              f"X_u), in magnitudes (and /{pretext['12band']['scale']:g}, the units the network regresses); paper 2's "
              "Table 5.1 (validation) does not say which it gives, and its per-band test MAE (Table 5.2) is "
              "0.040-0.072. Last column: the same network on the labelled test sky, down to r = 21:", "",
              "| input | MAE (mag) | MAE (/35) | paper | " + " | ".join(bands) + " | labelled test sky (mag) |",
              "|---|---|---|---|" + "---|" * len(bands) + "---|"]
    for i in INPUTS:
        p = pretext[i]
        lines.append(f"| {i} | {p['mae_mag']:.3f} | {p['mae_scaled']:.4f} | {paper['pretext_mae'][i]} | "
                     + " | ".join(_f(p["per_band_mag"].get(b), 2) for b in bands)
                     + f" | {results['pretext_labelled_test'][i]['mae_mag']:.3f} |")
    size = cfg["bin_size"]
    lines += ["", f"Accuracy against r and FWHM (paper 2's Figs 5.8-5.9: the test sky sorted, bins of {size}; "
              "the brightest and faintest, smallest and largest bins):", "",
              "| model | r: brightest bin | r: faintest bin | FWHM: smallest bin | FWHM: largest bin |",
              "|---|---|---|---|---|"]
    for name in results["accuracy_by_r"]:
        r, w = results["accuracy_by_r"][name], results["accuracy_by_fwhm"][name]
        lines.append(f"| {name} | {r[0]['accuracy']:.2f} (r {r[0]['median']:.1f}) | {r[-1]['accuracy']:.2f} "
                     f"(r {r[-1]['median']:.1f}) | {w[0]['accuracy']:.2f} ({w[0]['median']:.2f}″) | "
                     f"{w[-1]['accuracy']:.2f} ({w[-1]['median']:.2f}″) |")
    lines.append("")
    return "\n".join(lines)


def plot_results(results: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, rows in results["curves"].items():
        style = "--" if "random-init" in name or name == "pixels" else "-"
        ax.errorbar([r["labels"] for r in rows], [r["accuracy"] for r in rows],
                    yerr=[r["accuracy_se"] or 0.0 for r in rows], marker="o", ls=style, capsize=3, label=name)
    ax.set_xlabel("training labels")
    ax.set_ylabel("test accuracy")
    ax.set_title("star / galaxy / quasar: accuracy against labels")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, folder / "few_labels.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    for ax, (key, label) in zip(axes, (("accuracy_by_r", "r (AUTO mag)"), ("accuracy_by_fwhm", "FWHM (arcsec)"))):
        for name, bins in results[key].items():
            ax.plot([b["median"] for b in bins], [b["accuracy"] for b in bins], marker=".", label=name)
        ax.set_xlabel(f"{label}, median of each bin of {results['config']['bin_size']}")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    axes[1].set_xscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, folder / "accuracy_r_fwhm.png")


@cli_entry
def main(argv=None):
    cli.study_main("splus_study", load_study, run_study, markdown, argv)


if __name__ == "__main__":
    main()
