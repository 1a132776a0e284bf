/**
 * A small pool of `worker_threads` for the fleet's comparisons: each task is a batch of models (window and
 * sorted reference each), compared in the worker by {@link compareModel}; the answers are the models' drift
 * reports. Workers start on first use and stay unreferenced while idle (a CLI process exits without closing
 * the pool). The windows' arrays are transferred (consumed, as the engine's contract says); the sorted
 * references should be backed by a `SharedArrayBuffer` (shared with the worker, not copied).
 */
import { TaskPool } from '../../common/task-pool.js';
import { workerEntryUrl } from '../../common/worker.js';
import type { DriftReport } from '../stats/types.js';
import type { ModelComparison } from './compare-job.js';

/** One model's answer from a worker. */
export type BatchAnswer = { ok: true; report: DriftReport } | { ok: false; message: string; code?: string | undefined };

/** A failed comparison as a batch answer (its message and, when it has one, its error code). */
export function failedAnswer(err: unknown): BatchAnswer {
  const code = (err as { code?: unknown } | null)?.code;
  return {
    ok: false,
    message: err instanceof Error ? err.message : String(err),
    ...(typeof code === 'string' ? { code } : {}),
  };
}

/** The array buffers a batch hands over to the worker: the windows' numeric arrays (not shared memory). */
function transferables(batch: readonly ModelComparison[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const c of batch)
    for (const v of c.current.numeric.values()) if (v.buffer instanceof ArrayBuffer) out.add(v.buffer);
  return [...out];
}

/** A fixed-size pool running batches of model comparisons; answers in batch order. */
export class FleetComparePool extends TaskPool<ModelComparison[], BatchAnswer[]> {
  /** @param size workers. @default min(2, available parallelism) */
  constructor(size?: number) {
    super({
      entry: workerEntryUrl(import.meta.url, './compare-worker-entry'),
      what: 'fleet compare worker',
      transferables,
      size,
    });
  }
}

let shared: FleetComparePool | undefined;

/** The process-wide fleet comparison pool (created on first use). */
export function sharedFleetPool(): FleetComparePool {
  shared ??= new FleetComparePool();
  return shared;
}
