import { createRoute, z } from '@hono/zod-openapi';
import { AlertStore, renderAlertReport, silenceState, type AlertRecord, type Silence } from '../../alerts/index.js';
import { ErrorCodes } from '../../common/errors.js';
import { parseTime } from '../../common/time.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { ApiError } from '../errors.js';
import { bearerSecurity, errorResponse, jsonResponse, protectedErrors, type ApiApp } from '../openapi.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

const alertSchema = z
  .object({
    id: z.string().openapi({ description: 'Incident id (kept when a flapping alert re-opens).' }),
    fingerprint: z.string().openapi({ description: 'Hash of the label set (rule and labels).' }),
    rule: z.string(),
    model: z.string(),
    severity: z.string(),
    state: z.enum(['pending', 'firing', 'resolved', 'inactive']),
    labels: z.record(z.string(), z.string()),
    annotations: z.record(z.string(), z.string()),
    activeAt: z.string().openapi({ format: 'date-time', description: 'Since when the condition holds.' }),
    startsAt: z.string().nullable().openapi({ format: 'date-time', description: 'When it started firing.' }),
    endsAt: z.string().nullable().openapi({ format: 'date-time' }),
    value: z.number().nullable(),
    flaps: z.number().int(),
    updatedAt: z.string().openapi({ format: 'date-time' }),
  })
  .openapi('Alert');

const evidenceSchema = z
  .object({
    signal: z.string(),
    value: z.number().nullable(),
    comparison: z.string(),
    threshold: z.number().nullable(),
    window: z.object({ from: z.string(), to: z.string() }).optional(),
    reference: z.object({ id: z.string() }).optional(),
    sampleSizes: z.object({ reference: z.number().optional(), current: z.number().optional() }).optional(),
    method: z.string().optional(),
    parameters: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    topFeatures: z.array(z.record(z.string(), z.unknown())).optional(),
    runs: z.array(z.object({ runId: z.string(), ts: z.string(), value: z.number().nullable() })),
  })
  .openapi('AlertEvidence', { description: 'The detector results that made the alert fire.' });

const alertDetailSchema = alertSchema
  .extend({ evidence: evidenceSchema.nullable(), reportUrl: z.string() })
  .openapi('AlertDetail');

const matcherBody = z.object({
  name: z.string().min(1),
  value: z.string(),
  isRegex: z.boolean().optional(),
  isEqual: z.boolean().optional().openapi({ description: '`false` negates the matcher.' }),
});

const silenceBody = z
  .strictObject({
    matchers: z.array(matcherBody).min(1),
    startsAt: z.string().optional().openapi({ description: 'ISO-8601 or epoch ms; default now.' }),
    endsAt: z.string().openapi({ description: 'ISO-8601 or epoch ms.' }),
    comment: z.string().min(1),
    createdBy: z.string().optional(),
  })
  .openapi('SilenceRequest', {
    example: {
      matchers: [{ name: 'model', value: 'fraud' }],
      endsAt: '2030-01-01T14:00:00Z',
      comment: 'retraining',
      createdBy: 'ana',
    },
  });

const silenceSchema = z
  .object({
    id: z.string(),
    matchers: z.array(matcherBody),
    startsAt: z.string(),
    endsAt: z.string(),
    comment: z.string(),
    createdBy: z.string(),
    state: z.enum(['active', 'pending', 'expired']),
  })
  .openapi('Silence');

const idParams = z.object({
  id: z
    .string()
    .min(1)
    .openapi({ param: { name: 'id', in: 'path' }, description: 'Alert or silence id.' }),
});

const listRoute = createRoute({
  method: 'get',
  path: '/api/v1/alerts',
  summary: 'Active and recent alerts',
  operationId: 'listAlerts',
  security: bearerSecurity,
  request: {
    query: z.object({
      state: z
        .enum(['active', 'pending', 'firing', 'resolved'])
        .optional()
        .openapi({ description: '`active` = pending or firing; default: all but inactive.' }),
      model: z.string().optional(),
      limit: z.coerce.number().int().min(1).max(10_000).optional().openapi({ default: 500 }),
    }),
  },
  responses: { 200: jsonResponse(z.object({ alerts: z.array(alertSchema) }).openapi('AlertList')), ...protectedErrors },
});

const getRoute = createRoute({
  method: 'get',
  path: '/api/v1/alerts/{id}',
  summary: 'One alert with its evidence',
  operationId: 'getAlert',
  security: bearerSecurity,
  request: { params: idParams },
  responses: { 200: jsonResponse(alertDetailSchema), ...protectedErrors, 404: errorResponse('No such alert.') },
});

const reportRoute = createRoute({
  method: 'get',
  path: '/api/v1/alerts/{id}/report',
  summary: 'Self-contained HTML page of an alert’s evidence',
  operationId: 'alertReport',
  security: bearerSecurity,
  request: { params: idParams },
  responses: {
    200: { description: 'HTML page', content: { 'text/html': { schema: z.string() } } },
    ...protectedErrors,
    404: errorResponse('No such alert.'),
  },
});

