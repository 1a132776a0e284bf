/**
 * The numeric work of one feature, as one self-contained job that runs inline or in a worker thread: prepare
 * (filter, count, radix-sort) the sides that are not sorted yet, profile the reference, then compare the two
 * sides in one merge pass. Inputs and outputs are plain objects of typed arrays (transferable).
 */
import { ks2sampAsympPValue } from '../stats/math.js';
import {
  KS_EXACT_MAX_N,
  LOW_CARDINALITY_MAX,
  binCounts,
  compareSorted,
  prepareSide,
  summarize,
  valueCounts,
  type NumericSummary,
  type SortedSide,
} from './numeric.js';
import { ksExactPValue } from './ks-exact.js';
import { warmUpRadixSort } from './radix.js';

/** One side of a job: raw values (NaN = missing, ±Inf = non-finite) or an already sorted side. */
export type JobSide = { raw: Float64Array } | SortedSide;

/**
 * Reference numbers fixed elsewhere (a stored profile): they replace the ones computed from the values. With
 * `edges`, `std`, `min`, `max` and `distinct` all given, the reference is not profiled again.
 */
export interface FixedProfile {
  quantiles?: number[] | undefined;
  mean?: number | undefined;
  edges?: number[] | undefined;
  std?: number | undefined;
  min?: number | undefined;
  max?: number | undefined;
  distinct?: number | undefined;
}

/** Input of {@link runNumericJob}. */
export interface NumericJobInput {
  reference: JobSide;
  /** Absent: only prepare and profile the reference. */
  current?: JobSide | undefined;
  fixed?: FixedProfile | undefined;
  /** Also return the sorted arrays (to keep or store them). @default false */
  keepSorted?: boolean | undefined;
}

/** Output of {@link runNumericJob}. */
export interface NumericJobOutput {
  reference: { n: number; missing: number; nonFinite: number; summary: NumericSummary; bins: number[] };
  current?: { n: number; missing: number; nonFinite: number; bins: number[]; outOfRange: number };
  /** Present when both sides have values. */
  comparison?: {
    /** max |R·m − C·n|. */
    hnm: number;
    statistic: number;
    pValue: number;
    ksMethod: 'exact' | 'asymp';
    wasserstein: number;
    /** Per distinct value counts, when the reference has at most 5 distinct values. */
    lowCardinality?: { reference: Record<string, number>; current: Record<string, number> };
  };
  sortedReference?: Float64Array;
  sortedCurrent?: Float64Array;
}

function sideOf(s: JobSide): SortedSide {
  return 'raw' in s ? prepareSide(s.raw) : s;
}

/** Counts of values outside [lo, hi] in sorted `x`. */
function outside(x: Float64Array, lo: number, hi: number): number {
  let below = 0;
  while (below < x.length && x[below]! < lo) below++;
  let above = 0;
  while (above < x.length - below && x[x.length - 1 - above]! > hi) above++;
  return below + above;
}

