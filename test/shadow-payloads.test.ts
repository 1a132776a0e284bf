// Faithful inputs: request bodies stored by the real ingest pipeline in mw_payloads (chdb) come back and
// decode to tensors bit for bit (FP32, FP16, INT64 beyond 2^53, BYTES, binary extension, gRPC, gzip);
// the per-model switch, truncated captures and the TTL column.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCapture, type CapturedCall, type ConsumedBatch } from '../src/bus/index.js';
import { createIngestMetrics } from '../src/ingest/metrics.js';
import { IngestPipeline } from '../src/ingest/pipeline.js';
import { decodePayloadBody } from '../src/ingest/payloads.js';
import { payloadTensors, type PayloadBody } from '../src/shadow/inputs.js';
import type { ShadowTensor } from '../src/shadow/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { newRegistry } from './support/ingest.js';
import { openTestStore } from './support/store.js';
import {
  capturedBody,
  capturedCall,
  encodeBinaryRequest,
  encodeGrpcRequest,
  encodeJsonRequest,
  encodeRawTensor,
  gzip,
  toFp16Bits,
  type TensorSpec,
} from './support/v2-encode.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
});
afterAll(async () => cleanup());

let offset = 0;
async function ingest(
  calls: CapturedCall[],
  options: ConstructorParameters<typeof IngestPipeline>[2] = {},
): Promise<void> {
  const pipeline = new IngestPipeline(store, createIngestMetrics(newRegistry()), options);
  const batch: ConsumedBatch = {
    topic: 't',
    partition: 0,
    messages: calls.map((c) => ({ ...encodeCapture(c), offset: String(offset++), timestamp: Date.now() })),
    heartbeat: () => Promise.resolve(),
    isRunning: () => true,
  };
  await pipeline.handleBatch(batch);
}

interface Stored {
  source: string;
  content_type: string;
  content_encoding: string;
  header_length: number;
  truncated: boolean;
  storage: string;
  body: string;
  size: number;
  expires_at: string;
}

async function stored(eventId: string): Promise<Stored | undefined> {
  const rows = await store.query<Stored>(
    `SELECT source, content_type, content_encoding, header_length, truncated, storage, body, size, toString(expires_at) AS expires_at
     FROM mw_payloads WHERE event_id = {id:String}`,
    { params: { id: eventId } },
  );
  return rows[0];
}

async function replayTensors(eventId: string): Promise<ShadowTensor[]> {
  const s = await stored(eventId);
  if (!s) throw new Error(`no payload for ${eventId}`);
  const p: PayloadBody = {
    source: s.source,
    body: decodePayloadBody(s.storage, s.body),
    contentType: s.content_type,
    contentEncoding: s.content_encoding,
    headerLength: Number(s.header_length) >= 0 ? Number(s.header_length) : undefined,
  };
  return payloadTensors(p);
}

