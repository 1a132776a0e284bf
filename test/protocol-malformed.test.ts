import { describe, expect, it } from 'vitest';
import { ErrorCodes, ModelwatchError } from '../src/common/errors.js';
import { defaultModelSchema } from '../src/config/model-schema.js';
import type { CapturedCall } from '../src/bus/index.js';
import { decodeCall, encodeModelInferRequest, type ModelInferRequestMessage } from '../src/protocol/index.js';
import {
  capturedBody,
  capturedCall,
  encodeBinaryRequest,
  encodeBinaryResponse,
  encodeJsonRequest,
  encodeJsonResponse,
  encodeRawTensor,
  gzip,
  type TensorSpec,
} from './support/v2-encode.js';

const x: TensorSpec = { name: 'x', datatype: 'FP32', shape: [2, 2], data: [1, 2, 3, 4] };

/** A REST call whose request body is this JSON value (serialised as is). */
function jsonCall(body: unknown): CapturedCall {
  return capturedCall(Buffer.from(JSON.stringify(body)));
}

/** A REST call with one input tensor given as a raw JSON object. */
function tensorCall(tensor: Record<string, unknown>): CapturedCall {
  return jsonCall({ inputs: [tensor] });
}

function binaryCall(body: Buffer, headerLength: number): CapturedCall {
  return capturedCall(capturedBody(body, { headerLength, contentType: 'application/octet-stream' }));
}

function grpcCall(msg: ModelInferRequestMessage): CapturedCall {
  return capturedCall(
    capturedBody(encodeModelInferRequest(msg), { contentType: 'application/grpc' }),
    Buffer.alloc(0),
    {
      source: 'grpc',
    },
  );
}

const grpcX = { name: 'x', datatype: 'FP32', shape: [2, 2] };

function deep(n: number): string {
  return '['.repeat(n) + '1' + ']'.repeat(n);
}

/** Binary body whose JSON header claims `size` bytes for x but the blob is `blob`. */
function binaryWithSize(spec: TensorSpec, size: number, blob: Buffer): CapturedCall {
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: spec.name, shape: spec.shape, datatype: spec.datatype, parameters: { binary_data_size: size } }],
    }),
  );
  return binaryCall(Buffer.concat([header, blob]), header.length);
}

const good = encodeBinaryRequest([x]);

