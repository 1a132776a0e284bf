import { runWorkerTask, workerEntryUrl, type WorkerTaskReply } from '../../common/worker.js';
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';

/** What a kernel worker posts back. */
export type KernelReply = WorkerTaskReply;

/** Options of one worker run. */
export interface KernelWorkerOptions {
  /** Terminate the worker and reject with a `timeout` error after this long. @default 60000 */
  timeoutMs?: number;
  /** Terminate the worker and reject with `cancelled` when this aborts. */
  signal?: AbortSignal;
  /** URL of the worker entry. @default `kernel-worker-entry` next to this module (`.ts` under tsx, `.js` built) */
  workerUrl?: URL;
}

/** Checks the run options shared by every worker-backed entry point. */
export function checkWorkerOptions(o: KernelWorkerOptions): void {
  const t = o.timeoutMs ?? 60_000;
  if (!(t > 0))
    throw new ModelwatchError(ErrorCodes.badRequest, `timeoutMs: must be > 0, got ${t}`, { field: 'timeoutMs' });
}

/**
 * Runs one task (`kernel-worker-entry.ts` reads it from `workerData`) in a fresh `worker_threads`
 * worker and resolves with its result. `transfer` lists buffers moved (not copied) to the worker.
 */
export function runKernelWorker<T>(task: object, transfer: ArrayBuffer[], o: KernelWorkerOptions = {}): Promise<T> {
  return runWorkerTask<T>(o.workerUrl ?? workerEntryUrl(import.meta.url, './kernel-worker-entry'), task, transfer, {
    what: 'multivariate drift',
    timeoutMs: o.timeoutMs ?? 60_000,
    signal: o.signal,
  });
}
