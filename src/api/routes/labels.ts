import type { Hono } from 'hono';
import { z } from 'zod';
import { ErrorCodes } from '../../common/errors.js';
import type { RuntimeContext } from '../../runtime/context.js';
import type { LabelRow } from '../../store/rows.js';
import { ApiError, validate } from '../errors.js';

/** Most labels accepted in one request. */
export const MAX_LABELS_PER_REQUEST = 100_000;

/** Body of `POST /api/v1/labels` (DESIGN §2). */
export const labelsBodySchema = z.strictObject({
  labels: z
    .array(
      z.strictObject({
        request_id: z.string().min(1).max(512),
        row: z.number().int().min(0).max(0xffff_ffff).default(0),
        label: z.union([z.string().max(4096), z.number(), z.boolean()]),
      }),
    )
    .min(1)
    .max(MAX_LABELS_PER_REQUEST),
});

/** `POST /api/v1/labels` → `202 {"accepted":N}`. */
export function labelRoutes(app: Hono, ctx: RuntimeContext): void {
  app.post('/api/v1/labels', async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw new ApiError(400, ErrorCodes.badRequest, 'body: not valid JSON', { field: 'body', cause: err });
    }
    const parsed = validate(labelsBodySchema, body);
    const rows: LabelRow[] = parsed.labels.map((l) => ({ request_id: l.request_id, row: l.row, label: String(l.label) }));
    // TODO(ingest): switch to `ingestLabels` from src/ingest/index.ts once it exists.
    await ctx.store.insertLabels(rows);
    return c.json({ accepted: rows.length }, 202);
  });
}
