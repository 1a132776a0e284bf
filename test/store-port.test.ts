import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { encodeCapture, type ConsumedBatch } from '../src/bus/index.js';
import { ErrorCodes, ModelwatchError } from '../src/common/errors.js';
import type { Logger } from '../src/common/logger.js';
import { queryRows } from '../src/api/query.js';
import { toErrorResponse } from '../src/api/errors.js';
import { startDetector } from '../src/drift/detector.js';
import { IngestPipeline, createIngestMetrics } from '../src/ingest/index.js';
import {
  ClickHouseCodes,
  classifyStoreError,
  createStore,
  queryMarker,
  storeErrorCodes,
  Tables,
  type ClickHouseStore,
  type RequestRow,
  type Store,
} from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import { checkStored, makeCall, newRegistry, waitFor, type Expected } from './support/ingest.js';
import { openTestStore } from './support/store.js';

/** A statement that runs for minutes on one core unless cancelled (bound parameter: chdb runs it on its serial path). */
const SLOW_SQL = `SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = {x:UInt8}`;

let store: ClickHouseStore;
/** A second store on the same engine: watches `system.processes` while `store` is busy. */
let observer: ClickHouseStore;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  let dir: string;
  ({ store, dir, cleanup } = await openTestStore({ limits: { api: { timeoutMs: 1_500, maxMemoryBytes: 2 ** 30 } } }));
  observer = createStore({ url: `chdb:${dir}` });
});

afterAll(async () => {
  await observer?.close();
  await cleanup?.();
});

/**
 * Statements still listed in `system.processes` under `queryId`'s marker. Without bound parameters: chdb
 * runs bound statements one at a time per process, so a bound one would wait for the slow one it watches.
 */
async function running(queryId: string): Promise<number> {
  expect(queryId).toMatch(/^[a-z0-9-]+$/);
  const rows = await observer.query<{ n: number }>(
    `SELECT count() AS n FROM system.processes WHERE Settings['log_comment'] = '${queryMarker(queryId)}'`,
  );
  return Number(rows[0]?.n ?? 0);
}

/** Markers (`modelwatch:<id>`) of every statement of ours running the slow query. */
async function slowMarkers(): Promise<string[]> {
  const rows = await observer.query<{ m: string }>(
    `SELECT Settings['log_comment'] AS m FROM system.processes WHERE query LIKE '%sipHash64(number) % 7%' AND query NOT LIKE '%system.processes%'`,
  );
  return rows.map((r) => r.m);
}

function request(id: string, route: string): RequestRow {
  return {
    model: 'dedup',
    version: '',
    ts: 1_700_000_000_000,
    event_id: id,
    request_id: id,
    source: 'rest',
    route,
    status: 200,
    latency_ms: 1,
    request_bytes: 1,
    response_bytes: 1,
    request_truncated: false,
    response_truncated: false,
    rows: 0,
    error: '',
  };
}

describe('store port: failure classification by code', () => {
  const chError = (code: string): Error =>
    Object.assign(new Error(`Code: ${code}. DB::Exception: x`), { code, type: 'X' });
  const cases: Array<[string, unknown, string, boolean]> = [
    ['159 TIMEOUT_EXCEEDED', chError('159'), 'timeout', true],
    ['241 MEMORY_LIMIT_EXCEEDED', chError('241'), 'store_unavailable', true],
    ['394 QUERY_WAS_CANCELLED', chError('394'), 'cancelled', true],
    ['202 TOO_MANY_SIMULTANEOUS_QUERIES', chError('202'), 'store_unavailable', true],
    ['252 TOO_MANY_PARTS', chError('252'), 'store_unavailable', true],
    ['209 SOCKET_TIMEOUT', chError('209'), 'store_unavailable', true],
    ['210 NETWORK_ERROR', chError('210'), 'store_unavailable', true],
    ['425 SYSTEM_ERROR', chError('425'), 'store_unavailable', true],
    ['62 SYNTAX_ERROR (not in the table)', chError('62'), 'store_error', false],
    ['516 AUTHENTICATION_FAILED', chError('516'), 'store_unavailable', false],
    // chdb: the ClickHouse code sits on the cause as `clickhouseCode`, beside chdb's own `code`.
    [
      'chdb clickhouseCode 159 on the cause',
      Object.assign(new Error('wrapped'), {
        cause: Object.assign(new Error('x'), { code: 'CHDB_QUERY', clickhouseCode: 159 }),
      }),
      'timeout',
      true,
    ],
    ['chdb CHDB_CONNECTION', Object.assign(new Error('x'), { code: 'CHDB_CONNECTION' }), 'store_unavailable', true],
    ['chdb CHDB_ABORT', Object.assign(new Error('x'), { code: 'CHDB_ABORT', name: 'AbortError' }), 'cancelled', true],
    ['ECONNREFUSED', Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED' }), 'store_unavailable', true],
    [
      'ECONNRESET on the cause',
      new Error('request failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) }),
      'store_unavailable',
      true,
    ],
    ['EPIPE', Object.assign(new Error('x'), { code: 'EPIPE' }), 'store_unavailable', true],
    ['EHOSTUNREACH', Object.assign(new Error('x'), { code: 'EHOSTUNREACH' }), 'store_unavailable', true],
    ['UND_ERR_SOCKET', Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }), 'store_unavailable', true],
    // Message text alone decides nothing: a "timed out"/"ECONNREFUSED" message without a code is a plain failure.
    ['message text only', new Error('ECONNREFUSED: Timeout, timed out, network'), 'store_error', false],
  ];
  it.each(cases)('%s', (_name, err, code, retryable) => {
    const e = classifyStoreError(err, { op: 'test' });
    expect({ code: e.code, retryable: e.retryable }).toEqual({ code, retryable });
  });

  it('reports the store’s own deadline and the caller’s abort whatever the client said', () => {
    expect(classifyStoreError(chError('62'), { op: 't', aborted: 'deadline' }).code).toBe('timeout');
    expect(classifyStoreError(new Error('x'), { op: 't', aborted: 'signal' }).code).toBe('cancelled');
  });

  it('keeps every retryable table entry on a transient code', () => {
    for (const [code, c] of Object.entries(ClickHouseCodes)) {
      if (c.retryable)
        expect([ErrorCodes.storeUnavailable, ErrorCodes.timeout, ErrorCodes.cancelled], code).toContain(c.code);
    }
  });

  it('classifies a real engine error by its code', async () => {
    await expect(store.query('SELECT * FROM no_such_table_here')).rejects.toMatchObject({
      code: 'store_error',
      clickhouseCode: 60,
    });
  });

  it('reports a function the engine lacks as UNKNOWN_FUNCTION (46), which detection falls back on', async () => {
    const err: unknown = await store.query('SELECT noSuchFunctionHere(1)').catch((e: unknown) => e);
    expect(storeErrorCodes(err).clickhouseCode).toBe(46);
    // The function detection's stored-reference reads use exists in the embedded engine.
    await expect(store.query("SELECT arrayElementOrNull(map('a', 1.5), 'b') AS v")).resolves.toEqual([{ v: null }]);
  });
});

