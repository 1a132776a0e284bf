// Only bodies up to 64 KiB that declare a Content-Length are read whole before forwarding: a larger
// declared body, and a chunked body of any size, stream — the upstream gets the first bytes while the
// client is still sending — and the capture still holds the whole body.
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, decodeCapture } from '../src/bus/index.js';
import { WHOLE_BODY_MAX_BYTES } from '../src/sidecar/proxy.js';
import { startSidecar, type RunningSidecar } from '../src/sidecar/index.js';
import type { Store } from '../src/store/index.js';
import { waitFor } from './support/ingest.js';
import { RecordingBus, sidecarConfig, sidecarContext } from './support/sidecar.js';

let upstream: Server;
let sidecar: RunningSidecar;
let recorded: RecordingBus;
let bus: InProcessBus;
/** Body bytes the upstream has received, per x-request-id. */
const received = new Map<string, number>();

const noStore = new Proxy({} as Store, {
  get(_t, p) {
    if (p === 'then') return undefined;
    throw new Error(`the sidecar used the store (${String(p)})`);
  },
});

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const id = String(req.headers['x-request-id']);
    received.set(id, 0);
    req.on('data', (c: Buffer) => received.set(id, (received.get(id) ?? 0) + c.length));
    req.on('end', () => {
      const body = JSON.stringify({ received: received.get(id) });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  bus = new InProcessBus();
  recorded = new RecordingBus(bus);
  const config = sidecarConfig({ sidecar: { upstream: upstreamUrl } });
  sidecar = await startSidecar(sidecarContext(config, recorded, noStore), { teeFlushIntervalMs: 5 });
});

afterAll(async () => {
  await sidecar.stop();
  await bus.close();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

function open(): Promise<Socket> {
  const port = Number(new URL(sidecar.url).port);
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

function payload(bytes: number): Buffer {
  return Buffer.alloc(bytes, 'abcdefghijklmnopqrstuvwxyz');
}

async function answerOf(s: Socket): Promise<string> {
  let answer = '';
  s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
  await waitFor(() => answer.includes('"received"'), 10_000, 'the answer');
  return answer;
}

describe('bodies that are not read whole', () => {
  it('a body over 64 KiB with a Content-Length streams: the upstream has bytes before the client sent its last', async () => {
    const b = payload(WHOLE_BODY_MAX_BYTES * 2 + 123);
    const s = await open();
    const answer = answerOf(s);
    s.write(
      `POST /v2/models/classifier/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\nx-request-id: big-1\r\n\r\n`,
    );
    s.write(b.subarray(0, WHOLE_BODY_MAX_BYTES + 1000));
    await waitFor(() => (received.get('big-1') ?? 0) > 0, 5_000, 'upstream first bytes');
    expect(received.get('big-1')).toBeLessThan(b.length);
    s.write(b.subarray(WHOLE_BODY_MAX_BYTES + 1000));
    const text = await answer;
    expect(text.startsWith('HTTP/1.1 200')).toBe(true);
    expect(text).toContain(`{"received":${b.length}}`);
    s.destroy();
    await waitFor(() => recorded.published.some((m) => m.key === 'big-1'), 5_000, 'capture');
    const cap = decodeCapture(recorded.published.find((m) => m.key === 'big-1')!);
    expect(cap.status).toBe(200);
    expect(cap.request.size).toBe(b.length);
    expect(cap.request.body.equals(b)).toBe(true);
  });

  it('a small chunked body streams too, and is captured de-chunked', async () => {
    const first = payload(700);
    const second = payload(900);
    const s = await open();
    const answer = answerOf(s);
    s.write(
      `POST /v2/models/classifier/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nx-request-id: chunked-1\r\n\r\n`,
    );
    s.write(`${first.length.toString(16)}\r\n`);
    s.write(first);
    s.write('\r\n');
    await waitFor(() => (received.get('chunked-1') ?? 0) > 0, 5_000, 'upstream first bytes');
    expect(received.get('chunked-1')).toBeLessThanOrEqual(first.length);
    s.write(`${second.length.toString(16)}\r\n`);
    s.write(second);
    s.write('\r\n0\r\n\r\n');
    const text = await answer;
    expect(text.startsWith('HTTP/1.1 200')).toBe(true);
    expect(text).toContain(`{"received":${first.length + second.length}}`);
    s.destroy();
    await waitFor(() => recorded.published.some((m) => m.key === 'chunked-1'), 5_000, 'capture');
    const cap = decodeCapture(recorded.published.find((m) => m.key === 'chunked-1')!);
    expect(cap.request.size).toBe(first.length + second.length);
    expect(cap.request.body.equals(Buffer.concat([first, second]))).toBe(true);
  });
});
