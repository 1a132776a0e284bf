// The capture envelope as the tee encodes it: the size counted while encoding equals what the bus counts
// (`messageBytes`), every field survives a decode, and the value owns or shares its buffer by size.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { messageBytes } from '../src/bus/index.js';
import { decodeHeaderBlock, headerBlockOf } from '../src/bus/kafka-header-block.js';
import { decodeCapture, encodeCapture, encodeCaptureSized, type CapturedCall } from '../src/protocol/capture.js';
import { makeCall } from './support/ingest.js';

function variants(): CapturedCall[] {
  const big = Buffer.alloc(70_000, 7);
  return [
    makeCall(1),
    makeCall(2, 12, { status: 503, error: 'reset: socket hang up', latencyMs: 0.123 }),
    makeCall(3, 1, { headers: { 'user-agent': 'curl/8', traceparent: '00-abc-def-01' } }),
    makeCall(4, 1, {
      source: 'grpc',
      model: 'modèle-é',
      version: '',
      route: '/inference.GRPCInferenceService/ModelInfer',
      status: 799,
      request: {
        body: big,
        size: 90_000,
        truncated: true,
        contentType: 'application/x-protobuf',
        contentEncoding: '',
        headerLength: 123,
      },
      response: {
        body: Buffer.alloc(0),
        size: 0,
        truncated: false,
        contentType: '',
        contentEncoding: 'gzip',
        headerLength: 0,
      },
    }),
    makeCall(5, 2, { source: 'kserve-custom', startedAt: 1_700_000_000_123 }),
  ];
}

describe('encodeCaptureSized', () => {
  it('counts the record size exactly as the bus does', () => {
    for (const call of variants()) {
      const { message, bytes } = encodeCaptureSized(call);
      expect(bytes).toBe(messageBytes(message));
    }
  });

  it('round-trips every field through decodeCapture, and encodeCapture gives the same record', () => {
    for (const call of variants()) {
      const { message } = encodeCaptureSized(call);
      expect(encodeCapture(call)).toEqual(message);
      const back = decodeCapture(message);
      expect(back).toEqual({
        ...call,
        request: { ...call.request, headerLength: call.request.headerLength },
        response: { ...call.response, headerLength: call.response.headerLength },
      });
    }
  });

  it('writes the same time for records of the same millisecond and a new one after', () => {
    const a = encodeCaptureSized(makeCall(1, 1, { startedAt: 1_700_000_000_001 })).message.headers.ce_time;
    const b = encodeCaptureSized(makeCall(2, 1, { startedAt: 1_700_000_000_001 })).message.headers.ce_time;
    const c = encodeCaptureSized(makeCall(3, 1, { startedAt: 1_700_000_000_002 })).message.headers.ce_time;
    expect(a).toBe('2023-11-14T22:13:20.001Z');
    expect(b).toBe(a);
    expect(c).toBe('2023-11-14T22:13:20.002Z');
  });

  it('gives a large value its own buffer (transferable) and a small one a slice of the shared pool', () => {
    const [small, , , large] = variants();
    const s = encodeCaptureSized(small!).message.value;
    const l = encodeCaptureSized(large!).message.value;
    expect(l.byteOffset).toBe(0);
    expect(l.buffer.byteLength).toBe(l.length);
    expect(s.buffer.byteLength).toBeGreaterThan(s.length);
  });

  it('builds a Kafka header block with the bytes of the headers object, in its order, and decodes it on read', () => {
    const calls = [
      ...variants(),
      // ASCII throughout, with every optional header, and values at varint boundaries (63/64, 8191/8192).
      makeCall(6, 1, {
        route: '/'.padEnd(63, 'r'),
        error: 'e'.repeat(64),
        headers: { 'x-long': 'h'.repeat(8_200) },
        request: {
          body: Buffer.from('{}'),
          size: 2,
          truncated: false,
          contentType: 'a'.repeat(8_191),
          contentEncoding: '',
          headerLength: 1,
        },
        response: {
          body: Buffer.from('{}'),
          size: 2,
          truncated: false,
          contentType: 'b'.repeat(8_192),
          contentEncoding: 'br',
          headerLength: 2,
        },
      }),
      // Non-ASCII in a header value only (the JSON of the allow-listed headers) and in the error.
      makeCall(7, 1, { headers: { 'x-tenant': 'ü-tenant' }, error: 'réinitialisé' }),
    ];
    for (const call of calls) {
      const plain = encodeCaptureSized(call);
      const block = encodeCaptureSized(call, undefined, { kafkaHeaderBlock: true });
      expect(block.bytes).toBe(plain.bytes);
      expect(block.message.key).toBe(plain.message.key);
      expect(block.message.value.equals(plain.message.value)).toBe(true);
      const kh = block.message.kafkaHeaders;
      expect(kh).toBe(headerBlockOf(plain.message.headers));
      // The block is the header section's bytes: every character a byte.
      expect([...kh!].every((c) => c.charCodeAt(0) < 256)).toBe(true);
      expect(Object.keys(decodeHeaderBlock(kh!))).toEqual(Object.keys(plain.message.headers));
      expect(block.message.headers).toEqual(plain.message.headers);
      expect(messageBytes(block.message)).toBe(block.bytes);
      expect(decodeCapture(block.message)).toEqual(decodeCapture(plain.message));
    }
  });

  it('holds a header block flat, not as a rope of the pieces it was built from', () => {
    // While the brokers are down every record waits in the tee, header block included: as a V8 rope
    // (~60 cons-string nodes) a 1 KB capture's block held ~3.2 KB of heap against ~1.4 KB flat.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const calls = Array.from({ length: 4_000 }, (_, i) => makeCall(i + 1, 2, { latencyMs: 1 + i / 7 }));
    // Optimised code first: the flattening must survive TurboFan (an unused read could be dropped).
    for (let i = 0; i < 30_000; i++)
      encodeCaptureSized(calls[i % calls.length]!, undefined, { kafkaHeaderBlock: true });
    const heapPerBlock = (copyFlat: boolean): number => {
      gc();
      const before = process.memoryUsage().heapUsed;
      const held = calls.map((c) => {
        const block = encodeCaptureSized(c, undefined, { kafkaHeaderBlock: true }).message.kafkaHeaders!;
        // The reference: the same characters as a new flat string, made independently of the encoder.
        return copyFlat ? Buffer.from(block, 'latin1').toString('latin1') : block;
      });
      gc();
      const after = process.memoryUsage().heapUsed;
      expect(held).toHaveLength(calls.length);
      return (after - before) / calls.length;
    };
    const flat = heapPerBlock(true);
    const encoded = heapPerBlock(false);
    expect(flat).toBeGreaterThan(100);
    expect(encoded).toBeLessThan(flat * 1.3 + 64);
  });
});
