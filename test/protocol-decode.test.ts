import { readFileSync } from 'node:fs';
import { loadSync } from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { defaultModelSchema, type ModelSchema } from '../src/config/model-schema.js';
import {
  decodeCall,
  decodeModelInferRequest,
  decodeModelInferResponse,
  decodeRaw,
  INFERENCE_PROTO_PATH,
  peekModelFromPath,
  type DecodedTensor,
} from '../src/protocol/index.js';
import {
  capturedBody,
  capturedCall,
  deflate,
  encodeBinaryRequest,
  encodeBinaryResponse,
  encodeGrpcRequest,
  encodeGrpcResponse,
  encodeJsonRequest,
  encodeJsonResponse,
  grpcFrame,
  gzip,
  type TensorSpec,
} from './support/v2-encode.js';

/** One tensor per datatype, values at the edges of each type's range. Shape [2, 2]. */
// JSON values are kept as sent; binary FP32 is what the 4 bytes hold (so 1e30 → fround(1e30)).
const numericCases: { datatype: string; data: number[][] | boolean[][]; expected: number[]; binary?: number[] }[] = [
  {
    datatype: 'BOOL',
    data: [
      [true, false],
      [false, true],
    ],
    expected: [1, 0, 0, 1],
  },
  {
    datatype: 'UINT8',
    data: [
      [0, 255],
      [7, 128],
    ],
    expected: [0, 255, 7, 128],
  },
  {
    datatype: 'UINT16',
    data: [
      [0, 65535],
      [300, 1],
    ],
    expected: [0, 65535, 300, 1],
  },
  {
    datatype: 'UINT32',
    data: [
      [0, 4294967295],
      [70000, 2],
    ],
    expected: [0, 4294967295, 70000, 2],
  },
  {
    datatype: 'UINT64',
    data: [
      [0, 2 ** 53],
      [5, 2 ** 40],
    ],
    expected: [0, 2 ** 53, 5, 2 ** 40],
  },
  {
    datatype: 'INT8',
    data: [
      [-128, 127],
      [0, -1],
    ],
    expected: [-128, 127, 0, -1],
  },
  {
    datatype: 'INT16',
    data: [
      [-32768, 32767],
      [0, -2],
    ],
    expected: [-32768, 32767, 0, -2],
  },
  {
    datatype: 'INT32',
    data: [
      [-2147483648, 2147483647],
      [3, -3],
    ],
    expected: [-2147483648, 2147483647, 3, -3],
  },
  {
    datatype: 'INT64',
    data: [
      [-(2 ** 53), 2 ** 53],
      [-1, 12345678901],
    ],
    expected: [-(2 ** 53), 2 ** 53, -1, 12345678901],
  },
  {
    datatype: 'FP32',
    data: [
      [1.5, -2.25],
      [0, 1e30],
    ],
    expected: [1.5, -2.25, 0, 1e30],
    binary: [1.5, -2.25, 0, Math.fround(1e30)],
  },
  {
    datatype: 'FP64',
    data: [
      [0.1, -1e-300],
      [1e300, 3],
    ],
    expected: [0.1, -1e-300, 1e300, 3],
  },
];

function numRows(rows: { features_num: Record<string, number> }[]): number[] {
  return rows.flatMap((r) => [r.features_num.t_0 as number, r.features_num.t_1 as number]);
}

