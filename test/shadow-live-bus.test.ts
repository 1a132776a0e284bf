// The in-process bus fan-out live shadow relies on: a tap receives a copy of every message next to the
// topic's one queue consumer, has its own byte bound (full → dropped and counted, publishers unaffected),
// and never changes the queue consumer's byte bound, backpressure or redelivery.
import { describe, expect, it } from 'vitest';
import { InProcessBus, messageBytes, type BusMessage, type ConsumedBatch } from '../src/bus/index.js';
import { waitFor } from './support/ingest.js';

function msg(i: number, size = 10): BusMessage {
  return { key: null, value: Buffer.alloc(size, i % 256), headers: { n: String(i) } };
}

describe('InProcessBus.tap', () => {
  it('the queue consumer and the tap both receive every message, in order', async () => {
    const bus = new InProcessBus({ topic: 't', maxBatchMessages: 7 });
    const queue: string[] = [];
    const tapped: string[] = [];
    const consumer = await bus.consume({
      handler: (b: ConsumedBatch) => {
        queue.push(...b.messages.map((m) => m.headers.n ?? ''));
        return Promise.resolve();
      },
    });
    const tap = await bus.tap({
      handler: (b) => {
        expect(b.messages.length).toBeLessThanOrEqual(7);
        tapped.push(...b.messages.map((m) => m.headers.n ?? ''));
        return Promise.resolve();
      },
    });
    for (let i = 0; i < 100; i += 10) await bus.publish(Array.from({ length: 10 }, (_, k) => msg(i + k)));
    await waitFor(() => queue.length === 100 && tapped.length === 100, 5000, 'both subscribers');
    const all = Array.from({ length: 100 }, (_, i) => String(i));
    expect(queue).toEqual(all);
    expect(tapped).toEqual(all);
    expect(bus.bufferedBytes).toBe(0);
    await tap.stop();
    await consumer.stop();
  });

  it('a slow or full tap drops for itself only: the queue consumer and the bus bound are unchanged', async () => {
    const one = messageBytes(msg(0, 100));
    const bus = new InProcessBus({ topic: 't', maxBufferedBytes: 10 * one });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const tapped: string[] = [];
    let dropped = 0;
    const tap = await bus.tap({
      maxBufferedBytes: 3 * one,
      onDrop: (n) => (dropped += n),
      handler: async (b) => {
        await gate;
        tapped.push(...b.messages.map((m) => m.headers.n ?? ''));
      },
    });
    // No queue consumer yet: the bus bound (10 messages) applies exactly as without a tap.
    for (let i = 0; i < 10; i++) await bus.publish([msg(i, 100)]);
    await expect(bus.publish([msg(10, 100)])).rejects.toMatchObject({ code: 'bus_full' });
    // The tap took message 0 into its handler (blocked), queued 1–3, and dropped 4–9.
    expect(dropped).toBe(6);
    const queue: string[] = [];
    let failures = 0;
    const consumer = await bus.consume({
      handler: (b) => {
        // Redelivery after a failed handler is unchanged by the tap.
        if (failures++ === 0) return Promise.reject(new Error('first delivery fails'));
        queue.push(...b.messages.map((m) => m.headers.n ?? ''));
        return Promise.resolve();
      },
    });
    await waitFor(() => queue.length === 10, 5000, 'queue consumer');
    expect(queue).toEqual(Array.from({ length: 10 }, (_, i) => String(i)));
    expect(bus.bufferedBytes).toBe(0);
    release();
    await waitFor(() => tapped.length === 4, 5000, 'tap');
    expect(tapped).toEqual(['0', '1', '2', '3']);
    await tap.stop();
    await consumer.stop();
  });

  it('a tap whose handler throws loses that batch and keeps receiving; a stopped tap receives nothing', async () => {
    const bus = new InProcessBus({ topic: 't', retryDelayMs: 10 });
    const seen: string[] = [];
    let calls = 0;
    const tap = await bus.tap({
      handler: (b) => {
        if (calls++ === 0) return Promise.reject(new Error('boom'));
        seen.push(...b.messages.map((m) => m.headers.n ?? ''));
        return Promise.resolve();
      },
    });
    await bus.publish([msg(0)]);
    await waitFor(() => calls === 1, 5000, 'first tap batch');
    await bus.publish([msg(1)]);
    await waitFor(() => seen.length === 1, 5000, 'second tap batch');
    expect(seen).toEqual(['1']);
    await tap.stop();
    await bus.publish([msg(2)]);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual(['1']);
  });
});
