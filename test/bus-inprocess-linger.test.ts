// The in-process bus lingers for a batch (ingest's `ingest.lingerRecords`, bounded by `flushIntervalMs`):
// fewer, larger store writes under steady traffic, never more than the linger time late.
import { describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../src/bus/in-process.js';
import type { BusMessage } from '../src/bus/types.js';
import { configSchema } from '../src/config/index.js';
import { inProcessBusOptions } from '../src/runtime/index.js';

const msg = (i: number): BusMessage => ({ key: `k${i}`, value: Buffer.from(`v${i}`), headers: {} });

function collect(bus: InProcessBus): {
  batches: { at: number; size: number }[];
  ready: Promise<void>;
  stop: () => Promise<void>;
} {
  const batches: { at: number; size: number }[] = [];
  let stopFn: () => Promise<void> = () => Promise.resolve();
  const ready = bus
    .consume({
      handler: (b) => {
        batches.push({ at: Date.now(), size: b.messages.length });
        return Promise.resolve();
      },
    })
    .then((c) => {
      stopFn = () => c.stop();
    });
  return { batches, ready, stop: () => stopFn() };
}

describe('InProcessBus linger', () => {
  it('holds a short batch until the linger time is up, then delivers it whole', async () => {
    const bus = new InProcessBus({ lingerMessages: 100, lingerMs: 400 });
    const c = collect(bus);
    await c.ready;
    const t0 = Date.now();
    await bus.publish([msg(1), msg(2)]);
    await new Promise((r) => setTimeout(r, 100));
    await bus.publish([msg(3)]);
    await new Promise((r) => setTimeout(r, 150));
    expect(c.batches).toEqual([]);
    while (c.batches.length === 0 && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 10));
    expect(c.batches.map((b) => b.size)).toEqual([3]);
    expect(c.batches[0]!.at - t0).toBeGreaterThanOrEqual(390);
    await c.stop();
  });

  it('is not woken by each publish below its threshold: one linger timer, not one per publish', async () => {
    const bus = new InProcessBus({ lingerMessages: 1000, lingerMs: 300 });
    const c = collect(bus);
    await c.ready;
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
    await bus.publish([msg(0)]);
    await turn();
    // The consumer lingers now. A producer publishing a message per event-loop turn (the tee on this bus)
    // must not make it reschedule its timer each time.
    const spy = vi.spyOn(globalThis, 'setTimeout');
    try {
      for (let i = 1; i <= 50; i++) {
        await bus.publish([msg(i)]);
        await turn();
      }
      const lingerTimers = spy.mock.calls.filter(([, ms]) => typeof ms === 'number' && ms > 0 && ms <= 300);
      expect(lingerTimers).toHaveLength(0);
    } finally {
      spy.mockRestore();
    }
    expect(c.batches).toEqual([]);
    const t0 = Date.now();
    while (c.batches.length === 0 && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 10));
    // Still delivered whole when the linger time is up.
    expect(c.batches.map((b) => b.size)).toEqual([51]);
    await c.stop();
  });

  it('delivers at once when enough messages are waiting', async () => {
    const bus = new InProcessBus({ lingerMessages: 5, lingerMs: 10_000 });
    const c = collect(bus);
    await c.ready;
    const t0 = Date.now();
    await bus.publish([msg(1), msg(2), msg(3)]);
    await bus.publish([msg(4), msg(5), msg(6)]);
    while (c.batches.length === 0 && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 5));
    expect(c.batches.map((b) => b.size)).toEqual([6]);
    expect(Date.now() - t0).toBeLessThan(2_000);
    await c.stop();
  });

  it('stops promptly while lingering, and takes what waits without lingering when off', async () => {
    const lingering = new InProcessBus({ lingerMessages: 100, lingerMs: 60_000 });
    const c = collect(lingering);
    await c.ready;
    await lingering.publish([msg(1)]);
    const t0 = Date.now();
    await c.stop();
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(c.batches).toEqual([]);

    const plain = new InProcessBus();
    const d = collect(plain);
    await d.ready;
    await plain.publish([msg(1)]);
    while (d.batches.length === 0 && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 5));
    expect(d.batches.map((b) => b.size)).toEqual([1]);
    await d.stop();
  });
});

describe('InProcessBus linger by bytes', () => {
  const big = (i: number, bytes: number): BusMessage => ({
    key: `k${i}`,
    value: Buffer.alloc(bytes, 0x61),
    headers: {},
  });

  it('delivers a few large messages at once when they hold lingerBytes, and lingers below it', async () => {
    const bus = new InProcessBus({ lingerMessages: 100, lingerMs: 10_000, lingerBytes: 10_000 });
    const c = collect(bus);
    await c.ready;
    const t0 = Date.now();
    await bus.publish([big(1, 4_000)]);
    await new Promise((r) => setTimeout(r, 300));
    // 4 kB of 10 kB, 1 message of 100: still lingering.
    expect(c.batches).toEqual([]);
    await bus.publish([big(2, 4_000), big(3, 4_000)]);
    while (c.batches.length === 0 && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 5));
    expect(c.batches.map((b) => b.size)).toEqual([3]);
    expect(Date.now() - t0).toBeLessThan(3_000);
    await c.stop();
  });

  it('refuses a negative lingerBytes', () => {
    expect(() => new InProcessBus({ lingerBytes: -1 })).toThrow(RangeError);
  });
});

