"""The command lines of training's tools, built without importing torch.

Importing torch, torchvision and umap takes seconds, so each tool module begins with
``if __name__ == "__main__": cli.parse_early("<tool>")``: ``--help`` and bad arguments are answered
(exit 0 or 2) before the heavy imports; the tool's ``main`` then parses with :func:`parser`.
"""
from __future__ import annotations

import ast
import sys
from importlib.util import find_spec
from pathlib import Path

from explorer.core.config import HEAD_KINDS, REPO_ROOT
from explorer.core.errors import ArgumentParser, non_negative_int, open_fraction, positive_float, positive_int
from training.options import MapConfig

DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"
FINETUNE_EPOCHS = 300      # paper 1's fine-tuning schedule (FinetuneRecipe.epochs)
EVALUATE_METHODS = (*HEAD_KINDS, "finetune")


def _new(tool: str) -> ArgumentParser:
    """A parser whose description is the first paragraph of the tool module's docstring (read, not imported)."""
    module = f"training.{tool}"
    source = Path(find_spec(module).origin).read_text()
    doc = ast.get_docstring(ast.parse(source)) or ""
    return ArgumentParser(prog=f"python -m {module}", description=doc.split("\n\n")[0])


def _train(p: ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="configs/<name>.yaml")
    p.add_argument("--data", required=True, help="FITS catalogue directory or sim:radio?n=5000&seed=0")
    p.add_argument("--out", required=True, help="run directory (checkpoints, loss log); rerun to resume")
    p.add_argument("--epochs", type=int, help="override the config's number of epochs")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _embed(p: ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="run directory or checkpoint.pt from training.train")
    p.add_argument("--data", help="FITS catalogue directory or sim:radio?n=5000&seed=0")
    p.add_argument("--out", required=True, help="bundle (or, with --shard, shard) folder to write, atomically")
    p.add_argument("--shard", help="i/n: embed only shard i of n (contiguous rows) into a shard folder")
    p.add_argument("--merge", nargs="+", metavar="SHARD_DIR", help="build one bundle from all n shard folders")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle (or shard) at --out")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip scoring a random-init encoder and the pixels beside the learned embeddings")
    for name, f in MapConfig.__dataclass_fields__.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(f.default), default=f.default,
                       help=f"map: {name.replace('_', ' ')} (default {f.default})")


def task_arguments(p: ArgumentParser) -> None:
    """Options shared by ``training.evaluate`` and ``training.finetune``: the task, the loss, the fine-tune recipe."""
    p.add_argument("--task", default="auto", choices=("auto", "classification", "regression"))
    p.add_argument("--log", action="store_true", help="regress log10 of a positive quantity")
    p.add_argument("--loss", default="mse", choices=("mse", "mse+scatter"), help="regression loss")
    p.add_argument("--alpha", type=float, default=1.0, help="weight of std(|y - y_hat|) in mse+scatter")
    p.add_argument("--no-class-weights", action="store_true", help="plain cross-entropy (no imbalance weights)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--stages", type=int, default=1, help="last n ResNet stages to fine-tune (0-5)")
    p.add_argument("--lr-decay", type=float, default=0.75, help="layer-wise lr decay rho")
    p.add_argument("--epochs", type=positive_int, help=f"fine-tune epochs (default {FINETUNE_EPOCHS}, paper 1)")
    p.add_argument("--base-lr", type=positive_float, default=1e-3,
                   help="fine-tune lr at batch 256 (lr = base-lr x 64 / 256; default 1e-3, paper 1)")
    p.add_argument("--head-epochs", type=non_negative_int, default=0,
                   help="epochs of the head alone, backbone frozen, before the stages join (paper 2: 10)")
    p.add_argument("--head-lr", type=positive_float, default=1e-3, help="the head's lr in those epochs")
    p.add_argument("--finetune-head", default="linear", choices=("linear", "bandwise"),
                   help="the fine-tuned network's head: linear, or paper 4's Table S2 head (a *-bandwise encoder)")


def _evaluate(p: ArgumentParser) -> None:
    p.add_argument("--bundle", required=True)
    p.add_argument("--label-column", required=True)
    p.add_argument("--filter", help="pandas expression selecting the sources, e.g. \"confidence == 'confident'\"")
    test = p.add_mutually_exclusive_group()
    test.add_argument("--test-data", help="a FITS catalogue directory or sim: spec whose labelled sources are the test set")
    test.add_argument("--test-fraction", type=open_fraction, default=0.2, help="stratified held-out part of the labels")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the fixed held-out split")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--labels", help="comma-separated label counts, e.g. 36,72,145,291")
    budget.add_argument("--fractions", help="k-fold cross-validation (paper 4): comma-separated percentages of each "
                                            "fold's training labels, e.g. 1,5,10,20,50,100")
    p.add_argument("--folds", type=positive_int, default=10, help="folds with --fractions (default 10, paper 4)")
    p.add_argument("--seeds", type=positive_int, default=10, help="seeds per label count (with --fractions: repeats "
                                                                   "per fold and fraction)")
    p.add_argument("--head", required=True, choices=EVALUATE_METHODS)
    p.add_argument("--baseline-supervised", action="store_true", help="also train the architecture from scratch")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip the random-init encoder and pixel baselines (run by default, on the same cells)")
    p.add_argument("--checkpoint", help="training run or checkpoint.pt for fine-tuning (checked by sha256)")
    p.add_argument("--out", required=True, help="output folder (rerun to resume)")
    task_arguments(p)


