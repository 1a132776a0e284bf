import { startWorker, workerEntryUrl } from '../../common/worker.js';
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';

/** What a kernel worker posts back. */
export type KernelReply =
  { ok: true; result: unknown } | { ok: false; message: string; code: string; field?: string | undefined };

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
  const timeoutMs = o.timeoutMs ?? 60_000;
  const { signal } = o;
  if (signal?.aborted) return Promise.reject(new ModelwatchError(ErrorCodes.cancelled, 'multivariate drift cancelled'));
  return new Promise<T>((resolve, reject) => {
    const worker = startWorker(o.workerUrl ?? workerEntryUrl(import.meta.url, './kernel-worker-entry'), task, transfer);
    let settled = false;
    const finish = (err: Error | undefined, result?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      if (err) reject(err);
      else resolve(result as T);
    };
    const timer = setTimeout(
      () =>
        finish(
          new ModelwatchError(ErrorCodes.timeout, `multivariate drift exceeded ${timeoutMs} ms`, { retryable: true }),
        ),
      timeoutMs,
    );
    timer.unref();
    const onAbort = (): void => finish(new ModelwatchError(ErrorCodes.cancelled, 'multivariate drift cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: KernelReply) => {
      if (m.ok) finish(undefined, m.result);
      else
        finish(
          new ModelwatchError(
            m.code === ErrorCodes.badRequest ? ErrorCodes.badRequest : ErrorCodes.internal,
            m.message,
            {
              field: m.field,
            },
          ),
        );
    });
    worker.on('error', (err: Error) =>
      finish(
        new ModelwatchError(ErrorCodes.internal, `multivariate drift worker failed: ${err.message}`, { cause: err }),
      ),
    );
    worker.on('exit', (code) =>
      finish(
        new ModelwatchError(ErrorCodes.internal, `multivariate drift worker exited (code ${code}) without a result`),
      ),
    );
  });
}
