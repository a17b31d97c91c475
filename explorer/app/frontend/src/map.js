// The explorer's latent map: every source drawn with regl-scatterplot (WebGL), a Streamlit component (v2).
//
// Python (explorer/app/latent_map.py) sends small JSON each rerun; the arrays come once from the app's
// own routes (explorer/app/map_server.py) under URLs that name their content, and are kept here.
// The view (zoom, pan) belongs to the user: it survives reruns, and page changes through sessionStorage.
import createScatterplot, { createRenderer } from 'regl-scatterplot';

const bytes = new Map();          // url -> Promise<ArrayBuffer>
const cards = new Map();          // hover url -> Promise<card>
const MARK = '#ff2e88';
const IDENTITY = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];   // the camera before it has moved
const CSS = `
.xmap { position: relative; font: 13px/1.35 "Source Sans Pro", sans-serif; color: #262730; }
.xmap-bar { display: flex; gap: 4px; flex-wrap: wrap; margin-bottom: 4px; align-items: center; }
.xmap-bar button { border: 1px solid #d0d3da; background: #fff; border-radius: 6px; padding: 2px 9px;
  cursor: pointer; font: inherit; }
.xmap-bar button[aria-pressed="true"] { background: #262730; color: #fff; border-color: #262730; }
.xmap-bar .xmap-status { margin-left: auto; opacity: 0.75; }
.xmap-stage { position: relative; border: 1px solid #e6e8ec; border-radius: 6px; overflow: hidden; }
.xmap-stage canvas { position: absolute; inset: 0; width: 100%; height: 100%; }
.xmap-over { pointer-events: none; }
.xmap-tip { position: absolute; pointer-events: none; background: rgba(255,255,255,0.96); border: 1px solid #c9ccd3;
  border-radius: 6px; padding: 6px; display: none; box-shadow: 0 2px 8px rgba(0,0,0,0.15); z-index: 3; max-width: 260px; }
.xmap-tip img { width: 96px; height: 96px; image-rendering: pixelated; display: block; margin-bottom: 4px; }
.xmap-tip b { display: block; }
.xmap-legend { position: absolute; top: 8px; right: 8px; background: rgba(255,255,255,0.9); border-radius: 6px;
  padding: 6px 8px; max-height: 70%; overflow: auto; z-index: 2; }
.xmap-legend .xmap-item { display: flex; gap: 6px; align-items: center; cursor: pointer; user-select: none; }
.xmap-legend .xmap-item[data-hidden="true"] { opacity: 0.35; text-decoration: line-through; }
.xmap-legend .xmap-swatch { width: 11px; height: 11px; border-radius: 50%; flex: none; }
.xmap-legend .xmap-bar-gradient { width: 180px; height: 12px; border-radius: 3px; margin: 3px 0; }
.xmap-legend .xmap-range { display: flex; justify-content: space-between; font-size: 12px; }
.xmap-note { padding: 8px; background: #fff6e5; border-radius: 6px; margin-bottom: 4px; }
`;

function fetchBytes(url) {
  if (!bytes.has(url)) {
    bytes.set(url, fetch(url).then((r) => {
      if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
      return r.arrayBuffer();
    }).catch((e) => { bytes.delete(url); throw e; }));
  }
  return bytes.get(url);
}

function hasWebGL() {
  try {
    const canvas = document.createElement('canvas');
    return !!(canvas.getContext('webgl2') || canvas.getContext('webgl'));
  } catch (e) {
    return false;
  }
}

function element(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}

function formatNumber(value) {
  if (!Number.isFinite(value)) return '—';
  const magnitude = Math.abs(value);
  return magnitude !== 0 && (magnitude >= 1e5 || magnitude < 1e-3) ? value.toExponential(2) : String(+value.toPrecision(4));
}

// A uniform grid over the points, built once per map: the point under the cursor without asking the renderer
// (regl-scatterplot redraws every point on each hover, a second per frame at 10^6 under software GL).
class PointGrid {
  constructor(x, y) {
    const n = x.length;
    this.size = Math.max(1, Math.ceil(Math.sqrt(n / 8)));
    this.x = x;
    this.y = y;
    const cells = this.size * this.size;
    const cellOf = new Int32Array(n);
    this.start = new Int32Array(cells + 1);
    for (let i = 0; i < n; i += 1) {
      cellOf[i] = this.cell(x[i], y[i]);
      this.start[cellOf[i] + 1] += 1;
    }
    for (let c = 0; c < cells; c += 1) this.start[c + 1] += this.start[c];
    const filled = this.start.slice(0, cells);
    this.rows = new Int32Array(n);
    for (let i = 0; i < n; i += 1) this.rows[filled[cellOf[i]]++] = i;
  }

