import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { matchedRoutes } from 'hono/route';
import { Counter, Histogram, type Registry } from 'prom-client';
import { ErrorCodes } from '../common/errors.js';
import type { RuntimeContext } from '../runtime/context.js';
import { ApiError, errorResponse, toErrorResponse } from './errors.js';
import { routeMounters, type RouteMounter } from './routes/index.js';
import { createOpenApiApp, type ApiApp } from './openapi.js';
import { counterOn, histogramOn } from '../common/metrics.js';
import { uiMiddleware } from '../ui/index.js';

/** Options of {@link createApiApp}. */
export interface ApiAppOptions {
  /** Route groups to mount. @default routeMounters */
  routes?: RouteMounter[];
}

const defaults = { routes: routeMounters } satisfies Required<ApiAppOptions>;

interface HttpMetrics {
  requests: Counter<'route' | 'method' | 'status'>;
  duration: Histogram<'route' | 'method'>;
}

function httpMetrics(registry: Registry): HttpMetrics {
  // One app per registry is the norm; reuse the metrics if another app was built on the same registry.
  const requests = counterOn<'route' | 'method' | 'status'>(registry, {
    name: 'modelwatch_api_requests_total',
    help: 'API requests by matched route, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const duration = histogramOn<'route' | 'method'>(registry, {
    name: 'modelwatch_api_request_duration_seconds',
    help: 'API request duration in seconds by matched route and method.',
    labelNames: ['route', 'method'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return { requests, duration };
}

function metricsMiddleware(m: HttpMetrics): MiddlewareHandler {
  return async (c, next) => {
    const start = process.hrtime.bigint();
    await next();
    // Label by the route template, never the raw path, so cardinality stays bounded.
    const handler = matchedRoutes(c)
      .filter((r) => r.method !== 'ALL')
      .at(-1);
    const route = handler?.path ?? 'unmatched';
    const method = handler === undefined ? 'other' : c.req.method;
    m.requests.inc({ route, method, status: String(c.res.status) });
    m.duration.observe({ route, method }, Number(process.hrtime.bigint() - start) / 1e9);
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function bearerAuth(token: string): MiddlewareHandler {
  const expected = digest(token);
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    // Compare fixed-length digests in constant time so neither content nor length leaks through timing.
    if (!m || !timingSafeEqual(digest((m[1] as string).trim()), expected)) {
      c.header('www-authenticate', 'Bearer realm="modelwatch"');
      throw new ApiError(401, ErrorCodes.unauthorized, 'missing or invalid bearer token');
    }
    await next();
  };
}

const jsonType = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

function requireJson(): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method === 'POST' || c.req.method === 'PUT' || c.req.method === 'PATCH') {
      const type = c.req.header('content-type') ?? '';
      if (!jsonType.test(type)) {
        throw new ApiError(415, ErrorCodes.badRequest, `content-type: expected application/json, got "${type}"`, {
          field: 'content-type',
        });
      }
    }
    await next();
  };
}

/** Reads a JSON body once (hono keeps it for the route's validator), so malformed JSON is a 400 naming `body`. */
function parseJsonBody(): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method === 'POST' || c.req.method === 'PUT' || c.req.method === 'PATCH') {
      try {
        await c.req.json();
      } catch (err) {
        if (err instanceof ApiError) throw err;
        throw new ApiError(400, ErrorCodes.badRequest, 'body: not valid JSON', { field: 'body', cause: err });
      }
    }
    await next();
  };
}

/**
 * Builds the API app: system routes, `/api/v1/*` with optional bearer auth, JSON-only bodies
 * capped at `config.api.maxBodyBytes`, HTTP metrics on `ctx.metrics`, and JSON errors everywhere. Routes declared
 * with `app.openapi()` validate their inputs with their zod schemas (a failure is a 400 naming the field) and
 * are listed in the OpenAPI document served at `/openapi.json`.
 */
export function createApiApp(ctx: RuntimeContext, options: ApiAppOptions = {}): ApiApp {
  const opts = { ...defaults, ...options };
  const maxBody = ctx.config.api.maxBodyBytes;
  if (!(Number.isInteger(maxBody) && maxBody > 0)) throw new RangeError('api.maxBodyBytes must be a positive integer');
  const app = createOpenApiApp();
  app.use('*', metricsMiddleware(httpMetrics(ctx.metrics)));
  // The web UI (`/`, `/ui/*`): static GETs outside /api/v1 and the token; middleware, so not an API operation.
  app.use('*', uiMiddleware());
  const token = ctx.config.api.token;
  if (token !== undefined && token !== '') app.use('/api/v1/*', bearerAuth(token));
  app.use('/api/v1/*', requireJson());
  app.use(
    '/api/v1/*',
    bodyLimit({
      maxSize: maxBody,
      onError: (c) => errorResponse(c, 413, ErrorCodes.payloadTooLarge, `body: larger than ${maxBody} bytes`),
    }),
  );
  app.use('/api/v1/*', parseJsonBody());
  for (const mount of opts.routes) mount(app, ctx);
  app.notFound((c) => errorResponse(c, 404, ErrorCodes.notFound, `no route for ${c.req.method} ${c.req.path}`));
  app.onError((err, c) => toErrorResponse(err, c, ctx.logger));
  return app;
}
