import { createRoute, z } from '@hono/zod-openapi';
import { ErrorCodes } from '../../common/errors.js';
import { DriftMethods } from '../../config/schema.js';
import { detectDrift, type ReferenceChoice, type SegmentBy } from '../../drift/index.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { ApiError } from '../errors.js';
import {
  bearerSecurity,
  jsonResponse,
  modelErrors,
  modelNameParams,
  timeParam,
  windowQueryShape,
  windowSchema,
  type ApiApp,
} from '../openapi.js';
import { requireModel } from '../query.js';
import { cappedWindow } from '../window.js';

const driftQuery = z.object({
  ...windowQueryShape,
  reference_from: timeParam('Reference window start (with `reference_to`).'),
  reference_to: timeParam('Reference window end (with `reference_from`).'),
  reference_id: z.string().min(1).optional().openapi({
    description:
      'A stored reference id (instead of reference_from/reference_to). Default: the newest stored reference, else the first hour of traffic.',
  }),
  segment_by: z
    .string()
    .regex(/^(?:version|feature:.+)$/, 'expected version or feature:<name>')
    .optional()
    .openapi({
      description: 'Also report drift per segment: `version`, or `feature:<name>` for a categorical feature.',
    }),
});

/** One feature's verdict in a drift report. */
export const featureDriftSchema = z
  .object({
    name: z.string(),
    kind: z.enum(['numeric', 'categorical']),
    output: z.boolean().optional().openapi({ description: 'True for model outputs (prediction drift).' }),
    method: z.enum(DriftMethods),
    score: z.number().nullable().openapi({ description: "The method's value; null when a side has no usable values." }),
    threshold: z.number(),
    drifted: z.boolean(),
    stats: z.record(z.string(), z.unknown()).openapi({ description: 'Every method computed for the feature.' }),
    quality: z
      .record(z.string(), z.unknown())
      .openapi({ description: 'Missing, non-finite, out-of-range and unseen counts.' }),
  })
  .openapi('FeatureDrift');

const driftReportSchema = z
  .object({
    model: z.string(),
    window: windowSchema,
    reference: z
      .object({ rows: z.number().int() })
      .openapi({ description: 'Where the reference came from and its row count.' }),
    current: z.object({ rows: z.number().int() }),
    features: z.array(featureDriftSchema),
    dataset: z.object({
      features: z.number().int(),
      drifted_features: z.number().int(),
      share: z.number(),
      share_threshold: z.number(),
      drifted: z.boolean(),
    }),
    quality: z.object({
      quarantined: z.number().int(),
      quarantined_by_code: z.record(z.string(), z.number()),
      volume: z.object({
        current_rows: z.number().int(),
        expected_rows: z.number().nullable(),
        ratio: z.number().nullable(),
        drop: z.boolean(),
      }),
    }),
    segments: z
      .array(
        z.object({
          by: z.enum(['version', 'feature']),
          feature: z.string().optional(),
          value: z.string(),
          report: z.record(z.string(), z.unknown()),
        }),
      )
      .optional(),
  })
  .openapi('DriftReport', {
    description: 'Same shape as `modelwatch report`, plus the model, window and window quality.',
  });

const driftRoute = createRoute({
  method: 'get',
  path: '/api/v1/models/{name}/drift',
  summary: 'Drift of the window against the reference',
  operationId: 'modelDrift',
  security: bearerSecurity,
  request: { params: modelNameParams, query: driftQuery },
  responses: { 200: jsonResponse(driftReportSchema), ...modelErrors },
});

function segmentOf(value: string | undefined): SegmentBy | undefined {
  if (value === undefined) return undefined;
  return value === 'version' ? 'version' : { feature: value.slice('feature:'.length) };
}

/**
 * `GET /api/v1/models/{name}/drift?from&to&reference_from&reference_to` — the drift report of the window
 * (default: the last hour) against the reference (default: the model's stored reference, else the first
 * hour of its traffic), in the same JSON shape as `modelwatch report` plus context keys (`model`,
 * `window`, `quality`, optional `segments` with `segment_by`). Both windows are capped at `api.maxWindowMs`.
 */
export function driftRoutes(app: ApiApp, ctx: RuntimeContext): void {
  app.openapi(driftRoute, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const maxWindowMs = ctx.config.api.maxWindowMs;
    const { fromMs, toMs } = cappedWindow(q.from, q.to, maxWindowMs);
    if ((q.reference_from === undefined) !== (q.reference_to === undefined)) {
      const field = q.reference_from === undefined ? 'reference_from' : 'reference_to';
      throw new ApiError(400, ErrorCodes.badRequest, `${field}: reference_from and reference_to go together`, {
        field,
      });
    }
    if (q.reference_id !== undefined && q.reference_from !== undefined) {
      throw new ApiError(
        400,
        ErrorCodes.badRequest,
        'reference_id: give either reference_id or reference_from/reference_to',
        {
          field: 'reference_id',
        },
      );
    }
    let reference: ReferenceChoice | undefined;
    if (q.reference_id !== undefined) reference = { id: q.reference_id };
    else if (q.reference_from !== undefined && q.reference_to !== undefined) {
      const ref = cappedWindow(q.reference_from, q.reference_to, maxWindowMs, {
        from: 'reference_from',
        to: 'reference_to',
      });
      reference = { from: ref.fromMs, to: ref.toMs };
    }
    await requireModel(ctx.store, name);
    const report = await detectDrift(ctx.store, {
      model: name,
      from: fromMs,
      to: toMs,
      reference,
      config: ctx.config,
      segmentBy: segmentOf(q.segment_by),
    });
    return c.json(report, 200);
  });
}
