import { describe, expect, it } from 'vitest';
import { isModelwatchError } from '../src/common/errors.js';
import { defaultModelSchema } from '../src/config/model-schema.js';
import type { CapturedBody } from '../src/bus/index.js';
import { decodeCall } from '../src/protocol/index.js';
import {
  capturedBody,
  capturedCall,
  encodeBinaryRequest,
  encodeBinaryResponse,
  encodeGrpcRequest,
  encodeGrpcResponse,
  encodeJsonRequest,
  encodeJsonResponse,
  gzip,
  type TensorSpec,
} from './support/v2-encode.js';
import { mulberry32 } from './support/seeded-prng.js';

// Seeded so a failure reproduces.
const prng = mulberry32;

const inputs: TensorSpec[] = [
  {
    name: 'x',
    datatype: 'FP32',
    shape: [2, 3],
    data: [
      [1, 2, 3],
      [4, 5, 6],
    ],
  },
  { name: 'i', datatype: 'INT64', shape: [2], data: [7, -8] },
  { name: 's', datatype: 'BYTES', shape: [2, 1], data: [['héllo'], ['日本']] },
  { name: 'b', datatype: 'BOOL', shape: [2], data: [true, false] },
];
const outputs: TensorSpec[] = [
  {
    name: 'p',
    datatype: 'FP16',
    shape: [2, 2],
    data: [
      [0.25, 0.75],
      [0.5, 0.5],
    ],
  },
];

/** Flips, inserts, deletes or overwrites a few bytes. */
function mutate(b: Buffer, rnd: () => number): Buffer {
  let out = Buffer.from(b);
  const n = 1 + Math.floor(rnd() * 4);
  for (let k = 0; k < n; k++) {
    const pos = Math.floor(rnd() * (out.length + 1));
    const op = Math.floor(rnd() * 4);
    const byte = Math.floor(rnd() * 256);
    if (op === 0 && pos < out.length) out[pos] = byte;
    else if (op === 1) out = Buffer.concat([out.subarray(0, pos), Buffer.from([byte]), out.subarray(pos)]);
    else if (op === 2) out = Buffer.concat([out.subarray(0, pos), out.subarray(pos + 1)]);
    else out = out.subarray(0, pos);
  }
  return out;
}

type Variant = { name: string; request: CapturedBody; response: CapturedBody; source: string };

const bin = encodeBinaryRequest(inputs);
const binRes = encodeBinaryResponse(outputs);
const variants: Variant[] = [
  {
    name: 'JSON',
    request: capturedBody(encodeJsonRequest(inputs)),
    response: capturedBody(encodeJsonResponse([{ ...outputs[0]!, datatype: 'FP32' }])),
    source: 'rest',
  },
  {
    name: 'binary extension',
    request: capturedBody(bin.body, { headerLength: bin.headerLength }),
    response: capturedBody(binRes.body, { headerLength: binRes.headerLength }),
    source: 'rest',
  },
  {
    name: 'gzip JSON',
    request: capturedBody(gzip(encodeJsonRequest(inputs)), { contentEncoding: 'gzip' }),
    response: capturedBody(encodeJsonResponse([])),
    source: 'rest',
  },
  {
    name: 'gRPC typed',
    request: capturedBody(encodeGrpcRequest(inputs)),
    response: capturedBody(encodeGrpcResponse([{ ...outputs[0]!, datatype: 'FP32' }])),
    source: 'grpc',
  },
  {
    name: 'gRPC raw',
    request: capturedBody(encodeGrpcRequest(inputs, { raw: true })),
    response: capturedBody(encodeGrpcResponse(outputs, { raw: true })),
    source: 'grpc',
  },
];

describe('mutated bodies either decode or fail with decode_invalid, never anything else', () => {
  for (const v of variants) {
    it(v.name, () => {
      // The unmutated call decodes.
      const ok = decodeCall(capturedCall(v.request, v.response, { source: v.source }), defaultModelSchema);
      expect(ok.rows).toHaveLength(2);
      const rnd = prng(0x5eed + v.name.length);
      let rejected = 0;
      for (let k = 0; k < 1500; k++) {
        const side = rnd() < 0.7 ? 'request' : 'response';
        const body = side === 'request' ? v.request : v.response;
        const bad = { ...body, body: mutate(body.body, rnd) };
        const call = capturedCall(side === 'request' ? bad : v.request, side === 'response' ? bad : v.response, {
          source: v.source,
        });
        try {
          const out = decodeCall(call, defaultModelSchema);
          // Whatever decodes is well-formed: batch rows of plain values.
          for (const r of out.rows) {
            for (const val of Object.values(r.features_num)) expect(typeof val).toBe('number');
            for (const val of Object.values(r.features_cat)) expect(typeof val).toBe('string');
          }
        } catch (err: unknown) {
          if (!isModelwatchError(err, 'decode_invalid') || err.field === undefined) {
            throw new Error(`mutation ${k} (${side}) escaped as ${String(err)}`, { cause: err });
          }
          rejected++;
        }
      }
      // The mutations do hit: most are rejected.
      expect(rejected).toBeGreaterThan(300);
    });
  }
});