const cases: { name: string; call: () => CapturedCall; field: string; reason: RegExp }[] = [
  // --- JSON structure ---
  {
    name: 'wrong shape (5 elements for [2, 2])',
    call: () => tensorCall({ ...x, data: [1, 2, 3, 4, 5] }),
    field: 'inputs[0].data',
    reason: /more elements/,
  },
  {
    name: 'too few elements',
    call: () => tensorCall({ ...x, data: [1, 2, 3] }),
    field: 'inputs[0].data',
    reason: /3 elements where the shape declares 4/,
  },
  {
    name: 'ragged nesting with the right element count',
    call: () => tensorCall({ ...x, data: [[1, 2, 3], [4]] }),
    field: 'inputs[0].data',
    reason: /ragged nesting: an array at depth 1 has 1 elements, another 3/,
  },
  {
    name: 'scalars mixed with arrays',
    call: () => tensorCall({ ...x, data: [1, [2, 3], 4] }),
    field: 'inputs[0].data',
    reason: /ragged nesting: scalars at depths 0 and 1/,
  },
  {
    name: 'rectangular nesting that over-fills the shape',
    call: () =>
      tensorCall({
        ...x,
        data: [
          [1, 2, 3],
          [4, 5, 6],
        ],
      }),
    field: 'inputs[0].data',
    reason: /more elements/,
  },
  {
    name: 'bad base type (string in FP32)',
    call: () => tensorCall({ ...x, data: [1, 2, 'a', 4] }),
    field: 'inputs[0].data',
    reason: /element 2 is "a", not a number/,
  },
  {
    name: 'null element',
    call: () => tensorCall({ ...x, data: [1, null, 3, 4] }),
    field: 'inputs[0].data',
    reason: /null/,
  },
  {
    name: 'UINT8 300 out of range',
    call: () => tensorCall({ name: 'u', datatype: 'UINT8', shape: [1], data: [300] }),
    field: 'inputs[0].data',
    reason: /outside the UINT8 range/,
  },
  {
    name: 'UINT32 negative',
    call: () => tensorCall({ name: 'u', datatype: 'UINT32', shape: [1], data: [-1] }),
    field: 'inputs[0].data',
    reason: /outside the UINT32 range/,
  },
  {
    name: 'INT8 -129 out of range',
    call: () => tensorCall({ name: 'i', datatype: 'INT8', shape: [1], data: [-129] }),
    field: 'inputs[0].data',
    reason: /outside the INT8 range/,
  },
  {
    name: 'INT32 1.5 not an integer',
    call: () => tensorCall({ name: 'i', datatype: 'INT32', shape: [1], data: [1.5] }),
    field: 'inputs[0].data',
    reason: /not an integer/,
  },
  {
    name: 'FP32 1e39 overflows',
    call: () => tensorCall({ name: 'f', datatype: 'FP32', shape: [1], data: [1e39] }),
    field: 'inputs[0].data',
    reason: /overflows FP32/,
  },
  {
    name: 'FP64 1e400 (JSON.parse gives Infinity)',
    call: () => capturedCall(Buffer.from('{"inputs":[{"name":"f","shape":[1],"datatype":"FP64","data":[1e400]}]}')),
    field: 'inputs[0].data',
    reason: /Infinity, which overflows FP64/,
  },
  {
    name: 'FP16 70000 overflows',
    call: () => tensorCall({ name: 'f', datatype: 'FP16', shape: [1], data: [70000] }),
    field: 'inputs[0].data',
    reason: /overflows FP16/,
  },
  {
    name: 'BOOL given as 1',
    call: () => tensorCall({ name: 'b', datatype: 'BOOL', shape: [1], data: [1] }),
    field: 'inputs[0].data',
    reason: /not true\/false/,
  },
  {
    name: 'BYTES given a number',
    call: () => tensorCall({ name: 's', datatype: 'BYTES', shape: [1], data: [5] }),
    field: 'inputs[0].data',
    reason: /not a string/,
  },
  {
    name: 'NaN text',
    call: () => capturedCall(Buffer.from('{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[NaN]}]}')),
    field: 'request.body',
    reason: /not valid JSON/,
  },
  {
    name: '150k-deep nesting in data',
    call: () =>
      capturedCall(Buffer.from(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":${deep(150_000)}}]}`)),
    field: 'request.body',
    reason: /nesting deeper than 64/,
  },
  {
    name: '150k-deep nesting at top level',
    call: () => capturedCall(Buffer.from(deep(150_000))),
    field: 'request.body',
    reason: /nesting deeper/,
  },
  {
    name: 'body is a JSON array',
    call: () => capturedCall(Buffer.from('[1,2]')),
    field: 'request.body',
    reason: /JSON object/,
  },
  {
    name: 'huge declared shape [1e15, 1e15]',
    call: () => tensorCall({ ...x, shape: [1e15, 1e15], data: [1] }),
    field: 'inputs[0].shape',
    reason: /exceeds|above/,
  },
  {
    name: 'huge batch with a zero dimension [1e15, 0]',
    call: () => tensorCall({ ...x, shape: [1e15, 0], data: [] }),
    field: 'inputs[0].shape',
    reason: /above the/,
  },
  {
    name: 'product overflow [2^26, 2^26, 2^26]',
    call: () => tensorCall({ ...x, shape: [2 ** 26, 2 ** 26, 2 ** 26], data: [] }),
    field: 'inputs[0].shape',
    reason: /./,
  },
  {
    name: 'negative dimension',
    call: () => tensorCall({ ...x, shape: [-1, 4] }),
    field: 'inputs[0].shape',
    reason: /dimension 0 is -1/,
  },
  {
    name: 'fractional dimension',
    call: () => tensorCall({ ...x, shape: [1.5] }),
    field: 'inputs[0].shape',
    reason: /not a non-negative integer/,
  },
  {
    name: 'shape not an array',
    call: () => tensorCall({ ...x, shape: '2,2' }),
    field: 'inputs[0].shape',
    reason: /must be an array/,
  },
  {
    name: 'rank-0 input (no batch dimension)',
    call: () => tensorCall({ ...x, shape: [], data: [1] }),
    field: 'inputs[0].shape',
    reason: /no batch dimension/,
  },
  {
    name: 'batch mismatch between inputs',
    call: () => jsonCall({ inputs: [x, { name: 'y', datatype: 'INT32', shape: [3], data: [1, 2, 3] }] }),
    field: 'inputs[1].shape',
    reason: /"y" has batch size 3 but inputs\[0\] has 2/,
  },
  {
    name: 'two tensors produce the same column',
    call: () =>
      jsonCall({
        inputs: [
          { name: 'a_0', datatype: 'FP32', shape: [1], data: [1] },
          { name: 'a', datatype: 'FP32', shape: [1, 1], data: [[2]] },
        ],
      }),
    field: 'inputs[1].name',
    reason: /column "a_0" of tensor "a" is also produced by tensor "a_0"/,
  },
  { name: 'missing inputs', call: () => jsonCall({ id: '1' }), field: 'inputs', reason: /missing/ },
  { name: 'empty inputs', call: () => jsonCall({ inputs: [] }), field: 'inputs', reason: /empty/ },
  { name: 'inputs not an array', call: () => jsonCall({ inputs: { x } }), field: 'inputs', reason: /array/ },
  { name: 'input not an object', call: () => jsonCall({ inputs: [7] }), field: 'inputs[0]', reason: /object/ },
  {
    name: 'unknown datatype',
    call: () => tensorCall({ ...x, datatype: 'FP8' }),
    field: 'inputs[0].datatype',
    reason: /unknown datatype "FP8"/,
  },
  {
    name: 'missing name',
    call: () => tensorCall({ shape: [1], datatype: 'FP32', data: [1] }),
    field: 'inputs[0].name',
    reason: /non-empty/,
  },
  {
    name: 'data not an array',
    call: () => tensorCall({ ...x, data: 5 }),
    field: 'inputs[0].data',
    reason: /must be an array/,
  },
  {
    name: 'data missing',
    call: () => tensorCall({ name: 'x', shape: [1], datatype: 'FP32' }),
    field: 'inputs[0].data',
    reason: /missing/,
  },
  { name: 'id not a string', call: () => jsonCall({ id: 5, inputs: [x] }), field: 'id', reason: /string/ },
  {
    name: 'truncated request capture',
    call: () => capturedCall(capturedBody(encodeJsonRequest([x]).subarray(0, 20), { truncated: true, size: 500 })),
    field: 'request.body',
    reason: /truncated at 20 of 500/,
  },
  // --- Triton binary extension ---
  {
    name: 'truncated binary part',
    call: () => binaryCall(good.body.subarray(0, good.body.length - 3), good.headerLength),
    field: 'inputs[0].parameters.binary_data_size',
    reason: /run past the end/,
  },
  {
    name: 'header length past end',
    call: () => binaryCall(good.body, good.body.length + 1),
    field: 'header_length',
    reason: /runs past the end/,
  },
  {
    name: 'header length cuts the JSON',
    call: () => binaryCall(good.body, good.headerLength - 2),
    field: 'request.body',
    reason: /not valid JSON/,
  },
  {
    name: 'binary_data_size not shape × itemsize',
    call: () => binaryWithSize(x, 12, encodeRawTensor('FP32', [1, 2, 3])),
    field: 'inputs[0].parameters.binary_data_size',
    reason: /12 bytes do not hold 4 FP32 elements/,
  },
  {
    name: 'blob sizes do not sum to the body',
    call: () => binaryCall(Buffer.concat([good.body, Buffer.alloc(4)]), good.headerLength),
    field: 'header_length',
    reason: /4 bytes after the JSON header/,
  },
  {
    name: 'binary_data_size negative',
    call: () => binaryWithSize(x, -16, Buffer.alloc(0)),
    field: 'inputs[0].parameters.binary_data_size',
    reason: /not a non-negative integer/,
  },
  {
    name: 'binary_data_size without header length',
    call: () => capturedCall(good.body.subarray(0, good.headerLength)),
    field: 'inputs[0].parameters.binary_data_size',
    reason: /no binary part/,
  },
  {
    name: 'BYTES length prefix past end',
    call: () => {
      const blob = Buffer.concat([encodeRawTensor('BYTES', ['ok']), Buffer.from([200, 0, 0, 0, 65])]);
      return binaryWithSize({ name: 's', datatype: 'BYTES', shape: [2], data: [] }, blob.length, blob);
    },
    field: 'inputs[0].parameters.binary_data_size',
    reason: /BYTES element 1: length 200 runs past the end/,
  },
  {
    name: 'BYTES prefix cut short',
    call: () =>
      binaryWithSize({ name: 's', datatype: 'BYTES', shape: [1], data: [] }, 6, Buffer.from([1, 0, 0, 0, 65, 0])),
    field: 'inputs[0].parameters.binary_data_size',
    reason: /left over/,
  },
  {
    name: 'BOOL byte that is not 0/1',
    call: () => binaryWithSize({ name: 'b', datatype: 'BOOL', shape: [2], data: [] }, 2, Buffer.from([1, 2])),
    field: 'inputs[0].parameters.binary_data_size',
    reason: /BOOL element 1 is byte 2/,
  },
  // --- content-encoding ---
  {
    name: 'gzip garbage',
    call: () => capturedCall(capturedBody(Buffer.from('this is not gzip'), { contentEncoding: 'gzip' })),
    field: 'request.content_encoding',
    reason: /does not decompress/,
  },
  {
    name: 'gzip cut short',
    call: () => capturedCall(capturedBody(gzip(encodeJsonRequest([x])).subarray(0, 25), { contentEncoding: 'gzip' })),
    field: 'request.content_encoding',
    reason: /does not decompress/,
  },
  {
    name: 'unsupported content-encoding',
    call: () => capturedCall(capturedBody(encodeJsonRequest([x]), { contentEncoding: 'compress' })),
    field: 'request.content_encoding',
    reason: /unsupported/,
  },
  {
    name: 'zip bomb beyond the default 64 MiB cap',
    call: () => capturedCall(capturedBody(gzip(Buffer.alloc(65 * 1024 * 1024 + 1, 0x20)), { contentEncoding: 'gzip' })),
    field: 'request.content_encoding',
    reason: /beyond the 67108864-byte cap/,
  },
  // --- gRPC ---
  {
    name: 'invalid protobuf',
    call: () =>
      capturedCall(capturedBody(Buffer.from([0x2a, 0xff, 0xff, 0xff, 0x0f, 0x01])), Buffer.alloc(0), {
        source: 'grpc',
      }),
    field: 'request.body',
    reason: /not a valid ModelInferRequest/,
  },
  {
    name: 'raw contents count mismatch',
    call: () =>
      grpcCall({
        model_name: 'm',
        inputs: [grpcX, { ...grpcX, name: 'y' }],
        raw_input_contents: [encodeRawTensor('FP32', [1, 2, 3, 4])],
      }),
    field: 'raw_input_contents',
    reason: /1 entries for 2 inputs/,
  },
  {
    name: 'raw contents size mismatch',
    call: () =>
      grpcCall({ model_name: 'm', inputs: [grpcX], raw_input_contents: [encodeRawTensor('FP32', [1, 2, 3])] }),
    field: 'raw_input_contents[0]',
    reason: /12 bytes do not hold 4/,
  },
  {
    name: 'raw contents and typed contents both set',
    call: () =>
      grpcCall({
        model_name: 'm',
        inputs: [{ ...grpcX, contents: { fp32_contents: [1, 2, 3, 4] } }],
        raw_input_contents: [encodeRawTensor('FP32', [1, 2, 3, 4])],
      }),
    field: 'inputs[0].contents',
    reason: /set although/,
  },
  {
    name: 'typed contents count mismatch',
    call: () => grpcCall({ model_name: 'm', inputs: [{ ...grpcX, contents: { fp32_contents: [1, 2, 3] } }] }),
    field: 'inputs[0].contents.fp32_contents',
    reason: /3 elements where the shape declares 4/,
  },
  {
    name: 'typed contents in the wrong field',
    call: () => grpcCall({ model_name: 'm', inputs: [{ ...grpcX, contents: { int_contents: [1, 2, 3, 4] } }] }),
    field: 'inputs[0].contents.int_contents',
    reason: /carried in fp32_contents/,
  },
  {
    name: 'gRPC INT8 300 in int_contents',
    call: () =>
      grpcCall({
        model_name: 'm',
        inputs: [{ name: 'i', datatype: 'INT8', shape: [1], contents: { int_contents: [300] } }],
      }),
    field: 'inputs[0].contents.int_contents',
    reason: /outside the INT8 range/,
  },
  {
    name: 'gRPC FP16 without raw contents',
    call: () => grpcCall({ model_name: 'm', inputs: [{ name: 'h', datatype: 'FP16', shape: [1] }] }),
    field: 'inputs[0].contents',
    reason: /raw contents/,
  },
  {
    name: 'gRPC negative dimension',
    call: () => grpcCall({ model_name: 'm', inputs: [{ ...grpcX, shape: [-1, 4] }] }),
    field: 'inputs[0].shape',
    reason: /-1/,
  },
  {
    name: 'gRPC huge int64 dimension',
    call: () => grpcCall({ model_name: 'm', inputs: [{ ...grpcX, shape: ['9223372036854775807', 1] }] }),
    field: 'inputs[0].shape',
    reason: /./,
  },
  {
    name: 'gRPC unknown datatype',
    call: () => grpcCall({ model_name: 'm', inputs: [{ ...grpcX, datatype: 'COMPLEX64' }] }),
    field: 'inputs[0].datatype',
    reason: /COMPLEX64/,
  },
  { name: 'gRPC no inputs', call: () => grpcCall({ model_name: 'm', inputs: [] }), field: 'inputs', reason: /empty/ },
  // --- responses (2xx, so they must decode) ---
  {
    name: 'response output batch mismatch',
    call: () =>
      capturedCall(
        encodeJsonRequest([x]),
        encodeJsonResponse([{ name: 'p', datatype: 'FP32', shape: [3], data: [1, 2, 3] }]),
      ),
    field: 'outputs[0].shape',
    reason: /"p" has batch size 3/,
  },
  {
    name: 'response not JSON',
    call: () => capturedCall(encodeJsonRequest([x]), Buffer.from('<html>bad gateway</html>')),
    field: 'response.body',
    reason: /not valid JSON/,
  },
  {
    name: 'response 150k-deep nesting',
    call: () => capturedCall(encodeJsonRequest([x]), Buffer.from(deep(150_000))),
    field: 'response.body',
    reason: /nesting deeper/,
  },
  {
    name: 'response without outputs',
    call: () => capturedCall(encodeJsonRequest([x]), Buffer.from('{"model_name":"m"}')),
    field: 'outputs',
    reason: /missing/,
  },
  {
    name: 'response header length past end',
    call: () => {
      const r = encodeBinaryResponse([{ name: 'p', datatype: 'FP32', shape: [2], data: [1, 2] }]);
      return capturedCall(encodeJsonRequest([x]), capturedBody(r.body, { headerLength: r.body.length + 10 }));
    },
    field: 'response.header_length',
    reason: /runs past the end/,
  },
  {
    name: 'response output UINT16 out of range',
    call: () =>
      capturedCall(
        encodeJsonRequest([x]),
        encodeJsonResponse([{ name: 'p', datatype: 'UINT16', shape: [2], data: [1, 70000] }]),
      ),
    field: 'outputs[0].data',
    reason: /UINT16 range/,
  },
];

describe('malformed bodies are rejected with decode_invalid naming the field', () => {
  it('has at least 20 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const call = c.call();
    let thrown: unknown;
    try {
      decodeCall(call, defaultModelSchema);
    } catch (err: unknown) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ModelwatchError);
    const err = thrown as ModelwatchError;
    expect({ code: err.code, field: err.field, retryable: err.retryable }).toEqual({
      code: ErrorCodes.decodeInvalid,
      field: c.field,
      retryable: false,
    });
    expect(err.message).toMatch(c.reason);
  });

  it('a lower zip-bomb cap is honoured (decodeCall limits option)', () => {
    const call = capturedCall(capturedBody(gzip(Buffer.alloc(2 * 1024 * 1024, 0x20)), { contentEncoding: 'gzip' }));
    expect(() => decodeCall(call, defaultModelSchema, { limits: { maxDecompressedBytes: 1024 * 1024 } })).toThrow(
      /beyond the 1048576-byte cap/,
    );
  });

  it('limits are options: maxElements and maxJsonDepth are honoured, bad limits fail as config_invalid', () => {
    const call = capturedCall(encodeJsonRequest([x]));
    expect(() => decodeCall(call, defaultModelSchema, { limits: { maxElements: 3 } })).toThrow(/exceeds 3 elements/);
    expect(
      decodeCall(call, defaultModelSchema, { limits: { maxElements: 4, maxJsonDepth: undefined } }).rows,
    ).toHaveLength(2);
    expect(() => decodeCall(call, defaultModelSchema, { limits: { maxJsonDepth: 2 } })).toThrow(
      /nesting deeper than 2/,
    );
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      let thrown: unknown;
      try {
        decodeCall(call, defaultModelSchema, { limits: { maxJsonDepth: bad } });
      } catch (err: unknown) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ModelwatchError);
      expect((thrown as ModelwatchError).code).toBe(ErrorCodes.configInvalid);
    }
  });

  it('nesting at the depth limit still parses (the pre-scan is not over-eager)', () => {
    // {"inputs":[{ ... "data": 61 levels }]} = 64 levels in all.
    const body = `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":${deep(61)}}]}`;
    expect(decodeCall(capturedCall(Buffer.from(body)), defaultModelSchema).rows).toEqual([
      { features_num: { x: 1 }, features_cat: {}, outputs_num: {}, outputs_cat: {} },
    ]);
    const deeper = `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":${deep(62)}}]}`;
    expect(() => decodeCall(capturedCall(Buffer.from(deeper)), defaultModelSchema)).toThrow(/nesting deeper/);
  });

  it('brackets inside strings do not count as nesting', () => {
    const name = '[[[['.repeat(100) + '\\"{{';
    const body = `{"inputs":[{"name":"${name}","shape":[1],"datatype":"BYTES","data":["]]]{"]}]}`;
    const rows = decodeCall(capturedCall(Buffer.from(body)), defaultModelSchema).rows;
    expect(Object.values(rows[0]?.features_cat ?? {})).toEqual([']]]{']);
  });
});
