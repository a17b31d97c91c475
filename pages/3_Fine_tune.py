"""Fine-tune: train a head on a label column, judge it on held-out labels, paint its predictions on the map.

Frozen heads (linear probe, MLP, k-NN) train in a thread; "fine-tune encoder" runs
``python -m training.finetune`` as a subprocess. Either way the page stays usable, and the
predictions arrive as new colour-by columns. Below: label sources yourself, undo, and ask
which sources to label next.
"""
import numpy as np
import streamlit as st
import torch

from explorer.app import jobs, ui, views

from explorer.core import heads, labels
from explorer.core.errors import InputError
from explorer.core.export import to_csv_bytes, to_votable_bytes
from explorer.app.latent_map import Marks
from explorer.core.headplots import confusion_figure, learning_curve_figure, predicted_vs_true_figure

JOB_KEY = "finetune.job"          # the running (or last) ThreadJob / ProcessJob
SHOWN_KEY = "finetune.shown"      # the saved head whose results are shown
FLASH_KEY = "finetune.flash"      # a message to show after the rerun that follows an action
NEW_CLASS = "➕ new class…"
HEAD_NAMES = {"linear": "Linear probe (paper 1)", "mlp": "MLP", "knn": "k-NN", "bandwise": "Band-wise conv head (paper 4)",
              "finetune": "Fine-tune encoder"}
LOSS_NAMES = {"mse": "MSE", "mse+scatter": "MSE + α·std(|y − ŷ|) (paper 4)"}

context = ui.context()
loaded, bundle = context.loaded, context.loaded.bundle


def flash(message: str) -> None:
    st.session_state[FLASH_KEY] = message


def start(spec: heads.HeadSpec, epochs: int, stages: int) -> None:
    if spec.head == "finetune":
        command = jobs.finetune_command(bundle.path, spec, epochs=epochs, stages=stages)
        st.session_state[JOB_KEY] = jobs.ProcessJob(command, bundle.path, spec.name)
    else:
        def work(progress, cancel):
            return heads.train_frozen_head(bundle, spec, on_progress=progress, cancel=cancel)
        st.session_state[JOB_KEY] = jobs.ThreadJob(work, name=spec.name)


@st.fragment(run_every=1.0)
def job_panel() -> None:
    job = st.session_state.get(JOB_KEY)
    if job is None:
        return
    if not job.finished:
        st.progress(job.fraction, text=f"**{job.name}**: {job.message}")
        st.button("Cancel", on_click=job.cancel, key="finetune.cancel", icon=":material/stop:")
        return
    if job.state == "done":
        st.session_state.pop(JOB_KEY)
        for key in [k for k in st.session_state if str(k).startswith(("finetune.name.", "finetune.replace"))]:
            del st.session_state[key]  # the name form proposes the next free name, and replacing is asked again
        st.session_state[SHOWN_KEY] = job.name
        flash(f"Trained **{job.name}**: its predictions are now colour-by columns in the sidebar.")
        st.rerun()
    elif job.state == "failed":
        st.error(job.error, icon=":material/error:")
    else:
        st.warning(f"{job.name}: {job.message}", icon=":material/cancel:")


st.markdown(f"#### {bundle.name} — few-label heads")
if FLASH_KEY in st.session_state:
    st.success(st.session_state.pop(FLASH_KEY), icon=":material/check_circle:")

# ----------------------------------------------------------------------------- train
st.subheader("Train a head")
columns = bundle.property_columns
default = heads.default_label_column(bundle.catalog, preferred=labels.USER_LABEL_COLUMN)  # one that can train
left, right = st.columns(2)
column = left.selectbox("Label column", columns, key=ui.remember("finetune.column", default, columns),
                        help="Only sources with a value in this column train and test the head.")
detected = heads.detect_task_kind(bundle.catalog[column])
task = right.radio("Task", heads.TASK_KINDS, horizontal=True, help=f"Detected: {detected}.",
                   key=ui.remember(f"finetune.task.{column}", detected, heads.TASK_KINDS))
log = task == "regression" and right.toggle("Regress log₁₀ of the values", key=ui.remember(f"finetune.log.{column}", False),
                                            help="For positive quantities spanning decades (sizes, fluxes, richness).")
try:
    label_set = heads.label_set(bundle.catalog, column, kind=task, log=log, unit=bundle.column_unit(column))
except InputError as e:
    st.error(str(e), icon=":material/error:")
    label_set = None

