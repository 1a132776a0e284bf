// The tee's off-heap backlog: once a whole batch waits (the bus is behind, or down), later records are held
// as bytes in slab buffers rather than as objects (TeeOptions.heldSlabBytes). Held records come back intact
// and in order, through a broker outage on the librdkafka mock cluster; the byte bound and its drops are the
// same; and a held record leaves next to nothing on the V8 heap (measured against its own size).
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  InProcessBus,
  KafkaBus,
  KafkaWorkerBus,
  encodeCapture,
  messageBytes,
  type BusMessage,
  type ConsumedMessage,
} from '../src/bus/index.js';
import { HeaderBlockMessage, headerBlockOf } from '../src/bus/kafka-header-block.js';
import { HeldRecords } from '../src/sidecar/held-records.js';
import { Tee, type TeeStats } from '../src/sidecar/index.js';
import { makeCall, waitFor } from './support/ingest.js';
import { startKafkaMock } from './support/kafka-mock.js';
import { RecordingBus, StallableBus } from './support/sidecar.js';

const exact = (s: TeeStats): void => {
  expect(s.captured).toBe(s.sent + s.dropped + s.buffered);
  expect(s.dropped).toBe(s.droppedBy.buffer_full + s.droppedBy.publish_failed + s.droppedBy.shutdown);
};

/** A value of `n` bytes with a pattern of its own. */
function bytesOf(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 131 + i * 7) & 0xff;
  return b;
}

describe('HeldRecords', () => {
  it('gives back every message byte for byte, first in first out, across slabs and past a slab size', () => {
    const held = new HeldRecords({ slabBytes: 4096, spareSlabs: 1 });
    const messages: BusMessage[] = [
      { key: 'req-1', value: bytesOf(100, 1), headers: { ce_id: 'a', 'content-type': 'application/json' } },
      { key: null, value: Buffer.alloc(0), headers: {} },
      { key: 'clé-ü-€', value: bytesOf(3000, 2), headers: { ce_model: 'modèle', ce_error: 'réinitialisé' } },
      new HeaderBlockMessage('req-4', bytesOf(9000, 4), headerBlockOf({ ce_id: 'd', ce_status: '200' })),
      { key: 'req-5', value: bytesOf(1500, 5), headers: { b: '2', a: '1' } },
    ];
    let counted = 0;
    for (const [i, m] of messages.entries()) {
      held.push(m, 10 + i);
      counted += 10 + i;
    }
    expect(held.count).toBe(5);
    expect(held.bytes).toBe(counted);
    // 4 KiB slabs: the 9,000-byte value needs a slab of its own.
    expect(held.slabCount).toBeGreaterThanOrEqual(3);
    const allocated: number[] = [];
    for (const [i, want] of messages.entries()) {
      expect(held.peekCounted()).toBe(10 + i);
      const got = held.shift((n) => {
        allocated.push(n);
        return Buffer.alloc(n);
      });
      expect(got.key).toBe(want.key);
      expect(got.value.equals(want.value)).toBe(true);
      expect(got.headers).toEqual(want.headers);
      // Header order is part of the record.
      expect(Object.keys(got.headers)).toEqual(Object.keys(want.headers));
      expect(got.kafkaHeaders).toBe(want.kafkaHeaders);
    }
    expect(allocated).toEqual(messages.map((m) => m.value.length));
    expect(held.count).toBe(0);
    expect(held.bytes).toBe(0);
    expect(held.slabCount).toBeLessThanOrEqual(1);
    expect(() => held.shift((n) => Buffer.alloc(n))).toThrow(RangeError);
    // Reused after being emptied, and cleared.
    held.push(messages[0]!, 1);
    held.push(messages[4]!, 2);
    held.clear();
    expect(held.count).toBe(0);
    expect(held.bytes).toBe(0);
    held.push(messages[2]!, 3);
    expect(held.shift((n) => Buffer.alloc(n)).key).toBe('clé-ü-€');
    expect(() => new HeldRecords({ slabBytes: 100 })).toThrow(RangeError);
  });

  it('keeps emptied slabs up to spareSlabs and fills them again before taking new memory', () => {
    const held = new HeldRecords({ slabBytes: 8192, spareSlabs: 4 });
    const value = bytesOf(3000, 7);
    const backlog = (n: number): void => {
      for (let i = 0; i < n; i++) held.push({ key: `k-${i}`, value, headers: {} }, 1);
    };
    const drain = (): void => {
      while (held.count > 0) held.shift((n) => Buffer.alloc(n));
    };
    // Two ~3 kB frames per 8 KiB slab: 10 records fill 5 slabs.
    backlog(10);
    expect(held.slabCount).toBe(5);
    drain();
    // The slab being read stays in place (emptied); the other four are kept.
    expect(held.slabCount).toBe(1);
    expect(held.spareCount).toBe(4);
    backlog(10);
    expect(held.slabCount).toBe(5);
    expect(held.spareCount).toBe(0);
    drain();
    // A larger backlog than the spares cover: the slabs past them are not kept.
    backlog(16);
    expect(held.slabCount).toBe(8);
    drain();
    expect(held.spareCount).toBe(4);
  });
});