  column(value) {
    return Math.min(this.size - 1, Math.max(0, Math.floor(((value + 1) / 2) * this.size)));
  }

  cell(x, y) {
    return this.column(y) * this.size + this.column(x);
  }

  // The nearest shown row within `radius` (map units) of (x, y), or null.
  nearest(x, y, radius, shown) {
    let best = null;
    let bestDistance = radius * radius;
    const [c0, c1, r0, r1] = [this.column(x - radius), this.column(x + radius), this.column(y - radius), this.column(y + radius)];
    for (let r = r0; r <= r1; r += 1) {
      for (let c = c0; c <= c1; c += 1) {
        const cell = r * this.size + c;
        for (let k = this.start[cell]; k < this.start[cell + 1]; k += 1) {
          const row = this.rows[k];
          if (shown && !shown[row]) continue;
          const d = (this.x[row] - x) ** 2 + (this.y[row] - y) ** 2;
          if (d <= bestDistance) { bestDistance = d; best = row; }
        }
      }
    }
    return best;
  }
}

class LatentMapView {
  constructor(root) {
    if (!document.getElementById('xmap-style')) {
      const style = element('style', null, document.head);
      style.id = 'xmap-style';
      style.textContent = CSS;
    }
    this.root = element('div', 'xmap', root);
    this.note = element('div', 'xmap-note', this.root);
    this.note.style.display = 'none';
    this.bar = element('div', 'xmap-bar', this.root);
    this.stage = element('div', 'xmap-stage', this.root);
    this.density = element('canvas', 'xmap-density', this.stage);
    this.canvas = element('canvas', 'xmap-gl', this.stage);
    this.overlay = element('canvas', 'xmap-over', this.stage);
    this.tip = element('div', 'xmap-tip', this.stage);
    this.legend = element('div', 'xmap-legend', this.stage);
    this.hidden = new Set();        // legend classes switched off
    this.hovered = null;
    this.lasso = null;              // the polygon being drawn (page pixels relative to the stage), or null
    this.mode = 'pan';
    this.data = null;
    this.ready = false;
    this.showDensity = false;
    this.webgl = hasWebGL();
    this.buttons = {};
    this.toolbar();
    if (this.webgl) this.scatterplot = this.createScatterplot();
    else {
      this.note.style.display = 'block';
      this.note.textContent = 'This browser has no WebGL, so the map is drawn as a density image: sources per cell, '
        + 'without points to click. Search by name or coordinates, or open the page in a browser with WebGL.';
      this.showDensity = true;
    }
    new ResizeObserver(() => this.resize()).observe(this.stage);
    // Hover, click, lasso and box are handled here, in the capture phase, and drawn on the overlay; the
    // renderer sees only what moves the camera, so it redraws only when the view or the data change.
    this.stage.addEventListener('mousedown', (e) => this.onDown(e), true);
    this.stage.addEventListener('mousemove', (e) => this.onMove(e), true);
    this.stage.addEventListener('mouseleave', () => { if (!this.lasso) this.setHovered(null); });
    this.stage.addEventListener('mouseleave', (e) => { if (e.target === this.canvas) e.stopPropagation(); }, true);
    this.stage.addEventListener('click', (e) => this.onClick(e), true);
    window.addEventListener('mousemove', (e) => {     // the renderer would hover (and redraw) under the lasso
      if (!this.lasso) return;
      e.stopPropagation();
      this.extendLasso(e);
    }, true);
    window.addEventListener('mouseup', (e) => { if (this.lasso) this.endLasso(e); });
  }

  local(event) {
    const box = this.stage.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }

  // Stage pixels to the map's normalised coordinates (the inverse of `project`; the camera does not rotate).
  unproject(px, py) {
    const { width, height } = this.dims();
    const v = this.view || IDENTITY;
    const clipX = (2 * px) / width - 1;
    const clipY = 1 - (2 * py) / height;
    return [(clipX * (width / height) - v[12]) / v[0], (clipY - v[13]) / v[5]];
  }

  pointAt(px, py) {
    if (!this.grid) return null;
    const [x, y] = this.unproject(px, py);
    const [x1] = this.unproject(px + Math.max(5, this.data.pointSize + 2), py);
    return this.grid.nearest(x, y, Math.abs(x1 - x), this.mask);
  }

