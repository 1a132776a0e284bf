// DOM and formatting helpers. Every string from the API goes through textContent, never innerHTML.

/**
 * Creates an element. `attrs`: `class`, `on<event>` handlers, `dataset` object, boolean attributes, others as
 * attributes. Children: nodes, strings (text), null/undefined/false (skipped), arrays (flattened).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A titled panel; returns `{ el, body }`. */
export function panel(title, opts = {}) {
  const body = h('div', { class: 'panel-body' }, h('p', { class: 'muted' }, 'Loading…'));
  const el = h('section', { class: `panel ${opts.class ?? ''}`, id: opts.id }, h('h2', {}, title), body);
  return { el, body };
}

/** The "not available" notice of a panel whose route this server does not serve. */
export function notAvailable(body, what) {
  return replace(body, h('p', { class: 'na' }, `Not available: this server does not serve ${what} yet.`));
}

/** Shows an error in a panel body (message of an ApiError or any error). */
export function showError(body, err) {
  return replace(body, h('p', { class: 'error' }, err?.message ?? String(err)));
}

export function fmtNum(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (typeof x !== 'number') return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e6 || a < 1e-3) return x.toExponential(2);
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  return Number(x.toPrecision(digits)).toString();
}

export function fmtPct(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  return `${(x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1)}%`;
}

export function fmtMs(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${fmtNum(x, 3)} ms`;
}

/** ISO or epoch ms → local "YYYY-MM-DD HH:MM:SS". */
export function fmtTime(t) {
  if (t === null || t === undefined || t === '') return '—';
  const d = new Date(typeof t === 'number' ? t : Date.parse(t));
  if (Number.isNaN(d.getTime())) return String(t);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Value for a `<input type="datetime-local">` from epoch ms. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Runs `fn` over `items` with at most `limit` in flight; results in order. Stops early when `signal` aborts. */
export async function mapLimit(items, limit, fn, signal) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length && !signal?.aborted) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The first array found in an API answer (`{points:[…]}`, `{runs:[…]}`, or a bare array). */
export function firstArray(body, ...keys) {
  if (Array.isArray(body)) return body;
  if (body === null || typeof body !== 'object') return [];
  for (const k of keys) if (Array.isArray(body[k])) return body[k];
  const found = Object.values(body).find((v) => Array.isArray(v));
  return found ?? [];
}

/** Epoch ms of a point's time: `ts`, `time`, `window.to`, `window_to`, `to`, `startsAt`, `created_at`. */
export function pointTime(p) {
  const t = p?.ts ?? p?.time ?? p?.window?.to ?? p?.window_to ?? p?.to ?? p?.startsAt ?? p?.started_at ?? p?.created_at;
  if (typeof t === 'number') return t;
  const ms = Date.parse(typeof t === 'string' && !/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? `${t.replace(' ', 'T')}Z` : t);
  return Number.isNaN(ms) ? null : ms;
}

/** A small key/value table. */
export function kvTable(rows) {
  return h(
    'table',
    { class: 'kv' },
    h(
      'tbody',
      {},
      rows
        .filter(Boolean)
        .map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v instanceof Node ? v : String(v ?? '—')))),
    ),
  );
}

/**
 * A table sortable by clicking its headers. `columns`: `{ key, label, value(row) → sortable, cell(row) → node/string,
 * class? }`. `initial`: `{ key, dir }` (dir 1 ascending, -1 descending).
 */
export function sortableTable(columns, rows, initial = { key: columns[0].key, dir: 1 }, opts = {}) {
  let sort = { ...initial };
  const tbody = h('tbody');
  const heads = columns.map((c) =>
    h(
      'th',
      {
        class: `sortable ${c.class ?? ''}`,
        dataset: { key: c.key },
        'aria-sort': 'none',
        onclick: () => {
          sort = { key: c.key, dir: sort.key === c.key ? -sort.dir : (c.defaultDir ?? 1) };
          draw();
        },
      },
      c.label,
    ),
  );
  const cmp = (a, b) => {
    if (a === b) return 0;
    if (a === null || a === undefined || Number.isNaN(a)) return 1;
    if (b === null || b === undefined || Number.isNaN(b)) return -1;
    return typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b));
  };
  function draw() {
    const col = columns.find((c) => c.key === sort.key) ?? columns[0];
    const sorted = [...rows].sort((a, b) => {
      const va = col.value(a);
      const vb = col.value(b);
      // Missing values stay last whatever the direction.
      if (va === null || va === undefined || Number.isNaN(va)) return vb === null || vb === undefined ? 0 : 1;
      if (vb === null || vb === undefined || Number.isNaN(vb)) return -1;
      return sort.dir * cmp(va, vb);
    });
    for (const th of heads) {
      const on = th.dataset.key === sort.key;
      th.setAttribute('aria-sort', on ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none');
    }
    replace(
      tbody,
      sorted.map((r) => {
        const tr = h(
          'tr',
          opts.rowAttrs ? opts.rowAttrs(r) : {},
          columns.map((c) => h('td', { class: c.class }, c.cell(r))),
        );
        opts.onRow?.(tr, r);
        return tr;
      }),
    );
  }
  draw();
  return h('table', { class: 'grid' }, h('thead', {}, h('tr', {}, heads)), tbody);
}