describe('every datatype, JSON and binary', () => {
  for (const c of numericCases) {
    const spec: TensorSpec = { name: 't', datatype: c.datatype, shape: [2, 2], data: c.data };

    it(`${c.datatype} nested JSON`, () => {
      const out = decodeCall(capturedCall(encodeJsonRequest([spec])), defaultModelSchema);
      expect(numRows(out.rows)).toEqual(c.expected);
    });

    it(`${c.datatype} flat JSON equals nested`, () => {
      const flat = { ...spec, data: c.data.flat() };
      const out = decodeCall(capturedCall(encodeJsonRequest([flat])), defaultModelSchema);
      expect(numRows(out.rows)).toEqual(c.expected);
    });

    it(`${c.datatype} binary extension`, () => {
      const { body, headerLength } = encodeBinaryRequest([spec]);
      const out = decodeCall(
        capturedCall(capturedBody(body, { headerLength, contentType: 'application/octet-stream' })),
        defaultModelSchema,
      );
      expect(numRows(out.rows)).toEqual(c.binary ?? c.expected);
    });
  }

  it('64-bit integers beyond 2^53 decode to the nearest double (documented precision loss)', () => {
    const spec: TensorSpec = {
      name: 't',
      datatype: 'INT64',
      shape: [2],
      data: [9223372036854775807n, -9223372036854775808n],
    };
    const { body, headerLength } = encodeBinaryRequest([spec]);
    const rows = decodeCall(capturedCall(capturedBody(body, { headerLength })), defaultModelSchema).rows;
    expect(rows.map((r) => r.features_num.t)).toEqual([2 ** 63, -(2 ** 63)]);
    const u = encodeBinaryRequest([{ name: 'u', datatype: 'UINT64', shape: [1], data: [18446744073709551615n] }]);
    const urows = decodeCall(
      capturedCall(capturedBody(u.body, { headerLength: u.headerLength })),
      defaultModelSchema,
    ).rows;
    expect(urows[0]?.features_num.u).toBe(2 ** 64);
  });

  const half = JSON.parse(
    readFileSync(new URL('./fixtures/protocol-halfprec.json', import.meta.url), 'utf8'),
  ) as Record<'fp16' | 'bf16', { hex: string; values: (number | string)[] }>;
  for (const dt of ['fp16', 'bf16'] as const) {
    it(`${dt.toUpperCase()} raw bits decode like NumPy (fixture)`, () => {
      const blob = Buffer.from(half[dt].hex, 'hex');
      const expected = half[dt].values.map((v) =>
        typeof v === 'number' ? v : v === 'Infinity' ? Infinity : -Infinity,
      );
      const got = Array.from(
        decodeRaw(dt === 'fp16' ? 'FP16' : 'BF16', blob, expected.length, 'x') as ArrayLike<number>,
      );
      expect(got).toEqual(expected);
      expect(Object.is(got[1], -0)).toBe(true);
    });

    it(`${dt.toUpperCase()} through a binary-extension body`, () => {
      const spec: TensorSpec = {
        name: 'h',
        datatype: dt.toUpperCase(),
        shape: [3, 1],
        data: [[1.5], [-2.25], [65504]],
      };
      const { body, headerLength } = encodeBinaryRequest([spec]);
      const rows = decodeCall(capturedCall(capturedBody(body, { headerLength })), defaultModelSchema).rows;
      // 65504 is exact in FP16; in BF16 it rounds to 65536.
      expect(rows.map((r) => r.features_num.h_0)).toEqual([1.5, -2.25, dt === 'fp16' ? 65504 : 65536]);
    });
  }

  it('FP16/BF16/FP32 in JSON are accepted up to the overflow boundary, kept as sent', () => {
    const spec = (datatype: string, v: number): TensorSpec => ({ name: 'f', datatype, shape: [2], data: [v, -v] });
    const cases: [string, number][] = [
      ['FP16', 65519],
      ['BF16', 3.3e38],
      ['FP32', 3.4028235e38],
    ];
    for (const [datatype, v] of cases) {
      const rows = decodeCall(capturedCall(encodeJsonRequest([spec(datatype, v)])), defaultModelSchema).rows;
      expect(rows.map((r) => r.features_num.f)).toEqual([v, -v]);
    }
  });

  it('FP16 NaN stays NaN', () => {
    expect(decodeRaw('FP16', Buffer.from([0x00, 0x7e]), 1, 'x')[0]).toBeNaN();
  });

  const words = ['héllo', '日本', '🙂 ok', '', 'plain'];
  it('BYTES with multi-byte UTF-8 in JSON', () => {
    const spec: TensorSpec = { name: 's', datatype: 'BYTES', shape: [5], data: words };
    const rows = decodeCall(capturedCall(encodeJsonRequest([spec])), defaultModelSchema).rows;
    expect(rows.map((r) => r.features_cat.s)).toEqual(words);
    expect(rows[0]?.features_num).toEqual({});
  });

  it('BYTES (and Triton STRING) with multi-byte UTF-8 in binary', () => {
    for (const datatype of ['BYTES', 'STRING']) {
      const { body, headerLength } = encodeBinaryRequest([
        { name: 's', datatype, shape: [5, 1], data: words.map((w) => [w]) },
      ]);
      const rows = decodeCall(capturedCall(capturedBody(body, { headerLength })), defaultModelSchema).rows;
      expect(rows.map((r) => r.features_cat.s_0)).toEqual(words);
    }
  });

  it('BYTES that are not UTF-8 are kept losslessly as b64:', () => {
    const raw = Buffer.from([0xff, 0xfe, 0x00]);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(3);
    expect(decodeRaw('BYTES', Buffer.concat([len, raw]), 1, 'x')).toEqual([`b64:${raw.toString('base64')}`]);
  });

  it('mixes JSON and binary tensors in one binary-extension body', () => {
    const a: TensorSpec = { name: 'a', datatype: 'FP32', shape: [2], data: [1, 2] };
    const b: TensorSpec = { name: 'b', datatype: 'INT32', shape: [2], data: [3, 4] };
    const c: TensorSpec = { name: 'c', datatype: 'BYTES', shape: [2], data: ['x', 'y'] };
    const { body, headerLength } = encodeBinaryRequest([a, b, c], { jsonTensors: ['b'] });
    const rows = decodeCall(capturedCall(capturedBody(body, { headerLength })), defaultModelSchema).rows;
    expect(rows).toEqual([
      { features_num: { a: 1, b: 3 }, features_cat: { c: 'x' }, outputs_num: {}, outputs_cat: {} },
      { features_num: { a: 2, b: 4 }, features_cat: { c: 'y' }, outputs_num: {}, outputs_cat: {} },
    ]);
  });
});

