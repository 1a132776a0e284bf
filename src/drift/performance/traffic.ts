import { Tables } from '../../store/migrations.js';
import { toChTime, type Store } from '../../store/store.js';

/** Request-level traffic of one model over a window (from `mw_requests`, rows from `mw_predictions`). */
export interface TrafficSummary {
  /** Inference calls recorded. */
  requests: number;
  /** Prediction rows stored. */
  rows: number;
  /** Calls with HTTP status ≥ 400 or an error text. */
  errors: number;
  /** errors / requests; null with no requests. */
  error_rate: number | null;
  /** Exact latency quantiles (NumPy's linear interpolation); null with no requests. */
  latency_ms: { p50: number | null; p95: number | null; p99: number | null };
}

const WINDOW = `model = {model:String} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}`;

/** Traffic summary of `model` over [fromMs, toMs). */
export async function queryTraffic(store: Store, model: string, fromMs: number, toMs: number): Promise<TrafficSummary> {
  const [r] = await store.query<{ requests: string; errors: string; q: number[]; rows: string }>(
    `SELECT
        (SELECT count() FROM ${Tables.requests} WHERE ${WINDOW}) AS requests,
        (SELECT countIf(status >= 400 OR error != '') FROM ${Tables.requests} WHERE ${WINDOW}) AS errors,
        (SELECT quantilesExactInclusive(0.5, 0.95, 0.99)(latency_ms) FROM ${Tables.requests} WHERE ${WINDOW}) AS q,
        (SELECT count() FROM ${Tables.predictions} WHERE ${WINDOW}) AS rows`,
    { label: 'traffic query', params: { model, from: toChTime(fromMs), to: toChTime(toMs) } },
  );
  const requests = Number(r?.requests ?? 0);
  const errors = Number(r?.errors ?? 0);
  const q = requests > 0 ? (r?.q ?? []) : [];
  return {
    requests,
    rows: Number(r?.rows ?? 0),
    errors,
    error_rate: requests > 0 ? errors / requests : null,
    latency_ms: { p50: q[0] ?? null, p95: q[1] ?? null, p99: q[2] ?? null },
  };
}

/** Mean of each numeric feature of `model` over [fromMs, toMs) (finite values only), at most `limit` features by name. */
export async function queryFeatureMeans(
  store: Store,
  model: string,
  fromMs: number,
  toMs: number,
  limit = 100,
): Promise<Array<{ feature: string; mean: number; n: number }>> {
  const rows = await store.query<{ feature: string; mean: number; n: string }>(
    `SELECT k AS feature, avg(v) AS mean, count() AS n FROM ${Tables.predictions}
      ARRAY JOIN mapKeys(features_num) AS k, mapValues(features_num) AS v
      WHERE ${WINDOW} AND isFinite(v) GROUP BY k ORDER BY k LIMIT {limit:UInt32}`,
    { label: 'feature means query', params: { model, from: toChTime(fromMs), to: toChTime(toMs), limit } },
  );
  return rows.map((r) => ({ feature: r.feature, mean: Number(r.mean), n: Number(r.n) }));
}
