// Faults around the REST sidecar: a Kafka broker down under load, dead/slow/resetting upstreams,
// client aborts, a 50 MB request, malformed client input, and shutdown with requests in flight.
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, KafkaBus, decodeCapture } from '../src/bus/index.js';
import { startIngest } from '../src/ingest/index.js';
import { startSidecar, type RunningSidecar } from '../src/sidecar/index.js';
import { Tables, type ClickHouseStore } from '../src/store/index.js';
import { quarantined, waitFor } from './support/ingest.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';
import {
  RecordingBus,
  call,
  openTcpHandles,
  rssMb,
  runConcurrent,
  sidecarConfig,
  sidecarContext,
  testAgent,
} from './support/sidecar.js';
import { openTestStore } from './support/store.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';
import { selectRows } from './support/store.js';

const JSON_CT = { 'content-type': 'application/json' };
const body = Buffer.from(
  JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
);

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

describe('Kafka broker down under load', () => {
  let kafka: KafkaMock;
  let bus: KafkaBus;
  let sidecar: RunningSidecar;

  beforeAll(async () => {
    kafka = await startKafkaMock({ topics: { 'mw.faults': 1 } });
    bus = new KafkaBus({
      brokers: kafka.brokers,
      topic: 'mw.faults',
      publishTimeoutMs: 1_500,
      requestTimeoutMs: 1_000,
      connectionTimeoutMs: 500,
    });
    const ctx = sidecarContext(sidecarConfig({ sidecar: { upstream: upstream.url } }), bus, store);
    sidecar = await startSidecar(ctx, { teePublishTimeoutMs: 2_000 });
  });

  afterAll(async () => {
    await sidecar?.stop();
    await bus?.close();
    await kafka?.stop();
  });

  it('serves 2,000 requests with zero failures while the broker is down, accounts for every capture, and recovers', async () => {
    // Warm up: the producer is connected and records reach Kafka.
    await runConcurrent(
      50,
      8,
      async () =>
        (await call(sidecar.url, '/v2/models/classifier/infer', { method: 'POST', headers: JSON_CT, body })).status,
    );
    await waitFor(() => sidecar.tee.stats().sent === 50, 15_000, 'warm-up records sent');

    await kafka.down(1);
    const statuses = await runConcurrent(2_000, 16, async () => {
      const r = await call(sidecar.url, '/v2/models/classifier/infer', { method: 'POST', headers: JSON_CT, body });
      return r.status;
    });
    expect(statuses.filter((s) => s !== 200)).toHaveLength(0);
    const during = sidecar.tee.stats();
    expect(during.captured).toBe(2_050);
    expect(during.captured).toBe(during.sent + during.dropped + during.buffered);

    await kafka.up(1);
    // Whatever was buffered settles (sent or dropped as publish_failed); the sum stays exact.
    await waitFor(() => sidecar.tee.stats().buffered === 0, 20_000, 'tee to drain after the broker returned');
    const settled = sidecar.tee.stats();
    expect(settled.captured).toBe(settled.sent + settled.dropped + settled.buffered);
    expect(settled.droppedBy.publish_failed + settled.droppedBy.buffer_full).toBe(settled.dropped);

    // New traffic reaches Kafka again.
    await runConcurrent(
      100,
      8,
      async () =>
        (await call(sidecar.url, '/v2/models/classifier/infer', { method: 'POST', headers: JSON_CT, body })).status,
    );
    await waitFor(() => sidecar.tee.stats().sent >= settled.sent + 100, 30_000, 'new records sent after recovery');
    const after = sidecar.tee.stats();
    expect(after.captured).toBe(2_150);
    expect(after.captured).toBe(after.sent + after.dropped + after.buffered);

    const metrics = (await call(sidecar.url, '/metrics')).body.toString('utf8');
    const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    const dropped = [...metrics.matchAll(/^modelwatch_tee_dropped_total\{reason="[a-z_]+"\} (\S+)$/gm)].reduce(
      (a, m) => a + Number(m[1]),
      0,
    );
    expect(value('modelwatch_tee_captured_total')).toBe(
      value('modelwatch_tee_sent_total') + dropped + value('modelwatch_tee_buffered_records'),
    );
  }, 120_000);
});