function bytesOf(t: ShadowTensor): Buffer {
  if (Array.isArray(t.data)) throw new Error('BYTES');
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

const big = [2n ** 53n + 1n, -(2n ** 63n), 2n ** 63n - 1n, 9_007_199_254_740_993n, -12345678901234567n, 0n];
const halfBits = [0x3c00, 0x8000, 0x0001, 0x7bff, 0x7c00, 0xfc00, 0x7e01, 0x3555];
const floats = [1.1, -0, 3.4028234663852886e38, 1e-45, Math.PI, -2.5];

// FP16 raw blobs from their bits (encodeRawTensor takes numbers, so build the bits directly).
function fp16Blob(bits: number[]): Buffer {
  const b = Buffer.alloc(bits.length * 2);
  bits.forEach((h, i) => b.writeUInt16LE(h, i * 2));
  return b;
}

describe('payloads stored at ingest replay bit for bit', () => {
  it('binary extension: FP32, FP16 (incl. NaN payload), INT64 beyond 2^53 and BYTES', async () => {
    const inputs: TensorSpec[] = [
      { name: 'f32', datatype: 'FP32', shape: [2, 3], data: floats },
      { name: 'i64', datatype: 'INT64', shape: [2, 3], data: big },
      { name: 's', datatype: 'BYTES', shape: [2, 1], data: ['héllo', 'wörld'] },
    ];
    const { body, headerLength } = encodeBinaryRequest(inputs);
    // Append an FP16 tensor by hand: its wire bits include a NaN payload no number could carry.
    const half = fp16Blob(halfBits.slice(0, 6));
    const header = JSON.parse(body.subarray(0, headerLength).toString()) as { inputs: unknown[] };
    header.inputs.push({ name: 'f16', datatype: 'FP16', shape: [2, 3], parameters: { binary_data_size: half.length } });
    const h2 = Buffer.from(JSON.stringify(header));
    const full = Buffer.concat([h2, body.subarray(headerLength), half]);
    const call = capturedCall(capturedBody(full, { headerLength: h2.length, contentType: 'application/octet-stream' }));
    await ingest([call]);
    const s = await stored(call.eventId);
    expect(s?.storage).toBe('base64');
    const t = await replayTensors(call.eventId);
    expect(t.map((x) => [x.name, x.datatype, x.shape])).toEqual([
      ['f32', 'FP32', [2, 3]],
      ['i64', 'INT64', [2, 3]],
      ['s', 'BYTES', [2, 1]],
      ['f16', 'FP16', [2, 3]],
    ]);
    expect(bytesOf(t[0] as ShadowTensor).equals(encodeRawTensor('FP32', floats))).toBe(true);
    expect(bytesOf(t[1] as ShadowTensor).equals(encodeRawTensor('INT64', big))).toBe(true);
    expect([...((t[1] as ShadowTensor).data as BigInt64Array)]).toEqual(big);
    expect((t[2] as ShadowTensor).data).toEqual(['héllo', 'wörld']);
    expect(bytesOf(t[3] as ShadowTensor).equals(half)).toBe(true);
  });

  it('gRPC: raw contents and int64_contents beyond 2^53 come back exactly', async () => {
    const raw = encodeGrpcRequest([{ name: 'i64', datatype: 'INT64', shape: [3, 2], data: big }], { raw: true });
    const typed = encodeGrpcRequest([
      { name: 'i64', datatype: 'INT64', shape: [3, 2], data: big },
      { name: 'f32', datatype: 'FP32', shape: [3, 2], data: floats },
    ]);
    const a = capturedCall(capturedBody(raw, { contentType: 'application/grpc' }), Buffer.alloc(0), { source: 'grpc' });
    const b = capturedCall(capturedBody(typed, { contentType: 'application/grpc' }), Buffer.alloc(0), {
      source: 'grpc',
    });
    await ingest([a, b]);
    for (const id of [a.eventId, b.eventId]) {
      const t = await replayTensors(id);
      expect([...((t[0] as ShadowTensor).data as BigInt64Array)]).toEqual(big);
    }
    const f = (await replayTensors(b.eventId))[1] as ShadowTensor;
    expect(bytesOf(f).equals(encodeRawTensor('FP32', floats))).toBe(true);
  });

  it('gzip JSON body: stored compressed as received, FP32 and FP16 narrowed to the same bits', async () => {
    // JSON has no -0 (JSON.stringify writes 0): the JSON case uses the other values.
    const jsonFloats = floats.map((v) => (Object.is(v, -0) ? -7.25 : v));
    const json = encodeJsonRequest([
      { name: 'f32', datatype: 'FP32', shape: [1, 6], data: jsonFloats },
      { name: 'f16', datatype: 'FP16', shape: [1, 3], data: [1, 0.333251953125, -65504] },
    ]);
    const gz = gzip(json);
    const call = capturedCall(capturedBody(gz, { contentEncoding: 'gzip' }));
    await ingest([call]);
    const s = await stored(call.eventId);
    expect(s?.content_encoding).toBe('gzip');
    expect(decodePayloadBody(s?.storage ?? '', s?.body ?? '').equals(gz)).toBe(true);
    const t = await replayTensors(call.eventId);
    expect(bytesOf(t[0] as ShadowTensor).equals(encodeRawTensor('FP32', jsonFloats))).toBe(true);
    expect([...((t[1] as ShadowTensor).data as Uint16Array)]).toEqual([1, 0.333251953125, -65504].map(toFp16Bits));
  });

  it('a JSON body is kept as text, verbatim', async () => {
    const json = encodeJsonRequest([{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [0.1, 0.2] }]);
    const call = capturedCall(json);
    await ingest([call]);
    const s = await stored(call.eventId);
    expect(s?.storage).toBe('text');
    expect(s?.body).toBe(json.toString());
  });

  it('honours models.<m>.payloads: false, keeps a marker for truncated captures, sets the expiry from payloadDays', async () => {
    const json = encodeJsonRequest([{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [1] }]);
    const off = capturedCall(json, Buffer.alloc(0), { model: 'nopayload' });
    const cut = capturedCall(capturedBody(json.subarray(0, 5), { truncated: true, size: json.length }));
    const t0 = Date.UTC(2030, 0, 1, 0, 0, 0, 250);
    const dated = capturedCall(json, Buffer.alloc(0), { startedAt: t0 });
    await ingest([off, cut, dated], {
      models: { nopayload: { features: [], categorical: [], payloads: false } as never },
      payloads: { days: 3 },
    });
    expect(await stored(off.eventId)).toBeUndefined();
    const c = await stored(cut.eventId);
    expect(c?.truncated).toBe(true);
    expect(c?.body).toBe('');
    expect(Number(c?.size)).toBe(json.length);
    // ts + 3 days, rounded up to the second.
    expect((await stored(dated.eventId))?.expires_at).toBe('2030-01-04 00:00:01');
  });
});
