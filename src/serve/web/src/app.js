// Entry point of the `dagrun serve` explorer: loads info, classes and points,
// wires the map to the side panel (classes, galaxy detail, similar search with
// +/− re-ranking, labels) and exposes window.dagrun for the automated tests.
import { api, net, parsePoints, query, withToken } from './api.js';
import { createPlot, GREY } from './plot.js';
import * as ui from './ui.js';

const $ = (id) => document.getElementById(id);
const SAMPLE = 24; // cards shown for a class or a label
const MAX_CARDS = 100; // cards shown for a similar result
const MAX_QUERY_IDS = 2000; // ids in one /api/similar URL

const st = {
  info: null,
  classByLabel: new Map(),
  pts: null,
  rowOf: null, // id -> row, built on first use
  plot: null,
  highlight: [], // rows highlighted on the map
  lasso: null, // rows of the current lasso selection, or null
  gallery: [], // cards shown: [{id, rank?, score?, cls}]
  pos: new Set(),
  neg: new Set(),
  ticked: new Set(), // class labels ticked for merging
  sort: { key: 'size', desc: true },
  detailId: null,
  labels: { labels: [], names: [] },
  keys: null, // columns shown on cards without images
  seq: 0, // of the latest similar request
};

const dagrun = {
  ready: false,
  drawnMs: null,
  pointsMs: null,
  n: 0,
  ids: [],
  similar: null,
  labels: null,
  get busy() { return net.busy; },
  get selected() { return Array.from(st.highlight, (r) => st.pts.ids[r]); },
  screenPosition: (row) => st.plot.screenPosition(row),
  canvasRect: () => {
    const { x, y, left, top, right, bottom, width, height } = $('plot').getBoundingClientRect();
    return { x, y, left, top, right, bottom, width, height };
  },
};
window.dagrun = dagrun;

/** Runs an action; any error becomes the visible status line. */
const guard = (fn) => (...args) =>
  Promise.resolve()
    .then(() => fn(...args))
    .catch((e) => ui.setStatus(e?.message || String(e), 'error'));

const colourOf = (label) => st.classByLabel.get(label)?.colour ?? GREY;
const rowOf = (id) => (st.rowOf ??= new Map(st.pts.ids.map((v, r) => [v, r]))).get(id);
const rowsOf = (ids) => ids.map(rowOf).filter((r) => r !== undefined);
const idsOf = (rows) => Array.from(rows, (r) => st.pts.ids[r]);
const count = (n) => n.toLocaleString('en');
const sample = (rows, k) =>
  rows.length <= k ? Array.from(rows) : Array.from({ length: k }, (_, i) => rows[Math.floor((i * rows.length) / k)]);

const cardCtx = {
  colourOf,
  mark: (id, sign) => mark([id], sign),
  open: (id) => guard(openGalaxy)(id),
  similar: (id) => guard(similar)([id], []),
};

function setHighlight(rows, { lasso = false } = {}) {
  for (const tr of $('classes').querySelectorAll('tr.active')) tr.classList.remove('active');
  st.highlight = rows;
  st.lasso = lasso && rows.length ? rows : null;
  if (!lasso) st.plot?.highlight(rows);
  updateTarget();
}

function target() {
  return st.lasso
    ? { what: 'lasso selection', ids: idsOf(st.lasso) }
    : { what: 'gallery', ids: st.gallery.map((g) => g.id) };
}

function updateTarget() {
  const now = st.lasso ? `lasso selection, ${count(st.lasso.length)}` : `gallery, ${count(st.gallery.length)}`;
  $('label-target').textContent =
    `Label / Remove apply to the lasso selection (shift+drag) if there is one, else to the gallery. Now: ${now} galaxies.`;
}

function showGallery(items, title) {
  st.gallery = items.map((it) => ({ ...it, cls: st.pts.cls[rowOf(it.id)] ?? -1 }));
  ui.renderGallery(st.gallery, title, { ...cardCtx, hasImages: st.info.has_images });
  updateTarget();
  if (!st.info.has_images && items.length) guard(fillCards)(st.gallery.map((g) => g.id));
}