describe('upstream faults', () => {
  let sidecar: RunningSidecar;
  const recorded = new RecordingBus(new InProcessBus());

  beforeAll(async () => {
    const config = sidecarConfig({
      sidecar: { upstream: upstream.url, upstreamTimeoutMs: 300, upstreamConnectTimeoutMs: 300 },
    });
    sidecar = await startSidecar(sidecarContext(config, recorded, store));
  });

  afterAll(async () => {
    await sidecar?.stop();
  });

  it('answers 502 with a JSON error when the upstream is unreachable, and tees the failed call', async () => {
    const dead = await startV2Server();
    const deadUrl = dead.url;
    await dead.stop();
    const config = sidecarConfig({ sidecar: { upstream: deadUrl } });
    const bus = new RecordingBus(new InProcessBus());
    const sc = await startSidecar(sidecarContext(config, bus, store));
    try {
      const r = await call(sc.url, '/v2/models/classifier/infer', {
        method: 'POST',
        headers: { ...JSON_CT, 'x-request-id': 'dead-1' },
        body,
      });
      expect(r.status).toBe(502);
      expect(r.headers['content-type']).toBe('application/json');
      const err = JSON.parse(r.body.toString('utf8')) as { error: { code: string; message: string } };
      expect(err.error.code).toBe('upstream_unavailable');
      expect(err.error.message).toMatch(/ECONNREFUSED|connect/i);
      const get = await call(sc.url, '/v2/health/ready');
      expect(get.status).toBe(502);
      await waitFor(() => bus.published.length === 1, 5_000, 'failed call teed');
      const cap = decodeCapture(bus.published[0]!);
      expect(cap.requestId).toBe('dead-1');
      expect(cap.status).toBe(502);
      expect(cap.error).toMatch(/^connect: /);
      expect(cap.request.body.equals(body)).toBe(true);
      const metrics = (await call(sc.url, '/metrics')).body.toString('utf8');
      expect(metrics).toContain('modelwatch_sidecar_upstream_errors_total{reason="connect"} 2');
    } finally {
      await sc.stop();
    }
  });

  it('answers 504 when the upstream is slower than the timeout', async () => {
    const t0 = Date.now();
    const r = await call(sidecar.url, '/v2/models/classifier/infer', {
      method: 'POST',
      headers: { ...JSON_CT, 'x-test-delay-ms': '2000' },
      body,
    });
    expect(r.status).toBe(504);
    expect(Date.now() - t0).toBeLessThan(1_900);
    expect((JSON.parse(r.body.toString('utf8')) as { error: { code: string } }).error.code).toBe('upstream_timeout');
  });

  it('answers 502 when the upstream resets connections, and leaks no sockets over many faults', async () => {
    const r = await call(sidecar.url, '/v2/models/classifier/infer', {
      method: 'POST',
      headers: { ...JSON_CT, 'x-test-reset': '1' },
      body,
    });
    expect(r.status).toBe(502);
    const before = openTcpHandles();
    // undici's parser timeouts tick at ~0.5 s, so the slow calls are far slower than the 300 ms limit.
    const statuses = await runConcurrent(300, 12, async (i) => {
      const headers: Record<string, string> = { ...JSON_CT };
      if (i % 3 === 0) headers['x-test-reset'] = '1';
      else if (i % 3 === 1) headers['x-test-delay-ms'] = '2500';
      return (await call(sidecar.url, '/v2/models/classifier/infer', { method: 'POST', headers, body })).status;
    });
    expect(statuses.filter((s) => s === 502)).toHaveLength(100);
    expect(statuses.filter((s) => s === 504)).toHaveLength(100);
    expect(statuses.filter((s) => s === 200)).toHaveLength(100);
    await waitFor(() => sidecar.inFlight() === 0, 5_000, 'no request in flight');
    // Every failure closed its upstream socket; only keep-alive sockets of the pools and agents remain.
    await waitFor(
      () => openTcpHandles() <= before + 30,
      5_000,
      `open sockets back near ${before} (now ${openTcpHandles()})`,
    );
    const s = sidecar.tee.stats();
    expect(s.captured).toBe(s.sent + s.dropped + s.buffered);
  });

  it('survives clients that go away mid-request, and records them as 499', async () => {
    const ac = new AbortController();
    const pending = undiciRequest(`${sidecar.url}/v2/models/classifier/infer`, {
      method: 'POST',
      headers: { ...JSON_CT, 'x-test-delay-ms': '250', 'x-request-id': 'gone-1' },
      body,
      signal: ac.signal,
      dispatcher: testAgent,
    });
    setTimeout(() => ac.abort(), 50);
    await expect(pending).rejects.toThrow();
    await waitFor(() => sidecar.inFlight() === 0, 5_000, 'aborted request finished');
    await waitFor(() => recorded.published.some((m) => m.key === 'gone-1'), 5_000, 'aborted call teed');
    const cap = decodeCapture(recorded.published.find((m) => m.key === 'gone-1')!);
    expect(cap.status).toBe(499);
    expect(cap.error).toBe('client_aborted');
    // An SSE client leaving after the first event: the upstream stream is cancelled too.
    const sse = await undiciRequest(`${sidecar.url}/v2/models/classifier/generate_stream`, {
      method: 'POST',
      headers: { ...JSON_CT, 'x-test-chunks': '50', 'x-test-interval-ms': '20' },
      body: '{}',
      dispatcher: testAgent,
    });
    for await (const _chunk of sse.body) break;
    await waitFor(() => sidecar.inFlight() === 0, 5_000, 'stream cancelled');
    const ok = await call(sidecar.url, '/v2/health/live');
    expect(ok.status).toBe(200);
  });

  // The issue asks for 50 MB; 200 MB makes the memory bound unambiguous on a noisy machine (RSS wobbles
  // by a few MB, so a bound near 50 MB could not tell streaming from buffering).
  it('streams a 200 MB request through with a capped capture and bounded memory', async () => {
    const size = 200 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, 7);
    const hash = createHash('sha256');
    for (let o = 0; o < size; o += piece.length) hash.update(piece);
    global.gc?.();
    const rss0 = rssMb();
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb())), 20);
    let sent = 0;
    const source = new Readable({
      read() {
        if (sent >= size) return void this.push(null);
        sent += piece.length;
        this.push(piece);
      },
    });
    const res = await undiciRequest(`${sidecar.url}/v2/models/classifier/infer`, {
      method: 'POST',
      headers: { ...JSON_CT, 'x-test-sink': '1', 'x-request-id': 'big-1', 'content-length': String(size) },
      body: source,
      dispatcher: testAgent,
      headersTimeout: 60_000,
    });
    const answer = (await res.body.json()) as { bytes: number; sha256: string };
    clearInterval(sampler);
    expect(res.statusCode).toBe(200);
    expect(answer.bytes).toBe(size);
    expect(answer.sha256).toBe(hash.digest('hex'));
    // Neither the sidecar nor the upstream held the body: growth stays far below its 200 MB.
    expect(peak - rss0).toBeLessThan(64);
    await waitFor(() => recorded.published.some((m) => m.key === 'big-1'), 5_000, 'big call teed');
    const cap = decodeCapture(recorded.published.find((m) => m.key === 'big-1')!);
    expect(cap.request.size).toBe(size);
    expect(cap.request.truncated).toBe(true);
    expect(cap.request.body.length).toBe(1024 * 1024);
    expect(cap.request.body.every((b) => b === 7)).toBe(true);
  }, 60_000);
});

