"""Streamlit glue shared by ``app.py`` and the pages: the sidebar, cached loading, common panels.

Only layout lives here; what is shown is computed by :mod:`explorer.app.views`,
:mod:`explorer.app.figures` and :mod:`explorer.app.images`, which need no Streamlit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from astropy.coordinates import SkyCoord

from explorer.app import views
from explorer.core.bundle import Bundle, bundle_version, check_files, list_bundles, load_bundle
from explorer.core.config import bundles_dir, resolve_typed_bundle
from explorer.core.errors import InputError
from explorer.core.export import broadcast_table, to_csv_bytes, to_votable_bytes
from explorer.app.figures import MapFigure, MapStyle, is_numeric
from explorer.app.images import to_rgb

FOCUS_KEY = "explore.focus"        # views.Focus: the clicked source or box/lasso selection
MAP_KEY = "explore.map"            # the map's selection state (read-only, owned by st.plotly_chart)
EXPLORE_PAGE = "pages/1_Explore.py"
SEARCH_PAGE = "pages/2_Similarity_search.py"
FINETUNE_PAGE = "pages/3_Fine_tune.py"
NO_BUNDLE = ("No bundle found in `{where}`. Run `make run` (it builds the demo bundle, then starts the app) "
             "or `python -m training.demo`, then reload this page — or type a bundle folder in the sidebar.")


@dataclass
class Loaded:
    """A bundle with what every rerun needs from it, built once per bundle version."""
    bundle: Bundle
    map: MapFigure
    sky: SkyCoord          # catalogue positions; astropy keeps its KD-tree on this object
    key: tuple[str, float]

    @property
    def path(self) -> str:
        return self.key[0]


@dataclass
class Context:
    loaded: Loaded
    style: MapStyle


@st.cache_resource(max_entries=4, show_spinner="Opening bundle…")
def _load(path: str, mtime: float) -> Loaded:
    bundle = load_bundle(path)
    return Loaded(bundle, MapFigure(bundle), views.catalog_coords(bundle), (path, mtime))


def open_bundle(path: str | Path) -> Loaded:
    """The bundle at ``path``, cached by path and version, so a rebuilt bundle or a new sidecar is reloaded."""
    path = Path(path).expanduser().resolve()
    return _load(str(path), bundle_version(path))


@st.cache_resource(max_entries=64, show_spinner=False)
def _neighbour_result(key: tuple[str, float], row: int, k: int, dedup_arcsec: float | None) -> views.NeighbourResult:
    return views.neighbour_result(_load(*key).bundle, row, k, dedup_arcsec=dedup_arcsec)


def neighbour_result(loaded: Loaded, row: int, k: int, dedup_arcsec: float | None) -> views.NeighbourResult:
    return _neighbour_result(loaded.key, int(row), int(k), dedup_arcsec)


def sidebar() -> Context | None:
    """The shared sidebar: bundle, colour-by, point size, opacity. None when no bundle can be opened."""
    with st.sidebar:
        found = list_bundles(bundles_dir())
        chosen = st.selectbox("Bundle", found, format_func=lambda p: p.name, key="sidebar.bundle",
                              help=f"Bundles in {bundles_dir()} (set EXPLORER_BUNDLES to list another folder)")
        typed = st.text_input("…or open a bundle folder", key="sidebar.path", placeholder="bundle name or folder",
                              help="A bundle inside the bundle folder, by name or path. Folders elsewhere open only "
                                   "when the server sets EXPLORER_OPEN_FOLDERS=1.")
        loaded = None
        for candidate, was_typed in ((typed.strip(), True), (chosen, False)):
            if not candidate:
                continue
            try:
                loaded = open_bundle(resolve_typed_bundle(candidate) if was_typed else candidate)
                break
            except InputError as e:  # say why, then fall back to the listed bundle
                st.error(str(e).replace(str(bundles_dir().resolve()), "").replace(str(bundles_dir()), ""))
        if loaded is None:
            return None
        bundle = loaded.bundle
        for note in bundle.notes:
            st.info(note, icon=":material/build:")
        st.caption(f"**{bundle.name}** · {bundle.n:,} sources · {bundle.dim}-d embeddings")
        style = _style_controls(bundle)
        table, warning = views.representation_check(bundle.manifest.quality)
        if warning:
            st.warning(warning, icon=":material/warning:")
        with st.expander("About this bundle"):
            manifest = bundle.manifest
            st.write(manifest.description)
            if table is not None:
                st.caption("Representation quality beside the baselines, on the same sources:")
                st.dataframe(table, hide_index=True, key="sidebar.quality",
                             column_config={c: st.column_config.NumberColumn(format="%.3f")
                                            for c in ("learned", "random init", "pixels")})
            st.caption(f"encoder: {manifest.encoder.architecture if manifest.encoder else '?'}"
                       f"{f' ({manifest.method})' if manifest.method else ''} · "
                       f"bands: {', '.join(manifest.data.bands)} · index: {manifest.index.get('type', '?')} · "
                       f"created {manifest.created or '?'}")
            if st.button("Verify checksums", key="sidebar.verify", icon=":material/verified:",
                         help="Hash every file and compare with the manifest (sizes are checked at every open)."):
                try:
                    hashed = check_files(bundle.path)
                    st.success(f"{hashed} file(s) match their checksums." if hashed else
                               "This bundle predates checksums; rebuild it to get them.")
                except InputError as e:
                    st.error(str(e))
    return Context(loaded, style)


def _style_controls(bundle: Bundle) -> MapStyle:
    catalog = bundle.catalog
    columns = [c for c in catalog.columns if c != "id"]
    default = next((c for c in bundle.property_columns if not is_numeric(catalog[c])), None)
    options = [None, *columns]
    colour_by = st.selectbox("Colour by", options, index=options.index(default),
                             format_func=lambda c: "(one colour)" if c is None else _label(bundle, c),
                             key=f"sidebar.colour.{bundle.path}")
    log_scale = False
    if colour_by is not None and is_numeric(catalog[colour_by]):
        log_scale = st.toggle("log₁₀ colour scale", key=f"sidebar.log.{colour_by}",  # one switch per column
                              help="Sources with values ≤ 0 or missing are drawn in grey and counted in the legend.")
    point_size = st.slider("Point size", 1.0, 12.0, 4.0 if bundle.n <= 20_000 else 2.0, 0.5, key="sidebar.size")
    opacity = st.slider("Opacity", 0.1, 1.0, 0.8, 0.05, key="sidebar.opacity")
    return MapStyle(colour_by, log_scale, point_size, opacity)


def _label(bundle: Bundle, column: str) -> str:
    unit = bundle.column_unit(column) or {"ra": "deg", "dec": "deg"}.get(column, "")
    return f"{column} [{unit}]" if unit else column


def context() -> Context:
    """Set up a page: the shared sidebar, then this run's bundle and style; stops the page when there is no bundle.

    Every page calls it itself, so a page opened by its own URL works exactly like one reached from app.py.
    """
    st.set_page_config(page_title="Latent-space explorer", layout="wide")
    chosen = sidebar()
    if chosen is None:
        st.title("Latent-space explorer")
        st.info(NO_BUNDLE.format(where=bundles_dir()), icon=":material/info:")
        st.stop()
    return chosen


def run_guarded(page) -> None:
    """Run a page; anything unexpected is the project's own short panel (details go to the server log)."""
    try:
        page.run()
    except InputError as e:
        st.error(str(e), icon=":material/error:")
    except Exception as e:  # a bug: never a traceback (or a server path) in the browser
        logging.getLogger("explorer").exception("page %s failed", getattr(page, "title", page))
        st.error(f"Something went wrong on this page ({type(e).__name__}). Nothing was lost: labels, heads and "
                 "bundles are written atomically. Reload the page; the details are in the server's log.",
                 icon=":material/error:")


