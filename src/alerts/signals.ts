import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { Tables } from '../store/migrations.js';
import type { SqlPort } from '../store/port.js';
import { toChTime } from '../store/store.js';
import type { Rule } from './rules.js';

/**
 * What the evaluator reads each cycle: the last `k` detection runs of every model, with ONE query per
 * table for all models (drift results, performance results, metric series, detection runs, change
 * points), and only the tables some rule needs. A table whose query fails (e.g. not created yet) is
 * `undefined`: rules over it keep their state for that cycle instead of resolving.
 */

/** Table of detection run records (schema v5). */
export const DETECT_RUNS_TABLE = 'mw_detect_runs';

/** One row of `mw_drift_results` (unsegmented), as the evaluator needs it. */
export interface DriftPoint {
  model: string;
  /** '' for the dataset verdict. */
  feature: string;
  kind: string;
  runId: string;
  ts: number;
  windowFrom: number;
  windowTo: number;
  referenceId: string;
  method: string;
  parameters: string;
  nRef: number;
  nCur: number;
  statistic: number | null;
  pValue: number | null;
  score: number | null;
  threshold: number;
  drifted: boolean;
}

/** One row of `mw_performance_results`. */
export interface PerformancePoint {
  model: string;
  source: string;
  metric: string;
  task: string;
  runId: string;
  ts: number;
  windowFrom: number;
  windowTo: number;
  value: number;
  rows: number;
  labelledRows: number;
}

/** The last values of one series of one model (and feature). */
export interface SeriesSample {
  model: string;
  series: string;
  feature: string;
  /** Newest first. */
  points: { ts: number; value: number; runId: string }[];
  /** Largest value within the lookback. */
  max: number;
}

/** One detection run record. */
export interface RunPoint {
  model: string;
  runId: string;
  ts: number;
  windowFrom: number;
  windowTo: number;
  referenceId: string;
  status: string;
  error: string;
}

/** One row of `mw_multivariate_results`, as the evaluator needs it. */
export interface MultivariatePoint {
  model: string;
  method: string;
  /** '' for the numeric feature set, else the embedding name. */
  group: string;
  runId: string;
  ts: number;
  windowFrom: number;
  windowTo: number;
  referenceId: string;
  nReference: number;
  nCurrent: number;
  statistic: number;
  pValue: number | null;
  threshold: number | null;
  lower: number | null;
  upper: number | null;
  drift: boolean;
  params: string;
  details: string;
}

/** Change points of one model's series within the lookback. */
export interface ChangePointSample {
  model: string;
  series: string;
  count: number;
  lastTs: number;
  detectors: string[];
}

/** Everything one cycle read. Lists are grouped per key, newest first. */
export interface Snapshot {
  /** (model, feature) → last k rows, newest first. */
  drift?: Map<string, DriftPoint[]>;
  /** (model, source, metric) → last k rows, newest first. */
  performance?: Map<string, PerformancePoint[]>;
  series?: SeriesSample[];
  /** model → last k runs, newest first. */
  runs?: Map<string, RunPoint[]>;
  changePoints?: ChangePointSample[];
  /** (model, group, method) → last k multivariate results, newest first. */
  multivariate?: Map<string, MultivariatePoint[]>;
  /** Time of the read, epoch ms. */
  at: number;
}

/** Options of {@link readSnapshot}. */
export interface ReadSnapshotOptions {
  rules: readonly Rule[];
  /** Runs read back per key. */
  k: number;
  /** Oldest result read, epoch ms. */
  since: number;
  now: number;
  logger: Logger;
  signal?: AbortSignal | undefined;
}

/** Key of a (model, part…) tuple in the snapshot maps. */
export function key(...parts: string[]): string {
  return parts.join('\u0000');
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));

function group<T>(rows: T[], keyOf: (r: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const r of rows) {
    const k = keyOf(r);
    const list = out.get(k);
    if (list) list.push(r);
    else out.set(k, [r]);
  }
  return out;
}

