// The rows ingest stores for one 1-row REST call (a prediction and its request), for tests that write
// traffic straight into the store. Only what a test varies is passed; the rest is a plain successful call.
import type { PredictionRow, RequestRow } from '../../src/store/index.js';

/** What a test sets on a 1-row call; every field is optional. */
export interface CallRowsOptions {
  features_num?: Record<string, number>;
  features_cat?: Record<string, string>;
  outputs_num?: Record<string, number>;
  outputs_cat?: Record<string, string>;
  status?: number;
  latency_ms?: number;
}

/** The prediction row and request row of one 1-row call `id` (event and request id) of `model` at `ts`. */
export function callRows(
  model: string,
  ts: number,
  id: string,
  o: CallRowsOptions = {},
): { prediction: PredictionRow; request: RequestRow } {
  return {
    prediction: {
      model,
      version: '1',
      ts,
      event_id: id,
      request_id: id,
      row: 0,
      features_num: o.features_num ?? {},
      features_cat: o.features_cat ?? {},
      outputs_num: o.outputs_num ?? {},
      outputs_cat: o.outputs_cat ?? {},
    },
    request: {
      model,
      version: '1',
      ts,
      event_id: id,
      request_id: id,
      source: 'rest',
      route: `/v2/models/${model}/infer`,
      status: o.status ?? 200,
      latency_ms: o.latency_ms ?? 10,
      request_bytes: 100,
      response_bytes: 50,
      request_truncated: false,
      response_truncated: false,
      rows: 1,
      error: '',
    },
  };
}
