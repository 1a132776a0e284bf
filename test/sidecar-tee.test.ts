// The tee's contract (DESIGN §4 rule 1): O(1) hand-off bounded in bytes, drops counted by reason,
// publish bounded by a timeout, `captured = sent + dropped + buffered` at every step, sampling per model.
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, KafkaBus, encodeCapture, messageBytes, type BusMessage } from '../src/bus/index.js';
import { modelLabelsOn } from '../src/common/metrics.js';
import { SidecarMetrics, Tee, acquireTee, startSidecar, type TeeStats } from '../src/sidecar/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { decodeCapture, encodeCaptureSized } from '../src/protocol/capture.js';
import { makeCall, waitFor } from './support/ingest.js';
import {
  RecordingBus,
  StallableBus,
  call,
  runConcurrent,
  sidecarConfig,
  sidecarContext,
  testAgent,
} from './support/sidecar.js';
import { openTestStore } from './support/store.js';
import { startKafkaMock } from './support/kafka-mock.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

const exact = (s: TeeStats): void => {
  expect(s.captured).toBe(s.sent + s.dropped + s.buffered);
  expect(s.dropped).toBe(s.droppedBy.buffer_full + s.droppedBy.publish_failed + s.droppedBy.shutdown);
};

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let upstream: TestV2Server;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  upstream = await startV2Server();
});

afterAll(async () => {
  await upstream?.stop();
  await testAgent.close();
  await cleanup?.();
});

