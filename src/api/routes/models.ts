import type { Hono } from 'hono';
import { z } from 'zod';
import { resolveWindow } from '../../common/time.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { Tables } from '../../store/migrations.js';
import { validate } from '../errors.js';
import { isoTime, queryRows, requireModel } from '../query.js';

/** Largest `limit` of the predictions route. */
export const MAX_PREDICTIONS_LIMIT = 10_000;

interface ModelRow {
  name: string;
  versions: string[];
  first_ms: number;
  last_ms: number;
  requests: number;
  rows: number;
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

const predictionsQuery = z.object({
  from: z.string().optional(),
  to: z.string().optional(),
  limit: z
    .string()
    .regex(/^\d+$/, 'expected an integer')
    .transform(Number)
    .pipe(z.number().int().min(1).max(MAX_PREDICTIONS_LIMIT))
    .optional(),
  version: z.string().optional(),
});

// JSON has no NaN/Infinity: whatever ClickHouse printed for them (null or a quoted word) becomes null.
function finiteOrNull(map: Record<string, number | string | null>): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(map)) out[k] = typeof v === 'number' && Number.isFinite(v) ? v : null;
  return out;
}

/** `GET /api/v1/models` and `GET /api/v1/models/{name}/predictions`. */
export function modelRoutes(app: Hono, ctx: RuntimeContext): void {
  app.get('/api/v1/models', async (c) => {
    const rows = await queryRows<ModelRow>(
      ctx.store,
      `SELECT model AS name, arraySort(groupUniqArrayArray(vs)) AS versions,
              toUnixTimestamp64Milli(min(f)) AS first_ms, toUnixTimestamp64Milli(max(l)) AS last_ms,
              sum(r) AS requests, sum(p) AS rows
       FROM (
         SELECT model, groupUniqArrayIf(toString(version), version != '') AS vs, min(ts) AS f, max(ts) AS l,
                count() AS r, toUInt64(0) AS p
         FROM ${Tables.requests} GROUP BY model
         UNION ALL
         SELECT model, groupUniqArrayIf(toString(version), version != '') AS vs, min(ts) AS f, max(ts) AS l,
                toUInt64(0) AS r, count() AS p
         FROM ${Tables.predictions} GROUP BY model
       )
       GROUP BY model ORDER BY model`,
    );
    return c.json({
      models: rows.map((r) => ({
        name: r.name,
        versions: r.versions,
        first_seen: isoTime(Number(r.first_ms)),
        last_seen: isoTime(Number(r.last_ms)),
        requests: Number(r.requests),
        rows: Number(r.rows),
      })),
    });
  });

  app.get('/api/v1/models/:name/predictions', async (c) => {
    const name = c.req.param('name');
    const q = validate(predictionsQuery, c.req.query());
    const { fromMs, toMs } = resolveWindow(q.from, q.to);
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
      { model: name, from: fromMs, to: toMs, limit: q.limit ?? 100, ...(q.version !== undefined ? { version: q.version } : {}) },
      // Unmatched LEFT JOIN columns become NULL instead of '' so "no label" is distinguishable.
      { join_use_nulls: 1 },
    );
    // Existence only matters when the page is empty (404 for an unknown model, [] for a quiet one).
    if (rows.length === 0) await requireModel(ctx.store, name);
    return c.json({
      predictions: rows.map((r) => ({
        request_id: r.request_id,
        row: Number(r.row),
        ts: isoTime(Number(r.ts_ms)),
        version: r.version,
        features: { ...finiteOrNull(r.features_num), ...r.features_cat },
        outputs: { ...finiteOrNull(r.outputs_num), ...r.outputs_cat },
        label: r.label,
      })),
    });
  });
}
