"""Streamlit glue shared by ``app.py`` and the pages: the sidebar, cached loading, common panels.

Only layout lives here; what is shown is computed by :mod:`explorer.app.views`,
:mod:`explorer.app.latent_map` and :mod:`explorer.app.images`, which need no Streamlit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import streamlit as st
from astropy.coordinates import SkyCoord

from explorer.app import sed, views
from explorer.core.bundle import Bundle, bundle_version, category_labels, check_files, list_bundles, load_bundle
from explorer.core.config import bundles_dir, resolve_typed_bundle
from explorer.core.errors import InputError
from explorer.core.export import broadcast_table, to_csv_bytes, to_votable_bytes
from explorer.core.filters import Condition, RowFilter, is_numeric, parse_filter
from explorer.app.latent_map import LatentMap, MapStyle, Marks
from explorer.app import map_server
from explorer.app.sky import SkyMap
from explorer.app.images import COLORMAPS, INTERVALS, STRETCHES, Display, to_rgb
from explorer.app import summaries
from explorer.core.sky.links import LINK_TITLES, source_links
from explorer.core import selections

FOCUS_KEY = "explore.focus"        # views.Focus: the clicked source or box/lasso selection
TRAIL_KEY = "explore.trail"        # views.Trail: every focus in turn, for back and forward
PICK_KEY = "explore.pick"          # Pick: a clicked thumbnail, taken by the next page run
EXAMPLES_KEY = "search.examples"   # Examples: positive and negative sources of a multi-example query
URL_KEY = "url.applied"            # the link's state was applied to this session
MAX_CATEGORY_CHOICES = 200         # a categorical column with more values is filtered by typing them
MAX_EXAMPLES = 1_000               # sources a selection adds to a multi-example query
ALADIN_SOURCES = 500               # sources overlaid on Aladin Lite
ALADIN_SCRIPT = "https://aladin.cds.unistra.fr/AladinLite/api/v3/latest/aladin.js"
EXPLORE_PAGE = "pages/1_Explore.py"
SEARCH_PAGE = "pages/2_Similarity_search.py"
FINETUNE_PAGE = "pages/3_Fine_tune.py"
COMPARE_PAGE = "pages/4_Compare.py"
DETECT_PAGE = "pages/5_Detect.py"
NO_BUNDLE = ("No bundle found in `{where}`. Run `make run` (it builds the demo bundle, then starts the app) "
             "or `python -m training.demo`, then reload this page — or type a bundle folder in the sidebar.")


@dataclass
class Loaded:
    """A bundle with what every rerun needs from it, built once per bundle version."""
    bundle: Bundle
    map: LatentMap
    sky: SkyCoord          # catalogue positions; astropy keeps its KD-tree on this object
    key: tuple[str, float]
    _values: dict = field(default_factory=dict, repr=False)
    _sky_map: SkyMap | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        return self.key[0]

    @property
    def sky_map(self) -> SkyMap:
        """The bundle on the sky, built on first use (most sessions never open the sky tab)."""
        if self._sky_map is None:
            self._sky_map = SkyMap(self.bundle)
        return self._sky_map

    def values(self, column: str):
        """A column's (min, max) when numeric, else its sorted distinct labels (cached: filter widgets ask each run)."""
        if column not in self._values:
            series = self.bundle.catalog[column]
            if is_numeric(series):
                finite = series.to_numpy(dtype=np.float64, na_value=np.nan)
                finite = finite[np.isfinite(finite)]
                self._values[column] = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
            else:
                self._values[column] = sorted(set(category_labels(series)))
        return self._values[column]


@dataclass
class Context:
    loaded: Loaded
    style: MapStyle
    row_filter: RowFilter = RowFilter()
    display: Display = Display()

    @property
    def keep(self) -> np.ndarray | None:
        """The filter's rows as a mask (None without a filter), cached with the map."""
        return self.loaded.map.keep(self.row_filter) if self.row_filter else None


@dataclass(frozen=True)
class Pick:
    bundle: str
    row: int
    switch_to_explore: bool


@dataclass
class Examples:
    """The sources of a multi-example query, in the order they were added."""
    bundle: str
    positive: list[int] = field(default_factory=list)
    negative: list[int] = field(default_factory=list)


@st.cache_resource(max_entries=4, show_spinner="Opening bundle…")
def _load(path: str, mtime: float) -> Loaded:
    bundle = load_bundle(path)
    return Loaded(bundle, LatentMap(bundle), views.catalog_coords(bundle), (path, mtime))


def open_bundle(path: str | Path) -> Loaded:
    """The bundle at ``path``, cached by path and version, so a rebuilt bundle or a new sidecar is reloaded."""
    path = Path(path).expanduser().resolve()
    return _load(str(path), bundle_version(path))


