import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaBus, type BusMessage, type ConsumedBatch } from '../src/bus/index.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';

let mock: KafkaMock;

beforeAll(async () => {
  mock = await startKafkaMock({ brokers: 1, topics: { 'bus-a': 3, 'bus-b': 1, 'bus-c': 1 } });
});

afterAll(async () => {
  await mock.stop();
});

function msg(i: number): BusMessage {
  return { key: `req-${i}`, value: Buffer.from(`value-${i}`), headers: { ce_id: `ev-${i}`, ce_n: String(i) } };
}

async function committed(groupId: string, topic: string): Promise<Map<number, number>> {
  const admin = new Kafka({ brokers: mock.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map((t?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

describe('KafkaBus on the librdkafka mock cluster', () => {
  it('publishes with keys and headers, consumes every message once and commits after the handler', async () => {
    const bus = new KafkaBus({ brokers: mock.brokers, topic: 'bus-a', groupId: 'g-a' });
    await bus.publish(Array.from({ length: 50 }, (_, i) => msg(i)));
    const seen = new Map<string, BusMessage>();
    let joined!: () => void;
    const ready = new Promise<void>((r) => (joined = r));
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const consumer = await bus.consume({
      onReady: () => joined(),
      handler: (b: ConsumedBatch) => {
        for (const m of b.messages) seen.set(m.headers.ce_id ?? '', m);
        expect(b.backlog).toBeGreaterThanOrEqual(0);
        if (seen.size === 50) done();
        return Promise.resolve();
      },
    });
    await ready;
    await all;
    await consumer.stop();
    expect(seen.get('ev-7')?.key).toBe('req-7');
    expect(seen.get('ev-7')?.value.toString()).toBe('value-7');
    expect(seen.get('ev-7')?.headers.ce_n).toBe('7');
    const offsets = await committed('g-a', 'bus-a');
    // Committed offset = next offset to read, summed over partitions = messages consumed.
    expect([...offsets.values()].reduce((a, b) => a + b, 0)).toBe(50);
    await bus.close();
  });

  it('commits nothing when the handler throws, and redelivers the batch', async () => {
    const bus = new KafkaBus({ brokers: mock.brokers, topic: 'bus-b', groupId: 'g-b' });
    await bus.publish([msg(1), msg(2), msg(3)]);
    let calls = 0;
    let offsetsAtSecondCall: Map<number, number> | undefined;
    let done!: () => void;
    const second = new Promise<void>((r) => (done = r));
    const consumer = await bus.consume({
      handler: async (b) => {
        calls++;
        if (calls === 1) throw new Error('store down');
        offsetsAtSecondCall ??= await committed('g-b', 'bus-b');
        expect(b.messages[0]?.headers.ce_id).toBe('ev-1');
        done();
      },
    });
    await second;
    await consumer.stop();
    // Before the successful handler ran, nothing was committed (kafkajs reports -1 for "none").
    expect(offsetsAtSecondCall?.get(0)).toBe(-1);
    expect((await committed('g-b', 'bus-b')).get(0)).toBe(3);
    await bus.close();
  });

  it('publish rejects within its deadline while the broker is down and succeeds after it is up', async () => {
    const bus = new KafkaBus({
      brokers: mock.brokers,
      topic: 'bus-c',
      publishTimeoutMs: 2_000,
      requestTimeoutMs: 1_000,
      connectionTimeoutMs: 500,
    });
    await bus.publish([msg(1)]);
    await mock.down(1);
    const started = Date.now();
    await expect(bus.publish([msg(2)])).rejects.toMatchObject({ code: 'bus_unavailable', retryable: true });
    expect(Date.now() - started).toBeLessThan(5_000);
    await mock.up(1);
    await bus.publish([msg(3)]);
    await bus.close();
  });

  it('bounds the bytes the producer keeps retrying after their publish timed out (broker down)', async () => {
    const bus = new KafkaBus({
      brokers: mock.brokers,
      topic: 'bus-c',
      publishTimeoutMs: 1_500,
      requestTimeoutMs: 1_000,
      connectionTimeoutMs: 500,
      maxPendingBytes: 1_000,
    });
    const big = (n: number): BusMessage => ({ key: null, value: Buffer.alloc(600, n), headers: {} });
    await bus.publish([big(1)]);
    expect(bus.pendingPublishBytes).toBe(0);
    await mock.down(1);
    await expect(bus.publish([big(2)])).rejects.toMatchObject({ code: 'bus_unavailable' });
    // Its deadline passed, but the producer is still retrying it and holds its 600 bytes.
    expect(bus.pendingPublishBytes).toBe(600);
    const started = Date.now();
    const refused = bus.publish([big(3)]);
    await expect(refused).rejects.toMatchObject({ code: 'bus_unavailable', retryable: true });
    await expect(refused).rejects.toThrow(/still being retried \(maxPendingBytes 1000\)/);
    expect(Date.now() - started).toBeLessThan(500);
    await mock.up(1);
    // The retried batch goes out (or gives up) and frees its bytes; publishing works again.
    const until = Date.now() + 30_000;
    while (bus.pendingPublishBytes > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(bus.pendingPublishBytes).toBe(0);
    await bus.publish([big(4)]);
    await bus.close();
  }, 60_000);

  it('rejects a broker-less configuration at construction', () => {
    expect(() => new KafkaBus({ brokers: [] })).toThrow(RangeError);
  });
});
