// Small request bodies (≤ 64 KiB with a Content-Length) are read whole and forwarded as one buffer
// (DESIGN §4 rule 2): nothing reaches the upstream before the body is complete, the upstream gets the
// exact bytes, and a client that leaves mid-body is recorded as 499 with what had arrived.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, decodeCapture } from '../src/bus/index.js';
import { WHOLE_BODY_MAX_BYTES } from '../src/sidecar/proxy.js';
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
