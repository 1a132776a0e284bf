// Model page: traffic and latency over time (select a range on the traffic chart to pin it as the reference),
// drift over time and the drift table with per-feature reference-vs-current distributions, data quality,
// measured vs estimated performance with label coverage, change points, alerts, shadow runs and the reference.
// Panels whose route the server does not list in /openapi.json say "not available" and call nothing.

import { ApiError, call, has, modelPath } from '../api.js';
import { histogramChart, palette, timeChart } from '../charts.js';
import { multivariatePanel } from './multivariate.js';
import { currentWindow, headlineMetric, healthSeries, histogramOf, perMinute, severity } from '../data.js';
import {
  firstArray,
  fmtMs,
  fmtNum,
  fmtPct,
  fmtTime,
  h,
  kvTable,
  notAvailable,
  panel,
  pointTime,
  replace,
  showError,
  sortableTable,
} from '../util.js';

const BUCKETS = 30;
const iso = (ms) => new Date(ms).toISOString();

/** Renders the page of `name` into `root`. */
export async function modelPage(root, signal, name) {
  const win = currentWindow();
  const range = { from: iso(win.from), to: iso(win.to) };
  const P = {
    summary: panel('Summary', { id: 'summary' }),
    traffic: panel('Traffic and latency', { id: 'traffic', class: 'wide' }),
    drift: panel('Drift', { id: 'drift', class: 'wide' }),
    quality: panel('Data quality', { id: 'quality' }),
    reference: panel('Reference', { id: 'reference' }),
    performance: panel('Performance: measured vs estimated', { id: 'performance', class: 'wide' }),
    changes: panel('Change points', { id: 'change-points' }),
    multivariate: panel('Multivariate and embedding drift', { id: 'multivariate', class: 'wide' }),
    alerts: panel('Alerts', { id: 'alerts' }),
    shadow: panel('Shadow runs', { id: 'shadow', class: 'wide' }),
  };
  const title = h('h1', {}, name);
  const sub = h('p', { class: 'muted' }, `${fmtTime(win.from)} → ${fmtTime(win.to)}`);
  replace(
    root,
    title,
    sub,
    h(
      'div',
      { class: 'panels' },
      Object.values(P).map((p) => p.el),
    ),
  );

  let health;
  try {
    health = await call(modelPath(name, '/health'), { query: range, signal });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      replace(
        root,
        title,
        h('p', { class: 'error' }, `No model named "${name}" has stored traffic.`),
        h('a', { href: '/ui/', 'data-link': true }, 'Back to the fleet'),
      );
      return;
    }
    showError(P.summary.body, err);
    return;
  }
  summary(P.summary.body, health);
  const selection = { from: null, to: null, listeners: [] };
  // Independent panels load in parallel; each one handles its own failure.
  await Promise.all([
    trafficPanel(P.traffic.body, name, win, selection, signal).catch((e) => showError(P.traffic.body, e)),
    driftPanel(P.drift.body, P.quality.body, name, win, range, health, signal).catch((e) => showError(P.drift.body, e)),
    referencePanel(P.reference.body, name, selection, signal).catch((e) => showError(P.reference.body, e)),
    performancePanel(P.performance.body, name, win, range, signal).catch((e) => showError(P.performance.body, e)),
    changePointsPanel(P.changes.body, name, range, signal).catch((e) => showError(P.changes.body, e)),
    multivariatePanel(P.multivariate.body, name, range, signal).catch((e) => showError(P.multivariate.body, e)),
    alertsPanel(P.alerts.body, name, health, signal).catch((e) => showError(P.alerts.body, e)),
    shadowPanel(P.shadow.body, name, signal).catch((e) => showError(P.shadow.body, e)),
  ]);
}