const createSilenceRoute = createRoute({
  method: 'post',
  path: '/api/v1/silences',
  summary: 'Create a silence',
  operationId: 'createSilence',
  security: bearerSecurity,
  request: { body: { required: true, content: { 'application/json': { schema: silenceBody } } } },
  responses: {
    201: jsonResponse(z.object({ id: z.string() }).openapi('SilenceCreated'), 'Created'),
    ...protectedErrors,
  },
});

const listSilencesRoute = createRoute({
  method: 'get',
  path: '/api/v1/silences',
  summary: 'List silences (active, pending and expired)',
  operationId: 'listSilences',
  security: bearerSecurity,
  responses: {
    200: jsonResponse(z.object({ silences: z.array(silenceSchema) }).openapi('SilenceList')),
    ...protectedErrors,
  },
});

const expireSilenceRoute = createRoute({
  method: 'delete',
  path: '/api/v1/silences/{id}',
  summary: 'Expire a silence now',
  operationId: 'expireSilence',
  security: bearerSecurity,
  request: { params: idParams },
  responses: {
    200: jsonResponse(z.object({ id: z.string(), expired: z.literal(true) }).openapi('SilenceExpired')),
    ...protectedErrors,
    404: errorResponse('No such silence, or it had already ended.'),
  },
});

const finite = (v: number): number | null => (Number.isFinite(v) ? v : null);

function alertJson(a: AlertRecord): z.infer<typeof alertSchema> {
  return {
    id: a.id,
    fingerprint: a.fingerprint,
    rule: a.rule,
    model: a.model,
    severity: a.severity,
    state: a.state,
    labels: a.labels,
    annotations: a.annotations,
    activeAt: new Date(a.activeAt).toISOString(),
    startsAt: iso(a.firedAt),
    endsAt: iso(a.resolvedAt),
    value: finite(a.value),
    flaps: a.flaps,
    updatedAt: new Date(a.updatedAt).toISOString(),
  };
}

function silenceJson(s: Silence, now: number): z.infer<typeof silenceSchema> {
  return {
    id: s.id,
    matchers: s.matchers,
    startsAt: new Date(s.startsAt).toISOString(),
    endsAt: new Date(s.endsAt).toISOString(),
    comment: s.comment,
    createdBy: s.createdBy,
    state: silenceState(s, now),
  };
}

function time(value: string, field: string): number {
  // Accepts what parseTime accepts; errors name the field and map to 400.
  return parseTime(value, field);
}

/**
 * Alerts and silences: `GET /api/v1/alerts?state&model`, `GET /api/v1/alerts/{id}` (with evidence),
 * `GET /api/v1/alerts/{id}/report` (HTML), `POST|GET /api/v1/silences`, `DELETE /api/v1/silences/{id}`.
 */
export function alertRoutes(app: ApiApp, ctx: RuntimeContext): void {
  const store = new AlertStore(ctx.store);
  const notFound = (what: string): ApiError => new ApiError(404, ErrorCodes.notFound, `no ${what}`);

  app.openapi(listRoute, async (c) => {
    const q = c.req.valid('query');
    const alerts = await store.listAlerts({ state: q.state, model: q.model, limit: q.limit });
    return c.json({ alerts: alerts.map(alertJson) }, 200);
  });

  app.openapi(getRoute, async (c) => {
    const { id } = c.req.valid('param');
    const a = await store.getAlert(id);
    if (a === undefined || a.state === 'inactive') throw notFound('such alert');
    const evidence =
      a.evidence === null
        ? null
        : { ...a.evidence, value: finite(a.evidence.value), threshold: finite(a.evidence.threshold) };
    return c.json({ ...alertJson(a), evidence, reportUrl: `/api/v1/alerts/${encodeURIComponent(a.id)}/report` }, 200);
  });

  app.openapi(reportRoute, async (c) => {
    const { id } = c.req.valid('param');
    const a = await store.getAlert(id);
    if (a === undefined || a.state === 'inactive') throw notFound('such alert');
    const html = await renderAlertReport(ctx.store.with({ role: 'report' }), a, { config: ctx.config });
    return c.html(html, 200);
  });

  app.openapi(createSilenceRoute, async (c) => {
    const body = c.req.valid('json');
    const now = Date.now();
    const s = await store.createSilence({
      matchers: body.matchers.map((m) => ({
        name: m.name,
        value: m.value,
        isRegex: m.isRegex ?? false,
        isEqual: m.isEqual ?? true,
      })),
      startsAt: body.startsAt === undefined ? now : time(body.startsAt, 'startsAt'),
      endsAt: time(body.endsAt, 'endsAt'),
      comment: body.comment,
      createdBy: body.createdBy ?? '',
      now,
    });
    return c.json({ id: s.id }, 201);
  });

  app.openapi(listSilencesRoute, async (c) => {
    const now = Date.now();
    const list = await store.listSilences();
    return c.json({ silences: list.map((s) => silenceJson(s, now)) }, 200);
  });

  app.openapi(expireSilenceRoute, async (c) => {
    const { id } = c.req.valid('param');
    if (!(await store.expireSilence(id, Date.now()))) throw notFound('active or pending silence with that id');
    return c.json({ id, expired: true as const }, 200);
  });
}