if label_set is not None:
    if task == "classification":
        counts = np.bincount(label_set.y, minlength=len(label_set.task.classes))
        st.caption(f"{len(label_set):,} labelled of {bundle.n:,} sources · " +
                   " · ".join(f"{c}: {n:,}" for c, n in zip(label_set.task.classes, counts)))
    else:
        st.caption(f"{len(label_set):,} labelled of {bundle.n:,} sources · {label_set.task.target} from "
                   f"{label_set.y.min():.4g} to {label_set.y.max():.4g}")
    a, b, c = st.columns(3)
    test_fraction = a.slider("Held-out labels", 0.1, 0.5, step=0.05, key=ui.remember("finetune.test_fraction", 0.2),
                             help="A fixed stratified part of the labels that only scores the head.")
    pool = len(label_set) - int(round(test_fraction * len(label_set)))
    kinds = heads.frozen_head_kinds(bundle.manifest.encoder)
    can_finetune, why_not = jobs.finetune_available(bundle)
    if can_finetune:
        kinds.append("finetune")
    head = b.selectbox("Head", kinds, format_func=HEAD_NAMES.get, key=ui.remember("finetune.head", kinds[0], kinds),
                       help=None if can_finetune else f"Fine-tuning the encoder is unavailable: {why_not}.")
    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    device = c.selectbox("Device", devices, key=ui.remember("finetune.device", devices[0], devices))
    fewest = len(label_set.task.classes) if task == "classification" else 2  # a label of each class
    if pool <= fewest:
        st.error(f"Only {pool} label(s) remain for training, and a head needs more than {fewest} "
                 f"({'one of each class' if task == 'classification' else 'two at least'}); label more sources or "
                 "hold out fewer.")
    else:
        budget_key = ui.remember("finetune.budget", min(pool, max(145, fewest)))
        st.session_state[budget_key] = int(np.clip(st.session_state[budget_key], fewest, pool))  # labels come and go
        budget = st.slider("Label budget (stratified random)", fewest, pool, key=budget_key,
                           help="How many of the remaining labels train the head; the learning curve uses fewer.")
        loss, alpha = "mse", 1.0
        if task == "regression":
            l, a = st.columns(2)
            loss = l.selectbox("Loss", heads.REGRESSION_LOSSES, key=ui.remember("finetune.loss", "mse", heads.REGRESSION_LOSSES),
                               format_func=LOSS_NAMES.get, help="Paper 4 trains richness with MSE + α·std(|y − ŷ|), "
                                                                "which also narrows the scatter of the residuals.")
            alpha = a.number_input("α", 0.0, 100.0, step=0.25, key=ui.remember("finetune.alpha", 1.0),
                                   disabled=loss == "mse", help="Weight of the scatter term (paper 4 does not give it; "
                                                                "training.owg_study chooses it on validation data).")
        epochs, stages = 0, 1
        if head == "finetune":
            e, s = st.columns(2)
            epochs = e.number_input("Epochs", 1, 1000, key=ui.remember("finetune.epochs", 30), help="Paper 1 used 300.")
            stages = s.slider("Unfrozen ResNet stages", 0, 5, key=ui.remember("finetune.stages", 1),
                              help="The last n stages train, with layer-wise lr decay 0.75 from the head.")
        name = st.text_input("Head name", heads.free_name(bundle.path, f"{column}_{head}"),
                             key=f"finetune.name.{column}.{head}",
                             help="Prefix of the new colour columns, e.g. NAME_class / NAME_prob. A new head gets a "
                                  "new name (…_2, …_3); an existing one is replaced only when you say so.")
        replace = heads.head_exists(bundle.path, name) and st.checkbox(
            f"Replace the saved head **{name}** and its colour columns", key="finetune.replace")
        running = JOB_KEY in st.session_state and not st.session_state[JOB_KEY].finished
        if st.button("Train", type="primary", disabled=running, icon=":material/model_training:", key="finetune.train"):
            spec = heads.HeadSpec(column, name, head, task, log, budget, test_fraction, device=device,
                                  loss=loss, alpha=float(alpha), replace=bool(replace))
            try:
                heads.check_new_name(bundle.path, name, replace=spec.replace)
                start(spec, int(epochs), int(stages))
            except InputError as e:
                st.error(str(e), icon=":material/error:")
job_panel()