  onDown(event) {
    if (event.target !== this.canvas) return;     // the legend, say
    this.downAt = this.local(event);
    if (!this.grid || event.button !== 0 || (this.mode === 'pan' && !event.shiftKey)) return;
    event.stopPropagation();        // a selection, not a pan
    event.preventDefault();
    this.setHovered(null);
    this.lasso = { box: this.mode === 'box', points: [this.downAt] };
  }

  onMove(event) {
    if (this.lasso || event.buttons) return;      // a drag: the camera's or the lasso's
    if (event.target !== this.canvas) { this.setHovered(null); return; }
    event.stopPropagation();
    const [px, py] = this.local(event);
    this.setHovered(this.pointAt(px, py));
  }

  onClick(event) {
    if (!this.grid || !this.downAt || event.target !== this.canvas) return;
    event.stopPropagation();
    const [px, py] = this.local(event);
    if (Math.hypot(px - this.downAt[0], py - this.downAt[1]) > 4) return;   // the end of a pan
    const row = this.pointAt(px, py);
    if (row !== null) {
      this.hideCard();
      this.send('clicked', row);
    }
  }

  extendLasso(event) {
    const point = this.local(event);
    const points = this.lasso.points;
    if (this.lasso.box) points[1] = point;
    else if (Math.hypot(point[0] - points[points.length - 1][0], point[1] - points[points.length - 1][1]) >= 2) {
      points.push(point);
    }
    this.scheduleRedraw();
  }

  endLasso(event) {
    this.extendLasso(event);
    const { box, points } = this.lasso;
    this.lasso = null;
    this.scheduleRedraw();
    const corners = box && points.length === 2
      ? [points[0], [points[1][0], points[0][1]], points[1], [points[0][0], points[1][1]]] : points;
    if (corners.length < 3) return;
    const polygon = corners.map(([px, py]) => this.unproject(px, py));
    this.lastLasso = polygon;
    this.send('lasso', { x: polygon.map((p) => p[0]), y: polygon.map((p) => p[1]) });
  }

  setHovered(row) {
    if (row === this.hovered) return;
    if (row === null) this.hideCard(); else this.showCard(row);
    this.scheduleRedraw();
  }

  toolbar() {
    const add = (name, label, title, action) => {
      const button = element('button', null, this.bar);
      button.type = 'button';
      button.textContent = label;
      button.title = title;
      button.dataset.action = name;
      button.onclick = action;
      this.buttons[name] = button;
      return button;
    };
    const mode = (name) => () => this.setMode(name);
    add('pan', 'Pan & click', 'Drag to pan, scroll to zoom, click a source for its neighbours', mode('pan'));
    add('lasso', 'Lasso', 'Draw around sources to select them (or shift-drag in any mode)', mode('lasso'));
    add('box', 'Box', 'Drag a rectangle to select the sources inside', mode('box'));
    add('reset', 'Reset view', 'Show the whole map', () => this.scatterplot && this.scatterplot.reset());
    add('zoom', 'Zoom to marked', 'Zoom to the clicked source and its neighbours, or the selection', () => this.zoomToMarked());
    add('density', 'Density', 'Shade the number of sources per cell under the points', () => {
      this.showDensity = !this.showDensity;
      this.buttons.density.setAttribute('aria-pressed', String(this.showDensity));
      this.redraw();
    });
    this.status = element('span', 'xmap-status', this.bar);
    this.setMode('pan');
  }

  setMode(name) {
    for (const mode of ['pan', 'lasso', 'box']) this.buttons[mode].setAttribute('aria-pressed', String(mode === name));
    this.mode = name;
    this.stage.style.cursor = name === 'pan' ? '' : 'crosshair';
  }

  createScatterplot() {
    // regl-scatterplot draws offscreen, then copies each frame onto our canvas. Its default offscreen canvas is
    // the whole window; one the size of the map copies a third of the pixels (the copy dominates a frame under
    // software GL).
    this.renderer = createRenderer({ canvas: document.createElement('canvas') });
    const scatterplot = createScatterplot({
      renderer: this.renderer, canvas: this.canvas, width: 'auto', height: 'auto', backgroundColor: '#ffffff',
      pointScaleMode: 'asinh', colorBy: 'valueA', lassoInitiator: false, keyMap: {}, spatialIndexUseWorker: false,
    });
    scatterplot.subscribe('view', ({ view }) => {
      this.view = view;
      this.scheduleRedraw();
      if (this.viewKey) {
        try { sessionStorage.setItem(this.viewKey, JSON.stringify(Array.from(view))); } catch (e) { /* private mode */ }
      }
    });
    return scatterplot;
  }