@st.cache_resource(max_entries=64, show_spinner=False)
def _neighbour_result(key: tuple[str, float], row: int, k: int, dedup_arcsec: float | None, row_filter: RowFilter,
                      display: Display) -> views.NeighbourResult:
    loaded = _load(*key)
    allowed = loaded.map.keep(row_filter) if row_filter else None
    return views.neighbour_result(loaded.bundle, row, k, dedup_arcsec=dedup_arcsec, allowed=allowed, display=display)


def neighbour_result(context: Context, row: int, k: int, dedup_arcsec: float | None) -> views.NeighbourResult:
    return _neighbour_result(context.loaded.key, int(row), int(k), dedup_arcsec, context.row_filter, context.display)


def sidebar() -> Context | None:
    """The shared sidebar: bundle, colour-by, point size, opacity. None when no bundle can be opened."""
    with st.sidebar:
        found = list_bundles(bundles_dir())
        link = _read_link(found)
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
        if link:
            _apply_link(loaded, link)
        style = _style_controls(bundle)
        row_filter = _filter_controls(loaded)
        display = _display_controls()
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
    return Context(loaded, style, row_filter, display)


# ---------------------------------------------------------------- the link: bundle, colour, filter, source

def _read_link(found: list[Path]) -> dict | None:
    """The URL's state, once per session: the bundle goes to its widget now (before it is drawn); the rest waits
    for the bundle (see :func:`_apply_link`)."""
    if st.session_state.get(URL_KEY):
        return None
    st.session_state[URL_KEY] = True
    link = {k: st.query_params.get(k) for k in ("bundle", "colour", "filter", "source")}
    name = link.get("bundle")
    if name:
        listed = next((p for p in found if p.name == name), None)
        if listed is not None:
            st.session_state["sidebar.bundle"] = listed
        else:
            st.session_state["sidebar.path"] = name
    return link


def _apply_link(loaded: Loaded, link: dict) -> None:
    bundle, catalog = loaded.bundle, loaded.bundle.catalog
    colour = link.get("colour")
    if colour in catalog.columns:
        st.session_state[f"sidebar.colour.{bundle.path}"] = colour
    if link.get("filter"):
        try:
            _set_filter_widgets(loaded, parse_filter(link["filter"], catalog))
        except InputError as e:
            st.warning(f"The link's filter was not applied: {e}", icon=":material/filter_alt_off:")
    source = link.get("source")
    if source:
        rows = np.flatnonzero(catalog["id"].astype(str).to_numpy() == source)
        if len(rows):
            set_focus(views.Focus(loaded.path, "source", (int(rows[0]),)))
        else:
            st.warning(f"The link's source {source!r} is not in {bundle.name}.", icon=":material/location_off:")


def write_link(context: Context) -> None:
    """Keep the view in the URL, so that a copied link reopens it."""
    loaded = context.loaded
    params = {"bundle": loaded.bundle.name}
    if context.style.colour_by:
        params["colour"] = context.style.colour_by
    if context.row_filter:
        params["filter"] = context.row_filter.to_text()
    focus = current_focus(loaded)
    if focus is not None and focus.kind == "source":
        params["source"] = str(loaded.bundle.catalog["id"].iat[focus.row])
    if {k: st.query_params.get(k) for k in st.query_params} != params:
        st.query_params.from_dict(params)


# ---------------------------------------------------------------- filter bar and image display

def _filter_key(loaded: Loaded, *parts: str) -> str:
    return ".".join(["filter", loaded.path, *parts])


def _set_filter_widgets(loaded: Loaded, row_filter: RowFilter) -> None:
    st.session_state[_filter_key(loaded, "columns")] = [c.column for c in row_filter.conditions]
    for condition in row_filter.conditions:
        if condition.values is not None:
            st.session_state[_filter_key(loaded, condition.column, "values")] = list(condition.values)
        else:
            low, high = loaded.values(condition.column)
            st.session_state[_filter_key(loaded, condition.column, "low")] = condition.low if condition.low is not None else low
            st.session_state[_filter_key(loaded, condition.column, "high")] = condition.high if condition.high is not None else high


def clear_filter(loaded: Loaded) -> None:
    st.session_state[_filter_key(loaded, "columns")] = []


