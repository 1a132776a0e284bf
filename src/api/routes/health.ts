import { activeAlerts } from '../../alerts/index.js';
import { createRoute, z } from '@hono/zod-openapi';
import { errorMessage } from '../../common/errors.js';
import { detectDrift, type DriftDetection } from '../../drift/detect-drift.js';
import { computePerformance } from '../../drift/performance/query.js';
import { queryTraffic } from '../../drift/performance/traffic.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { Tables } from '../../store/migrations.js';
import { toChTime, type Store } from '../../store/store.js';
import {
  bearerSecurity,
  jsonResponse,
  modelErrors,
  modelNameParams,
  windowQueryShape,
  windowSchema,
  type ApiApp,
} from '../openapi.js';
import { isoTime, queryRows, requireModel } from '../query.js';
import { cappedWindow } from '../window.js';
import { healthMultivariateSchema, latestMultivariate } from './multivariate.js';

const healthQuery = z.object({
  ...windowQueryShape,
  recompute: z
    .enum(['true', 'false'])
    .optional()
    .openapi({
      description:
        '`true` computes drift, data quality and performance now over the window (bounded by api.maxWindowMs and ' +
        'the query deadlines) instead of reading the newest stored detection results.',
      default: 'false',
    }),
});

const featureHealthSchema = z.object({
  name: z.string(),
  kind: z.string(),
  output: z.boolean(),
  method: z.string(),
  score: z.number().nullable(),
  threshold: z.number(),
  drifted: z.boolean(),
});

const healthDriftSchema = z
  .object({
    source: z
      .enum(['live', 'stored'])
      .openapi({ description: '`stored`: a detection run inside the window; `live`: computed now.' }),
    ts: z.string().nullable().openapi({ description: 'Time of the stored run (null when live).', format: 'date-time' }),
    reference_id: z.string().nullable(),
    dataset: z.object({
      features: z.number().int(),
      drifted_features: z.number().int(),
      share: z.number().nullable(),
      drifted: z.boolean(),
    }),
    features: z.array(featureHealthSchema),
  })
  .openapi('HealthDrift');

const metricsSchema = z.record(z.string(), z.unknown()).nullable();

const healthPerformanceSchema = z
  .object({
    source: z.enum(['live', 'stored']),
    ts: z.string().nullable().openapi({ format: 'date-time' }),
    rows: z.number().int(),
    labelled_rows: z.number().int(),
    label_coverage: z.number().nullable(),
    measured: metricsSchema.openapi({ description: 'Measured metrics over labelled rows (scikit-learn definitions).' }),
    estimated: metricsSchema.openapi({ description: 'Label-free CBPE estimate; null for regression.' }),
  })
  .openapi('HealthPerformance');

const healthSchema = z
  .object({
    model: z.string(),
    window: windowSchema,
    traffic: z.object({
      requests: z.number().int(),
      rows: z.number().int(),
      errors: z.number().int(),
      error_rate: z.number(),
      latency_ms: z.object({ p50: z.number().nullable(), p95: z.number().nullable(), p99: z.number().nullable() }),
    }),
    drift: healthDriftSchema.nullable(),
    drift_error: z
      .string()
      .optional()
      .openapi({ description: 'Why live drift failed (then `drift` is the newest stored run, if any).' }),
    data_quality: z
      .object({
        quarantined: z.number().int(),
        quarantined_by_code: z.record(z.string(), z.number()),
        volume: z.record(z.string(), z.unknown()),
        features: z.array(z.record(z.string(), z.unknown())),
      })
      .nullable(),
    performance: healthPerformanceSchema.nullable(),
    last_run: z
      .object({
        run_id: z.string(),
        ts: z.string().openapi({ format: 'date-time' }),
        window: windowSchema,
        status: z.string().openapi({ description: '`ok`, `no_data`, `no_reference`, `failed` or `timed_out`.' }),
        error: z.string(),
        reference_id: z.string().nullable(),
        rows: z.number().int(),
        duration_ms: z.number(),
      })
      .nullable()
      .openapi({ description: 'The newest stored detect run inside the window (null when none).' }),
    change_points: z
      .array(
        z.object({
          ts: z.string().openapi({ format: 'date-time' }),
          series: z.string(),
          feature: z.string(),
          detector: z.string(),
          value: z.number(),
        }),
      )
      .openapi({ description: 'Change points stored inside the window, newest first (at most 20).' }),
    alerts: z
      .array(
        z
          .object({
            id: z.string(),
            rule: z.string(),
            severity: z.string(),
            state: z.enum(['pending', 'firing']),
            labels: z.record(z.string(), z.string()),
            summary: z.string(),
            value: z.number(),
            since: z.string().openapi({ format: 'date-time' }),
          })
          .openapi('ActiveAlert'),
      )
      .openapi({ description: 'Pending and firing alerts of the model, firing first.' }),
    multivariate: healthMultivariateSchema,
  })
  .openapi('Health');

