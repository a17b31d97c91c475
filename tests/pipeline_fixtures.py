"""Session fixtures that build real bundles with the training pipeline."""
import pytest


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory):
    """A small demo built by the real pipeline (simulate -> FITS -> BYOL -> embed), shared by the suite."""
    from training.demo import build_demo

    root = tmp_path_factory.mktemp("demo")
    n = 800
    result = build_demo(n=n, seed=3, epochs=2, sky_dir=root / "sky", run_dir=root / "run",
                        bundle_dir=root / "bundles" / "demo-small", progress=False)
    return {"bundle": result["bundle"], "sky": str(root / "sky"), "run": root / "run", "n": n}


@pytest.fixture(scope="session")
def lens_study(tmp_path_factory):
    """Paper 5's whole study (training.lens_study) at a tiny size: simulate -> LenSiam and SimSiam -> embed ->
    evaluate -> table; its two bundles hold the same lenses."""
    import yaml

    from explorer.core.config import REPO_ROOT
    from training.lens_study import load_study, run_study

    root = tmp_path_factory.mktemp("lens-study")
    recipes = {}
    for name in ("lensiam", "lens_simsiam"):
        recipe = yaml.safe_load((REPO_ROOT / "configs" / f"{name}.yaml").read_text())
        recipe["optim"].update(epochs=1, batch_size=32)
        recipes[name] = root / f"{name}.yaml"
        recipes[name].write_text(yaml.safe_dump(recipe))
    study = root / "study.yaml"
    study.write_text(yaml.safe_dump({
        "train_lenses": 96, "test_lenses": 32, "labels": 40, "linear_seeds": 1, "finetune_seeds": 1,
        "finetune_epochs": 1, "map_folds": 3, "lensiam_recipe": str(recipes["lensiam"]),
        "simsiam_recipe": str(recipes["lens_simsiam"])}))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXPLORER_HOME", str(root / "home"))
        results = run_study(load_study(study), root / "out", device="cpu", progress=False)
    return {"results": results, "out": root / "out", "study": study, "home": root / "home",
            "bundles": root / "out" / "bundles"}
