// Failed inference calls are requests, not predictions: a non-2xx call is stored in mw_requests with its status
// and error text and yields no prediction rows, and traffic to a model the server does not know (404) creates no
// model (not in /api/v1/models, 404 on its routes, no detection run). The failures still count where a model
// exists: its request count and its error rate. End to end: a real V2 server behind the sidecar, the in-process
// bus, ingest, the API and the detect loop.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../src/bus/index.js';
import { createApiApp } from '../src/api/index.js';
import { startDetector, type RunningDetector } from '../src/drift/detector.js';
import { decodeCall } from '../src/protocol/index.js';
import { defaultModelSchema } from '../src/config/model-schema.js';
import { buildCallRecords } from '../src/ingest/records.js';
import { startIngest, type IngestRole } from '../src/ingest/index.js';
import { startSidecar, type RunningSidecar } from '../src/sidecar/index.js';
import { Tables, type ClickHouseStore } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import { makeCall, quarantined, waitFor } from './support/ingest.js';
import { call, sidecarConfig, sidecarContext, testAgent } from './support/sidecar.js';
import { openTestStore } from './support/store.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

const JSON_CT = { 'content-type': 'application/json' };
const body = (i: number): Buffer =>
  Buffer.from(
    JSON.stringify({ inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [i, 2, 3, 4, 5, 6, 7, i] }] }),
  );

const OK = 6;
const FAILED = 3;
const UNKNOWN = 4;

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let upstream: TestV2Server;
let sidecar: RunningSidecar;
let ingest: IngestRole;
let bus: InProcessBus;

async function count(sql: string): Promise<number> {
  const [row] = await store.query<{ n: number | string }>(sql);
  return Number(row?.n ?? 0);
}

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  upstream = await startV2Server();
  bus = new InProcessBus();
  const ctx = sidecarContext(sidecarConfig({ sidecar: { upstream: upstream.url } }), bus, store);
  sidecar = await startSidecar(ctx);
  ingest = await startIngest(ctx);
  await ingest.ready;

  const statuses: number[] = [];
  const send = async (path: string, i: number, headers: Record<string, string> = {}): Promise<void> => {
    const r = await call(sidecar.url, path, {
      method: 'POST',
      headers: { ...JSON_CT, 'x-request-id': `r-${path}-${i}`, ...headers },
      body: body(i),
    });
    statuses.push(r.status);
  };
  for (let i = 0; i < OK; i++) await send('/v2/models/classifier/infer', i);
  for (let i = 0; i < FAILED; i++) await send('/v2/models/classifier/infer', 100 + i, { 'x-test-fail': '500' });
  for (let i = 0; i < UNKNOWN; i++) await send('/v2/models/nosuch/infer', 200 + i);
  expect(statuses).toEqual([
    ...Array<number>(OK).fill(200),
    ...Array<number>(FAILED).fill(500),
    ...Array<number>(UNKNOWN).fill(404),
  ]);
  await waitFor(
    async () => (await count(`SELECT count() AS n FROM ${Tables.requests}`)) === OK + FAILED + UNKNOWN,
    30_000,
    'every call stored',
  );
}, 60_000);

afterAll(async () => {
  await ingest?.stop();
  await sidecar?.stop();
  await bus?.close();
  await upstream?.stop();
  await testAgent.close();
  await cleanup?.();
});