def _filter_controls(loaded: Loaded) -> RowFilter:
    """Ranges for numbers, sets for categories; the filter restricts the map, the searches and the selections."""
    bundle = loaded.bundle
    columns_key = _filter_key(loaded, "columns")
    active = bool(st.session_state.get(columns_key))
    conditions = []
    with st.expander("Filter" + (" (active)" if active else ""), expanded=active, icon=":material/filter_alt:"):
        columns = st.multiselect("Filter by", bundle.property_columns, key=columns_key,
                                 format_func=lambda c: _label(bundle, c), placeholder="choose columns")
        for column in columns:
            values = loaded.values(column)
            if isinstance(values, tuple):
                conditions.append(_range_condition(loaded, column, *values))
            else:
                conditions.append(_set_condition(loaded, column, values))
    return RowFilter(tuple(c for c in conditions if c is not None))


def _range_condition(loaded: Loaded, column: str, low: float, high: float) -> Condition | None:
    low_key, high_key = _filter_key(loaded, column, "low"), _filter_key(loaded, column, "high")
    st.session_state.setdefault(low_key, low)
    st.session_state.setdefault(high_key, high)
    left, right = st.columns(2)
    chosen_low = left.number_input(f"{column} from", key=low_key, format="%.6g", step=(high - low) / 100 or 1.0)
    chosen_high = right.number_input("to", key=high_key, format="%.6g", step=(high - low) / 100 or 1.0)
    if chosen_low <= low and chosen_high >= high:
        return None
    return Condition(column, chosen_low if chosen_low > low else None, chosen_high if chosen_high < high else None)


def _set_condition(loaded: Loaded, column: str, values: list[str]) -> Condition | None:
    key = _filter_key(loaded, column, "values")
    if len(values) > MAX_CATEGORY_CHOICES:
        typed = st.text_input(f"{column} is one of (comma-separated)", key=key + ".typed")
        chosen = [v.strip() for v in typed.split(",") if v.strip()]
        return Condition(column, values=tuple(chosen)) if chosen else None
    st.session_state.setdefault(key, list(values))
    chosen = st.multiselect(column, values, key=key)
    return None if set(chosen) == set(values) else Condition(column, values=tuple(sorted(chosen)))


def _display_controls() -> Display:
    with st.expander("Image display", icon=":material/contrast:"):
        stretch = st.selectbox("Stretch", ["bundle", *STRETCHES], key="display.stretch",
                               format_func=lambda s: "as built (asinh)" if s == "bundle" else s,
                               help="Applies to every gallery, so that galleries stay comparable.")
        interval = st.selectbox("Interval", list(INTERVALS), key="display.interval", disabled=stretch == "bundle",
                                help="The pixel range mapped to the colour map: all of it, IRAF's zscale, or a "
                                     "percentile clip.")
        colormap = st.selectbox("Colour map", COLORMAPS, key="display.colormap")
    return Display(stretch, interval, colormap)


def filter_note(context: Context) -> None:
    """The active filter, said at the top of a page, with a button to clear it."""
    if not context.row_filter:
        return
    kept = int(context.keep.sum())
    text, button = st.columns([6, 1])
    text.info(f"Filter: {context.row_filter.describe()} — {kept:,} of {context.loaded.bundle.n:,} sources.",
              icon=":material/filter_alt:")
    button.button("Clear filter", on_click=clear_filter, args=(context.loaded,), key="filter.clear",
                  icon=":material/filter_alt_off:")


def _style_controls(bundle: Bundle) -> MapStyle:
    catalog = bundle.catalog
    columns = [c for c in catalog.columns if c != "id"]
    default = next((c for c in bundle.property_columns if not is_numeric(catalog[c])), None)
    options = [None, *columns]
    key = f"sidebar.colour.{bundle.path}"
    st.session_state.setdefault(key, default)  # the default lives in the state, so a link may set it first
    colour_by = st.selectbox("Colour by", options, format_func=lambda c: "(one colour)" if c is None else _label(bundle, c),
                             key=key)
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
    pick = st.session_state.pop(PICK_KEY, None)
    if pick is not None and pick.bundle == chosen.loaded.path and pick.row < chosen.loaded.bundle.n:
        focus_on_source(chosen.loaded, pick.row)
        if pick.switch_to_explore:
            st.switch_page(EXPLORE_PAGE)
    write_link(chosen)
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


def set_focus(focus: views.Focus | None) -> None:
    """The one way the focus changes: it is also a step on the trail (clearing is not)."""
    st.session_state[FOCUS_KEY] = focus
    if focus is None:
        return
    trail = st.session_state.get(TRAIL_KEY)
    if trail is None or (trail.current is not None and trail.current.bundle != focus.bundle):
        trail = st.session_state[TRAIL_KEY] = views.Trail([])
    trail.visit(focus)


def focus_on_source(loaded: Loaded, row: int) -> None:
    set_focus(views.Focus(loaded.path, "source", (int(row),)))