/** Runs the numeric statistics of one feature (see the module comment). */
export function runNumericJob(input: NumericJobInput): NumericJobOutput {
  const ref = sideOf(input.reference);
  const f = input.fixed ?? {};
  const complete =
    f.edges !== undefined &&
    f.std !== undefined &&
    f.min !== undefined &&
    f.max !== undefined &&
    f.distinct !== undefined;
  const summary: NumericSummary = complete
    ? {
        n: ref.sorted.length,
        quantiles: f.quantiles ?? [],
        edges: f.edges!,
        mean: f.mean ?? Number.NaN,
        std: f.std!,
        min: f.min!,
        max: f.max!,
        distinct: f.distinct!,
      }
    : summarize(ref.sorted);
  if (f.edges !== undefined) summary.edges = f.edges;
  if (f.std !== undefined) summary.std = f.std;
  if (f.min !== undefined) summary.min = f.min;
  if (f.max !== undefined) summary.max = f.max;
  if (f.distinct !== undefined) summary.distinct = f.distinct;
  const out: NumericJobOutput = {
    reference: {
      n: ref.sorted.length,
      missing: ref.missing,
      nonFinite: ref.nonFinite,
      summary,
      bins: binCounts(ref.sorted, summary.edges),
    },
  };
  if (input.keepSorted === true) out.sortedReference = ref.sorted;
  if (input.current === undefined) return out;
  const cur = sideOf(input.current);
  const n = ref.sorted.length;
  const m = cur.sorted.length;
  out.current = {
    n: m,
    missing: cur.missing,
    nonFinite: cur.nonFinite,
    bins: binCounts(cur.sorted, summary.edges),
    outOfRange: n > 0 ? outside(cur.sorted, summary.min, summary.max) : 0,
  };
  if (input.keepSorted === true) out.sortedCurrent = cur.sorted;
  if (n === 0 || m === 0) return out;
  const { h, wasserstein, dFloat } = compareSorted(ref.sorted, cur.sorted);
  // SciPy's ks_2samp: with the exact p-value (up to 10,000 rows per side) D is the lattice value h / lcm(n, m)
  // (= h / (n·m) here, the same double); with the asymptotic one it is the floating-point max |R/n − C/m|.
  let ksMethod: 'exact' | 'asymp' = Math.max(n, m) > KS_EXACT_MAX_N ? 'asymp' : 'exact';
  const lattice = Math.min(1, h / (n * m));
  let statistic = ksMethod === 'exact' ? lattice : Math.min(1, dFloat);
  let pValue: number;
  if (h === 0) {
    statistic = 0;
    pValue = 1;
  } else {
    const exact = ksMethod === 'exact' ? ksExactPValue(n, m, h) : null;
    // SciPy falls back to the asymptotic p-value (keeping the lattice D) when the exact computation fails.
    if (exact === null) ksMethod = 'asymp';
    pValue = exact ?? ks2sampAsympPValue(statistic, n, m);
  }
  out.comparison = { hnm: h, statistic, pValue, ksMethod, wasserstein };
  if (summary.distinct <= LOW_CARDINALITY_MAX) {
    out.comparison.lowCardinality = {
      reference: Object.fromEntries(valueCounts(ref.sorted)),
      current: Object.fromEntries(valueCounts(cur.sorted)),
    };
  }
  return out;
}

/** Calls of the merge pass on each input in {@link warmUpNumericJob}. */
const WARM_UP_ROUNDS = 50;

/**
 * Runs the radix sort's warm-up (`warmUpRadixSort`), then {@link runNumericJob} on small inputs that take every
 * path of the merge pass (a tail on either side, the maximum gap reached with either side ahead, ties on both
 * sides, fractional and integral values) against a reference held in an `ArrayBuffer` and one in a
 * `SharedArrayBuffer` (as read from the store or the local cache), {@link WARM_UP_ROUNDS} times: a sort worker
 * calls it once at start-up, before its first job.
 *
 * Why: V8 compiles a hot loop with the type feedback gathered so far and keeps that code for later calls. A
 * worker's first merge at 1M values per side was compiled while only the loop over both sides had run: each
 * later call entered that code, left it at the first tail or at a reference of the other buffer kind, and ran
 * the rest in the interpreter, until V8 compiled the whole function again (measured: the first 20 merges of a
 * thread took about 35 ms each, then 13 ms). Here every path runs before anything is compiled (the inputs are
 * too small for V8 to compile a loop on its own), and the repeated calls make V8 compile the whole function with
 * that feedback, so the first large merge runs compiled code from its start (measured: a worker's first two
 * jobs took about 45 ms instead of 60–70, the others about 40). About 5 ms of the worker's start-up.
 */
export function warmUpNumericJob(): void {
  warmUpRadixSort();
  // Sorted; `ahead` ends above `behind`, and each side leads the other somewhere.
  const ahead = [-2.5, 1, 1, 2.5, 3, 3, 7, 8, 8, 9.5];
  const behind = [-3, 0.5, 1, 2, 3, 3, 4, 4, 5.5];
  for (let round = 0; round < WARM_UP_ROUNDS; round++)
    for (const shared of [false, true]) {
      for (const [ref, cur] of [
        [ahead, behind],
        [behind, ahead],
      ] as const) {
        const sorted = new Float64Array(
          shared ? new SharedArrayBuffer(8 * ref.length) : new ArrayBuffer(8 * ref.length),
        );
        sorted.set(ref);
        runNumericJob({
          reference: { sorted, missing: 1, nonFinite: 1 },
          current: { raw: Float64Array.from([...cur, Number.NaN, Number.POSITIVE_INFINITY]) },
          fixed: {
            quantiles: [0, 1, 1, 2, 3, 3, 4, 7, 8],
            mean: 3,
            edges: [0, 1, 2, 3, 4, 7, 8],
            std: 3,
            min: sorted[0],
            max: sorted[sorted.length - 1],
            distinct: 6,
          },
        });
      }
    }
}
