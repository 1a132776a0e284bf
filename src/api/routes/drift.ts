import type { Hono } from 'hono';
import { z } from 'zod';
import { ErrorCodes } from '../../common/errors.js';
import { resolveWindow } from '../../common/time.js';
import { detectDrift, type ReferenceChoice, type SegmentBy } from '../../drift/index.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { ApiError, validate } from '../errors.js';
import { requireModel } from '../query.js';

const driftQuery = z.object({
  from: z.string().optional(),
  to: z.string().optional(),
  reference_from: z.string().optional(),
  reference_to: z.string().optional(),
  /** A stored reference id (from `createReference`). */
  reference_id: z.string().min(1).optional(),
  /** `version`, or `feature:<name>` for a categorical feature. */
  segment_by: z
    .string()
    .regex(/^(?:version|feature:.+)$/, 'expected version or feature:<name>')
    .optional(),
});

function segmentOf(value: string | undefined): SegmentBy | undefined {
  if (value === undefined) return undefined;
  return value === 'version' ? 'version' : { feature: value.slice('feature:'.length) };
}

/**
 * `GET /api/v1/models/{name}/drift?from&to&reference_from&reference_to` — the drift report of the window
 * (default: the last hour) against the reference (default: the model's stored reference, else the first
 * hour of its traffic), in the same JSON shape as `modelwatch report` plus context keys (`model`,
 * `window`, `quality`, optional `segments` with `segment_by`).
 */
export function driftRoutes(app: Hono, ctx: RuntimeContext): void {
  app.get('/api/v1/models/:name/drift', async (c) => {
    const name = c.req.param('name');
    const q = validate(driftQuery, c.req.query());
    const { fromMs, toMs } = resolveWindow(q.from, q.to);
    if ((q.reference_from === undefined) !== (q.reference_to === undefined)) {
      const field = q.reference_from === undefined ? 'reference_from' : 'reference_to';
      throw new ApiError(400, ErrorCodes.badRequest, `${field}: reference_from and reference_to go together`, { field });
    }
    if (q.reference_id !== undefined && q.reference_from !== undefined) {
      throw new ApiError(400, ErrorCodes.badRequest, 'reference_id: give either reference_id or reference_from/reference_to', {
        field: 'reference_id',
      });
    }
    await requireModel(ctx.store, name);
    let reference: ReferenceChoice | undefined;
    if (q.reference_id !== undefined) reference = { id: q.reference_id };
    else if (q.reference_from !== undefined && q.reference_to !== undefined) reference = { from: q.reference_from, to: q.reference_to };
    const report = await detectDrift(ctx.store, {
      model: name,
      from: fromMs,
      to: toMs,
      reference,
      config: ctx.config,
      segmentBy: segmentOf(q.segment_by),
    });
    return c.json(report);
  });
}
