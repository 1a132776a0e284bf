// Production traffic for shadow tests: calls answered by the real ONNX model (bare onnxruntime-node),
// encoded as V2 JSON, and stored through the real ingest pipeline.
import * as ort from 'onnxruntime-node';
import { encodeCapture, type CapturedCall, type ConsumedBatch } from '../../src/bus/index.js';
import { createIngestMetrics } from '../../src/ingest/metrics.js';
import { IngestPipeline, type IngestPipelineOptions } from '../../src/ingest/pipeline.js';
import type { Store } from '../../src/store/index.js';
import { newRegistry } from './ingest.js';
import { capturedBody, encodeJsonRequest, encodeJsonResponse } from './v2-encode.js';

/** Rows per call, cycled. */
export const CALL_SIZES = [1, 3, 8, 5, 2];

/** Calls of `model` over `rows` (4 FP32 features each), answered by `bytes`; also production's labels. */
export async function productionCalls(
  model: string,
  bytes: Uint8Array,
  rows: number[][],
  t0: number,
): Promise<{ calls: CapturedCall[]; labels: string[] }> {
  const session = await ort.InferenceSession.create(bytes);
  const calls: CapturedCall[] = [];
  const labels: string[] = [];
  for (let i = 0, k = 0; i < rows.length; k++) {
    const n = Math.min(CALL_SIZES[k % CALL_SIZES.length] as number, rows.length - i);
    const chunk = rows.slice(i, i + n);
    const out = await session.run({ input: new ort.Tensor('float32', Float32Array.from(chunk.flat()), [n, 4]) });
    const probs = Array.from(out.probabilities?.data as Float32Array, Number);
    const label = Array.from(out.label?.data as BigInt64Array, Number);
    labels.push(...label.map(String));
    const req = encodeJsonRequest([{ name: 'input', datatype: 'FP32', shape: [n, 4], data: chunk.flat() }]);
    const res = encodeJsonResponse(
      [
        { name: 'probabilities', datatype: 'FP32', shape: [n, probs.length / n], data: probs },
        { name: 'label', datatype: 'INT64', shape: [n], data: label },
      ],
      { model_name: model },
    );
    calls.push({
      eventId: `${model}-ev-${k}-${t0}`,
      requestId: `${model}-req-${k}`,
      source: 'rest',
      model,
      version: k % 2 === 0 ? 'v1' : 'v2',
      route: `/v2/models/${model}/infer`,
      method: 'POST',
      status: 200,
      startedAt: t0 + k * 1000,
      latencyMs: 2 + (k % 7),
      request: capturedBody(req),
      response: capturedBody(res),
      headers: {},
      error: '',
    });
    i += n;
  }
  await session.release();
  return { calls, labels };
}

let offset = 0;

/** Stores calls through the real ingest pipeline (batches of 100). */
export async function ingestCalls(
  store: Store,
  calls: CapturedCall[],
  options: IngestPipelineOptions = {},
): Promise<void> {
  const pipeline = new IngestPipeline(store, createIngestMetrics(newRegistry()), options);
  for (let i = 0; i < calls.length; i += 100) {
    const batch: ConsumedBatch = {
      topic: 'shadow-test',
      partition: 0,
      messages: calls
        .slice(i, i + 100)
        .map((c) => ({ ...encodeCapture(c), offset: String(offset++), timestamp: Date.now() })),
      heartbeat: () => Promise.resolve(),
      isRunning: () => true,
    };
    await pipeline.handleBatch(batch);
  }
}