const x: TensorSpec = {
  name: 'x',
  datatype: 'FP32',
  shape: [2, 3],
  data: [
    [1, 2, 3],
    [4, 5, 6],
  ],
};
const probs: TensorSpec = {
  name: 'probs',
  datatype: 'FP32',
  shape: [2, 2],
  data: [
    [0.25, 0.75],
    [0.5, 0.5],
  ],
};
const expectedRows = [
  {
    features_num: { x_0: 1, x_1: 2, x_2: 3 },
    features_cat: {},
    outputs_num: { probs_0: 0.25, probs_1: 0.75 },
    outputs_cat: {},
  },
  {
    features_num: { x_0: 4, x_1: 5, x_2: 6 },
    features_cat: {},
    outputs_num: { probs_0: 0.5, probs_1: 0.5 },
    outputs_cat: {},
  },
];

describe('content-encoding', () => {
  const req = encodeJsonRequest([x]);
  const res = encodeJsonResponse([probs], { model_name: 'iris', model_version: '2' });
  for (const [name, enc, f] of [
    ['gzip', 'gzip', gzip],
    ['deflate (zlib)', 'deflate', (b: Buffer) => deflate(b)],
    ['deflate (raw)', 'deflate', (b: Buffer) => deflate(b, true)],
  ] as const) {
    it(`${name} request and response decode to the same rows`, () => {
      const call = capturedCall(
        capturedBody(f(req), { contentEncoding: enc }),
        capturedBody(f(res), { contentEncoding: enc }),
      );
      const out = decodeCall(call, defaultModelSchema);
      expect(out.rows).toEqual(expectedRows);
      expect(out.model).toBe('iris');
      expect(out.version).toBe('2');
    });
  }

  it('gzip around a binary-extension body: header length counts decompressed bytes', () => {
    const { body, headerLength } = encodeBinaryRequest([x]);
    const r = encodeBinaryResponse([probs]);
    const call = capturedCall(
      capturedBody(gzip(body), { contentEncoding: 'gzip', headerLength }),
      capturedBody(gzip(r.body), { contentEncoding: 'gzip', headerLength: r.headerLength }),
    );
    expect(decodeCall(call, defaultModelSchema).rows).toEqual(expectedRows);
  });
});

