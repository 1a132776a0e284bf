// `sidecar.teeRetryBackoffMs` and `sidecar.teeMaxRetryBackoffMs` reach the tee: after a publish refused by a
// full bus, the tee waits the configured backoff before it publishes the batch again. And the config names
// the key when the longest backoff is shorter than the first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, decodeCapture, type CapturedCall } from '../src/bus/index.js';
import { isModelwatchError } from '../src/common/index.js';
import { loadConfig } from '../src/config/index.js';
import { startSidecar } from '../src/sidecar/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { waitFor } from './support/ingest.js';
import { call, sidecarConfig, sidecarContext } from './support/sidecar.js';
import { openTestStore } from './support/store.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let upstream: TestV2Server;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  upstream = await startV2Server();
});
afterAll(async () => {
  await upstream.stop();
  await cleanup();
});

const BUS_BYTES = 8_192;

/**
 * A sidecar whose tee publishes to a full in-process bus: one request is captured and refused (`bus_full`),
 * then the bus is drained. Returns what reached the bus within `watchMs` of the refusal and the tee's stats.
 */
async function captureAfterRefusal(
  backoff: { teeRetryBackoffMs: number; teeMaxRetryBackoffMs?: number },
  watchMs: number,
): Promise<{ captured: CapturedCall[]; retried: number; buffered: number }> {
  const bus = new InProcessBus({ maxBufferedBytes: BUS_BYTES });
  // Fill the bus so that the capture does not fit.
  await bus.publish([{ key: null, value: Buffer.alloc(BUS_BYTES - 100), headers: {} }]);
  const ctx = sidecarContext(
    sidecarConfig({ sidecar: { upstream: upstream.url, shutdownDeadlineMs: 500, ...backoff } }),
    bus,
    store,
  );
  const sidecar = await startSidecar(ctx);
  const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  const r = await call(sidecar.url, '/v2/models/classifier/infer', {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });
  expect(r.status).toBe(200);
  await waitFor(() => sidecar.tee.stats().retried >= 1, 5_000, 'the refused batch put back');
  // Room again: the filler is consumed; captures are kept.
  const captured: CapturedCall[] = [];
  const consumer = await bus.consume({
    handler: (batch) => {
      for (const m of batch.messages) if (m.value.length < BUS_BYTES - 100) captured.push(decodeCapture(m));
      return Promise.resolve();
    },
  });
  const until = Date.now() + watchMs;
  while (Date.now() < until && captured.length === 0) await new Promise((res) => setTimeout(res, 10));
  const { retried, buffered } = sidecar.tee.stats();
  await consumer.stop();
  await sidecar.stop();
  return { captured, retried, buffered };
}

describe('tee retry backoff from the config', () => {
  it('publishes a refused batch again after a short configured backoff', async () => {
    const r = await captureAfterRefusal({ teeRetryBackoffMs: 30 }, 3_000);
    expect(r.captured.map((c) => c.model)).toEqual(['classifier']);
    expect(r.buffered).toBe(0);
  });

  it('holds a refused batch back for a long configured backoff', async () => {
    // With the default (200 ms) the batch would be published again within this watch.
    const r = await captureAfterRefusal({ teeRetryBackoffMs: 60_000, teeMaxRetryBackoffMs: 60_000 }, 1_500);
    expect(r.captured).toEqual([]);
    expect(r.retried).toBe(1);
    expect(r.buffered).toBe(1);
  });

  it('names the key when the longest backoff is shorter than the first', () => {
    let error: unknown;
    try {
      loadConfig({ env: {}, overrides: { sidecar: { teeRetryBackoffMs: 1_000, teeMaxRetryBackoffMs: 500 } } });
    } catch (err) {
      error = err;
    }
    expect(isModelwatchError(error, 'config_invalid')).toBe(true);
    expect((error as Error).message).toContain('sidecar.teeMaxRetryBackoffMs');
  });
});
