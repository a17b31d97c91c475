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
