"""Ablations of a pre-training recipe, run through the representation monitor and plotted together.

    python -m training.ablation --grid configs/ablations/mirabest_byol.yaml --out runs/ablations [--only a,b]

A grid names a base recipe, the data, and variants; each variant overrides parts of the recipe
(nested keys, as in the YAML) and may replace the data spec. Every variant is an ordinary
``training.train`` run in ``<OUT>/<variant>``, so a rerun resumes it and skips the finished ones.
Outputs: ``summary.csv`` and ``summary.md`` (each variant's final and best monitored scores, its optimiser
steps and training time, beside the random-init encoder and the pixels of the same run) and ``monitor.png``
(linear-probe and k-NN scores against optimiser steps).
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("ablation")

import copy
import json
from pathlib import Path

import pandas as pd
import yaml

from explorer.core.atomic import atomic_path, save_figure
from explorer.core.errors import InputError, cli_entry
from training import cli
from training.config import config_from_dict
from training.train import BASELINES, LOSS_LOG, train


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied key by key (nested mappings merged, everything else replaced)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def read_grid(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"grid file not found: {path}")
    grid = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(grid) - {"base", "data", "variants"})
    if unknown or not isinstance(grid.get("variants"), dict) or not grid.get("base") or not grid.get("data"):
        raise InputError(f"{path}: a grid needs base (a recipe), data and variants (name: overrides)"
                         + (f"; unknown key(s) {', '.join(unknown)}" if unknown else ""))
    base_path = Path(grid["base"])  # relative to the working directory, like every --config
    if not base_path.is_file():
        raise InputError(f"{path}: base recipe not found: {base_path}")
    base = yaml.safe_load(base_path.read_text())
    variants = {}
    for name, spec in grid["variants"].items():
        spec = dict(spec or {})
        data = spec.pop("data", grid["data"])
        values = merged(base, spec)
        values["name"] = f"{base.get('name', 'run')}-{name}"
        variants[str(name)] = (config_from_dict(values, f"{path}:{name}"), str(data))
    return variants


def summarise_run(name: str, run_dir: Path) -> dict | None:
    if not (run_dir / LOSS_LOG).is_file():
        return None
    log = pd.read_csv(run_dir / LOSS_LOG)
    baselines = json.loads((run_dir / BASELINES).read_text()) if (run_dir / BASELINES).is_file() else {}
    trained = log[log["epoch"] > 0]
    monitored = trained.dropna(subset=["knn"]) if "knn" in trained else trained.iloc[0:0]
    row = {"variant": name, "epochs": int(trained["epoch"].max()), "steps": int(trained["step"].max()),
           "minutes": round(trained["seconds"].sum() / 60, 1), "final_loss": float(trained["loss"].iloc[-1])}
    for kind in ("linear", "knn"):
        if kind in monitored and len(monitored):
            row[f"{kind}_final"] = float(monitored[kind].iloc[-1])
            row[f"{kind}_best"] = float(monitored[kind].max())
            for baseline in ("random init", "pixels"):
                row[f"{kind}_{baseline.replace(' ', '_')}"] = baselines.get(baseline, {}).get(kind)
    for key in ("effective_rank", "projection_spread"):
        if key in monitored and len(monitored):
            row[f"{key}_final"] = float(monitored[key].iloc[-1])
    return row


def markdown_table(rows: list[dict]) -> str:
    """The summary as a Markdown table: each run's scores at its end (and best) beside its own random-init
    encoder and pixels (they differ with the input size)."""
    lines = ["| variant | steps | minutes | linear: final / best | random init | pixels | k-NN: final / best | "
             "random init | pixels | effective rank |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(value):
        return "-" if value is None or value != value else f"{value:.3f}"

    for r in rows:
        scores = []
        for kind in ("linear", "knn"):
            scores += [f"{cell(r.get(kind + '_final'))} / {cell(r.get(kind + '_best'))}",
                       cell(r.get(f"{kind}_random_init")), cell(r.get(f"{kind}_pixels"))]
        rank = f"{r['effective_rank_final']:.0f}" if "effective_rank_final" in r else "-"
        lines.append(f"| {r['variant']} | {r['steps']:,} | {r['minutes']:.1f} | " + " | ".join(scores) + f" | {rank} |")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), dpi=110, sharey=True)
    for ax, kind in zip(axes, ("linear", "knn")):
        reference = None
        for i, (name, run_dir) in enumerate(runs.items()):
            if not (run_dir / LOSS_LOG).is_file():
                continue
            log = pd.read_csv(run_dir / LOSS_LOG)
            if kind not in log:
                continue
            points = log.dropna(subset=[kind])
            steps = points["step"].fillna(0) if "step" in points else points["epoch"]
            ax.plot(steps, points[kind], marker="os^vD<>"[i % 7], markersize=4, color=plt.cm.tab20(i % 20), label=name)
            if reference is None and (run_dir / BASELINES).is_file():
                reference = json.loads((run_dir / BASELINES).read_text())
        for baseline, style in (("random init", "--"), ("pixels", ":")):
            if reference and kind in reference.get(baseline, {}):
                ax.axhline(reference[baseline][kind], color="k", linestyle=style, label=baseline)
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlabel("optimiser steps")
        ax.set_title(f"{kind} ({'cross-validated on the monitored sources'})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("monitored score")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, out)


@cli_entry
def main(argv=None):
    parser = cli.parser("ablation")
    args = parser.parse_args(argv)
    variants = read_grid(args.grid)
    chosen = list(variants) if not args.only else [v.strip() for v in args.only.split(",")]
    unknown = [v for v in chosen if v not in variants]
    if unknown:
        raise InputError(f"unknown variant(s) {', '.join(unknown)}; the grid has {', '.join(variants)}")
    out = Path(args.out)
    if not args.summarise:
        for name in chosen:
            config, data = variants[name]
            print(f"== {name}: {data}")
            train(config, data, out / name, device=args.device)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for r in (summarise_run(n, out / n) for n in variants) if r]
    with atomic_path(out / "summary.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(markdown_table(rows))
    plot({n: out / n for n in variants}, out / "monitor.png")
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"summary: {out / 'summary.csv'}")


if __name__ == "__main__":
    main()
