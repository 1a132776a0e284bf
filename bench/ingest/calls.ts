// The captured calls the ingest benchmark and its profiling scripts (bench/ingest/*.ts) feed to ingest.
import type { CapturedCall } from '../../src/protocol/capture.js';

/** Features per row. */
export const FEATURES = 20;

/** Feature `c` of row `r` of call `i`. */
export function value(i: number, r: number, c: number): number {
  // Exactly representable in FP32 so decode → Float64 reproduces the pre-built raw rows.
  return ((i * 31 + r * 7 + c) % 1000) / 8;
}

/** A captured 1…`rows`-row V2 JSON call of `model` (20 FP32 features, one output), started at `t0 + i`. */
export function call(model: string, i: number, rows: number, t0: number): CapturedCall {
  const data: number[] = new Array<number>(rows * FEATURES);
  for (let r = 0; r < rows; r++) for (let c = 0; c < FEATURES; c++) data[r * FEATURES + c] = value(i, r, c);
  const req = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [rows, FEATURES], datatype: 'FP32', data }] }));
  const res = Buffer.from(
    JSON.stringify({
      model_name: model,
      outputs: [{ name: 'p', shape: [rows, 1], datatype: 'FP32', data: new Array<number>(rows).fill(0.5) }],
    }),
  );
  const body = (b: Buffer): CapturedCall['request'] => ({
    body: b,
    size: b.length,
    truncated: false,
    contentType: 'application/json',
    contentEncoding: '',
  });
  return {
    eventId: `${model}-ev-${i}`,
    requestId: `${model}-req-${i}`,
    source: 'rest',
    model,
    version: '1',
    route: `/v2/models/${model}/infer`,
    method: 'POST',
    status: 200,
    startedAt: t0 + i,
    latencyMs: 1,
    request: body(req),
    response: body(res),
    headers: {},
    error: '',
  };
}