def clear_focus() -> None:
    st.session_state.pop(FOCUS_KEY, None)


def _step(direction: str) -> None:
    trail = st.session_state.get(TRAIL_KEY)
    if trail is not None:
        st.session_state[FOCUS_KEY] = trail.back() if direction == "back" else trail.forward()


def trail_controls(loaded: Loaded) -> None:
    """Back and forward through the sources and selections visited."""
    trail = st.session_state.get(TRAIL_KEY)
    if trail is None or trail.current is None or trail.current.bundle != loaded.path:
        return
    back, forward, where = st.columns([1, 1, 4])
    back.button("Back", on_click=_step, args=("back",), disabled=not trail.can_go_back, key="trail.back",
                icon=":material/arrow_back:", width="stretch")
    forward.button("Forward", on_click=_step, args=("forward",), disabled=not trail.can_go_forward,
                   key="trail.forward", icon=":material/arrow_forward:", width="stretch")
    where.caption(f"Step {trail.at + 1} of {len(trail.steps)} of this walk. Click any thumbnail to search from it.")


# ---------------------------------------------------------------- clickable galleries

GALLERY_JS = """
export default function(component) {
  const { data, setTriggerValue, parentElement } = component;
  let root = parentElement.querySelector('.explorer-clickable');
  if (!root) {
    root = document.createElement('div');
    root.className = 'explorer-clickable';
    parentElement.appendChild(root);
  }
  root.innerHTML = data;
  root.querySelectorAll('figure[data-row]').forEach((tile) => {
    const pick = () => setTriggerValue('picked', Number(tile.dataset.row));
    tile.onclick = pick;
    tile.onkeydown = (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pick(); } };
  });
}
"""
_GALLERY = st.components.v2.component("explorer.gallery", js=GALLERY_JS)


def gallery(loaded: Loaded, html: str, *, key: str, switch_to_explore: bool = False, on_pick=None) -> None:
    """A thumbnail gallery whose tiles make their source the query (on the Explore page); ``on_pick(row)``
    replaces that."""
    _GALLERY(data=html, key=key, on_picked_change=partial(_on_pick, loaded.path, key, switch_to_explore, on_pick))


def _on_pick(path: str, key: str, switch_to_explore: bool, on_pick) -> None:
    picked = (st.session_state.get(key) or {}).get("picked")
    if picked is not None and on_pick is not None:
        on_pick(int(picked))
    elif picked is not None:
        st.session_state[PICK_KEY] = Pick(path, int(picked), switch_to_explore)


# ---------------------------------------------------------------- the latent map

# The built component lives in explorer/app/frontend (``make frontend``); this loader fetches it once per page.
MAP_JS = """
export default function(component) {
  // the inline module has a blob: URL, so the script's path is made absolute against the page
  const url = new URL(component.data.script, window.location.href).href;
  window.__explorerMapModule = window.__explorerMapModule || import(url);
  window.__explorerMapModule.then((module) => module.render(component));
}
"""
_MAP = st.components.v2.component("explorer.map", js=MAP_JS, isolate_styles=False)


def map_view(context: Context, marks: Marks = Marks(), *, key: str, height: int = 620,
             switch_to_explore: bool = False, on_focus=None) -> None:
    """The latent map: every source, coloured by the sidebar's style; a click makes a source the focus, a lasso
    or box selects every source inside (on another page, ``switch_to_explore`` then opens Explore).
    ``on_focus(focus)`` replaces that: the page gets the clicked source or selection (None: cleared)."""
    loaded = context.loaded
    base = map_server.register(loaded.map)
    display = context.display
    data = loaded.map.payload(context.style, context.row_filter, marks, base)
    data.update(key=key, height=height, script=map_server.script_url(),
                display=f"{display.stretch},{display.interval},{display.colormap}")
    handler = partial(_on_map_event, loaded, key, context.row_filter, switch_to_explore, on_focus)
    _MAP(data=data, key=key, on_clicked_change=handler, on_lasso_change=handler,
         on_log_change=partial(_on_log_toggle, key, context.style.colour_by))
    if loaded.map.n_unplaced:
        st.caption(f"{loaded.map.n_unplaced:,} of {loaded.map.n:,} sources have no map coordinates (NaN in the "
                   "bundle's map) and are left out of the map; searches still find them.")


def _on_map_event(loaded: Loaded, key: str, row_filter: RowFilter, switch_to_explore: bool, on_focus) -> None:
    event = st.session_state.get(key) or {}
    focus = views.focus_from_map(event, loaded.map, loaded.path, row_filter)
    if on_focus is not None:
        if "clicked" in event or "lasso" in event:
            on_focus(focus)
    elif focus is not None and focus.kind == "source" and switch_to_explore:
        st.session_state[PICK_KEY] = Pick(loaded.path, focus.row, True)
    elif "clicked" in event or "lasso" in event:
        set_focus(focus)


