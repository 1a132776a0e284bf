import { createRoute, z } from '@hono/zod-openapi';
import { RunStatuses } from '../../drift/detect-metrics.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { Tables } from '../../store/migrations.js';
import { toChTime } from '../../store/store.js';
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

/** Most points one history answer holds; `truncated` says when more matched. */
const MAX_POINTS = 100_000;

const limitParam = z.coerce
  .number()
  .int()
  .min(1)
  .max(MAX_POINTS)
  .default(10_000)
  .openapi({ description: `Most points returned, oldest first (1..${MAX_POINTS}).`, example: 10_000 });

const time = z.string().openapi({ format: 'date-time' });

const historyAnswer = <T extends z.ZodType>(key: string, item: T, name: string) =>
  z
    .object({
      model: z.string(),
      window: windowSchema,
      [key]: z.array(item),
      truncated: z.boolean().openapi({ description: 'True when more results matched than `limit`.' }),
    })
    .openapi(name);

const driftPointSchema = z
  .object({
    run_id: z.string(),
    ts: time.openapi({ description: 'When the run ran.' }),
    window_from: time,
    window_to: time,
    reference_id: z.string().nullable(),
    segment: z
      .string()
      .openapi({ description: "'' for the whole window, else `version:<v>` or `feature:<name>=<value>`." }),
    feature: z.string().openapi({ description: "Feature name; '' for the dataset verdict (kind `dataset`)." }),
    kind: z.string().openapi({ description: '`numeric`, `categorical` or `dataset`.' }),
    output: z.boolean(),
    method: z.string().openapi({ description: 'The method that decided the verdict (`share` for the dataset row).' }),
    statistic: z.number().nullable(),
    p_value: z.number().nullable(),
    score: z.number().nullable(),
    threshold: z.number(),
    drifted: z.boolean(),
    n_ref: z.number().int(),
    n_cur: z.number().int(),
  })
  .openapi('DriftHistoryPoint');

const performancePointSchema = z
  .object({
    run_id: z.string(),
    ts: time,
    window_from: time,
    window_to: time,
    source: z.string().openapi({ description: '`measured`, `estimated` (CBPE) or `labels` (label_coverage).' }),
    metric: z.string(),
    value: z.number().nullable(),
    rows: z.number().int(),
    labelled_rows: z.number().int(),
  })
  .openapi('PerformanceHistoryPoint');

const changePointSchema = z
  .object({
    run_id: z.string(),
    ts: time,
    series: z.string(),
    feature: z.string().openapi({ description: "Feature of a per-feature series, '' otherwise." }),
    detector: z.string().openapi({ description: '`page_hinkley`, `adwin` or `cusum`.' }),
    params: z.record(z.string(), z.unknown()),
    value: z.number().openapi({ description: 'The series value at which the change was detected.' }),
    series_index: z.number().int(),
  })
  .openapi('ChangePoint');

const detectRunSchema = z
  .object({
    run_id: z.string(),
    ts: time,
    window_from: time,
    window_to: time,
    interval_ms: z.number().int(),
    reference_id: z.string().nullable(),
    status: z.enum(RunStatuses),
    error: z.string(),
    duration_ms: z.number(),
    rows: z.number().int(),
  })
  .openapi('DetectRun');

const driftHistoryRoute = createRoute({
  method: 'get',
  path: '/api/v1/models/{name}/drift/history',
  summary: 'Stored drift results: one point per detect run and feature',
  operationId: 'modelDriftHistory',
  security: bearerSecurity,
  request: {
    params: modelNameParams,
    query: z.object({
      ...windowQueryShape,
      feature: z.string().optional().openapi({ description: "Only this feature ('' for the dataset verdict)." }),
      segment: z
        .string()
        .optional()
        .openapi({ description: "Only this segment (default '': the whole window; `*` for every segment)." }),
      limit: limitParam,
    }),
  },
  responses: { 200: jsonResponse(historyAnswer('points', driftPointSchema, 'DriftHistory')), ...modelErrors },
});

const performanceHistoryRoute = createRoute({
  method: 'get',
  path: '/api/v1/models/{name}/performance/history',
  summary: 'Stored performance results: one point per detect run, source and metric',
  operationId: 'modelPerformanceHistory',
  security: bearerSecurity,
  request: {
    params: modelNameParams,
    query: z.object({
      ...windowQueryShape,
      metric: z
        .string()
        .optional()
        .openapi({ description: 'Only this metric (e.g. `accuracy`, `f1`, `mae`, `label_coverage`).' }),
      source: z.enum(['measured', 'estimated', 'labels']).optional().openapi({ description: 'Only this source.' }),
      limit: limitParam,
    }),
  },
  responses: {
    200: jsonResponse(historyAnswer('points', performancePointSchema, 'PerformanceHistory')),
    ...modelErrors,
  },
});