describe('responses and schema', () => {
  it('binary outputs in the response', () => {
    const r = encodeBinaryResponse([probs, { name: 'label', datatype: 'BYTES', shape: [2], data: ['b', 'a'] }]);
    const call = capturedCall(encodeJsonRequest([x]), capturedBody(r.body, { headerLength: r.headerLength }));
    const rows = decodeCall(call, defaultModelSchema).rows;
    expect(rows[0]?.outputs_num).toEqual({ probs_0: 0.25, probs_1: 0.75 });
    expect(rows.map((row) => row.outputs_cat.label)).toEqual(['b', 'a']);
  });

  it('a non-2xx response gives features only', () => {
    for (const status of [400, 500, 503]) {
      const call = capturedCall(encodeJsonRequest([x]), Buffer.from('{"error":"model busy"}'), { status });
      const rows = decodeCall(call, defaultModelSchema).rows;
      expect(rows.map((r) => r.features_num)).toEqual(expectedRows.map((r) => r.features_num));
      expect(
        rows.every((r) => Object.keys(r.outputs_num).length === 0 && Object.keys(r.outputs_cat).length === 0),
      ).toBe(true);
    }
  });

  it('a 200 error body, an empty body, a truncated response or a transport error give features only', () => {
    const calls = [
      capturedCall(encodeJsonRequest([x]), Buffer.from('{"error":"oops"}')),
      capturedCall(encodeJsonRequest([x]), Buffer.alloc(0)),
      capturedCall(
        encodeJsonRequest([x]),
        capturedBody(encodeJsonResponse([probs]).subarray(0, 10), { truncated: true, size: 999 }),
      ),
      capturedCall(encodeJsonRequest([x]), encodeJsonResponse([probs]), { error: 'ECONNRESET' }),
    ];
    for (const call of calls) {
      const rows = decodeCall(call, defaultModelSchema).rows;
      expect(rows).toHaveLength(2);
      expect(rows[1]?.features_num.x_2).toBe(6);
      expect(rows[1]?.outputs_num).toEqual({});
    }
  });

  it('maps (tensor, index) to names and kinds; categorical tensors become strings', () => {
    const schema: ModelSchema = {
      features: [
        { name: 'age', tensor: 'x', index: 0 },
        { name: 'zip', tensor: 'x', index: 2, kind: 'categorical' },
        { name: 'score', tensor: 'single' },
      ],
      categorical: ['flag', 'label'],
    };
    const single: TensorSpec = { name: 'single', datatype: 'FP64', shape: [2], data: [0.5, 0.25] };
    const flag: TensorSpec = { name: 'flag', datatype: 'BOOL', shape: [2, 1], data: [[true], [false]] };
    const label: TensorSpec = { name: 'label', datatype: 'INT64', shape: [2], data: [1, 0] };
    const call = capturedCall(encodeJsonRequest([x, single, flag]), encodeJsonResponse([probs, label]));
    const rows = decodeCall(call, schema).rows;
    expect(rows[0]).toEqual({
      features_num: { age: 1, x_1: 2, score: 0.5 },
      features_cat: { zip: '3', flag_0: 'true' },
      outputs_num: { probs_0: 0.25, probs_1: 0.75 },
      outputs_cat: { label: '1' },
    });
    expect(rows[1]?.features_cat).toEqual({ zip: '6', flag_0: 'false' });
  });

  it('BOOL numeric is 0/1; batch of zero gives no rows', () => {
    const call = capturedCall(encodeJsonRequest([{ name: 'b', datatype: 'BOOL', shape: [0, 4], data: [] }]));
    expect(decodeCall(call, defaultModelSchema).rows).toEqual([]);
  });
});

