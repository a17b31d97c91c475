"""AppTest of the Fine-tune page: train heads in the background, new colour columns, labelling, undo, suggestions."""
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.synthetic import synthetic_bundle
from explorer.app import ui, views
from explorer.core import labels
from tests.app_helpers import map_data
from explorer.core.bundle import load_bundle
from tests.test_finetune import sim_bundle_at

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 60


@pytest.fixture
def bundle_path(tmp_path, monkeypatch):
    """A fresh bundle per test (training writes into it); z is missing for some sources."""
    path = synthetic_bundle(tmp_path / "bundles" / "syn", n=400, dim=32, seed=3)
    monkeypatch.setenv("EXPLORER_BUNDLES", str(path.parent))
    return path


def open_page(state=None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    app.switch_page(ui.FINETUNE_PAGE)
    for key, value in (state or {}).items():
        app.session_state[key] = value
    return app.run()


def no_exception(app):
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def wait_for_job(app, seconds=120) -> AppTest:
    """Rerun the page (as the progress fragment does every second) until the job leaves the page."""
    deadline = time.monotonic() + seconds
    while app.get("progress") and time.monotonic() < deadline:
        time.sleep(0.3)
        app.run()
    assert not app.get("progress"), "the job did not finish in time"
    return app


def colour_options(app) -> list:
    return next(w for w in app.sidebar.selectbox if w.label == "Colour by").options


def test_training_a_head_adds_colour_columns_and_shows_results(bundle_path):
    app = open_page()
    no_exception(app)
    assert app.selectbox(key="finetune.column").value == "morphology"
    assert "morphology_linear_class" not in colour_options(app)
    app.slider(key="finetune.budget").set_value(60)
    app.button(key="finetune.train").click().run()
    assert app.get("progress") or app.success          # running in the background, or already done
    wait_for_job(app)
    no_exception(app)
    assert "Trained **morphology_linear**" in app.success[0].value
    options = colour_options(app)
    for column in ("morphology_linear_class", "morphology_linear_prob", "morphology_linear_correct"):
        assert column in options
    metrics = {m.label: m.value for m in app.metric}
    assert float(metrics["Held-out accuracy"].rstrip("%")) > 80 and metrics["Held-out labels"] == "80"
    assert len(app.get("plotly_chart")) >= 2                # confusion matrix, learning curve
    assert map_data(app, "finetune.map")["n"] == load_bundle(bundle_path).n   # the labelling map
    assert len(app.get("download_button")) == 2
    # the new column colours the map at once
    next(w for w in app.sidebar.selectbox if w.label == "Colour by").set_value("morphology_linear_prob").run()
    no_exception(app)


def test_a_regression_head_with_log_shows_predicted_against_true(bundle_path):
    app = open_page()
    app.selectbox(key="finetune.column").set_value("z").run()
    assert app.radio(key="finetune.task.z").value == "regression"
    app.toggle(key="finetune.log.z").set_value(True).run()
    app.selectbox(key="finetune.head").set_value("knn").run()
    app.button(key="finetune.train").click().run()
    wait_for_job(app)
    no_exception(app)
    assert {"z_knn_pred", "z_knn_uncertainty", "z_knn_residual"} <= set(colour_options(app))
    assert {m.label for m in app.metric} >= {"MAE", "RMSE", "R²", "Scatter σ(r)"}


def test_labelling_undo_and_suggestions(bundle_path):
    bundle = load_bundle(bundle_path)
    focus = views.Focus(str(Path(bundle_path).resolve()), "selection", (4, 5, 6))
    app = open_page({ui.FOCUS_KEY: focus})
    app.selectbox(key="finetune.label_choice").set_value("➕ new class…").run()
    app.text_input(key="finetune.new_class").input("X-shaped").run()
    app.button(key="finetune.label").click().run()
    no_exception(app)
    assert "Labelled 3 source(s) as 'X-shaped'" in app.success[0].value
    assert labels.labels_by_row(bundle).iloc[[4, 5, 6]].tolist() == ["X-shaped"] * 3
    assert labels.USER_LABEL_COLUMN in colour_options(app)
    assert app.selectbox(key="finetune.label_choice").options[0] == "X-shaped"
    app.button(key="finetune.undo").click().run()
    assert "undid" in app.success[0].value and labels.read_labels(bundle_path).empty

    # a head on z (missing for some sources) suggests which of them to label next
    app.selectbox(key="finetune.column").set_value("z").run()
    app.button(key="finetune.train").click().run()
    wait_for_job(app)
    app.button(key="finetune.suggest").click().run()
    no_exception(app)
    suggested = app.session_state[ui.FOCUS_KEY].rows
    catalog = load_bundle(bundle_path).catalog
    assert len(suggested) == 12 and catalog["z"].iloc[list(suggested)].isna().all()
    uncertainty = catalog["z_linear_uncertainty"].to_numpy()
    assert uncertainty[list(suggested)].min() >= np.sort(uncertainty[catalog["z"].isna()])[::-1][11] - 1e-12


def test_bad_input_on_the_page_is_a_message(bundle_path):
    app = open_page()
    app.text_input(key="finetune.name.morphology.linear").input("bad name!").run()
    app.button(key="finetune.train").click().run()
    assert not app.exception and "use a letter then letters" in app.error[0].value
    app.selectbox(key="finetune.column").set_value("flux_mjy").run()
    app.radio(key="finetune.task.flux_mjy").set_value("classification").run()
    assert not app.exception  # a numeric column read as classes: more classes than labels, said plainly
    assert "a head needs more than" in app.error[0].value


def test_fine_tuning_the_encoder_runs_as_a_subprocess_from_the_page(tmp_path, monkeypatch):
    path = sim_bundle_at(tmp_path / "bundles")
    monkeypatch.setenv("EXPLORER_BUNDLES", str(path.parent))
    app = open_page()
    app.selectbox(key="finetune.head").set_value("finetune").run()
    app.number_input(key="finetune.epochs").set_value(1)
    app.slider(key="finetune.budget").set_value(40)
    app.button(key="finetune.train").click().run()
    wait_for_job(app, seconds=180)
    no_exception(app)
    assert "morphology_finetune_class" in colour_options(app)
    assert (path / "jobs" / "morphology_finetune.json").is_file()


def test_a_second_head_gets_a_new_name_and_an_existing_one_is_replaced_only_when_asked(bundle_path):
    app = open_page()
    app.slider(key="finetune.budget").set_value(60)
    app.button(key="finetune.train").click().run()
    wait_for_job(app)
    first = load_bundle(bundle_path).catalog["morphology_linear_prob"].copy()
    # the form now proposes a versioned name: training again cannot lose the first head
    assert app.text_input(key="finetune.name.morphology.linear").value == "morphology_linear_2"
    app.text_input(key="finetune.name.morphology.linear").input("morphology_linear").run()
    app.button(key="finetune.train").click().run()
    assert not app.exception and "already exists (linear on morphology, held-out accuracy" in app.error[0].value
    np.testing.assert_array_equal(load_bundle(bundle_path).catalog["morphology_linear_prob"], first)
    app.checkbox(key="finetune.replace").check().run()
    app.slider(key="finetune.budget").set_value(10)
    app.button(key="finetune.train").click().run()
    wait_for_job(app)
    no_exception(app)
    assert not np.array_equal(load_bundle(bundle_path).catalog["morphology_linear_prob"], first)


def test_the_budget_covers_every_class_and_the_default_column_can_train(bundle_path):
    bundle = load_bundle(bundle_path)
    labels.assign(bundle, [1, 2, 3], "only-one-class")  # user labels with one class cannot train a classifier
    app = open_page()
    no_exception(app)
    assert app.selectbox(key="finetune.column").value == "morphology"
    classes = load_bundle(bundle_path).catalog["morphology"].nunique()
    assert app.slider(key="finetune.budget").min == classes
    from explorer.core.errors import InputError
    from explorer.core.heads import HeadSpec, prepare

    with pytest.raises(InputError, match=f"cannot include each of the {classes} classes"):
        prepare(load_bundle(bundle_path).catalog, HeadSpec("morphology", "m", budget=classes - 1))


def test_cancelling_a_fine_tune_process_says_cancelled(tmp_path):
    import sys

    from explorer.app.jobs import ProcessJob

    job = ProcessJob([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path, "slow")
    job.cancel()
    job.wait(30)
    assert job.finished and job.state == "cancelled" and job.message.startswith("cancelled") and not job.error


def test_the_form_keeps_its_settings_across_pages(bundle_path):
    from explorer.app import ui

    app = open_page()
    app.slider(key="finetune.test_fraction").set_value(0.35).run()
    app.switch_page(ui.EXPLORE_PAGE).run()
    app.switch_page(ui.FINETUNE_PAGE).run()
    no_exception(app)
    assert app.slider(key="finetune.test_fraction").value == 0.35
