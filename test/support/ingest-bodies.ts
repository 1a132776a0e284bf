// Varied captured calls and the insert bodies ingest's decode loop makes of them (src/ingest/pipeline.ts:
// decodeCapture → buildCallRecords → the prediction, request, payload and quarantine lines written into byte
// sinks), with the modules passed in, so that one build's bodies can be kept as a fixture and another's
// compared with it byte for byte (test/ingest-bodies.test.ts, test/fixtures/ingest/make-insert-bodies.ts).
import type { CaptureRecord, CapturedCall } from '../../src/protocol/capture.js';
import type { ModelSchema } from '../../src/config/model-schema.js';
import type { DecodedCall } from '../../src/protocol/decode-call.js';
import type * as Encode from '../../src/ingest/encode.js';
import type * as Records from '../../src/ingest/records.js';
import type * as Payloads from '../../src/ingest/payloads.js';
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
} from './v2-encode.js';

/** The functions of one build that the decode loop calls. */
export interface LoopModules {
  decodeCapture: (m: CaptureRecord) => CapturedCall;
  decodeCall: (call: CapturedCall, schema: ModelSchema) => DecodedCall;
  buildCallRecords: typeof Records.buildCallRecords;
  envelopeQuarantine: typeof Records.envelopeQuarantine;
  payloadRowOf: typeof Payloads.payloadRowOf;
  predictionLine: typeof Encode.predictionLine;
  requestLine: typeof Encode.requestLine;
  payloadLine: typeof Encode.payloadLine;
  quarantineLine: typeof Encode.quarantineLine;
}

/** One captured record as the fixture keeps it. */
export interface StoredMessage {
  name: string;
  key: string | null;
  value: string;
  headers: Record<string, string>;
}

/** The four insert bodies of a run, as UTF-8 text. */
export interface InsertBodies {
  predictions: string;
  requests: string;
  payloads: string;
  quarantine: string;
}

/** Model schemas of the cases: one maps and types columns (the flattening's general path). */
export const caseSchemas: Record<string, ModelSchema> = {
  mapped: {
    features: [
      { name: 'age', tensor: 'x', index: 0 },
      { name: 'city', tensor: 'x', index: 2, kind: 'categorical' },
    ],
    categorical: ['flag'],
  },
};
const noSchema: ModelSchema = { features: [], categorical: [] };

