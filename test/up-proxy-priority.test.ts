// The proxy thread of `modelwatch up` wins a contended core: once it runs, every other thread of the process
// (the main thread with ingest and the detectors, the embedded engine's and V8's threads) is made nicer, and
// the proxy thread keeps the niceness it started with. Its own file: niceness changes last for the process.
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../src/common/index.js';
import { createRuntime } from '../src/runtime/index.js';
import { ProxyThread } from '../src/runtime/proxy-thread.js';
import { sidecarConfig } from './support/sidecar.js';
import { niceOf } from './support/threads.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

// Starting a worker through tsx takes seconds on a loaded machine.
vi.setConfig({ testTimeout: 120_000 });

let upstream: TestV2Server;
beforeAll(async () => {
  upstream = await startV2Server();
});
afterAll(async () => upstream?.stop());

describe('proxy thread priority', () => {
  it('makes every other thread nicer by othersNice and leaves the proxy thread as it started', async () => {
    const base = niceOf(process.pid);
    expect(base).toBeLessThanOrEqual(16);
    const runtime = await createRuntime(sidecarConfig({ sidecar: { upstream: upstream.url } }), {
      withStore: false,
      logger: silentLogger,
      defaultMetrics: false,
    });
    const thread = new ProxyThread(runtime, { othersNice: 3 });
    const role = await thread.start('sidecar');
    try {
      const tid = thread.threadId;
      expect(tid).toBeGreaterThan(0);
      const tids = readdirSync('/proc/self/task').map(Number);
      expect(tids).toContain(tid);
      // The proxy thread was started by the main thread: it began at the main thread's niceness, and kept it.
      expect(niceOf(tid as number)).toBe(base);
      expect(niceOf(process.pid)).toBe(base + 3);
      const others = tids.filter((t) => t !== tid);
      expect(others.length).toBeGreaterThan(1);
      for (const t of others) expect(niceOf(t)).toBeGreaterThanOrEqual(base + 3);
    } finally {
      await role.stop();
      await runtime.close();
    }
  });

  it('rejects an othersNice outside 0..19', async () => {
    const runtime = await createRuntime(sidecarConfig({ sidecar: { upstream: upstream.url } }), {
      withStore: false,
      logger: silentLogger,
      defaultMetrics: false,
    });
    try {
      expect(() => new ProxyThread(runtime, { othersNice: 20 })).toThrow(/othersNice/);
      expect(() => new ProxyThread(runtime, { othersNice: -1 })).toThrow(/othersNice/);
      expect(() => new ProxyThread(runtime, { othersNice: 1.5 })).toThrow(/othersNice/);
    } finally {
      await runtime.close();
    }
  });
});
