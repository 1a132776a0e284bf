import type { Hono } from 'hono';
import { z } from 'zod';
import { ErrorCodes } from '../../common/errors.js';
import { ingestLabels, labelInputSchema } from '../../ingest/index.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { ApiError, validate } from '../errors.js';

/** Most labels accepted in one request. */
export const MAX_LABELS_PER_REQUEST = 100_000;

/** Body of `POST /api/v1/labels` (DESIGN §2); one label's shape is ingest's {@link labelInputSchema}. */
export const labelsBodySchema = z.strictObject({
  labels: z.array(labelInputSchema).min(1).max(MAX_LABELS_PER_REQUEST),
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
    // Validated here first so every error names its field precisely (`labels.3.row`, unknown keys).
    const parsed = validate(labelsBodySchema, body);
    const accepted = await ingestLabels(ctx.store, parsed.labels);
    return c.json({ accepted }, 202);
  });
}
