// The map: draws the 2-D layout with regl-scatterplot, coloured by class, with
// the unclassified points drawn first (underneath every class), and keeps the
// maps between a row of /api/points and its index in the draw order.
import createScatterplot from 'regl-scatterplot';

export const GREY = '#bebebe';
const HIGHLIGHT = '#111111';
const HOVER = '#ff2bd6';
const MARGIN = 0.03; // of the half-width, on the longer side

/**
 * pts: parsed /api/points; classes: /api/classes' list; on: {hover(row|-1),
 * click(row), lasso(rows), deselect()}. Returns the plot; `drawn` resolves
 * once every point has been drawn the first time.
 */
export function createPlot(canvas, pts, classes, on) {
  const { n, x, y, cls } = pts;

  // Category 0 is unclassified, 1 + i is classes[i]. Draw order: category 0,
  // then the classes from largest to smallest, so small classes end on top.
  const catOfLabel = new Map(classes.map((c, i) => [c.label, i + 1]));
  const m = classes.length + 1;
  const cat = new Uint32Array(n);
  const counts = new Uint32Array(m);
  for (let r = 0; r < n; r++) {
    const c = catOfLabel.get(cls[r]) ?? 0;
    cat[r] = c;
    counts[c]++;
  }
  const catOrder = [0, ...classes.map((_, i) => i + 1).sort((a, b) => counts[b] - counts[a] || a - b)];
  const start = new Uint32Array(m);
  let s = 0;
  for (const c of catOrder) {
    start[c] = s;
    s += counts[c];
  }
  const order = new Uint32Array(n); // draw index -> row
  const drawOf = new Uint32Array(n); // row -> draw index
  const next = start.slice();
  for (let r = 0; r < n; r++) {
    const d = next[cat[r]]++;
    order[d] = r;
    drawOf[r] = d;
  }

  // Normalise into [-1, 1] keeping the aspect ratio: the longer side spans
  // [-1 + MARGIN, 1 - MARGIN], both centred.
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let r = 0; r < n; r++) {
    if (Number.isFinite(x[r]) && Number.isFinite(y[r])) {
      if (x[r] < x0) x0 = x[r];
      if (x[r] > x1) x1 = x[r];
      if (y[r] < y0) y0 = y[r];
      if (y[r] > y1) y1 = y[r];
    }
  }
  const half = Math.max(x1 - x0, y1 - y0) / 2 || 1;
  const scale = (1 - MARGIN) / half;
  const cx = (x0 + x1) / 2 || 0;
  const cy = (y0 + y1) / 2 || 0;
  const px = new Float32Array(n);
  const py = new Float32Array(n);
  const pc = new Float32Array(n);
  for (let d = 0; d < n; d++) {
    const r = order[d];
    const ok = Number.isFinite(x[r]) && Number.isFinite(y[r]);
    px[d] = ok ? (x[r] - cx) * scale : 0;
    py[d] = ok ? (y[r] - cy) * scale : 0;
    pc[d] = cat[r];
  }

  const colours = [GREY, ...classes.map((c) => c.colour || GREY)];
  const scatter = createScatterplot({
    canvas,
    width: 'auto',
    height: 'auto',
    backgroundColor: '#ffffff',
    colorBy: 'valueA',
    sizeBy: 'valueA',
    pointColor: colours,
    pointColorActive: colours.map(() => HIGHLIGHT),
    pointColorHover: colours.map(() => HOVER),
    pointSize: colours.map((_, i) => (i === 0 ? 2 : 3)),
    pointSizeSelected: 3,
    pointOutlineWidth: 1,
    opacityInactiveMax: 0.15,
    lassoColor: '#0a6ebd',
    lassoMinDelay: 10,
  });

  // A lasso publishes `select` between `lassoStart` and `lassoEnd`; a click
  // on a point publishes `select` with that one point. Our own highlights
  // use preventEvent, so they never come back here.
  let lassoing = false;
  scatter.subscribe('lassoStart', () => { lassoing = true; });
  scatter.subscribe('lassoEnd', () => { lassoing = false; });
  scatter.subscribe('select', ({ points }) => {
    const rows = Array.from(points, (d) => order[d]);
    if (lassoing || rows.length !== 1) on.lasso(rows);
    else on.click(rows[0]);
  });
  scatter.subscribe('deselect', () => on.deselect());
  // regl-scatterplot also treats the mouseup that ends a lasso as a click when
  // the lasso ends where it started; drop clicks whose mousedown held shift.
  let shiftDown = false;
  canvas.addEventListener('mousedown', (e) => { shiftDown = e.shiftKey; }, true);
  canvas.parentElement.addEventListener('click', (e) => { if (shiftDown && e.target === canvas) e.stopPropagation(); }, true);
  scatter.subscribe('pointover', (d) => on.hover(order[d]));
  scatter.subscribe('pointout', () => on.hover(-1));

  return {
    drawn: scatter.draw({ x: px, y: py, valueA: pc }, { zDataType: 'categorical' }),
    /** Rows of a class label, in row order (a view, do not modify). */
    classRows: (label) => {
      const c = catOfLabel.get(label);
      return c === undefined ? new Uint32Array(0) : order.subarray(start[c], start[c] + counts[c]);
    },
    /** Highlights these rows (fading the rest); an empty list clears. */
    highlight: (rows) => scatter.select(Array.from(rows, (r) => drawOf[r]), { preventEvent: true }),
    /** [x, y] in CSS pixels from the canvas's top-left corner. */
    screenPosition: (row) => scatter.getScreenPosition(drawOf[row]),
    resetView: () => scatter.zoomToOrigin({ transition: true }),
  };
}
