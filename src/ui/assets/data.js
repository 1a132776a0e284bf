// Data shaping shared by the views: the selected time range and time series built from the routes that exist
// (per-bucket /health calls give traffic, latency, errors and the stored drift/performance of each bucket).

import { call, modelPath } from './api.js';
import { mapLimit } from './util.js';

const RANGES = {
  '15m': 15 * 60_000,
  '1h': 3_600_000,
  '6h': 6 * 3_600_000,
  '24h': 24 * 3_600_000,
  '7d': 7 * 24 * 3_600_000,
};

/** The range chosen in the header (`?range=`), in ms. */
export function rangeMs() {
  const r = new URLSearchParams(location.search).get('range');
  return RANGES[r] ?? RANGES['1h'];
}

/** The range's key (`1h`). */
export function rangeKey() {
  const r = new URLSearchParams(location.search).get('range');
  return r in RANGES ? r : '1h';
}

/** `{ from, to }` epoch ms of the selected range ending now (rounded up to the minute so buckets are stable). */
export function currentWindow() {
  const to = Math.ceil(Date.now() / 60_000) * 60_000;
  return { from: to - rangeMs(), to };
}

const iso = (ms) => new Date(ms).toISOString();

/**
 * `/health` of `model` over each of `buckets` equal slices of [from, to): `{ xs (epoch s, bucket end),
 * items (health bodies or null on error) }`. Buckets run 4 at a time.
 */
export function healthSeries(model, win, buckets, signal) {
  // The model page draws traffic, drift and performance from the same buckets: fetch them once per view.
  const key = JSON.stringify([model, win.from, win.to, buckets]);
  let p = seriesCache.get(key);
  if (p === undefined) {
    p = fetchHealthSeries(model, win, buckets, signal);
    seriesCache.set(key, p);
  }
  return p;
}

const seriesCache = new Map();

/** Forgets the cached series (on every view change). */
export function clearSeriesCache() {
  seriesCache.clear();
}

async function fetchHealthSeries(model, { from, to }, buckets, signal) {
  const step = (to - from) / buckets;
  const slices = Array.from({ length: buckets }, (_, i) => [
    Math.round(from + i * step),
    Math.round(from + (i + 1) * step),
  ]);
  const items = await mapLimit(
    slices,
    4,
    ([f, t]) => call(modelPath(model, '/health'), { query: { from: iso(f), to: iso(t) }, signal }).catch(() => null),
    signal,
  );
  return { xs: slices.map(([, t]) => t / 1000), items, stepMs: step };
}

/** Requests per minute of a bucket's health. */
export function perMinute(item, stepMs) {
  return item ? item.traffic.requests / (stepMs / 60_000) : null;
}

/** The headline metric of a performance block (accuracy, else f1, else mae/rmse for regression). */
export function headlineMetric(block) {
  if (!block) return null;
  for (const k of ['accuracy', 'f1', 'mae', 'rmse', 'r2'])
    if (typeof block[k] === 'number') return { name: k, value: block[k] };
  return null;
}

/** Drift methods whose score is a p-value (lower = more drift). */
export const P_VALUE_METHODS = new Set(['ks', 'chi_square']);

/** How far past its threshold a feature is: > 1 drifted, whatever the method's direction. */
export function severity(f) {
  if (f.score === null || f.score === undefined) return null;
  if (P_VALUE_METHODS.has(f.method)) return f.threshold / Math.max(f.score, 1e-300);
  return f.threshold > 0 ? f.score / f.threshold : f.score;
}

function fmtEdge(x) {
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e5 || a < 1e-3 ? x.toExponential(2) : Number(x.toPrecision(4)).toString();
}

/**
 * A feature's reference-vs-current shares per bin from the report's `distribution` (edges or categories), with
 * the bin labels of the HTML report; null when the report carries none.
 */
export function histogramOf(feature, maxCategories = 20) {
  const d = feature.distribution;
  if (!d || !Array.isArray(d.reference) || !Array.isArray(d.current)) return null;
  const shares = (v) => {
    const total = v.reduce((a, b) => a + b, 0);
    return v.map((c) => (total > 0 ? c / total : 0));
  };
  const ref = shares(d.reference);
  const cur = shares(d.current);
  if (Array.isArray(d.categories)) {
    const order = d.categories.map((_, i) => i).sort((a, b) => ref[b] + cur[b] - (ref[a] + cur[a]));
    const shown = order.slice(0, order.length <= maxCategories ? order.length : maxCategories - 1);
    const rest = order.slice(shown.length);
    const sum = (v) => rest.reduce((a, i) => a + v[i], 0);
    return {
      labels: [...shown.map((i) => d.categories[i]), ...(rest.length ? ['(other)'] : [])],
      reference: [...shown.map((i) => ref[i]), ...(rest.length ? [sum(ref)] : [])],
      current: [...shown.map((i) => cur[i]), ...(rest.length ? [sum(cur)] : [])],
    };
  }
  const e = d.edges ?? [];
  const labels =
    e.length === 0
      ? ['all values']
      : [
          `< ${fmtEdge(e[0])}`,
          ...e.slice(1).map((x, i) => `[${fmtEdge(e[i])}, ${fmtEdge(x)})`),
          `≥ ${fmtEdge(e[e.length - 1])}`,
        ];
  return { labels, reference: ref, current: cur };
}
