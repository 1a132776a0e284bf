import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiApp, startApi } from '../src/api/index.js';
import { loadConfig } from '../src/config/index.js';
import type { RunningApi } from '../src/api/index.js';
import { sleep } from '../src/common/index.js';
import { createStore, type ClickHouseStore as Store, type PredictionRow, type RequestRow } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import { openTestStore } from './support/store.js';
import { selectRows } from './support/store.js';

let store: Store;
let cleanup: () => Promise<void>;
let api: RunningApi;
let base: string;

const T0 = Date.now() - 10 * 60_000;
const iso = (ms: number): string => new Date(ms).toISOString();

function prediction(
  request_id: string,
  row: number,
  ts: number,
  version: string,
  extra: Partial<PredictionRow> = {},
): PredictionRow {
  return {
    model: 'iris',
    version,
    ts,
    event_id: `ev-${request_id}`,
    request_id,
    row,
    features_num: { x: row + 0.5 },
    features_cat: { color: 'red' },
    outputs_num: { p: 0.25 },
    outputs_cat: { cls: 'a' },
    ...extra,
  };
}

function request(
  model: string,
  request_id: string,
  ts: number,
  version: string,
  rows: number,
  status = 200,
): RequestRow {
  return {
    model,
    version,
    ts,
    event_id: `ev-${request_id}`,
    request_id,
    source: 'rest',
    route: `/v2/models/${model}/infer`,
    status,
    latency_ms: 2,
    request_bytes: 100,
    response_bytes: 80,
    request_truncated: false,
    response_truncated: false,
    rows,
    error: status === 200 ? '' : 'boom',
  };
}

async function get(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown; type: string }> {
  const res = await fetch(base + path, { headers });
  const type = res.headers.get('content-type') ?? '';
  const text = await res.text();
  return { status: res.status, type, body: type.includes('json') ? (JSON.parse(text) as unknown) : text };
}

async function post(path: string, body: string, type = 'application/json', headers: Record<string, string> = {}) {
  const res = await fetch(base + path, { method: 'POST', body, headers: { 'content-type': type, ...headers } });
  return { status: res.status, body: await res.json() };
}

interface Pred {
  request_id: string;
  row: number;
  ts: string;
  version: string;
  features: Record<string, unknown>;
  outputs: Record<string, unknown>;
  label: string | null;
}

async function predictions(query: string): Promise<Pred[]> {
  const r = await get(`/api/v1/models/iris/predictions${query}`);
  expect(r.status).toBe(200);
  return (r.body as { predictions: Pred[] }).predictions;
}

const ids = (ps: Pred[]): string[] => ps.map((p) => `${p.request_id}/${p.row}`);

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  await store.insertPredictions([
    prediction('r1', 0, T0, '1', { features_num: { x: 1.5, y: NaN } }),
    prediction('r1', 1, T0, '1'),
    prediction('r2', 0, T0 + 1000, '2', { outputs_num: { p: Infinity } }),
    prediction('r3', 0, T0 + 2000, '2'),
  ]);
  await store.insertRequests([
    request('iris', 'r1', T0, '1', 2),
    request('iris', 'r2', T0 + 1000, '2', 1),
    request('iris', 'r3', T0 + 2000, '2', 1),
    request('reqonly', 'q1', T0 + 500, '', 0, 500),
  ]);
  api = await startApi(apiTestContext(store, { 'api.maxBodyBytes': 4096 }));
  base = api.url;
});

afterAll(async () => {
  await api?.stop();
  await cleanup?.();
});