function summary(body, health) {
  const t = health.traffic;
  const d = health.drift;
  const perf = health.performance;
  const m = headlineMetric(perf?.measured);
  const e = headlineMetric(perf?.estimated);
  const card = (label, value, cls = '') =>
    h(
      'div',
      { class: `card ${cls}` },
      h('div', { class: 'card-label' }, label),
      h('div', { class: 'card-value' }, value),
    );
  replace(
    body,
    h(
      'div',
      { class: 'cards' },
      card('Requests', fmtNum(t.requests)),
      card('Rows', fmtNum(t.rows)),
      card('Error rate', fmtPct(t.error_rate), t.error_rate > 0.05 ? 'bad' : ''),
      card(
        'Latency p50 / p95 / p99',
        `${fmtMs(t.latency_ms.p50)} / ${fmtMs(t.latency_ms.p95)} / ${fmtMs(t.latency_ms.p99)}`,
      ),
      card(
        'Drift',
        d
          ? `${d.dataset.drifted ? 'DRIFT' : 'ok'} ${d.dataset.drifted_features}/${d.dataset.features}`
          : 'no run stored',
        d?.dataset.drifted ? 'bad' : '',
      ),
      card('Measured', m ? `${m.name} ${fmtNum(m.value)}` : '—'),
      card('Estimated', e ? `${e.name} ${fmtNum(e.value)}` : '—'),
      card('Label coverage', fmtPct(perf?.label_coverage)),
      card('Active alerts', String(health.alerts.length), health.alerts.length ? 'bad' : ''),
    ),
  );
}

async function trafficPanel(body, name, win, selection, signal) {
  const s = await healthSeries(name, win, BUCKETS, signal);
  if (signal.aborted) return;
  const trafficEl = h('div', { class: 'chart', id: 'traffic-chart' });
  const latencyEl = h('div', { class: 'chart', id: 'latency-chart' });
  const hint = h(
    'p',
    { class: 'muted' },
    'Drag across the traffic chart to select a time range, then pin it as the reference (Reference panel).',
  );
  replace(body, hint, trafficEl, latencyEl);
  timeChart(
    trafficEl,
    s.xs,
    [
      { label: 'requests/min', values: s.items.map((it) => perMinute(it, s.stepMs)), fmt: fmtNum },
      {
        label: 'error rate',
        values: s.items.map((it) => it?.traffic.error_rate ?? null),
        scale: '%',
        color: palette[1],
        fmt: fmtPct,
      },
    ],
    {
      axes: { y: 'requests/min', '%': 'error rate' },
      ranges: { '%': [0, 1] },
      tickFmt: { '%': (v) => `${Math.round(v * 100)}%` },
      onSelect: (from, to) => {
        selection.from = from;
        selection.to = to;
        for (const l of selection.listeners) l();
      },
    },
  );
  timeChart(
    latencyEl,
    s.xs,
    ['p50', 'p95', 'p99'].map((q, i) => ({
      label: `${q} ms`,
      values: s.items.map((it) => it?.traffic.latency_ms[q] ?? null),
      color: palette[[2, 3, 1][i]],
      fmt: fmtMs,
    })),
    { axes: { y: 'latency (ms)' }, height: 180 },
  );
}

