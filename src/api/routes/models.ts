import { createRoute, z } from '@hono/zod-openapi';
import type { RuntimeContext } from '../../runtime/context.js';
import { Tables } from '../../store/migrations.js';
import {
  bearerSecurity,
  jsonResponse,
  modelErrors,
  modelNameParams,
  protectedErrors,
  windowQueryShape,
  type ApiApp,
} from '../openapi.js';
import { isoTime, queryRows, requireModel } from '../query.js';
import { cappedWindow } from '../window.js';

/** Largest `limit` of the predictions route. */
export const MAX_PREDICTIONS_LIMIT = 10_000;

/** Per-model totals, fed by materialized views on the requests and predictions tables (migration 4). */
export const MODEL_SUMMARY_TABLE = 'mw_model_summary';

interface ModelRow {
  name: string;
  version_list: string[];
  first_ms: number;
  last_ms: number;
  total_requests: number;
  total_rows: number;
}

interface PredictionDbRow {
  request_id: string;
  row: number;
  ts_ms: number;
  version: string;
  features_num: Record<string, number | string | null>;
  features_cat: Record<string, string>;
  outputs_num: Record<string, number | string | null>;
  outputs_cat: Record<string, string>;
  label: string | null;
}

const modelSchema = z
  .object({
    name: z.string(),
    versions: z.array(z.string()).openapi({ description: 'Non-empty versions seen, sorted.' }),
    first_seen: z.string().openapi({ format: 'date-time' }),
    last_seen: z.string().openapi({ format: 'date-time' }),
    requests: z.number().int().min(0),
    rows: z.number().int().min(0),
  })
  .openapi('Model');

const valueMap = z.record(z.string(), z.union([z.number(), z.string(), z.null()]));

const predictionSchema = z
  .object({
    request_id: z.string(),
    row: z.number().int().min(0),
    ts: z.string().openapi({ format: 'date-time' }),
    version: z.string(),
    features: valueMap.openapi({
      description: 'Numeric and categorical features by name; non-finite numbers are null.',
    }),
    outputs: valueMap.openapi({ description: 'Outputs by name; non-finite numbers are null.' }),
    label: z.string().nullable().openapi({ description: 'Latest label posted for this row, or null.' }),
  })
  .openapi('Prediction');

const listModelsRoute = createRoute({
  method: 'get',
  path: '/api/v1/models',
  summary: 'Models seen in stored traffic',
  operationId: 'listModels',
  security: bearerSecurity,
  responses: { 200: jsonResponse(z.object({ models: z.array(modelSchema) }).openapi('ModelList')), ...protectedErrors },
});

const listPredictionsRoute = createRoute({
  method: 'get',
  path: '/api/v1/models/{name}/predictions',
  summary: 'Stored prediction rows, newest first, with their labels',
  operationId: 'listPredictions',
  security: bearerSecurity,
  request: {
    params: modelNameParams,
    query: z.object({
      ...windowQueryShape,
      limit: z.coerce
        .number()
        .int()
        .min(1)
        .max(MAX_PREDICTIONS_LIMIT)
        .optional()
        .openapi({ description: 'Most rows returned.', default: 100, example: 100 }),
      version: z.string().optional().openapi({ description: 'Only rows of this model version.' }),
    }),
  },
  responses: {
    200: jsonResponse(z.object({ predictions: z.array(predictionSchema) }).openapi('PredictionList')),
    ...modelErrors,
  },
});

// JSON has no NaN/Infinity: whatever ClickHouse printed for them (null or a quoted word) becomes null.
function finiteOrNull(map: Record<string, number | string | null>): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(map)) out[k] = typeof v === 'number' && Number.isFinite(v) ? v : null;
  return out;
}

/**
 * `GET /api/v1/models` (from the summary table: a few partial-aggregate rows per model, merged at read) and
 * `GET /api/v1/models/{name}/predictions` (one capped window, one page).
 */
export function modelRoutes(app: ApiApp, ctx: RuntimeContext): void {
  app.openapi(listModelsRoute, async (c) => {
    // A model exists once it answered a call (2xx) or has prediction rows: 404s to an unknown name do not count.
    const rows = await queryRows<ModelRow>(
      ctx.store,
      `SELECT model AS name, arraySort(arrayFilter(v -> v != '', groupUniqArrayMerge(versions))) AS version_list,
              toUnixTimestamp64Milli(min(first_ts)) AS first_ms, toUnixTimestamp64Milli(max(last_ts)) AS last_ms,
              sum(requests) AS total_requests, sum(rows) AS total_rows
       FROM ${MODEL_SUMMARY_TABLE}
       GROUP BY model
       HAVING sum(rows) > 0 OR model IN (SELECT model FROM ${Tables.answeredModels})
       ORDER BY model`,
    );
    return c.json(
      {
        models: rows.map((r) => ({
          name: r.name,
          versions: r.version_list,
          first_seen: isoTime(Number(r.first_ms)),
          last_seen: isoTime(Number(r.last_ms)),
          requests: Number(r.total_requests),
          rows: Number(r.total_rows),
        })),
      },
      200,
    );
  });

  app.openapi(listPredictionsRoute, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const { fromMs, toMs } = cappedWindow(q.from, q.to, ctx.config.api.maxWindowMs);
    // Half-open [from, to), like the drift, performance and health windows.
    const versionFilter = q.version === undefined ? '' : 'AND version = {version:String}';
    const window = `model = {model:String}
        AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
        ${versionFilter}`;
    // The label lookup is restricted to the page's request ids (the labels table is ordered by
    // (request_id, row), so this is an index lookup); joining over the whole window cost ~0.4 s per 100k rows.
    const rows = await queryRows<PredictionDbRow>(
      ctx.store,
      `WITH page AS (
         SELECT request_id, row, ts, version, features_num, features_cat, outputs_num, outputs_cat
         FROM ${Tables.predictions} FINAL
         WHERE ${window}
         ORDER BY ts DESC, request_id, row
         LIMIT {limit:UInt32}
       )
       SELECT p.request_id AS request_id, p.row AS row, toUnixTimestamp64Milli(p.ts) AS ts_ms, toString(p.version) AS version,
              p.features_num AS features_num, p.features_cat AS features_cat,
              p.outputs_num AS outputs_num, p.outputs_cat AS outputs_cat, l.label AS label
       FROM page AS p
       LEFT JOIN (
         SELECT request_id, row, argMax(label, received_at) AS label
         FROM ${Tables.labels}
         WHERE request_id IN (SELECT request_id FROM page)
         GROUP BY request_id, row
       ) AS l ON p.request_id = l.request_id AND p.row = l.row
       ORDER BY p.ts DESC, p.request_id, p.row`,
      {
        model: name,
        from: fromMs,
        to: toMs,
        limit: q.limit ?? 100,
        ...(q.version !== undefined ? { version: q.version } : {}),
      },
      // Unmatched LEFT JOIN columns become NULL instead of '' so "no label" is distinguishable.
      { join_use_nulls: 1 },
    );
    // Existence only matters when the page is empty (404 for an unknown model, [] for a quiet one).
    if (rows.length === 0) await requireModel(ctx.store, name);
    return c.json(
      {
        predictions: rows.map((r) => ({
          request_id: r.request_id,
          row: Number(r.row),
          ts: isoTime(Number(r.ts_ms)),
          version: r.version,
          features: { ...finiteOrNull(r.features_num), ...r.features_cat },
          outputs: { ...finiteOrNull(r.outputs_num), ...r.outputs_cat },
          label: r.label,
        })),
      },
      200,
    );
  });
}
