import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../common/worker.js';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/logger.js';
import type {
  FromPoolWorker,
  PoolWorkerData,
  ProviderFallback,
  ToPoolWorker,
  WorkerModelSource,
  WorkerSessionOptions,
} from './pool-protocol.js';
import {
  mapInputs,
  resolveInputMap,
  v2DatatypeOfOrt,
  type OnnxFeed,
  type OnnxValueInfo,
  type ShadowTensor,
  type ShadowTensorData,
} from './tensors.js';

/** Execution providers the pool knows how to request from onnxruntime-node on Linux. */
export const ExecutionProviders = ['cuda', 'tensorrt', 'cpu'] as const;
/** One of {@link ExecutionProviders}. */
export type ExecutionProviderName = (typeof ExecutionProviders)[number];

/** Options of {@link ShadowPool}. */
export interface ShadowPoolOptions {
  /**
   * Worker threads, each holding one session per loaded model. Small models run best as several
   * single-threaded sessions. @default max(1, min(4, availableParallelism() - 1))
   */
  workers?: number;
  /** Threads ONNX Runtime uses inside one operator, per session. @default 1 */
  intraOpNumThreads?: number;
  /** Threads ONNX Runtime uses across independent operators, per session. @default 1 */
  interOpNumThreads?: number;
  /** ONNX Runtime graph optimisation level. @default 'all' */
  graphOptimizationLevel?: WorkerSessionOptions['graphOptimizationLevel'];
  /**
   * Providers in order of preference, or `'auto'`: CUDA when its provider library is installed next
   * to onnxruntime-node's binding (`libonnxruntime_providers_cuda.so`), then CPU. A provider that
   * fails to load is skipped for the next one and the reason reported. @default 'auto'
   */
  executionProviders?: 'auto' | ExecutionProviderName[];
  /**
   * Move input typed arrays that own their whole buffer to the worker instead of copying them; they
   * are empty (detached) once `run` has been called. `false` copies. @default true
   */
  transferInputs?: boolean;
  /** How long one `run` may take before it rejects with a `timeout` error. @default 30000 */
  runTimeoutMs?: number;
  /** How long loading a model into every worker may take. @default 60000 */
  loadTimeoutMs?: number;
  /** ONNX Runtime's own log level inside the workers. @default 'error' */
  ortLogLevel?: PoolWorkerData['logLevel'];
  /** URL of the worker entry module. @default `pool-worker.js` next to this module (`.ts` under tsx) */
  workerUrl?: URL | undefined;
  /** Where worker failures are reported. @default silentLogger */
  logger?: Logger;
}

const defaults = {
  workers: Math.max(1, Math.min(4, availableParallelism() - 1)),
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionProviders: 'auto',
  transferInputs: true,
  runTimeoutMs: 30_000,
  loadTimeoutMs: 60_000,
  ortLogLevel: 'error',
  logger: silentLogger,
} satisfies Required<Omit<ShadowPoolOptions, 'workerUrl'>>;

/** A candidate model as loaded by {@link ShadowPool.load}. */
export interface ShadowModel {
  /** The pool's key of this model. */
  readonly key: string;
  /** The model's inputs, from the session's metadata. */
  readonly inputs: readonly OnnxValueInfo[];
  /** The model's outputs, from the session's metadata. */
  readonly outputs: readonly OnnxValueInfo[];
  /** The provider the sessions were created with (`cuda`, `cpu`, …). */
  readonly executionProvider: string;
  /** The providers asked for, in order. */
  readonly requestedProviders: readonly string[];
  /** Providers skipped, and why (e.g. CUDA asked for on a host without it). */
  readonly fallbacks: readonly ProviderFallback[];
  /** Slowest worker's load time, ms. */
  readonly loadMs: number;
}

/** Options of {@link ShadowPool.load}. */
export interface LoadModelOptions {
  /** Key to load under (a second load with the same key replaces the model). @default a new key */
  key?: string;
  /** Request tensor name → ONNX input name, for tensors whose names differ from the model's inputs. @default {} */
  inputMap?: Record<string, string>;
}

/** The answer of {@link ShadowPool.run}. */
export interface ShadowRunResult {
  /** Every output of the model, in the session's order. */
  outputs: ShadowTensor[];
  /** Time inside `session.run` on the worker, ms. */
  runMs: number;
  /** Time from posting the batch to receiving the outputs, ms (includes queueing). */
  roundTripMs: number;
  /** Index of the worker that ran it. */
  worker: number;
}