describe('store port: insert deduplication token is the mechanism', () => {
  it('drops an insert that reuses a token even with different content', async () => {
    await store.insertRequests([request('tok-a', '/first')], { dedupToken: 'same-token' });
    await store.insertRequests([request('tok-b', '/different')], { dedupToken: 'same-token' });
    const rows = await store.query<{ event_id: string }>(
      `SELECT event_id FROM ${Tables.requests} WHERE model = 'dedup' ORDER BY event_id`,
    );
    expect(rows.map((r) => r.event_id)).toEqual(['tok-a']);
    // The same content under a new token is stored: the token, not the content, decided.
    await store.insertRequests([request('tok-b', '/different')], { dedupToken: 'other-token' });
    const after = await store.query<{ event_id: string }>(
      `SELECT event_id FROM ${Tables.requests} WHERE model = 'dedup' ORDER BY event_id`,
    );
    expect(after.map((r) => r.event_id)).toEqual(['tok-a', 'tok-b']);
  });

  it('stores a redelivered batch once with the event-id lookup disabled', async () => {
    for (const t of [Tables.predictions, Tables.requests]) {
      await store.command(`TRUNCATE TABLE ${t}`);
      await store.command(`SYSTEM STOP MERGES ${t}`);
    }
    const calls = Array.from({ length: 5 }, (_, i) => makeCall(7000 + i, 2));
    const batch = (topic: string): ConsumedBatch => ({
      topic,
      partition: 0,
      messages: calls.map((c, i) => ({ ...encodeCapture(c), offset: String(i), timestamp: 0 })),
      heartbeat: () => Promise.resolve(),
      isRunning: () => true,
    });
    const expected: Expected = new Map(calls.map((c) => [c.eventId, 2]));
    const pipeline = new IngestPipeline(store, createIngestMetrics(newRegistry()), { eventIdLookup: false });
    await pipeline.handleBatch(batch('t'));
    await pipeline.handleBatch(batch('t')); // redelivery after a crash between insert and commit
    expect(await checkStored(store, expected)).toEqual({ lost: [], duplicated: [], unexpected: [] });
    // Control: the same records under other offsets (another token) and no lookup are stored again.
    await pipeline.handleBatch(batch('other-topic'));
    const report = await checkStored(store, expected);
    expect(report.duplicated.length).toBeGreaterThan(0);
  });
});

