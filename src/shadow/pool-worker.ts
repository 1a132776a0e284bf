// Worker-thread entry of ShadowPool: holds one ONNX Runtime session per loaded model and runs them,
// so the blocking `session.run` never occupies the main thread. Started by pool.ts only.
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { FromPoolWorker, PoolWorkerData, ProviderFallback, ToPoolWorker, WorkerOutput } from './pool-protocol.js';
import { v2DatatypeOfOrt, type OnnxValueInfo, type ShadowTensorData } from './tensors.js';

const port = parentPort;
if (!port) throw new Error('pool-worker must run in a worker thread');
const data = workerData as PoolWorkerData;
ort.env.logLevel = data.logLevel;

const sessions = new Map<string, ort.InferenceSession>();

function send(m: FromPoolWorker, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(m, transfer);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function valueInfo(meta: readonly ort.InferenceSession.ValueMetadata[]): OnnxValueInfo[] {
  return meta.map((m) => {
    if (!m.isTensor) return { name: m.name, ortType: undefined, datatype: undefined, shape: [] };
    return { name: m.name, ortType: m.type, datatype: v2DatatypeOfOrt(m.type), shape: [...m.shape] };
  });
}

/**
 * Creates the session with the requested providers in order. onnxruntime-node does not skip a provider
 * it cannot load: appending CUDA without its libraries throws ("OrtSessionOptionsAppendExecutionProvider_Cuda:
 * Failed to load shared library"). So a failing provider other than the last is dropped, the reason
 * kept, and the rest tried.
 */
async function createSession(
  model: Uint8Array | string,
  providers: string[],
): Promise<{ session: ort.InferenceSession; provider: string; fallbacks: ProviderFallback[] }> {
  const fallbacks: ProviderFallback[] = [];
  let rest = providers;
  for (;;) {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: rest,
      intraOpNumThreads: data.session.intraOpNumThreads,
      interOpNumThreads: data.session.interOpNumThreads,
      graphOptimizationLevel: data.session.graphOptimizationLevel,
      executionMode: 'sequential',
    };
    try {
      const session =
        typeof model === 'string'
          ? await ort.InferenceSession.create(model, options)
          : await ort.InferenceSession.create(model, options);
      return { session, provider: rest[0] ?? 'cpu', fallbacks };
    } catch (err) {
      const first = rest[0];
      if (rest.length <= 1 || first === undefined || first === 'cpu') throw err;
      fallbacks.push({ provider: first, reason: message(err) });
      rest = rest.slice(1);
    }
  }
}

async function load(m: Extract<ToPoolWorker, { type: 'load' }>): Promise<void> {
  const t0 = performance.now();
  try {
    const model = 'path' in m.source ? new Uint8Array(await readFile(m.source.path)) : m.source.bytes;
    const { session, provider, fallbacks } = await createSession(model, m.providers);
    const previous = sessions.get(m.key);
    sessions.set(m.key, session);
    if (previous) await previous.release();
    send({
      type: 'loaded',
      key: m.key,
      inputs: valueInfo(session.inputMetadata),
      outputs: valueInfo(session.outputMetadata),
      executionProvider: provider,
      fallbacks,
      loadMs: performance.now() - t0,
    });
  } catch (err) {
    send({ type: 'loadFailed', key: m.key, message: message(err) });
  }
}

/** The buffer to hand back without a copy, when the typed array owns all of it. */
function ownBuffer(d: ShadowTensorData): ArrayBuffer | undefined {
  if (Array.isArray(d)) return undefined;
  const b = d.buffer;
  return b instanceof ArrayBuffer && d.byteOffset === 0 && d.byteLength === b.byteLength ? b : undefined;
}

async function run(m: Extract<ToPoolWorker, { type: 'run' }>): Promise<void> {
  const session = sessions.get(m.key);
  if (!session) {
    send({ type: 'runFailed', id: m.id, message: `model ${m.key} is not loaded in this worker` });
    return;
  }
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const f of m.feeds) {
      feeds[f.name] = new ort.Tensor(f.ortType as ort.Tensor.Type, f.data, f.dims);
    }
    const t0 = performance.now();
    const result = await session.run(feeds);
    const runMs = performance.now() - t0;
    const outputs: WorkerOutput[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const name of session.outputNames) {
      const t = result[name];
      if (!t) continue;
      const out = t.data;
      const own = ownBuffer(out);
      if (own && !transfer.includes(own)) transfer.push(own);
      outputs.push({ name, ortType: t.type, dims: [...t.dims], data: out });
    }
    send({ type: 'result', id: m.id, outputs, runMs }, transfer);
  } catch (err) {
    send({ type: 'runFailed', id: m.id, message: message(err) });
  }
}

port.on('message', (m: ToPoolWorker) => {
  if (m.type === 'load') void load(m);
  else if (m.type === 'run') void run(m);
  else {
    const s = sessions.get(m.key);
    sessions.delete(m.key);
    if (s) void s.release().catch(() => undefined);
  }
});
