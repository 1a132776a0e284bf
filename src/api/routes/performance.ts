import { createRoute, z } from '@hono/zod-openapi';
import { computePerformance } from '../../drift/performance/query.js';
import type { RuntimeContext } from '../../runtime/context.js';
import {
  bearerSecurity,
  jsonResponse,
  modelErrors,
  modelNameParams,
  windowQueryShape,
  windowSchema,
  type ApiApp,
} from '../openapi.js';
import { requireModel } from '../query.js';
import { cappedWindow } from '../window.js';

const performanceSchema = z
  .object({
    model: z.string(),
    window: windowSchema,
    prediction: z
      .record(z.string(), z.unknown())
      .nullable()
      .openapi({ description: 'How the prediction is read from the outputs (task, columns, classes).' }),
    rows: z.number().int().min(0).openapi({ description: 'Prediction rows in the window.' }),
    labelled_rows: z.number().int().min(0).openapi({ description: 'Rows with a usable prediction and a label.' }),
    label_coverage: z.number().nullable(),
    measured: z
      .record(z.string(), z.unknown())
      .nullable()
      .openapi({ description: 'Classification or regression metrics over labelled rows (scikit-learn definitions).' }),
    estimated: z
      .record(z.string(), z.unknown())
      .nullable()
      .openapi({ description: 'CBPE estimate over all rows; null for regression.' }),
  })
  .openapi('Performance');

const performanceRoute = createRoute({
  method: 'get',
  path: '/api/v1/models/{name}/performance',
  summary: 'Measured performance over labelled rows, label coverage, label-free estimate',
  operationId: 'modelPerformance',
  security: bearerSecurity,
  request: { params: modelNameParams, query: z.object(windowQueryShape) },
  responses: { 200: jsonResponse(performanceSchema), ...modelErrors },
});

/**
 * `GET /api/v1/models/{name}/performance?from&to` — measured metrics over the window's labelled rows (newest
 * label per row wins), label coverage, and the label-free CBPE estimate over all rows, reported separately:
 * `{model, window, prediction, rows, labelled_rows, label_coverage, measured, estimated}`. Unknown model → 404;
 * a window wider than `api.maxWindowMs` → 400.
 */
export function performanceRoutes(app: ApiApp, ctx: RuntimeContext): void {
  app.openapi(performanceRoute, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const { fromMs, toMs } = cappedWindow(q.from, q.to, ctx.config.api.maxWindowMs);
    await requireModel(ctx.store, name);
    const schema = ctx.config.models[name];
    const report = await computePerformance(ctx.store, { model: name, fromMs, toMs, ...(schema ? { schema } : {}) });
    return c.json(report, 200);
  });
}