const healthRoute = createRoute({
  method: 'get',
  path: '/api/v1/models/{name}/health',
  summary: 'Traffic, drift, data quality, performance and active alerts in one summary',
  operationId: 'modelHealth',
  security: bearerSecurity,
  request: { params: modelNameParams, query: healthQuery },
  responses: { 200: jsonResponse(healthSchema), ...modelErrors },
});

type HealthDrift = z.infer<typeof healthDriftSchema>;
type HealthPerformance = z.infer<typeof healthPerformanceSchema>;
type DataQuality = NonNullable<z.infer<typeof healthSchema>['data_quality']>;

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
  quality: string;
}

interface StoredPerformanceRow {
  ts_ms: number;
  task: string;
  source: string;
  metric: string;
  value: number | null;
  rows: number;
  labelled_rows: number;
  details: string;
}

const IN_WINDOW = `model = {model:String} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}`;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseObject(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return isRecord(v) ? v : {};
  } catch {
    return {};
  }
}

/** The newest stored drift run of `model` within [fromMs, toMs) (unsegmented), with its data quality; null without one. */
async function storedDrift(
  store: Store,
  model: string,
  fromMs: number,
  toMs: number,
): Promise<{ drift: HealthDrift; quality: DataQuality } | null> {
  const rows = await queryRows<StoredDriftRow>(
    store,
    `SELECT toUnixTimestamp64Milli(ts) AS ts_ms, reference_id, feature, kind, output, method, score, threshold, drifted, quality
     FROM ${Tables.driftResults}
     WHERE ${IN_WINDOW} AND segment = ''
       AND run_id = (SELECT argMax(run_id, ts) FROM ${Tables.driftResults} WHERE ${IN_WINDOW} AND segment = '')
     ORDER BY feature`,
    { model, from: toChTime(fromMs), to: toChTime(toMs) },
  );
  const dataset = rows.find((r) => r.kind === 'dataset');
  if (!dataset) return null;
  const featureRows = rows.filter((r) => r.kind !== 'dataset');
  const features = featureRows.map((r) => ({
    name: r.feature,
    kind: r.kind,
    output: Boolean(r.output),
    method: r.method,
    score: r.score,
    threshold: r.threshold,
    drifted: Boolean(r.drifted),
  }));
  const windowQuality = parseObject(dataset.quality);
  const byCode = windowQuality.quarantined_by_code;
  return {
    drift: {
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
    },
    quality: {
      quarantined: typeof windowQuality.quarantined === 'number' ? windowQuality.quarantined : 0,
      quarantined_by_code: isRecord(byCode) ? (byCode as Record<string, number>) : {},
      volume: isRecord(windowQuality.volume) ? windowQuality.volume : {},
      features: featureRows.map((r) => ({ name: r.feature, ...parseObject(r.quality) })),
    },
  };
}

/** The newest stored performance run of `model` within [fromMs, toMs); null without one. */
async function storedPerformance(
  store: Store,
  model: string,
  fromMs: number,
  toMs: number,
): Promise<HealthPerformance | null> {
  const rows = await queryRows<StoredPerformanceRow>(
    store,
    `SELECT toUnixTimestamp64Milli(ts) AS ts_ms, task, source, metric, value, rows, labelled_rows, details
     FROM ${Tables.performanceResults}
     WHERE ${IN_WINDOW}
       AND run_id = (SELECT argMax(run_id, ts) FROM ${Tables.performanceResults} WHERE ${IN_WINDOW})
     ORDER BY source, metric`,
    { model, from: toChTime(fromMs), to: toChTime(toMs) },
  );
  const first = rows[0];
  if (first === undefined) return null;
  const bySource = (source: string): Record<string, unknown> | null => {
    const own = rows.filter((r) => r.source === source);
    if (own.length === 0) return null;
    const out: Record<string, unknown> = { task: first.task };
    if (source === 'estimated') out.method = 'cbpe';
    for (const r of own) out[r.metric] = r.details !== '{}' && r.value === null ? parseObject(r.details) : r.value;
    return out;
  };
  const coverage = rows.find((r) => r.source === 'labels' && r.metric === 'label_coverage');
  return {
    source: 'stored',
    ts: isoTime(Number(first.ts_ms)),
    rows: Number(first.rows),
    labelled_rows: Number(first.labelled_rows),
    label_coverage: coverage?.value ?? null,
    measured: bySource('measured'),
    estimated: bySource('estimated'),
  };
}

type LastRun = z.infer<typeof healthSchema>['last_run'];
type HealthChangePoint = z.infer<typeof healthSchema>['change_points'][number];