/** A model source for {@link ShadowPool.load}: serialized bytes, or a path the workers read. */
export type ModelSource = Uint8Array | { path: string };

interface Pending {
  resolve: (r: ShadowRunResult) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  t0: number;
  slot: Slot;
}

interface LoadWaiter {
  resolve: (m: Extract<FromPoolWorker, { type: 'loaded' }>) => void;
  reject: (err: Error) => void;
}

interface Slot {
  index: number;
  worker: Worker;
  inflight: number;
  loads: Map<string, LoadWaiter>;
  /** Resolves once the models held by the pool are loaded in this worker (a replacement after a crash). */
  ready: Promise<void>;
}

interface Held {
  model: ShadowModel;
  source: WorkerModelSource;
  providers: string[];
  reverseMap: Map<string, string>;
}

const CUDA_LIBRARY = 'libonnxruntime_providers_cuda.so';
/** onnxruntime-node's messages when appending a provider fails (before the model is even parsed). */
const PROVIDER_ERROR = /AppendExecutionProvider|Failed to get a WebGPU adapter/;

/** Where onnxruntime-node keeps its native binding for this platform. */
function bindingDir(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('onnxruntime-node/package.json');
  return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
}

/**
 * The providers to request. `'auto'` asks for CUDA only when its provider library is installed
 * (onnxruntime-node ships without it; `--onnxruntime-node-install=cuda12` fetches it), so a host
 * without it does not pay a failed load per session; the skip is reported like any fallback.
 */
export function resolveExecutionProviders(requested: 'auto' | readonly ExecutionProviderName[]): {
  providers: ExecutionProviderName[];
  skipped: ProviderFallback[];
} {
  if (requested !== 'auto') return { providers: [...requested], skipped: [] };
  const dir = bindingDir();
  if (process.platform === 'linux' && existsSync(join(dir, CUDA_LIBRARY)))
    return { providers: ['cuda', 'cpu'], skipped: [] };
  return {
    providers: ['cpu'],
    skipped: [{ provider: 'cuda', reason: `CUDA provider not installed (${CUDA_LIBRARY} not in ${dir})` }],
  };
}

/** Adds what onnxruntime-node's own message leaves out when CUDA's provider library is absent. */
function explainFallback(f: ProviderFallback): ProviderFallback {
  if (f.provider !== 'cuda') return f;
  const dir = bindingDir();
  if (existsSync(join(dir, CUDA_LIBRARY))) return f;
  return {
    provider: f.provider,
    reason: `${f.reason} (${CUDA_LIBRARY} is not installed in ${dir}; falling back to the next provider)`,
  };
}

/** The worker entry next to this module: `.ts` when running from source (tsx, vitest), `.js` when built. */
function defaultEntry(): URL {
  const here = import.meta.url;
  return here.endsWith('.ts') ? new URL('./pool-worker.ts', here) : new URL('./pool-worker.js', here);
}

function spawnWorker(url: URL, workerData: PoolWorkerData): Worker {
  return startWorker(url, workerData);
}

function positiveInt(name: string, v: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!(Number.isSafeInteger(v) && v >= 1 && v <= max)) {
    throw new ModelwatchError(
      ErrorCodes.configInvalid,
      `ShadowPoolOptions.${name} must be an integer in 1..${max}, got ${v}`,
      { field: name },
    );
  }
  return v;
}

/** A compact buffer to transfer: the array's own when it owns all of it, else a copy. */
function transferable(
  d: ShadowTensorData,
  allowMove: boolean,
): { data: ShadowTensorData; buffer: ArrayBuffer | undefined } {
  if (Array.isArray(d)) return { data: d, buffer: undefined };
  const b = d.buffer;
  if (allowMove && b instanceof ArrayBuffer && d.byteOffset === 0 && d.byteLength === b.byteLength)
    return { data: d, buffer: b };
  // A view into a larger (or shared) buffer would be cloned whole: send only its bytes.
  const copy = d.slice();
  return { data: copy, buffer: copy.buffer };
}

let nextKey = 1;

