// The in-process bus with a `take` handler: the next batch is handed over while the previous one is being
// stored, each batch is committed only behind its `stored`, in order, at most one batch is being stored, a
// batch whose `stored` rejects is delivered again with everything after it, and stop() commits what was
// being stored.
import { describe, expect, it } from 'vitest';
import { InProcessBus, messageBytes, type BusMessage, type ConsumedBatch } from '../src/bus/index.js';

function msg(i: number): BusMessage {
  return { key: `k${i}`, value: Buffer.alloc(10, i), headers: { ce_id: `ev-${i}` } };
}

const bytesOf = (ids: number[]): number => ids.reduce((n, i) => n + messageBytes(msg(i)), 0);

/** A promise with its resolve and reject. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resolves once `check` holds, polling every turn of the event loop (the bus works on timers and promises). */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 2_000 && !check(); i++) await new Promise((r) => setTimeout(r, 1));
  expect(check()).toBe(true);
}

const offsets = (b: ConsumedBatch): string[] => b.messages.map((m) => m.offset);

/**
 * Publishes messages 0-3, consumes them two at a time with a `take` that answers its n-th call (from 1) with
 * `answer(n)` until the bus is drained, and returns the offsets of every batch taken.
 */
async function drainTaking(answer: (n: number) => Promise<{ stored: Promise<void> }>): Promise<string[][]> {
  const bus = new InProcessBus({ maxBatchMessages: 2, retryDelayMs: 5 });
  await bus.publish([0, 1, 2, 3].map(msg));
  const taken: string[][] = [];
  const consumer = await bus.consume({
    handler: () => Promise.reject(new Error('handler must not be called when take is given')),
    take: (b) => {
      taken.push(offsets(b));
      return answer(taken.length);
    },
  });
  await until(() => bus.bufferedBytes === 0);
  await consumer.stop();
  return taken;
}

describe('InProcessBus with take', () => {
  it('hands over the next batch while one is stored, and commits each only behind its stored, in order', async () => {
    const bus = new InProcessBus({ maxBatchMessages: 2 });
    await bus.publish([0, 1, 2, 3, 4].map(msg));
    const taken: string[][] = [];
    const stored = [deferred(), deferred(), deferred()];
    const consumer = await bus.consume({
      handler: () => Promise.reject(new Error('handler must not be called when take is given')),
      take: (b) => {
        taken.push(offsets(b));
        return Promise.resolve({ stored: (stored[taken.length - 1] as ReturnType<typeof deferred>).promise });
      },
    });
    // Batch 2 is handed over while batch 1 is still being stored, and nothing is committed yet.
    await until(() => taken.length === 2);
    expect(bus.bufferedBytes).toBe(bytesOf([0, 1, 2, 3, 4]));
    // No third batch while the first is not stored: at most one batch is being stored besides the last taken.
    await new Promise((r) => setTimeout(r, 20));
    expect(taken).toEqual([
      ['0', '1'],
      ['2', '3'],
    ]);
    stored[0]?.resolve();
    await until(() => taken.length === 3);
    expect(taken[2]).toEqual(['4']);
    expect(bus.bufferedBytes).toBe(bytesOf([2, 3, 4]));
    stored[1]?.resolve();
    stored[2]?.resolve();
    await until(() => bus.bufferedBytes === 0);
    await consumer.stop();
  });

  it('delivers a batch whose stored rejected again, with every batch after it', async () => {
    // The first delivery of batch 1 fails to store (and so does batch 2, whose writes wait for it).
    const taken = await drainTaking((n) =>
      Promise.resolve({ stored: n <= 2 ? Promise.reject(new Error('store refused')) : Promise.resolve() }),
    );
    expect(taken).toEqual([
      ['0', '1'],
      ['2', '3'],
      ['0', '1'],
      ['2', '3'],
    ]);
  });

  it('commits what was stored before a take that threw, and redelivers from the batch that threw', async () => {
    const taken = await drainTaking((n) =>
      n === 2 ? Promise.reject(new Error('decode failed')) : Promise.resolve({ stored: Promise.resolve() }),
    );
    expect(taken).toEqual([
      ['0', '1'],
      ['2', '3'],
      ['2', '3'],
    ]);
  });

  it('stop() waits for the batch being stored and commits it', async () => {
    const bus = new InProcessBus({ maxBatchMessages: 2 });
    await bus.publish([0, 1].map(msg));
    const s = deferred();
    let takes = 0;
    const consumer = await bus.consume({
      handler: () => Promise.reject(new Error('unused')),
      take: () => {
        takes++;
        return Promise.resolve({ stored: s.promise });
      },
    });
    await until(() => takes === 1);
    let stopped = false;
    const stopping = consumer.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(stopped).toBe(false);
    expect(bus.bufferedBytes).toBe(bytesOf([0, 1]));
    s.resolve();
    await stopping;
    expect(bus.bufferedBytes).toBe(0);
  });
});