def _on_log_toggle(key: str, column: str | None) -> None:
    """The legend's log switch is the sidebar's."""
    log = (st.session_state.get(key) or {}).get("log")
    if column is not None and isinstance(log, bool):
        st.session_state[f"sidebar.log.{column}"] = log


# ---------------------------------------------------------------- multi-example queries

def examples(loaded: Loaded) -> Examples:
    chosen = st.session_state.get(EXAMPLES_KEY)
    if chosen is None or chosen.bundle != loaded.path:
        chosen = st.session_state[EXAMPLES_KEY] = Examples(loaded.path)
    return chosen


def add_examples(loaded: Loaded, rows, kind: str) -> None:
    """Add sources to the positives or negatives (a source is only ever in one of them)."""
    chosen = examples(loaded)
    into, other = (chosen.positive, chosen.negative) if kind == "positive" else (chosen.negative, chosen.positive)
    for row in (int(r) for r in rows):
        if row in other:
            other.remove(row)
        if row not in into:
            into.append(row)


def example_buttons(loaded: Loaded, rows, *, key: str) -> None:
    """Add the source(s) to a multi-example query, then go and search."""
    plural = len(rows) > 1
    left, right = st.columns(2)
    left.button("Add as positives" if plural else "Positive", key=f"{key}.positive",
                on_click=add_examples, args=(loaded, rows, "positive"), icon=":material/add_circle:", width="stretch",
                help="Search for sources like several examples at once (Similarity search → Several examples).")
    right.button("Add as negatives" if plural else "Negative", key=f"{key}.negative",
                 on_click=add_examples, args=(loaded, rows, "negative"), icon=":material/remove_circle:",
                 width="stretch", help="Steer the multi-example query away from these.")
    chosen = examples(loaded)
    if chosen.positive or chosen.negative:
        st.caption(f"Multi-example query: {len(chosen.positive)} positive, {len(chosen.negative)} negative "
                   "(Similarity search → Several examples).")


def remember(key: str, default, options=None) -> str:
    """Give a widget's value a home outside the widget: Streamlit forgets a widget's value when a page without it
    runs, so forms would reset on every visit to another page. Call before drawing the widget, which then takes
    its value from the state (pass no default to it). Returns the key."""
    shadow = f"kept.{key}"
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(shadow, default)
    if options is not None and st.session_state[key] not in options:
        st.session_state[key] = default
    st.session_state[shadow] = st.session_state[key]
    return key


def neighbour_controls(prefix: str) -> tuple[int, float | None]:
    """k and the optional de-duplication radius, side by side."""
    left, middle, right = st.columns([2, 1.2, 1])
    k = left.slider("Neighbours (k)", 1, 50, key=remember(f"{prefix}.k", views.DEFAULT_K))
    dedup = middle.toggle("Merge duplicates", key=remember(f"{prefix}.dedup", False),
                          help="Drop neighbours lying within the radius of the query or of a better match "
                               "(the same object catalogued twice).")
    radius = right.number_input("radius (arcsec)", 1.0, 600.0, step=5.0,
                                key=remember(f"{prefix}.dedup_radius", views.DEDUP_RADIUS_ARCSEC), disabled=not dedup)
    return k, (float(radius) if dedup else None)


def source_panel(bundle: Bundle, row: int, display: Display = Display()) -> None:
    """A source's thumbnail (in any band of a multi-band bundle), a closer look, links out and its properties."""
    choices = views.band_choices(bundle)
    band = st.selectbox("Band", choices, key="source.band", help="the colour thumbnail, or one filter on its own "
                        "(each band stretched to its own peak)") if choices else views.COMPOSITE
    thumbnail = views.band_thumbnail(bundle, row, band)
    caption = str(bundle.catalog["id"].iat[row]) + ("" if band == views.COMPOSITE else f" · {band}")
    st.image(to_rgb(thumbnail, display), caption=caption, width="stretch")
    cut = views.crop_note(bundle, row)
    if cut:
        st.warning(cut, icon=":material/crop:")
    with st.popover("Closer look", icon=":material/zoom_in:"):
        st.image(views.enlarged(thumbnail, display), width=560, caption=views.cutout_caption(bundle, display))
    occlusion_panel(bundle, row, band, display)
    ra, dec = (float(bundle.catalog[c].iat[row]) for c in ("ra", "dec"))
    st.markdown(" · ".join(f"[{LINK_TITLES[name]}]({url})" for name, url in source_links(ra, dec).items() if url))
    st.dataframe(views.properties_table(bundle, row), hide_index=True, width="stretch")
    figure = sed.sed_figure(bundle.catalog, [row], title=f"SED of {bundle.catalog['id'].iat[row]}")
    if figure is not None:
        st.plotly_chart(figure, key=f"sed.source.{row}")