describe('api: system routes', () => {
  it('serves liveness and readiness', async () => {
    expect(api.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await get('/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await get('/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  it('answers 503 on readiness and queries when the store is down', async () => {
    // A real ClickHouse HTTP client pointed at a closed loopback port.
    const down = createStore({ url: 'http://127.0.0.1:1', requestTimeoutMs: 2000 });
    const app = createApiApp(apiTestContext(down));
    const ready = await app.request('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ error: { code: 'store_unavailable' } });
    const models = await app.request('/api/v1/models');
    expect(models.status).toBe(503);
    expect(await models.json()).toMatchObject({ error: { code: 'store_unavailable', message: 'store unavailable' } });
    expect((await app.request('/healthz')).status).toBe(200);
    await down.close();
  });

  it('exposes Prometheus metrics that promtool accepts', async () => {
    await get('/api/v1/models');
    await get('/no/such/route');
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toContain('text/plain');
    expect(r.type).toContain('version=0.0.4');
    const text = r.body as string;
    expect(text).toMatch(
      /^modelwatch_api_requests_total\{route="\/api\/v1\/models",method="GET",status="200"\} [1-9]/m,
    );
    expect(text).toMatch(/^modelwatch_api_requests_total\{route="unmatched",method="other",status="404"\} [1-9]/m);
    expect(text).toMatch(
      /^modelwatch_api_request_duration_seconds_bucket\{le="0\.001",route="\/healthz",method="GET"\} \d/m,
    );
    expect(text).toContain('modelwatch_process_cpu_user_seconds_total');
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(lint.error).toBeUndefined();
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.status).toBe(0);
  });

  it('serves the OpenAPI 3.1 document (parity with the mounted routes: test/api-openapi.test.ts)', async () => {
    const r = await get('/openapi.json');
    expect(r.status).toBe(200);
    const doc = r.body as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/api/v1/models/{name}/predictions');
    // Built once per app: a second fetch answers the same document.
    expect((await get('/openapi.json')).body).toEqual(doc);
  });

  it('answers unknown routes with a JSON 404', async () => {
    const r = await get('/api/v1/nothing');
    expect(r).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect(await get('/elsewhere')).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
  });
});

describe('api: models and predictions', () => {
  it('lists models with versions, first/last seen and counts', async () => {
    const r = await get('/api/v1/models');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      models: [
        { name: 'iris', versions: ['1', '2'], first_seen: iso(T0), last_seen: iso(T0 + 2000), requests: 3, rows: 4 },
        // 'reqonly' has one failed (500) request and never answered: failed calls alone make no model.
      ],
    });
  });

  it('returns rows newest first with merged features/outputs and non-finite numbers as null', async () => {
    const ps = await predictions('');
    expect(ids(ps)).toEqual(['r3/0', 'r2/0', 'r1/0', 'r1/1']);
    const r1 = ps.find((p) => p.request_id === 'r1' && p.row === 0);
    expect(r1).toEqual({
      request_id: 'r1',
      row: 0,
      ts: iso(T0),
      version: '1',
      features: { x: 1.5, y: null, color: 'red' },
      outputs: { p: 0.25, cls: 'a' },
      label: null,
    });
    expect(ps.find((p) => p.request_id === 'r2')?.outputs).toEqual({ p: null, cls: 'a' });
  });

  it('filters by limit, version and window (ISO and epoch ms)', async () => {
    expect(ids(await predictions('?limit=2'))).toEqual(['r3/0', 'r2/0']);
    expect(ids(await predictions('?version=1'))).toEqual(['r1/0', 'r1/1']);
    expect(ids(await predictions('?version=9'))).toEqual([]);
    expect(ids(await predictions(`?from=${encodeURIComponent(iso(T0 + 500))}&to=${T0 + 1500}`))).toEqual(['r2/0']);
    expect(ids(await predictions(`?from=${T0 + 1000}&limit=1`))).toEqual(['r3/0']);
    // Half-open window [from, to): a row at exactly `to` is left out, one at exactly `from` kept.
    expect(ids(await predictions(`?from=${T0 + 1000}&to=${T0 + 2000}`))).toEqual(['r2/0']);
    // Default window is the last hour: rows from two hours ago are not returned.
    expect(ids(await predictions(`?to=${T0 - 3_600_000}`))).toEqual([]);
  });

  it('answers 404 for an unknown model', async () => {
    const r = await get('/api/v1/models/nope/predictions');
    expect(r).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect((r.body as { error: { message: string } }).error.message).toContain('nope');
  });

  it.each([
    ['?limit=0', 'limit'],
    ['?limit=10001', 'limit'],
    ['?limit=abc', 'limit'],
    ['?limit=1.5', 'limit'],
    ['?from=yesterday', 'from'],
    ['?to=not-a-time', 'to'],
    [`?from=${T0 + 10}&to=${T0}`, 'from'],
  ])('rejects predictions%s naming %s', async (query, field) => {
    const r = await get(`/api/v1/models/iris/predictions${query}`);
    expect(r.status).toBe(400);
    const err = (r.body as { error: { code: string; message: string; field: string } }).error;
    expect(err.code).toBe('bad_request');
    expect(err.field).toBe(field);
    expect(err.message.startsWith(`${field}:`)).toBe(true);
  });
});

describe('api: labels', () => {
  it('accepts labels with 202 and joins them to predictions, newest label winning', async () => {
    const r = await post(
      '/api/v1/labels',
      JSON.stringify({
        labels: [
          { request_id: 'r1', label: 'a' },
          { request_id: 'r1', row: 1, label: 1 },
        ],
      }),
    );
    expect(r).toEqual({ status: 202, body: { accepted: 2 } });
    let ps = await predictions('?version=1');
    expect(ps.map((p) => p.label)).toEqual(['a', '1']);
    await sleep(5); // received_at has millisecond resolution
    expect(
      await post('/api/v1/labels', JSON.stringify({ labels: [{ request_id: 'r1', row: 0, label: 'b' }] })),
    ).toEqual({
      status: 202,
      body: { accepted: 1 },
    });
    ps = await predictions('?version=1');
    expect(ps.map((p) => p.label)).toEqual(['b', '1']);
    expect((await predictions('?version=2')).map((p) => p.label)).toEqual([null, null]);
  });

  it('keeps labels for unknown request ids and joins them when the prediction arrives', async () => {
    expect(
      await post('/api/v1/labels', JSON.stringify({ labels: [{ request_id: 'r9', row: 0, label: true }] })),
    ).toEqual({
      status: 202,
      body: { accepted: 1 },
    });
    await store.insertPredictions([prediction('r9', 0, T0 + 3000, '2')]);
    const ps = await predictions('?limit=1');
    expect(ps[0]).toMatchObject({ request_id: 'r9', label: 'true' });
  });

  it.each([
    [{}, 'labels'],
    [{ labels: [] }, 'labels'],
    [{ labels: 'x' }, 'labels'],
    [{ labels: [{ label: 'a' }] }, 'labels.0.request_id'],
    [{ labels: [{ request_id: '', label: 'a' }] }, 'labels.0.request_id'],
    [
      {
        labels: [
          { request_id: 'a', label: 'a' },
          { request_id: 'b', row: -1, label: 'a' },
        ],
      },
      'labels.1.row',
    ],
    [{ labels: [{ request_id: 'a', row: 1.5, label: 'a' }] }, 'labels.0.row'],
    [{ labels: [{ request_id: 'a', label: { x: 1 } }] }, 'labels.0.label'],
    [{ labels: [{ request_id: 'a' }] }, 'labels.0.label'],
    [{ labels: [{ request_id: 'a', label: 'a', extra: 1 }] }, 'labels.0.extra'],
    [{ labels: [{ request_id: 'a', label: 'a' }], other: 1 }, 'other'],
    [[1, 2], 'body'],
  ])('rejects label body %j naming %s', async (body, field) => {
    const r = await post('/api/v1/labels', JSON.stringify(body));
    expect(r.status).toBe(400);
    const err = (r.body as { error: { code: string; message: string; field: string } }).error;
    expect(err).toMatchObject({ code: 'bad_request', field });
    expect(err.message.startsWith(`${field}:`)).toBe(true);
  });

  it('rejects bad JSON (400), non-JSON (415) and bodies over api.maxBodyBytes (413)', async () => {
    expect(await post('/api/v1/labels', '{"labels": [')).toMatchObject({
      status: 400,
      body: { error: { code: 'bad_request', field: 'body' } },
    });
    expect(await post('/api/v1/labels', 'request_id=r1', 'text/plain')).toMatchObject({
      status: 415,
      body: { error: { code: 'bad_request', field: 'content-type' } },
    });
    const big = JSON.stringify({
      labels: Array.from({ length: 200 }, (_, i) => ({ request_id: `big-${i}`, label: 'x' })),
    });
    expect(big.length).toBeGreaterThan(4096);
    expect(await post('/api/v1/labels', big)).toMatchObject({
      status: 413,
      body: { error: { code: 'payload_too_large' } },
    });
    // Nothing of the refused body was stored.
    const rs = selectRows(store, {
      query: `SELECT count() AS n FROM mw_labels WHERE startsWith(request_id, 'big-')`,
      format: 'JSONEachRow',
    });
    expect(await rs.json()).toEqual([{ n: 0 }]);
  });
});

describe('api: bearer token', () => {
  let secured: RunningApi;
  beforeAll(async () => {
    secured = await startApi(apiTestContext(store, { 'api.token': 's3cret-token' }));
  });
  afterAll(async () => secured?.stop());

  it('requires the token on /api/v1/* only', async () => {
    const at = (path: string, headers: Record<string, string> = {}) => fetch(secured.url + path, { headers });
    const none = await at('/api/v1/models');
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ error: { code: 'unauthorized', message: 'missing or invalid bearer token' } });
    expect((await at('/api/v1/models', { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await at('/api/v1/models', { authorization: 'Bearer s3cret-tokenX' })).status).toBe(401);
    expect((await at('/api/v1/models', { authorization: 'Basic s3cret-token' })).status).toBe(401);
    expect((await at('/api/v1/models/iris/predictions')).status).toBe(401);
    const labels = await fetch(secured.url + '/api/v1/labels', {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(labels.status).toBe(401);
    expect((await at('/api/v1/models', { authorization: 'Bearer s3cret-token' })).status).toBe(200);
    for (const open of ['/healthz', '/readyz', '/metrics', '/openapi.json']) expect((await at(open)).status).toBe(200);
    // The token never appears in any answer.
    expect(await (await at('/metrics')).text()).not.toContain('s3cret');
  });

  it('leaves /api/v1/* open when no token is configured', async () => {
    expect((await get('/api/v1/models')).status).toBe(200);
  });
});

describe('api: window cap (api.maxWindowMs)', () => {
  const MAX = 10 * 60_000;
  const capped = () => createApiApp(apiTestContext(store, { 'api.maxWindowMs': MAX }));
  const wide = `from=${T0}&to=${T0 + MAX + 1}`;

  it.each([
    [`/api/v1/models/iris/predictions?${wide}`, 'from'],
    [`/api/v1/models/iris/predictions?from=${T0 - 86_400_000}`, 'from'],
    [`/api/v1/models/iris/drift?${wide}`, 'from'],
    [`/api/v1/models/iris/drift?from=${T0}&to=${T0 + 1000}&reference_from=0&reference_to=${T0}`, 'reference_from'],
    [`/api/v1/models/iris/performance?${wide}`, 'from'],
    [`/api/v1/models/iris/health?${wide}`, 'from'],
    [`/api/v1/models/iris/health?${wide}&recompute=true`, 'from'],
  ])('refuses %s naming %s', async (path, field) => {
    const res = await capped().request(path);
    expect(res.status).toBe(400);
    const err = ((await res.json()) as { error: { code: string; message: string; field: string } }).error;
    expect(err).toMatchObject({ code: 'bad_request', field });
    const m = new RegExp(`^${field}: window of (\\d+) ms is wider than api\\.maxWindowMs \\(${MAX} ms\\)$`).exec(
      err.message,
    );
    expect(m, err.message).not.toBeNull();
    expect(Number(m?.[1])).toBeGreaterThan(MAX);
  });

  it('accepts a window of exactly the cap, and clamps the default span to it', async () => {
    const app = capped();
    const exact = await app.request(`/api/v1/models/iris/predictions?from=${T0}&to=${T0 + MAX}`);
    expect(exact.status).toBe(200);
    expect(((await exact.json()) as { predictions: Pred[] }).predictions.map((p) => p.request_id)).toEqual([
      'r9',
      'r3',
      'r2',
      'r1',
      'r1',
    ]);
    // Without `from`, the window is `to` − min(1 h, cap): rows older than 10 minutes before `to` are left out.
    const clamped = await app.request(`/api/v1/models/iris/predictions?to=${T0 + MAX + 1500}`);
    expect(clamped.status).toBe(200);
    expect(((await clamped.json()) as { predictions: Pred[] }).predictions.map((p) => p.request_id)).toEqual([
      'r9',
      'r3',
    ]);
  });

  it('reads the cap from MODELWATCH_API_MAX_WINDOW_MS (default 7 days)', () => {
    expect(loadConfig({ env: {} }).api.maxWindowMs).toBe(7 * 86_400_000);
    expect(loadConfig({ env: { MODELWATCH_API_MAX_WINDOW_MS: '60000' } }).api.maxWindowMs).toBe(60_000);
    expect(() => loadConfig({ env: { MODELWATCH_API_MAX_WINDOW_MS: 'week' } })).toThrow(/MODELWATCH_API_MAX_WINDOW_MS/);
    expect(() => loadConfig({ env: { MODELWATCH_API_MAX_WINDOW_MS: '0' } })).toThrow(/MODELWATCH_API_MAX_WINDOW_MS/);
  });
});
