import type { Worker } from 'node:worker_threads';
import { startWorker } from '../../common/worker.js';
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import {
  capSamples,
  resolveDomainClassifierOptions,
  type DomainClassifierOptions,
  type DomainClassifierResult,
  type ResolvedDomainClassifierOptions,
} from './domain-classifier.js';
import { check, widthOf, type Rows } from './types.js';

/** What the worker entry receives as `workerData`: both capped samples, row-major. */
export interface ClassifierWorkerData {
  width: number;
  reference: Float64Array;
  current: Float64Array;
  options: ResolvedDomainClassifierOptions;
}

/** What the worker posts back. */
export type ClassifierWorkerMessage =
  { ok: true; result: DomainClassifierResult } | { ok: false; message: string; code: string };

/** Options of {@link runDomainClassifier} beyond the method's own. */
export interface RunDomainClassifierOptions extends DomainClassifierOptions {
  /** Terminate the worker and reject with a `timeout` error after this long. @default 60000 */
  timeoutMs?: number;
  /** Terminate the worker and reject with `cancelled` when this aborts. */
  signal?: AbortSignal;
  /** URL of the worker entry. @default `classifier-worker-entry` next to this module (`.ts` under tsx, `.js` built) */
  workerUrl?: URL;
}

function defaultEntry(): URL {
  const here = import.meta.url;
  return new URL(here.endsWith('.ts') ? './classifier-worker-entry.ts' : './classifier-worker-entry.js', here);
}

function spawn(url: URL, data: ClassifierWorkerData, transfer: ArrayBuffer[]): Worker {
  return startWorker(url, data, transfer);
}

function flatten(rows: readonly (readonly number[])[], width: number): Float64Array {
  const out = new Float64Array(rows.length * width);
  rows.forEach((r, i) => out.set(r, i * width));
  return out;
}

/**
 * Runs {@link domainClassifierDrift} in a fresh `worker_threads` worker so the forest's CPU time does
 * not block the caller's event loop. Both sides are capped (seeded) here first, so only the capped
 * samples are transferred; the result equals the in-thread computation with the same options.
 */
export function runDomainClassifier(
  reference: Rows,
  current: Rows,
  options: RunDomainClassifierOptions = {},
): Promise<DomainClassifierResult> {
  const { timeoutMs = 60_000, signal, workerUrl, ...method } = options;
  const width = widthOf(reference, 'reference', 2);
  check(
    widthOf(current, 'current', 2) === width,
    'current',
    `has ${current[0]?.length} columns, the reference has ${width}`,
  );
  check(timeoutMs > 0, 'timeoutMs', `must be > 0, got ${timeoutMs}`);
  const resolved = resolveDomainClassifierOptions(method, width);
  const { ref, cur } = capSamples(reference, current, resolved.maxRowsPerSide, resolved.seed);
  const data: ClassifierWorkerData = {
    width,
    reference: flatten(ref, width),
    current: flatten(cur, width),
    options: resolved,
  };
  if (signal?.aborted) return Promise.reject(new ModelwatchError(ErrorCodes.cancelled, 'domain classifier cancelled'));

  return new Promise<DomainClassifierResult>((resolve, reject) => {
    const worker = spawn(workerUrl ?? defaultEntry(), data, [
      data.reference.buffer as ArrayBuffer,
      data.current.buffer as ArrayBuffer,
    ]);
    let settled = false;
    const finish = (err: Error | undefined, result?: DomainClassifierResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      if (err) reject(err);
      else resolve(result as DomainClassifierResult);
    };
    const timer = setTimeout(
      () =>
        finish(
          new ModelwatchError(ErrorCodes.timeout, `domain classifier exceeded ${timeoutMs} ms`, { retryable: true }),
        ),
      timeoutMs,
    );
    timer.unref();
    const onAbort = (): void => finish(new ModelwatchError(ErrorCodes.cancelled, 'domain classifier cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: ClassifierWorkerMessage) => {
      if (m.ok) finish(undefined, m.result);
      else
        finish(
          new ModelwatchError(
            m.code === ErrorCodes.badRequest ? ErrorCodes.badRequest : ErrorCodes.internal,
            m.message,
          ),
        );
    });
    worker.on('error', (err: Error) =>
      finish(
        new ModelwatchError(ErrorCodes.internal, `domain classifier worker failed: ${err.message}`, { cause: err }),
      ),
    );
    worker.on('exit', (code) =>
      finish(
        new ModelwatchError(ErrorCodes.internal, `domain classifier worker exited (code ${code}) without a result`),
      ),
    );
  });
}
