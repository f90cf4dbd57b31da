// The side panel's DOM: a tiny element builder (text only, never innerHTML
// with server data) and the renderers of the header, class list, galaxy
// detail, gallery cards, marked strip and labels list.
import { withToken } from './api.js';
import { GREY } from './plot.js';

const $ = (id) => document.getElementById(id);

/** h('div', {class: 'x', onclick: f, dataset: {id}}, 'text', child, …) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** A compact, readable value: numbers to 4 significant digits. */
export function fmt(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
  }
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

let statusSeq = 0;
/** One visible line: kind is 'ok', 'error' or 'info'. */
export function setStatus(msg, kind = 'info') {
  const el = $('status');
  el.textContent = msg;
  el.title = msg;
  el.className = kind;
  el.dataset.seq = String(++statusSeq);
  if (kind === 'error') console.error(msg);
}

export const swatch = (colour) => h('span', { class: 'swatch', style: `background:${colour}` });

export function renderHeader(info, cl) {
  $('pipeline').textContent = info.pipeline;
  const pct = cl.n ? ((100 * cl.clustered) / cl.n).toFixed(1) : '0';
  $('summary').textContent =
    `${cl.n.toLocaleString('en')} galaxies · ${cl.classes.length} classes · ${pct}% clustered` +
    (info.truth ? ` · truth: ${info.truth}` : '');
  document.title = `${info.pipeline} · dagrun`;
}

const SORT_KEYS = {
  label: (c) => c.label,
  size: (c) => c.size,
  persistence: (c) => c.persistence ?? -Infinity,
  stability: (c) => c.stability ?? -Infinity,
  truth: (c) => c.truth?.share ?? -Infinity,
};

/** sort: {key, desc}; ticked: Set of labels; on: {open(label), tick(label, bool), sort(key)} */
export function renderClasses(classes, sort, ticked, on) {
  const key = SORT_KEYS[sort.key];
  const rows = [...classes].sort((a, b) => (sort.desc ? key(b) - key(a) : key(a) - key(b)) || a.label - b.label);
  const th = (k, text, title) =>
    h('th', { class: sort.key === k ? 'sorted' : null, title, onclick: () => on.sort(k) },
      text, sort.key === k ? (sort.desc ? ' ▾' : ' ▴') : '');
  $('classes').replaceChildren(
    h('thead', {}, h('tr', {},
      h('th', { title: 'tick classes to merge them into one label' }, '∪'),
      th('label', 'class'), th('size', 'size'), th('persistence', 'pers.', 'HDBSCAN persistence'),
      th('stability', 'stab.', 'HDBSCAN stability'), th('truth', 'truth (share)'))),
    h('tbody', {}, rows.map((c) =>
      h('tr', { dataset: { label: c.label }, onclick: () => on.open(c.label) },
        h('td', {}, h('input', {
          type: 'checkbox', checked: ticked.has(c.label), title: 'tick to merge',
          onclick: (e) => e.stopPropagation(),
          onchange: (e) => on.tick(c.label, e.target.checked),
        })),
        h('td', {}, swatch(c.colour), c.label),
        h('td', { class: 'num' }, c.size.toLocaleString('en')),
        h('td', { class: 'num' }, fmt(c.persistence)),
        h('td', { class: 'num' }, fmt(c.stability)),
        h('td', {}, c.truth ? `${c.truth.value} (${(100 * c.truth.share).toFixed(0)}%)` : '—')))),
  );
}

const markButtons = (id, on) => [
  h('button', { class: 'pos', title: 'mark as positive', onclick: (e) => { e.stopPropagation(); on.mark(id, +1); } }, '+'),
  h('button', { class: 'neg', title: 'mark as negative', onclick: (e) => { e.stopPropagation(); on.mark(id, -1); } }, '−'),
];

