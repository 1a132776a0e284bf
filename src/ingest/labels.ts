import { z } from 'zod';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { Tables } from '../store/migrations.js';
import type { LabelRow, PredictionRow } from '../store/rows.js';
import type { Store } from '../store/store.js';

/** One label as posted to `POST /api/v1/labels`. */
export const labelInputSchema = z.strictObject({
  request_id: z.string().min(1).max(512),
  /** Row within the request batch. */
  row: z.number().int().min(0).max(4_294_967_295).default(0),
  /** The ground truth: a class name, a number or a boolean; stored as text. */
  label: z.union([z.string().max(4096), z.number().refine(Number.isFinite, 'must be finite'), z.boolean()]),
});

/** The accepted label list (at most 100k labels per call). */
export const labelsInputSchema = z.array(labelInputSchema).max(100_000);

/** A label as accepted by {@link ingestLabels}. */
export type LabelInput = z.input<typeof labelInputSchema>;

/**
 * Validates and stores labels. Unknown request ids are kept: labels join predictions at query time
 * (the labels table is a ReplacingMergeTree on `(request_id, row)`, newest wins), so a label may arrive
 * before or after its prediction. Throws `bad_request` naming the offending field, e.g. `labels.3.row`.
 * Returns the number of labels accepted.
 */
export async function ingestLabels(store: Store, labels: unknown): Promise<number> {
  const parsed = labelsInputSchema.safeParse(labels);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = ['labels', ...(issue?.path ?? []).map(String)].join('.');
    throw new ModelwatchError(ErrorCodes.badRequest, `${field}: ${issue?.message ?? 'invalid'}`, { field });
  }
  const rows: LabelRow[] = parsed.data.map((l) => ({ request_id: l.request_id, row: l.row, label: String(l.label) }));
  await store.insertLabels(rows);
  return rows.length;
}

/** Query of {@link queryLabelledRows}. */
export interface LabelledRowsQuery {
  model: string;
  /** Window start, epoch ms (inclusive). */
  fromMs: number;
  /** Window end, epoch ms (inclusive). */
  toMs: number;
  /** Only this version. @default all versions */
  version?: string | undefined;
  /** Only rows that have a label. @default false */
  labelledOnly?: boolean;
  /** @default 1000 */
  limit?: number;
}

/** A stored prediction row with its label (`null` while none arrived). */
export interface LabelledRow extends PredictionRow {
  label: string | null;
}

/**
 * The SQL joining predictions with their newest label, for modules that write their own queries.
 * Parameters: `model` String, `from`/`to` Int64 epoch ms, `version` String ('' = all), `limit` UInt32.
 * `FINAL` collapses rows a re-delivered insert may have duplicated before a merge.
 */
export function labelledRowsSql(options: { labelledOnly?: boolean } = {}): string {
  return `SELECT p.model AS model, p.version AS version, toUnixTimestamp64Milli(p.ts) AS ts_ms, p.event_id AS event_id,
      p.request_id AS request_id, p.row AS row, p.features_num AS features_num, p.features_cat AS features_cat,
      p.outputs_num AS outputs_num, p.outputs_cat AS outputs_cat, l.label AS label
    FROM ${Tables.predictions} AS p FINAL
    ${options.labelledOnly === true ? 'INNER' : 'LEFT'} JOIN (
      SELECT request_id, row, argMax(label, received_at) AS label FROM ${Tables.labels} GROUP BY request_id, row
    ) AS l ON l.request_id = p.request_id AND l.row = p.row
    WHERE p.model = {model:String}
      AND p.ts BETWEEN fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND fromUnixTimestamp64Milli({to:Int64}, 'UTC')
      AND ({version:String} = '' OR p.version = {version:String})
    ORDER BY p.ts DESC, p.request_id, p.row
    LIMIT {limit:UInt32}
    SETTINGS join_use_nulls = 1`;
}

/** Stored predictions of a model in a window, newest first, each with its label or `null`. */
export async function queryLabelledRows(store: Store, query: LabelledRowsQuery): Promise<LabelledRow[]> {
  const limit = query.limit ?? 1000;
  if (!(Number.isInteger(limit) && limit > 0)) throw new RangeError('limit must be a positive integer');
  const rows = await store.query<Omit<LabelledRow, 'ts'> & { ts_ms: number | string }>(
    labelledRowsSql({ labelledOnly: query.labelledOnly ?? false }),
    {
      label: 'labelled rows query',
      params: { model: query.model, from: query.fromMs, to: query.toMs, version: query.version ?? '', limit },
    },
  );
  return rows.map(({ ts_ms, ...r }) => ({ ...r, ts: Number(ts_ms), row: Number(r.row) }));
}