describe('InProcessBus linger under a steady flow (steadyLingerMs)', () => {
  const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  /** Publishes one message every `everyMs` until `forMs` have passed; returns how many it published. */
  async function flow(bus: InProcessBus, everyMs: number, forMs: number, from = 0): Promise<number> {
    const t0 = Date.now();
    let i = from;
    while (Date.now() - t0 < forMs) {
      await bus.publish([msg(i++)]);
      await sleepMs(everyMs);
    }
    return i - from;
  }

  it('keeps lingering past lingerMs while messages keep arriving, and takes the batch once the flow pauses', async () => {
    const bus = new InProcessBus({ lingerMessages: 10_000, lingerMs: 200, steadyLingerMs: 5_000, steadyGapMs: 150 });
    const c = collect(bus);
    await c.ready;
    const t0 = Date.now();
    const sent = await flow(bus, 20, 900);
    const pausedAt = Date.now();
    // Four times lingerMs, and still one batch in the making.
    expect(c.batches).toEqual([]);
    while (c.batches.length === 0 && Date.now() - t0 < 5_000) await sleepMs(5);
    expect(c.batches.map((b) => b.size)).toEqual([sent]);
    // Taken about steadyGapMs after the last publish, well before steadyLingerMs.
    expect(c.batches[0]!.at - pausedAt).toBeLessThan(1_500);
    await c.stop();
  });

  it('stops lingering at steadyLingerMs however steady the flow', async () => {
    const bus = new InProcessBus({ lingerMessages: 10_000, lingerMs: 200, steadyLingerMs: 800, steadyGapMs: 150 });
    const c = collect(bus);
    await c.ready;
    const t0 = Date.now();
    const sent = await flow(bus, 20, 2_500);
    const first = c.batches[0];
    expect(first).toBeDefined();
    expect(first!.at - t0).toBeGreaterThanOrEqual(790);
    expect(first!.size).toBeLessThan(sent);
    await c.stop();
  });

  it('takes a burst at lingerMs: a flow that stopped is not steady', async () => {
    const bus = new InProcessBus({ lingerMessages: 10_000, lingerMs: 300, steadyLingerMs: 5_000, steadyGapMs: 100 });
    const c = collect(bus);
    await c.ready;
    const t0 = Date.now();
    await bus.publish([msg(1), msg(2), msg(3)]);
    while (c.batches.length === 0 && Date.now() - t0 < 6_000) await sleepMs(5);
    expect(c.batches.map((b) => b.size)).toEqual([3]);
    expect(c.batches[0]!.at - t0).toBeGreaterThanOrEqual(290);
    expect(c.batches[0]!.at - t0).toBeLessThan(3_000);
    await c.stop();
  });

  it('refuses a negative steadyLingerMs and a steadyGapMs of 0', () => {
    expect(() => new InProcessBus({ steadyLingerMs: -1 })).toThrow(/steadyLingerMs/);
    expect(() => new InProcessBus({ steadyGapMs: 0 })).toThrow(/steadyGapMs/);
  });
});

describe('the in-process bus of modelwatch up', () => {
  it('lingers for 5,000 calls, up to 1 s, or up to 5 s while captures keep arriving, unless configured', () => {
    const byDefault = inProcessBusOptions(configSchema.parse({}));
    expect(byDefault).toMatchObject({ lingerMessages: 5_000, lingerMs: 1_000, steadyLingerMs: 5_000 });
    const fresh = inProcessBusOptions(
      configSchema.parse({ ingest: { lingerRecords: 1_000, flushIntervalMs: 500, steadyLingerMs: 0 } }),
    );
    expect(fresh).toMatchObject({ lingerMessages: 1_000, lingerMs: 500, steadyLingerMs: 0 });
  });

  it('lingers at most a quarter of the detection interval, so every interval sees its calls', () => {
    // The demo detects every 2-5 s: a 5 s linger would leave intervals with traffic empty (no_data).
    const demo = inProcessBusOptions(configSchema.parse({ detect: { intervalMs: 4_000 } }));
    expect(demo).toMatchObject({ lingerMs: 1_000, steadyLingerMs: 1_000 });
    const slow = inProcessBusOptions(configSchema.parse({ detect: { intervalMs: 600_000 } }));
    expect(slow.steadyLingerMs).toBe(5_000);
  });
});
