import { createRoute, z } from '@hono/zod-openapi';
import { EmbeddingMethods, MultivariateMethods } from '../../config/schema.js';
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
import { isoTime, queryRows } from '../query.js';
import { IN_WINDOW, TIMES, historyPage, parseParams, times, type Timed } from './history.js';

const MAX_POINTS = 100_000;

/** Every multivariate method name (numeric set and embeddings). */
const methodNames = [...new Set<string>([...MultivariateMethods, ...EmbeddingMethods])] as [string, ...string[]];

const time = z.string().openapi({ format: 'date-time' });

const pointSchema = z
  .object({
    run_id: z.string(),
    ts: time.openapi({ description: 'When the run ran.' }),
    window_from: time,
    window_to: time,
    reference_id: z.string().nullable(),
    method: z.string().openapi({ description: `One of ${methodNames.join(', ')}.` }),
    feature_group: z.string().openapi({ description: "'' for the numeric feature set, else the embedding's name." }),
    n_reference: z.number().int(),
    n_current: z.number().int(),
    statistic: z.number().nullable().openapi({
      description: 'Reconstruction error, ROC AUC, MMD², share of drifted components or mean-vector distance.',
    }),
    p_value: z.number().nullable().openapi({ description: 'Permutation p-value (mmd); null otherwise.' }),
    threshold: z.number().nullable(),
    lower: z.number().nullable().openapi({ description: 'Lower alert band (reconstruction) or AUC interval bound.' }),
    upper: z.number().nullable(),
    drift: z.boolean(),
    params: z.record(z.string(), z.unknown()),
    details: z.record(z.string(), z.unknown()).openapi({
      description: 'Method details: kept components, feature importances, drifted components, distances.',
    }),
  })
  .openapi('MultivariateHistoryPoint');

const historyRoute = createRoute({
  method: 'get',
  path: '/api/v1/models/{name}/multivariate/history',
  summary: 'Stored multivariate and embedding drift results: one point per detect run, method and feature group',
  operationId: 'modelMultivariateHistory',
  security: bearerSecurity,
  request: {
    params: modelNameParams,
    query: z.object({
      ...windowQueryShape,
      method: z.enum(methodNames).optional().openapi({ description: 'Only this method.' }),
      group: z
        .string()
        .optional()
        .openapi({ description: "Only this feature group ('' for the numeric set, else an embedding name)." }),
      limit: z.coerce
        .number()
        .int()
        .min(1)
        .max(MAX_POINTS)
        .default(10_000)
        .openapi({ description: `Most points returned, oldest first (1..${MAX_POINTS}).`, example: 10_000 }),
    }),
  },
  responses: {
    200: jsonResponse(
      z
        .object({
          model: z.string(),
          window: windowSchema,
          points: z.array(pointSchema),
          truncated: z.boolean().openapi({ description: 'True when more results matched than `limit`.' }),
        })
        .openapi('MultivariateHistory'),
    ),
    ...modelErrors,
  },
});

/** `multivariate` of the model health answer: the newest stored result per feature group and method. */
export const healthMultivariateSchema = z
  .array(
    z.object({
      ts: time,
      method: z.string(),
      feature_group: z.string(),
      statistic: z.number().nullable(),
      p_value: z.number().nullable(),
      threshold: z.number().nullable(),
      lower: z.number().nullable(),
      upper: z.number().nullable(),
      drift: z.boolean(),
    }),
  )
  .openapi({
    description: "Newest multivariate result per feature group ('' = numeric set) and method inside the window.",
  });

/** The newest stored multivariate result per (group, method) of `model` with its run inside [fromMs, toMs). */
export async function latestMultivariate(
  store: RuntimeContext['store'],
  model: string,
  fromMs: number,
  toMs: number,
): Promise<z.infer<typeof healthMultivariateSchema>> {
  const rows = await queryRows<Row>(
    store,
    `SELECT argMax(toUnixTimestamp64Milli(ts), ts) AS ts_ms, method, feature_group,
            argMax(statistic, ts) AS statistic, argMax(p_value, ts) AS p_value, argMax(threshold, ts) AS threshold,
            argMax(lower, ts) AS lower, argMax(upper, ts) AS upper, argMax(drift, ts) AS drift
     FROM ${Tables.multivariateResults}
     WHERE model = {model:String} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
     GROUP BY feature_group, method
     ORDER BY feature_group, method`,
    { model, from: toChTime(fromMs), to: toChTime(toMs) },
  );
  return rows.map((r) => ({
    ts: isoTime(Number(r.ts_ms)),
    method: r.method,
    feature_group: r.feature_group,
    statistic: numOrNull(r.statistic),
    p_value: numOrNull(r.p_value),
    threshold: numOrNull(r.threshold),
    lower: numOrNull(r.lower),
    upper: numOrNull(r.upper),
    drift: r.drift === true || Number(r.drift) === 1,
  }));
}

function numOrNull(v: number | string | null): number | null {
  if (v === null) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

interface Row extends Timed {
  run_id: string;
  reference_id: string;
  method: string;
  feature_group: string;
  n_reference: number | string;
  n_current: number | string;
  statistic: number | string | null;
  p_value: number | string | null;
  threshold: number | string | null;
  lower: number | string | null;
  upper: number | string | null;
  drift: number | string | boolean;
  params: string;
  details: string;
}

/**
 * `GET /api/v1/models/{name}/multivariate/history`: the stored multivariate results of a model (nothing is
 * computed), over a `from`/`to` window of the run time (default the last hour, at most `api.maxWindowMs`),
 * optionally one `method` and one feature `group`, oldest first, at most `limit` points.
 */
export function multivariateRoutes(app: ApiApp, ctx: RuntimeContext): void {
  app.openapi(historyRoute, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const found = await historyPage<Row>(
      ctx,
      name,
      q,
      `SELECT run_id, ${TIMES}, reference_id, method, feature_group, n_reference, n_current,
              statistic, p_value, threshold, lower, upper, drift, params, details
       FROM ${Tables.multivariateResults}
       WHERE ${IN_WINDOW}
         ${q.method === undefined ? '' : 'AND method = {method:String}'}
         ${q.group === undefined ? '' : 'AND feature_group = {group:String}'}
       ORDER BY ts, run_id, feature_group, method
       LIMIT {limit:UInt32}`,
      { method: q.method ?? '', group: q.group ?? '' },
    );
    return c.json(
      {
        model: name,
        window: found.window,
        points: found.rows.map((r) => ({
          run_id: r.run_id,
          ...times(r),
          reference_id: r.reference_id === '' ? null : r.reference_id,
          method: r.method,
          feature_group: r.feature_group,
          n_reference: Number(r.n_reference),
          n_current: Number(r.n_current),
          statistic: numOrNull(r.statistic),
          p_value: numOrNull(r.p_value),
          threshold: numOrNull(r.threshold),
          lower: numOrNull(r.lower),
          upper: numOrNull(r.upper),
          drift: r.drift === true || Number(r.drift) === 1,
          params: parseParams(r.params),
          details: parseParams(r.details),
        })),
        truncated: found.truncated,
      },
      200,
    );
  });
}
