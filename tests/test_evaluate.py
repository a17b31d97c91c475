"""The label-efficiency CLI: nested subsets per seed, mean and standard error, plots, resume, bad input."""
import json

import numpy as np
import pytest

from explorer.core.bundle import Manifest
from explorer.core.bundle import load_bundle, write_bundle
from explorer.core.heads import budget_subset, label_set, split_labels
from explorer.core.search import build_index
from tests.test_finetune import sim_bundle_at
from tests.test_heads import clustered
from training import evaluate


@pytest.fixture(scope="module")
def frozen_bundle(tmp_path_factory):
    catalog, x = clustered(n=400, classes=3, seed=11, spread=6.0)  # overlapping classes: error falls with labels
    catalog["confidence"] = np.where(np.arange(400) % 4 == 0, "uncertain", "confident")
    path = tmp_path_factory.mktemp("evaluate") / "b"
    return write_bundle(path, manifest=Manifest(), catalog=catalog, embeddings=x, map_xy=x[:, :2],
                        thumbnails=np.zeros((400, 4, 4), np.uint8), index=build_index(x)[0], pca_mean=x.mean(0),
                        pca_components=np.eye(32, dtype=np.float32)[:2])


def run(bundle, out, *extra):
    evaluate.main(["--bundle", str(bundle), "--label-column", "kind", "--out", str(out), "--device", "cpu", *extra])
    return json.loads((out / evaluate.RESULTS_FILE).read_text())


def run_frozen(bundle, out, *extra):
    """The protocol on embeddings without an encoder: there is nothing to compare them with."""
    return run(bundle, out, "--no-baselines", *extra)


