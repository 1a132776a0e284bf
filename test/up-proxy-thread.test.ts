// The proxy thread of `modelwatch up`: the REST sidecar runs on a worker thread, its tee hands captures to
// the main thread's in-process bus through the bus bridge, refusals of that bus are counted drops (the
// proxy answers regardless), and the thread's metrics are served by the main thread's registry.
import { createServer } from 'node:net';
import { Counter } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { InProcessBus, type ConsumedMessage } from '../src/bus/index.js';
import { silentLogger, sleep } from '../src/common/index.js';
import { decodeCapture } from '../src/protocol/capture.js';
import { createRuntime, type Runtime } from '../src/runtime/index.js';
import { ProxyThread } from '../src/runtime/proxy-thread.js';
import { call, sidecarConfig } from './support/sidecar.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

// Starting a worker through tsx takes seconds on a loaded machine.
vi.setConfig({ testTimeout: 120_000 });

let upstream: TestV2Server;
beforeAll(async () => {
  upstream = await startV2Server();
});
afterAll(async () => upstream?.stop());

const inferBody = JSON.stringify({
  inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: [1, 2, 3, 4, 0, 0, 0, 0] }],
});

async function runtimeWith(busBytes?: number): Promise<Runtime> {
  const config = sidecarConfig({
    sidecar: { upstream: upstream.url },
    ...(busBytes === undefined ? {} : { bus: { maxBufferedBytes: busBytes } }),
  });
  return createRuntime(config, { withStore: false, logger: silentLogger, defaultMetrics: false });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function infer(base: string, id: string): ReturnType<typeof call> {
  return call(base, '/v2/models/classifier/versions/1/infer', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: inferBody,
  });
}

describe('proxy thread', () => {
  it('proxies on its own thread, tees onto the main bus, serves its metrics from the main registry, and stops', async () => {
    const runtime = await runtimeWith();
    const main = new Counter({
      name: 'test_main_thread_total',
      help: 'a main-thread metric',
      registers: [runtime.metrics],
    });
    main.inc(7);
    const consumed: ConsumedMessage[] = [];
    const consumer = await runtime.bus.consume({
      handler: (batch) => {
        consumed.push(...batch.messages);
        return Promise.resolve();
      },
    });
    const thread = new ProxyThread(runtime);
    const role = await thread.start('sidecar');
    try {
      expect(role.name).toBe('sidecar');
      const url = role.urls[0] as string;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

      const res = await infer(url, 'thread-req-1');
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ model_name: 'classifier' });

      const [message] = await until('the capture on the main bus', () =>
        Promise.resolve(consumed.length > 0 ? consumed : undefined),
      );
      expect(consumed).toHaveLength(1);
      expect(message?.key).toBe('thread-req-1');
      const captured = decodeCapture(message!);
      expect(captured.requestId).toBe('thread-req-1');
      expect(captured.model).toBe('classifier');
      expect(JSON.parse(captured.request.body.toString())).toEqual(JSON.parse(inferBody));

      // The thread's counters, read through the main registry.
      const text = await runtime.metrics.metrics();
      expect(text).toMatch(/^modelwatch_tee_captured_total(\{[^}]*\})? 1$/m);
      expect(text).toMatch(/^modelwatch_tee_sent_total(\{[^}]*\})? 1$/m);
      expect(text).toMatch(/^test_main_thread_total 7$/m);
      // The sidecar's own /metrics is the process's: it shows the main thread's metrics too.
      const scraped = (await call(url, '/metrics')).body.toString();
      expect(scraped).toMatch(/^test_main_thread_total 7$/m);
      expect(scraped).toMatch(/^modelwatch_tee_captured_total(\{[^}]*\})? 1$/m);
    } finally {
      await role.stop();
      await consumer.stop();
      await runtime.close();
    }
    // Stopped: the listener is gone, and the last metrics read stay served.
    await expect(infer(role.urls[0] as string, 'after-stop')).rejects.toThrow();
    expect(await runtime.metrics.metrics()).toMatch(/^modelwatch_tee_captured_total(\{[^}]*\})? 1$/m);
  });

  it('fails open: captures the main bus refuses are dropped and counted, and the calls still succeed', async () => {
    // A bus that holds less than one capture refuses every publish with bus_full.
    const runtime = await runtimeWith(64);
    const thread = new ProxyThread(runtime);
    const role = await thread.start('sidecar');
    try {
      const url = role.urls[0] as string;
      for (let i = 0; i < 3; i++) expect((await infer(url, `refused-${i}`)).status).toBe(200);
      await until('three publish_failed drops', async () =>
        /^modelwatch_tee_dropped_total\{reason="publish_failed"\} 3$/m.test(await runtime.metrics.metrics())
          ? true
          : undefined,
      );
      expect(await runtime.metrics.metrics()).toMatch(/^modelwatch_tee_sent_total(\{[^}]*\})? 0$/m);
      expect((runtime.bus as InProcessBus).bufferedBytes).toBe(0);
    } finally {
      await role.stop();
      await runtime.close();
    }
  });

  it('rejects a start that fails in the thread with its error, and closes the thread', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    const config = sidecarConfig({ sidecar: { upstream: upstream.url, listen: `127.0.0.1:${port}` } });
    const runtime = await createRuntime(config, { withStore: false, logger: silentLogger, defaultMetrics: false });
    try {
      await expect(new ProxyThread(runtime).start('sidecar')).rejects.toThrow(/EADDRINUSE/);
    } finally {
      blocker.close();
      await runtime.close();
    }
  });

  it('createRuntime uses a given bus and leaves it open on close (the thread closes its own bridge)', async () => {
    const bus = new InProcessBus();
    const runtime = await createRuntime(sidecarConfig(), { withStore: false, logger: silentLogger, bus });
    expect(runtime.bus).toBe(bus);
    await runtime.close();
    await expect(bus.publish([{ key: 'k', value: Buffer.from('v'), headers: {} }])).resolves.toBeUndefined();
    expect(bus.bufferedBytes).toBeGreaterThan(0);
  });
});
