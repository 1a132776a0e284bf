// Streaming through the sidecar, proven directly: for a request body larger than the capture cap,
// the upstream receives its first byte before the client has sent its last one (nothing is buffered
// whole), and the capture still holds exactly the first `maxCaptureBytes` bytes.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, decodeCapture } from '../src/bus/index.js';
import { startSidecar, type RunningSidecar } from '../src/sidecar/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { waitFor } from './support/ingest.js';
import { RecordingBus, sidecarConfig, sidecarContext } from './support/sidecar.js';
import { openTestStore } from './support/store.js';

const CAP = 64 * 1024;
const CHUNK = 16 * 1024;
const CHUNKS = 32; // 512 KiB in all: 8x the capture cap

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let upstream: Server;
let upstreamUrl: string;
const events: { what: string; at: number }[] = [];
let upstreamBytes = 0;
let sidecar: RunningSidecar;
const bus = new RecordingBus(new InProcessBus());

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  upstream = createServer((req, res) => {
    let first = true;
    req.on('data', (c: Buffer) => {
      if (first) events.push({ what: 'upstream first byte', at: performance.now() });
      first = false;
      upstreamBytes += c.length;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ received: upstreamBytes }));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const ctx = sidecarContext(sidecarConfig({ sidecar: { upstream: upstreamUrl, maxCaptureBytes: CAP } }), bus, store);
  sidecar = await startSidecar(ctx);
});

afterAll(async () => {
  await sidecar?.stop();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
  await cleanup?.();
});

describe('sidecar streaming', () => {
  it('forwards the first bytes of a body larger than the capture cap before the client sends its last', async () => {
    const url = new URL('/v2/models/big/infer', sidecar.url);
    const chunk = (i: number): Buffer => Buffer.alloc(CHUNK, 65 + (i % 26));
    let beforeLast = 0;
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        url,
        { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'x-request-id': 'stream-1' } },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      // Chunked upload, paced: the client sends its last chunk only once the upstream has received more
      // than the capture cap, or after a generous wait (then the checks below fail, as they should).
      void (async () => {
        for (let i = 0; i < CHUNKS - 1; i++) {
          req.write(chunk(i));
          await new Promise((r) => setTimeout(r, 5));
        }
        const deadline = Date.now() + 5_000;
        while (upstreamBytes <= CAP && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        beforeLast = upstreamBytes;
        events.push({ what: 'client last byte', at: performance.now() });
        req.end(chunk(CHUNKS - 1));
      })();
    });
    const res = await answer;
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ received: CHUNK * CHUNKS });
    expect(events.map((e) => e.what)).toEqual(['upstream first byte', 'client last byte']);
    // More than the capture cap reached the upstream before the client finished: streamed through,
    // neither buffered whole nor held back up to the cap.
    expect(beforeLast).toBeGreaterThan(CAP);
    await waitFor(() => sidecar.tee.stats().sent === 1, 5_000, 'capture sent');
    const cap = decodeCapture(bus.published[0]!);
    expect(cap.requestId).toBe('stream-1');
    expect(cap.request).toMatchObject({ size: CHUNK * CHUNKS, truncated: true });
    expect(cap.request.body.length).toBe(CAP);
    expect(cap.request.body.equals(Buffer.concat(Array.from({ length: CAP / CHUNK }, (_, i) => chunk(i))))).toBe(true);
  });
});
