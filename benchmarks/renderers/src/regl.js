// regl-scatterplot, set up as the explorer's map component sets it up (explorer/app/frontend/src/map.js):
// an offscreen renderer the size of the map, categorical colours, constant point size for a fair comparison.
import createScatterplot, { createRenderer } from 'regl-scatterplot';
import { install } from './harness.js';

const rendered = (scatterplot, canvas) => new Promise((resolve) => {
  const unsubscribe = scatterplot.subscribe('drawing', () => {
    scatterplot.unsubscribe(unsubscribe);
    canvas.getContext('2d').getImageData(0, 0, 1, 1);
    resolve();
  });
});

install(async ({ canvas, width, height, x, y, code, palette, pointSize }) => {
  const renderer = createRenderer({ canvas: document.createElement('canvas') });
  renderer.resize(width, height);
  renderer.refresh();
  const scatterplot = createScatterplot({
    renderer, canvas, width, height, backgroundColor: '#ffffff',
    pointSize, pointScaleMode: 'constant', opacity: 0.8, pointColor: palette, colorBy: 'valueA',
    lassoInitiator: false, keyMap: {}, spatialIndexUseWorker: false,
  });
  const drawn = rendered(scatterplot, canvas);
  await scatterplot.draw({ x, y, valueA: Float32Array.from(code) }, { zDataType: 'categorical' });
  await drawn;
  return {
    setView(cx, cy, half) {
      const frame = rendered(scatterplot, canvas);
      const aspect = width / height;
      scatterplot.zoomToArea({ x: cx - half, y: cy - half / aspect, width: 2 * half, height: (2 * half) / aspect },
        { transition: false });
      return frame;
    },
  };
});