async function driftPanel(body, qualityBody, name, win, range, health, signal) {
  const overTime = h('div', { class: 'chart', id: 'drift-chart' });
  const overNote = h('p', { class: 'muted' });
  const tableBox = h('div', { id: 'drift-table' }, h('p', { class: 'muted' }, 'Computing drift over the range…'));
  const dist = h('div', { class: 'distribution', id: 'drift-distribution' });
  replace(
    body,
    h('h3', {}, 'Over time'),
    overNote,
    overTime,
    h('h3', {}, 'Features (most drifted first)'),
    tableBox,
    dist,
  );

  const history = (async () => {
    if (await has('GET', '/api/v1/models/{name}/drift/history')) {
      const points = firstArray(
        await call(modelPath(name, '/drift/history'), { query: range, signal }),
        'points',
        'history',
      );
      const byFeature = new Map();
      const times = new Set();
      for (const p of points) {
        const t = pointTime(p);
        if (t === null) continue;
        const f = p.feature === '' || p.kind === 'dataset' ? '(dataset share)' : p.feature;
        const score = severity(p) ?? p.score;
        if (!byFeature.has(f)) byFeature.set(f, new Map());
        byFeature.get(f).set(t, f === '(dataset share)' ? p.score : score);
        times.add(t);
      }
      const xs = [...times].sort((a, b) => a - b);
      // The six features most past their threshold at their latest point, plus the dataset share.
      const latest = (m) => m.get(xs.filter((x) => m.has(x)).at(-1)) ?? 0;
      const names = [...byFeature.keys()]
        .filter((f) => f !== '(dataset share)')
        .sort((a, b) => latest(byFeature.get(b)) - latest(byFeature.get(a)))
        .slice(0, 6);
      if (xs.length === 0) {
        replace(overTime, h('p', { class: 'muted' }, 'No stored drift results in this range.'));
        return;
      }
      overNote.textContent =
        'Per-feature score relative to its threshold (above 1 = drifted), from stored detection runs.';
      const series = names.map((f, i) => ({
        label: f,
        values: xs.map((x) => byFeature.get(f).get(x) ?? null),
        color: palette[i % palette.length],
        fmt: fmtNum,
      }));
      if (byFeature.has('(dataset share)')) {
        series.push({
          label: 'dataset share',
          values: xs.map((x) => byFeature.get('(dataset share)').get(x) ?? null),
          scale: '%',
          color: '#333',
          dash: [5, 3],
          fmt: fmtPct,
        });
      }
      timeChart(
        overTime,
        xs.map((x) => x / 1000),
        series,
        { axes: { y: 'score / threshold', '%': 'share drifted' }, ranges: { '%': [0, 1] } },
      );
      return;
    }
    // Without the history route: the newest stored run inside each bucket, read through /health.
    const s = await healthSeries(name, win, BUCKETS, signal);
    if (signal.aborted) return;
    overNote.textContent = 'Share of drifted features of the newest stored detection run in each interval.';
    const shares = s.items.map((it) => it?.drift?.dataset.share ?? null);
    if (shares.every((v) => v === null)) {
      replace(overTime, h('p', { class: 'muted' }, 'No stored detection run in this range yet.'));
      return;
    }
    timeChart(
      overTime,
      s.xs,
      [{ label: 'share of drifted features', values: shares, color: palette[1], fmt: fmtPct, spanGaps: true }],
      { ranges: { y: [0, 1] }, tickFmt: { y: (v) => `${Math.round(v * 100)}%` } },
    );
  })();

  const report = (async () => {
    let rep;
    try {
      rep = await call(modelPath(name, '/drift'), { query: range, signal });
    } catch (err) {
      replace(tableBox, h('p', { class: 'error' }, `Drift could not be computed over this range: ${err.message}`));
      qualityFromHealth(qualityBody, health);
      return;
    }
    const features = rep.features.map((f) => ({ ...f, severity: severity(f) }));
    const show = (f) => {
      const hist = histogramOf(f);
      const stats = Object.entries(f.stats ?? {}).map(([k, v]) => [
        k,
        typeof v === 'object' && v !== null
          ? Object.entries(v)
              .map(([a, b]) => `${a}=${typeof b === 'number' ? fmtNum(b) : b}`)
              .join(', ')
          : fmtNum(v),
      ]);
      const chartEl = h('div', { class: 'chart', id: 'distribution-chart' });
      replace(
        dist,
        h('h3', {}, `${f.name}: reference vs current`),
        hist ? chartEl : h('p', { class: 'muted' }, 'This report carries no per-bin distribution for the feature.'),
        kvTable(stats),
      );
      if (hist) histogramChart(chartEl, hist.labels, hist.reference, hist.current);
    };
    const columns = [
      {
        key: 'name',
        label: 'Feature',
        value: (f) => f.name,
        cell: (f) => h('button', { class: 'linklike', onclick: () => show(f) }, f.name, f.output ? ' (output)' : ''),
      },
      { key: 'kind', label: 'Kind', value: (f) => f.kind, cell: (f) => f.kind },
      { key: 'method', label: 'Method', value: (f) => f.method, cell: (f) => f.method },
      { key: 'score', label: 'Score', value: (f) => f.score, cell: (f) => fmtNum(f.score) },
      { key: 'threshold', label: 'Threshold', value: (f) => f.threshold, cell: (f) => fmtNum(f.threshold) },
      {
        key: 'severity',
        label: 'Score vs threshold',
        defaultDir: -1,
        value: (f) => f.severity,
        cell: (f) => fmtNum(f.severity),
      },
      {
        key: 'drifted',
        label: 'Drifted',
        defaultDir: -1,
        value: (f) => (f.drifted ? 1 : 0),
        cell: (f) => h('span', { class: `badge ${f.drifted ? 'bad' : 'ok'}` }, f.drifted ? 'drift' : 'ok'),
      },
    ];
    const ds = rep.dataset;
    replace(
      tableBox,
      h(
        'p',
        {},
        `${ds.drifted_features} of ${ds.features} features drifted (${fmtPct(ds.share)}; dataset drift at ${fmtPct(ds.share_threshold)}): `,
        h('span', { class: `badge ${ds.drifted ? 'bad' : 'ok'}` }, ds.drifted ? 'dataset drift' : 'no dataset drift'),
        ` · reference ${fmtNum(rep.reference.rows)} rows, current ${fmtNum(rep.current.rows)} rows`,
      ),
      sortableTable(columns, features, { key: 'severity', dir: -1 }),
    );
    if (features.length > 0) show(features.slice().sort((a, b) => (b.severity ?? -1) - (a.severity ?? -1))[0]);
    qualityFromReport(qualityBody, rep);
    document.dispatchEvent(new CustomEvent('mw:drift-report', { detail: rep }));
  })();
  await Promise.all([history.catch((e) => showError(overTime, e)), report]);
}

