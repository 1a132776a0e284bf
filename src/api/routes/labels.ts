import { createRoute, z } from '@hono/zod-openapi';
import { ingestLabels, labelInputSchema } from '../../ingest/index.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { bearerSecurity, errorResponse, jsonResponse, protectedErrors, type ApiApp } from '../openapi.js';

/** Most labels accepted in one request. */
export const MAX_LABELS_PER_REQUEST = 100_000;

/** Body of `POST /api/v1/labels`; one label's shape is ingest's {@link labelInputSchema}. */
export const labelsBodySchema = z
  .strictObject({
    labels: z.array(labelInputSchema).min(1).max(MAX_LABELS_PER_REQUEST),
  })
  .openapi('LabelsRequest', {
    example: {
      labels: [
        { request_id: 'req-1', label: 'setosa' },
        { request_id: 'req-2', row: 3, label: 1 },
      ],
    },
  });

const labelsRoute = createRoute({
  method: 'post',
  path: '/api/v1/labels',
  summary: 'Post ground-truth labels; joined to predictions by request id and row',
  operationId: 'postLabels',
  security: bearerSecurity,
  request: { body: { required: true, content: { 'application/json': { schema: labelsBodySchema } } } },
  responses: {
    202: jsonResponse(z.object({ accepted: z.number().int().min(0) }).openapi('LabelsAccepted'), 'Accepted'),
    ...protectedErrors,
    413: errorResponse('Body larger than api.maxBodyBytes.'),
    415: errorResponse('Body is not JSON.'),
  },
});

/** `POST /api/v1/labels` → `202 {"accepted":N}`. */
export function labelRoutes(app: ApiApp, ctx: RuntimeContext): void {
  app.openapi(labelsRoute, async (c) => {
    const { labels } = c.req.valid('json');
    const accepted = await ingestLabels(ctx.store, labels);
    return c.json({ accepted }, 202);
  });
}
