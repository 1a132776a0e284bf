import { createRoute, z } from '@hono/zod-openapi';
import { ErrorCodes } from '../../common/errors.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { appliedVersions, migrations } from '../../store/migrations.js';
import { ApiError } from '../errors.js';
import { errorResponse, jsonResponse, openApiDocument, type ApiApp } from '../openapi.js';

const healthzRoute = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness',
  operationId: 'healthz',
  responses: { 200: jsonResponse(z.object({ status: z.literal('ok') }), 'Alive') },
});

const readyzRoute = createRoute({
  method: 'get',
  path: '/readyz',
  summary: 'Readiness: store reachable and migrations applied',
  operationId: 'readyz',
  responses: {
    200: jsonResponse(z.object({ status: z.literal('ready') }), 'Ready'),
    503: errorResponse('Not ready: store unreachable or migrations missing.'),
  },
});

const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus exposition of the service metrics',
  operationId: 'metrics',
  responses: {
    200: { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: z.string() } } },
  },
});

const openApiRoute = createRoute({
  method: 'get',
  path: '/openapi.json',
  summary: 'This document',
  operationId: 'openapi',
  responses: { 200: jsonResponse(z.record(z.string(), z.unknown()), 'OpenAPI 3.1') },
});

/** `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json` (open even when a token is set). */
export function systemRoutes(app: ApiApp, ctx: RuntimeContext): void {
  app.openapi(healthzRoute, (c) => c.json({ status: 'ok' as const }, 200));

  app.openapi(readyzRoute, async (c) => {
    if (!(await ctx.store.ping())) throw new ApiError(503, ErrorCodes.storeUnavailable, 'store unavailable');
    let applied: number[];
    try {
      applied = await appliedVersions(ctx.store.with({ role: 'api', timeoutMs: 5_000 }));
    } catch (err) {
      throw new ApiError(503, ErrorCodes.storeUnavailable, 'store unavailable', { cause: err });
    }
    const have = new Set(applied);
    const missing = migrations.filter((m) => !have.has(m.version)).map((m) => m.version);
    if (missing.length > 0) {
      throw new ApiError(503, ErrorCodes.storeUnavailable, `migrations not applied: ${missing.join(', ')}`);
    }
    return c.json({ status: 'ready' as const }, 200);
  });

  app.openapi(metricsRoute, async (c) => {
    const text = await ctx.metrics.metrics();
    return c.text(text, 200, { 'content-type': ctx.metrics.contentType });
  });

  app.openapi(openApiRoute, (c) => c.json(openApiDocument(app) as Record<string, unknown>, 200));
}
