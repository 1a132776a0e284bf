// Small request bodies (≤ 64 KiB with a Content-Length) are read whole and forwarded as one buffer
// (DESIGN §4 rule 2): nothing reaches the upstream before the body is complete, the upstream gets the
// exact bytes, and a client that leaves mid-body is recorded as 499 with what had arrived.
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, decodeCapture } from '../src/bus/index.js';
import { ResponseSizeHints, WHOLE_BODY_MAX_BYTES } from '../src/sidecar/proxy.js';
import { startSidecar, type RunningSidecar } from '../src/sidecar/index.js';
import type { Store } from '../src/store/index.js';
import { waitFor } from './support/ingest.js';
import { RecordingBus, sidecarConfig, sidecarContext } from './support/sidecar.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

let upstream: TestV2Server;
let sidecar: RunningSidecar;
let recorded: RecordingBus;
let bus: InProcessBus;

// The sidecar never touches the store: a context without one makes any use fail loudly.
const noStore = new Proxy({} as Store, {
  get(_t, p) {
    if (p === 'then') return undefined;
    throw new Error(`the sidecar used the store (${String(p)})`);
  },
});

beforeAll(async () => {
  upstream = await startV2Server();
  bus = new InProcessBus();
  recorded = new RecordingBus(bus);
  const config = sidecarConfig({ sidecar: { upstream: upstream.url } });
  sidecar = await startSidecar(sidecarContext(config, recorded, noStore), { teeFlushIntervalMs: 5 });
});

afterAll(async () => {
  await sidecar.stop();
  await bus.close();
  await upstream.stop();
});

function body(rows: number): Buffer {
  const data = Array.from({ length: rows * 4 }, (_, i) => (i % 7) / 10);
  return Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [rows, 4], datatype: 'FP32', data }] }));
}

