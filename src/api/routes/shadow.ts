import { createRoute, z } from '@hono/zod-openapi';
import { ErrorCodes } from '../../common/errors.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { shadowServiceOf } from '../../shadow/service.js';
import { ApiError } from '../errors.js';
import { bearerSecurity, errorResponse, jsonResponse, protectedErrors, type ApiApp } from '../openapi.js';

const runBodySchema = z
  .strictObject({
    model: z.string().min(1),
    candidate: z
      .string()
      .min(1)
      .optional()
      .openapi({ description: 'File name of a .onnx model inside shadow.modelDir (no paths).' }),
    candidate_base64: z
      .string()
      .min(1)
      .optional()
      .openapi({ description: 'The candidate model uploaded as base64 (at most shadow.maxUploadBytes decoded).' }),
    candidate_name: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .openapi({ description: 'Display name of an uploaded candidate.' }),
    from: z.string().datetime({ offset: true }).optional(),
    to: z.string().datetime({ offset: true }).optional(),
    limit: z.number().int().positive().optional(),
    sample: z.number().gt(0).max(1).optional(),
  })
  .openapi('ShadowRunRequest', { example: { model: 'iris', candidate: 'iris-v2.onnx', limit: 10000 } });

const runViewSchema = z
  .object({
    id: z.string(),
    model: z.string(),
    candidate: z.string(),
    status: z.enum(['running', 'done', 'failed']),
    progress: z.number().openapi({ description: 'Fraction of the calls in range read so far (0–1).' }),
    rows: z.number().int(),
    skipped: z.number().int(),
    created_at: z.string(),
    updated_at: z.string(),
    execution_provider: z.string(),
    agreement: z.number().nullable(),
    verdict: z.enum(['promote', 'hold', 'reject']).nullable(),
    reasons: z.array(z.string()),
    error: z.string().nullable(),
    result: z.record(z.string(), z.unknown()).nullable().openapi({
      description: 'The full comparison report once done (same JSON as `modelwatch shadow --format json`).',
    }),
  })
  .openapi('ShadowRun');

const startRoute = createRoute({
  method: 'post',
  path: '/api/v1/shadow/runs',
  summary: 'Start a shadow replay of stored traffic through a candidate model (asynchronous)',
  operationId: 'startShadowRun',
  security: bearerSecurity,
  request: { body: { required: true, content: { 'application/json': { schema: runBodySchema } } } },
  responses: {
    202: jsonResponse(
      z.object({ id: z.string() }).openapi('ShadowRunStarted'),
      'Run started; poll GET /api/v1/shadow/runs/{id}',
    ),
    ...protectedErrors,
    404: errorResponse('Candidate not found in shadow.modelDir.'),
    413: errorResponse('Body or uploaded candidate too large.'),
  },
});

const getRoute = createRoute({
  method: 'get',
  path: '/api/v1/shadow/runs/{id}',
  summary: 'A shadow run: progress while running, the comparison and verdict once done',
  operationId: 'getShadowRun',
  security: bearerSecurity,
  request: {
    params: z.object({
      id: z
        .string()
        .min(1)
        .openapi({ param: { name: 'id', in: 'path' } }),
    }),
  },
  responses: { 200: jsonResponse(runViewSchema), ...protectedErrors, 404: errorResponse('Unknown run.') },
});

const listRoute = createRoute({
  method: 'get',
  path: '/api/v1/shadow/runs',
  summary: 'Shadow runs, newest first (without the full reports)',
  operationId: 'listShadowRuns',
  security: bearerSecurity,
  request: { query: z.object({ model: z.string().min(1).optional() }) },
  responses: {
    200: jsonResponse(z.object({ runs: z.array(runViewSchema) }).openapi('ShadowRuns')),
    ...protectedErrors,
  },
});

function ms(s: string | undefined, field: string): number | undefined {
  if (s === undefined) return undefined;
  const v = Date.parse(s);
  if (Number.isNaN(v)) throw new ApiError(400, ErrorCodes.badRequest, `${field}: not an ISO 8601 time`, { field });
  return v;
}

/** `POST /api/v1/shadow/runs`, `GET /api/v1/shadow/runs/{id}`, `GET /api/v1/shadow/runs?model=`. */
export function shadowRoutes(app: ApiApp, ctx: RuntimeContext): void {
  const service = shadowServiceOf(ctx);
  app.openapi(startRoute, async (c) => {
    const b = c.req.valid('json');
    if ((b.candidate === undefined) === (b.candidate_base64 === undefined)) {
      throw new ApiError(400, ErrorCodes.badRequest, 'give exactly one of candidate and candidate_base64', {
        field: 'candidate',
      });
    }
    const upload =
      b.candidate_base64 === undefined
        ? undefined
        : { bytes: new Uint8Array(Buffer.from(b.candidate_base64, 'base64')), name: b.candidate_name ?? 'upload.onnx' };
    const id = await service.start({
      model: b.model,
      candidate: b.candidate,
      upload,
      fromMs: ms(b.from, 'from'),
      toMs: ms(b.to, 'to'),
      limit: b.limit,
      sample: b.sample,
    });
    return c.json({ id }, 202);
  });
  app.openapi(getRoute, async (c) => {
    const { id } = c.req.valid('param');
    const run = await service.get(id);
    if (!run) throw new ApiError(404, ErrorCodes.notFound, `no shadow run ${id}`, { field: 'id' });
    return c.json(run as never, 200);
  });
  app.openapi(listRoute, async (c) => {
    const { model } = c.req.valid('query');
    return c.json({ runs: (await service.list(model)) as never[] }, 200);
  });
}