def _finetune(p: ArgumentParser) -> None:
    p.add_argument("--bundle", required=True)
    p.add_argument("--label-column", required=True)
    p.add_argument("--labels", type=positive_int, help="training labels (default: all outside the held-out part)")
    p.add_argument("--out-name", required=True, help="name of the head and its prediction columns")
    p.add_argument("--test-fraction", type=open_fraction, default=0.2, help="held-out part of the labels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", help="training run or checkpoint.pt (checked against the bundle's sha256)")
    p.add_argument("--supervised", action="store_true", help="train from scratch (the supervised baseline)")
    p.add_argument("--replace", action="store_true", help="replace a saved head of the same name")
    task_arguments(p)


def _demo(p: ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=5000, help="number of simulated sources")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="override configs/demo.yaml")
    p.add_argument("--force", action="store_true", help="rebuild the bundle even if it exists")
    p.add_argument("--config", type=Path, default=DEMO_CONFIG, help="the recipe (default configs/demo.yaml)")


def _ablation(p: ArgumentParser) -> None:
    p.add_argument("--grid", required=True, help="configs/ablations/<name>.yaml")
    p.add_argument("--out", required=True, help="folder of the runs (rerun to resume)")
    p.add_argument("--only", help="comma-separated variants to run (default: all, in the grid's order)")
    p.add_argument("--device", default="auto")
    p.add_argument("--summarise", action="store_true", help="only write summary.csv and monitor.png")


def _simulate(p: ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=5000, help="number of sources (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="write a FITS catalogue directory here")
    p.add_argument("--examples", help="save a PNG grid of example cutouts per class here")


def _lenses(p: ArgumentParser) -> None:
    p.add_argument("--n", type=positive_int, default=2000, help="number of lenses (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--instrument", default="train", choices=("train", "shifted"),
                   help="PSF family and noise level (shifted: the test lenses')")
    p.add_argument("--pixels", type=positive_int, default=55, help="image side over the 5.5 arcsec field (paper: 110)")
    p.add_argument("--out", required=True, help="write a FITS catalogue directory here")


def _radio_fields(p: ArgumentParser) -> None:
    p.add_argument("--n", type=positive_int, default=500, help="number of 3-arcmin fields (default 500)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--mix", default="simulated", choices=("simulated", "paper"),
                   help="class mix: the simulator's own, or drawn towards paper 3's Table 3 from 4x as many fields")
    p.add_argument("--out", required=True, help="write a field catalogue directory here")


def _detector(p: ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "claran_d1.yaml",
                   help="detector recipe (default configs/claran_d1.yaml)")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, loss.csv); rerun to resume")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _detection_eval(p: ArgumentParser) -> None:
    p.add_argument("--run", type=Path, required=True, help="detector run folder (python -m training.detector)")
    p.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "claran_d1.yaml",
                   help="recipe whose data.test is evaluated when --data is not given")
    p.add_argument("--data", help="test fields: sim:fields?n=300&seed=1 or a field catalogue directory")
    p.add_argument("--rgz", default=str(REPO_ROOT.parent / "shared" / "data" / "mirabest" / "rgz_components.csv"),
                   help="Radio Galaxy Zoo consensus of MiraBest sources, for the real FIRST check")
    p.add_argument("--out", type=Path, required=True, help="write results.json and results.md here")


def _detect(p: ArgumentParser) -> None:
    p.add_argument("--run", type=Path, required=True, help="detector run folder (python -m training.detector)")
    p.add_argument("--data", type=Path, required=True, help="FITS catalogue directory (catalog.csv + FITS with a WCS)")
    p.add_argument("--out", type=Path, required=True,
                   help="write the detected sources here (a FITS catalogue directory for training.embed)")
    p.add_argument("--bundle", type=Path, help="a bundle of the same catalogue: add det_class and det_prob to its map")
    p.add_argument("--all-detections", action="store_true",
                   help="keep every detection (default: paper 3's P >= 0.8 filter)")


def _study(config: str):
    """The arguments of a one-command study whose default sizes and recipes are ``configs/<config>``."""
    def add(p: ArgumentParser) -> None:
        p.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / config,
                       help=f"the study's sizes and recipes (default configs/{config})")
        p.add_argument("--out", type=Path, required=True, help="study folder (runs, bundles, results); rerun to resume")
        p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return add


TOOLS = {"train": _train, "embed": _embed, "evaluate": _evaluate, "finetune": _finetune, "demo": _demo,
         "ablation": _ablation, "simulate": _simulate, "lenses": _lenses, "lens_study": _study("lens_study.yaml"),
         "splus_study": _study("splus_study.yaml"), "owg_study": _study("owg_study.yaml"),
         "radio_fields": _radio_fields, "detector": _detector,
         "detection_eval": _detection_eval, "detect": _detect}


def parser(tool: str) -> ArgumentParser:
    built = _new(tool)
    TOOLS[tool](built)
    return built


def study_main(tool: str, load_study, run_study, markdown, argv=None) -> None:
    """A one-command study's main: run (or resume) it, print its tables and say where they are."""
    args = parser(tool).parse_args(argv)
    results = run_study(load_study(args.config), args.out, device=args.device)
    print(markdown(results))
    print(f"results: {Path(args.out) / 'results'}")


def parse_early(tool: str) -> None:
    """Answer ``--help`` and bad arguments now (this exits); good arguments are parsed again by the tool's main."""
    parser(tool).parse_args(sys.argv[1:])