/** The captured calls of the cases (before envelope encoding). */
export function caseCalls(): { name: string; call: CapturedCall }[] {
  const t0 = 1_767_225_600_123;
  const at = (i: number, o: Partial<CapturedCall> = {}): Partial<CapturedCall> => ({
    eventId: `ev-${i}`,
    requestId: `req-${i}`,
    model: 'm',
    version: '3',
    startedAt: t0 + i * 1_017 + (i % 3) * 60_000,
    latencyMs: 0.25 * i,
    ...o,
  });
  const fp32 = (rows: number, width: number, i: number): TensorSpec => ({
    name: 'x',
    datatype: 'FP32',
    shape: [rows, width],
    data: Array.from({ length: rows * width }, (_, k) => ((i * 37 + k * 11) % 997) / 16 - 20),
  });
  const out = (rows: number): TensorSpec => ({
    name: 'p',
    datatype: 'FP32',
    shape: [rows, 1],
    data: Array.from({ length: rows }, (_, r) => r / 8),
  });
  const json = (inputs: TensorSpec[], outputs: TensorSpec[], i: number, o: Partial<CapturedCall> = {}) =>
    capturedCall(encodeJsonRequest(inputs), encodeJsonResponse(outputs, { model_name: 'm' }), at(i, o));
  const cases: { name: string; call: CapturedCall }[] = [];
  const add = (name: string, call: CapturedCall): void => {
    cases.push({ name, call });
  };
  // The bench's shape: 1 row of 20 FP32 features, one output; several, so times and ids vary.
  for (let i = 0; i < 6; i++) add(`1-row fp32 #${i}`, json([fp32(1, 20, i)], [out(1)], i));
  add('many rows', json([fp32(17, 5, 7)], [out(17)], 7));
  add(
    'int64, bool, bytes inputs; two outputs',
    json(
      [
        { name: 'ids', datatype: 'INT64', shape: [3], data: [9007199254740991, -5, 0] },
        { name: 'flag', datatype: 'BOOL', shape: [3], data: [true, false, true] },
        { name: 'tag', datatype: 'BYTES', shape: [3, 1], data: ['a"b', 'ünï ✓', 'c\\d\n'] },
      ],
      [out(3), { name: 'label', datatype: 'BYTES', shape: [3], data: ['yes', 'no', 'yes'] }],
      8,
    ),
  );
  {
    const req = encodeBinaryRequest([
      { name: 'x', datatype: 'FP16', shape: [2, 3], data: [1.5, -0.25, 65504, 0.0001, -0, 3] },
      { name: 'b', datatype: 'BYTES', shape: [2], data: ['bin', 'ary'] },
    ]);
    const res = encodeBinaryResponse(
      [{ name: 'p', datatype: 'FP32', shape: [2, 2], data: [NaN, Infinity, -Infinity, 0.1] }],
      { model_name: 'm' },
    );
    add(
      'binary extension: fp16, bytes, non-finite outputs',
      capturedCall(
        capturedBody(req.body, { headerLength: req.headerLength, contentType: 'application/octet-stream' }),
        capturedBody(res.body, { headerLength: res.headerLength, contentType: 'application/octet-stream' }),
        at(9),
      ),
    );
  }
  {
    const raw = encodeJsonRequest([fp32(2, 4, 10)]);
    add(
      'gzip request',
      capturedCall(
        capturedBody(gzip(raw), { contentEncoding: 'gzip', size: 999 }),
        encodeJsonResponse([out(2)], { model_name: 'm' }),
        at(10),
      ),
    );
  }
  add(
    'grpc',
    capturedCall(
      capturedBody(encodeGrpcRequest([fp32(2, 3, 11)], { model_name: 'g', model_version: '2' }), {
        contentType: 'application/grpc',
      }),
      capturedBody(encodeGrpcResponse([out(2)], { model_name: 'g', model_version: '2' }), {
        contentType: 'application/grpc',
      }),
      at(11, { source: 'grpc', model: '', version: '', route: '/inference.GRPCInferenceService/ModelInfer' }),
    ),
  );
  add(
    'mapped schema: named and categorical columns',
    json([fp32(2, 3, 12), { name: 'flag', datatype: 'INT32', shape: [2], data: [1, 0] }], [out(2)], 12, {
      model: 'mapped',
    }),
  );
  add(
    'missing outputs: error body',
    capturedCall(encodeJsonRequest([fp32(1, 20, 13)]), Buffer.from('{"error":"model busy"}'), at(13)),
  );
  add('missing outputs: 500', json([fp32(1, 4, 14)], [out(1)], 14, { status: 500 }));
  add('missing outputs: transport error', json([fp32(1, 4, 15)], [], 15, { status: 502, error: 'upstream reset' }));
  {
    const c = json([fp32(1, 20, 16)], [out(1)], 16);
    c.response = { ...c.response, truncated: true, size: c.response.size + 100 };
    add('missing outputs: response truncated', c);
  }
  {
    const c = json([fp32(1, 20, 17)], [out(1)], 17);
    c.request = { ...c.request, truncated: true, size: c.request.size + 100 };
    add('request truncated (no rows, marker payload)', c);
  }
  add(
    'quarantine: malformed request body',
    capturedCall(Buffer.from('{"inputs": [ {"name": "x", '), encodeJsonResponse([out(1)]), at(18)),
  );
  add(
    'quarantine: shape mismatch',
    capturedCall(
      Buffer.from('{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]}'),
      encodeJsonResponse([out(2)]),
      at(19),
    ),
  );
  add(
    'non-UTF-8 request (base64 payload), quarantined',
    capturedCall(Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0x7d]), encodeJsonResponse([out(1)]), at(20)),
  );
  add(
    'text with quotes and non-ASCII in ids and route',
    json([fp32(1, 3, 21)], [out(1)], 21, {
      eventId: 'ev-"21"-ü',
      requestId: 'req\\21\t✓',
      route: '/v2/models/m/infer?q="x"',
    }),
  );
  add(
    'captured http headers',
    json([fp32(1, 20, 23)], [out(1)], 23, {
      headers: { 'content-type': 'application/json', 'user-agent': 'ü-agent/1 "q"', traceparent: '00-ab-cd-01' },
    }),
  );
  add('duplicate event id (dropped)', json([fp32(1, 20, 22)], [out(1)], 22, { eventId: 'ev-0' }));
  return cases;
}