describe('Tee', () => {
  it('bounds the buffer in bytes and drops the overflow as buffer_full', async () => {
    const one = messageBytes(encodeCapture(makeCall(0)));
    const bus = new RecordingBus(new InProcessBus());
    const tee = new Tee(bus, { maxBufferBytes: one * 3 + one / 2, flushIntervalMs: 10_000 });
    const accepted = Array.from({ length: 10 }, (_, i) => tee.offer(makeCall(i)));
    expect(accepted.filter(Boolean)).toHaveLength(3);
    let s = tee.stats();
    expect(s).toMatchObject({
      captured: 10,
      sent: 0,
      buffered: 3,
      droppedBy: { buffer_full: 7, publish_failed: 0, shutdown: 0 },
    });
    expect(s.bufferedBytes).toBeLessThanOrEqual(one * 3 + one / 2);
    exact(s);
    await tee.flush();
    s = tee.stats();
    expect(s).toMatchObject({ captured: 10, sent: 3, buffered: 0, bufferedBytes: 0 });
    exact(s);
    expect(bus.published.map((m) => m.key)).toEqual(['req-0', 'req-1', 'req-2']);
    // Room again after the flush.
    expect(tee.offer(makeCall(11))).toBe(true);
    await tee.close(1_000);
    expect(tee.stats()).toMatchObject({ captured: 11, sent: 4, buffered: 0 });
  });

  it('counts a rejected publish as publish_failed and keeps going', async () => {
    const full = new InProcessBus({ maxBufferedBytes: 1 });
    const tee = new Tee(full, { flushIntervalMs: 5 });
    tee.start();
    for (let i = 0; i < 5; i++) tee.offer(makeCall(i));
    await waitFor(() => tee.stats().buffered === 0, 5_000, 'batch settled');
    expect(tee.stats()).toMatchObject({ captured: 5, sent: 0, droppedBy: { publish_failed: 5 } });
    exact(tee.stats());
    await tee.close(100);
  });

  it('counts a publish that outlives its timeout once, when the broker answers late, with its bytes inside the bound', async () => {
    // A real broker (librdkafka mock cluster) that answers every request 700 ms late, against a tee
    // that stops waiting after 150 ms: the late acknowledgement must count each record once, as sent.
    const kafka = await startKafkaMock({ topics: { 'tee.late': 1 } });
    const bus = new KafkaBus({ brokers: kafka.brokers, topic: 'tee.late', groupId: 'tee-late' });
    try {
      await bus.publish([encodeCapture(makeCall(-1))]); // connect and learn metadata before the delay
      await kafka.rtt(1, 700);
      // Ids 10..39 encode to the same size.
      const one = messageBytes(encodeCapture(makeCall(10)));
      expect(messageBytes(encodeCapture(makeCall(39)))).toBe(one);
      const bound = one * 25;
      const registry = new Registry();
      const tee = new Tee(bus, {
        flushIntervalMs: 5,
        publishTimeoutMs: 150,
        maxBatchMessages: 10,
        maxBufferBytes: bound,
        registry,
      });
      tee.start();
      const t0 = performance.now();
      for (let i = 10; i < 30; i++) tee.offer(makeCall(i));
      expect(performance.now() - t0).toBeLessThan(500); // offers never wait for the bus
      await waitFor(() => tee.stats().publishTimeouts >= 1, 5_000, 'a publish outlived its timeout');
      let s = tee.stats();
      exact(s);
      // Timed out, not dropped: still in flight and still holding its bytes inside the bound.
      expect(s.droppedBy.publish_failed).toBe(0);
      expect(s.inFlight).toBeGreaterThanOrEqual(10);
      expect(s.bufferedBytes).toBeGreaterThanOrEqual(one * 10);
      // So the bound still holds: with 20 records held, only 5 more fit.
      const extra = Array.from({ length: 10 }, (_, i) => tee.offer(makeCall(30 + i)));
      expect(extra.filter(Boolean)).toHaveLength(5);
      s = tee.stats();
      expect(s.droppedBy.buffer_full).toBe(5);
      expect(s.bufferedBytes).toBeLessThanOrEqual(bound);
      exact(s);
      await waitFor(() => tee.stats().buffered === 0, 15_000, 'the late broker answered every publish');
      s = tee.stats();
      exact(s);
      expect(s).toMatchObject({ captured: 30, sent: 25, dropped: 5, inFlight: 0, droppedBy: { publish_failed: 0 } });
      const text = await registry.metrics();
      expect(text).toContain('modelwatch_tee_sent_total 25');
      expect(text).toContain('modelwatch_tee_inflight_records 0');
      expect(text).toMatch(/modelwatch_tee_publish_timeouts_total [1-9]/);
      // The broker holds exactly the 25 records counted as sent (plus the warm-up one): none twice.
      await kafka.rtt(1, 0);
      const keys: string[] = [];
      const consumer = await bus.consume({
        handler: (batch) => {
          keys.push(...batch.messages.map((m) => m.key ?? ''));
          return Promise.resolve();
        },
      });
      await waitFor(() => keys.length >= 26, 15_000, 'all records consumed');
      await consumer.stop();
      expect(keys).toHaveLength(26);
      expect(new Set(keys).size).toBe(26);
      await tee.close(1_000);
    } finally {
      await bus.close();
      await kafka.stop();
    }
  }, 60_000);

  it('flushes on close within the deadline and drops the rest as shutdown', async () => {
    const bus = new StallableBus(new InProcessBus());
    bus.stall();
    const tee = new Tee(bus, { flushIntervalMs: 10_000, publishTimeoutMs: 60_000 });
    for (let i = 0; i < 20; i++) tee.offer(makeCall(i));
    const t0 = Date.now();
    await tee.close(300);
    expect(Date.now() - t0).toBeLessThan(1_000);
    const s = tee.stats();
    // One batch is in flight (still buffered until it settles); everything queued behind it is dropped.
    expect(s.captured).toBe(20);
    exact(s);
    expect(tee.offer(makeCall(99))).toBe(false);
    expect(tee.stats().droppedBy.shutdown).toBeGreaterThanOrEqual(1);
    exact(tee.stats());
    bus.release();
    await waitFor(() => tee.stats().buffered === 0, 5_000, 'in-flight batch settled');
    exact(tee.stats());
  });

  it('keeps up to maxInFlightBatches publishes unsettled at once, and one by default', async () => {
    for (const [limit, expected] of [
      [undefined, 1],
      [3, 3],
    ] as const) {
      const bus = new StallableBus(new InProcessBus());
      bus.stall();
      const tee = new Tee(bus, {
        flushIntervalMs: 10_000,
        publishTimeoutMs: 60_000,
        // Each record is a batch of its own (a record larger than the batch bound goes alone).
        maxBatchBytes: 1,
        ...(limit === undefined ? {} : { maxInFlightBatches: limit }),
      });
      for (let i = 0; i < 5; i++) tee.offer(makeCall(i));
      const flushed = tee.flush();
      await waitFor(() => tee.stats().inFlight === expected, 5_000, `${expected} batches in flight`);
      // Give the flusher every chance to start more than it may.
      await new Promise((r) => setTimeout(r, 50));
      expect(tee.stats()).toMatchObject({ inFlight: expected, buffered: 5, sent: 0 });
      exact(tee.stats());
      bus.release();
      await flushed;
      expect(tee.stats()).toMatchObject({ captured: 5, sent: 5, buffered: 0, inFlight: 0, dropped: 0 });
      await tee.close(1_000);
    }
    expect(() => new Tee(new InProcessBus(), { maxInFlightBatches: 0 })).toThrow(/maxInFlightBatches/);
  });

  it('lingers (lingerMs): records offered while a publish waits go out on a later tick, not as soon as it settles', async () => {
    class CountingBus extends StallableBus {
      readonly sizes: number[] = [];
      override publish(messages: BusMessage[], topic?: string): Promise<void> {
        this.sizes.push(messages.length);
        return super.publish(messages, topic);
      }
    }
    const bus = new CountingBus(new InProcessBus());
    const interval = 3_000;
    const tee = new Tee(bus, {
      flushIntervalMs: interval,
      lingerMs: interval / 2,
      maxLoopUtilization: 1,
      publishTimeoutMs: 60_000,
    });
    bus.stall();
    tee.start();
    tee.offer(makeCall(0));
    await waitFor(() => tee.stats().inFlight === 1, 2 * interval, 'first tick published');
    for (let i = 1; i <= 3; i++) tee.offer(makeCall(i));
    bus.release();
    await waitFor(() => tee.stats().sent === 1, 5_000, 'first batch settled');
    // The settle came well within half an interval of the publish: the three wait for the next tick.
    await new Promise((r) => setTimeout(r, 200));
    expect(tee.stats()).toMatchObject({ sent: 1, buffered: 3, inFlight: 0 });
    expect(bus.sizes).toEqual([1]);
    await waitFor(() => tee.stats().sent === 4, 3 * interval, 'the rest on the next tick');
    expect(bus.sizes).toEqual([1, 3]);
    // A whole batch does not linger, and flush() publishes at once.
    for (let i = 4; i < 4 + 200; i++) tee.offer(makeCall(i));
    await waitFor(() => tee.stats().sent === 204, interval / 2, 'a whole batch at once');
    tee.offer(makeCall(500));
    await tee.flush();
    expect(tee.stats()).toMatchObject({ sent: 205, buffered: 0 });
    expect(bus.sizes).toEqual([1, 3, 200, 1]);
    exact(tee.stats());
    await tee.close(1_000);
    expect(() => new Tee(new InProcessBus(), { lingerMs: -1 })).toThrow(/lingerMs/);
  }, 30_000);

  it('does not linger with a partial batch of lingerMaxBytes or more: it goes out as soon as the publish settles', async () => {
    const bus = new StallableBus(new InProcessBus());
    const interval = 3_000;
    const tee = new Tee(bus, {
      flushIntervalMs: interval,
      lingerMs: interval / 2,
      lingerMaxBytes: 1,
      maxLoopUtilization: 1,
      publishTimeoutMs: 60_000,
    });
    bus.stall();
    tee.start();
    tee.offer(makeCall(0));
    await waitFor(() => tee.stats().inFlight === 1, 2 * interval, 'first tick published');
    for (let i = 1; i <= 3; i++) tee.offer(makeCall(i));
    bus.release();
    // Well within half an interval of the publish, with no tick in between: the three did not wait.
    await waitFor(() => tee.stats().sent === 4, interval / 4, 'the rest as soon as the first settled');
    exact(tee.stats());
    await tee.close(1_000);
    expect(() => new Tee(new InProcessBus(), { lingerMaxBytes: Number.NaN })).toThrow(/lingerMaxBytes/);
  }, 30_000);

  it('encodes bodies handed over as chunk lists byte for byte like whole bodies', () => {
    const whole = makeCall(7, 400);
    const split = (b: Buffer, at: number[]): Buffer[] => {
      const out: Buffer[] = [];
      let from = 0;
      for (const to of [...at, b.length]) {
        out.push(b.subarray(from, to));
        from = to;
      }
      return out;
    };
    const rq = whole.request.body;
    const rs = whole.response.body;
    const parts = {
      request: split(rq, [1, 2, Math.floor(rq.length / 2)]),
      response: split(rs, [0, Math.floor(rs.length / 3)]),
    };
    const placeholder = {
      ...whole,
      request: { ...whole.request, body: Buffer.alloc(0) },
      response: { ...whole.response, body: Buffer.alloc(0) },
    };
    const a = encodeCaptureSized(whole);
    const b = encodeCaptureSized(placeholder, parts);
    expect(b.bytes).toBe(a.bytes);
    expect(b.message.headers).toEqual(a.message.headers);
    expect(b.message.value.equals(a.message.value)).toBe(true);
    // One allocation of exactly the record's size (a publisher in another thread can take it by transfer).
    expect(b.message.value.byteOffset).toBe(0);
    expect(b.message.value.buffer.byteLength).toBe(b.message.value.length);
    const back = decodeCapture(b.message);
    expect(back.request.body.equals(rq)).toBe(true);
    expect(back.response.body.equals(rs)).toBe(true);
    // A value already laid out is used as is (no copy); one whose length prefix overruns it is refused.
    const laid = encodeCaptureSized(placeholder, { value: a.message.value });
    expect(laid.message.value).toBe(a.message.value);
    expect(laid.bytes).toBe(a.bytes);
    const bad = Buffer.alloc(8);
    bad.writeUInt32BE(5, 0);
    expect(() => encodeCaptureSized(placeholder, { value: bad })).toThrow(/length prefix/);
    // Empty chunk lists: an empty body.
    const none = encodeCaptureSized(placeholder, { request: [], response: [] });
    expect(none.message.value.readUInt32BE(0)).toBe(0);
    expect(none.message.value.length).toBe(4);
  });

  it('hands records to the in-process bus within handOffMs (0: at the end of the turn that offered them), not at the next tick', async () => {
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
    // The flush interval is far beyond the test: only the end-of-turn hand-off can publish in time.
    const slow = { flushIntervalMs: 600_000 };
    const plainBus = new RecordingBus(new InProcessBus());
    const plain = new Tee(plainBus, slow);
    plain.start();
    const eachBus = new RecordingBus(new InProcessBus());
    // lingerMaxBytes 0: every record is worth a hand-off of its own.
    const each = new Tee(eachBus, { ...slow, handOffMs: 0, lingerMaxBytes: 0 });
    each.start();
    for (let i = 0; i < 3; i++) {
      plain.offer(makeCall(i));
      each.offer(makeCall(i));
    }
    // Offering never publishes inline: the request path only queues.
    expect(eachBus.published).toHaveLength(0);
    await turn();
    await waitFor(() => eachBus.published.length === 3, 1_000, 'handed over at the end of the turn');
    expect(each.stats()).toMatchObject({ captured: 3, sent: 3, buffered: 0 });
    each.offer(makeCall(3));
    await waitFor(() => eachBus.published.length === 4, 1_000, 'a later turn hands over its own records');
    // Without it, records wait for the flusher's tick.
    await turn();
    expect(plainBus.published).toHaveLength(0);
    expect(plain.stats()).toMatchObject({ captured: 3, buffered: 3 });
    exact(each.stats());
    await each.close(1_000);
    await plain.close(1_000);
    expect(plain.stats().sent).toBe(3);

    expect(() => new Tee(new InProcessBus(), { handOffMs: -1 })).toThrow(/handOffMs/);
    // The shared tee of a runtime with the in-process bus does it, within IN_PROCESS_HAND_OFF_MS.
    const bus = new RecordingBus(new InProcessBus());
    const ctx = sidecarContext(sidecarConfig({ sidecar: { upstream: 'http://127.0.0.1:1' } }), bus, store);
    const lease = acquireTee(ctx, slow);
    // A small record waits for the tick; one of 64 KiB or more (a 64 KB call) goes over at once, and
    // takes the waiting one along.
    lease.tee.offer(makeCall(9));
    await turn();
    await new Promise((r) => setTimeout(r, 50));
    expect(bus.published).toHaveLength(0);
    const big = makeCall(10, 4000);
    expect(encodeCaptureSized(big).bytes).toBeGreaterThanOrEqual(64 * 1024);
    lease.tee.offer(big);
    await waitFor(() => bus.published.length === 2, 1_000, 'the shared tee hands a large record over at once');
    await lease.release(1_000);
  });

  it('holds back background publishing while the event loop is saturated, then catches up', async () => {
    const bus = new RecordingBus(new InProcessBus());
    const tee = new Tee(bus, { flushIntervalMs: 5, maxLoopUtilization: 0.5 });
    tee.start();
    const spin = (ms: number): void => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    // Timers still fire in the gaps between spins, so the flusher sees a loop ~97% busy.
    const saturate = async (rounds: number): Promise<void> => {
      for (let i = 0; i < rounds; i++) {
        spin(30);
        await new Promise((r) => setTimeout(r, 0));
      }
    };
    await saturate(10);
    for (let i = 0; i < 50; i++) tee.offer(makeCall(i));
    await saturate(10);
    expect(tee.stats()).toMatchObject({ captured: 50, sent: 0, buffered: 50 });
    await waitFor(() => tee.stats().sent === 50, 5_000, 'published once the loop is idle again');
    exact(tee.stats());
    await tee.close(1_000);
  });

  it('does not hold records back on the in-process bus: handing them over costs the loop nothing', async () => {
    const bus = new RecordingBus(new InProcessBus());
    const ctx = sidecarContext(sidecarConfig({ sidecar: { upstream: 'http://127.0.0.1:1' } }), bus, store);
    const lease = acquireTee(ctx, { flushIntervalMs: 5 });
    const spin = (ms: number): void => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    // A loop ~97% busy: a tee with the default maxLoopUtilization (0.9) would hold records back.
    const saturate = async (rounds: number): Promise<void> => {
      for (let i = 0; i < rounds; i++) {
        spin(50);
        await new Promise((r) => setTimeout(r, 0));
      }
    };
    await saturate(30);
    for (let i = 0; i < 50; i++) lease.tee.offer(makeCall(i));
    await saturate(20);
    expect(lease.tee.stats()).toMatchObject({ captured: 50, sent: 50, buffered: 0 });
    expect(bus.published).toHaveLength(50);
    await lease.release(1_000);
  });

  it('exposes the accounting as metrics', async () => {
    const registry = new Registry();
    const tee = new Tee(new InProcessBus(), { registry, maxBufferBytes: 1 });
    tee.offer(makeCall(1));
    tee.noteSampledOut();
    const text = await registry.metrics();
    expect(text).toContain('modelwatch_tee_captured_total 1');
    expect(text).toContain('modelwatch_tee_dropped_total{reason="buffer_full"} 1');
    expect(text).toContain('modelwatch_tee_sent_total 0');
    expect(text).toContain('modelwatch_tee_buffered_records 0');
    expect(text).toContain('modelwatch_tee_buffered_bytes 0');
    expect(text).toContain('modelwatch_tee_sampled_out_total 1');
    await tee.close(10);
  });

  it('lets two tees and two sidecars share one registry: counters add up, gauges sum, nothing throws', async () => {
    const registry = new Registry();
    const a = new Tee(new InProcessBus(), { registry, flushIntervalMs: 10_000 });
    const b = new Tee(new InProcessBus(), { registry, flushIntervalMs: 10_000 });
    a.offer(makeCall(1));
    b.offer(makeCall(2));
    b.offer(makeCall(3));
    let text = await registry.metrics();
    expect(text).toContain('modelwatch_tee_captured_total 3');
    expect(text).toContain('modelwatch_tee_buffered_records 3');
    await a.close(1_000);
    text = await registry.metrics();
    expect(text).toContain('modelwatch_tee_sent_total 1');
    expect(text).toContain('modelwatch_tee_buffered_records 2'); // the closed tee no longer reports
    await b.close(1_000);
    expect(await registry.metrics()).toContain('modelwatch_tee_sent_total 3');

    // Two sidecars (two runtime contexts) on one registry: before, the second threw "already registered".
    const config = sidecarConfig({ sidecar: { upstream: upstream.url } });
    const ctx1 = { ...sidecarContext(config, new InProcessBus(), store), metrics: registry };
    const ctx2 = { ...sidecarContext(config, new InProcessBus(), store), metrics: registry };
    const s1 = await startSidecar(ctx1);
    const s2 = await startSidecar(ctx2);
    try {
      const body = Buffer.from(
        JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
      );
      expect(
        (
          await call(s1.url, '/v2/models/classifier/infer', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          })
        ).status,
      ).toBe(200);
      expect(
        (
          await call(s2.url, '/v2/models/classifier/infer', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          })
        ).status,
      ).toBe(200);
      expect(await registry.metrics()).toContain(
        'modelwatch_sidecar_requests_total{model="classifier",version="",status="200"} 2',
      );
    } finally {
      await s1.stop();
      await s2.stop();
    }
  });

  it('bounds model and version label values: beyond metrics.maxModels names count under "other"', async () => {
    const registry = new Registry();
    const metrics = new SidecarMetrics(registry, modelLabelsOn(registry, { maxModels: 3, maxVersions: 2 }));
    for (let i = 0; i < 50; i++) metrics.observe(`model-${i}`, `v${i % 5}`, 200, 0.001, 10, 10);
    metrics.observe('', '', 404, 0.001, 0, 0); // non-model routes keep their empty labels
    const json = await registry.getSingleMetric('modelwatch_sidecar_requests_total')!.get();
    const series = json.values.map((v) => `${String(v.labels.model)}/${String(v.labels.version)}=${v.value}`).sort();
    expect(series).toEqual(['/=1', 'model-0/v0=1', 'model-1/v1=1', 'model-2/other=1', 'other/other=47']);
    // The total is kept: nothing is lost by bounding, only named less precisely.
    expect(json.values.reduce((n, v) => n + v.value, 0)).toBe(51);
  });

  it('rejects bad options at construction', () => {
    expect(() => new Tee(new InProcessBus(), { maxBufferBytes: 0 })).toThrow(/maxBufferBytes/);
    expect(() => new Tee(new InProcessBus(), { publishTimeoutMs: Number.NaN })).toThrow(/publishTimeoutMs/);
    expect(() => new Tee(new InProcessBus(), { maxLoopUtilization: 0 })).toThrow(/maxLoopUtilization/);
  });
});