/**
 * A pool of `worker_threads` workers running onnxruntime-node sessions of candidate models, so the
 * blocking `session.run` never runs on the main thread. Every loaded model has one session in every
 * worker; each `run` goes to the worker with the fewest batches in flight. Request tensors are
 * checked against the model's input metadata on the calling thread before anything is posted.
 * A worker that dies is replaced and its models reloaded; what it held in flight rejects.
 */
export class ShadowPool {
  /** The providers asked of ONNX Runtime, after `'auto'` was resolved. */
  readonly providers: readonly ExecutionProviderName[];
  private readonly skipped: ProviderFallback[];
  private readonly workerCount: number;
  private readonly workerData: PoolWorkerData;
  private readonly transferInputs: boolean;
  private readonly runTimeoutMs: number;
  private readonly loadTimeoutMs: number;
  private readonly entry: URL;
  private readonly logger: Logger;
  private readonly slots: Slot[] = [];
  private readonly held = new Map<string, Held>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(options: ShadowPoolOptions = {}) {
    const o: Required<Omit<ShadowPoolOptions, 'workerUrl'>> = {
      workers: options.workers ?? defaults.workers,
      intraOpNumThreads: options.intraOpNumThreads ?? defaults.intraOpNumThreads,
      interOpNumThreads: options.interOpNumThreads ?? defaults.interOpNumThreads,
      graphOptimizationLevel: options.graphOptimizationLevel ?? defaults.graphOptimizationLevel,
      executionProviders: options.executionProviders ?? defaults.executionProviders,
      transferInputs: options.transferInputs ?? defaults.transferInputs,
      runTimeoutMs: options.runTimeoutMs ?? defaults.runTimeoutMs,
      loadTimeoutMs: options.loadTimeoutMs ?? defaults.loadTimeoutMs,
      ortLogLevel: options.ortLogLevel ?? defaults.ortLogLevel,
      logger: options.logger ?? defaults.logger,
    };
    this.workerCount = positiveInt('workers', o.workers, 64);
    const session: WorkerSessionOptions = {
      intraOpNumThreads: positiveInt('intraOpNumThreads', o.intraOpNumThreads, 256),
      interOpNumThreads: positiveInt('interOpNumThreads', o.interOpNumThreads, 256),
      graphOptimizationLevel: o.graphOptimizationLevel,
    };
    this.runTimeoutMs = positiveInt('runTimeoutMs', o.runTimeoutMs);
    this.loadTimeoutMs = positiveInt('loadTimeoutMs', o.loadTimeoutMs);
    const eps = o.executionProviders;
    if (eps !== 'auto') {
      if (eps.length === 0 || eps.some((p) => !(ExecutionProviders as readonly string[]).includes(p))) {
        throw new ModelwatchError(
          ErrorCodes.configInvalid,
          `ShadowPoolOptions.executionProviders must be 'auto' or a non-empty list of ${ExecutionProviders.join(', ')}; got ${JSON.stringify(eps)}`,
          { field: 'executionProviders' },
        );
      }
    }
    const resolved = resolveExecutionProviders(eps);
    this.providers = resolved.providers;
    this.skipped = resolved.skipped;
    this.workerData = { session, logLevel: o.ortLogLevel };
    this.transferInputs = o.transferInputs;
    this.entry = options.workerUrl ?? defaultEntry();
    this.logger = o.logger;
    for (let i = 0; i < this.workerCount; i++) this.slots.push(this.spawn(i));
  }

  /** Number of worker threads. */
  get size(): number {
    return this.workerCount;
  }

  /** Batches posted and not yet answered. */
  get inflight(): number {
    return this.pending.size;
  }

  /** Thread ids of the workers (diagnostics, tests). */
  get threadIds(): number[] {
    return this.slots.map((s) => s.worker.threadId);
  }

  private spawn(index: number): Slot {
    const worker = spawnWorker(this.entry, this.workerData);
    worker.unref();
    const slot: Slot = { index, worker, inflight: 0, loads: new Map(), ready: Promise.resolve() };
    worker.on('message', (m: FromPoolWorker) => this.onMessage(slot, m));
    worker.on('error', (err: Error) => {
      this.logger.warn('shadow pool worker failed', { worker: index, error: errorMessage(err) });
      this.lost(slot, `shadow worker ${index} failed: ${errorMessage(err)}`);
    });
    worker.on('exit', (code) => this.lost(slot, `shadow worker ${index} exited (code ${code})`));
    return slot;
  }

