// The same measurements for every renderer: the page loads one bundle, which hands its mount() to run().
// A frame counts as drawn once its pixels can be read back (software GL finishes it then).

const now = () => performance.now();

async function fetchFloats(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

// Views: zoom in step by step towards a dense region, then pan across it (centre x, centre y, half-width).
function views(count) {
  const out = [];
  for (let i = 0; i < count; i += 1) {
    const t = i / (count - 1);
    const half = t < 0.5 ? 1 / (1 + 14 * t) : 0.125;
    const cx = t < 0.5 ? 0.1 * t : 0.05 + 0.6 * (t - 0.5);
    out.push([cx, 0.0, half]);
  }
  return out;
}

export function install(mount) {
  window.runBench = async ({ n, width, height, pointSize, palette, frames }) => {
    const [points, codes] = await Promise.all([fetchFloats('points.bin'), fetchFloats('codes.bin')]);
    const x = new Float32Array(points, 0, n);
    const y = new Float32Array(points, 4 * n, n);
    const code = new Uint8Array(codes);
    const canvas = document.getElementById('map');
    canvas.width = width;                         // device pixels = CSS pixels (the harness page runs at 1x)
    canvas.height = height;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const start = now();
    const map = await mount({ canvas, width, height, x, y, code, palette, pointSize });
    const firstFrame = now() - start;
    const frameMs = [];
    for (const [cx, cy, half] of views(frames)) {
      const begin = now();
      await map.setView(cx, cy, half);
      frameMs.push(now() - begin);
    }
    const pickMs = [];
    if (map.pick) {
      for (const [px, py] of [[0.5, 0.5], [0.3, 0.6], [0.7, 0.4], [0.45, 0.55], [0.6, 0.5]]) {
        const begin = now();
        map.pick(px * width, py * height);
        pickMs.push(now() - begin);
      }
    }
    window.benchMap = map;   // kept alive for the heap measurement
    return { firstFrame, frameMs, pickMs };
  };
}
