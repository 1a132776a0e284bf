// Messages between ShadowPool (main thread) and its workers (pool-worker.ts). Internal to src/shadow.
import type { OnnxFeed, OnnxValueInfo, ShadowTensorData } from './tensors.js';

/** Why a requested execution provider was not used. */
export interface ProviderFallback {
  /** The provider that was skipped (`cuda`, …). */
  provider: string;
  /** What ONNX Runtime (or the pre-check) said. */
  reason: string;
}

/** Session options a worker applies to every session it creates. */
export interface WorkerSessionOptions {
  intraOpNumThreads: number;
  interOpNumThreads: number;
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
}

/** What a worker receives as `workerData`. */
export interface PoolWorkerData {
  session: WorkerSessionOptions;
  /** ONNX Runtime's log level inside the worker. */
  logLevel: 'verbose' | 'info' | 'warning' | 'error' | 'fatal';
}

/** A model source: the serialized bytes (copied to each worker) or a file the worker reads. */
export type WorkerModelSource = { bytes: Uint8Array } | { path: string };

/** Main thread → worker. */
export type ToPoolWorker =
  | { type: 'load'; key: string; source: WorkerModelSource; providers: string[] }
  | { type: 'run'; id: number; key: string; feeds: OnnxFeed[] }
  | { type: 'unload'; key: string };

/** An output tensor as the worker returns it. */
export interface WorkerOutput {
  name: string;
  ortType: string;
  dims: number[];
  data: ShadowTensorData;
}

/** Worker → main thread. */
export type FromPoolWorker =
  | {
      type: 'loaded';
      key: string;
      inputs: OnnxValueInfo[];
      outputs: OnnxValueInfo[];
      executionProvider: string;
      fallbacks: ProviderFallback[];
      loadMs: number;
    }
  | { type: 'loadFailed'; key: string; message: string }
  | { type: 'result'; id: number; outputs: WorkerOutput[]; runMs: number }
  | { type: 'runFailed'; id: number; message: string };
