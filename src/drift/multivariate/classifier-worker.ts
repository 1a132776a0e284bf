import { availableParallelism } from 'node:os';
import {
  capSamples,
  combineFolds,
  foldsOfThread,
  resolveDomainClassifierOptions,
  type DomainClassifierOptions,
  type DomainClassifierResult,
  type FoldResult,
} from './domain-classifier.js';
import { checkWorkerOptions, runKernelWorker, type KernelWorkerOptions } from './kernel-worker.js';
import { check, widthOf, type Rows } from './types.js';

/** Options of {@link runDomainClassifier} beyond the method's own. */
export interface RunDomainClassifierOptions extends DomainClassifierOptions, KernelWorkerOptions {
  /**
   * Worker threads sharing the folds (each bins the capped sample itself, then fits its folds).
   * @default min(2, folds, os.availableParallelism())
   */
  workers?: number;
}

/**
 * Runs {@link domainClassifierDrift} in `workers` fresh `worker_threads` workers (the folds dealt
 * round-robin) so its CPU time does not block the caller's event loop. Both sides are capped (seeded)
 * here first, so only the capped samples are sent; the result equals the in-thread computation with
 * the same options, whatever the number of workers (except `durationMs`, and the trees kept when the
 * time budget runs out).
 */
export async function runDomainClassifier(
  reference: Rows,
  current: Rows,
  options: RunDomainClassifierOptions = {},
): Promise<DomainClassifierResult> {
  const started = performance.now();
  const { timeoutMs, signal, workerUrl, workers, ...method } = options;
  checkWorkerOptions({ timeoutMs });
  const o = resolveDomainClassifierOptions(method, widthOf(reference, 'reference', 2));
  const w = workers ?? Math.min(2, o.folds, availableParallelism());
  check(Number.isInteger(w) && w >= 1 && w <= o.folds, 'workers', `must be an integer in [1, folds], got ${w}`);
  const s = capSamples(reference, current, o);
  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) controller.abort();
  try {
    const parts = await Promise.all(
      Array.from({ length: w }, (_, t) =>
        runKernelWorker<FoldResult[]>(
          { kind: 'classifier', samples: s, options: o, folds: foldsOfThread(o.folds, w, t) },
          [],
          { timeoutMs, signal: controller.signal, workerUrl },
        ).catch((err: unknown) => {
          controller.abort(); // one failed worker stops the others
          throw err;
        }),
      ),
    );
    return combineFolds(
      parts.flat(),
      o,
      s.reference.length / s.width,
      s.current.length / s.width,
      performance.now() - started,
    );
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
