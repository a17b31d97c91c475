"""The strong-lens simulator (paper 5), LenSiam's pairs, the one-command study and the Compare page."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from explorer.app import compare, ui
from explorer.core.bundle import load_bundle
from explorer.core.errors import InputError
from explorer.core.preprocess import Preprocessing, preprocess
from tests.app_helpers import galleries, map_data
from training.data import load_data, parse_sim_spec
from training.lenses import (COLUMNS, FIELD_ARCSEC, MASS, NATIVE_PIXELS, RENDERING, einstein_ring_radius, render_row,
                             simulate_lenses)

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")


@pytest.fixture(scope="module")
def pairs():
    return simulate_lenses(24, seed=3, pairs=True, progress=False)


def test_a_pair_shares_the_mass_exactly_and_differs_in_everything_else(pairs):
    first, second = pairs.catalog, pairs.partner_catalog
    assert (first[list(MASS)].to_numpy() == second[list(MASS)].to_numpy()).all()
    for column in ("source_x", "source_r", "light_r", "light_to_arc", "snr", "noise_seed", "knot_seed"):
        assert (first[column].to_numpy() != second[column].to_numpy()).all(), column
    assert not np.allclose(pairs.images, pairs.partners)
    # different lenses have different masses
    assert first["theta_e"].nunique() == len(first)


def test_the_first_views_do_not_depend_on_whether_pairs_are_rendered(pairs):
    alone = simulate_lenses(24, seed=3, progress=False)
    assert np.array_equal(alone.images, pairs.images)
    pd.testing.assert_frame_equal(alone.catalog, pairs.catalog)


def test_every_catalogue_column_renders_its_image(pairs):
    for i in (0, 7, 19):
        row = pairs.catalog.iloc[i]
        assert np.array_equal(render_row(row), pairs.images[i])
        assert np.array_equal(render_row(pairs.partner_catalog.iloc[i]), pairs.partners[i])
        changed = row.copy()
        changed["theta_e"] *= 1.2
        assert not np.allclose(render_row(changed), pairs.images[i])
    assert set(MASS) | set(RENDERING) <= set(pairs.catalog.columns) <= set(COLUMNS) | {"id", "ra", "dec"}
    assert pairs.images.shape == (24, 55, 55) and np.allclose(pairs.images.max(axis=(1, 2)), 1.0)


@pytest.mark.parametrize("theta_e", [0.6, 1.1, 1.8])
@pytest.mark.parametrize("e1", [0.0, 0.1])
def test_the_einstein_ring_of_a_centred_compact_source_forms_at_theta_e(pairs, theta_e, e1):
    row = pairs.catalog.iloc[0].copy()
    row.update({"theta_e": theta_e, "gamma": 2.0, "e1": e1, "e2": 0.0, "theta1": 0.0, "theta2": 0.0, "gamma1": 0.0,
                "gamma2": 0.0, "source_x": 0.0, "source_y": 0.0, "source_r": 0.05, "source_n": 1.0,
                "source_e1": 0.0, "source_e2": 0.0, "source_profile": "sersic", "knots": 0, "merger": 0})
    image = render_row(row, NATIVE_PIXELS, noise=False, lens_light=False, psf=False)
    scale = FIELD_ARCSEC / NATIVE_PIXELS
    assert abs(einstein_ring_radius(image, scale) - theta_e) <= scale  # within a pixel (SIS, SIE)


def test_lens_specs_are_checked(pairs):
    assert parse_sim_spec("sim:lens?n=10&seed=2&instrument=shifted")["instrument"] == "shifted"
    for bad, said in [("sim:lens?instrument=jwst", "instrument"), ("sim:lens?pairs=2", "pairs"),
                      ("sim:lens?zoom=1", "unknown parameter")]:
        with pytest.raises(InputError, match=said):
            parse_sim_spec(bad)
    with pytest.raises(InputError, match="5.5"):
        load_data("sim:lens?n=4", pixels=64, pixel_scale_arcsec=0.1)


def test_the_shifted_instrument_has_other_psfs_and_more_noise():
    train = simulate_lenses(40, seed=1, progress=False).catalog
    shifted = simulate_lenses(40, seed=1, instrument="shifted", progress=False).catalog
    assert train["psf_fwhm"].max() < shifted["psf_fwhm"].min() + 0.03
    assert shifted["psf_fwhm"].mean() > train["psf_fwhm"].mean() and shifted["snr"].mean() < train["snr"].mean()


def test_max_scaling_keeps_the_noise_and_peaks_at_one(pairs):
    x = preprocess(pairs.images[:4], Preprocessing(scaling="max", crop_pixels=55, input_pixels=40))
    assert np.allclose(x.max(axis=(-2, -1)), 1.0) and (x < 0).any()


def test_lensiam_views_are_the_two_renderings(pairs):
    from training.config import load_config
    from training.views import make_views

    config = load_config(REPO / "configs" / "lensiam.yaml")
    params = config.preprocessing
    images = torch.from_numpy(preprocess(pairs.images[:4], params, margin_for_rotation=True))
    partners = torch.from_numpy(preprocess(pairs.partners[:4], params, margin_for_rotation=True))
    views = make_views("simulated_pairs")({"images": images, "partners": partners}, config, torch.Generator(),
                                          slice(None), 4)["views"]
    assert views[0].shape == (4, 1, 40, 40)
    assert not torch.allclose(views[0], views[1])


def test_lensiam_refuses_data_without_pairs(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "training.train", "--config", "configs/lensiam.yaml",
                             "--data", "sim:lens?n=40", "--out", str(tmp_path / "run"), "--epochs", "1"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "pairs=1" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("study", ["lens_study.yaml", "lens_study_gpu.yaml"])
def test_the_cpu_and_gpu_studies_train_both_models_on_the_same_lens_images(study):
    from explorer.core.encoder import build_encoder
    from training.lens_study import load_study, study_recipes

    recipes = study_recipes(load_study(REPO / "configs" / study))
    lensiam = recipes["LenSiam"]
    assert lensiam.data.pixels * lensiam.data.pixel_scale_arcsec == pytest.approx(FIELD_ARCSEC)
    assert {r.encoder.architecture for r in recipes.values()} == {"resnet101" if "gpu" in study else "resnet18"}
    encoder, dim = build_encoder(lensiam.encoder.architecture, 1)
    x = torch.zeros(2, 1, lensiam.preprocessing.input_pixels, lensiam.preprocessing.input_pixels)
    assert encoder.eval()(x).shape == (2, dim)


def test_the_lens_simulator_writes_a_fits_catalogue(tmp_path):
    from explorer.core.fitsio import load_fits_catalogue

    result = subprocess.run([sys.executable, "-m", "training.lenses", "--n", "6", "--seed", "2", "--out",
                             str(tmp_path / "lenses")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    images, catalog, columns, skipped = load_fits_catalogue(tmp_path / "lenses", pixels=55, pixel_scale_arcsec=0.1)
    expected = simulate_lenses(6, seed=2, progress=False)
    assert not skipped and np.allclose(images[:, 0], expected.images, atol=1e-6)
    assert np.allclose(catalog["theta_e"], expected.catalog["theta_e"]) and columns["theta_e"]["unit"] == "arcsec"
    from astropy.io import fits

    header = fits.getheader(next((tmp_path / "lenses" / "fits").glob("*.fits")))
    assert "Jy" not in header["BUNIT"] and "lens" in header.comments["TELESCOP"]


# ----------------------------------------------------------------------------- the study, end to end
def test_the_study_runs_end_to_end_and_resumes(lens_study, monkeypatch):
    from training.lens_study import load_study, run_study

    results, out = lens_study["results"], lens_study["out"]
    assert set(results["linear_r2"]) == {"LenSiam", "SimSiam", "random init", "pixels"}
    assert set(results["finetune_r2"]) == {"LenSiam", "SimSiam", "supervised", "pixels"}
    assert set(results["map_knn_r2"]) == {"LenSiam", "SimSiam", "random init", "pixels"}
    assert all(set(scores) == set(MASS) for scores in results["map_knn_r2"].values())
    assert all(np.isfinite(v["r2"]) for v in results["linear_r2"].values())
    assert json.loads((out / "results" / "results.json").read_text())["final_loss"] == results["final_loss"]
    assert "| LenSiam |" in (out / "results" / "results.md").read_text() and (out / "results" / "maps.png").is_file()
    checkpoint = out / "runs" / "lensiam" / "checkpoint.pt"
    before = checkpoint.stat().st_mtime_ns
    monkeypatch.setenv("EXPLORER_HOME", str(lens_study["home"]))
    again = run_study(load_study(lens_study["study"]), out, device="cpu", progress=False)
    assert checkpoint.stat().st_mtime_ns == before  # nothing retrained
    assert again["linear_r2"] == results["linear_r2"]
    a, b = (load_bundle(out / "bundles" / name) for name in ("lensiam", "simsiam"))
    assert list(a.catalog["id"]) == list(b.catalog["id"]) and "theta_e" in a.catalog


# ----------------------------------------------------------------------------- Compare
def test_pairing_carries_rows_by_id(lens_study):
    a, b = (load_bundle(lens_study["bundles"] / name) for name in ("lensiam", "simsiam"))
    pairing = compare.pair_bundles(a, b)
    assert pairing.matched == a.n
    focus = compare.CompareFocus("b", "selection", (3, 5, 8))
    carried = focus.rows_on("a", pairing)
    assert list(a.catalog["id"].iloc[carried]) == list(b.catalog["id"].iloc[[3, 5, 8]])
    marks = compare.marks_for(compare.CompareFocus("a", "source", (4,)), "b", pairing, (1, 2))
    assert b.catalog["id"].iat[marks.source] == a.catalog["id"].iat[4] and marks.neighbours == (1, 2)
    agreement = compare.neighbour_agreement(a.catalog, 4, [1, 2, 3], "theta_e")
    expected = np.median(np.abs(a.catalog["theta_e"].iloc[[1, 2, 3]] - a.catalog["theta_e"].iat[4]))
    assert agreement["median_abs_difference"] == pytest.approx(expected)
    assert compare.neighbour_agreement(a.catalog, 4, [1], "source_profile") is None


@pytest.fixture(scope="module")
def compare_dir(lens_study, tmp_path_factory):
    """The study's LenSiam bundle beside its SimSiam bundle with the rows reversed: the Compare page must match
    sources by id, not by row."""
    import faiss

    from explorer.core.bundle import write_bundle

    root = tmp_path_factory.mktemp("compare")
    import shutil

    shutil.copytree(lens_study["bundles"] / "lensiam", root / "lensiam")
    b = load_bundle(lens_study["bundles"] / "simsiam")
    order = np.arange(b.n)[::-1]
    embeddings = np.ascontiguousarray(b.embeddings[order])
    index = faiss.IndexFlatIP(b.dim)
    index.add(embeddings)
    mean, components = b.pca()
    write_bundle(root / "simsiam-reversed", manifest=b.manifest, catalog=b.catalog.iloc[order],
                 embeddings=embeddings, map_xy=b.map_xy[order], thumbnails=b.thumbnails[order], index=index,
                 pca_mean=mean, pca_components=components,
                 encoder_state=load_file_state(lens_study["bundles"] / "simsiam"))
    return root


def load_file_state(bundle_path):
    from safetensors.torch import load_file

    return load_file(Path(bundle_path) / "encoder.safetensors")


def _compare_app(bundles, monkeypatch) -> AppTest:
    monkeypatch.setenv("EXPLORER_BUNDLES", str(bundles))
    app = AppTest.from_file(APP, default_timeout=90).run()
    app.switch_page("pages/4_Compare.py").run()
    next(w for w in app.sidebar.selectbox if w.label == "Colour by").set_value("theta_e")
    return app.run()


def _compared_bundles(app):
    """The bundles on the left (the sidebar's) and right ("Compare with") of the Compare page."""
    a = next(w for w in app.sidebar.selectbox if w.label == "Bundle").value
    b = next(w for w in app.selectbox if w.label == "Compare with").value
    return load_bundle(a), load_bundle(b)


def test_compare_page_carries_a_selection_and_a_click_to_the_other_map(compare_dir, monkeypatch):
    app = _compare_app(compare_dir, monkeypatch)
    assert not app.exception, [e.value for e in app.exception]
    a, b = _compared_bundles(app)
    assert {a.name, b.name} == {"lensiam", "simsiam-reversed"}
    pair = (str(a.path.resolve()), str(b.path.resolve()))
    assert map_data(app, "compare.map.a")["legend"] and map_data(app, "compare.map.b")["legend"]
    selected = (2, 9, 30)
    app.session_state["compare.focus"] = (pair, compare.CompareFocus("a", "selection", selected))
    app.run()
    assert not app.exception
    right = map_data(app, "compare.map.b")["marks"]["selection"]
    assert sorted(right) == sorted(b.n - 1 - np.array(selected))  # one bundle is the other reversed
    assert sorted(b.catalog["id"].iloc[right]) == sorted(a.catalog["id"].iloc[list(selected)])
    app.session_state["compare.focus"] = (pair, compare.CompareFocus("b", "source", (11,)))
    app.run()
    assert not app.exception
    left, right = map_data(app, "compare.map.a")["marks"], map_data(app, "compare.map.b")["marks"]
    assert right["source"] == 11 and left["source"] == a.n - 1 - 11
    assert a.catalog["id"].iat[left["source"]] == b.catalog["id"].iat[11]
    assert len(galleries(app)) == 2 and left["neighbours"] and right["neighbours"]
    assert any("theta_e" in m.label for m in app.metric)


def test_the_search_page_embeds_an_uploaded_lens_fits(compare_dir, tmp_path, monkeypatch):
    from explorer.app import views
    from training.lenses import main

    main(["--n", "1", "--seed", "9", "--instrument", "shifted", "--out", str(tmp_path / "new")])
    path = next((tmp_path / "new" / "fits").glob("*.fits"))
    monkeypatch.setenv("EXPLORER_BUNDLES", str(compare_dir))
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page(ui.SEARCH_PAGE).run()
    app.button_group(key="search.mode").set_value("Upload a FITS cutout").run()
    app.file_uploader(key="search.upload").set_value((path.name, path.read_bytes(), "application/fits"))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert galleries(app) and "query" in galleries(app)[0]
    table = app.dataframe[-1].value
    assert len(table) == views.DEFAULT_K and table["id"].str.startswith("LENS-").all()


@pytest.mark.browser
def test_a_lasso_on_one_compare_map_highlights_the_same_lenses_on_the_other(compare_dir):
    from benchmarks.browser import CHROMIUM, LAUNCH_ARGS, lasso_rows, map_ready, streamlit_app

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`) to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    a_key, b_key = "compare.map.a", "compare.map.b"
    with streamlit_app(compare_dir) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1400})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.get_by_role("link", name="Compare").click()
        page.wait_for_function(map_ready(a_key), timeout=60_000)
        page.wait_for_function(map_ready(b_key), timeout=60_000)
        headings = page.locator("[data-testid='stMain'] [data-testid='stMarkdownContainer'] strong").all_inner_texts()
        a_name, b_name = (h for h in headings if h in {"lensiam", "simsiam-reversed"})  # left, then right
        a, b = load_bundle(compare_dir / a_name), load_bundle(compare_dir / b_name)
        canvas = page.evaluate(f"() => window.__explorerMaps['{a_key}'].canvas.getBoundingClientRect().toJSON()")
        cx, cy = canvas["x"] + canvas["width"] * 0.5, canvas["y"] + canvas["height"] * 0.5
        angles = np.linspace(0, 2 * np.pi, 40)
        polygon = np.column_stack([cx + canvas["width"] * 0.3 * np.cos(angles),
                                   cy + canvas["height"] * 0.3 * np.sin(angles)])
        page.evaluate_handle(f"() => window.__explorerMaps['{a_key}'].bar"
                             ".querySelector(\"button[data-action='lasso']\")").as_element().click()
        page.mouse.move(*polygon[0])
        page.mouse.down()
        for x, y in polygon[1:]:
            page.mouse.move(x, y, steps=2)
        page.mouse.up()
        inside, edge = lasso_rows(page, polygon, a_key)
        assert 3 < len(inside) < a.n
        page.wait_for_function(f"() => window.__explorerMaps['{b_key}'].data.marks.selection.length > 0 && "
                               f"window.__explorerMaps['{a_key}'].data.marks.selection.length > 0", timeout=60_000)
        selected = page.evaluate(f"() => window.__explorerMaps['{a_key}'].data.marks.selection")
        highlighted = page.evaluate(f"() => window.__explorerMaps['{b_key}'].data.marks.selection")
        assert set(selected) ^ inside <= edge, "the left map selected other sources than those inside the lasso"
        assert sorted(b.catalog["id"].iloc[highlighted]) == sorted(a.catalog["id"].iloc[selected])
        ARTIFACTS = REPO / "test-artifacts"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "compare_lasso.png"), full_page=True)
        browser.close()
    assert not errors, errors


def test_compare_page_with_a_single_bundle_says_what_it_needs(tmp_path, lens_study, monkeypatch):
    import shutil

    shutil.copytree(lens_study["bundles"] / "lensiam", tmp_path / "only")
    monkeypatch.setenv("EXPLORER_BUNDLES", str(tmp_path))
    app = AppTest.from_file(APP, default_timeout=90).run()
    app.switch_page("pages/4_Compare.py").run()
    assert not app.exception and "second bundle" in app.info[0].value