function open(): Promise<Socket> {
  const port = Number(new URL(sidecar.url).port);
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

function head(length: number, requestId: string): string {
  return `POST /v2/models/classifier/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nx-request-id: ${requestId}\r\n\r\n`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('request bodies up to 64 KiB', () => {
  it('reach the upstream only once complete, byte for byte', async () => {
    const b = body(40);
    expect(b.length).toBeLessThan(WHOLE_BODY_MAX_BYTES);
    const before = upstream.requests;
    const s = await open();
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    s.write(head(b.length, 'whole-1') + b.subarray(0, 300).toString('latin1'));
    await sleep(300);
    expect(upstream.requests).toBe(before);
    s.write(b.subarray(300));
    await waitFor(() => answer.includes('\r\n\r\n') && answer.includes('outputs'), 5_000, 'answer');
    expect(answer.startsWith('HTTP/1.1 200')).toBe(true);
    expect(upstream.requests).toBe(before + 1);
    s.destroy();
    await waitFor(() => recorded.published.some((m) => m.key === 'whole-1'), 5_000, 'capture');
    const cap = decodeCapture(recorded.published.find((m) => m.key === 'whole-1')!);
    expect(cap.status).toBe(200);
    expect(cap.request.size).toBe(b.length);
    expect(cap.request.body.equals(b)).toBe(true);
    // The upstream decoded the same 40 rows: its answer has one output row per input row.
    const json = JSON.parse(cap.response.body.toString('utf8')) as { outputs: { shape: number[] }[] };
    expect(json.outputs[0]!.shape[0]).toBe(40);
  });

  it('record a client that leaves mid-body as 499 with what had arrived, sending nothing upstream', async () => {
    const b = body(200);
    const before = upstream.requests;
    const s = await open();
    s.write(head(b.length, 'whole-gone') + b.subarray(0, 1000).toString('latin1'));
    await sleep(200);
    s.destroy();
    await waitFor(() => sidecar.inFlight() === 0, 5_000, 'in-flight back to 0');
    await waitFor(() => recorded.published.some((m) => m.key === 'whole-gone'), 5_000, 'capture');
    const cap = decodeCapture(recorded.published.find((m) => m.key === 'whole-gone')!);
    expect(cap.status).toBe(499);
    expect(cap.error).toBe('client_aborted');
    expect(cap.request.size).toBe(1000);
    expect(cap.request.body.equals(b.subarray(0, 1000))).toBe(true);
    expect(upstream.requests).toBe(before);
  });
});

describe('captures laid out in one buffer when a model answers with one size', () => {
  it('ResponseSizeHints guesses only after two equal sizes, and forgets on a change', () => {
    const h = new ResponseSizeHints(2);
    expect(h.expect('m')).toBeUndefined();
    h.note('m', 100);
    expect(h.expect('m')).toBeUndefined();
    h.note('m', 100);
    expect(h.expect('m')).toBe(100);
    h.note('m', 90);
    expect(h.expect('m')).toBeUndefined();
    h.note('m', 90);
    expect(h.expect('m')).toBe(90);
    h.note('m', -1);
    h.note('m', -1);
    expect(h.expect('m')).toBeUndefined();
    h.note('a', 5);
    h.note('b', 5);
    h.note('b', 5);
    // Bounded: a third model is not remembered.
    expect(h.expect('b')).toBeUndefined();
  });

  it('forwards and captures the exact bytes whether or not the size guess holds', async () => {
    const received = new Map<string, Buffer>();
    const sized = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const id = String(req.headers['x-request-id']);
        received.set(id, Buffer.concat(chunks));
        const n = Number(req.headers['x-response-size']);
        const out = Buffer.alloc(n);
        for (let i = 0; i < n; i++) out[i] = (i * 31 + id.length * 7 + n) & 0xff;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
        // In pieces, so the capture is assembled from several chunks.
        const third = Math.floor(n / 3);
        res.write(out.subarray(0, third));
        setImmediate(() => res.end(out.subarray(third)));
      });
    });
    await new Promise<void>((r) => sized.listen(0, '127.0.0.1', r));
    const port = (sized.address() as AddressInfo).port;
    const inner = new InProcessBus();
    const rec = new RecordingBus(inner);
    const config = sidecarConfig({ sidecar: { upstream: `http://127.0.0.1:${port}` } });
    const sc = await startSidecar(sidecarContext(config, rec, noStore), { teeFlushIntervalMs: 5 });
    try {
      // Equal sizes (the guess starts holding from the third call), a change, then equal again; request
      // bodies from tiny to multi-chunk (60 KiB arrives in more than one read).
      const plan = [40_000, 40_000, 40_000, 40_000, 1_000, 40_000, 40_000, 40_000, 0, 0, 0, 7];
      const sent = new Map<string, { request: Buffer; responseSize: number }>();
      for (let i = 0; i < plan.length; i++) {
        const id = `sized-${i}`;
        const request = Buffer.alloc([3, 60_000, 1_200][i % 3]!, 65 + i);
        sent.set(id, { request, responseSize: plan[i]! });
        const r = await fetch(`${sc.url}/v2/models/sized/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-request-id': id, 'x-response-size': String(plan[i]) },
          body: request,
        });
        const got = Buffer.from(await r.arrayBuffer());
        expect(got.length).toBe(plan[i]);
      }
      await waitFor(() => rec.published.length === plan.length, 10_000, 'every call captured');
      for (const m of rec.published) {
        const c = decodeCapture(m);
        const want = sent.get(c.requestId)!;
        expect(received.get(c.requestId)!.equals(want.request)).toBe(true);
        expect(c.request.body.equals(want.request)).toBe(true);
        expect(c.response.body.length).toBe(want.responseSize);
        for (let i = 0; i < c.response.body.length; i++) {
          if (c.response.body[i] !== ((i * 31 + c.requestId.length * 7 + want.responseSize) & 0xff)) {
            throw new Error(`response byte ${i} of ${c.requestId} differs`);
          }
        }
        expect(c.request.size).toBe(want.request.length);
        expect(c.response.size).toBe(want.responseSize);
      }
    } finally {
      await sc.stop();
      await inner.close();
      await new Promise<void>((r) => sized.close(() => r()));
    }
  });
});
