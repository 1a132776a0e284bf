// Fleet overview: one sortable row per model with traffic, error rate, latency, drift, performance and firing
// alerts over the selected range, and sparklines of traffic, error rate and p95 latency.

import { call, has, modelPath } from '../api.js';
import { sparkline, palette } from '../charts.js';
import { currentWindow, headlineMetric, healthSeries, perMinute } from '../data.js';
import { fmtMs, fmtNum, fmtPct, h, mapLimit, panel, replace, showError, sortableTable } from '../util.js';

const SPARK_BUCKETS = 12;
const iso = (ms) => new Date(ms).toISOString();

function driftBadge(health) {
  const d = health?.drift;
  if (!d) return h('span', { class: 'badge none', title: 'No detection run stored in this range' }, 'no run');
  const share = d.dataset.share;
  return h(
    'span',
    { class: `badge ${d.dataset.drifted ? 'bad' : d.dataset.drifted_features > 0 ? 'warn' : 'ok'}` },
    d.dataset.drifted ? 'drift' : 'ok',
    ` ${d.dataset.drifted_features}/${d.dataset.features}`,
    share === null ? '' : ` (${fmtPct(share)})`,
  );
}

function perfCell(block) {
  const m = headlineMetric(block);
  return m ? h('span', { title: m.name }, `${m.name} ${fmtNum(m.value)}`) : '—';
}

function alertsOf(model, alerts) {
  if (alerts === null) return null;
  return alerts.filter((a) => (a.model ?? a.labels?.model) === model).length;
}

/** Renders the overview into `root`. */
export async function overview(root, signal) {
  const win = currentWindow();
  const p = panel('Fleet', { id: 'fleet' });
  replace(root, h('h1', {}, 'Fleet overview'), p.el);
  let models;
  try {
    models = (await call('/api/v1/models', { signal })).models;
  } catch (err) {
    showError(p.body, err);
    return;
  }
  if (models.length === 0) {
    replace(
      p.body,
      h(
        'p',
        { class: 'muted' },
        'No model has traffic yet. Put the sidecar in front of a model server, or run modelwatch demo.',
      ),
    );
    return;
  }
  let alerts = null;
  if (await has('GET', '/api/v1/alerts')) {
    try {
      const body = await call('/api/v1/alerts', { query: { state: 'firing' }, signal });
      alerts = (body.alerts ?? []).filter((a) => (a.state ?? 'firing') === 'firing');
    } catch {
      alerts = null;
    }
  }
  const rows = models.map((m) => ({
    name: m.name,
    model: m,
    health: null,
    spark: { req: h('div', { class: 'spark' }), err: h('div', { class: 'spark' }), lat: h('div', { class: 'spark' }) },
  }));
  await mapLimit(
    rows,
    4,
    async (r) => {
      r.health = await call(modelPath(r.name, '/health'), {
        query: { from: iso(win.from), to: iso(win.to) },
        signal,
      }).catch(() => null);
    },
    signal,
  );
  if (signal.aborted) return;
  const columns = [
    {
      key: 'name',
      label: 'Model',
      value: (r) => r.name,
      cell: (r) =>
        h('a', { href: `/ui/models/${encodeURIComponent(r.name)}`, 'data-link': true, class: 'model-link' }, r.name),
    },
    {
      key: 'requests',
      label: 'Requests',
      defaultDir: -1,
      value: (r) => r.health?.traffic.requests ?? null,
      cell: (r) => fmtNum(r.health?.traffic.requests),
    },
    {
      key: 'traffic',
      label: 'Traffic /min',
      class: 'sparkcell',
      defaultDir: -1,
      value: (r) => r.health?.traffic.requests ?? null,
      cell: (r) => r.spark.req,
    },
    {
      key: 'error_rate',
      label: 'Error rate',
      defaultDir: -1,
      value: (r) => r.health?.traffic.error_rate ?? null,
      cell: (r) =>
        h(
          'span',
          { class: (r.health?.traffic.error_rate ?? 0) > 0.05 ? 'bad-text' : '' },
          fmtPct(r.health?.traffic.error_rate),
        ),
    },
    {
      key: 'errors_spark',
      label: 'Errors',
      class: 'sparkcell',
      defaultDir: -1,
      value: (r) => r.health?.traffic.error_rate ?? null,
      cell: (r) => r.spark.err,
    },
    {
      key: 'p95',
      label: 'p95 latency',
      defaultDir: -1,
      value: (r) => r.health?.traffic.latency_ms.p95 ?? null,
      cell: (r) => fmtMs(r.health?.traffic.latency_ms.p95),
    },
    {
      key: 'lat_spark',
      label: 'Latency',
      class: 'sparkcell',
      defaultDir: -1,
      value: (r) => r.health?.traffic.latency_ms.p95 ?? null,
      cell: (r) => r.spark.lat,
    },
    {
      key: 'drift',
      label: 'Drift',
      defaultDir: -1,
      value: (r) => (r.health?.drift ? (r.health.drift.dataset.share ?? 0) : null),
      cell: (r) => driftBadge(r.health),
    },
    {
      key: 'measured',
      label: 'Measured',
      defaultDir: -1,
      value: (r) => headlineMetric(r.health?.performance?.measured)?.value ?? null,
      cell: (r) => perfCell(r.health?.performance?.measured),
    },
    {
      key: 'estimated',
      label: 'Estimated',
      defaultDir: -1,
      value: (r) => headlineMetric(r.health?.performance?.estimated)?.value ?? null,
      cell: (r) => perfCell(r.health?.performance?.estimated),
    },
    {
      key: 'coverage',
      label: 'Labels',
      defaultDir: -1,
      value: (r) => r.health?.performance?.label_coverage ?? null,
      cell: (r) => fmtPct(r.health?.performance?.label_coverage),
    },
    {
      key: 'alerts',
      label: 'Alerts firing',
      defaultDir: -1,
      value: (r) => alertsOf(r.name, alerts) ?? r.health?.alerts?.length ?? 0,
      cell: (r) => {
        const n = alertsOf(r.name, alerts) ?? r.health?.alerts?.length ?? 0;
        return h('span', { class: `badge ${n > 0 ? 'bad' : 'ok'}` }, String(n));
      },
    },
  ];
  replace(
    p.body,
    h('p', { class: 'muted' }, `${models.length} model${models.length === 1 ? '' : 's'}; click a column to sort.`),
    sortableTable(columns, rows, { key: 'name', dir: 1 }, { rowAttrs: (r) => ({ dataset: { model: r.name } }) }),
  );
  await mapLimit(
    rows,
    2,
    async (r) => {
      const s = await healthSeries(r.name, win, SPARK_BUCKETS, signal);
      if (signal.aborted) return;
      sparkline(
        r.spark.req,
        s.xs,
        s.items.map((it) => perMinute(it, s.stepMs)),
        { color: palette[0] },
      );
      sparkline(
        r.spark.err,
        s.xs,
        s.items.map((it) => it?.traffic.error_rate ?? null),
        { color: palette[1] },
      );
      sparkline(
        r.spark.lat,
        s.xs,
        s.items.map((it) => it?.traffic.latency_ms.p95 ?? null),
        { color: palette[4] },
      );
    },
    signal,
  );
}