describe('failed calls through the sidecar', () => {
  it('are stored as requests with their status and error, and yield no prediction rows', async () => {
    const reqs = await store.query<{ model: string; status: number; rows: number; error: string }>(
      `SELECT model, status, rows, error FROM ${Tables.requests} ORDER BY model, status`,
    );
    const byStatus = (model: string, status: number) =>
      reqs.filter((r) => r.model === model && Number(r.status) === status);
    expect(byStatus('classifier', 200)).toHaveLength(OK);
    expect(byStatus('classifier', 200).every((r) => Number(r.rows) === 2 && r.error === '')).toBe(true);
    expect(byStatus('classifier', 500)).toHaveLength(FAILED);
    expect(
      byStatus('classifier', 500).every((r) => Number(r.rows) === 0 && r.error.includes('injected failure 500')),
    ).toBe(true);
    expect(byStatus('nosuch', 404)).toHaveLength(UNKNOWN);
    expect(byStatus('nosuch', 404).every((r) => Number(r.rows) === 0 && r.error.includes('not found'))).toBe(true);

    expect(await count(`SELECT count() AS n FROM ${Tables.predictions} WHERE model = 'classifier'`)).toBe(2 * OK);
    expect(await count(`SELECT count() AS n FROM ${Tables.predictions} WHERE model != 'classifier'`)).toBe(0);
    // Only successful calls' request ids have prediction rows.
    expect(
      await count(
        `SELECT count() AS n FROM ${Tables.predictions} WHERE request_id NOT LIKE 'r-/v2/models/classifier/infer-_'`,
      ),
    ).toBe(0);
    // Failed calls are expected not to decode: nothing is quarantined.
    expect(await quarantined(store)).toEqual([]);
  });

  it('create no model: the list, the model routes and the detect loop see only the model that answered', async () => {
    const app = createApiApp(apiTestContext(store));
    const res = await app.request('/api/v1/models');
    expect(res.status).toBe(200);
    const { models } = (await res.json()) as { models: Array<{ name: string; requests: number; rows: number }> };
    // The failures count in the request total of the model that exists.
    expect(models).toEqual([expect.objectContaining({ name: 'classifier', requests: OK + FAILED, rows: 2 * OK })]);
    expect((await app.request('/api/v1/models/nosuch/health')).status).toBe(404);
    expect((await app.request('/api/v1/models/nosuch/predictions')).status).toBe(404);

    const health = await app.request('/api/v1/models/classifier/health');
    expect(health.status).toBe(200);
    const { traffic } = (await health.json()) as {
      traffic: { requests: number; rows: number; errors: number; error_rate: number };
    };
    expect(traffic).toMatchObject({ requests: OK + FAILED, rows: 2 * OK, errors: FAILED });
    expect(traffic.error_rate).toBeCloseTo(FAILED / (OK + FAILED), 12);

    let detector: RunningDetector | undefined;
    try {
      // Runs end on interval boundaries: a clock an hour ahead puts this traffic inside the run's interval.
      detector = await startDetector(apiTestContext(store), {
        detectDrift: null,
        intervalMs: 3_600_000,
        clock: () => Date.now() + 3_600_000,
      });
      const runs = await detector.runNow();
      expect(runs.map((r) => r.model)).toEqual(['classifier']);
      expect(runs[0]?.traffic).toMatchObject({ requests: OK + FAILED, errors: FAILED });
      expect(runs[0]?.series.find((p) => p.series === 'traffic.error_rate' && p.feature === '')?.value).toBeCloseTo(
        FAILED / (OK + FAILED),
        12,
      );
    } finally {
      await detector?.stop();
    }
  });
});

describe('buildCallRecords', () => {
  const decode = (c: Parameters<typeof decodeCall>[0]) => decodeCall(c, defaultModelSchema);

  it('turns a non-2xx call into a request row only, even when its bodies decode', () => {
    for (const status of [404, 500, 503, 302]) {
      const rec = buildCallRecords(makeCall(1, 3, { status }), 'o', Buffer.alloc(0), decode);
      expect(rec.predictions).toEqual([]);
      expect(rec.request).toMatchObject({ status, rows: 0 });
      expect(rec.quarantine).toBeUndefined();
    }
    // The same call answered 200 is three prediction rows.
    const ok = buildCallRecords(makeCall(1, 3), 'o', Buffer.alloc(0), decode);
    expect(ok.predictions).toHaveLength(3);
    expect(ok.request).toMatchObject({ status: 200, rows: 3 });
  });
});
