import { describe, expect, it } from 'vitest';
import { InProcessBus, messageBytes, type BusMessage, type ConsumedBatch } from '../src/bus/index.js';

function msg(i: number, size = 10): BusMessage {
  return { key: `k${i}`, value: Buffer.alloc(size, i), headers: { ce_id: `ev-${i}` } };
}

describe('messageBytes', () => {
  it('counts the value, the key and every header name and value', () => {
    const m: BusMessage = { key: 'k1', value: Buffer.alloc(5), headers: { a: 'xy', bcd: 'e', ce_id: '' } };
    // 5 (value) + 2 (key) + 1 + 2 + 3 + 1 + 5 + 0 (headers)
    expect(messageBytes(m)).toBe(19);
    expect(messageBytes({ key: null, value: Buffer.alloc(3), headers: {} })).toBe(3);
  });
});

describe('InProcessBus', () => {
  it('hands out batches in order with the backlog behind each, and frees bytes only after the handler', async () => {
    const bus = new InProcessBus({ maxBatchMessages: 2 });
    await bus.publish([0, 1, 2, 3, 4].map((i) => msg(i)));
    const total = [0, 1, 2, 3, 4].reduce((n, i) => n + messageBytes(msg(i)), 0);
    expect(bus.bufferedBytes).toBe(total);
    const seen: { offsets: string[]; backlog: number | undefined; buffered: number }[] = [];
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const consumer = await bus.consume({
      handler: (b: ConsumedBatch) => {
        seen.push({ offsets: b.messages.map((m) => m.offset), backlog: b.backlog, buffered: bus.bufferedBytes });
        if (b.messages.some((m) => m.offset === '4')) done();
        return Promise.resolve();
      },
    });
    await all;
    await consumer.stop();
    expect(seen.map((s) => s.offsets)).toEqual([['0', '1'], ['2', '3'], ['4']]);
    expect(seen.map((s) => s.backlog)).toEqual([3, 1, 0]);
    // While the first batch is being handled its bytes still count against the bound.
    expect(seen[0]?.buffered).toBe(total);
    expect(bus.bufferedBytes).toBe(0);
  });

  it('rejects with a retryable bus_full beyond its byte bound', async () => {
    const bus = new InProcessBus({ maxBufferedBytes: 100 });
    await bus.publish([msg(1, 50)]);
    await expect(bus.publish([msg(2, 60)])).rejects.toMatchObject({ code: 'bus_full', retryable: true });
    // A batch that does not fit is refused whole, even when its first messages would fit: nothing is queued.
    await expect(bus.publish([msg(4, 10), msg(5, 10), msg(6, 30)])).rejects.toMatchObject({ code: 'bus_full' });
    expect(bus.bufferedBytes).toBe(messageBytes(msg(1, 50)));
    // One that fits exactly is taken.
    const rest = 100 - bus.bufferedBytes;
    const fill = msg(7, 1);
    await bus.publish([msg(7, 1 + rest - messageBytes(fill))]);
    expect(bus.bufferedBytes).toBe(100);
    await bus.close();
    await expect(bus.publish([msg(3, 1)])).rejects.toMatchObject({ code: 'bus_unavailable' });
  });

  it('redelivers a batch whose handler threw', async () => {
    const bus = new InProcessBus({ retryDelayMs: 10 });
    await bus.publish([msg(1)]);
    const deliveries: string[] = [];
    let done!: () => void;
    const second = new Promise<void>((r) => (done = r));
    const consumer = await bus.consume({
      handler: (b) => {
        deliveries.push(b.messages.map((m) => m.offset).join());
        if (deliveries.length === 1) return Promise.reject(new Error('store down'));
        done();
        return Promise.resolve();
      },
    });
    await second;
    await consumer.stop();
    expect(deliveries).toEqual(['0', '0']);
  });
});