  send(name, value) {
    if (this.setTriggerValue) this.setTriggerValue(name, value);
  }

  async update(data, setTriggerValue) {
    this.setTriggerValue = setTriggerValue;
    const previous = this.data;
    this.data = data;
    if (this.stage.style.height !== `${data.height}px`) {
      this.stage.style.height = `${data.height}px`;
      this.size = null;
    }
    this.viewKey = `explorer.map.view:${data.key}:${data.token}`;
    const newMap = !previous || previous.token !== data.token;
    if (newMap) this.hidden.clear();
    try {
      const [points, colours, keep] = await Promise.all([
        fetchBytes(data.points), fetchBytes(data.colour), data.keep ? fetchBytes(data.keep) : null]);
      if (this.data !== data) return;            // a newer rerun arrived meanwhile
      this.x = new Float32Array(points, 0, data.n);
      this.y = new Float32Array(points, 4 * data.n, data.n);
      this.codes = new Uint8Array(colours);
      this.keep = keep ? new Uint8Array(keep) : null;
      if (this.webgl && this.gridOf !== points) {
        this.grid = new PointGrid(this.x, this.y);
        this.gridOf = points;
      }
    } catch (e) {
      this.note.style.display = 'block';
      this.note.textContent = `The map's data could not be loaded (${e.message}). Reload the page.`;
      return;
    }
    this.legendFor(data.legend, data.palette);
    this.status.textContent = `${data.shown.toLocaleString()} of ${data.n.toLocaleString()} sources drawn`;
    if (this.scatterplot) await this.drawPoints(data, previous, newMap);
    else this.shownRows();             // the density image follows the filter too
    this.ready = true;
    this.redraw();
  }

  async drawPoints(data, previous, newMap) {
    // Every change below costs a frame of all N points (a second at 10^6 under software GL): settle the look and
    // the camera before the points are drawn, and touch only what changed.
    const scatterplot = this.scatterplot;
    const look = {
      pointColor: data.palette, pointSize: data.pointSize,
      opacity: data.n > 50000 ? 1 : data.opacity, opacityBy: data.n > 50000 ? 'density' : null,
    };
    if (JSON.stringify(look) !== this.look) {
      this.look = JSON.stringify(look);
      scatterplot.set(look);
    }
    if (newMap) {
      let saved = null;
      try { saved = JSON.parse(sessionStorage.getItem(this.viewKey) || 'null'); } catch (e) { saved = null; }
      if (saved && saved.length === 16) scatterplot.view(saved, { preventEvent: true });
      this.view = scatterplot.get('cameraView');
    }
    const sameColours = previous && !newMap && previous.colour === data.colour;
    if (!sameColours) {
      const valueA = Float32Array.from(this.codes);
      const rows = this.shownRows();
      await scatterplot.draw({ x: this.x, y: this.y, valueA }, {
        zDataType: 'categorical', preventFilterReset: true, ...(rows ? { filter: rows } : {}) });
    } else {
      this.applyFilter();
    }
  }

  visibleMask() {
    const { n, filtered } = this.data;
    if (!filtered && this.hidden.size === 0) return null;
    const mask = new Uint8Array(n);
    const keep = this.keep;
    for (let i = 0; i < n; i += 1) {
      mask[i] = (keep ? keep[i] : 1) && !this.hidden.has(this.codes[i]) ? 1 : 0;
    }
    return mask;
  }

  // The rows to draw (null: all), or undefined when nothing changed since the last call; keeps `mask`.
  shownRows() {
    const shown = `${this.data.token}|${this.data.colour}|${this.data.keep}|${[...this.hidden].join(',')}`;
    if (shown === this.shown) return undefined;
    this.shown = shown;
    const mask = this.visibleMask();
    this.mask = mask;
    if (!mask) return null;
    const rows = [];
    for (let i = 0; i < mask.length; i += 1) if (mask[i]) rows.push(i);
    return rows;
  }

  applyFilter() {
    const rows = this.shownRows();
    if (rows === undefined || !this.scatterplot) return;       // unchanged: no redraw
    if (rows) this.scatterplot.filter(rows, { preventEvent: true });
    else if (this.scatterplot.get('filteredPoints').length !== this.data.n) this.scatterplot.unfilter({ preventEvent: true });
  }