describe('gRPC ModelInferRequest / ModelInferResponse', () => {
  const tensors: TensorSpec[] = [
    ...numericCases.map((c) => ({ name: c.datatype.toLowerCase(), datatype: c.datatype, shape: [2, 2], data: c.data })),
    { name: 'bytes', datatype: 'BYTES', shape: [2, 1], data: [['héllo'], ['日本🙂']] },
  ];

  function check(inputs: DecodedTensor[]): void {
    numericCases.forEach((c, i) => {
      expect(inputs[i]?.datatype).toBe(c.datatype);
      expect(inputs[i]?.shape).toEqual([2, 2]);
      expect(Array.from(inputs[i]?.values as ArrayLike<number>)).toEqual(c.binary ?? c.expected);
    });
    expect(inputs.at(-1)?.values).toEqual(['héllo', '日本🙂']);
  }

  it('typed contents (bool/int/int64/uint/uint64/fp32/fp64/bytes)', () => {
    const req = decodeModelInferRequest(encodeGrpcRequest(tensors, { model_name: 'm', model_version: '7', id: 'abc' }));
    expect(req.model).toBe('m');
    expect(req.version).toBe('7');
    expect(req.id).toBe('abc');
    check(req.inputs);
  });

  it('raw_input_contents, including FP16 and BF16', () => {
    const withHalf: TensorSpec[] = [
      ...tensors,
      { name: 'h', datatype: 'FP16', shape: [2], data: [1.5, -0.5] },
      { name: 'bh', datatype: 'BF16', shape: [2], data: [3.140625, 2] },
    ];
    const req = decodeModelInferRequest(encodeGrpcRequest(withHalf, { raw: true }));
    check(req.inputs.slice(0, tensors.length));
    expect(Array.from(req.inputs.at(-2)?.values as ArrayLike<number>)).toEqual([1.5, -0.5]);
    expect(Array.from(req.inputs.at(-1)?.values as ArrayLike<number>)).toEqual([3.140625, 2]);
  });

  it('responses, typed and raw, framed and bare, via decodeCall with source grpc', () => {
    for (const raw of [false, true]) {
      const reqBytes = encodeGrpcRequest([x], { model_name: 'iris', raw });
      const resBytes = encodeGrpcResponse([probs], { model_name: 'iris', model_version: '3', raw });
      expect(decodeModelInferResponse(resBytes).outputs[0]?.name).toBe('probs');
      const call = capturedCall(
        capturedBody(grpcFrame(reqBytes), { contentType: 'application/grpc' }),
        capturedBody(resBytes, { contentType: 'application/grpc' }),
        { source: 'grpc', route: '/inference.GRPCInferenceService/ModelInfer' },
      );
      const out = decodeCall(call, defaultModelSchema);
      expect(out.rows).toEqual(expectedRows);
      expect(out.version).toBe('3');
    }
  });

  it('a compressed gRPC frame is inflated with its grpc-encoding', () => {
    const bytes = encodeGrpcRequest([x]);
    const req = decodeModelInferRequest(grpcFrame(gzip(bytes), true), { encoding: 'gzip' });
    expect(Array.from(req.inputs[0]?.values as ArrayLike<number>)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('@grpc/proto-loader reads the proto; what it serialises we decode, what we encode it reads', () => {
    const def = loadSync(INFERENCE_PROTO_PATH, { keepCase: true, longs: Number, defaults: true });
    const svc = def['inference.GRPCInferenceService'] as Record<
      string,
      { path: string; requestSerialize: (v: unknown) => Buffer; responseDeserialize: (b: Buffer) => unknown }
    >;
    expect(svc.ModelInfer?.path).toBe('/inference.GRPCInferenceService/ModelInfer');
    const msg = {
      model_name: 'iris',
      model_version: '1',
      id: 'r1',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3] }],
      raw_input_contents: [Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6]).buffer)],
    };
    const theirs = svc.ModelInfer?.requestSerialize(msg) as Buffer;
    const req = decodeModelInferRequest(theirs);
    expect(req.model).toBe('iris');
    expect(Array.from(req.inputs[0]?.values as ArrayLike<number>)).toEqual([1, 2, 3, 4, 5, 6]);
    const res = svc.ModelInfer?.responseDeserialize(encodeGrpcResponse([probs], { model_name: 'iris' })) as {
      outputs: { name: string; shape: number[]; contents: { fp32_contents: number[] } }[];
    };
    expect(res.outputs[0]?.shape).toEqual([2, 2]);
    expect(res.outputs[0]?.contents.fp32_contents).toEqual([0.25, 0.75, 0.5, 0.5]);
  });

  it('the proto file is where INFERENCE_PROTO_PATH says, with the spec field numbers', () => {
    const text = readFileSync(INFERENCE_PROTO_PATH, 'utf8');
    expect(text).toContain('repeated bytes raw_input_contents = 7;');
    expect(text).toContain('repeated bytes raw_output_contents = 6;');
    expect(text).toContain('repeated uint64 uint64_contents = 5;');
  });
});

describe('peekModelFromPath', () => {
  it.each([
    ['/v2/models/iris/infer', { model: 'iris', version: '' }],
    ['/v2/models/iris/versions/3/infer', { model: 'iris', version: '3' }],
    ['/v2/models/iris/infer?x=1', { model: 'iris', version: '' }],
    ['/v2/models/my%20model/versions/v1.2/infer', { model: 'my model', version: 'v1.2' }],
    ['/v2/models/iris', undefined],
    ['/v2/models/iris/ready', undefined],
    ['/v2/models//infer', undefined],
    ['/v2/models/iris/versions//infer', undefined],
    ['/v2/models/iris/extra/infer', undefined],
    ['/v2/models/%E0%A4%A/infer', undefined],
    ['/v1/models/iris:predict', undefined],
  ])('%s', (path, expected) => {
    expect(peekModelFromPath(path)).toEqual(expected);
  });
});