  /** A worker is gone: fail what it held, and start a replacement that reloads the pool's models. */
  private lost(slot: Slot, why: string): void {
    if (this.slots[slot.index] !== slot) return;
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new ModelwatchError(ErrorCodes.internal, why, { retryable: true }));
    }
    for (const w of slot.loads.values()) w.reject(new ModelwatchError(ErrorCodes.internal, why, { retryable: true }));
    slot.loads.clear();
    if (this.closed) return;
    const fresh = this.spawn(slot.index);
    this.slots[slot.index] = fresh;
    const held = [...this.held.values()];
    fresh.ready = Promise.all(held.map((h) => this.loadInto(fresh, h.model.key, h.source, h.providers))).then(
      () => undefined,
      (err: unknown) => {
        this.logger.error('shadow pool could not reload models into a replacement worker', {
          worker: slot.index,
          error: errorMessage(err),
        });
      },
    );
  }

  private onMessage(slot: Slot, m: FromPoolWorker): void {
    if (m.type === 'loaded' || m.type === 'loadFailed') {
      const w = slot.loads.get(m.key);
      if (!w) return;
      slot.loads.delete(m.key);
      if (m.type === 'loaded') w.resolve(m);
      else if (PROVIDER_ERROR.test(m.message)) {
        // The last provider asked for could not be created: a host/config problem, not a bad model.
        w.reject(
          new ModelwatchError(ErrorCodes.configInvalid, `execution provider unavailable: ${m.message}`, {
            field: 'executionProviders',
          }),
        );
      } else
        w.reject(
          new ModelwatchError(ErrorCodes.inputInvalid, `candidate model could not be loaded: ${m.message}`, {
            field: 'candidate',
          }),
        );
      this.refresh(slot);
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    slot.inflight--;
    this.refresh(slot);
    if (m.type === 'runFailed') {
      p.reject(new ModelwatchError(ErrorCodes.badRequest, `candidate model run failed: ${m.message}`));
      return;
    }
    const outputs: ShadowTensor[] = [];
    for (const o of m.outputs) {
      const datatype = v2DatatypeOfOrt(o.ortType);
      if (datatype === undefined) {
        p.reject(
          new ModelwatchError(
            ErrorCodes.badRequest,
            `candidate output '${o.name}' has type ${o.ortType}, which has no V2 datatype`,
          ),
        );
        return;
      }
      outputs.push({ name: o.name, datatype, shape: o.dims, data: o.data });
    }
    p.resolve({ outputs, runMs: m.runMs, roundTripMs: performance.now() - p.t0, worker: slot.index });
  }

  /** Keeps the process alive only while a worker has work. */
  private refresh(slot: Slot): void {
    if (slot.inflight > 0 || slot.loads.size > 0) slot.worker.ref();
    else slot.worker.unref();
  }

  private loadInto(
    slot: Slot,
    key: string,
    source: WorkerModelSource,
    providers: string[],
  ): Promise<Extract<FromPoolWorker, { type: 'loaded' }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (slot.loads.delete(key)) {
          this.refresh(slot);
          reject(
            new ModelwatchError(
              ErrorCodes.timeout,
              `loading candidate model took longer than ${this.loadTimeoutMs} ms`,
              { retryable: true },
            ),
          );
        }
      }, this.loadTimeoutMs);
      timer.unref();
      slot.loads.set(key, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.refresh(slot);
      // Bytes are copied to each worker (structured clone); models here are small.
      const msg: ToPoolWorker = { type: 'load', key, source, providers };
      slot.worker.postMessage(msg);
    });
  }

  /**
   * Loads a candidate model into every worker. Rejects with an `input_invalid` error when ONNX Runtime
   * cannot parse it (corrupt or truncated file); the workers and the models already loaded carry on.
   */
  async load(source: ModelSource, options: LoadModelOptions = {}): Promise<ShadowModel> {
    if (this.closed) throw new ModelwatchError(ErrorCodes.internal, 'shadow pool is closed');
    if (source instanceof Uint8Array && source.byteLength === 0) {
      throw new ModelwatchError(ErrorCodes.inputInvalid, 'candidate model is empty (0 bytes)', { field: 'candidate' });
    }
    const key = options.key ?? `model-${nextKey++}`;
    const wsource: WorkerModelSource = source instanceof Uint8Array ? { bytes: source } : { path: source.path };
    const providers = [...this.providers];
    await Promise.all(this.slots.map((s) => s.ready));
    const settled = await Promise.allSettled(this.slots.map((s) => this.loadInto(s, key, wsource, providers)));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      if (!this.held.has(key)) this.unloadEverywhere(key);
      throw failed.reason instanceof ModelwatchError
        ? failed.reason
        : new ModelwatchError(
            ErrorCodes.inputInvalid,
            `candidate model could not be loaded: ${errorMessage(failed.reason)}`,
            { cause: failed.reason },
          );
    }
    const loaded = settled.map((r) => (r as PromiseFulfilledResult<Extract<FromPoolWorker, { type: 'loaded' }>>).value);
    const first = loaded[0];
    if (!first) throw new ModelwatchError(ErrorCodes.internal, 'shadow pool has no workers');
    let reverseMap: Map<string, string>;
    try {
      reverseMap = resolveInputMap(first.inputs, options.inputMap);
    } catch (err) {
      if (!this.held.has(key)) this.unloadEverywhere(key);
      throw err;
    }
    const model: ShadowModel = {
      key,
      inputs: first.inputs,
      outputs: first.outputs,
      executionProvider: first.executionProvider,
      requestedProviders: this.skipped.length > 0 ? [...this.skipped.map((s) => s.provider), ...providers] : providers,
      fallbacks: [...this.skipped, ...first.fallbacks.map(explainFallback)],
      loadMs: Math.max(...loaded.map((l) => l.loadMs)),
    };
    this.held.set(key, { model, source: wsource, providers, reverseMap });
    return model;
  }

  private unloadEverywhere(key: string): void {
    const msg: ToPoolWorker = { type: 'unload', key };
    for (const s of this.slots) s.worker.postMessage(msg);
  }

  /** Drops a model from every worker. */
  unload(model: ShadowModel | string): void {
    const key = typeof model === 'string' ? model : model.key;
    if (this.held.delete(key)) this.unloadEverywhere(key);
  }

  /**
   * Runs one batch through a loaded model on a worker. Tensors are mapped onto the model's inputs
   * (see {@link LoadModelOptions.inputMap}); a missing tensor or a datatype/shape mismatch rejects
   * with a `bad_request` error before anything is posted. With `transferInputs`, typed arrays that
   * own their buffer are moved to the worker (detached here).
   */
  async run(model: ShadowModel | string, tensors: readonly ShadowTensor[]): Promise<ShadowRunResult> {
    if (this.closed) throw new ModelwatchError(ErrorCodes.internal, 'shadow pool is closed');
    const key = typeof model === 'string' ? model : model.key;
    const held = this.held.get(key);
    if (!held) throw new ModelwatchError(ErrorCodes.notFound, `model ${key} is not loaded in the shadow pool`);
    const mapped = mapInputs(held.model.inputs, tensors, held.reverseMap);
    const slot = this.pick();
    await slot.ready;
    const feeds: OnnxFeed[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const f of mapped) {
      const { data, buffer } = transferable(f.data, this.transferInputs);
      if (buffer && !transfer.includes(buffer)) transfer.push(buffer);
      feeds.push({ ...f, data });
    }
    const id = this.nextId++;
    return new Promise<ShadowRunResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.pending.delete(id)) return;
        slot.inflight--;
        this.refresh(slot);
        reject(
          new ModelwatchError(ErrorCodes.timeout, `candidate model run took longer than ${this.runTimeoutMs} ms`, {
            retryable: true,
          }),
        );
      }, this.runTimeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer, t0: performance.now(), slot });
      slot.inflight++;
      this.refresh(slot);
      const msg: ToPoolWorker = { type: 'run', id, key, feeds };
      try {
        slot.worker.postMessage(msg, transfer);
      } catch (err) {
        this.pending.delete(id);
        clearTimeout(timer);
        slot.inflight--;
        this.refresh(slot);
        reject(new ModelwatchError(ErrorCodes.internal, `shadow worker: ${errorMessage(err)}`, { cause: err }));
      }
    });
  }

  /** The worker with the fewest batches in flight (lowest index on a tie). */
  private pick(): Slot {
    let best = this.slots[0] as Slot;
    for (const s of this.slots) if (s.inflight < best.inflight) best = s;
    return best;
  }

  /** Stops every worker; batches in flight reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new ModelwatchError(ErrorCodes.internal, 'shadow pool closed'));
    }
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.held.clear();
  }
}
