import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import { Registry } from 'prom-client';
import { startApi } from '../src/api/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeCapture,
  encodeCapture,
  InProcessBus,
  KafkaBus,
  type Bus,
  type BusConsumer,
  type CapturedCall,
} from '../src/bus/index.js';
import { counterValue, makeCall } from './support/ingest.js';
import { startKafkaMock } from './support/kafka-mock.js';
import { silentLogger } from '../src/common/logger.js';
import { defaultModelSchema } from '../src/config/model-schema.js';
import { configSchema } from '../src/config/schema.js';
import { decodeCall } from '../src/protocol/index.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import {
  createKserveReceiver,
  KSERVE_REQUEST_TYPE,
  KSERVE_RESPONSE_TYPE,
  type KserveReceiver,
  type KserveReceiverOptions,
} from '../src/ingest/kserve-receiver.js';
import { kserveReceiverOf } from '../src/ingest/index.js';
import type { Store } from '../src/store/store.js';

interface Harness {
  url: string;
  receiver: KserveReceiver;
  metrics: Registry;
  captures: CapturedCall[];
  waitFor(n: number, timeoutMs?: number): Promise<CapturedCall[]>;
  close(): Promise<void>;
}

/** A real HTTP server on loopback with the receiver mounted where the API mounts it. */
async function harness(options: KserveReceiverOptions = {}, bus: Bus = new InProcessBus()): Promise<Harness> {
  const ctx: RuntimeContext = {
    config: configSchema.parse({}),
    // The receiver never touches the store.
    store: undefined as unknown as Store,
    bus,
    logger: silentLogger,
    metrics: new Registry(),
  };
  const receiver = createKserveReceiver(ctx, options);
  const app = new Hono();
  app.route('/ingest/kserve', receiver.app);
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const captures: CapturedCall[] = [];
  const consumer: BusConsumer = await bus.consume({
    handler: (batch) => {
      for (const m of batch.messages) captures.push(decodeCapture(m));
      return Promise.resolve();
    },
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest/kserve`,
    receiver,
    metrics: ctx.metrics,
    captures,
    async waitFor(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (captures.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${captures.length} of ${n} captures arrived`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return captures;
    },
    async close() {
      await receiver.stop();
      await consumer.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const v2Request = {
  inputs: [{ name: 'input-0', shape: [2, 4], datatype: 'FP32', data: [6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6] }],
};
const v2Response = {
  model_name: 'sklearn-iris',
  model_version: 'v1',
  id: 'd3b15cad-50a2-4eaf-80ce-8b0a428bd298',
  outputs: [{ name: 'output-0', shape: [2], datatype: 'INT32', data: [1, 1] }],
};

function headers(type: string, id: string, time: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'content-type': 'application/json',
    'ce-specversion': '1.0',
    'ce-id': id,
    'ce-type': type,
    'ce-source': 'http://localhost:9081/',
    'ce-time': time,
    'ce-inferenceservicename': 'sklearn-iris',
    'ce-namespace': 'default',
    'ce-component': 'predictor',
    'ce-endpoint': '',
    ...extra,
  };
}

async function post(url: string, h: Record<string, string>, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: h,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

describe('KServe InferenceLogger receiver', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness({ pairTtlMs: 60_000 });
  });
  afterAll(async () => {
    await h.close();
  });

  it.each([
    ['request first', ['request', 'response']],
    ['response first', ['response', 'request']],
  ] as const)('pairs request and response events by ce-id (%s)', async (_name, order) => {
    h.captures.length = 0;
    const id = `evt-${order[0]}`;
    const meta = JSON.stringify({
      traceparent: ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      cookie: ['x'],
    });
    for (const side of order) {
      const r =
        side === 'request'
          ? await post(
              h.url,
              headers(KSERVE_REQUEST_TYPE, id, '2026-11-22T01:00:00.000Z', { 'ce-metadata': meta }),
              v2Request,
            )
          : await post(h.url, headers(KSERVE_RESPONSE_TYPE, id, '2026-11-22T01:00:00.042Z'), v2Response);
      expect(r.status).toBe(202);
      expect(r.json).toEqual({ accepted: true, id });
    }
    const [call] = await h.waitFor(1);
    expect(h.captures).toHaveLength(1);
    expect(h.receiver.pending).toBe(0);
    expect(call).toMatchObject({
      source: 'kserve',
      requestId: id,
      model: 'sklearn-iris',
      status: 200,
      latencyMs: 42,
      startedAt: Date.parse('2026-11-22T01:00:00.000Z'),
      error: '',
      route: 'kserve:default/sklearn-iris/predictor',
    });
    expect(JSON.parse(call!.request.body.toString())).toEqual(v2Request);
    expect(JSON.parse(call!.response.body.toString())).toEqual(v2Response);
    expect(call!.request.contentType).toBe('application/json');
    if (order[0] === 'request') {
      expect(call!.headers).toEqual({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    }
    // The pair decodes into one row per batch element with the request's features and the outputs.
    const decoded = decodeCall(call!, defaultModelSchema);
    expect(decoded.rows).toHaveLength(2);
    expect(decoded.rows[0]!.features_num).toMatchObject({ 'input-0_0': 6.8, 'input-0_3': 1.4 });
    expect(decoded.rows[1]!.features_num['input-0_1']).toBeCloseTo(3.4, 6);
    expect(decoded.rows[1]!.outputs_num).toEqual({ 'output-0': 1 });
    expect(decoded.model).toBe('sklearn-iris');
    expect(decoded.version).toBe('v1');
  });

  it('keeps different ids apart and decodes percent-encoded attributes', async () => {
    h.captures.length = 0;
    await post(
      h.url,
      headers(KSERVE_REQUEST_TYPE, 'a%20b', '2026-11-22T01:00:00Z', { 'ce-inferenceservicename': 'iris%2Dv2' }),
      v2Request,
    );
    await post(h.url, headers(KSERVE_REQUEST_TYPE, 'other', '2026-11-22T01:00:00Z'), v2Request);
    await post(h.url, headers(KSERVE_RESPONSE_TYPE, 'a%20b', '2026-11-22T01:00:01Z'), v2Response);
    const [call] = await h.waitFor(1);
    expect(call).toMatchObject({ requestId: 'a b', model: 'iris-v2', latencyMs: 1000 });
    expect(h.receiver.pending).toBe(1);
    await post(h.url, headers(KSERVE_RESPONSE_TYPE, 'other', '2026-11-22T01:00:01Z'), v2Response);
    await h.waitFor(2);
    expect(h.receiver.pending).toBe(0);
  });

  const bad: [string, Record<string, string>, number, string, string][] = [
    ['missing ce-id', { 'ce-id': '' }, 400, 'ce-id', 'ce-id is missing'],
    ['missing ce-type', { 'ce-type': '' }, 400, 'ce-type', 'ce-type is missing'],
    ['unknown ce-type', { 'ce-type': 'com.example.other' }, 400, 'ce-type', 'com.example.other'],
    ['wrong specversion', { 'ce-specversion': '0.2' }, 400, 'ce-specversion', '0.2'],
    ['bad ce-time', { 'ce-time': 'yesterday' }, 400, 'ce-time', 'yesterday'],
    ['bad ce-metadata', { 'ce-metadata': '{nope' }, 400, 'ce-metadata', 'not JSON'],
    ['bad percent-encoding', { 'ce-inferenceservicename': '%E0%A4%A' }, 400, 'ce-inferenceservicename', 'percent'],
    ['structured mode', { 'content-type': 'application/cloudevents+json' }, 415, 'content-type', 'structured'],
  ];
  it.each(bad)('rejects an event with %s naming the problem', async (_name, override, status, field, text) => {
    const base = headers(KSERVE_REQUEST_TYPE, 'bad-1', '2026-11-22T01:00:00Z');
    const hdrs = { ...base, ...override };
    for (const [k, v] of Object.entries(override)) if (v === '') delete hdrs[k];
    const before = h.receiver.pending;
    const r = await post(h.url, hdrs, v2Request);
    expect(r.status).toBe(status);
    const err = (r.json as { error: { code: string; message: string; field: string } }).error;
    expect(err.field).toBe(field);
    expect(err.message).toContain(text);
    expect(err.code).toBe('bad_request');
    expect(h.receiver.pending).toBe(before);
  });
});

describe('KServe receiver limits and orphans', () => {
  it('answers 413 for a body over the limit', async () => {
    const h = await harness({ maxBodyBytes: 1024 });
    try {
      const r = await post(h.url, headers(KSERVE_REQUEST_TYPE, 'big', '2026-11-22T01:00:00Z'), 'x'.repeat(5000));
      expect(r.status).toBe(413);
      expect((r.json as { error: { code: string } }).error.code).toBe('payload_too_large');
      expect(h.receiver.pending).toBe(0);
    } finally {
      await h.close();
    }
  });

  it('flushes an orphan request after the TTL with status 0 and "response missing", and a lone response too', async () => {
    const h = await harness({ pairTtlMs: 600, sweepIntervalMs: 20 });
    try {
      const t0 = Date.now();
      await post(h.url, headers(KSERVE_REQUEST_TYPE, 'orphan-req', '2026-11-22T01:00:00Z'), v2Request);
      await post(h.url, headers(KSERVE_RESPONSE_TYPE, 'orphan-res', '2026-11-22T01:00:00Z'), v2Response);
      expect(h.receiver.pending).toBe(2);
      const calls = await h.waitFor(2);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(590);
      const byId = new Map(calls.map((c) => [c.requestId, c]));
      expect(byId.get('orphan-req')).toMatchObject({ status: 0, error: 'response missing' });
      expect(byId.get('orphan-req')!.response.size).toBe(0);
      expect(JSON.parse(byId.get('orphan-req')!.request.body.toString())).toEqual(v2Request);
      expect(byId.get('orphan-res')).toMatchObject({ status: 200, error: 'request missing' });
      expect(h.receiver.pending).toBe(0);
      // Features still decode from an orphan request: the call is not lost.
      expect(decodeCall(byId.get('orphan-req')!, defaultModelSchema).rows).toHaveLength(2);
    } finally {
      await h.close();
    }
  });

  it('bounds the pending map: the oldest half is emitted when full, the rest on stop', async () => {
    const h = await harness({ maxPending: 2, pairTtlMs: 60_000 });
    await post(h.url, headers(KSERVE_REQUEST_TYPE, 'p1', '2026-11-22T01:00:00Z'), v2Request);
    await post(h.url, headers(KSERVE_REQUEST_TYPE, 'p2', '2026-11-22T01:00:00Z'), v2Request);
    await post(h.url, headers(KSERVE_REQUEST_TYPE, 'p3', '2026-11-22T01:00:00Z'), v2Request);
    const [first] = await h.waitFor(1);
    expect(first).toMatchObject({ requestId: 'p1', error: 'response missing' });
    expect(h.receiver.pending).toBe(2);
    await h.receiver.stop();
    const all = await h.waitFor(3);
    expect(all.map((c) => c.requestId).sort()).toEqual(['p1', 'p2', 'p3']);
    await h.close();
  });

  it('emits the first of two requests with the same ce-id instead of dropping it', async () => {
    const h = await harness({ pairTtlMs: 60_000 });
    try {
      await post(h.url, headers(KSERVE_REQUEST_TYPE, 'dup', '2026-11-22T01:00:00Z'), v2Request);
      await post(h.url, headers(KSERVE_REQUEST_TYPE, 'dup', '2026-11-22T01:00:02Z'), v2Request);
      await post(h.url, headers(KSERVE_RESPONSE_TYPE, 'dup', '2026-11-22T01:00:02.010Z'), v2Response);
      const calls = await h.waitFor(2);
      expect(calls.map((c) => [c.status, c.error, c.latencyMs])).toEqual([
        [0, 'response missing', 0],
        [200, '', 10],
      ]);
      expect(h.receiver.pending).toBe(0);
    } finally {
      await h.close();
    }
  });

  it('truncates captured bodies at the capture cap', async () => {
    const h = await harness({ maxCaptureBytes: 10 });
    try {
      await post(h.url, headers(KSERVE_REQUEST_TYPE, 'cap', '2026-11-22T01:00:00Z'), v2Request);
      await post(h.url, headers(KSERVE_RESPONSE_TYPE, 'cap', '2026-11-22T01:00:00Z'), v2Response);
      const [c] = await h.waitFor(1);
      expect(c!.request).toMatchObject({ truncated: true, size: JSON.stringify(v2Request).length });
      expect(c!.request.body.length).toBe(10);
    } finally {
      await h.close();
    }
  });
});

describe('KServe receiver bounds and access', () => {
  const body = (n: number): string =>
    JSON.stringify({ inputs: [{ name: 'x', shape: [n], datatype: 'UINT8', data: Array(n).fill(7) }] });

  it('holds waiting halves bounded in bytes: the oldest go out unpaired (counted as shed), none is lost', async () => {
    const bound = 16 * 1024;
    const h = await harness({ maxPendingBytes: bound, pairTtlMs: 60_000 });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 60; i++) {
        const id = `bytes-${i}`;
        ids.push(id);
        const r = await post(h.url, headers(KSERVE_REQUEST_TYPE, id, '2026-11-22T01:00:00Z'), body(400));
        expect(r.status).toBe(202);
        expect(h.receiver.pendingBytes).toBeLessThanOrEqual(bound);
      }
      const overflowed = await counterValue(h.metrics, 'modelwatch_kserve_shed_total', { reason: 'overflow' });
      expect(overflowed).toBeGreaterThan(30);
      expect(h.receiver.pending).toBe(60 - overflowed);
      // Responses come later: the oldest requests already went out alone, so theirs go out alone too.
      for (const id of ids) {
        expect((await post(h.url, headers(KSERVE_RESPONSE_TYPE, id, '2026-11-22T01:00:01Z'), v2Response)).status).toBe(
          202,
        );
        expect(h.receiver.pendingBytes).toBeLessThanOrEqual(bound);
      }
      await h.receiver.stop();
      const calls = await h.waitFor(60 + overflowed);
      // Every accepted event reached the bus exactly once, paired or not.
      const requests = calls.filter((c) => c.request.size > 0).map((c) => c.requestId);
      const responses = calls.filter((c) => c.response.size > 0).map((c) => c.requestId);
      expect(requests.sort()).toEqual([...ids].sort());
      expect(responses.sort()).toEqual([...ids].sort());
      expect(calls.filter((c) => c.error === 'response missing')).toHaveLength(calls.length - 60);
    } finally {
      await h.close();
    }
  });

  it('keeps only maxCaptureBytes of a large event in memory, and records its full size', async () => {
    const h = await harness({ maxCaptureBytes: 1024 });
    try {
      const big = body(200_000);
      expect((await post(h.url, headers(KSERVE_REQUEST_TYPE, 'cap-1', '2026-11-22T01:00:00Z'), big)).status).toBe(202);
      expect(h.receiver.pendingBytes).toBeLessThan(1024 + 1024);
      await h.close();
      const [c] = await h.waitFor(1);
      expect(c!.request).toMatchObject({ size: Buffer.byteLength(big), truncated: true });
      expect(c!.request.body.equals(Buffer.from(big).subarray(0, 1024))).toBe(true);
    } finally {
      await h.close();
    }
  });

  it('refuses new events with 503 while the bus holds the bound unacknowledged; every 202 still arrives', async () => {
    const kafka = await startKafkaMock({ topics: { 'kserve.slow': 1 } });
    const bus = new KafkaBus({ brokers: kafka.brokers, topic: 'kserve.slow', groupId: 'kserve-slow' });
    const bound = 8 * 1024;
    const h = await harness({ maxPendingBytes: bound, pairTtlMs: 60_000 }, bus);
    try {
      await bus.publish([encodeCapture(makeCall(0))]); // connect and learn metadata before the delay
      await kafka.rtt(1, 1_500);
      const accepted: string[] = [];
      let refused = 0;
      for (let i = 0; i < 40; i++) {
        const id = `slow-${i}`;
        // Each pair is published at once; with the broker slow, unacknowledged bytes pile up.
        const a = await post(h.url, headers(KSERVE_REQUEST_TYPE, id, '2026-11-22T01:00:00Z'), body(300));
        if (a.status === 503) {
          refused++;
          continue;
        }
        expect(a.status).toBe(202);
        const b = await post(h.url, headers(KSERVE_RESPONSE_TYPE, id, '2026-11-22T01:00:01Z'), v2Response);
        expect([202, 503]).toContain(b.status);
        if (b.status === 503) refused++;
        accepted.push(id);
      }
      expect(refused).toBeGreaterThan(0);
      expect(await counterValue(h.metrics, 'modelwatch_kserve_shed_total', { reason: 'busy' })).toBe(refused);
      // Unacknowledged bytes stayed near the bound (one pair may start publishing just under it).
      expect(h.receiver.publishingBytes).toBeLessThan(bound + 4 * 1024);
      await kafka.rtt(1, 0);
      await h.receiver.stop();
      // The harness consumes the same topic: every accepted event arrives (the warm-up call too).
      const deadline = Date.now() + 20_000;
      const got = (): Set<string> => new Set(h.captures.map((c) => c.requestId).filter((id) => id.startsWith('slow-')));
      while (got().size < accepted.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(got()).toEqual(new Set(accepted));
    } finally {
      await h.close();
      await bus.close();
      await kafka.stop();
    }
  }, 60_000);

  it('requires the shared token when kserve.token is set (Bearer or x-modelwatch-token)', async () => {
    const h = await harness({ token: 'kserve-s3cret' });
    try {
      const hd = headers(KSERVE_REQUEST_TYPE, 'tok-1', '2026-11-22T01:00:00Z');
      const none = await post(h.url, hd, v2Request);
      expect(none.status).toBe(401);
      expect(none.json).toMatchObject({ error: { code: 'unauthorized' } });
      expect((await post(h.url, { ...hd, authorization: 'Bearer wrong' }, v2Request)).status).toBe(401);
      expect((await post(h.url, { ...hd, authorization: 'Bearer kserve-s3cret' }, v2Request)).status).toBe(202);
      expect(
        (await post(h.url, { ...hd, 'ce-id': 'tok-2', 'x-modelwatch-token': 'kserve-s3cret' }, v2Request)).status,
      ).toBe(202);
      expect(h.receiver.pending).toBe(2);
    } finally {
      await h.close();
    }
  });

  it('admits only kserve.allow addresses, and rejects a bad entry at start-up', async () => {
    const denied = await harness({ allow: ['10.0.0.0/8', '192.168.1.7'] });
    const admitted = await harness({ allow: ['10.0.0.0/8', '127.0.0.0/8'] });
    try {
      const hd = headers(KSERVE_REQUEST_TYPE, 'ip-1', '2026-11-22T01:00:00Z');
      const r = await post(denied.url, hd, v2Request);
      expect(r.status).toBe(403);
      expect(denied.receiver.pending).toBe(0);
      expect((await post(admitted.url, hd, v2Request)).status).toBe(202);
      expect(admitted.receiver.pending).toBe(1);
    } finally {
      await denied.close();
      await admitted.close();
    }
    const ctx = {
      config: configSchema.parse({}),
      bus: new InProcessBus(),
      logger: silentLogger,
      metrics: new Registry(),
    };
    expect(() => createKserveReceiver(ctx as unknown as RuntimeContext, { allow: ['10.0.0.0/40'] })).toThrow(
      /kserve.allow/,
    );
    expect(() => createKserveReceiver(ctx as unknown as RuntimeContext, { allow: ['not-an-ip'] })).toThrow(
      /kserve.allow/,
    );
  });
});

describe('KServe receiver in the API', () => {
  it('is served at POST /ingest/kserve by the API, with bearer auth not required, and flushes on stop', async () => {
    const bus = new InProcessBus();
    const ctx: RuntimeContext = {
      config: configSchema.parse({ api: { listen: '127.0.0.1:0', token: 'secret-token' } }),
      store: undefined as unknown as Store,
      bus,
      logger: silentLogger,
      metrics: new Registry(),
    };
    const captures: CapturedCall[] = [];
    const consumer = await bus.consume({
      handler: (batch) => {
        for (const m of batch.messages) captures.push(decodeCapture(m));
        return Promise.resolve();
      },
    });
    const api = await startApi(ctx);
    try {
      const url = `${api.url}/ingest/kserve`;
      const a = await post(url, headers(KSERVE_REQUEST_TYPE, 'api-1', '2026-11-22T01:00:00Z'), v2Request);
      expect(a.status).toBe(202);
      const b = await post(url, headers(KSERVE_RESPONSE_TYPE, 'api-1', '2026-11-22T01:00:00.005Z'), v2Response);
      expect(b.status).toBe(202);
      const bad = await post(url, headers('x.y', 'api-2', '2026-11-22T01:00:00Z'), v2Request);
      expect(bad.status).toBe(400);
      await post(url, headers(KSERVE_REQUEST_TYPE, 'api-3', '2026-11-22T01:00:00Z'), v2Request);
      const receiver = kserveReceiverOf(ctx);
      expect(receiver?.pending).toBe(1);
      await receiver!.stop();
      const deadline = Date.now() + 5000;
      while (captures.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const byId = new Map(captures.map((c) => [c.requestId, c]));
      expect(byId.get('api-1')).toMatchObject({ status: 200, latencyMs: 5, error: '' });
      expect(byId.get('api-3')).toMatchObject({ status: 0, error: 'response missing' });
    } finally {
      await api.stop();
      await consumer.stop();
    }
  });
});