def current_focus(loaded: Loaded) -> views.Focus | None:
    focus = st.session_state.get(FOCUS_KEY)
    if focus is None or focus.bundle != loaded.path or not focus.rows or max(focus.rows) >= loaded.bundle.n:
        return None
    return focus


def focus_on_source(loaded: Loaded, row: int) -> None:
    st.session_state[FOCUS_KEY] = views.Focus(loaded.path, "source", (int(row),))


def clear_focus() -> None:
    st.session_state.pop(FOCUS_KEY, None)


def on_map_select(path: str) -> None:
    """st.plotly_chart's selection callback: remember what was picked (the map's own state is read-only)."""
    st.session_state[FOCUS_KEY] = views.focus_from_event(st.session_state.get(MAP_KEY), path)


def neighbour_controls(prefix: str) -> tuple[int, float | None]:
    """k and the optional de-duplication radius, side by side."""
    left, middle, right = st.columns([2, 1.2, 1])
    k = left.slider("Neighbours (k)", 1, 50, views.DEFAULT_K, key=f"{prefix}.k")
    dedup = middle.toggle("Merge duplicates", value=False, key=f"{prefix}.dedup",
                          help="Drop neighbours lying within the radius of the query or of a better match "
                               "(the same object catalogued twice).")
    radius = right.number_input("radius (arcsec)", 1.0, 600.0, views.DEDUP_RADIUS_ARCSEC, 5.0,
                                key=f"{prefix}.dedup_radius", disabled=not dedup)
    return k, (float(radius) if dedup else None)