/** g: /api/galaxy/ID; ctx: {colourOf(label), mark(id, sign), similar(id)} */
export function renderDetail(g, ctx) {
  const cls = g.class >= 0 ? `class ${g.class}` : 'unclassified';
  $('detail').className = '';
  $('detail').replaceChildren(
    h('div', { class: 'detail-head', dataset: { id: g.id } },
      h('b', {}, g.id), ' ', swatch(ctx.colourOf(g.class)), ` ${cls} · p = ${fmt(g.probability)} `,
      ...markButtons(g.id, ctx),
      h('button', { title: 'find similar galaxies', onclick: () => ctx.similar(g.id) }, 'similar')),
    h('div', { class: 'detail-body' },
      g.cutout ? h('img', { class: 'cutout', src: withToken(g.cutout), alt: `cutout of ${g.id}` }) : null,
      h('table', { class: 'cols' }, Object.entries(g.columns || {}).map(([k, v]) =>
        h('tr', {}, h('th', { title: k }, k), h('td', {}, fmt(v)))))),
    h('div', { class: 'detail-foot' },
      g.sky ? h('a', { href: g.sky.viewer, target: '_blank', rel: 'noopener noreferrer' },
        `Legacy Surveys viewer (${fmt(g.sky.ra)}, ${fmt(g.sky.dec)})`) : null,
      h('span', {}, ` labels: ${g.labels?.length ? g.labels.join(', ') : 'none'}`)),
  );
}

/** items: [{id, rank?, score?, cls}]; ctx: {hasImages, colourOf, mark, open} */
export function renderGallery(items, title, ctx) {
  $('gallery-title').textContent = title;
  $('gallery').replaceChildren(...items.map((it) =>
    h('div', { class: 'card', dataset: { id: it.id }, title: 'click for details', onclick: () => ctx.open(it.id) },
      h('div', { class: 'card-head' },
        swatch(ctx.colourOf(it.cls)),
        it.rank ? h('span', { class: 'rank' }, `#${it.rank}`) : null,
        h('span', { class: 'id' }, it.id)),
      ctx.hasImages
        ? h('img', { src: withToken(`/api/cutout/${encodeURIComponent(it.id)}`), alt: it.id, loading: 'lazy' })
        : h('div', { class: 'vals' }, '…'),
      h('div', { class: 'card-foot' },
        it.score !== undefined ? h('span', { class: 'score', title: 'score' }, fmt(it.score)) : h('span'),
        h('span', {}, ...markButtons(it.id, ctx))))));
}

/** Fills the cards' value boxes from /api/galaxies objects. */
export function fillCards(galaxies, keys) {
  for (const g of galaxies) {
    const box = $('gallery').querySelector(`.card[data-id="${CSS.escape(g.id)}"] .vals`);
    if (box) box.replaceChildren(...keys.map((k) => h('div', { title: `${k} = ${fmt(g.columns?.[k])}` }, h('b', {}, fmt(g.columns?.[k])), ' ', h('i', {}, k))));
  }
}

const MAX_CHIPS = 12;
/** pos/neg: Sets of ids; on: {unmark(id)} */
export function renderMarks(pos, neg, on) {
  const chips = (set, sign) => [...set].slice(0, MAX_CHIPS).map((id) =>
    h('span', { class: `chip ${sign}`, title: 'click to unmark', onclick: () => on.unmark(id) }, id));
  const more = (set) => (set.size > MAX_CHIPS ? ` +${set.size - MAX_CHIPS} more` : '');
  $('marks').replaceChildren(
    h('div', {}, h('b', { class: 'pos-c' }, `+ ${pos.size}`), ' ', chips(pos, 'pos'), more(pos)),
    h('div', {}, h('b', { class: 'neg-c' }, `− ${neg.size}`), ' ', chips(neg, 'neg'), more(neg)),
  );
}

/** names: /api/labels' names; on: {open(name)} */
export function renderLabels(names, on) {
  $('labels').replaceChildren(...(names.length
    ? names.map((l) => h('li', { dataset: { label: l.label }, onclick: () => on.open(l.label), title: 'click to highlight' },
        h('span', { class: 'name' }, l.label), ' ', h('span', { class: 'count' }, l.count)))
    : [h('li', { class: 'empty' }, 'no labels yet')]));
}

