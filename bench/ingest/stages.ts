// Direction-only micro profile of the per-call JS stages of ingest at 1 row per call (tsx, from src).
import { encodeCapture } from '../../src/bus/index.js';
import { decodeCapture } from '../../src/protocol/capture.js';
import { decodeCall } from '../../src/protocol/index.js';
import { defaultModelSchema } from '../../src/config/index.js';
import { buildCallRecords } from '../../src/ingest/records.js';
import { predictionLine, requestLine, payloadLine } from '../../src/ingest/encode.js';
import { payloadRowOf } from '../../src/ingest/payloads.js';
import { call } from './calls.js';

const N = 20000;
const msgs = Array.from({ length: N }, (_, i) => ({
  ...encodeCapture(call('m', i, 1, 1.7e12)),
  offset: String(i),
  timestamp: 0,
}));
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
