// Direction-only micro profile of the per-call JS stages of ingest at 1 row per call (tsx, from src).
import { encodeCapture, type CapturedCall } from '../../src/bus/index.js';
import { decodeCapture } from '../../src/protocol/capture.js';
import { decodeCall } from '../../src/protocol/index.js';
import { defaultModelSchema } from '../../src/config/index.js';
import { buildCallRecords } from '../../src/ingest/records.js';
import { predictionLine, requestLine, payloadLine } from '../../src/ingest/encode.js';
import { payloadRowOf } from '../../src/ingest/payloads.js';

const F = 20;
function call(i: number): CapturedCall {
  const data = Array.from({ length: F }, (_, c) => ((i * 31 + c) % 1000) / 8);
  const req = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [1, F], datatype: 'FP32', data }] }));
  const res = Buffer.from(
    JSON.stringify({ model_name: 'm', outputs: [{ name: 'p', shape: [1, 1], datatype: 'FP32', data: [0.5] }] }),
  );
  const body = (b: Buffer) => ({
    body: b,
    size: b.length,
    truncated: false,
    contentType: 'application/json',
    contentEncoding: '',
  });
  return {
    eventId: `ev-${i}`,
    requestId: `req-${i}`,
    source: 'rest',
    model: 'm',
    version: '1',
    route: '/v2/models/m/infer',
    method: 'POST',
    status: 200,
    startedAt: 1.7e12 + i,
    latencyMs: 1,
    request: body(req),
    response: body(res),
    headers: {},
    error: '',
  };
}
const N = 20000;
const msgs = Array.from({ length: N }, (_, i) => ({ ...encodeCapture(call(i)), offset: String(i), timestamp: 0 }));
console.log('value bytes', msgs[0]!.value.length, 'headers', Object.keys(msgs[0]!.headers).length);
function best(name: string, fn: () => void): void {
  let b = Infinity;
  for (let k = 0; k < 5; k++) {
    const t = performance.now();
    fn();
    b = Math.min(b, performance.now() - t);
  }
  console.log(name.padEnd(20), ((b * 1000) / N).toFixed(2), 'µs/call');
}
const calls = msgs.map((m) => decodeCapture(m));
const recs = calls.map((c) => buildCallRecords(c, 'o', Buffer.alloc(0), (x) => decodeCall(x, defaultModelSchema)));
best('decodeCapture', () => {
  for (const m of msgs) decodeCapture(m);
});
best('decodeCall', () => {
  for (const c of calls) decodeCall(c, defaultModelSchema);
});
best('buildCallRecords', () => {
  for (const c of calls) buildCallRecords(c, 'o', Buffer.alloc(0), (x) => decodeCall(x, defaultModelSchema));
});
best('predictionLine', () => {
  for (const r of recs) predictionLine(r.predictions[0]!);
});
best('requestLine', () => {
  for (const r of recs) requestLine(r.request);
});
best('payloadRow+Line', () => {
  for (const c of calls) payloadLine(payloadRowOf(c, 'm', '1')!);
});
best('JSON.parse x2', () => {
  for (const c of calls) {
    JSON.parse(c.request.body.toString());
    JSON.parse(c.response.body.toString());
  }
});