async function fillCards(ids) {
  const { galaxies } = await api.json(`/api/galaxies?${query(ids.map((id) => ['id', id]))}`);
  if (!st.keys && galaxies.length) {
    const cols = galaxies[0].columns || {};
    const truth = st.info.truth && st.info.truth in cols ? [st.info.truth] : [];
    const numeric = Object.keys(cols).filter((k) => typeof cols[k] === 'number' && !truth.includes(k));
    st.keys = [...truth, ...numeric].slice(0, 3);
  }
  ui.fillCards(galaxies, st.keys || []);
}

function openClass(label) {
  const rows = st.plot.classRows(label);
  setHighlight(rows);
  $('classes').querySelector(`tr[data-label="${label}"]`)?.classList.add('active');
  const shown = sample(rows, SAMPLE);
  showGallery(shown.map((r) => ({ id: st.pts.ids[r] })), `class ${label}: ${count(rows.length)} galaxies, ${shown.length} shown`);
}

async function openGalaxy(id) {
  st.detailId = id;
  const g = await api.json(`/api/galaxy/${encodeURIComponent(id)}`);
  if (st.detailId === id) ui.renderDetail(g, cardCtx);
}

async function similar(ids, not) {
  if (!ids.length) throw new Error('mark at least one positive (+) first');
  if (ids.length + not.length > MAX_QUERY_IDS) {
    throw new Error(`too many marked galaxies (${ids.length + not.length}); at most ${MAX_QUERY_IDS}`);
  }
  const kIn = Math.floor(Number($('k').value));
  const k = kIn >= 1 ? kIn : st.info.k;
  const seq = ++st.seq;
  const what = not.length ? `re-rank of ${ids.length} + / ${not.length} −` : `similar to ${ids.length === 1 ? ids[0] : `${ids.length} galaxies`}`;
  ui.setStatus(`${what}: searching…`);
  const res = await api.json(`/api/similar?${query([...ids.map((i) => ['id', i]), ...not.map((i) => ['not', i]), ['k', k]])}`);
  if (seq !== st.seq) return; // a newer search has started
  const results = res.results.map((r) => r.id);
  st.similar = dagrun.similar = { query: [...ids], not: [...not], results };
  setHighlight(rowsOf([...ids, ...results]));
  const shown = res.results.slice(0, MAX_CARDS);
  showGallery(shown.map((r, i) => ({ id: r.id, rank: i + 1, score: r.score })),
    `${what}: ${results.length} results${shown.length < results.length ? `, ${shown.length} shown` : ''}`);
  ui.setStatus(`${what}: ${results.length} results`, 'ok');
}

function mark(ids, sign) {
  const [add, drop] = sign > 0 ? [st.pos, st.neg] : [st.neg, st.pos];
  for (const id of ids) {
    add.add(id);
    drop.delete(id);
  }
  renderMarks();
}

function renderMarks() {
  ui.renderMarks(st.pos, st.neg, { unmark: (id) => { st.pos.delete(id); st.neg.delete(id); renderMarks(); } });
}

function markLasso(sign) {
  if (!st.lasso) throw new Error('no lasso selection: shift+drag on the map first');
  mark(idsOf(st.lasso), sign);
  ui.setStatus(`${count(st.lasso.length)} lassoed galaxies marked ${sign > 0 ? '+' : '−'}`, 'ok');
}

function labelName() {
  const name = $('label-name').value.trim();
  if (!name) throw new Error('type a label name first');
  return name;
}

async function postLabel(action, label, ids, what) {
  if (!ids.length) throw new Error(`nothing to ${action}: the ${what} is empty`);
  ui.setStatus(`${action} "${label}": sending ${count(ids.length)} ids…`);
  const res = await api.post('/api/labels', { action, label, ids });
  const verb = action === 'add' ? `labelled ${count(res.count)} galaxies` : `removed it from ${count(res.count)} galaxies`;
  ui.setStatus(`"${label}": ${verb} (${what}, ${count(ids.length)} sent; seq ${res.seq})`, 'ok');
  await refreshLabels();
  if (st.detailId) await openGalaxy(st.detailId);
}

async function labelSelection(action) {
  const t = target();
  await postLabel(action, labelName(), t.ids, t.what);
}

async function mergeClasses() {
  const labels = [...st.ticked].sort((a, b) => a - b);
  if (labels.length < 1) throw new Error('tick one or more classes in the class list first');
  const name = labelName();
  const ids = labels.flatMap((l) => idsOf(st.plot.classRows(l)));
  await postLabel('add', name, ids, `classes ${labels.join(', ')}`);
}

