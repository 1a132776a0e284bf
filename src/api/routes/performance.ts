import type { Hono } from 'hono';
import { z } from 'zod';
import { resolveWindow } from '../../common/time.js';
import { computePerformance } from '../../drift/performance/query.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { validate } from '../errors.js';
import { requireModel } from '../query.js';

const windowQuery = z.object({ from: z.string().optional(), to: z.string().optional() });

/**
 * `GET /api/v1/models/{name}/performance?from&to` — measured metrics over the window's labelled rows (newest
 * label per row wins), label coverage, and the label-free CBPE estimate over all rows, reported separately:
 * `{model, window, prediction, rows, labelled_rows, label_coverage, measured, estimated}`. Unknown model → 404.
 */
export function performanceRoutes(app: Hono, ctx: RuntimeContext): void {
  app.get('/api/v1/models/:name/performance', async (c) => {
    const name = c.req.param('name');
    const q = validate(windowQuery, c.req.query());
    const { fromMs, toMs } = resolveWindow(q.from, q.to);
    await requireModel(ctx.store, name);
    const schema = ctx.config.models[name];
    const report = await computePerformance(ctx.store, { model: name, fromMs, toMs, ...(schema ? { schema } : {}) });
    return c.json(report);
  });
}
