import { readdirSync } from 'node:fs';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaWorkerBus, decodeCapture, type BusMessage, type CapturedCall } from '../src/bus/index.js';
import { Tee } from '../src/sidecar/tee.js';
import { releaseArrayBuffers } from '../src/bus/kafka-worker.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';
import { niceOf } from './support/threads.js';

let mock: KafkaMock;

beforeAll(async () => {
  mock = await startKafkaMock({
    brokers: 1,
    topics: { 'kw-a': 1, 'kw-b': 1, 'kw-c': 1, 'kw-d': 2, 'kw-e': 1, 'kw-f': 1, 'kw-g': 1 },
  });
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

/** Waits until `cond` holds (polling), or fails after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const by = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > by) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Fills `v` with a pattern of its own (`seed`), and returns a copy to compare against. */
function pattern(v: Buffer, seed: number): Buffer {
  for (let j = 0; j < v.length; j++) v[j] = (seed * 131 + j * 17) % 251;
  return Buffer.from(v);
}

describe('KafkaWorkerBus record ring', () => {
  it('reads ring values in place, frees each slot once its publish is acknowledged (in any order), and falls back when full', async () => {
    const bus = new KafkaWorkerBus({
      brokers: mock.brokers,
      topic: 'kw-d',
      recordRingSlots: 4,
      recordRingSlotBytes: 65_536,
    });
    const ring = bus.recordBuffers!;
    const expected = new Map<string, Buffer>();
    const messages: BusMessage[] = [];
    for (let i = 0; i < 6; i++) {
      const v = ring.allocate(5_000 + i * 9_000);
      expected.set(`r-${i}`, pattern(v, i));
      messages.push({ key: `k-${i}`, value: v, headers: { ce_id: `r-${i}` } });
    }
    // Four slots: the last two values got buffers of their own.
    expect(bus.ringSlotsLeased).toBe(4);
    expect(ring.fullFallbacks).toBe(2);
    expect(messages.map((m) => m.value.buffer === ring.buffer)).toEqual([true, true, true, true, false, false]);
    // Three publishes in flight at once, answered in whatever order the broker and the worker take.
    await Promise.all([
      bus.publish(messages.slice(0, 1)),
      bus.publish(messages.slice(1, 4)),
      bus.publish(messages.slice(4)),
    ]);
    await until(() => bus.ringSlotsLeased === 0, 5_000, 'the slots to be freed');
    // Ring values were read where they are (not detached); the others were transferred.
    expect(messages[0]!.value.byteLength).toBe(5_000);
    expect(messages[5]!.value.byteLength).toBe(0);
    const got = await readAll('kw-d', 6);
    expect(got).toHaveLength(6);
    for (const m of got) expect(m.value.equals(expected.get(m.headers.ce_id ?? '')!)).toBe(true);
    await bus.close();
  });

  it('keeps a slot leased past a publish that failed while the broker was down, until the producer is done with it', async () => {
    const bus = new KafkaWorkerBus({
      brokers: mock.brokers,
      topic: 'kw-e',
      publishTimeoutMs: 1_500,
      requestTimeoutMs: 1_000,
      connectionTimeoutMs: 500,
      workerGraceMs: 1_000,
    });
    await bus.publish([{ key: 'warm', value: value(1, true), headers: { ce_id: 'warm' } }]);
    const v = bus.recordBuffers!.allocate(20_000);
    const want = pattern(v, 7);
    await mock.down(1);
    try {
      await expect(bus.publish([{ key: 'late', value: v, headers: { ce_id: 'late' } }])).rejects.toMatchObject({
        code: 'bus_unavailable',
      });
      // The producer is still retrying (reading the slot): it must not be reused yet.
      expect(bus.ringSlotsLeased).toBe(1);
      const other = bus.recordBuffers!.allocate(20_000);
      expect(other.byteOffset).not.toBe(v.byteOffset);
      bus.recordBuffers!.release(other);
    } finally {
      await mock.up(1);
    }
    await until(() => bus.ringSlotsLeased === 0, 40_000, 'the producer to finish with the slot');
    // What the producer sent in the end (delivered after the broker came back) is the value as written.
    const got = await readAll('kw-e', 2);
    const late = got.find((m) => m.headers.ce_id === 'late');
    if (late !== undefined) expect(late.value.equals(want)).toBe(true);
    await bus.close();
  }, 60_000);

  it('frees the slots of a worker that died and publishes through its successor from the same ring', async () => {
    const bus = new KafkaWorkerBus({ brokers: mock.brokers, topic: 'kw-f', publishTimeoutMs: 5_000 });
    await bus.publish([{ key: 'warm', value: value(2, true), headers: { ce_id: 'warm' } }]);
    const first = bus.workerThreadId;
    await mock.down(1);
    let publishing: Promise<void>;
    try {
      publishing = bus.publish([
        { key: 'held', value: bus.recordBuffers!.allocate(30_000), headers: { ce_id: 'held' } },
      ]);
      expect(bus.ringSlotsLeased).toBe(1);
      await bus.terminateWorker();
      await expect(publishing).rejects.toMatchObject({ code: 'bus_unavailable', retryable: true });
      expect(bus.ringSlotsLeased).toBe(0);
    } finally {
      await mock.up(1);
    }
    const v = bus.recordBuffers!.allocate(30_000);
    const want = pattern(v, 3);
    for (let attempt = 0; ; attempt++) {
      try {
        await bus.publish([{ key: 'after', value: v, headers: { ce_id: 'after' } }]);
        break;
      } catch (err) {
        // kafkajs's reconnect backoff can outlast a publish right after the broker returns.
        if (attempt >= 5) throw err;
      }
    }
    expect(bus.workerThreadId).not.toBe(first);
    const got = await readAll('kw-f', 3);
    const after = got.filter((m) => m.headers.ce_id === 'after');
    expect(after.length).toBeGreaterThanOrEqual(1);
    for (const m of after) expect(m.value.equals(want)).toBe(true);
    await bus.close();
    expect(bus.ringSlotsLeased).toBe(0);
  }, 60_000);

  it('the tee gives back the slots of records it drops (buffer full, shutdown) and of records it sent', async () => {
    const bus = new KafkaWorkerBus({
      brokers: mock.brokers,
      topic: 'kw-g',
      recordRingSlots: 8,
      recordRingSlotBytes: 16_384,
    });
    // Room for two 12 kB records (plus headers), not three; the flusher is not started.
    const tee = new Tee(bus, { maxBufferBytes: 30_000, kafkaHeaderBlock: true });
    const call = (i: number): CapturedCall => ({
      eventId: `0190f2a0-0000-7000-8000-${String(i).padStart(12, '0')}`,
      requestId: `req-${i}`,
      source: 'sidecar',
      model: 'm',
      version: '1',
      route: '/v2/models/m/infer',
      method: 'POST',
      status: 200,
      latencyMs: 1,
      startedAt: 1_764_460_800_000,
      request: {
        body: Buffer.alloc(0),
        size: 8_000,
        truncated: false,
        contentType: 'application/json',
        contentEncoding: '',
      },
      response: {
        body: Buffer.alloc(0),
        size: 3_996,
        truncated: false,
        contentType: 'application/json',
        contentEncoding: '',
      },
      headers: {},
      error: '',
    });
    const sent = new Map<string, Buffer>();
    for (let i = 0; i < 4; i++) {
      const value = tee.allocateRecord(12_000);
      pattern(value, i).copy(value);
      value.writeUInt32BE(8_000, 0);
      sent.set(`req-${i}`, Buffer.from(value));
      tee.offer(call(i), { value });
    }
    expect(tee.stats().droppedBy.buffer_full).toBe(2);
    expect(bus.ringSlotsLeased).toBe(2);
    await tee.close(10_000);
    expect(tee.stats()).toMatchObject({ sent: 2, buffered: 0 });
    await until(() => bus.ringSlotsLeased === 0, 5_000, 'the sent records to free their slots');
    // After close: dropped as shutdown, slot given back at once.
    tee.offer(call(9), { value: tee.allocateRecord(12_000) });
    expect(tee.stats().droppedBy.shutdown).toBe(1);
    expect(bus.ringSlotsLeased).toBe(0);
    const got = await readAll('kw-g', 2);
    expect(got.map((m) => m.key).sort()).toEqual(['req-0', 'req-1']);
    for (const m of got) {
      const d = decodeCapture({ key: m.key, value: m.value, headers: m.headers });
      expect(d.request.body.length).toBe(8_000);
      expect(m.value.equals(sent.get(m.key!)!)).toBe(true);
    }
    await bus.close();
  });
});
