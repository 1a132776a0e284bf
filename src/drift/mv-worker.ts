import { runWorkerTask, workerEntryUrl, type WorkerTaskReply } from '../common/worker.js';
import type { GroupRows, MultivariateResult, MultivariateSettings } from './mv-detect.js';
import type { SyncMethod } from './mv-kernels.js';

/** What the worker entry receives: one group's rows, flat and row-major, and the methods to run. */
export interface KernelWorkerData {
  group: string;
  columns: string[];
  width: number;
  reference: Float64Array;
  current: Float64Array;
  methods: SyncMethod[];
  settings: MultivariateSettings;
}

/** What the worker posts back (`result`: the methods' results, in order). */
export type KernelWorkerMessage = WorkerTaskReply;

/** A worker running the in-thread kernels is stopped after this long. */
export const KERNEL_WORKER_TIMEOUT_MS = 60_000;

function flatten(rows: readonly (readonly number[])[], width: number): Float64Array {
  const out = new Float64Array(rows.length * width);
  rows.forEach((r, i) => out.set(r.length === width ? r : r.slice(0, width), i * width));
  return out;
}

/**
 * Runs the synchronous methods of one group (reconstruction, MMD, component share, mean distance) in a
 * fresh worker thread, so their CPU time (the MMD kernel matrix, the PCA fit) never blocks the event loop
 * that serves the API. Only the capped rows cross, as transferred buffers. Rejects with `timeout` after
 * {@link KERNEL_WORKER_TIMEOUT_MS}, `cancelled` when `signal` aborts, `bad_request` for bad data.
 */
export function runKernelsInWorker(
  g: GroupRows,
  methods: SyncMethod[],
  settings: MultivariateSettings,
  signal?: AbortSignal,
): Promise<MultivariateResult[]> {
  const width = g.columns.length;
  const data: KernelWorkerData = {
    group: g.group,
    columns: g.columns,
    width,
    reference: flatten(g.reference, width),
    current: flatten(g.current, width),
    methods,
    settings,
  };
  return runWorkerTask<MultivariateResult[]>(
    workerEntryUrl(import.meta.url, './mv-worker-entry'),
    data,
    [data.reference.buffer as ArrayBuffer, data.current.buffer as ArrayBuffer],
    { what: 'multivariate kernels', timeoutMs: KERNEL_WORKER_TIMEOUT_MS, signal },
  );
}
