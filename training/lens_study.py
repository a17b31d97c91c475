"""Paper 5's study in one command: simulated lenses, LenSiam and SimSiam on them, and how well each keeps the lens.

    python -m training.lens_study --out runs/lens-study                      # the CPU default (~25 min)
    python -m training.lens_study --config configs/lens_study_gpu.yaml --out runs/lens-gpu --device cuda

Steps, each resumed when the command is run again: simulate the training lenses (with their positive
pairs) and an independent test set (another seed and the ``shifted`` instrument: another PSF family and
noise level, as the paper's test lenses came from another simulator) -> pre-train LenSiam and SimSiam
(``training.train``) -> embed both (``training.embed``) -> ``training.evaluate``: a linear probe and
fine-tuning for θ_E with ``labels`` lenses, scored on the test set, beside a random-init encoder, the
pixels and the same network trained from scratch -> the map's k-NN R² for each mass parameter.

``<OUT>/results/``: ``results.json``, ``results.md`` (the README's table, the paper's numbers beside
ours) and ``maps.png`` (each model's map coloured by each mass parameter).
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("lens_study")

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.core.atomic import atomic_path, save_figure, write_json
from explorer.core.bundle import load_bundle
from explorer.core.encoder import resolve_device
from explorer.core.errors import InputError, cli_entry
from training import cli
from training.config import load_config, repo_path
from training.lenses import MASS
from training.methods import method_class
from training.options import MapConfig, build, limited, read_yaml

PAPER = {"finetune_r2": {"LenSiam": 0.586, "SimSiam": 0.426, "supervised": 0.360},
         "final_loss": {"LenSiam": -0.92, "SimSiam": -0.94}}


@dataclass
class StudyConfig:
    train_lenses: int = limited(4000, 16, 200_000)
    test_lenses: int = limited(1000, 8, 200_000)
    seed: int = limited(0, 0)
    test_seed: int = limited(1, 0)
    labels: int = limited(1000, 2)               # labelled training lenses (paper: 1,000)
    linear_seeds: int = limited(3, 1)
    finetune_seeds: int = limited(2, 1)
    finetune_epochs: int = limited(20, 1)
    finetune_stages: int = limited(5, 0, 5)      # ResNet stages fine-tuned (5: all)
    map_neighbours: int = limited(10, 1)         # k of the k-NN regression on the 2-D map
    map_folds: int = limited(5, 2, 20)
    lensiam_recipe: str = "configs/lensiam.yaml"
    simsiam_recipe: str = "configs/lens_simsiam.yaml"


def load_study(path: str | Path) -> StudyConfig:
    return build(StudyConfig, read_yaml(path, "study config"), str(path))


def specs(study: StudyConfig) -> dict[str, str]:
    base = f"sim:lens?n={study.train_lenses}&seed={study.seed}"
    return {"train": base, "pairs": f"{base}&pairs=1",
            "test": f"sim:lens?n={study.test_lenses}&seed={study.test_seed}&instrument=shifted"}


def map_knn_r2(map_xy: np.ndarray, catalog: pd.DataFrame, k: int, folds: int) -> dict[str, float]:
    """Cross-validated R² of a k-NN regression of each mass parameter from the 2-D map (paper 5's Fig. 2 in
    numbers: is the map ordered by that parameter?)."""
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.metrics import r2_score
    from sklearn.neighbors import KNeighborsRegressor

    xy = (map_xy - map_xy.mean(0)) / np.maximum(map_xy.std(0), 1e-12)
    splits = KFold(folds, shuffle=True, random_state=0)
    out = {}
    for column in MASS:
        y = catalog[column].to_numpy(np.float64)
        predicted = cross_val_predict(KNeighborsRegressor(k), xy, y, cv=splits)
        out[column] = float(r2_score(y, predicted))
    return out


def baseline_maps(bundle, data: str, device) -> dict[str, np.ndarray]:
    """Maps of a random-init encoder of the bundle's architecture and of the pixels, made like the bundle's."""
    from training.dataset import open_cutouts
    from training.embed import fit_map
    from training.quality import encoder_features, pixel_features, random_init_encoder

    recipe, params = bundle.manifest, bundle.preprocessing()
    cutouts = open_cutouts(data, pixels=recipe.data.pixels, pixel_scale_arcsec=recipe.data.pixel_scale_arcsec,
                           params=params, progress=False)
    images = np.asarray(cutouts.images)
    encoder = random_init_encoder(recipe.encoder.architecture, recipe.encoder.in_channels, seed=0)
    features = {"random init": encoder_features(encoder, images, params, device=device),
                "pixels": pixel_features(images, params)}
    settings = MapConfig()
    return {name: fit_map(x, settings.pca_components, settings.umap_neighbors, settings.umap_min_dist, 0)[0]
            for name, x in features.items()}


def final_loss(run_dir: Path) -> float:
    return float(pd.read_csv(run_dir / "loss.csv").query("epoch > 0")["loss"].iloc[-1])


def _r2(results: dict, method: str) -> dict:
    row = results["curves"][method][0]
    return {"r2": row["r2"], "r2_se": row.get("r2_se")}


def study_recipes(study: StudyConfig) -> dict:
    """The two SSL recipes of a study, checked to see the same images."""
    recipes = {"LenSiam": load_config(repo_path(study.lensiam_recipe)),
               "SimSiam": load_config(repo_path(study.simsiam_recipe))}
    shapes = {(r.data.pixels, r.data.pixel_scale_arcsec, json.dumps(r.preprocessing.to_dict())) for r in recipes.values()}
    if len(shapes) > 1:
        raise InputError("the LenSiam and SimSiam recipes must see the same images: give them the same data and "
                         "preprocessing sections")
    if not method_class(recipes["LenSiam"].method).partners:
        raise InputError(f"{study.lensiam_recipe}: the LenSiam recipe must train on the simulator's pairs "
                         "(method: lensiam)")
    return recipes


def run_study(study: StudyConfig, out: Path, *, device: str = "auto", progress: bool = True) -> dict:
    from training.embed import embed_once
    from training.evaluate import evaluate
    from training.train import train

    out = Path(out)
    data = specs(study)
    recipes = study_recipes(study)
    bundles, losses = {}, {}
    for name, recipe in recipes.items():
        run_dir = out / "runs" / name.lower()
        spec = data["pairs"] if method_class(recipe.method).partners else data["train"]
        checkpoint = train(recipe, spec, run_dir, device=device, progress=progress)
        bundles[name] = embed_once(checkpoint, data["train"], out / "bundles" / name.lower(), device=device,
                                 progress=progress)
        losses[name] = final_loss(run_dir)

    common = ["--label-column", "theta_e", "--test-data", data["test"], "--labels", str(study.labels),
              "--device", device]
    linear, finetuned = {}, {}
    for i, (name, bundle) in enumerate(bundles.items()):
        linear[name], _ = evaluate(["--bundle", str(bundle), "--head", "linear", "--seeds", str(study.linear_seeds),
                                    "--out", str(out / "evaluations" / f"{name.lower()}-linear"), *common])
        # the supervised baseline and the pixels are the same for both models: trained once, beside LenSiam
        finetuned[name], _ = evaluate(["--bundle", str(bundle), "--head", "finetune",
                                       "--seeds", str(study.finetune_seeds), "--epochs", str(study.finetune_epochs),
                                       "--stages", str(study.finetune_stages),
                                       "--out", str(out / "evaluations" / f"{name.lower()}-finetune"), *common,
                                       *([] if i == 0 else ["--no-baselines"])])

    first = load_bundle(bundles["LenSiam"])
    maps = {name: load_bundle(path).map_xy for name, path in bundles.items()}
    maps.update(baseline_maps(first, data["train"], resolve_device(device)))
    catalog = first.catalog
    knn = {name: map_knn_r2(xy, catalog, study.map_neighbours, study.map_folds) for name, xy in maps.items()}
    results = {
        "config": {**study.__dict__, "data": data, "device": device},
        "linear_r2": {**{name: _r2(r, "linear") for name, r in linear.items()},
                      "random init": _r2(linear["LenSiam"], "random-init linear"),
                      "pixels": _r2(linear["LenSiam"], "pixels linear")},
        "finetune_r2": {**{name: _r2(r, "finetune") for name, r in finetuned.items()},
                        "supervised": _r2(finetuned["LenSiam"], "supervised"),
                        "pixels": _r2(finetuned["LenSiam"], "pixels linear")},
        "map_knn_r2": knn,
        "final_loss": losses,
        "paper": PAPER,
    }
    folder = out / "results"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "results.json", results)
    with atomic_path(folder / "results.md") as tmp:
        tmp.write_text(markdown(results))
    plot_maps(maps, catalog, knn, folder / "maps.png")
    return results


def _cell(value: dict) -> str:
    se = value.get("r2_se")
    return f"{value['r2']:.3f}" + (f" ± {se:.3f}" if se else "")


def markdown(results: dict) -> str:
    cfg, paper = results["config"], results["paper"]
    lines = [f"R²(θ_E) on {cfg['test_lenses']:,} test lenses (seed {cfg['test_seed']}, shifted instrument), "
             f"{cfg['labels']:,} labelled training lenses; mean ± standard error over seeds.", "",
             "| model | linear probe | fine-tuned | paper, fine-tuned |", "|---|---|---|---|"]
    for name in ("LenSiam", "SimSiam"):
        lines.append(f"| {name} | {_cell(results['linear_r2'][name])} | {_cell(results['finetune_r2'][name])} | "
                     f"{paper['finetune_r2'][name]} |")
    lines.append(f"| trained from scratch | – | {_cell(results['finetune_r2']['supervised'])} | "
                 f"{paper['finetune_r2']['supervised']} (ImageNet ResNet-101) |")
    lines.append(f"| random-init encoder | {_cell(results['linear_r2']['random init'])} | – | – |")
    lines.append(f"| pixels | {_cell(results['linear_r2']['pixels'])} | – | – |")
    lines += ["", "k-NN R² of each mass parameter from the 2-D map (paper 5, Fig. 2: θ_E, e1 and γ ordered for "
              "LenSiam only):", "", "| map | " + " | ".join(MASS) + " |", "|---|" + "---|" * len(MASS)]
    for name, scores in results["map_knn_r2"].items():
        lines.append(f"| {name} | " + " | ".join(f"{scores[c]:.3f}" for c in MASS) + " |")
    lines += ["", "Final SSL loss: " + ", ".join(f"{n} {v:.3f} (paper {paper['final_loss'][n]})"
                                                 for n, v in results["final_loss"].items()), ""]
    return "\n".join(lines)


def plot_maps(maps: dict[str, np.ndarray], catalog: pd.DataFrame, knn: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(maps), len(MASS), figsize=(2.0 * len(MASS), 2.1 * len(maps)), dpi=90,
                             squeeze=False)
    for row, (name, xy) in enumerate(maps.items()):
        for col, column in enumerate(MASS):
            ax = axes[row, col]
            ax.scatter(xy[:, 0], xy[:, 1], c=catalog[column], s=1, cmap="viridis", rasterized=True)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{column}: R² {knn[name][column]:.2f}", fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


@cli_entry
def main(argv=None):
    cli.study_main("lens_study", load_study, run_study, markdown, argv)


if __name__ == "__main__":
    main()
