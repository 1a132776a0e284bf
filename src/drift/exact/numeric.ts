/**
 * Numeric statistics of the exact drift engine from sorted arrays: one side's profile (NumPy linear deciles,
 * mean, population std, min, max, distinct values up to 6) and the comparison of two sides in one merge pass
 * (KS D as an integer h = max |R·m − C·n|, Wasserstein distance, decile-bin counts, out-of-range count,
 * per-value counts for low-cardinality features). Pure functions on typed arrays: they run inline or in a
 * worker thread alike.
 */
import { filterSortFloat64 } from './radix.js';

/** Decile probabilities of the numeric bin edges. */
export const DECILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] as const;

/** Numeric features with at most this many distinct reference values are compared like categorical ones. */
export const LOW_CARDINALITY_MAX = 5;

/** SciPy's `ks_2samp` switches from the exact to the asymptotic p-value above this many rows per side. */
export const KS_EXACT_MAX_N = 10_000;

/** One side of a numeric feature after filtering and sorting. */
export interface SortedSide {
  /** Finite values, ascending. */
  sorted: Float64Array;
  /** NaN (NULL and absent values read as NaN). */
  missing: number;
  /** ±Inf. */
  nonFinite: number;
}

/**
 * Moves the finite values of `raw` to its front (in place), sorts them and counts NaN and ±Inf (one fused
 * filter, key-transform and histogram pass, then the radix passes). The returned `sorted` is a view of `raw`'s
 * buffer.
 */
export function prepareSide(raw: Float64Array, scratch?: Float64Array): SortedSide {
  return filterSortFloat64(raw, scratch);
}

/** Profile of a sorted numeric side (the reference's numbers the report needs). */
export interface NumericSummary {
  n: number;
  /** Deciles 0.1..0.9, NumPy's default (linear) rule; empty when n = 0. */
  quantiles: number[];
  /** Unique deciles (np.unique): the bin edges. */
  edges: number[];
  mean: number;
  /** Population standard deviation (ddof 0); 0 when min = max. */
  std: number;
  min: number;
  max: number;
  /** Distinct values counted up to 6 (6 = more than 5). */
  distinct: number;
}

/** `np.quantile(x, p)` (method 'linear') of sorted `x`. */
export function quantileLinear(x: Float64Array, p: number): number {
  const n = x.length;
  const v = (n - 1) * p;
  const lo = Math.max(0, Math.min(n - 1, Math.floor(v)));
  const hi = Math.min(n - 1, lo + 1);
  const g = v - lo;
  const a = x[lo]!;
  const b = x[hi]!;
  const d = b - a;
  // NumPy's _lerp: a + d·g, or b − d·(1 − g) from g ≥ 0.5 on.
  return g >= 0.5 ? b - d * (1 - g) : a + d * g;
}

/** Profile of sorted finite values. */
export function summarize(x: Float64Array): NumericSummary {
  const n = x.length;
  if (n === 0)
    return {
      n,
      quantiles: [],
      edges: [],
      mean: Number.NaN,
      std: Number.NaN,
      min: Number.NaN,
      max: Number.NaN,
      distinct: 0,
    };
  const quantiles = DECILES.map((p) => quantileLinear(x, p));
  const edges = quantiles.filter((v, j) => j === 0 || v !== quantiles[j - 1]);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[i]!;
  const mean = sum / n;
  const min = x[0]!;
  const max = x[n - 1]!;
  let std = 0;
  if (min !== max) {
    let ss = 0;
    let comp = 0;
    for (let i = 0; i < n; i++) {
      const d = x[i]! - mean;
      ss += d * d;
      comp += d;
    }
    // Two-pass with the correction term (Chan et al.): exact to rounding for well-scaled data.
    std = Math.sqrt(Math.max(0, (ss - (comp * comp) / n) / n));
  }
  let distinct = 1;
  for (let i = 1; i < n && distinct <= LOW_CARDINALITY_MAX; i++) if (x[i] !== x[i - 1]) distinct++;
  return { n, quantiles, edges, mean, std, min, max, distinct };
}

/** Counts per bin of sorted `x` over `edges`: bins (−inf, e0), [e0, e1), …, [ek, inf) (searchsorted right). */
export function binCounts(x: Float64Array, edges: readonly number[]): number[] {
  const out: number[] = [];
  let prev = 0;
  for (const e of edges) {
    const at = lowerBound(x, e);
    out.push(at - prev);
    prev = at;
  }
  out.push(x.length - prev);
  return out;
}