function qualityTable(features, q) {
  const rows = features.map((f) => ({ name: f.name, ...f.quality, ...f }));
  const columns = [
    { key: 'name', label: 'Feature', value: (r) => r.name, cell: (r) => r.name },
    {
      key: 'missing',
      label: 'Missing (current)',
      defaultDir: -1,
      value: (r) => r.missing_rate_current ?? null,
      cell: (r) => fmtPct(r.missing_rate_current),
    },
    {
      key: 'nonfinite',
      label: 'Non-finite',
      defaultDir: -1,
      value: (r) => r.non_finite_current ?? null,
      cell: (r) => fmtNum(r.non_finite_current),
    },
    {
      key: 'oor',
      label: 'Out of range',
      defaultDir: -1,
      value: (r) => r.out_of_range_share ?? null,
      cell: (r) => fmtPct(r.out_of_range_share),
    },
    {
      key: 'unseen',
      label: 'Unseen categories',
      defaultDir: -1,
      value: (r) => r.unseen_share ?? null,
      cell: (r) =>
        r.unseen_share === undefined
          ? '—'
          : `${fmtPct(r.unseen_share)} ${(r.unseen_categories ?? []).slice(0, 3).join(', ')}`,
    },
  ];
  const vol = q?.volume ?? {};
  return [
    kvTable([
      ['Quarantined records', fmtNum(q?.quarantined ?? 0)],
      [
        'Quarantined by code',
        Object.entries(q?.quarantined_by_code ?? {})
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ') || 'none',
      ],
      [
        'Volume',
        vol.ratio === null || vol.ratio === undefined
          ? `${fmtNum(vol.current_rows)} rows (no reference rate)`
          : `${fmtNum(vol.current_rows)} rows, ${fmtPct(vol.ratio)} of expected`,
      ],
      ['Volume drop', vol.drop ? h('span', { class: 'badge bad' }, 'drop') : h('span', { class: 'badge ok' }, 'no')],
    ]),
    sortableTable(columns, rows, { key: 'missing', dir: -1 }),
  ];
}

