import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { startWorker, workerEntryUrl } from '../common/worker.js';
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

/** What the worker posts back. */
export type KernelWorkerMessage =
  { ok: true; results: MultivariateResult[] } | { ok: false; message: string; code: string };

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
  if (signal?.aborted === true) {
    return Promise.reject(new ModelwatchError(ErrorCodes.cancelled, 'multivariate kernels cancelled'));
  }
  return new Promise<MultivariateResult[]>((resolve, reject) => {
    const worker = startWorker(workerEntryUrl(import.meta.url, './mv-worker-entry'), data, [
      data.reference.buffer as ArrayBuffer,
      data.current.buffer as ArrayBuffer,
    ]);
    let settled = false;
    const finish = (err: Error | undefined, results?: MultivariateResult[]): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      if (err) reject(err);
      else resolve(results ?? []);
    };
    const timer = setTimeout(
      () =>
        finish(
          new ModelwatchError(ErrorCodes.timeout, `multivariate kernels exceeded ${KERNEL_WORKER_TIMEOUT_MS} ms`, {
            retryable: true,
          }),
        ),
      KERNEL_WORKER_TIMEOUT_MS,
    );
    timer.unref();
    const onAbort = (): void => finish(new ModelwatchError(ErrorCodes.cancelled, 'multivariate kernels cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: KernelWorkerMessage) => {
      if (m.ok) finish(undefined, m.results);
      else
        finish(
          new ModelwatchError(
            m.code === ErrorCodes.badRequest ? ErrorCodes.badRequest : ErrorCodes.internal,
            m.message,
          ),
        );
    });
    worker.on('error', (err: Error) =>
      finish(new ModelwatchError(ErrorCodes.internal, `multivariate worker failed: ${err.message}`, { cause: err })),
    );
    worker.on('exit', (code) =>
      finish(new ModelwatchError(ErrorCodes.internal, `multivariate worker exited (code ${code}) without a result`)),
    );
  });
}