const changePointsRoute = createRoute({
  method: 'get',
  path: '/api/v1/models/{name}/change-points',
  summary: 'Change points raised by the streaming detectors on the stored metric series',
  operationId: 'modelChangePoints',
  security: bearerSecurity,
  request: { params: modelNameParams, query: z.object({ ...windowQueryShape, limit: limitParam }) },
  responses: { 200: jsonResponse(historyAnswer('change_points', changePointSchema, 'ChangePoints')), ...modelErrors },
});

const detectRunsRoute = createRoute({
  method: 'get',
  path: '/api/v1/models/{name}/detect-runs',
  summary: 'Detect runs of the model: window, interval, reference, status, error, duration, rows',
  operationId: 'modelDetectRuns',
  security: bearerSecurity,
  request: {
    params: modelNameParams,
    query: z.object({
      ...windowQueryShape,
      status: z.enum(RunStatuses).optional().openapi({ description: 'Only runs with this status.' }),
      limit: limitParam,
    }),
  },
  responses: { 200: jsonResponse(historyAnswer('runs', detectRunSchema, 'DetectRuns')), ...modelErrors },
});

/** The window condition of every history query (binds `model`, `from`, `to`). */
export const IN_WINDOW = `model = {model:String} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}`;
/** Run time and window of a result row, in epoch ms (`ts_ms`, `from_ms`, `to_ms`). */
export const TIMES = `toUnixTimestamp64Milli(ts) AS ts_ms, toUnixTimestamp64Milli(window_from) AS from_ms, toUnixTimestamp64Milli(window_to) AS to_ms`;

/** A row selected with {@link TIMES}. */
export interface Timed {
  ts_ms: number | string;
  from_ms: number | string;
  to_ms: number | string;
}

/** ISO times of a {@link Timed} row. */
export const times = (r: Timed): { ts: string; window_from: string; window_to: string } => ({
  ts: isoTime(Number(r.ts_ms)),
  window_from: isoTime(Number(r.from_ms)),
  window_to: isoTime(Number(r.to_ms)),
});

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

