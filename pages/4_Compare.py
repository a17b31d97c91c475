"""Compare: two bundles of the same sources (two encoders) side by side, one colour-by; a click or selection on
either map is shown on both, with each model's own nearest neighbours of the clicked source."""
from dataclasses import replace
from functools import partial
from pathlib import Path

import streamlit as st

from explorer.app import compare, ui, views
from explorer.core.bundle import list_bundles
from explorer.core.config import bundles_dir

FOCUS_KEY = "compare.focus"
NEIGHBOURS = 10

context = ui.context()
loaded_a = context.loaded
others = [p for p in list_bundles(bundles_dir()) if str(Path(p).resolve()) != loaded_a.path]
if not others:
    st.info("Compare needs a second bundle of the same sources (matched by id) in the bundle folder, e.g. the "
            "LenSiam and SimSiam bundles that `python -m training.lens_study` writes.", icon=":material/info:")
    st.stop()
chosen = st.selectbox("Compare with", others, format_func=lambda p: Path(p).name, key="compare.other",
                      help="The second encoder's bundle; the sidebar's bundle is on the left.")
loaded_b = ui.open_bundle(chosen)


@st.cache_resource(max_entries=8, show_spinner=False)
def _pairing(key_a, key_b) -> compare.Pairing:
    return compare.pair_bundles(loaded_a.bundle, loaded_b.bundle)


pairing = _pairing(loaded_a.key, loaded_b.key)
if pairing.matched == 0:
    st.error(f"{loaded_a.bundle.name} and {loaded_b.bundle.name} share no source id: they are not the same "
             "sources, so there is nothing to compare. Choose another bundle.", icon=":material/error:")
    st.stop()
colour = context.style.colour_by if context.style.colour_by in loaded_b.bundle.catalog.columns else None
context_b = ui.Context(loaded_b, replace(context.style, colour_by=colour),
                       compare.other_filter(context.row_filter, loaded_b.bundle.catalog), context.display)
st.caption(f"{pairing.matched:,} sources in both ({loaded_a.bundle.n:,} left, {loaded_b.bundle.n:,} right), "
           f"matched by id; both maps coloured by {context.style.colour_by or 'one colour'}"
           f"{'' if colour == context.style.colour_by else ' (the right bundle lacks that column)'}.")


PAIR = (loaded_a.path, loaded_b.path)


def _on_focus(side: compare.Side, focus: views.Focus | None) -> None:
    st.session_state[FOCUS_KEY] = None if focus is None else (PAIR, compare.CompareFocus(side, focus.kind, focus.rows))


def _on_pick(side: compare.Side, row: int) -> None:
    st.session_state[FOCUS_KEY] = (PAIR, compare.CompareFocus(side, "source", (row,)))


saved = st.session_state.get(FOCUS_KEY)
focus = saved[1] if saved and saved[0] == PAIR else None  # a focus belongs to the pair of bundles it was made on
sides = {"a": context, "b": context_b}
results = {}
if focus is not None and focus.kind == "source":
    for side, ctx in sides.items():
        row = focus.source_on(side, pairing)
        results[side] = None if row is None else ui.neighbour_result(ctx, row, NEIGHBOURS, None)

for column, (side, ctx) in zip(st.columns(2), sides.items()):
    with column:
        st.markdown(f"**{ctx.loaded.bundle.name}** · {ctx.loaded.bundle.manifest.method or 'encoder'}")
        result = results.get(side)
        marks = compare.marks_for(focus, side, pairing, result.neighbours.rows if result else ())
        ui.map_view(ctx, marks, key=f"compare.map.{side}", height=460, on_focus=partial(_on_focus, side))
        if focus is None:
            continue
        if focus.kind == "selection":
            st.caption(f"{len(focus.rows_on(side, pairing)):,} of the {len(focus.rows):,} selected sources "
                       f"(selected on the {'left' if focus.side == 'a' else 'right'} map).")
        elif result is None:
            st.caption("This bundle does not hold the clicked source.")
        else:
            agreement = compare.neighbour_agreement(ctx.loaded.bundle.catalog, result.row, result.neighbours.rows,
                                                    ctx.style.colour_by)
            if agreement:
                st.metric(f"median |Δ {agreement['column']}| of the neighbours",
                          f"{agreement['median_abs_difference']:.3g}",
                          help=f"The query's {agreement['column']} is {agreement['query']:.3g}; the smaller the "
                               "difference, the better this encoder keeps that property.")
            st.caption(f"{len(result.neighbours.rows)} nearest neighbours in this encoder's embedding "
                       "(cosine); click one to make it the query on both maps.")
            ui.gallery(ctx.loaded, result.gallery, key=f"compare.gallery.{side}", on_pick=partial(_on_pick, side))
if focus is not None:
    st.button("Clear", on_click=lambda: st.session_state.pop(FOCUS_KEY, None), icon=":material/close:",
              key="compare.clear")
else:
    st.info("Click a source on either map to see it, and each model's nearest neighbours, on both; a box or lasso "
            "selects the same sources on both maps.", icon=":material/touch_app:")
