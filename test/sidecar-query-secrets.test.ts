// A secret in the query string (`?api_key=`) is forwarded to the upstream but never reaches the bus,
// a stored table, a log line or a metric; allow-listed parameters are kept in the captured route.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, decodeCapture } from '../src/bus/index.js';
import type { Logger } from '../src/common/index.js';
import { startIngest, type IngestRole } from '../src/ingest/index.js';
import { captureRoute } from '../src/sidecar/proxy.js';
import { startSidecar, type RunningSidecar } from '../src/sidecar/index.js';
import { Tables, type ClickHouseStore } from '../src/store/index.js';
import { waitFor } from './support/ingest.js';
import { RecordingBus, call, sidecarConfig, sidecarContext, testAgent } from './support/sidecar.js';
import { openTestStore } from './support/store.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

const SECRET = 'sk-live-5ecret-7f3a';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let upstream: TestV2Server;
let sidecar: RunningSidecar;
let ingest: IngestRole;
const bus = new RecordingBus(new InProcessBus());
const logLines: string[] = [];
const logger: Logger = {
  debug: (msg, f) => logLines.push(JSON.stringify({ msg, ...f })),
  info: (msg, f) => logLines.push(JSON.stringify({ msg, ...f })),
  warn: (msg, f) => logLines.push(JSON.stringify({ msg, ...f })),
  error: (msg, f) => logLines.push(JSON.stringify({ msg, ...f })),
};
let ctx: ReturnType<typeof sidecarContext>;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  upstream = await startV2Server();
  ctx = {
    ...sidecarContext(
      sidecarConfig({ sidecar: { upstream: upstream.url, captureQueryParams: ['trace'] } }),
      bus,
      store,
    ),
    logger,
  };
  sidecar = await startSidecar(ctx);
  ingest = await startIngest(ctx);
  await ingest.ready;
});

afterAll(async () => {
  await sidecar?.stop();
  await ingest?.stop();
  await upstream?.stop();
  await testAgent.close();
  await cleanup?.();
});

describe('captured route', () => {
  it('keeps only allow-listed query parameters, in their order and encoding', () => {
    const keep = new Set(['trace', 'a b']);
    expect(captureRoute('/v2/models/m/infer', keep)).toBe('/v2/models/m/infer');
    expect(captureRoute('/v2/models/m/infer?api_key=x', keep)).toBe('/v2/models/m/infer');
    expect(captureRoute('/v2/models/m/infer?api_key=x&trace=1&token=y&a+b=%20', keep)).toBe(
      '/v2/models/m/infer?trace=1&a+b=%20',
    );
    expect(captureRoute('/v2/models/m/infer?trace', keep)).toBe('/v2/models/m/infer?trace');
    expect(captureRoute('/v2/models/m/infer?%ZZ=1&trace=2', keep)).toBe('/v2/models/m/infer?trace=2');
    expect(captureRoute('/v2/models/m/infer?trace=1&api_key=x', new Set())).toBe('/v2/models/m/infer');
  });

  it('never lets ?api_key= reach the bus, a table, a log line or a metric; the upstream still gets it', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    const headers = { 'content-type': 'application/json', 'x-request-id': 'secret-1' };
    const ok = await call(sidecar.url, `/v2/models/classifier/infer?api_key=${SECRET}&trace=7`, {
      method: 'POST',
      headers,
      body,
    });
    expect(ok.status).toBe(200);
    // A failing call is captured too (status 404 for an unknown model), with the secret in the URL.
    const missing = await call(sidecar.url, `/v2/models/nosuch/infer?trace=8&api_key=${SECRET}`, {
      method: 'POST',
      headers: { ...headers, 'x-request-id': 'secret-2' },
      body,
    });
    expect(missing.status).toBe(404);
    // The upstream saw the full URL (the proxy is transparent).
    const echo = await call(sidecar.url, `/test/echo?api_key=${SECRET}`, { method: 'POST', headers, body: '{}' });
    expect(echo.body.toString()).toContain(SECRET);

    await waitFor(() => sidecar.tee.stats().sent >= 2, 10_000, 'captures sent');
    const routes = bus.published.map((m) => decodeCapture(m).route).sort();
    expect(routes).toEqual(['/v2/models/classifier/infer?trace=7', '/v2/models/nosuch/infer?trace=8']);
    for (const m of bus.published) {
      expect(m.value.toString('latin1')).not.toContain(SECRET);
      expect(JSON.stringify(m.headers)).not.toContain(SECRET);
    }

    const q = async (sql: string): Promise<Record<string, unknown>[]> => store.query<Record<string, unknown>>(sql);
    await waitFor(
      async () => (await q(`SELECT 1 FROM ${Tables.requests} FINAL`)).length >= 2,
      15_000,
      'requests stored',
    );
    const stored = await q(`SELECT request_id, route FROM ${Tables.requests} FINAL ORDER BY request_id`);
    expect(stored).toEqual([
      { request_id: 'secret-1', route: '/v2/models/classifier/infer?trace=7' },
      { request_id: 'secret-2', route: '/v2/models/nosuch/infer?trace=8' },
    ]);
    // Every table of the database, every column.
    const tables = await q(`SELECT name FROM system.tables WHERE database = currentDatabase()`);
    expect(tables.length).toBeGreaterThanOrEqual(5);
    for (const { name } of tables) {
      const rows = await q(`SELECT * FROM ${String(name)}`);
      expect(JSON.stringify(rows), String(name)).not.toContain(SECRET);
    }
    expect(logLines.join('\n')).not.toContain(SECRET);
    expect(await ctx.metrics.metrics()).not.toContain(SECRET);
  });
});
