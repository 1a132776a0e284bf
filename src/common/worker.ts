import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { ErrorCodes, ModelwatchError } from './errors.js';

/**
 * URL of a worker entry module next to the calling module: `NAME.ts` when the caller runs from source
 * (tsx, vitest), `NAME.js` when it runs compiled from `dist/`.
 * @param callerUrl the caller's `import.meta.url`
 * @param name the entry's file name without extension, e.g. `'./pool-worker'`
 */
export function workerEntryUrl(callerUrl: string, name: string): URL {
  return new URL(`${name}${callerUrl.endsWith('.ts') ? '.ts' : '.js'}`, callerUrl);
}

/** URL of tsx's ESM `tsx/esm/api` entry (its export map's `import` condition; `require.resolve` gives the CJS one). */
function tsxEsmApiUrl(): string {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as {
    exports?: Record<string, { import?: { default?: string } | string }>;
  };
  const target = pkg.exports?.['./esm/api']?.import;
  const rel = typeof target === 'string' ? target : target?.default;
  if (rel === undefined) throw new Error('tsx does not export tsx/esm/api for import');
  return pathToFileURL(join(dirname(pkgPath), rel)).href;
}

// Registers tsx's ESM hooks inside the worker, then loads the entry: hooks registered in the parent do not
// reach a worker thread on Node 20.
const tsxBoot = [
  "const { workerData } = require('node:worker_threads');",
  'import(workerData.tsxApi)',
  '  .then((m) => { (m.register ?? m.default.register)(); return import(workerData.entry); })',
  '  .catch((err) => { setImmediate(() => { throw err; }); });',
].join('\n');

/**
 * Starts a `worker_threads` worker on `url`. A `.ts` entry (running from source) is loaded through a small
 * bootstrap that registers tsx inside the worker first; a `.js` entry (the compiled build) is loaded directly.
 * `workerData` must be an object; the bootstrap adds its own two keys (`tsxApi`, `entry`) to it.
 * `resourceLimits`, when given, bound the worker's V8 heap (e.g. a smaller young generation: less RSS).
 */
export function startWorker(
  url: URL,
  workerData: object,
  transferList: ArrayBuffer[] = [],
  resourceLimits?: ResourceLimits,
): Worker {
  const limits = resourceLimits === undefined ? {} : { resourceLimits };
  if (url.pathname.endsWith('.ts')) {
    return new Worker(tsxBoot, {
      eval: true,
      execArgv: [],
      workerData: { ...workerData, tsxApi: tsxEsmApiUrl(), entry: url.href },
      transferList,
      ...limits,
    });
  }
  return new Worker(fileURLToPath(url), { workerData, transferList, ...limits });
}

/** What a one-shot worker run by {@link runWorkerTask} posts back: its result, or the error it hit. */
export type WorkerTaskReply =
  { ok: true; result: unknown } | { ok: false; message: string; code: string; field?: string | undefined };

/** Options of {@link runWorkerTask}. */
export interface WorkerTaskOptions {
  /** What the task is, for error messages, e.g. `'multivariate drift'`. */
  what: string;
  /** Terminate the worker and reject with a retryable `timeout` error after this long, ms. */
  timeoutMs: number;
  /** Terminate the worker and reject with `cancelled` when this aborts. */
  signal?: AbortSignal | undefined;
}

/**
 * Runs one task in a fresh worker on `url` (the entry reads it from `workerData` and posts one
 * {@link WorkerTaskReply}) and resolves with its result; the worker is terminated in every outcome.
 * `transfer` lists buffers moved (not copied) to the worker. A reply with code `bad_request` rejects as
 * `bad_request` (with its field), any other failure as `internal`.
 */
export function runWorkerTask<T>(url: URL, task: object, transfer: ArrayBuffer[], o: WorkerTaskOptions): Promise<T> {
  const { what, timeoutMs, signal } = o;
  if (signal?.aborted === true) return Promise.reject(new ModelwatchError(ErrorCodes.cancelled, `${what} cancelled`));
  return new Promise<T>((resolve, reject) => {
    const worker = startWorker(url, task, transfer);
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
      () => finish(new ModelwatchError(ErrorCodes.timeout, `${what} exceeded ${timeoutMs} ms`, { retryable: true })),
      timeoutMs,
    );
    timer.unref();
    const onAbort = (): void => finish(new ModelwatchError(ErrorCodes.cancelled, `${what} cancelled`));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: WorkerTaskReply) => {
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
      finish(new ModelwatchError(ErrorCodes.internal, `${what} worker failed: ${err.message}`, { cause: err })),
    );
    worker.on('exit', (code) =>
      finish(new ModelwatchError(ErrorCodes.internal, `${what} worker exited (code ${code}) without a result`)),
    );
  });
}