function qualityFromReport(body, rep) {
  replace(
    body,
    h('p', { class: 'muted' }, 'Computed over the range.'),
    qualityTable(
      rep.features.map((f) => ({ name: f.name, quality: f.quality })),
      rep.quality,
    ),
  );
}

function qualityFromHealth(body, health) {
  const q = health.data_quality;
  if (!q) {
    replace(body, h('p', { class: 'muted' }, 'No stored detection run in this range.'));
    return;
  }
  replace(
    body,
    h('p', { class: 'muted' }, `From the stored run of ${fmtTime(health.drift?.ts)}.`),
    qualityTable(
      q.features.map((f) => ({ name: f.name, quality: f })),
      q,
    ),
  );
}

async function referencePanel(body, name, selection, signal) {
  const canList = await has('GET', '/api/v1/models/{name}/references');
  const canPin = await has('POST', '/api/v1/models/{name}/references');
  const canActivate = await has('PUT', '/api/v1/models/{name}/references/active');
  const inUse = h('div', { id: 'reference-in-use' }, h('p', { class: 'muted' }, 'Loading…'));
  const list = h('div', { id: 'reference-list' });
  const selText = h('span', { id: 'selection' }, 'none (drag across the traffic chart)');
  const status = h('p', { class: 'muted', id: 'pin-status' });
  const pinBtn = h('button', { id: 'pin-reference', disabled: true }, 'Pin selection as reference');
  replace(
    body,
    inUse,
    list,
    h('h3', {}, 'Pin a new reference'),
    canPin
      ? [h('p', {}, 'Selected: ', selText), pinBtn, status]
      : h('p', { class: 'na' }, 'Not available: this server does not serve reference pinning yet.'),
  );

  document.addEventListener(
    'mw:drift-report',
    (e) => {
      const r = e.detail.reference ?? {};
      replace(
        inUse,
        h('h3', {}, 'In use by the drift above'),
        kvTable(
          Object.entries(r).map(([k, v]) => [
            k,
            typeof v === 'string' && /\d{4}-\d\d-\d\dT/.test(v)
              ? fmtTime(v)
              : typeof v === 'object'
                ? JSON.stringify(v)
                : String(v),
          ]),
        ),
      );
    },
    { signal },
  );
  setTimeout(() => {
    if (inUse.textContent === 'Loading…') replace(inUse, h('p', { class: 'muted' }, 'Shown once drift is computed.'));
  }, 15_000);

  const refresh = async () => {
    if (!canList) {
      replace(list, h('p', { class: 'na' }, 'Not available: this server does not list stored references yet.'));
      return;
    }
    const refs = firstArray(await call(modelPath(name, '/references'), { signal }), 'references');
    if (refs.length === 0) {
      replace(list, h('p', { class: 'muted' }, 'No stored reference yet.'));
      return;
    }
    replace(
      list,
      h('h3', {}, 'Stored references'),
      h(
        'table',
        { class: 'grid' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Id', 'Source', 'From', 'To', 'Rows', 'Active', ''].map((x) => h('th', {}, x)),
          ),
        ),
        h(
          'tbody',
          {},
          refs.map((r) =>
            h(
              'tr',
              {},
              h('td', { class: 'mono' }, String(r.id ?? '')),
              h('td', {}, String(r.source?.kind ?? r.source ?? r.kind ?? '')),
              h('td', {}, fmtTime(r.from ?? r.window?.from ?? r.source?.from)),
              h('td', {}, fmtTime(r.to ?? r.window?.to ?? r.source?.to)),
              h('td', {}, fmtNum(r.rows)),
              h('td', {}, r.active ? h('span', { class: 'badge ok' }, 'active') : ''),
              h(
                'td',
                {},
                canActivate && !r.active
                  ? h(
                      'button',
                      {
                        onclick: () =>
                          void call(modelPath(name, '/references/active'), { method: 'PUT', body: { id: r.id } }).then(
                            refresh,
                            (e) => (status.textContent = e.message),
                          ),
                      },
                      'Activate',
                    )
                  : '',
              ),
            ),
          ),
        ),
      ),
    );
  };
  selection.listeners.push(() => {
    selText.textContent = `${fmtTime(selection.from)} → ${fmtTime(selection.to)}`;
    pinBtn.disabled = false;
  });
  pinBtn.addEventListener('click', async () => {
    pinBtn.disabled = true;
    status.textContent = 'Pinning…';
    try {
      const res = await call(modelPath(name, '/references'), {
        method: 'POST',
        body: { from: iso(selection.from), to: iso(selection.to) },
      });
      status.textContent = `Pinned reference ${res?.id ?? ''} (${fmtTime(selection.from)} → ${fmtTime(selection.to)}). The next detection run compares against it.`;
      await refresh();
    } catch (err) {
      status.textContent = `Could not pin: ${err.message}`;
    } finally {
      pinBtn.disabled = false;
    }
  });
  await refresh();
}