/** Reads what `rules` need, one statement per table, for every model at once. */
export async function readSnapshot(store: SqlPort, o: ReadSnapshotOptions): Promise<Snapshot> {
  const sources = new Set(o.rules.map((r) => r.select.source));
  // Drop-mode performance rules need the reference of each run, which the drift rows carry.
  const perfDrop = o.rules.some((r) => r.select.source === 'performance' && r.select.mode === 'drop');
  const params = { since: toChTime(o.since), k: o.k };
  const s = store.with({ role: 'detect', signal: o.signal });
  const snapshot: Snapshot = { at: o.now };
  const attempt = async <T>(table: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (err) {
      if (o.signal?.aborted === true) throw err;
      o.logger.warn('alerts: reading results failed; rules over this table keep their state', {
        table,
        error: errorMessage(err),
      });
      return undefined;
    }
  };
  const tasks: Promise<void>[] = [];
  if (sources.has('drift') || perfDrop) {
    // Dataset rows always (dataset rules, the reference of each run); a feature's rows only when its
    // newest result meets a feature rule (it cannot start or keep an alert otherwise) — most features
    // of most models are stable, so this is most of the table.
    const featureParams: Record<string, unknown> = {};
    const featureConds: string[] = [];
    o.rules.forEach((r, i) => {
      if (r.select.source !== 'drift' || r.select.signal !== 'feature_score') return;
      if (r.threshold === 'detector') featureConds.push('argMax(drifted, ts)');
      else {
        featureParams[`ft${i}`] = r.threshold;
        featureConds.push(`argMax(score, ts) ${r.op === '==' ? '=' : r.op} {ft${i}:Float64}`);
      }
    });
    const featureHaving = featureConds.length > 0 ? featureConds.join(' OR ') : '0';
    tasks.push(
      attempt(Tables.driftResults, async () => {
        const rows = await s.query<Record<string, unknown>>(
          `SELECT model, feature, kind, run_id, toUnixTimestamp64Milli(ts) AS ts_ms,
                  toUnixTimestamp64Milli(window_from) AS wf, toUnixTimestamp64Milli(window_to) AS wt,
                  reference_id, method, parameters, n_ref, n_cur, statistic, p_value, score, threshold, drifted
           FROM ${Tables.driftResults}
           WHERE ts >= {since:DateTime64(3, 'UTC')} AND segment = ''
             AND (model, feature) IN (
               SELECT model, feature FROM ${Tables.driftResults}
               WHERE ts >= {since:DateTime64(3, 'UTC')} AND segment = ''
               GROUP BY model, feature
               HAVING feature = '' OR ${featureHaving})
           ORDER BY model, feature, ts DESC
           LIMIT {k:UInt32} BY model, feature`,
          { params: { ...params, ...featureParams }, label: 'alerts: drift results' },
        );
        return rows.map((r): DriftPoint => ({
          model: String(r.model),
          feature: String(r.feature),
          kind: String(r.kind),
          runId: String(r.run_id),
          ts: num(r.ts_ms),
          windowFrom: num(r.wf),
          windowTo: num(r.wt),
          referenceId: String(r.reference_id),
          method: String(r.method),
          parameters: String(r.parameters),
          nRef: num(r.n_ref),
          nCur: num(r.n_cur),
          statistic: numOrNull(r.statistic),
          pValue: numOrNull(r.p_value),
          score: numOrNull(r.score),
          threshold: num(r.threshold),
          drifted: r.drifted === true || r.drifted === 1,
        }));
      }).then((rows) => {
        if (rows) snapshot.drift = group(rows, (r) => key(r.model, r.feature));
      }),
    );
  }
  if (sources.has('performance')) {
    const metrics = new Set<string>();
    for (const r of o.rules) if (r.select.source === 'performance') for (const m of r.select.metric) metrics.add(m);
    tasks.push(
      attempt(Tables.performanceResults, () =>
        s.query<Record<string, unknown>>(
          `SELECT model, source, metric, task, run_id, toUnixTimestamp64Milli(ts) AS ts_ms,
                  toUnixTimestamp64Milli(window_from) AS wf, toUnixTimestamp64Milli(window_to) AS wt,
                  value, rows, labelled_rows
           FROM ${Tables.performanceResults}
           WHERE ts >= {since:DateTime64(3, 'UTC')} AND metric IN {metrics:Array(String)} AND value IS NOT NULL
           ORDER BY model, source, metric, ts DESC
           LIMIT {k:UInt32} BY model, source, metric`,
          { params: { ...params, metrics: [...metrics] }, label: 'alerts: performance results' },
        ),
      ).then((rows) => {
        if (!rows) return;
        const points = rows.map((r): PerformancePoint => ({
          model: String(r.model),
          source: String(r.source),
          metric: String(r.metric),
          task: String(r.task),
          runId: String(r.run_id),
          ts: num(r.ts_ms),
          windowFrom: num(r.wf),
          windowTo: num(r.wt),
          value: num(r.value),
          rows: num(r.rows),
          labelledRows: num(r.labelled_rows),
        }));
        snapshot.performance = group(points, (p) => key(p.model, p.source, p.metric));
      }),
    );
  }
  if (sources.has('series')) {
    const names = new Set<string>();
    // Only (model, series, feature) groups whose newest value meets some series rule: the others cannot
    // start or keep an alert (an active alert whose key is not read is resolved), and they are most rows.
    const having: string[] = [];
    const hp: Record<string, unknown> = {};
    o.rules.forEach((r, i) => {
      if (r.select.source !== 'series' || r.threshold === 'detector') return;
      for (const n of r.select.series) names.add(n);
      hp[`s${i}`] = r.select.series;
      hp[`t${i}`] = r.threshold;
      const op = r.op === '==' ? '=' : r.op;
      having.push(
        `(series IN {s${i}:Array(String)} AND (pts[1]).2 ${op} {t${i}:Float64}${r.select.hadHistory ? ' AND mx > 0' : ''})`,
      );
    });
    tasks.push(
      attempt(Tables.metricSeries, () =>
        s.query<{ model: string; series: string; feature: string; pts: [number, number, string][]; mx: number }>(
          `SELECT model, series, feature,
                  arraySlice(arraySort(x -> -x.1, groupArray((toUnixTimestamp64Milli(ts), value, run_id))), 1, {k:UInt32}) AS pts,
                  max(value) AS mx
           FROM ${Tables.metricSeries}
           WHERE ts >= {since:DateTime64(3, 'UTC')} AND series IN {names:Array(String)}
           GROUP BY model, series, feature
           HAVING ${having.length > 0 ? having.join(' OR ') : '0'}`,
          { params: { ...params, ...hp, names: [...names] }, label: 'alerts: metric series' },
        ),
      ).then((rows) => {
        if (!rows) return;
        snapshot.series = rows.map((r) => ({
          model: String(r.model),
          series: String(r.series),
          feature: String(r.feature),
          points: r.pts.map(([ts, value, runId]) => ({ ts: num(ts), value: num(value), runId: String(runId) })),
          max: num(r.mx),
        }));
      }),
    );
  }
  if (sources.has('runs')) {
    tasks.push(
      attempt(DETECT_RUNS_TABLE, () =>
        s.query<Record<string, unknown>>(
          `SELECT model, run_id, toUnixTimestamp64Milli(ts) AS ts_ms, toUnixTimestamp64Milli(window_from) AS wf,
                  toUnixTimestamp64Milli(window_to) AS wt, reference_id, status, error
           FROM ${DETECT_RUNS_TABLE}
           WHERE ts >= {since:DateTime64(3, 'UTC')}
           ORDER BY model, ts DESC
           LIMIT {k:UInt32} BY model`,
          { params, label: 'alerts: detection runs' },
        ),
      ).then((rows) => {
        if (!rows) return;
        const points = rows.map((r): RunPoint => ({
          model: String(r.model),
          runId: String(r.run_id),
          ts: num(r.ts_ms),
          windowFrom: num(r.wf),
          windowTo: num(r.wt),
          referenceId: String(r.reference_id),
          status: String(r.status),
          error: String(r.error),
        }));
        snapshot.runs = group(points, (p) => p.model);
      }),
    );
  }
  if (sources.has('change_points')) {
    tasks.push(
      attempt(Tables.changePoints, () =>
        s.query<{ model: string; series: string; c: number; last: number; detectors: string[] }>(
          `SELECT model, series, count() AS c, max(toUnixTimestamp64Milli(ts)) AS last, groupUniqArray(toString(detector)) AS detectors
           FROM ${Tables.changePoints}
           WHERE ts >= {since:DateTime64(3, 'UTC')}
           GROUP BY model, series`,
          { params, label: 'alerts: change points' },
        ),
      ).then((rows) => {
        if (!rows) return;
        snapshot.changePoints = rows.map((r) => ({
          model: String(r.model),
          series: String(r.series),
          count: num(r.c),
          lastTs: num(r.last),
          detectors: r.detectors,
        }));
      }),
    );
  }
  if (sources.has('multivariate')) {
    tasks.push(
      attempt(Tables.multivariateResults, () =>
        s.query<Record<string, unknown>>(
          `SELECT model, method, feature_group, run_id, toUnixTimestamp64Milli(ts) AS ts_ms,
                  toUnixTimestamp64Milli(window_from) AS wf, toUnixTimestamp64Milli(window_to) AS wt, reference_id,
                  n_reference, n_current, statistic, p_value, threshold, lower, upper, drift, params, details
           FROM ${Tables.multivariateResults}
           WHERE ts >= {since:DateTime64(3, 'UTC')}
           ORDER BY model, feature_group, method, ts DESC
           LIMIT {k:UInt32} BY model, feature_group, method`,
          { params, label: 'alerts: multivariate results' },
        ),
      ).then((rows) => {
        if (!rows) return;
        const points = rows.map((r): MultivariatePoint => ({
          model: String(r.model),
          method: String(r.method),
          group: String(r.feature_group),
          runId: String(r.run_id),
          ts: num(r.ts_ms),
          windowFrom: num(r.wf),
          windowTo: num(r.wt),
          referenceId: String(r.reference_id),
          nReference: num(r.n_reference),
          nCurrent: num(r.n_current),
          statistic: r.statistic === null ? Number.NaN : num(r.statistic),
          pValue: numOrNull(r.p_value),
          threshold: numOrNull(r.threshold),
          lower: numOrNull(r.lower),
          upper: numOrNull(r.upper),
          drift: r.drift === true || Number(r.drift) === 1,
          params: String(r.params),
          details: String(r.details),
        }));
        snapshot.multivariate = group(points, (p) => key(p.model, p.group, p.method));
      }),
    );
  }
  await Promise.all(tasks);
  return snapshot;
}