/** A JSON object stored as text; `{}` when it is not one. */
export function parseParams(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Rows of a capped query: at most `limit`, and whether more matched. */
function capped<T>(rows: T[], limit: number): { rows: T[]; truncated: boolean } {
  return { rows: rows.slice(0, limit), truncated: rows.length > limit };
}

/**
 * The shared part of every history answer: the capped window, a known model, and at most `limit` rows of
 * `sql` (bound to `model`, `from`, `to`, `limit` and `params`), oldest first.
 */
export async function historyPage<R>(
  ctx: RuntimeContext,
  name: string,
  q: { from?: string | undefined; to?: string | undefined; limit: number },
  sql: string,
  params: Record<string, unknown> = {},
): Promise<{ window: { from: string; to: string }; rows: R[]; truncated: boolean }> {
  const { fromMs, toMs } = cappedWindow(q.from, q.to, ctx.config.api.maxWindowMs);
  await requireModel(ctx.store, name);
  const rows = await queryRows<R>(ctx.store, sql, {
    ...params,
    model: name,
    from: toChTime(fromMs),
    to: toChTime(toMs),
    limit: q.limit + 1,
  });
  return { window: { from: isoTime(fromMs), to: isoTime(toMs) }, ...capped(rows, q.limit) };
}

/**
 * Routes over the stored detect results (nothing is computed): `GET /api/v1/models/{name}/drift/history`,
 * `…/performance/history`, `…/change-points` and `…/detect-runs`. Each takes a `from`/`to` window over the run
 * time (default the last hour, at most `api.maxWindowMs`) and answers oldest first, at most `limit` items.
 */
export function historyRoutes(app: ApiApp, ctx: RuntimeContext): void {
  const page = <R>(
    name: string,
    q: { from?: string | undefined; to?: string | undefined; limit: number },
    sql: string,
    params: Record<string, unknown> = {},
  ) => historyPage<R>(ctx, name, q, sql, params);

  app.openapi(driftHistoryRoute, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const segment = q.segment ?? '';
    const found = await page<
      Timed & {
        run_id: string;
        reference_id: string;
        segment: string;
        feature: string;
        kind: string;
        output: boolean | number;
        method: string;
        statistic: number | null;
        p_value: number | null;
        score: number | null;
        threshold: number;
        drifted: boolean | number;
        n_ref: number | string;
        n_cur: number | string;
      }
    >(
      name,
      q,
      `SELECT run_id, ${TIMES}, reference_id, segment, feature, kind, output, method, statistic, p_value, score, threshold,
              drifted, n_ref, n_cur
       FROM ${Tables.driftResults}
       WHERE ${IN_WINDOW}
         ${segment === '*' ? '' : 'AND segment = {segment:String}'}
         ${q.feature === undefined ? '' : 'AND feature = {feature:String}'}
       ORDER BY ts, run_id, segment, kind = 'dataset' DESC, feature
       LIMIT {limit:UInt32}`,
      { segment, feature: q.feature ?? '' },
    );
    return c.json(
      {
        model: name,
        window: found.window,
        points: found.rows.map((r) => ({
          run_id: r.run_id,
          ...times(r),
          reference_id: r.reference_id === '' ? null : r.reference_id,
          segment: r.segment,
          feature: r.feature,
          kind: r.kind,
          output: Boolean(r.output),
          method: r.method,
          statistic: r.statistic,
          p_value: r.p_value,
          score: r.score,
          threshold: r.threshold,
          drifted: Boolean(r.drifted),
          n_ref: Number(r.n_ref),
          n_cur: Number(r.n_cur),
        })),
        truncated: found.truncated,
      },
      200,
    );
  });

  app.openapi(performanceHistoryRoute, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const found = await page<
      Timed & {
        run_id: string;
        source: string;
        metric: string;
        value: number | null;
        rows: number | string;
        labelled_rows: number | string;
      }
    >(
      name,
      q,
      `SELECT run_id, ${TIMES}, source, metric, value, rows, labelled_rows
       FROM ${Tables.performanceResults}
       WHERE ${IN_WINDOW} AND details = '{}'
         ${q.metric === undefined ? '' : 'AND metric = {metric:String}'}
         ${q.source === undefined ? '' : 'AND source = {source:String}'}
       ORDER BY ts, run_id, source, metric
       LIMIT {limit:UInt32}`,
      { metric: q.metric ?? '', source: q.source ?? '' },
    );
    return c.json(
      {
        model: name,
        window: found.window,
        points: found.rows.map((r) => ({
          run_id: r.run_id,
          ...times(r),
          source: r.source,
          metric: r.metric,
          value: num(r.value),
          rows: Number(r.rows),
          labelled_rows: Number(r.labelled_rows),
        })),
        truncated: found.truncated,
      },
      200,
    );
  });

  app.openapi(changePointsRoute, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const found = await page<{
      run_id: string;
      ts_ms: number | string;
      series: string;
      feature: string;
      detector: string;
      params: string;
      value: number;
      series_index: number | string;
    }>(
      name,
      q,
      `SELECT run_id, toUnixTimestamp64Milli(ts) AS ts_ms, series, feature, detector, params, value, series_index
       FROM ${Tables.changePoints}
       WHERE ${IN_WINDOW}
       ORDER BY ts, series, feature, detector
       LIMIT {limit:UInt32}`,
    );
    return c.json(
      {
        model: name,
        window: found.window,
        change_points: found.rows.map((r) => ({
          run_id: r.run_id,
          ts: isoTime(Number(r.ts_ms)),
          series: r.series,
          feature: r.feature,
          detector: r.detector,
          params: parseParams(r.params),
          value: Number(r.value),
          series_index: Number(r.series_index),
        })),
        truncated: found.truncated,
      },
      200,
    );
  });

  app.openapi(detectRunsRoute, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const found = await page<
      Timed & {
        run_id: string;
        interval_ms: number | string;
        reference_id: string;
        status: string;
        error: string;
        duration_ms: number;
        rows: number | string;
      }
    >(
      name,
      q,
      `SELECT run_id, ${TIMES}, interval_ms, reference_id, status, error, duration_ms, rows
       FROM ${Tables.detectRuns}
       WHERE ${IN_WINDOW} ${q.status === undefined ? '' : 'AND status = {status:String}'}
       ORDER BY ts, run_id
       LIMIT {limit:UInt32}`,
      { status: q.status ?? '' },
    );
    return c.json(
      {
        model: name,
        window: found.window,
        runs: found.rows.map((r) => ({
          run_id: r.run_id,
          ...times(r),
          interval_ms: Number(r.interval_ms),
          reference_id: r.reference_id === '' ? null : r.reference_id,
          status: (RunStatuses as readonly string[]).includes(r.status)
            ? (r.status as (typeof RunStatuses)[number])
            : 'failed',
          error: r.error,
          duration_ms: Number(r.duration_ms),
          rows: Number(r.rows),
        })),
        truncated: found.truncated,
      },
      200,
    );
  });
}