  legendFor(legend, palette) {
    const box = this.legend;
    box.innerHTML = '';
    box.style.display = legend.kind === 'plain' ? 'none' : 'block';
    if (legend.kind === 'plain') return;
    const title = element('div', null, box);
    title.innerHTML = `<b></b>`;
    title.firstChild.textContent = legend.title;
    if (legend.kind === 'numeric') {
      const gradient = element('div', 'xmap-bar-gradient', box);
      gradient.style.background = `linear-gradient(to right, ${legend.stops.join(', ')})`;
      const range = element('div', 'xmap-range', box);
      element('span', null, range).textContent = formatNumber(legend.min);
      element('span', null, range).textContent = formatNumber(legend.max);
      const toggle = element('label', null, box);
      const check = element('input', null, toggle);
      check.type = 'checkbox';
      check.checked = legend.log;
      check.onchange = () => this.send('log', check.checked);
      toggle.appendChild(document.createTextNode(' log₁₀ scale'));
    }
    for (const item of legend.items) {
      const row = element('div', 'xmap-item', box);
      row.dataset.code = String(item.code);
      row.dataset.hidden = String(this.hidden.has(item.code));
      row.title = 'Click to hide or show';
      const swatch = element('span', 'xmap-swatch', row);
      swatch.style.background = item.colour || palette[item.code];
      element('span', null, row).textContent = legend.kind === 'numeric' ? item.label
        : `${item.label} (${item.count.toLocaleString()})`;
      row.onclick = () => {
        if (this.hidden.has(item.code)) this.hidden.delete(item.code); else this.hidden.add(item.code);
        row.dataset.hidden = String(this.hidden.has(item.code));
        this.applyFilter();
        this.redraw();
      };
    }
  }

  // Screen position (CSS pixels in the stage) of normalised map coordinates, through the camera.
  project(x, y) {
    const { width, height } = this.dims();
    const v = this.view || IDENTITY;
    const aspect = width / height;
    const clipX = (v[0] * x + v[4] * y + v[12]) / aspect;
    const clipY = v[1] * x + v[5] * y + v[13];
    return [(width * (clipX + 1)) / 2, height * (0.5 - clipY / 2)];
  }

  positionOf(row) {
    return this.project(this.x[row], this.y[row]);
  }

  scheduleRedraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = null; this.redraw(); });
  }

  sized(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const { width, height } = this.dims();
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const context = canvas.getContext('2d');
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    return context;
  }

  redraw() {
    if (!this.ready) return;
    this.drawDensity();
    this.drawMarks();
  }

  drawDensity() {
    const context = this.sized(this.density);
    this.density.style.display = this.showDensity ? 'block' : 'none';
    if (!this.showDensity) return;
    const cell = 4;
    const { width, height } = this.dims();
    const columns = Math.ceil(width / cell);
    const rows = Math.ceil(height / cell);
    const counts = new Uint32Array(columns * rows);
    const v = this.view || IDENTITY;
    const aspect = width / height;
    const mask = this.mask;
    let most = 0;
    for (let i = 0; i < this.x.length; i += 1) {   // project(), inlined: no array per point at 10^6
      if (mask && !mask[i]) continue;
      const px = (width * ((v[0] * this.x[i] + v[4] * this.y[i] + v[12]) / aspect + 1)) / 2;
      const py = height * (0.5 - (v[1] * this.x[i] + v[5] * this.y[i] + v[13]) / 2);
      if (px < 0 || py < 0 || px >= width || py >= height) continue;
      const at = Math.floor(py / cell) * columns + Math.floor(px / cell);
      counts[at] += 1;
      if (counts[at] > most) most = counts[at];
    }
    const image = context.createImageData(columns, rows);
    const top = Math.log1p(most) || 1;
    for (let i = 0; i < counts.length; i += 1) {
      if (!counts[i]) continue;
      const t = Math.log1p(counts[i]) / top;
      image.data.set([27, 42, 58, Math.round(40 + 200 * t)], 4 * i);
    }
    const small = document.createElement('canvas');
    small.width = columns;
    small.height = rows;
    small.getContext('2d').putImageData(image, 0, 0);
    context.imageSmoothingEnabled = true;
    context.drawImage(small, 0, 0, columns * cell, rows * cell);
  }

  drawMarks() {
    const context = this.sized(this.overlay);
    const marks = this.data.marks;
    const size = Math.max(this.data.pointSize * 2.4, 9);
    context.lineWidth = 2;
    context.strokeStyle = MARK;
    const ring = (row, radius) => {
      const [x, y] = this.positionOf(row);
      context.beginPath();
      context.arc(x, y, radius, 0, 2 * Math.PI);
      context.stroke();
    };
    for (const row of marks.selection) ring(row, size * 0.75);
    for (const row of marks.neighbours) ring(row, size);
    for (const row of marks.examples) {
      const [x, y] = this.positionOf(row);
      context.strokeRect(x - size / 2, y - size / 2, size, size);
    }
    const star = ([x, y]) => {
      context.beginPath();
      for (let i = 0; i < 10; i += 1) {
        const r = i % 2 ? size * 0.45 : size * 1.1;
        const a = (Math.PI / 5) * i - Math.PI / 2;
        context.lineTo(x + r * Math.cos(a), y + r * Math.sin(a));
      }
      context.closePath();
      context.fillStyle = MARK;
      context.fill();
      context.strokeStyle = '#ffffff';
      context.lineWidth = 1.5;
      context.stroke();
    };
    if (marks.source !== null && marks.source !== undefined) star(this.positionOf(marks.source));
    if (marks.placed) star(this.project(marks.placed[0], marks.placed[1]));
    if (this.hovered !== null) {
      context.strokeStyle = '#111111';
      context.lineWidth = 1.5;
      ring(this.hovered, size * 0.6);
    }
    if (this.lasso) {
      const points = this.lasso.points;
      context.strokeStyle = '#1f6feb';
      context.fillStyle = 'rgba(31, 111, 235, 0.08)';
      context.lineWidth = 1.5;
      context.beginPath();
      if (this.lasso.box && points.length === 2) {
        const [[x0, y0], [x1, y1]] = points;
        context.rect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
      } else {
        points.forEach(([x, y], i) => (i ? context.lineTo(x, y) : context.moveTo(x, y)));
        context.closePath();
      }
      context.fill();
      context.stroke();
    }
  }

  zoomToMarked() {
    if (!this.scatterplot || !this.data) return;
    const marks = this.data.marks;
    const rows = [marks.source, ...marks.neighbours, ...marks.selection, ...marks.examples]
      .filter((r) => r !== null && r !== undefined);
    if (rows.length) this.scatterplot.zoomToPoints(rows, { padding: 0.3, transition: true });
  }

  showCard(row) {
    if (this.lasso || !this.data) return;
    this.hovered = row;
    const url = `${this.data.base}/hover/${row}?display=${encodeURIComponent(this.data.display)}`;
    if (!cards.has(url)) cards.set(url, fetch(url).then((r) => r.json()).catch(() => null));
    const [x, y] = this.positionOf(row);
    const { width } = this.dims();
    this.tip.style.left = `${Math.min(x + 14, width - 270)}px`;
    this.tip.style.top = `${Math.max(y - 60, 4)}px`;
    cards.get(url).then((card) => {
      if (this.hovered !== row || !card || card.error) return;
      this.tip.innerHTML = '';
      this.tip.dataset.row = String(row);
      const image = element('img', null, this.tip);
      image.src = card.image;
      image.alt = card.id;
      element('b', null, this.tip).textContent = card.id;
      for (const line of card.lines) element('div', null, this.tip).textContent = line;
      this.tip.style.display = 'block';
    });
  }

  hideCard() {
    this.hovered = null;
    this.tip.style.display = 'none';
  }

  // The stage's size in CSS pixels, read once per resize (reading it per point forces a layout each time).
  dims() {
    if (!this.size) this.size = { width: this.stage.clientWidth, height: this.stage.clientHeight };
    return this.size;
  }

  resize() {
    this.size = null;
    if (this.scatterplot) {
      const { width, height } = this.dims();
      if (width > 0 && height > 0) {
        this.renderer.resize(width, height);
        this.renderer.refresh();
        this.scatterplot.set({ width, height });
      }
    }
    this.redraw();
  }
}

export function render(component) {
  const { data, setTriggerValue, parentElement } = component;
  if (!parentElement.__xmap) parentElement.__xmap = new LatentMapView(parentElement);
  const view = parentElement.__xmap;
  window.__explorerMaps = window.__explorerMaps || {};
  window.__explorerMaps[data.key] = view;
  view.update(data, setTriggerValue);
}