OCCLUSION_KEY = "source.occlusion"   # (settings, occlusion.Occlusion): the last map computed, shown while they hold


def occlusion_panel(bundle: Bundle, row: int, band: str, display: Display = Display()) -> None:
    """Paper 4's occlusion map of the source under a chosen model (the band classifier, or any saved head), drawn
    over its image; computed when the button is pressed, not on every rerun."""
    from dataclasses import replace

    from explorer.core import occlusion

    with st.expander("Occlusion map", icon=":material/grid_on:"):
        why = occlusion.unavailable(bundle)
        if why:
            st.info(why, icon=":material/info:")
            return
        models = occlusion.occlusion_models(bundle)
        here = f"{bundle.path}"           # widget keys per bundle: another bundle has other models, bands and sizes
        model = st.selectbox("Model", models, key=f"source.occlusion.model.{here}",
                             format_func=lambda m: m if m == occlusion.BAND_CLASSIFIER else f"head: {m}",
                             help="The band classifier (paper 4's Fig. 2) scores one band on its own; a head "
                                  "scores the embedding of every band, all masked at once.")
        names = occlusion.band_names(bundle)
        band_index = None
        if model == occlusion.BAND_CLASSIFIER:
            if band in names:
                band_index = names.index(band)
                st.caption(f"Band {band}, the one shown above: the probability that it is band {band}.")
            else:
                chosen = st.selectbox("Band to occlude", names, key=f"source.occlusion.band.{here}",
                                      help="The classifier sees this band alone and says which band it is.")
                band_index = names.index(chosen)
        side = min(bundle.encoder_inputs.shape[-2:])
        kind = "band" if model == occlusion.BAND_CLASSIFIER else "head"
        default_patch, default_stride = occlusion.default_settings(
            side, input_pixels=bundle.preprocessing().input_pixels, trunk_passes=occlusion.trunk_passes(bundle, model))
        patch_column, stride_column = st.columns(2)
        patch = int(patch_column.number_input("Patch (px)", 1, side, default_patch,
                                              key=f"source.occlusion.patch.{kind}.{here}",
                                              help=f"Side of the masked square, in the {side} px image's pixels"))
        stride = int(stride_column.number_input("Stride (px)", 1, side, default_stride,
                                                key=f"source.occlusion.stride.{kind}.{here}",
                                                help="Step between patches (at most the patch); smaller is finer "
                                                     "and slower"))
        settings = (str(bundle.path), row, model, band_index, patch, stride)
        try:
            occlusion.check_settings((side, side), patch, stride)
        except InputError as e:
            st.error(str(e), icon=":material/error:")
            return
        count = occlusion.occluded_count((side, side), patch, stride)
        if st.button(f"Compute the occlusion map ({count} occluded images)", key="source.occlusion.run",
                     icon=":material/grid_on:"):
            try:
                with st.spinner(f"Scoring {count} occluded images…"):
                    result = occlusion.source_occlusion(bundle, row, model, band=band_index, patch=patch,
                                                        stride=stride)
                st.session_state[OCCLUSION_KEY] = (settings, result)
            except InputError as e:
                st.error(str(e), icon=":material/error:")
                return
        stored = st.session_state.get(OCCLUSION_KEY)
        if not stored or stored[0] != settings:
            st.caption("Press the button to mask each patch in turn and see how the prediction changes.")
            return
        result = stored[1]
        alone = band_index is not None and names[band_index] in views.band_choices(bundle)
        shown = views.band_thumbnail(bundle, row, names[band_index] if alone else band)
        rgb = to_rgb(shown, replace(display, colormap="gray"))
        st.plotly_chart(views.occlusion_figure(rgb, result.map, score="score drop"), key="source.occlusion.figure")
        st.caption(result.caption)