/** The envelope of each case, plus records whose envelope does not decode (envelope quarantine). */
export function caseMessages(encode: (call: CapturedCall) => CaptureRecord): StoredMessage[] {
  const out: StoredMessage[] = caseCalls().map(({ name, call }) => {
    const m = encode(call);
    return { name, key: m.key, value: m.value.toString('base64'), headers: { ...m.headers } };
  });
  const first = out[0] as StoredMessage;
  // Capture times: year and month ends, days past a month's end (which Date.parse rolls over), other RFC 3339
  // spellings, and two that are no time (a leap second, a letter).
  const times = [
    '2026-12-31T23:59:59.999Z',
    '2027-01-01T00:00:00.000Z',
    '2028-02-29T12:34:56.789Z',
    '2026-02-31T00:00:00.000Z',
    '2026-01-01T24:00:00.000Z',
    '2026-01-01T24:00:30.000Z',
    '2026-03-04T05:06:07Z',
    '2026-03-04T05:06:59.999+02:00',
    '2026-03-04T05:06:07.5Z',
    '2026-03-04T05:06:60.000Z',
    '2026-03-04T05:06:1x.000Z',
  ];
  times.forEach((time, i) => {
    out.push({
      ...first,
      name: `ce_time ${time}`,
      headers: { ...first.headers, ce_time: time, ce_id: `ev-time-${i}` },
    });
  });
  out.push({
    ...first,
    name: 'envelope: header length not a number',
    headers: { ...first.headers, ce_reqheaderlength: 'abc', ce_id: 'ev-hl' },
  });
  // ce_httpheaders as producers other than encodeCapture may write it: non-string values, an array, not JSON.
  const httpHeaders = ['{"a":1,"b":"x","c":null,"d":{"e":true}}', '["a","b"]', '{"a":'];
  httpHeaders.forEach((text, i) => {
    out.push({
      ...first,
      name: `ce_httpheaders ${text}`,
      headers: { ...first.headers, ce_httpheaders: text, ce_id: `ev-hh-${i}` },
    });
  });
  out.push({ ...first, name: 'envelope: wrong ce_type', headers: { ...first.headers, ce_type: 'other' } });
  out.push({ ...first, name: 'envelope: short value', value: Buffer.from([0, 0]).toString('base64') });
  return out;
}

/** The insert bodies the decode loop makes of `messages` (one chunk, in order, as src/ingest/pipeline.ts does). */
export function loopBodies(mods: LoopModules, messages: readonly StoredMessage[]): InsertBodies {
  const lines: Record<keyof InsertBodies, string[]> = { predictions: [], requests: [], payloads: [], quarantine: [] };
  const seen = new Set<string>();
  const decode = (call: CapturedCall): DecodedCall => mods.decodeCall(call, caseSchemas[call.model] ?? noSchema);
  messages.forEach((s, i) => {
    const m = { key: s.key, value: Buffer.from(s.value, 'base64'), headers: { ...s.headers }, offset: String(i) };
    const origin = `captures/0/${i}`;
    let call: CapturedCall;
    try {
      call = mods.decodeCapture(m);
    } catch (err) {
      lines.quarantine.push(mods.quarantineLine(mods.envelopeQuarantine({ ...m, timestamp: 0 }, origin, err)));
      return;
    }
    if (seen.has(call.eventId)) return;
    seen.add(call.eventId);
    const rec = mods.buildCallRecords(call, origin, m.value, decode);
    for (const p of rec.predictions) lines.predictions.push(mods.predictionLine(p));
    const payload = mods.payloadRowOf(call, rec.request.model, rec.request.version, { days: 7 });
    lines.requests.push(mods.requestLine(rec.request));
    if (payload) lines.payloads.push(mods.payloadLine(payload));
    if (rec.quarantine) lines.quarantine.push(mods.quarantineLine(rec.quarantine));
  });
  const body = (l: string[]): string => l.map((x) => `${x}\n`).join('');
  return {
    predictions: body(lines.predictions),
    requests: body(lines.requests),
    payloads: body(lines.payloads),
    quarantine: body(lines.quarantine),
  };
}