/** The newest stored detect run of `model` within [fromMs, toMs); null without one. */
async function storedLastRun(store: Store, model: string, fromMs: number, toMs: number): Promise<LastRun> {
  const [r] = await queryRows<{
    run_id: string;
    ts_ms: number | string;
    from_ms: number | string;
    to_ms: number | string;
    status: string;
    error: string;
    reference_id: string;
    rows: number | string;
    duration_ms: number;
  }>(
    store,
    `SELECT run_id, toUnixTimestamp64Milli(ts) AS ts_ms, toUnixTimestamp64Milli(window_from) AS from_ms,
            toUnixTimestamp64Milli(window_to) AS to_ms, status, error, reference_id, rows, duration_ms
     FROM ${Tables.detectRuns} WHERE ${IN_WINDOW} ORDER BY ts DESC, run_id DESC LIMIT 1`,
    { model, from: toChTime(fromMs), to: toChTime(toMs) },
  );
  if (r === undefined) return null;
  return {
    run_id: r.run_id,
    ts: isoTime(Number(r.ts_ms)),
    window: { from: isoTime(Number(r.from_ms)), to: isoTime(Number(r.to_ms)) },
    status: r.status,
    error: r.error,
    reference_id: r.reference_id === '' ? null : r.reference_id,
    rows: Number(r.rows),
    duration_ms: Number(r.duration_ms),
  };
}

/** The newest stored change points of `model` within [fromMs, toMs), at most 20. */
async function storedChangePoints(
  store: Store,
  model: string,
  fromMs: number,
  toMs: number,
): Promise<HealthChangePoint[]> {
  const rows = await queryRows<{
    ts_ms: number | string;
    series: string;
    feature: string;
    detector: string;
    value: number;
  }>(
    store,
    `SELECT toUnixTimestamp64Milli(ts) AS ts_ms, series, feature, detector, value
     FROM ${Tables.changePoints} WHERE ${IN_WINDOW} ORDER BY ts DESC, series, feature, detector LIMIT 20`,
    { model, from: toChTime(fromMs), to: toChTime(toMs) },
  );
  return rows.map((r) => ({
    ts: isoTime(Number(r.ts_ms)),
    series: r.series,
    feature: r.feature,
    detector: r.detector,
    value: Number(r.value),
  }));
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
 * `GET /api/v1/models/{name}/health?from&to&recompute` — one summary of the window (default: the last hour, at most
 * `api.maxWindowMs`):
 * - `traffic`: requests, rows, errors (HTTP status ≥ 400 or an error text), error_rate (0 without requests),
 *   exact latency p50/p95/p99 in ms (null without requests), always over the window;
 * - `drift`, `data_quality`, `performance`: by default the newest stored detection run inside the window (null
 *   when there is none). With `recompute=true` they are computed now over the window; when live drift fails
 *   (e.g. no reference yet) `drift` falls back to the newest stored run and `drift_error` says why;
 * - `last_run`: the newest stored detect run in the window (status, error, reference); `change_points`: the newest
 *   stored change points in the window (at most 20);
 * - `alerts`: the model's pending and firing alerts (`mw_alerts`), firing first.
 */
export function healthRoutes(app: ApiApp, ctx: RuntimeContext): void {
  app.openapi(healthRoute, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const { fromMs, toMs } = cappedWindow(q.from, q.to, ctx.config.api.maxWindowMs);
    await requireModel(ctx.store, name);
    const traffic = await queryTraffic(ctx.store, name, fromMs, toMs);
    let drift: HealthDrift | null = null;
    let driftError: string | null = null;
    let dataQuality: DataQuality | null = null;
    let performance: HealthPerformance | null;
    if (q.recompute === 'true') {
      const schema = ctx.config.models[name];
      try {
        const report = await detectDrift(ctx.store, { model: name, from: fromMs, to: toMs, config: ctx.config });
        drift = liveDrift(report);
        dataQuality = {
          quarantined: report.quality.quarantined,
          quarantined_by_code: report.quality.quarantined_by_code,
          volume: { ...report.quality.volume },
          features: report.features.map((f) => ({ name: f.name, ...f.quality })),
        };
      } catch (err) {
        driftError = errorMessage(err);
        const stored = await storedDrift(ctx.store, name, fromMs, toMs);
        drift = stored?.drift ?? null;
        dataQuality = stored?.quality ?? null;
      }
      const perf = await computePerformance(ctx.store, { model: name, fromMs, toMs, ...(schema ? { schema } : {}) });
      performance = {
        source: 'live',
        ts: null,
        rows: perf.rows,
        labelled_rows: perf.labelled_rows,
        label_coverage: perf.label_coverage,
        measured: perf.measured ? { ...perf.measured } : null,
        estimated: perf.estimated ? { ...perf.estimated } : null,
      };
    } else {
      const stored = await storedDrift(ctx.store, name, fromMs, toMs);
      drift = stored?.drift ?? null;
      dataQuality = stored?.quality ?? null;
      performance = await storedPerformance(ctx.store, name, fromMs, toMs);
    }
    const lastRun = await storedLastRun(ctx.store, name, fromMs, toMs);
    const changePoints = await storedChangePoints(ctx.store, name, fromMs, toMs);
    return c.json(
      {
        model: name,
        window: { from: isoTime(fromMs), to: isoTime(toMs) },
        traffic: { ...traffic, error_rate: traffic.error_rate ?? 0 },
        drift,
        ...(driftError !== null ? { drift_error: driftError } : {}),
        data_quality: dataQuality,
        performance,
        last_run: lastRun,
        change_points: changePoints,
        alerts: await activeAlerts(ctx.store, name),
        multivariate: await latestMultivariate(ctx.store, name, fromMs, toMs),
      },
      200,
    );
  });
}