def source_panel(bundle: Bundle, row: int) -> None:
    """A source's thumbnail and properties."""
    st.image(to_rgb(bundle.thumbnails[row]), caption=str(bundle.catalog["id"].iat[row]), width="stretch")
    cut = views.crop_note(bundle, row)
    if cut:
        st.warning(cut, icon=":material/crop:")
    st.dataframe(views.properties_table(bundle, row), hide_index=True, width="stretch")


def neighbour_panel(loaded: Loaded, row: int, k: int, dedup_arcsec: float | None, *, key: str) -> views.NeighbourResult:
    """The neighbour gallery with cosine similarities, a CSV download and the table."""
    result = neighbour_result(loaded, row, k, dedup_arcsec)
    source_id = str(loaded.bundle.catalog["id"].iat[row])
    found = len(result.neighbours.rows)
    note = f" (duplicates within {dedup_arcsec:g}″ merged)" if dedup_arcsec else ""
    st.subheader(f"{found} nearest neighbours of {source_id}")
    st.caption(f"Cosine similarity in the full {loaded.bundle.dim}-d embedding space{note}.")
    st.html(result.gallery)
    export_buttons(loaded.bundle, lambda: result.table, f"neighbours_{source_id}", key=key)
    with st.expander("Neighbour table"):
        st.dataframe(result.table, hide_index=True, width="stretch")
    return result


def export_buttons(bundle: Bundle, make_table, name: str, *, key: str) -> None:
    """CSV and VOTable downloads, and a SAMP broadcast to TOPCAT/Aladin, side by side.

    ``make_table()`` builds the table only when a button is used, so a million-source selection costs nothing until then.
    """
    columns = bundle.manifest.columns
    csv_column, votable_column, samp_column = st.columns(3)
    csv_column.download_button("CSV", lambda: to_csv_bytes(make_table()), file_name=f"{name}.csv", mime="text/csv",
                               key=f"{key}.csv", icon=":material/download:", width="stretch")
    votable_column.download_button("VOTable", lambda: to_votable_bytes(make_table(), columns, name=name),
                                   file_name=f"{name}.xml", mime="application/x-votable+xml", key=f"{key}.votable",
                                   icon=":material/download:", width="stretch")
    if samp_column.button("Send to TOPCAT/Aladin (SAMP)", key=f"{key}.samp", icon=":material/send:", width="stretch"):
        try:
            table = make_table()
            broadcast_table(table, name, columns)
            st.toast(f"Sent {len(table):,} rows over SAMP.", icon=":material/check:")
        except InputError as e:
            st.error(str(e), icon=":material/error:")