describe('store port: deadlines cancel statements in ClickHouse', () => {
  it('an API query past its deadline fails with timeout and is gone from system.processes', async () => {
    const queryId = 'api-slow-1';
    const started = Date.now();
    const pending = queryRows(store, SLOW_SQL, { x: 3 }, {}, { queryId });
    const failed = pending.then(
      () => null,
      (e: unknown) => e,
    );
    // While it runs the observer sees it: the check below can fail.
    await waitFor(async () => (await running(queryId)) === 1, 5_000, 'slow query listed');
    const err = await failed;
    expect(err).toMatchObject({ code: 'timeout' });
    expect(Date.now() - started).toBeLessThan(1_500 + 1_000 + 2_000);
    await waitFor(async () => (await running(queryId)) === 0, 5_000, 'slow query gone');
  });

  it('an abort signal cancels the statement and kills it on the engine', async () => {
    const queryId = 'abort-slow-1';
    const ac = new AbortController();
    const failed = store.query(SLOW_SQL, { params: { x: 3 }, queryId, role: 'detect', signal: ac.signal }).then(
      () => null,
      (e: unknown) => e,
    );
    await waitFor(async () => (await running(queryId)) === 1, 5_000, 'slow query listed');
    const t = Date.now();
    ac.abort();
    expect(await failed).toMatchObject({ code: 'cancelled' });
    expect(Date.now() - t).toBeLessThan(1_000);
    await waitFor(async () => (await running(queryId)) === 0, 5_000, 'killed query gone');
  });

  it('an API 5xx carries a correlation id, never ClickHouse text; the log has both', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger: Logger = { debug() {}, info() {}, warn() {}, error: (_m, f) => lines.push(f ?? {}) };
    const app = new Hono();
    app.get('/boom', async () => {
      await queryRows(store, 'SELECT * FROM secret_table_name_xyz');
      return new Response('unreachable');
    });
    app.onError((err, c) => toErrorResponse(err, c, logger));
    const res = await app.request('/boom');
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toContain('secret_table_name_xyz');
    expect(text).not.toMatch(/DB::Exception|Code: \d+/);
    const body = JSON.parse(text) as { error: { code: string; message: string; correlation_id: string } };
    expect(body.error).toMatchObject({ code: 'store_error', message: 'store query failed' });
    expect(res.headers.get('x-correlation-id')).toBe(body.error.correlation_id);
    const logged = lines.find((l) => l.correlation_id === body.error.correlation_id);
    expect(String(logged?.error)).toContain('secret_table_name_xyz');
  });
});

describe('detector: run deadline and stop() cancel in ClickHouse', () => {
  /** A drift engine whose statement never finishes by itself (runs through the run's store). */
  // A run examines drift only when its window holds rows: one prediction per model, a minute before the end of
  // the window (runs are aligned to their hour-long interval, so the window ends at the last full hour).
  const oneRow = (model: string): Promise<void> =>
    store.insertPredictions([
      {
        model,
        version: '1',
        ts: Math.floor(Date.now() / 3_600_000) * 3_600_000 - 60_000,
        event_id: `${model}-e`,
        request_id: `${model}-r`,
        row: 0,
        features_num: { x: 1 },
        features_cat: {},
        outputs_num: {},
        outputs_cat: {},
      },
    ]);

  const hanging = (seen: string[]) => async (s: Store) => {
    const id = `drift-hang-${seen.length}`;
    seen.push(id);
    await s.query(SLOW_SQL, { params: { x: 3 }, queryId: id });
    return null;
  };

  it('a detection run past its deadline is cancelled on the engine and the loop moves on', async () => {
    const seen: string[] = [];
    await oneRow('m-deadline');
    const ctx = apiTestContext(store, { 'detect.timeoutMs': 1_500 });
    const detector = await startDetector(ctx, {
      detectDrift: hanging(seen),
      models: ['m-deadline'],
      intervalMs: 3_600_000,
      timeoutMs: 1_500,
    });
    const t = Date.now();
    const runs = await detector.runNow();
    const took = Date.now() - t;
    // Past its deadline the caller gets nothing of the run.
    expect(runs).toEqual([]);
    expect(seen.length).toBe(1);
    expect(took).toBeLessThan(1_500 + 1_000 + 3_000);
    await waitFor(async () => (await running(seen[0]!)) === 0, 5_000, 'timed-out drift query gone');
    // The loop is free for the next run (not stuck behind the cancelled one).
    const next = await Promise.race([
      detector.runNow().then(() => 'ran'),
      new Promise((r) => setTimeout(() => r('stuck'), 6_000)),
    ]);
    expect(next).toBe('ran');
    await detector.stop();
  });

  it('stop() aborts a hanging run and kills its statement', async () => {
    const seen: string[] = [];
    await oneRow('m-stop');
    const ctx = apiTestContext(store);
    const detector = await startDetector(ctx, {
      detectDrift: hanging(seen),
      models: ['m-stop'],
      intervalMs: 3_600_000,
      timeoutMs: 600_000,
    });
    await waitFor(async () => seen.length === 1 && (await running(seen[0]!)) === 1, 10_000, 'run in flight');
    const t = Date.now();
    await detector.stop();
    expect(Date.now() - t).toBeLessThan(3_000);
    await waitFor(async () => (await running(seen[0]!)) === 0, 5_000, 'stopped run’s query gone');
    expect(await slowMarkers()).toEqual([]);
  });
});

it('ModelwatchError passes through the classifier unchanged', () => {
  const e = new ModelwatchError(ErrorCodes.notFound, 'x');
  expect(classifyStoreError(e, { op: 'y' })).toBe(e);
});