# ----------------------------------------------------------------------------- results
saved = heads.saved_heads(bundle.path)
if saved:
    st.subheader("Results")
    names = [m["name"] for m in saved]
    if st.session_state.get(SHOWN_KEY) not in names:
        st.session_state[SHOWN_KEY] = names[0]
    meta = saved[names.index(st.selectbox("Saved head", names, key=SHOWN_KEY))]
    shown_task, metrics = heads.Task.from_dict(meta["task"]), meta["metrics"]
    st.caption(f"{meta['kind']} head on **{shown_task.target}** · {len(meta['train_ids']):,} training labels · "
               f"saved in `heads/{meta['name']}/` · colour columns: " + ", ".join(f"`{c}`" for c in meta["columns"]))
    if not metrics:
        st.info("No held-out labels: nothing to score.")
    elif shown_task.kind == "classification":
        m = st.columns(3)
        m[0].metric("Held-out accuracy", f"{metrics['accuracy']:.1%}")
        m[1].metric("Error", f"{metrics['error']:.1%}")
        m[2].metric("Held-out labels", f"{metrics['n']:,}")
    else:
        m = st.columns(5)
        for slot, (key, title) in zip(m, (("mae", "MAE"), ("rmse", "RMSE"), ("r2", "R²"),
                                          ("intrinsic_scatter", "Scatter σ(r)"), ("bias", "Bias"))):
            slot.metric(title, "—" if metrics.get(key) is None else f"{metrics[key]:.4g}")
    quality, curve = st.columns(2)
    if metrics and shown_task.kind == "classification":
        quality.plotly_chart(confusion_figure(metrics), key="finetune.confusion")
    elif metrics:
        quality.plotly_chart(predicted_vs_true_figure(*heads.held_out_values(bundle.catalog, meta), shown_task),
                             key="finetune.scatter")
    if meta.get("learning_curve"):
        curve.plotly_chart(learning_curve_figure({meta["kind"]: meta["learning_curve"]}, shown_task),
                           key="finetune.curve")
    if metrics and shown_task.kind == "classification":
        st.dataframe([{"class": c, **v} for c, v in metrics["per_class"].items()], hide_index=True)
    table = heads.predictions_export(bundle.catalog, meta)
    d1, d2 = st.columns(2)
    d1.download_button("Predictions (CSV)", to_csv_bytes(table), f"{meta['name']}.csv", "text/csv",
                       icon=":material/download:", key="finetune.csv")
    d2.download_button("Predictions (VOTable)", to_votable_bytes(table, bundle.manifest.columns, name=meta["name"]),
                       f"{meta['name']}.vot", "application/x-votable+xml", icon=":material/download:", key="finetune.vot")

# ----------------------------------------------------------------------------- label
st.subheader("Label sources")
focus = ui.current_focus(loaded)
rows = focus.rows if focus else ()
ui.map_view(context, Marks(selection=tuple(rows[:views.SELECTION_OVERLAY_CAP])), key="finetune.map", height=480)
existing = labels.classes(bundle)
st.caption(f"{len(rows):,} source(s) selected — click, box or lasso here or on the Explore page · "
           f"{len(labels.read_labels(bundle.path)):,} labelled so far in `{labels.USER_LABEL_COLUMN}`")
pick, typed = st.columns(2)
choice = pick.selectbox("Label as…", [*existing, NEW_CLASS], key="finetune.label_choice")
new_class = typed.text_input("New class name", key="finetune.new_class", disabled=choice != NEW_CLASS)
label_button, clear_button, undo_button, suggest_button = st.columns(4)
try:
    if label_button.button("Label selected", disabled=not rows, key="finetune.label", icon=":material/sell:"):
        label = new_class if choice == NEW_CLASS else choice
        changed = labels.assign(bundle, rows, label)
        flash(f"Labelled {changed} source(s) as {label.strip()!r}.")
        st.rerun()
    if clear_button.button("Clear their labels", disabled=not rows, key="finetune.clear"):
        flash(f"Cleared {labels.assign(bundle, rows, None)} label(s).")
        st.rerun()
    if undo_button.button("Undo", disabled=not labels.read_history(bundle.path), key="finetune.undo",
                          icon=":material/undo:"):
        flash(labels.undo(bundle) or "Nothing to undo.")
        st.rerun()
    if saved and suggest_button.button("Label these next", key="finetune.suggest", icon=":material/lightbulb:",
                                       help="The unlabelled sources the shown head is least sure about."):
        suggested = labels.suggest_next(bundle.catalog, meta)
        if len(suggested):
            ui.set_focus(views.Focus(loaded.path, "selection", tuple(int(r) for r in suggested)))
            flash(f"Selected the {len(suggested)} unlabelled sources {meta['name']} is least sure about: label them.")
        else:
            flash(f"Every source has a {meta['task']['column']!r} label: nothing left to suggest.")
        st.rerun()
except InputError as e:
    st.error(str(e), icon=":material/error:")
if rows:
    ui.gallery(loaded, views.selection_gallery(bundle, rows, display=context.display), key="finetune.gallery",
               switch_to_explore=True)
