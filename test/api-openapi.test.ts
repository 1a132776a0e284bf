import { afterAll, describe, expect, it } from 'vitest';
import { createApiApp, MAX_PREDICTIONS_LIMIT, type ApiApp } from '../src/api/index.js';
import { createStore } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';

// No query runs here: a real client pointed at a closed loopback port is enough to build the app.
const store = createStore({ url: 'http://127.0.0.1:1', requestTimeoutMs: 1000 });
afterAll(() => store.close());

interface Operation {
  operationId?: string;
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: Record<string, unknown> }>;
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
  security?: unknown[];
}
interface Document {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
}

/** `method path` of every handler the app serves (middleware registered with `use` is method ALL). */
function served(app: ApiApp): Set<string> {
  return new Set(
    app.routes
      .filter((r) => r.method !== 'ALL')
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, '{$1}')}`),
  );
}

function documented(doc: Document): Set<string> {
  return new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)));
}

/** Routes served but not documented, and documented but not served. */
function parity(app: ApiApp, doc: Document): { undocumented: string[]; unmounted: string[] } {
  const s = served(app);
  const d = documented(doc);
  return { undocumented: [...s].filter((x) => !d.has(x)), unmounted: [...d].filter((x) => !s.has(x)) };
}

async function documentOf(app: ApiApp): Promise<Document> {
  const res = await app.request('/openapi.json');
  expect(res.status).toBe(200);
  return (await res.json()) as Document;
}

describe('OpenAPI document', () => {
  it('documents every mounted route, and every documented route is mounted', async () => {
    const app = createApiApp(apiTestContext(store));
    const doc = await documentOf(app);
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.title).toBe('modelwatch API');
    expect(parity(app, doc)).toEqual({ undocumented: [], unmounted: [] });
    // The routes this release serves, so a group dropped from both sides is noticed too.
    expect([...served(app)].sort()).toEqual([
      'delete /api/v1/silences/{id}',
      'get /api/v1/alerts',
      'get /api/v1/alerts/{id}',
      'get /api/v1/alerts/{id}/report',
      'get /api/v1/models',
      'get /api/v1/models/{name}/change-points',
      'get /api/v1/models/{name}/detect-runs',
      'get /api/v1/models/{name}/drift',
      'get /api/v1/models/{name}/drift/history',
      'get /api/v1/models/{name}/health',
      'get /api/v1/models/{name}/multivariate/history',
      'get /api/v1/models/{name}/performance',
      'get /api/v1/models/{name}/performance/history',
      'get /api/v1/models/{name}/predictions',
      'get /api/v1/models/{name}/references',
      'get /api/v1/shadow/runs',
      'get /api/v1/shadow/runs/{id}',
      'get /api/v1/silences',
      'get /healthz',
      'get /metrics',
      'get /openapi.json',
      'get /readyz',
      'post /api/v1/labels',
      'post /api/v1/models/{name}/references',
      'post /api/v1/shadow/runs',
      'post /api/v1/silences',
      'post /ingest/kserve',
      'put /api/v1/models/{name}/references/active',
    ]);
  });

  it('the parity check catches a route added without documentation', async () => {
    const app = createApiApp(apiTestContext(store), {
      routes: [
        (a) => {
          a.get('/api/v1/undocumented', (c) => c.json({}));
        },
      ],
    });
    const doc = await documentOf(createApiApp(apiTestContext(store)));
    const result = parity(app, doc);
    expect(result.undocumented).toEqual(['get /api/v1/undocumented']);
    expect(result.unmounted.length).toBeGreaterThan(5);
  });

  it('every operation has responses, protected ones name the bearer scheme, and every $ref resolves', async () => {
    const doc = await documentOf(createApiApp(apiTestContext(store)));
    expect(doc.components.securitySchemes).toEqual({ bearer: { type: 'http', scheme: 'bearer' } });
    const ids = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(Object.keys(op.responses).length, `${method} ${path}`).toBeGreaterThan(0);
        expect(op.operationId, `${method} ${path}`).toBeTruthy();
        ids.add(op.operationId ?? '');
        if (path.startsWith('/api/v1/')) {
          expect(op.security, `${method} ${path}`).toEqual([{ bearer: [] }]);
          expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['400', '401', '503']));
        }
        if (path.includes('{name}')) {
          expect(op.parameters?.find((p) => p.in === 'path')).toMatchObject({ name: 'name', required: true });
        }
      }
    }
    expect(ids.size).toBe([...documented(doc)].length);
    const text = JSON.stringify(doc);
    const refs = [...text.matchAll(/"\$ref":"#\/components\/schemas\/(\w+)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThan(5);
    for (const ref of refs) expect(Object.keys(doc.components.schemas)).toContain(ref);
  });

  it('is generated from the schemas that validate requests', async () => {
    const app = createApiApp(apiTestContext(store));
    const doc = await documentOf(app);
    const predictions = doc.paths['/api/v1/models/{name}/predictions']?.get;
    const limit = predictions?.parameters?.find((p) => p.name === 'limit');
    expect(limit).toMatchObject({ in: 'query', required: false });
    expect(limit?.schema).toMatchObject({ type: 'integer', minimum: 1, maximum: MAX_PREDICTIONS_LIMIT });
    // The same bound rejects a request before any query runs (the store here is unreachable).
    const tooBig = await app.request(`/api/v1/models/iris/predictions?limit=${MAX_PREDICTIONS_LIMIT + 1}`);
    expect(tooBig.status).toBe(400);
    expect(await tooBig.json()).toMatchObject({ error: { code: 'bad_request', field: 'limit' } });

    const labels = doc.paths['/api/v1/labels']?.post;
    expect(labels?.requestBody?.content['application/json']?.schema).toEqual({
      $ref: '#/components/schemas/LabelsRequest',
    });
    const body = doc.components.schemas.LabelsRequest as {
      required: string[];
      additionalProperties: boolean;
      properties: {
        labels: { minItems: number; maxItems: number; items: { required: string[]; additionalProperties: boolean } };
      };
    };
    expect(body.required).toEqual(['labels']);
    expect(body.additionalProperties).toBe(false);
    expect(body.properties.labels).toMatchObject({ minItems: 1, maxItems: 100_000 });
    expect(body.properties.labels.items.required).toEqual(expect.arrayContaining(['request_id', 'label']));
    expect(body.properties.labels.items.additionalProperties).toBe(false);
    const bad = await app.request('/api/v1/labels', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ labels: [{ request_id: 'a', label: 'x', extra: 1 }] }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      error: { code: 'bad_request', message: 'labels.0.extra: unknown field', field: 'labels.0.extra' },
    });

    const health = doc.paths['/api/v1/models/{name}/health']?.get;
    expect(health?.parameters?.find((p) => p.name === 'recompute')?.schema).toMatchObject({ enum: ['true', 'false'] });
    const recompute = await app.request('/api/v1/models/iris/health?recompute=yes');
    expect(recompute.status).toBe(400);
    expect(await recompute.json()).toMatchObject({ error: { code: 'bad_request', field: 'recompute' } });
  });
});