describe('malformed client input', () => {
  it('forwards malformed bodies untouched; ingest stores the 4xx and quarantines what a 2xx made undecodable', async () => {
    const bus = new InProcessBus();
    const ctx = sidecarContext(sidecarConfig({ sidecar: { upstream: upstream.url } }), bus, store);
    const sc = await startSidecar(ctx);
    const ingest = await startIngest(ctx);
    await ingest.ready;
    try {
      const bad = Buffer.from(
        '{"inputs": [ {"name": "input", "shape": [1,4], "datatype": "FP32", "data": [1,2,',
        'utf8',
      );
      const hdrPast = Buffer.from('{"inputs":[]}', 'utf8');
      const r1 = await call(sc.url, '/v2/models/classifier/infer', {
        method: 'POST',
        headers: { ...JSON_CT, 'x-request-id': 'bad-json' },
        body: bad,
      });
      expect(r1.status).toBe(400);
      const r2 = await call(sc.url, '/v2/models/classifier/infer', {
        method: 'POST',
        headers: {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': '9999',
          'x-request-id': 'bad-hl',
        },
        body: hdrPast,
      });
      expect(r2.status).toBe(400);
      // An upstream that answers 200 to bytes ingest cannot decode: the echo proves they arrived untouched.
      const r3 = await call(sc.url, '/v2/models/classifier/infer', {
        method: 'POST',
        headers: { ...JSON_CT, 'x-test-sink': '1', 'x-request-id': 'bad-2xx' },
        body: bad,
      });
      expect(r3.status).toBe(200);
      expect((JSON.parse(r3.body.toString('utf8')) as { sha256: string }).sha256).toBe(
        createHash('sha256').update(bad).digest('hex'),
      );
      await waitFor(
        async () => (await quarantined(store)).some((q) => q.request_id === 'bad-2xx'),
        20_000,
        'quarantine row',
      );
      const q = (await quarantined(store)).find((x) => x.request_id === 'bad-2xx')!;
      expect(q.code).toBe('decode_invalid');
      await waitFor(
        async () => {
          const rs = selectRows(store, {
            query: `SELECT request_id, status FROM ${Tables.requests} WHERE request_id IN ('bad-json', 'bad-hl')`,
            format: 'JSONEachRow',
          });
          return (await rs.json()).length === 2;
        },
        20_000,
        '4xx request rows',
      );

      // Broken HTTP never reaches the handler: the client gets 400, the sidecar keeps serving.
      const raw = await new Promise<string>((resolve, reject) => {
        const [host, port] = sc.url.replace('http://', '').split(':');
        const s = connect(Number(port), host, () => s.write('GARBAGE / HTTP/9.9\r\nbad header\r\n\r\n'));
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString('latin1')));
        s.on('end', () => resolve(got));
        s.on('error', reject);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 400/);
      // A client that declares more bytes than it sends, then leaves.
      await new Promise<void>((resolve) => {
        const [host, port] = sc.url.replace('http://', '').split(':');
        const s = connect(Number(port), host, () => {
          s.write(
            'POST /v2/models/classifier/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"inputs":',
          );
          setTimeout(() => {
            s.destroy();
            resolve();
          }, 100);
        });
      });
      await waitFor(() => sc.inFlight() === 0, 5_000, 'short request finished');
      expect((await call(sc.url, '/v2/health/live')).status).toBe(200);
    } finally {
      await sc.stop();
      await ingest.stop();
    }
  }, 60_000);
});

describe('graceful shutdown', () => {
  it('stop() stops accepting, finishes in-flight requests and flushes the tee', async () => {
    const bus = new RecordingBus(new InProcessBus());
    const sc = await startSidecar(sidecarContext(sidecarConfig({ sidecar: { upstream: upstream.url } }), bus, store));
    const inflight = Array.from({ length: 5 }, (_, i) =>
      call(sc.url, '/v2/models/classifier/infer', {
        method: 'POST',
        headers: { ...JSON_CT, 'x-test-delay-ms': '400', 'x-request-id': `stop-${i}` },
        body,
      }),
    );
    await waitFor(() => sc.inFlight() === 5, 5_000, 'requests in flight');
    const stopped = sc.stop();
    const results = await Promise.all(inflight);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    await stopped;
    await expect(call(sc.url, '/v2/health/live')).rejects.toThrow();
    const s = sc.tee.stats();
    expect(s.captured).toBe(5);
    expect(s.sent).toBe(5);
    expect(s.buffered).toBe(0);
    expect(bus.published.map((m) => m.key).sort()).toEqual(['stop-0', 'stop-1', 'stop-2', 'stop-3', 'stop-4']);
  });
});
