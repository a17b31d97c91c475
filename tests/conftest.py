"""Shared fixtures: a small real bundle for the explorer tests.

``synthetic_bundle`` is written by :func:`explorer.core.bundle.write_bundle` from clustered
synthetic data (benchmarks/synthetic.py) in about a second. Explorer tests that only need
*a* bundle take ``explorer_bundle``, whose params can grow to include a bundle built by
the real training pipeline.
"""
import os
import tempfile

import pytest

from benchmarks.synthetic import synthetic_bundle as build_synthetic_bundle
from explorer.core.bundle import load_bundle
from tests.pipeline_fixtures import lens_study, small_demo  # noqa: F401  (session fixtures: the real pipeline)


def pytest_configure(config):
    """Caches (cutouts, names, survey answers) of the whole run go to a scratch home, never the repository's."""
    os.environ.setdefault("EXPLORER_HOME", tempfile.mkdtemp(prefix="explorer-tests-home-"))


@pytest.fixture(scope="session")
def synthetic_bundle(tmp_path_factory):
    """Path of a ~600-source bundle: morphology, las_arcsec, flux_mjy, z (some missing), bend_angle_deg (0 if straight)."""
    return build_synthetic_bundle(tmp_path_factory.mktemp("bundles") / "synthetic", n=600, dim=32, seed=0)


@pytest.fixture(scope="session")
def demo_bundle(small_demo):
    """Path of a small bundle built by simulate -> BYOL -> embed."""
    return small_demo["bundle"]


@pytest.fixture(scope="session", params=["synthetic_bundle", "demo_bundle"])
def explorer_bundle(request):
    """A loaded bundle for tests that hold for any bundle."""
    return load_bundle(request.getfixturevalue(request.param))