describe('sidecar sampling and a hung bus', () => {
  it('samples per model, falling back to the sidecar rate', async () => {
    const bus = new RecordingBus(new InProcessBus());
    const config = sidecarConfig({
      sidecar: { upstream: upstream.url, sampling: 0.5 },
      models: { strings: { sampling: 0 }, classifier: { sampling: 1 } },
    });
    const sc = await startSidecar(sidecarContext(config, bus, store));
    try {
      const cls = Buffer.from(
        JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
      );
      const str = Buffer.from(
        JSON.stringify({ inputs: [{ name: 'text', shape: [1], datatype: 'BYTES', data: ['x'] }] }),
      );
      const other = 400;
      await runConcurrent(
        100,
        8,
        async () => (await call(sc.url, '/v2/models/classifier/infer', { method: 'POST', body: cls })).status,
      );
      await runConcurrent(
        100,
        8,
        async () => (await call(sc.url, '/v2/models/strings/infer', { method: 'POST', body: str })).status,
      );
      // A model with no rate of its own uses the sidecar's 0.5 (the upstream answers 404; still an inference call).
      await runConcurrent(
        other,
        8,
        async () => (await call(sc.url, '/v2/models/other/infer', { method: 'POST', body: cls })).status,
      );
      await waitFor(() => sc.tee.stats().buffered === 0, 5_000, 'tee drained');
      const s = sc.tee.stats();
      exact(s);
      const otherCaptured = s.captured - 100;
      expect(s.sampledOut).toBe(100 + (other - otherCaptured));
      // Binomial(400, 0.5): ±80 is more than 8 standard deviations.
      expect(otherCaptured).toBeGreaterThan(120);
      expect(otherCaptured).toBeLessThan(280);
      const models = bus.published.map((m: BusMessage) => m.headers.ce_model);
      expect(models.filter((m) => m === 'classifier')).toHaveLength(100);
      expect(models.filter((m) => m === 'strings')).toHaveLength(0);
    } finally {
      await sc.stop();
    }
  });

  it('keeps answering while the bus hangs: no request waits for a publish', async () => {
    const bus = new StallableBus(new InProcessBus());
    bus.stall();
    const config = sidecarConfig({ sidecar: { upstream: upstream.url, shutdownDeadlineMs: 300 } });
    // The publish timeout is far beyond the test: if any request waited on the bus, it would never finish.
    const sc = await startSidecar(sidecarContext(config, bus, store), { teePublishTimeoutMs: 600_000 });
    try {
      const body = Buffer.from(
        JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
      );
      const statuses = await runConcurrent(
        500,
        8,
        async () => (await call(sc.url, '/v2/models/classifier/infer', { method: 'POST', body })).status,
      );
      expect(statuses.every((s) => s === 200)).toBe(true);
      const s = sc.tee.stats();
      expect(s.captured).toBe(500);
      expect(s.sent).toBe(0);
      expect(s.buffered).toBe(500);
      exact(s);
    } finally {
      await sc.stop();
    }
    // stop() gave up after its deadline: the in-flight batch is still buffered, the rest dropped as shutdown.
    const stopped = sc.tee.stats();
    exact(stopped);
    expect(stopped.droppedBy.shutdown + stopped.buffered).toBe(500);
    bus.release();
    await waitFor(() => sc.tee.stats().buffered === 0, 5_000, 'in-flight batch settled');
    expect(sc.tee.stats().sent).toBe(stopped.buffered);
    exact(sc.tee.stats());
  });
});
