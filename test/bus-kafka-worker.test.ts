import { readdirSync } from 'node:fs';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaWorkerBus, type BusMessage } from '../src/bus/index.js';
import { releaseArrayBuffers } from '../src/bus/kafka-worker.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';
import { niceOf } from './support/threads.js';

let mock: KafkaMock;

beforeAll(async () => {
  mock = await startKafkaMock({ brokers: 1, topics: { 'kw-a': 1, 'kw-b': 1, 'kw-c': 1 } });
});

afterAll(async () => {
  await mock.stop();
});

/** Reads `count` records of `topic` from the beginning with a plain kafkajs consumer. */
async function readAll(
  topic: string,
  count: number,
): Promise<{ key: string | null; value: Buffer; headers: Record<string, string> }[]> {
  const kafka = new Kafka({ brokers: mock.brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `read-${topic}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const out: { key: string | null; value: Buffer; headers: Record<string, string> }[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  await consumer.run({
    eachMessage: ({ message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
      out.push({ key: message.key?.toString('utf8') ?? null, value: message.value ?? Buffer.alloc(0), headers });
      if (out.length >= count) done();
      return Promise.resolve();
    },
  });
  let t: NodeJS.Timeout | undefined;
  await Promise.race([all, new Promise((r) => (t = setTimeout(r, 20_000)))]);
  clearTimeout(t);
  await consumer.disconnect();
  return out;
}

/** A value that owns its whole ArrayBuffer (transferred), or a slice of a shared one (copied). */
function value(i: number, owned: boolean): Buffer {
  const bytes = Buffer.from(Array.from({ length: 300 + i }, (_, j) => (i * 31 + j * 7) % 256));
  if (owned) {
    const v = Buffer.allocUnsafeSlow(bytes.length);
    bytes.copy(v);
    return v;
  }
  return Buffer.from(bytes); // small: pooled, shares its ArrayBuffer with other Buffers
}

describe('releaseArrayBuffers', () => {
  it('frees the buffers without a collection (the objects stay referenced) and detaches them', async () => {
    const held: ArrayBuffer[] = [];
    for (let i = 0; i < 16; i++) held.push(Buffer.allocUnsafeSlow(1 << 20).buffer);
    const before = process.memoryUsage().arrayBuffers;
    releaseArrayBuffers([...held, held[0]!.slice(0, 0)]);
    expect(held.every((b) => b.byteLength === 0)).toBe(true);
    // The closed channel drops its queue on the next turns of the event loop.
    for (let i = 0; i < 100 && before - process.memoryUsage().arrayBuffers < 15 << 20; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    // (Less a little: other small ArrayBuffers come and go meanwhile.)
    expect(before - process.memoryUsage().arrayBuffers).toBeGreaterThanOrEqual(15 << 20);
    // Detached buffers cannot move again: left alone, no throw.
    expect(() => releaseArrayBuffers(held)).not.toThrow();
  });
});

describe('KafkaWorkerBus on the librdkafka mock cluster', () => {
  it('publishes through a worker thread: keys, headers and value bytes arrive intact', async () => {
    const bus = new KafkaWorkerBus({ brokers: mock.brokers, topic: 'kw-a' });
    const expected = new Map<string, { key: string | null; value: Buffer; headers: Record<string, string> }>();
    const batches: BusMessage[][] = [];
    for (let b = 0; b < 4; b++) {
      const batch: BusMessage[] = [];
      for (let i = b * 25; i < (b + 1) * 25; i++) {
        const v = value(i, i % 2 === 0);
        const headers = { ce_id: `ev-${i}`, ce_n: String(i), 'content-type': 'application/x-test' };
        const key = i === 3 ? null : `req-${i}`;
        expected.set(`ev-${i}`, { key, value: Buffer.from(v), headers });
        batch.push({ key, value: v, headers });
      }
      batches.push(batch);
    }
    await Promise.all(batches.map((batch) => bus.publish(batch)));
    expect(bus.workerThreadId).toBeGreaterThan(0);
    // The worker runs with a small young generation by default (its RSS stays low under large records).
    expect(bus.workerResourceLimits?.maxYoungGenerationSizeMb).toBe(8);
    // Owned values were transferred (detached here), shared ones copied (still readable).
    expect(batches[0]![0]!.value.byteLength).toBe(0);
    expect(batches[0]![1]!.value.byteLength).toBe(301);
    const got = await readAll('kw-a', 100);
    expect(got).toHaveLength(100);
    for (const m of got) {
      const want = expected.get(m.headers.ce_id ?? '');
      expect(want).toBeDefined();
      expect(m.key).toBe(want!.key);
      expect(m.headers).toEqual(want!.headers);
      expect(m.value.equals(want!.value)).toBe(true);
    }
    await bus.close();
  });

  it('copies every value when transferValues is false', async () => {
    const bus = new KafkaWorkerBus({
      brokers: mock.brokers,
      topic: 'kw-b',
      transferValues: false,
      workerYoungGenerationMb: 0,
    });
    const v = value(5, true);
    await bus.publish([{ key: 'k', value: v, headers: { ce_id: 'x' } }]);
    expect(v.byteLength).toBe(305);
    // Without its own bound the worker gets V8's default young generation (not the 8 MB default).
    expect(bus.workerResourceLimits?.maxYoungGenerationSizeMb).not.toBe(8);
    const [m] = await readAll('kw-b', 1);
    expect(m?.value.equals(v)).toBe(true);
    await bus.close();
  });

  it('rejects cleanly while the broker is down past the timeout, recovers after, and close() terminates the worker', async () => {
    const bus = new KafkaWorkerBus({
      brokers: mock.brokers,
      topic: 'kw-c',
      publishTimeoutMs: 2_000,
      requestTimeoutMs: 1_000,
      connectionTimeoutMs: 500,
      workerGraceMs: 1_000,
    });
    await bus.publish([{ key: 'a', value: value(1, true), headers: {} }]);
    const threadId = bus.workerThreadId;
    expect(threadId).toBeGreaterThan(0);
    // The worker thread (and only it) runs 19 nicer than the request thread (capped at 19).
    const base = niceOf(process.pid);
    expect(readdirSync('/proc/self/task').filter((tid) => niceOf(tid) === Math.min(19, base + 19))).toHaveLength(1);
    await mock.down(1);
    const started = Date.now();
    await expect(bus.publish([{ key: 'b', value: value(2, true), headers: {} }])).rejects.toMatchObject({
      code: 'bus_unavailable',
      retryable: true,
    });
    expect(Date.now() - started).toBeLessThan(3_500);
    await mock.up(1);
    // Recovers: kafkajs reconnects on its retry backoff, which on a loaded machine can outlast one publish
    // deadline, so a publish may still be refused (retryably) for a while; one must succeed within 20 s.
    const recoverBy = Date.now() + 20_000;
    for (;;) {
      try {
        await bus.publish([{ key: 'c', value: value(3, true), headers: {} }]);
        break;
      } catch (err) {
        expect(err).toMatchObject({ code: 'bus_unavailable', retryable: true });
        if (Date.now() > recoverBy) throw err;
      }
    }
    // Same worker throughout: the failure was the broker's, not the thread's.
    expect(bus.workerThreadId).toBe(threadId);

    // The worker is an OS thread of this process: close() must end it.
    const threadsAlive = (): number => readdirSync('/proc/self/task').length;
    const during = threadsAlive();
    await bus.close();
    expect(bus.workerThreadId).toBeUndefined();
    expect(threadsAlive()).toBeLessThan(during);
    await expect(bus.publish([{ key: 'd', value: value(4, true), headers: {} }])).rejects.toMatchObject({
      code: 'bus_unavailable',
    });
    await expect(bus.consume()).rejects.toThrow(/only publishes/);
  }, 30_000);

  it('rejects a broker-less configuration at construction', () => {
    expect(() => new KafkaWorkerBus({ brokers: [] })).toThrow(RangeError);
    expect(() => new KafkaWorkerBus({ brokers: ['localhost:9092'], workerYoungGenerationMb: -1 })).toThrow(
      /workerYoungGenerationMb/,
    );
  });
});
