// deck.gl's ScatterplotLayer in an OrthographicView, fed the same binary arrays (no per-point objects).
import { Deck, OrthographicView } from '@deck.gl/core';
import { ScatterplotLayer } from '@deck.gl/layers';
import { install } from './harness.js';

const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

install(({ canvas, width, height, x, y, code, palette, pointSize }) => new Promise((resolveMount) => {
  const n = x.length;
  const positions = new Float32Array(2 * n);
  const colours = new Uint8Array(3 * n);
  const table = palette.map(rgb);
  for (let i = 0; i < n; i += 1) {
    positions[2 * i] = x[i];
    positions[2 * i + 1] = y[i];
    colours.set(table[code[i]], 3 * i);
  }
  const layer = new ScatterplotLayer({
    id: 'points', data: { length: n, attributes: {
      getPosition: { value: positions, size: 2 }, getFillColor: { value: colours, size: 3, normalized: true } } },
    radiusUnits: 'pixels', getRadius: pointSize / 2, opacity: 0.8, stroked: false, pickable: true,
  });
  const viewState = (cx, cy, half) => ({ target: [cx, cy, 0], zoom: Math.log2(width / (2 * half)) });
  let waiting = null;
  let deck = null;
  const handle = {
    setView(cx, cy, half) {
      return new Promise((resolve) => { waiting = resolve; deck.setProps({ viewState: viewState(cx, cy, half) }); });
    },
    pick(px, py) { return deck.pickObject({ x: px, y: py, radius: 2 }); },
  };
  waiting = () => resolveMount(handle);
  deck = new Deck({
    canvas, width, height, views: new OrthographicView({ flipY: false }), viewState: viewState(0, 0, 1),
    controller: false, layers: [layer], useDevicePixels: false,
    parameters: { clearColor: [1, 1, 1, 1] },
    onAfterRender: () => {
      const gl = deck.device.gl;
      gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
      if (waiting) { const done = waiting; waiting = null; done(); }
    },
  });
}));