async function refreshLabels() {
  const res = await api.json('/api/labels');
  st.labels = dagrun.labels = res;
  ui.renderLabels(res.names, { open: openLabel });
}

function openLabel(name) {
  const rows = rowsOf(st.labels.labels.filter((l) => l.label === name).map((l) => l.id));
  setHighlight(rows);
  const shown = sample(rows, SAMPLE);
  showGallery(shown.map((r) => ({ id: st.pts.ids[r] })), `label "${name}": ${count(rows.length)} galaxies, ${shown.length} shown`);
}

function renderClasses() {
  ui.renderClasses([...st.classByLabel.values()], st.sort, st.ticked, {
    open: openClass,
    tick: (label, on) => {
      if (on) st.ticked.add(label);
      else st.ticked.delete(label);
      $('merge').textContent = st.ticked.size ? `Merge ${st.ticked.size} ticked classes` : 'Merge ticked classes';
    },
    sort: (key) => {
      st.sort = st.sort.key === key ? { key, desc: !st.sort.desc } : { key, desc: key !== 'label' };
      renderClasses();
    },
  });
}

// The tooltip follows the last mouse position over the map.
const mouse = { x: 0, y: 0 };
function hover(row) {
  const tip = $('tooltip');
  if (row < 0) {
    tip.hidden = true;
    return;
  }
  const c = st.pts.cls[row];
  tip.textContent = `${st.pts.ids[row]} · ${c >= 0 ? `class ${c}` : 'unclassified'}`;
  tip.style.left = `${mouse.x + 12}px`;
  tip.style.top = `${mouse.y + 12}px`;
  tip.hidden = false;
}

function wire() {
  $('view').addEventListener('mousemove', (e) => {
    const r = $('view').getBoundingClientRect();
    mouse.x = e.clientX - r.left;
    mouse.y = e.clientY - r.top;
  });
  $('view').addEventListener('mouseleave', () => { $('tooltip').hidden = true; });
  $('reset-view').onclick = () => st.plot?.resetView();
  $('rerank').onclick = guard(() => similar([...st.pos], [...st.neg]));
  $('lasso-pos').onclick = guard(() => markLasso(+1));
  $('lasso-neg').onclick = guard(() => markLasso(-1));
  $('marks-clear').onclick = () => { st.pos.clear(); st.neg.clear(); renderMarks(); };
  $('label-add').onclick = guard(() => labelSelection('add'));
  $('label-remove').onclick = guard(() => labelSelection('remove'));
  $('merge').onclick = guard(mergeClasses);
  $('export-csv').href = withToken('/api/export?format=csv');
  $('export-parquet').href = withToken('/api/export?format=parquet');
}

async function main() {
  wire();
  ui.setStatus('loading…');
  const [info, cl, buf] = await Promise.all([api.json('/api/info'), api.json('/api/classes'), api.buffer('/api/points')]);
  const pts = parsePoints(buf);
  dagrun.pointsMs = performance.now();
  Object.assign(st, { info, pts });
  st.classByLabel = new Map(cl.classes.map((c) => [c.label, c]));
  dagrun.ids = pts.ids;
  ui.renderHeader(info, cl);
  renderClasses();
  renderMarks();
  updateTarget();
  $('k').value = info.k;
  guard(refreshLabels)();

  st.plot = createPlot($('plot'), pts, cl.classes, {
    hover,
    click: (row) => {
      guard(openGalaxy)(pts.ids[row]);
      guard(similar)([pts.ids[row]], []);
    },
    lasso: (rows) => {
      setHighlight(rows, { lasso: true });
      ui.setStatus(`lasso: ${count(rows.length)} galaxies selected`, 'ok');
    },
    deselect: () => setHighlight([], { lasso: true }),
  });
  await st.plot.drawn;
  dagrun.n = pts.n;
  dagrun.drawnMs = performance.now();
  dagrun.ready = true;
  $('loading').hidden = true;
  ui.setStatus(`${count(pts.n)} galaxies drawn in ${((dagrun.drawnMs - dagrun.pointsMs) / 1000).toFixed(1)} s`, 'ok');
}

guard(main)().then(() => {
  if (!dagrun.ready) $('loading').textContent = 'Failed to load — see the message in the panel.';
});
