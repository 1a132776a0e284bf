import type { Hono } from 'hono';
import { z } from 'zod';
import { errorMessage } from '../../common/errors.js';
import { resolveWindow } from '../../common/time.js';
import { detectDrift, type DriftDetection } from '../../drift/detect-drift.js';
import { computePerformance } from '../../drift/performance/query.js';
import { queryTraffic } from '../../drift/performance/traffic.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { Tables } from '../../store/migrations.js';
import { toChTime, type Store } from '../../store/store.js';
import { validate } from '../errors.js';
import { isoTime, queryRows, requireModel } from '../query.js';

const windowQuery = z.object({ from: z.string().optional(), to: z.string().optional() });

interface FeatureDrift {
  name: string;
  kind: string;
  output: boolean;
  method: string;
  score: number | null;
  threshold: number;
  drifted: boolean;
}

/** Drift part of the health summary. */
interface HealthDrift {
  /** `live`: computed now over the window; `stored`: the newest detect-loop result inside the window. */
  source: 'live' | 'stored';
  ts: string | null;
  reference_id: string | null;
  dataset: { features: number; drifted_features: number; share: number | null; drifted: boolean };
  features: FeatureDrift[];
}

interface StoredDriftRow {
  ts_ms: number;
  reference_id: string;
  feature: string;
  kind: string;
  output: boolean;
  method: string;
  score: number | null;
  threshold: number;
  drifted: boolean;
  statistic: number | null;
}

/** The newest detect-loop drift results for `model` within [fromMs, toMs), or null when there are none. */
async function latestStoredDrift(store: Store, model: string, fromMs: number, toMs: number): Promise<HealthDrift | null> {
  const rows = await queryRows<StoredDriftRow>(
    store,
    `SELECT toUnixTimestamp64Milli(ts) AS ts_ms, reference_id, feature, kind, output, method, score, threshold, drifted, statistic
     FROM ${Tables.driftResults}
     WHERE model = {model:String} AND run_id = (
       SELECT argMax(run_id, ts) FROM ${Tables.driftResults}
       WHERE model = {model:String} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')} AND segment = ''
     ) AND segment = ''
     ORDER BY feature`,
    { model, from: toChTime(fromMs), to: toChTime(toMs) },
  );
  const dataset = rows.find((r) => r.kind === 'dataset');
  if (!dataset) return null;
  const features = rows
    .filter((r) => r.kind !== 'dataset')
    .map((r) => ({
      name: r.feature,
      kind: r.kind,
      output: Boolean(r.output),
      method: r.method,
      score: r.score,
      threshold: r.threshold,
      drifted: Boolean(r.drifted),
    }));
  return {
    source: 'stored',
    ts: isoTime(Number(dataset.ts_ms)),
    reference_id: dataset.reference_id === '' ? null : dataset.reference_id,
    dataset: {
      features: features.length,
      drifted_features: features.filter((f) => f.drifted).length,
      share: dataset.score,
      drifted: Boolean(dataset.drifted),
    },
    features,
  };
}

function liveDrift(report: DriftDetection): HealthDrift {
  const id = report.reference.id;
  return {
    source: 'live',
    ts: null,
    reference_id: typeof id === 'string' ? id : null,
    dataset: {
      features: report.dataset.features,
      drifted_features: report.dataset.drifted_features,
      share: report.dataset.share,
      drifted: report.dataset.drifted,
    },
    features: report.features.map((f) => ({
      name: f.name,
      kind: f.kind,
      output: f.output === true,
      method: f.method,
      score: f.score,
      threshold: f.threshold,
      drifted: f.drifted,
    })),
  };
}

/**
 * `GET /api/v1/models/{name}/health?from&to` — one summary of the window (default: the last hour):
 * - `traffic`: requests, rows, errors (HTTP status ≥ 400 or an error text), error_rate (0 without requests),
 *   exact latency p50/p95/p99 in ms (null without requests);
 * - `drift`: dataset verdict and per-feature method/score/verdict, computed live against the model's reference;
 *   when that fails (e.g. no reference yet) the newest stored detect-loop result in the window, else null, with
 *   `drift_error` saying why;
 * - `data_quality`: ingest quarantine and volume of the window, and per-feature missing / out-of-range / unseen
 *   rates (from the live drift computation; null without it);
 * - `performance`: label coverage, measured and CBPE-estimated metrics;
 * - `alerts`: active alerts — always `[]` for now: alert rules are not evaluated yet.
 */
export function healthRoutes(app: Hono, ctx: RuntimeContext): void {
  app.get('/api/v1/models/:name/health', async (c) => {
    const name = c.req.param('name');
    const q = validate(windowQuery, c.req.query());
    const { fromMs, toMs } = resolveWindow(q.from, q.to);
    await requireModel(ctx.store, name);
    const schema = ctx.config.models[name];
    const traffic = await queryTraffic(ctx.store, name, fromMs, toMs);
    let drift: HealthDrift | null = null;
    let driftError: string | null = null;
    let dataQuality: Record<string, unknown> | null = null;
    try {
      const report = await detectDrift(ctx.store, { model: name, from: fromMs, to: toMs, config: ctx.config });
      drift = liveDrift(report);
      dataQuality = {
        quarantined: report.quality.quarantined,
        quarantined_by_code: report.quality.quarantined_by_code,
        volume: report.quality.volume,
        features: report.features.map((f) => ({ name: f.name, ...f.quality })),
      };
    } catch (err) {
      driftError = errorMessage(err);
      drift = await latestStoredDrift(ctx.store, name, fromMs, toMs);
    }
    const perf = await computePerformance(ctx.store, { model: name, fromMs, toMs, ...(schema ? { schema } : {}) });
    return c.json({
      model: name,
      window: { from: isoTime(fromMs), to: isoTime(toMs) },
      traffic: { ...traffic, error_rate: traffic.error_rate ?? 0 },
      drift,
      ...(driftError !== null ? { drift_error: driftError } : {}),
      data_quality: dataQuality,
      performance: {
        rows: perf.rows,
        labelled_rows: perf.labelled_rows,
        label_coverage: perf.label_coverage,
        measured: perf.measured,
        estimated: perf.estimated,
      },
      alerts: [],
    });
  });
}
