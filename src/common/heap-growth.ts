import { setFlagsFromString } from 'node:v8';
import { nodeFlagGiven } from './node-flags.js';

/** What {@link boundHeapGrowth} did. */
export type HeapGrowthBound =
  /** The process was started with `--heap-growing-percent`: left as given. */
  | 'flag_given'
  /** The percentage is 0: V8's own growing factor. */
  | 'off'
  /** The old generation now grows by at most the given percentage between full collections. */
  | 'bounded';

/** The flag that sets V8's old-generation growing factor; when given at start-up, the process keeps it. */
const GROWING_FLAG = /^--heap[-_]growing[-_]percent(=|$)/;

/** The percentage this process set last (undefined: none). */
let applied: number | undefined;
/** Who set {@link applied}: a bound (ingest) wins over a proxy's wider setting, whatever starts first. */
let appliedBy: 'bound' | 'proxy' | undefined;

/** True when the process's own command line or `NODE_OPTIONS` sets V8's heap growing factor. */
export function heapGrowingFlagGiven(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? '',
): boolean {
  return nodeFlagGiven(GROWING_FLAG, execArgv, nodeOptions);
}

/**
 * Lets V8's old generation grow by at most `percent` % of what survived the last full (mark-compact)
 * collection before the next one starts.
 *
 * Why: V8 picks its growing factor from how cheap its collections have been, up to 4× the live size on a
 * large heap. A consumer that keeps a steady ~30 MB alive (the bus queue, the batch being written) while
 * promoting short-lived data at every scavenge then carries three times its live size in garbage between
 * full collections: on a backlog of 1,000,000 one-row calls the heap peaked at 118–138 MB over ~30 MB live.
 * With 50 % it peaked at 65–79 MB and RSS ~60 MB lower, for ~6 % more process CPU over that backlog (more,
 * smaller full collections; bench/results/ingest.notes.md §6).
 *
 * V8 reads `--heap-growing-percent` each time it sets the next collection's limit, so this works on a
 * running process; the flag is process-wide (worker threads included) and stays set. A process started
 * with its own `--heap-growing-percent` is left as it is. Idempotent.
 *
 * @param percent growth allowed between full collections, % of the live size (V8 takes integers ≥ 1);
 *   0 leaves V8's own factor.
 */
export function boundHeapGrowth(percent: number): HeapGrowthBound {
  if (!(Number.isInteger(percent) && percent >= 0)) {
    throw new RangeError(`heap growing percent must be an integer ≥ 0, got ${percent}`);
  }
  if (heapGrowingFlagGiven()) return 'flag_given';
  if (percent === 0) {
    // Back to V8's dynamic factor (0 is the flag's default: "not set").
    if (applied !== undefined) setFlagsFromString('--heap-growing-percent=0');
    applied = undefined;
    appliedBy = undefined;
    return 'off';
  }
  if (applied !== percent) setFlagsFromString(`--heap-growing-percent=${percent}`);
  applied = percent;
  appliedBy = 'bound';
  return 'bounded';
}

/** What {@link widenHeapGrowth} did. */
export type HeapGrowthWidening =
  /** The process was started with `--heap-growing-percent`: left as given. */
  | 'flag_given'
  /** The percentage is 0: V8's own growing factor. */
  | 'off'
  /** A role of this process (ingest) bounded the growth: its bound stays. */
  | 'bounded_by_ingest'
  /** The old generation now grows by the given percentage between full collections. */
  | 'widened';

/**
 * Lets V8's old generation grow by `percent` % of what survived the last full collection, for a proxy
 * whose live heap is small while the request bodies it reads (Buffers, counted against the same limit)
 * come and go at a high rate.
 *
 * Why: after a full collection of a ~18 MB heap, V8 picked a growing factor of about 1.1–1.3 for the
 * sidecar, and at 1,000 req/s of 64 KB bodies the bodies' `ArrayBuffer`s reached that limit again every
 * ~100 ms: a full collection every ~100 ms for as long as the load lasted (p99 ~14 ms against ~2 ms), from
 * the first full collection on. Measured with `--trace-gc` (bench/results/sidecar.notes.md).
 *
 * A bound set by {@link boundHeapGrowth} (ingest, in the same process under `modelwatch up`) wins over
 * this, whichever role starts first. A process started with its own `--heap-growing-percent` is left as it
 * is. 0 leaves V8's own factor.
 */
export function widenHeapGrowth(percent: number): HeapGrowthWidening {
  if (!(Number.isInteger(percent) && percent >= 0)) {
    throw new RangeError(`heap growing percent must be an integer ≥ 0, got ${percent}`);
  }
  if (heapGrowingFlagGiven()) return 'flag_given';
  if (appliedBy === 'bound') return 'bounded_by_ingest';
  if (percent === 0) return 'off';
  if (applied !== percent) setFlagsFromString(`--heap-growing-percent=${percent}`);
  applied = percent;
  appliedBy = 'proxy';
  return 'widened';
}
