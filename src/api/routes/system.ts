import type { Hono } from 'hono';
import { ErrorCodes } from '../../common/errors.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { appliedVersions, migrations } from '../../store/migrations.js';
import { ApiError } from '../errors.js';
import { openApiDocument } from '../openapi.js';

/** `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json` (open even when a token is set). */
export function systemRoutes(app: Hono, ctx: RuntimeContext): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
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
    return c.json({ status: 'ready' });
  });

  app.get('/metrics', async (c) => {
    const text = await ctx.metrics.metrics();
    return c.body(text, 200, { 'content-type': ctx.metrics.contentType });
  });

  app.get('/openapi.json', (c) => c.json(openApiDocument));
}
