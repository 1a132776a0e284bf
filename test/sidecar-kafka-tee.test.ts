// The sidecar's Kafka tee end to end: captures go through the publisher worker (headers handed over as
// Kafka header blocks, values transferred) to a librdkafka mock broker, and a kafkajs consumer reads
// records identical to what the capture encoder writes for the same calls: the same headers in the same
// order, the same value bytes, at 1 KB and 64 KB bodies, with the tee's accounting exact.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaBus, RecordRing, decodeCapture, encodeCapture, type ConsumedMessage } from '../src/bus/index.js';
import { startSidecar, type RunningSidecar } from '../src/sidecar/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { waitFor } from './support/ingest.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';
import { call, runConcurrent, sidecarConfig, sidecarContext, testAgent } from './support/sidecar.js';
import { openTestStore } from './support/store.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let upstream: TestV2Server;
let kafka: KafkaMock;
let bus: KafkaBus;
let sidecar: RunningSidecar;

function inferBody(bytes: number): Buffer {
  // The test upstream's classifier takes FP32 [batch, 4]: ~13 bytes of JSON per value.
  const rows = Math.max(1, Math.floor((bytes - 80) / 52));
  const data = Array.from({ length: 4 * rows }, (_, i) => i + 0.1234567);
  return Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [rows, 4], datatype: 'FP32', data }] }));
}

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  upstream = await startV2Server();
  kafka = await startKafkaMock({ topics: { 'mw.tee': 2, 'mw.tee.ring': 1 } });
  bus = new KafkaBus({ brokers: kafka.brokers, topic: 'mw.tee', groupId: 'tee-e2e', publishTimeoutMs: 10_000 });
  const ctx = sidecarContext(sidecarConfig({ sidecar: { upstream: upstream.url } }), bus, store);
  sidecar = await startSidecar(ctx);
}, 60_000);

afterAll(async () => {
  await sidecar?.stop();
  await bus?.close();
  await kafka?.stop();
  await upstream?.stop();
  await testAgent.close();
  await cleanup?.();
});

describe('sidecar Kafka tee through the publisher worker', () => {
  it('puts on the topic exactly the records the capture encoder writes, headers in order', async () => {
    const bodies = new Map<string, Buffer>();
    const sizes = [1_000, 65_000];
    const statuses = await runConcurrent(120, 8, async (i) => {
      const body = Buffer.concat([inferBody(sizes[i % 2]!), Buffer.from(' '.repeat(i % 7))]);
      const id = `req-${i}-${randomBytes(4).toString('hex')}`;
      bodies.set(id, body);
      const r = await call(sidecar.url, '/v2/models/classifier/infer', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id },
        body,
      });
      return r.status;
    });
    expect(new Set(statuses)).toEqual(new Set([200]));
    await waitFor(() => sidecar.tee.stats().sent === 120, 20_000, 'every capture acknowledged');
    const st = sidecar.tee.stats();
    expect(st).toMatchObject({ captured: 120, sent: 120, dropped: 0, buffered: 0 });

    const got: ConsumedMessage[] = [];
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const consumer = await bus.consume({
      handler: (batch) => {
        got.push(...batch.messages);
        if (got.length >= 120) done();
        return Promise.resolve();
      },
    });
    await Promise.race([
      all,
      new Promise((_, reject) => setTimeout(() => reject(new Error('consume timeout')), 25_000)),
    ]);
    await consumer.stop();
    expect(got).toHaveLength(120);
    for (const m of got) {
      const decoded = decodeCapture(m);
      expect(m.key).toBe(decoded.requestId);
      expect(decoded.request.body.equals(bodies.get(decoded.requestId)!)).toBe(true);
      expect(decoded.status).toBe(200);
      // The encoder's own record for the decoded call: same headers, same order, same value bytes.
      const again = encodeCapture(decoded);
      expect(Object.keys(m.headers)).toEqual(Object.keys(again.headers));
      expect(m.headers).toEqual(again.headers);
      expect(m.value.equals(again.value)).toBe(true);
    }
  }, 90_000);

  it('reads same-size 64 KB requests straight into record ring slots, forwards them intact, and frees every slot', async () => {
    // A sidecar of its own on a topic of its own, so this test's records are the only ones read back.
    const ringBus = new KafkaBus({
      brokers: kafka.brokers,
      topic: 'mw.tee.ring',
      groupId: 'tee-ring',
      publishTimeoutMs: 10_000,
    });
    const ctx = sidecarContext(sidecarConfig({ sidecar: { upstream: upstream.url } }), ringBus, store);
    const ringSidecar = await startSidecar(ctx);
    try {
      const ring = ringSidecar.tee.recordBuffers;
      expect(ring).toBeInstanceOf(RecordRing);
      // Same length every time (a fixed-width id the upstream echoes): after two equal response sizes
      // the proxy reads each request straight into a ring slot laid out as the record and forwards it from there.
      const base = inferBody(65_000);
      const bodies = new Map<string, Buffer>();
      const n = 60;
      const statuses = await runConcurrent(n, 4, async (i) => {
        const id = `ring-${String(i).padStart(4, '0')}`;
        const body = Buffer.concat([Buffer.from(`{"id":"${id}",`), base.subarray(1)]);
        bodies.set(id, body);
        const r = await call(ringSidecar.url, '/v2/models/classifier/infer', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-request-id': id },
          body,
        });
        return r.status;
      });
      expect(new Set(statuses)).toEqual(new Set([200]));
      await waitFor(() => ringSidecar.tee.stats().sent === n, 20_000, 'every capture acknowledged');
      expect(ringSidecar.tee.stats()).toMatchObject({ captured: n, sent: n, dropped: 0, buffered: 0 });
      await waitFor(() => (ring as RecordRing).leased === 0, 5_000, 'every ring slot freed');

      const got: ConsumedMessage[] = [];
      let done!: () => void;
      const all = new Promise<void>((resolve) => (done = resolve));
      const consumer = await ringBus.consume({
        handler: (batch) => {
          got.push(...batch.messages);
          if (got.length >= n) done();
          return Promise.resolve();
        },
      });
      await Promise.race([
        all,
        new Promise((_, reject) => setTimeout(() => reject(new Error('consume timeout')), 25_000)),
      ]);
      await consumer.stop();
      expect(got).toHaveLength(n);
      for (const m of got) {
        const decoded = decodeCapture(m);
        expect(decoded.request.body.equals(bodies.get(decoded.requestId)!)).toBe(true);
        // The upstream parsed the forwarded body (a view of a slot) and echoed its id.
        expect(decoded.response.body.toString()).toContain(`"id":"${decoded.requestId}"`);
        expect(m.value.equals(encodeCapture(decoded).value)).toBe(true);
      }
    } finally {
      await ringSidecar.stop();
      await ringBus.close();
    }
  }, 90_000);
});
