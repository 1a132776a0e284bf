/**
 * The exact drift engine's pool of `worker_threads` for its numeric jobs (radix sorts and merge passes): a
 * {@link TaskPool} on `worker-entry`. Typed arrays in a job's input are transferred (their buffers become
 * unusable to the caller): pass arrays that own their buffers.
 */
import { TaskPool } from '../../common/task-pool.js';
import { workerEntryUrl } from '../../common/worker.js';
import { runNumericJob, type NumericJobInput, type NumericJobOutput } from './job.js';
import { transferablesOf } from './transfer.js';

/** Jobs with fewer values than this (both sides together) run inline: no worker start-up, no transfer. */
export const INLINE_MAX_VALUES = 200_000;

/** Jobs a worker holds at once (see `TaskPoolOptions.depth`). */
export const SORT_POOL_DEPTH = 2;

/** A fixed-size worker pool for {@link runNumericJob}. */
export class SortPool extends TaskPool<NumericJobInput, NumericJobOutput> {
  /** @param size workers. @default min(2, available parallelism) */
  constructor(size?: number) {
    super({
      entry: workerEntryUrl(import.meta.url, './worker-entry'),
      what: 'drift worker',
      transferables: transferablesOf,
      size,
      // A worker's next job waits in its port: it starts as soon as the last one ends, even while this thread
      // is busy with a query or a decode.
      depth: SORT_POOL_DEPTH,
    });
  }
}

let shared: SortPool | undefined;

/** The process-wide pool (created on first use). */
export function sharedPool(): SortPool {
  shared ??= new SortPool();
  return shared;
}

/**
 * Starts every worker of `pool` now (each runs one empty job, after its start-up warm-up), so that their start-up
 * overlaps what the caller does next rather than delaying its first jobs. Errors surface with the real jobs.
 */
export function warmSortPool(pool: SortPool = sharedPool()): void {
  for (let i = 0; i < pool.size; i++) pool.run({ reference: { raw: new Float64Array(0) } }).catch(() => undefined);
}

/** Runs a numeric job inline when small (below `inlineMax` values, both sides), else in `pool`. */
export function runJob(
  input: NumericJobInput,
  pool: SortPool | 'inline' = sharedPool(),
  inlineMax = INLINE_MAX_VALUES,
): Promise<NumericJobOutput> {
  const size = (s: NumericJobInput['reference'] | undefined): number =>
    s === undefined ? 0 : 'raw' in s ? s.raw.length : s.sorted.length;
  if (pool === 'inline' || size(input.reference) + size(input.current) < inlineMax) {
    return Promise.resolve(runNumericJob(input));
  }
  return pool.run(input);
}