/** First index whose value is ≥ `v` (values below `v` before it). */
function lowerBound(x: Float64Array, v: number): number {
  let lo = 0;
  let hi = x.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Distinct values of sorted `x` with their counts (value text as JS prints the number). */
export function valueCounts(x: Float64Array): Map<string, number> {
  const out = new Map<string, number>();
  let i = 0;
  while (i < x.length) {
    let j = i + 1;
    while (j < x.length && x[j] === x[i]) j++;
    const k = String(x[i]! + 0);
    out.set(k, (out.get(k) ?? 0) + (j - i));
    i = j;
  }
  return out;
}

/** The merge-pass statistics of two sorted numeric sides. */
export interface NumericComparison {
  /** max |R_j·m − C_j·n| over the ends of runs of equal values; D = h / (n·m). */
  h: number;
  /** Wasserstein-1 distance (scipy.stats.wasserstein_distance). */
  wasserstein: number;
  /**
   * max |R/n − C/m| in floating point, as `ks_2samp` computes D before its exact p-value rounds it to the
   * lattice h / lcm(n, m): the statistic SciPy reports with the asymptotic p-value.
   */
  dFloat: number;
}

/**
 * KS h and Wasserstein distance of sorted `ref` (n) and `cur` (m) in one merge: at each distinct value v
 * (both sides' runs of v consumed), R and C count the values ≤ v; W adds |R/n − C/m| · (next − v), h takes
 * the maximum of |R·m − C·n| (exact integers below 2^53).
 */
export function compareSorted(ref: Float64Array, cur: Float64Array): NumericComparison {
  const n = ref.length;
  const m = cur.length;
  let i = 0;
  let j = 0;
  let h = 0;
  let w = 0;
  let prev = 0;
  let prevTerm = 0;
  let dFloat = 0;
  let started = false;
  // Three loops (both sides left, then either side's tail) with the same arithmetic at each distinct value:
  // no sentinel compare per value and one branch on the smaller side, which costs about a third less than one
  // loop over both. The values and the order of every operation are the same, so are the results, bit for bit.
  // The side to advance comes from the comparison as a number (0 or 1) and the value from a two-slot array,
  // not from a branch: on interleaved sides which one is smaller is a coin toss, and a mispredicted branch per
  // value cost more than the rest of the step (measured at 1M values per side: about a quarter less CPU per
  // merge on continuous values, the same on heavy ties). On a tie the reference's value is taken first (as a
  // tie did before), then both runs are consumed as before.
  const pick = new Float64Array(2);
  // The sizes as heap numbers (`n + 0.5 - 0.5` is n exactly below 2^52, but computed on doubles), and |R·m − C·n|
  // by a sign test, not `Math.abs` (which returns small integers as such): the products and the maximum are
  // then typed as doubles from the first call on. With small-integer type feedback (any call whose products
  // stay below 2^31, e.g. the pool's warm-up), V8 compiled them as 32-bit integers and deoptimized on the first
  // overflow of each, in each loop, at 1M values per side, and a worker ran its first merges in the
  // interpreter. The same values either way (integers below 2^53 are exact in doubles).
  const nD = n + 0.5 - 0.5;
  const mD = m + 0.5 - 0.5;
  while (i < n && j < m) {
    const a = ref[i]!;
    const b = cur[j]!;
    const t = +(a <= b);
    pick[0] = b;
    pick[1] = a;
    const v = pick[t]!;
    i += t;
    j += 1 - t;
    while (i < n && ref[i] === v) i++;
    while (j < m && cur[j] === v) j++;
    if (started) w += prevTerm * (v - prev);
    const d = i * mD - j * nD;
    const diff = d < 0 ? -d : d;
    if (diff > h) h = diff;
    prevTerm = Math.abs(i / n - j / m);
    if (prevTerm > dFloat) dFloat = prevTerm;
    prev = v;
    started = true;
  }
  while (i < n) {
    const v = ref[i]!;
    i++;
    while (i < n && ref[i] === v) i++;
    if (started) w += prevTerm * (v - prev);
    const d = i * mD - j * nD;
    const diff = d < 0 ? -d : d;
    if (diff > h) h = diff;
    prevTerm = Math.abs(i / n - j / m);
    if (prevTerm > dFloat) dFloat = prevTerm;
    prev = v;
    started = true;
  }
  while (j < m) {
    const v = cur[j]!;
    j++;
    while (j < m && cur[j] === v) j++;
    if (started) w += prevTerm * (v - prev);
    const d = i * mD - j * nD;
    const diff = d < 0 ? -d : d;
    if (diff > h) h = diff;
    prevTerm = Math.abs(i / n - j / m);
    if (prevTerm > dFloat) dFloat = prevTerm;
    prev = v;
    started = true;
  }
  return { h, wasserstein: w, dFloat };
}