/** `{ t, measured, estimated, coverage, metric }` points from the history route (long or wide rows). */
function performancePoints(points) {
  const byTime = new Map();
  for (const p of points) {
    const t = pointTime(p);
    if (t === null) continue;
    const o = byTime.get(t) ?? { t, measured: {}, estimated: {}, coverage: null };
    if (typeof p.metric === 'string') {
      if (p.metric === 'label_coverage') o.coverage = p.value;
      else if (p.source === 'measured' || p.source === 'estimated') o[p.source][p.metric] = p.value;
    } else {
      if (p.measured) Object.assign(o.measured, p.measured);
      if (p.estimated) Object.assign(o.estimated, p.estimated);
      if (typeof p.label_coverage === 'number') o.coverage = p.label_coverage;
    }
    byTime.set(t, o);
  }
  return [...byTime.values()].sort((a, b) => a.t - b.t);
}

async function performancePanel(body, name, win, range, signal) {
  const chartEl = h('div', { class: 'chart', id: 'performance-chart' });
  const note = h('p', { class: 'muted' });
  const now = h('div', { id: 'performance-now' });
  replace(body, note, chartEl, h('h3', {}, 'Over the whole range'), now);
  const overTime = (async () => {
    let pts;
    if (await has('GET', '/api/v1/models/{name}/performance/history')) {
      pts = performancePoints(
        firstArray(await call(modelPath(name, '/performance/history'), { query: range, signal }), 'points', 'history'),
      );
      note.textContent = 'From stored detection runs.';
    } else {
      const s = await healthSeries(name, win, BUCKETS, signal);
      pts = s.items.map((it, i) => ({
        t: s.xs[i] * 1000,
        measured: it?.performance?.measured ?? {},
        estimated: it?.performance?.estimated ?? {},
        coverage: it?.performance?.label_coverage ?? null,
      }));
      note.textContent = 'The newest stored detection run in each interval.';
    }
    if (signal.aborted) return;
    const metric = ['accuracy', 'f1', 'mae', 'rmse'].find((m) =>
      pts.some((p) => typeof p.measured?.[m] === 'number' || typeof p.estimated?.[m] === 'number'),
    );
    if (!metric) {
      replace(chartEl, h('p', { class: 'muted' }, 'No stored performance in this range yet.'));
      return;
    }
    timeChart(
      chartEl,
      pts.map((p) => p.t / 1000),
      [
        {
          label: `measured ${metric}`,
          values: pts.map((p) => p.measured?.[metric] ?? null),
          color: palette[0],
          fmt: fmtNum,
          spanGaps: true,
        },
        {
          label: `estimated ${metric}`,
          values: pts.map((p) => p.estimated?.[metric] ?? null),
          color: palette[3],
          dash: [6, 3],
          fmt: fmtNum,
          spanGaps: true,
        },
        {
          label: 'label coverage',
          values: pts.map((p) => p.coverage),
          scale: '%',
          color: '#999',
          fmt: fmtPct,
          spanGaps: true,
        },
      ],
      {
        axes: { y: metric, '%': 'label coverage' },
        ranges: { '%': [0, 1] },
        tickFmt: { '%': (v) => `${Math.round(v * 100)}%` },
      },
    );
  })();
  const current = (async () => {
    const perf = await call(modelPath(name, '/performance'), { query: range, signal });
    const keys = [...new Set([...Object.keys(perf.measured ?? {}), ...Object.keys(perf.estimated ?? {})])].filter(
      (k) => typeof (perf.measured?.[k] ?? perf.estimated?.[k]) === 'number' && k !== 'rows',
    );
    replace(
      now,
      kvTable([
        ['Rows', fmtNum(perf.rows)],
        ['Labelled rows', fmtNum(perf.labelled_rows)],
        ['Label coverage', fmtPct(perf.label_coverage)],
        ['Task', perf.prediction?.task ?? perf.measured?.task ?? perf.estimated?.task ?? '—'],
      ]),
      keys.length
        ? h(
            'table',
            { class: 'grid' },
            h(
              'thead',
              {},
              h('tr', {}, h('th', {}, 'Metric'), h('th', {}, 'Measured'), h('th', {}, 'Estimated (CBPE)')),
            ),
            h(
              'tbody',
              {},
              keys.map((k) =>
                h(
                  'tr',
                  {},
                  h('td', {}, k),
                  h('td', {}, fmtNum(perf.measured?.[k])),
                  h('td', {}, fmtNum(perf.estimated?.[k])),
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'No metric over this range (no labels and no estimate).'),
    );
  })();
  await Promise.all([overTime.catch((e) => showError(chartEl, e)), current.catch((e) => showError(now, e))]);
}

async function changePointsPanel(body, name, range, signal) {
  if (!(await has('GET', '/api/v1/models/{name}/change-points'))) return notAvailable(body, 'stored change points');
  const pts = firstArray(
    await call(modelPath(name, '/change-points'), { query: range, signal }),
    'change_points',
    'points',
  );
  if (pts.length === 0) return replace(body, h('p', { class: 'muted' }, 'No change point in this range.'));
  replace(
    body,
    sortableTable(
      [
        { key: 'ts', label: 'Time', defaultDir: -1, value: (p) => pointTime(p), cell: (p) => fmtTime(pointTime(p)) },
        { key: 'series', label: 'Series', value: (p) => p.series, cell: (p) => String(p.series ?? '') },
        { key: 'detector', label: 'Detector', value: (p) => p.detector, cell: (p) => String(p.detector ?? '') },
        { key: 'value', label: 'Value', value: (p) => p.value, cell: (p) => fmtNum(p.value) },
      ],
      pts,
      { key: 'ts', dir: -1 },
    ),
  );
}

/** A table of alerts with links to their pages. */
export function alertsTable(alerts) {
  return sortableTable(
    [
      {
        key: 'state',
        label: 'State',
        value: (a) => a.state,
        cell: (a) =>
          h(
            'span',
            { class: `badge ${a.state === 'firing' ? 'bad' : a.state === 'pending' ? 'warn' : 'ok'}` },
            String(a.state ?? ''),
          ),
      },
      {
        key: 'rule',
        label: 'Rule',
        value: (a) => a.rule ?? a.labels?.alertname,
        cell: (a) =>
          a.id !== undefined
            ? h(
                'a',
                { href: `/ui/alerts/${encodeURIComponent(a.id)}`, 'data-link': true },
                String(a.rule ?? a.labels?.alertname ?? a.id),
              )
            : String(a.rule ?? ''),
      },
      {
        key: 'model',
        label: 'Model',
        value: (a) => a.model ?? a.labels?.model,
        cell: (a) => {
          const m = a.model ?? a.labels?.model;
          return m ? h('a', { href: `/ui/models/${encodeURIComponent(m)}`, 'data-link': true }, m) : '—';
        },
      },
      {
        key: 'severity',
        label: 'Severity',
        value: (a) => a.severity ?? a.labels?.severity,
        cell: (a) => String(a.severity ?? a.labels?.severity ?? ''),
      },
      {
        key: 'summary',
        label: 'Summary',
        value: (a) => a.annotations?.summary ?? a.summary,
        cell: (a) => String(a.annotations?.summary ?? a.summary ?? ''),
      },
      {
        key: 'starts',
        label: 'Started',
        defaultDir: -1,
        value: (a) => Date.parse(a.startsAt ?? a.started_at ?? a.starts_at ?? '') || null,
        cell: (a) => fmtTime(a.startsAt ?? a.started_at ?? a.starts_at),
      },
      {
        key: 'ends',
        label: 'Resolved',
        defaultDir: -1,
        value: (a) => Date.parse(a.endsAt ?? a.resolved_at ?? a.ends_at ?? '') || null,
        cell: (a) => fmtTime(a.endsAt ?? a.resolved_at ?? a.ends_at),
      },
    ],
    alerts,
    { key: 'starts', dir: -1 },
  );
}

async function alertsPanel(body, name, health, signal) {
  if (!(await has('GET', '/api/v1/alerts'))) {
    const active = health.alerts;
    return replace(
      body,
      active.length ? alertsTable(active) : h('p', { class: 'muted' }, 'No active alert.'),
      h('p', { class: 'na' }, 'Not available: this server does not serve alert history yet.'),
    );
  }
  const alerts = firstArray(await call('/api/v1/alerts', { query: { model: name }, signal }), 'alerts');
  replace(
    body,
    alerts.length ? alertsTable(alerts) : h('p', { class: 'muted' }, 'No alert for this model, active or recent.'),
  );
}

async function shadowPanel(body, name, signal) {
  if (!(await has('GET', '/api/v1/shadow/runs'))) return notAvailable(body, 'shadow runs');
  const runs = firstArray(await call('/api/v1/shadow/runs', { query: { model: name }, signal }), 'runs');
  if (runs.length === 0)
    return replace(
      body,
      h(
        'p',
        { class: 'muted' },
        'No shadow run for this model. Start one with modelwatch shadow --model NAME --candidate FILE.onnx.',
      ),
    );
  replace(
    body,
    sortableTable(
      [
        {
          key: 'started',
          label: 'Started',
          defaultDir: -1,
          value: (r) => pointTime(r),
          cell: (r) => fmtTime(pointTime(r)),
        },
        { key: 'candidate', label: 'Candidate', value: (r) => r.candidate, cell: (r) => String(r.candidate ?? '') },
        { key: 'status', label: 'Status', value: (r) => r.status, cell: (r) => String(r.status ?? '') },
        { key: 'rows', label: 'Rows', value: (r) => r.rows, cell: (r) => fmtNum(r.rows) },
        {
          key: 'agreement',
          label: 'Agreement',
          value: (r) => r.agreement ?? r.result?.agreement,
          cell: (r) => fmtPct(r.agreement ?? r.result?.agreement),
        },
        {
          key: 'verdict',
          label: 'Verdict',
          value: (r) => r.verdict ?? r.result?.verdict,
          cell: (r) => {
            const v = r.verdict ?? r.result?.verdict;
            return v
              ? h('span', { class: `badge ${v === 'promote' ? 'ok' : v === 'reject' ? 'bad' : 'warn'}` }, v)
              : '—';
          },
        },
        {
          key: 'reasons',
          label: 'Reasons',
          value: (r) => (r.reasons ?? r.result?.reasons ?? []).length,
          cell: (r) =>
            (r.reasons ?? r.result?.reasons ?? [])
              .map((x) => (typeof x === 'string' ? x : JSON.stringify(x)))
              .join('; '),
        },
      ],
      runs,
      { key: 'started', dir: -1 },
    ),
  );
}