def neighbour_panel(context: Context, row: int, k: int, dedup_arcsec: float | None, *, key: str
                    ) -> views.NeighbourResult:
    """The clickable neighbour gallery with cosine similarities, a CSV download and the table."""
    loaded = context.loaded
    result = neighbour_result(context, row, k, dedup_arcsec)
    source_id = str(loaded.bundle.catalog["id"].iat[row])
    found = len(result.neighbours.rows)
    note = f" (duplicates within {dedup_arcsec:g}″ merged)" if dedup_arcsec else ""
    among = " among the filtered sources" if context.row_filter else ""
    st.subheader(f"{found} nearest neighbours of {source_id}{among}")
    st.caption(f"Cosine similarity in the full {loaded.bundle.dim}-d embedding space{note}. "
               "Click a thumbnail to make it the query.")
    gallery(loaded, result.gallery, key=f"{key}.gallery")
    export_buttons(loaded.bundle.manifest.columns, lambda: result.table, f"neighbours_{source_id}", key=key)
    with st.expander("Neighbour table"):
        st.dataframe(result.table, hide_index=True, width="stretch")
    if sed.sed_bands(loaded.bundle.catalog.columns) and st.toggle(
            "Compare the neighbours' SEDs", key=f"{key}.sed", help="Do similar images mean similar SEDs?"):
        rows = [row, *(int(r) for r in result.neighbours.rows)]
        figure = sed.sed_figure(loaded.bundle.catalog, rows, title=f"SEDs of {source_id} and its neighbours")
        if figure is not None:
            st.plotly_chart(figure, key=f"{key}.sed.figure")
    return result


def export_buttons(columns: dict, make_table, name: str, *, key: str) -> None:
    """CSV and VOTable downloads, and a SAMP broadcast to TOPCAT/Aladin, side by side.

    ``columns``: unit and description of each column (e.g. a bundle's ``manifest.columns``).
    ``make_table()`` builds the table only when a button is used, so a million-source selection costs nothing until then.
    """
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


# ---------------------------------------------------------------- Aladin Lite

ALADIN_JS = """
export default function(component) {
  const { data, setTriggerValue, parentElement } = component;
  let root = parentElement.querySelector('.explorer-aladin');
  let note = parentElement.querySelector('.explorer-aladin-note');
  if (!root) {
    root = document.createElement('div');
    root.className = 'explorer-aladin';
    root.style.cssText = 'width: 100%; height: 420px;';
    note = document.createElement('div');
    note.className = 'explorer-aladin-note';
    note.style.cssText = 'font-size: 0.85rem; opacity: 0.8; padding: 0.25rem 0;';
    parentElement.appendChild(note);
    parentElement.appendChild(root);
  }
  const show = () => window.A.init.then(() => {
    root.innerHTML = '';
    const aladin = window.A.aladin(root, {survey: data.survey, fov: data.fov, target: data.target,
                                          showReticle: false});
    const catalogue = window.A.catalog({name: 'sources', sourceSize: 14, color: '#ff2e88'});
    aladin.addCatalog(catalogue);
    catalogue.addSources(data.sources.map((s) => window.A.source(s.ra, s.dec, {row: s.row, id: s.id})));
    aladin.on('objectClicked', (object) => {
      if (object && object.data && object.data.row !== undefined) setTriggerValue('picked', object.data.row);
    });
    note.textContent = data.note;
  });
  if (window.A && window.A.init) { show(); return; }
  note.textContent = 'Loading Aladin Lite…';
  const script = document.createElement('script');
  script.src = data.script;
  script.onload = show;
  script.onerror = () => { note.textContent = data.offline; root.style.display = 'none'; };
  document.head.appendChild(script);
}
"""
_ALADIN = st.components.v2.component("explorer.aladin", js=ALADIN_JS, isolate_styles=False)


def aladin_panel(loaded: Loaded, rows) -> None:
    """Aladin Lite (FIRST from HiPS) with the current sources overlaid; clicking one makes it the query. It needs
    the network in the browser: offline, a one-line note says so and the RA/Dec plot above stands in."""
    if not st.toggle("Aladin Lite sky (needs the network)", key="explore.aladin",
                     help="The FIRST survey from CDS's HiPS servers, with the sources above overlaid."):
        return
    bundle = loaded.bundle
    rows = np.asarray(rows, dtype=np.int64)[:ALADIN_SOURCES]
    if not len(rows):
        st.caption("Click a source or select some to see them in Aladin Lite.")
        return
    catalog = bundle.catalog.iloc[rows]
    sources = [{"ra": float(r), "dec": float(d), "row": int(row), "id": str(i)}
               for r, d, row, i in zip(catalog["ra"], catalog["dec"], rows, catalog["id"])]
    fov = max(0.05, 1.5 * float(np.ptp(catalog["dec"].to_numpy(dtype=float))) if len(rows) > 1 else 0.05)
    _ALADIN(data={"script": ALADIN_SCRIPT, "survey": "CDS/P/VLA/FIRST", "fov": min(fov, 60.0),
                  "target": f"{sources[0]['ra']:.6f} {sources[0]['dec']:+.6f}", "sources": sources,
                  "note": "Click a marked source to make it the query.",
                  "offline": "Aladin Lite could not be loaded (no network?); the RA/Dec plot above shows the same "
                             "sources."},
            key="explore.aladin.view", on_picked_change=partial(_on_pick, loaded.path, "explore.aladin.view", False))


