import { Tables } from '../../store/migrations.js';
import { toChTime, type Store } from '../../store/store.js';
import type { TrafficSummary } from '../performance/traffic.js';

// The batched reads of one detection cycle: each is one statement for every model of the cycle, grouped by
// model, so a cycle's statement count does not grow with the number of models.

const IN_MODELS = 'model IN {models:Array(String)}';

function params(models: readonly string[], fromMs: number, toMs: number): Record<string, unknown> {
  return { models: [...models], from: toChTime(fromMs), to: toChTime(toMs) };
}

/** Prediction rows per model in two windows ending at the same time: the run's window and its interval. */
export interface RowCounts {
  window: number;
  interval: number;
}

/**
 * Rows of `mw_predictions` per model in `[windowFrom, end)` and `[intervalFrom, end)`, in one pass. Models
 * without rows are absent.
 */
export async function queryRowCounts(
  store: Store,
  models: readonly string[],
  range: { windowFrom: number; intervalFrom: number; end: number },
): Promise<Map<string, RowCounts>> {
  const rows = await store.query<{ model: string; w: string | number; i: string | number }>(
    `SELECT model, countIf(ts >= {wfrom:DateTime64(3, 'UTC')}) AS w, countIf(ts >= {ifrom:DateTime64(3, 'UTC')}) AS i
     FROM ${Tables.predictions}
     WHERE ${IN_MODELS} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
     GROUP BY model`,
    {
      label: 'window rows query',
      params: {
        ...params(models, Math.min(range.windowFrom, range.intervalFrom), range.end),
        wfrom: toChTime(range.windowFrom),
        ifrom: toChTime(range.intervalFrom),
      },
    },
  );
  return new Map(rows.map((r) => [r.model, { window: Number(r.w), interval: Number(r.i) }]));
}

/**
 * Traffic of each model over `[fromMs, toMs)` from `mw_requests` (one statement); `rows` comes from the
 * caller's prediction counts. Every model of `models` gets a summary (zeros without requests).
 */
export async function queryTrafficBatch(
  store: Store,
  models: readonly string[],
  fromMs: number,
  toMs: number,
  rows: (model: string) => number,
): Promise<Map<string, TrafficSummary>> {
  const found = await store.query<{ model: string; requests: string; errors: string; q: number[] }>(
    `SELECT model, count() AS requests, countIf(status >= 400 OR error != '') AS errors,
       quantilesExactInclusive(0.5, 0.95, 0.99)(latency_ms) AS q
     FROM ${Tables.requests}
     WHERE ${IN_MODELS} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
     GROUP BY model`,
    { label: 'traffic query', params: params(models, fromMs, toMs) },
  );
  const byModel = new Map(found.map((r) => [r.model, r]));
  const out = new Map<string, TrafficSummary>();
  for (const model of models) {
    const r = byModel.get(model);
    const requests = Number(r?.requests ?? 0);
    const errors = Number(r?.errors ?? 0);
    const q = requests > 0 ? (r?.q ?? []) : [];
    out.set(model, {
      requests,
      rows: rows(model),
      errors,
      error_rate: requests > 0 ? errors / requests : null,
      latency_ms: { p50: q[0] ?? null, p95: q[1] ?? null, p99: q[2] ?? null },
    });
  }
  return out;
}

/** A numeric feature's mean over a window (finite values only). */
export interface FeatureMean {
  feature: string;
  mean: number;
  n: number;
}

/** Per model, the mean of each numeric feature over `[fromMs, toMs)`, at most `limit` features by name. */
export async function queryFeatureMeansBatch(
  store: Store,
  models: readonly string[],
  fromMs: number,
  toMs: number,
  limit: number,
): Promise<Map<string, FeatureMean[]>> {
  const rows = await store.query<{ model: string; feature: string; mean: number; n: string }>(
    `SELECT model, k AS feature, avg(v) AS mean, count() AS n FROM ${Tables.predictions}
      ARRAY JOIN mapKeys(features_num) AS k, mapValues(features_num) AS v
      WHERE ${IN_MODELS} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')} AND isFinite(v)
      GROUP BY model, k ORDER BY model, k LIMIT {limit:UInt32} BY model`,
    { label: 'feature means query', params: { ...params(models, fromMs, toMs), limit } },
  );
  const out = new Map<string, FeatureMean[]>();
  for (const r of rows) {
    let list = out.get(r.model);
    if (!list) out.set(r.model, (list = []));
    list.push({ feature: r.feature, mean: Number(r.mean), n: Number(r.n) });
  }
  return out;
}

/** Records quarantined by ingest per model over `[fromMs, toMs)` (by receipt time). */
export async function queryQuarantineCounts(
  store: Store,
  models: readonly string[],
  fromMs: number,
  toMs: number,
): Promise<Map<string, number>> {
  const rows = await store.query<{ model: string; n: string | number }>(
    `SELECT model, count() AS n FROM ${Tables.quarantine}
     WHERE ${IN_MODELS} AND received_at >= {from:DateTime64(3, 'UTC')} AND received_at < {to:DateTime64(3, 'UTC')}
     GROUP BY model`,
    { label: 'quarantine count query', params: params(models, fromMs, toMs) },
  );
  return new Map(rows.map((r) => [r.model, Number(r.n)]));
}