describe('Tee off-heap backlog', () => {
  it('holds records past a whole batch off the heap, in order, inside the byte bound; drops past it are counted', async () => {
    const one = messageBytes(encodeCapture(makeCall(100)));
    // Ids 100..999 encode to the same size.
    expect(messageBytes(encodeCapture(makeCall(999)))).toBe(one);
    const recorded = new RecordingBus(new InProcessBus());
    const bus = new StallableBus(recorded);
    bus.stall();
    const tee = new Tee(bus, { maxBufferBytes: one * 60, maxBatchMessages: 10, flushIntervalMs: 10_000 });
    const accepted = Array.from({ length: 80 }, (_, i) => tee.offer(makeCall(100 + i)));
    expect(accepted.filter(Boolean)).toHaveLength(60);
    let s = tee.stats();
    exact(s);
    // A whole batch queued starts a publish (stalled: in flight); the next batch's worth waits as objects,
    // the rest as bytes.
    expect(s).toMatchObject({ buffered: 60, inFlight: 10, heldOffHeap: 40, droppedBy: { buffer_full: 20 } });
    expect(s.bufferedBytes).toBe(one * 60);
    bus.release();
    await waitFor(() => tee.stats().inFlight === 0, 5_000, 'the stalled batch settled');
    await tee.flush();
    s = tee.stats();
    exact(s);
    expect(s).toMatchObject({ captured: 80, sent: 60, buffered: 0, heldOffHeap: 0, bufferedBytes: 0 });
    expect(recorded.published.map((m) => m.key)).toEqual(Array.from({ length: 60 }, (_, i) => `req-${100 + i}`));
    for (const [i, m] of recorded.published.entries()) {
      const want = encodeCapture(makeCall(100 + i));
      expect(m.value.equals(want.value)).toBe(true);
      expect(m.headers).toEqual(want.headers);
      expect(messageBytes(m)).toBe(one);
    }
    // Room again, and records queue as objects again once the backlog is gone.
    expect(tee.offer(makeCall(500))).toBe(true);
    expect(tee.stats().heldOffHeap).toBe(0);
    await tee.close(1_000);
    expect(tee.stats()).toMatchObject({ captured: 81, sent: 61, buffered: 0 });
  });

  it('counts the backlog in records, not bytes: a batch full by bytes alone stays as objects', () => {
    const one = messageBytes(encodeCapture(makeCall(100)));
    const bus = new StallableBus(new InProcessBus());
    bus.stall();
    const tee = new Tee(bus, { maxBatchMessages: 10, maxBatchBytes: one * 2, flushIntervalMs: 10_000 });
    for (let i = 0; i < 9; i++) tee.offer(makeCall(100 + i));
    expect(tee.stats()).toMatchObject({ buffered: 9, heldOffHeap: 0 });
    // The tenth record makes a whole batch by count: a publish starts (and stalls) with the first ten.
    tee.offer(makeCall(109));
    for (let i = 10; i < 25; i++) tee.offer(makeCall(100 + i));
    const s = tee.stats();
    exact(s);
    expect(s.buffered).toBe(25);
    expect(s.heldOffHeap).toBeGreaterThan(0);
    void tee.close(0);
  });

  it('drops what is still held at close as shutdown, counted once', async () => {
    const bus = new StallableBus(new InProcessBus());
    bus.stall();
    const tee = new Tee(bus, { maxBatchMessages: 5, flushIntervalMs: 10_000, publishTimeoutMs: 60_000 });
    for (let i = 0; i < 40; i++) tee.offer(makeCall(i));
    expect(tee.stats().heldOffHeap).toBe(30);
    await tee.close(200);
    const s = tee.stats();
    exact(s);
    // One batch in flight (stalled); the 35 others were waiting, 5 as objects and 30 as bytes.
    expect(s).toMatchObject({ captured: 40, heldOffHeap: 0, inFlight: 5, droppedBy: { shutdown: 35 } });
    bus.release();
    await waitFor(() => tee.stats().inFlight === 0, 5_000, 'the stalled batch settled');
    expect(tee.stats()).toMatchObject({ sent: 5, buffered: 0 });
  });

  it('keeps next to nothing on the heap per held record (a held object cost more than its header block)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const n = 3_000;
    // ~1 KB bodies, as the sidecar bench's 1 KB variant.
    const calls = Array.from({ length: n }, (_, i) => makeCall(i + 1, 25, { latencyMs: 1 + i / 7 }));
    // The size of a record, computed independently of the tee: value bytes plus its header block's bytes.
    const plain = encodeCapture(calls[0]!);
    const recordBytes = plain.value.length + headerBlockOf(plain.headers).length;
    expect(recordBytes).toBeGreaterThan(1_000);
    const heapPerRecord = (offHeap: boolean): { heap: number; tee: Tee } => {
      const bus = new StallableBus(new InProcessBus());
      bus.stall();
      const tee = new Tee(bus, {
        kafkaHeaderBlock: true,
        flushIntervalMs: 10_000,
        // Not started; the one batch a full queue sends stalls: everything waits. With a batch larger than
        // the test, every record waits as an object.
        maxBatchMessages: offHeap ? 10 : n + 1,
      });
      for (let i = 0; i < 200; i++) tee.offer(calls[i]!); // the first batch, and the slabs, in place first
      gc();
      const before = process.memoryUsage().heapUsed;
      for (let i = 200; i < n; i++) tee.offer(calls[i]!);
      gc();
      const after = process.memoryUsage().heapUsed;
      expect(tee.stats()).toMatchObject({ buffered: n, dropped: 0 });
      return { heap: (after - before) / (n - 200), tee };
    };
    const objects = heapPerRecord(false);
    expect(objects.tee.stats().heldOffHeap).toBe(0);
    const slabs = heapPerRecord(true);
    // One batch in flight, one waiting as objects, the rest as bytes.
    expect(slabs.tee.stats().heldOffHeap).toBe(n - 20);
    // As objects a held record cost the heap ~90% of its size here (header block string, message, entry;
    // the value is external memory either way); held as bytes, ~3 B (a new slab's object now and then).
    expect(objects.heap).toBeGreaterThan(recordBytes * 0.3);
    expect(slabs.heap).toBeLessThan(recordBytes * 0.02);
    void objects.tee.close(0);
    void slabs.tee.close(0);
  });

  it('holds its backlog in memory V8 does not weigh against the request thread’s old generation', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // V8 adds the external memory an isolate allocated since its last major collection (ArrayBuffer
    // backing stores) to its old generation when it schedules the next one: a backlog held in ordinary
    // ArrayBuffers brought a major collection of the request thread into a Kafka outage.
    const external = (): number => getHeapStatistics().external_memory;
    const n = 6_000;
    const calls = Array.from({ length: n }, (_, i) => makeCall(i + 1, 25, { latencyMs: 1 + i / 7 }));
    const bus = new StallableBus(new InProcessBus());
    bus.stall();
    const tee = new Tee(bus, { kafkaHeaderBlock: true, flushIntervalMs: 10_000, maxBatchMessages: 10 });
    for (let i = 0; i < 20; i++) tee.offer(calls[i]!); // one batch in flight, one waiting as objects
    gc();
    const before = external();
    for (let i = 20; i < n; i++) tee.offer(calls[i]!);
    gc();
    const grown = external() - before;
    const s = tee.stats();
    expect(s).toMatchObject({ buffered: n, dropped: 0, heldOffHeap: n - 20 });
    // ~1.2 kB a record: ~7 MB held as bytes, against which the isolate's external memory grew by less than
    // one slab (in ArrayBuffer slabs it grew by the backlog's size).
    const heldBytes = s.bufferedBytes * ((n - 20) / n);
    expect(heldBytes).toBeGreaterThan(6_000_000);
    expect(grown).toBeLessThan(1024 * 1024);
    void tee.close(0);
  });

  it('gives back the ring slot of each record it holds as bytes, and rebuilds large records into ring slots', async () => {
    const kafka = await startKafkaMock({ brokers: 1, topics: { 'tee.held.ring': 1 } });
    const bus = new KafkaWorkerBus({
      brokers: kafka.brokers,
      topic: 'tee.held.ring',
      recordRingSlots: 12,
      recordRingSlotBytes: 16_384,
    });
    const consumerBus = new KafkaBus({ brokers: kafka.brokers, topic: 'tee.held.ring', groupId: 'tee-held-ring' });
    // Not started: only a whole batch (4 records) starts a publish.
    const tee = new Tee(bus, { kafkaHeaderBlock: true, maxBatchMessages: 4, flushIntervalMs: 10_000 });
    try {
      const n = 30;
      const want = new Map<string, Buffer>();
      for (let i = 0; i < n; i++) {
        // ~12 kB values: each offered from a ring slot (the request thread's allocation of a large record).
        const value = tee.allocateRecord(12_000);
        for (let j = 0; j < value.length; j++) value[j] = (i * 37 + j * 11) & 0xff;
        value.writeUInt32BE(8_000, 0);
        want.set(`req-${i}`, Buffer.from(value));
        const c = makeCall(i);
        tee.offer(
          {
            ...c,
            request: { ...c.request, size: 8_000 },
            response: { ...c.response, size: 3_996 },
          },
          { value },
        );
      }
      let s = tee.stats();
      exact(s);
      // One batch in flight, one waiting as objects, the rest as bytes.
      expect(s.heldOffHeap).toBe(n - 8);
      // Held as bytes, a record's slot is given back at once: only the 8 records in flight or waiting as
      // objects hold one, so every record found a free slot (12) when it was allocated.
      expect(bus.ringSlotsLeased).toBe(8);
      expect(bus.recordBuffers!.fullFallbacks).toBe(0);
      await tee.flush();
      await waitFor(() => tee.stats().buffered === 0, 20_000, 'every record sent');
      s = tee.stats();
      exact(s);
      expect(s).toMatchObject({ captured: n, sent: n, dropped: 0 });
      await waitFor(() => bus.ringSlotsLeased === 0, 5_000, 'every slot given back');
      // Rebuilt into ring slots (12 kB fits a 16 kB slot) rather than buffers of their own, unless all were taken.
      expect(bus.recordBuffers!.fullFallbacks).toBeLessThan(n);
      const got: ConsumedMessage[] = [];
      const consumer = await consumerBus.consume({
        handler: (batch) => {
          got.push(...batch.messages);
          return Promise.resolve();
        },
      });
      await waitFor(() => got.length >= n, 30_000, 'every record consumed');
      await consumer.stop();
      expect(got.map((m) => m.key)).toEqual(Array.from({ length: n }, (_, i) => `req-${i}`));
      for (const m of got) expect(m.value.equals(want.get(m.key!)!)).toBe(true);
    } finally {
      await tee.close(1_000);
      await bus.close();
      await consumerBus.close();
      await kafka.stop();
    }
  }, 120_000);

  it('holds records off the heap while the broker is down, then delivers every one once, intact and in order', async () => {
    const kafka = await startKafkaMock({ brokers: 1, topics: { 'tee.held': 1 } });
    const bus = new KafkaWorkerBus({ brokers: kafka.brokers, topic: 'tee.held' });
    const consumerBus = new KafkaBus({ brokers: kafka.brokers, topic: 'tee.held', groupId: 'tee-held' });
    const tee = new Tee(bus, {
      kafkaHeaderBlock: true,
      flushIntervalMs: 10,
      maxBatchMessages: 20,
      maxInFlightBatches: 1,
      // Longer than the outage: the batch in flight when the broker goes down is retried by the producer
      // and acknowledged after, and nothing overtakes it.
      publishTimeoutMs: 25_000,
    });
    try {
      tee.start();
      tee.offer(makeCall(0));
      await waitFor(() => tee.stats().sent === 1, 20_000, 'the producer connected');
      await kafka.down(1);
      const n = 400;
      for (let i = 1; i <= n; i++) {
        tee.offer(makeCall(i));
        if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5));
      }
      let s = tee.stats();
      exact(s);
      expect(s.sent).toBe(1);
      expect(s.dropped).toBe(0);
      expect(s.heldOffHeap).toBeGreaterThanOrEqual(n - 60);
      await kafka.up(1);
      await waitFor(() => tee.stats().buffered === 0, 40_000, 'the backlog delivered');
      s = tee.stats();
      exact(s);
      expect(s).toMatchObject({ captured: n + 1, sent: n + 1, dropped: 0, heldOffHeap: 0 });
      const got: ConsumedMessage[] = [];
      const consumer = await consumerBus.consume({
        handler: (batch) => {
          got.push(...batch.messages);
          return Promise.resolve();
        },
      });
      await waitFor(() => got.length >= n + 1, 30_000, 'every record consumed');
      await consumer.stop();
      expect(got.map((m) => m.key)).toEqual(Array.from({ length: n + 1 }, (_, i) => `req-${i}`));
      for (const [i, m] of got.entries()) {
        const want = encodeCapture(makeCall(i));
        expect(m.value.equals(want.value)).toBe(true);
        expect(m.headers).toEqual(want.headers);
        expect(Object.keys(m.headers)).toEqual(Object.keys(want.headers));
      }
    } finally {
      await tee.close(1_000);
      await bus.close();
      await consumerBus.close();
      await kafka.stop();
    }
  }, 120_000);
});