# ---------------------------------------------------------------- selections: summaries and saving

def selection_summary(context: Context, rows) -> None:
    """Class counts, histograms against the catalogue and median thumbnails of a selection."""
    bundle = context.loaded.bundle
    categorical, numeric = summaries.summary_columns(bundle)
    with st.expander("Summary of the selection", expanded=True, icon=":material/bar_chart:"):
        group_column, counts_column = st.columns([1, 2])
        colour = context.style.colour_by
        default = colour if colour in categorical else (categorical[0] if categorical else None)
        st.session_state.setdefault("summary.group", default)
        group = group_column.selectbox("Group by", [None, *categorical], key="summary.group",
                                       format_func=lambda c: "(none)" if c is None else c)
        if group is not None:
            counts = summaries.class_counts(bundle, rows, group, context.keep, context.loaded.map.codes)
            counts_column.dataframe(counts, hide_index=True, width="stretch", column_config={
                                        c: st.column_config.NumberColumn(format="%.1f") for c in
                                        ("% of selection", "% of catalogue")})
        st.caption("Median thumbnail per group: the typical look of each class in the selection.")
        st.html(summaries.median_thumbnails(bundle, rows, group, context.display, codes=context.loaded.map.codes))
        if numeric:
            st.session_state.setdefault("summary.properties", numeric[:2])
            chosen = st.multiselect("Histograms of", numeric, key="summary.properties")
            for column, place in zip(chosen, st.columns(max(len(chosen), 1))):
                with place:
                    log = st.toggle("log₁₀", key=f"summary.log.{column}")
                    st.plotly_chart(summaries.property_histogram(bundle, rows, column, context.keep, log=log),
                                    key=f"summary.hist.{column}", config={"displaylogo": False})


def save_selection_form(context: Context, rows) -> None:
    """Name and save a selection in the bundle (it reloads from the sidebar of the Explore page)."""
    loaded = context.loaded
    with st.form("selection.save", clear_on_submit=False, border=False):
        name_column, replace_column, button_column = st.columns([3, 1.2, 1])
        name = name_column.text_input("Save this selection as", key="selection.name", placeholder="e.g. bent tails")
        replace = replace_column.checkbox("replace", key="selection.replace", help="Overwrite a selection of that name.")
        if button_column.form_submit_button("Save", icon=":material/bookmark_add:"):
            try:
                saved = selections.save_selection(loaded.bundle, name, rows, filter_text=context.row_filter.to_text()
                                                  if context.row_filter else "", replace=replace)
                st.success(f"Saved {saved:,} sources as **{name.strip()}**.", icon=":material/bookmark:")
            except InputError as e:
                st.error(str(e), icon=":material/error:")


def _open_saved(loaded: Loaded, name: str) -> None:
    rows, missing = selections.selection_rows(loaded.bundle, name)
    set_focus(views.Focus(loaded.path, "selection", tuple(int(r) for r in rows)) if len(rows) else None)
    if missing:
        st.session_state["selection.flash"] = f"{missing:,} of the saved ids are no longer in this bundle."


def _delete_saved(loaded: Loaded, name: str) -> None:
    selections.delete_selection(loaded.path, name)


def saved_selections(context: Context) -> None:
    """The bundle's saved selections: open one as the current selection, or delete it."""
    loaded = context.loaded
    try:
        saved = selections.read_selections(loaded.path)
    except InputError as e:
        st.error(str(e), icon=":material/error:")
        return
    if not saved:
        return
    with st.expander(f"Saved selections ({len(saved)})", icon=":material/bookmarks:"):
        name = st.selectbox("Selection", list(saved), key="selection.saved",
                            format_func=lambda n: f"{n} ({len(saved[n]['ids']):,})")
        if name is None:
            return
        entry = saved[name]
        st.caption(f"saved {entry.get('time', '?')}" + (f" · filter then: {entry['filter']}" if entry.get("filter") else ""))
        left, right = st.columns(2)
        left.button("Open", on_click=_open_saved, args=(loaded, name), key="selection.open",
                    icon=":material/open_in_new:", width="stretch")
        right.button("Delete", on_click=_delete_saved, args=(loaded, name), key="selection.delete",
                     icon=":material/delete:", width="stretch")
        flash = st.session_state.pop("selection.flash", None)
        if flash:
            st.warning(flash, icon=":material/warning:")