def test_results_hold_mean_and_standard_error_per_label_count(frozen_bundle, tmp_path, capsys):
    results = run_frozen(frozen_bundle, tmp_path, "--filter", "confidence == 'confident'", "--test-fraction", "0.25",
                  "--labels", "6,24,96", "--seeds", "3", "--head", "linear")
    config, (curve,) = results["config"], results["curves"].values()
    assert config["test_size"] == 75 and config["pool_size"] == 225 and config["filter"] == "confidence == 'confident'"
    assert [row["labels"] for row in curve] == [6, 24, 96] and all(row["seeds"] == 3 for row in curve)
    cells = json.loads((tmp_path / evaluate.CELLS_FILE).read_text())["cells"]
    for row in curve:
        errors = np.array([c["metrics"]["error"] for c in cells if c["labels"] == row["labels"]])
        assert row["error"] == pytest.approx(errors.mean())
        assert row["error_se"] == pytest.approx(errors.std(ddof=1) / np.sqrt(3))
    assert curve[0]["error"] > curve[1]["error"] > curve[2]["error"] and curve[2]["error"] < 0.15
    assert (tmp_path / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotly" in (tmp_path / "learning_curve.html").read_text()[:5000].lower()
    assert "linear error: 6:" in capsys.readouterr().out


def test_subsets_are_nested_within_each_seed(frozen_bundle):
    labels = label_set(load_bundle(frozen_bundle).catalog, "kind")
    pool, _ = split_labels(labels, 0.2)
    for seed in range(3):
        subsets = [set(budget_subset(labels, pool, n, seed)) for n in (36, 72, 145, 291)]
        assert all(a < b for a, b in zip(subsets, subsets[1:]))


def test_a_rerun_resumes_and_more_seeds_only_add_cells(frozen_bundle, tmp_path, capsys):
    args = ("--labels", "10,20", "--seeds", "2", "--head", "knn")
    first = run_frozen(frozen_bundle, tmp_path, *args)
    cells = json.loads((tmp_path / evaluate.CELLS_FILE).read_text())["cells"]
    assert len(cells) == 4
    capsys.readouterr()
    assert run_frozen(frozen_bundle, tmp_path, *args) == first
    assert "resuming: 4 cell(s) done, 0 to go" in capsys.readouterr().out
    run_frozen(frozen_bundle, tmp_path, "--labels", "10,20", "--seeds", "3", "--head", "knn")
    after = json.loads((tmp_path / evaluate.CELLS_FILE).read_text())["cells"]
    assert after[:4] == cells and len(after) == 6
    with pytest.raises(SystemExit):
        run_frozen(frozen_bundle, tmp_path, "--labels", "10", "--seeds", "1", "--head", "knn", "--test-fraction", "0.3")
    assert "holds an evaluation with other settings" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (("--labels", "10,400"), "only 320 labelled sources are available for training, fewer than the requested 400"),
    (("--labels", "10", "--filter", "nonsense >"), "cannot be evaluated on the catalogue"),
    (("--labels", "10", "--filter", "confidence == 'none'"), "keeps no sources"),
    (("--labels", "ten"), "comma-separated integers"),
    (("--labels", "10", "--task", "regression"), "non-numeric value(s)"),
    (("--labels", "10", "--baselines"), "cannot be computed; pass --no-baselines"),
])
def test_bad_input_is_one_line(frozen_bundle, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as stop:
        baselines = "--baselines" in extra
        extra = tuple(e for e in extra if e != "--baselines")
        (run if baselines else run_frozen)(frozen_bundle, tmp_path, "--head", "linear", "--seeds", "1", *extra)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_fine_tune_and_supervised_curves_on_a_simulated_bundle(tmp_path):
    bundle = sim_bundle_at(tmp_path)
    results = run(bundle, tmp_path / "out", "--label-column", "morphology", "--head", "finetune",
                  "--baseline-supervised", "--labels", "20,40", "--seeds", "1", "--epochs", "1",
                  "--test-data", "sim:radio?n=30&seed=7")
    assert set(results["curves"]) == {"finetune", "supervised", "pixels linear"}
    assert results["config"]["test_size"] == 30 and results["config"]["pool_size"] == 200
    assert all(0 <= row["error"] <= 1 for rows in results["curves"].values() for row in rows)
    knn = run(bundle, tmp_path / "knn", "--label-column", "morphology", "--head", "knn", "--labels", "50",
              "--seeds", "1", "--test-data", "sim:radio?n=30&seed=7")
    assert knn["config"]["test"] == "sim:radio?n=30&seed=7" and knn["curves"]["knn"][0]["labels"] == 50


def test_baselines_run_on_the_same_cells_and_a_random_init_encoder_is_flagged(tmp_path, capsys):
    """The fixture bundle's encoder *is* a seed-0 random ResNet-18, so the random-init baseline must
    reproduce its scores exactly, and the CLI must say that the "pre-training" does not help."""
    bundle = sim_bundle_at(tmp_path)
    results = run(bundle, tmp_path / "out", "--label-column", "morphology", "--head", "knn", "--labels", "40,120",
                  "--seeds", "2", "--test-fraction", "0.25")
    assert set(results["curves"]) == {"knn", "random-init knn", "pixels knn"}
    mine, random_init = results["curves"]["knn"], results["curves"]["random-init knn"]
    assert [r["error"] for r in random_init] == pytest.approx([r["error"] for r in mine], abs=1e-9)
    assert all(r["seeds"] == 2 for rows in results["curves"].values() for r in rows)
    assert results["not_beaten"]["random-init knn"] == [40, 120]
    out = capsys.readouterr().out
    assert "pixels knn error: 40:" in out
    assert "WARNING: knn is no better than random-init knn at 40, 120 labels" in out


def test_not_beaten_lists_the_counts_where_a_baseline_is_as_good():
    curves = {"linear": [{"labels": 10, "error": 0.3}, {"labels": 20, "error": 0.1}],
              "random-init linear": [{"labels": 10, "error": 0.25}, {"labels": 20, "error": 0.2}],
              "pixels linear": [{"labels": 10, "error": 0.3}, {"labels": 20, "error": None}]}
    assert evaluate.not_beaten(curves, "linear", "error") == {"random-init linear": [10], "pixels linear": [10]}
    assert evaluate.baseline_methods("finetune", supervised=False, baselines=True) == ["supervised", "pixels linear"]
    assert evaluate.baseline_methods("linear", supervised=False, baselines=False) == []
