import { ks2sampAsympPValue } from '../stats/math.js';
import { column, sameCols, sampleFlatRows, selectInPlace, toFlat, type FlatRows } from './flat.js';
import { seededRng } from './random.js';
import { check, type MultivariateVerdict, type Rows } from './types.js';

/** Squared Euclidean distances of all pairs i < j of `x`, in the order (0,1), (0,2), …, (1,2), …. */
function pairwiseSq(x: FlatRows): Float64Array {
  const { data, rows: n, cols: d } = x;
  const out = new Float64Array((n * (n - 1)) / 2);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const a = i * d;
    for (let j = i + 1; j < n; j++) {
      const b = j * d;
      let s0 = 0;
      let s1 = 0;
      let t = 0;
      // Two accumulators: shorter dependency chains, same result order for every pair.
      for (; t + 1 < d; t += 2) {
        const u = (data[a + t] as number) - (data[b + t] as number);
        const v = (data[a + t + 1] as number) - (data[b + t + 1] as number);
        s0 += u * u;
        s1 += v * v;
      }
      if (t < d) {
        const u = (data[a + t] as number) - (data[b + t] as number);
        s0 += u * u;
      }
      out[k++] = s0 + s1;
    }
  }
  return out;
}

/** Median of the square roots of `sq` (reordered in place), as `numpy.median` takes it. */
function medianOfSqrt(sq: Float64Array): number {
  const len = sq.length;
  const mid = len >> 1;
  const hi = Math.sqrt(selectInPlace(sq, mid));
  if (len % 2 === 1) return hi;
  let lo = -Infinity;
  for (let i = 0; i < mid; i++) if ((sq[i] as number) > lo) lo = sq[i] as number;
  return (Math.sqrt(lo) + hi) / 2;
}

/** Median of the Euclidean distances between all pairs i < j of `rows` (`numpy.median(scipy.spatial.distance.pdist(rows))`). */
export function medianPairwiseDistance(rows: Rows): number {
  check(rows.length >= 2, 'rows', 'needs at least 2 rows for a pairwise distance');
  return medianOfSqrt(pairwiseSq(toFlat(rows, 'rows', 2)));
}

/** Options of {@link mmdDrift}. */
export interface MmdOptions {
  /** Rows drawn (seeded, without replacement) from each side at most. @default 1000 */
  maxRowsPerSide?: number;
  /** Permutations of the pooled sample for the p-value. @default 100 */
  permutations?: number;
  /** Drift when the permutation p-value is below this (also the method's false-alarm rate). @default 0.05 */
  alpha?: number;
  /** RBF bandwidth σ; @default the median pairwise distance of the pooled (capped) sample */
  bandwidth?: number;
  /** Seed of the sampling and the permutations. @default 42 */
  seed?: number;
}

/** Result of {@link mmdDrift}. */
export interface MmdResult {
  /** Unbiased MMD² estimate (can be slightly negative when there is no difference). */
  mmd2: number;
  /** Bandwidth σ of the kernel exp(−‖x − y‖² / (2σ²)). */
  bandwidth: number;
  /** (1 + #permutations with MMD² ≥ observed) / (1 + permutations). */
  pValue: number;
  permutations: number;
  alpha: number;
  verdict: MultivariateVerdict;
  nReference: number;
  nCurrent: number;
}

const mmdDefaults = { maxRowsPerSide: 1000, permutations: 100, alpha: 0.05, seed: 42 };

/**
 * Unbiased MMD² of the split of the pooled Gram matrix `k` (n × n, symmetric) into the rows `idx`
 * (size a) and the rest (size n − a). Only the a × a block is read: with row sums r (diagonal excluded)
 * and total T of the pairs i < j, S_xy = Σ_{i∈X} r_i − 2 S_xx and S_yy = T − S_xx − S_xy.
 */
function splitMmd2(
  k: Float64Array,
  n: number,
  rowSum: Float64Array,
  total: number,
  idx: Uint32Array,
  a: number,
): number {
  let sxx = 0;
  let rx = 0;
  for (let p = 0; p < a; p++) {
    const i = idx[p] as number;
    rx += rowSum[i] as number;
    const base = i * n;
    for (let q = p + 1; q < a; q++) sxx += k[base + (idx[q] as number)] as number;
  }
  const c = n - a;
  const sxy = rx - 2 * sxx;
  const syy = total - sxx - sxy;
  return (2 * sxx) / (a * (a - 1)) + (2 * syy) / (c * (c - 1)) - (2 * sxy) / (a * c);
}

/** {@link mmdDrift} on flat samples (what the worker runs). */
export function mmdDriftFlat(reference: FlatRows, current: FlatRows, options: MmdOptions = {}): MmdResult {
  sameCols(reference, current);
  check(reference.rows >= 2, 'reference', `needs at least 2 rows, got ${reference.rows}`);
  check(current.rows >= 2, 'current', `needs at least 2 rows, got ${current.rows}`);
  const cap = options.maxRowsPerSide ?? mmdDefaults.maxRowsPerSide;
  const permutations = options.permutations ?? mmdDefaults.permutations;
  const alpha = options.alpha ?? mmdDefaults.alpha;
  const seed = options.seed ?? mmdDefaults.seed;
  check(Number.isInteger(cap) && cap >= 2, 'maxRowsPerSide', `must be an integer ≥ 2, got ${cap}`);
  check(
    Number.isInteger(permutations) && permutations >= 0,
    'permutations',
    `must be an integer ≥ 0, got ${permutations}`,
  );
  check(alpha > 0 && alpha < 1, 'alpha', `must be in (0, 1), got ${alpha}`);
  const rng = seededRng(seed);
  const x = sampleFlatRows(reference, cap, rng);
  const y = sampleFlatRows(current, cap, rng);
  const m = x.rows;
  const n = m + y.rows;
  const d = x.cols;
  const pooledData = new Float64Array(n * d);
  pooledData.set(x.data, 0);
  pooledData.set(y.data, m * d);
  const sq = pairwiseSq({ data: pooledData, rows: n, cols: d });
  let bandwidth = options.bandwidth;
  if (bandwidth === undefined) bandwidth = medianOfSqrt(sq.slice());
  check(bandwidth > 0 && Number.isFinite(bandwidth), 'bandwidth', `must be > 0, got ${bandwidth} (all vectors equal?)`);
  // The Gram matrix is computed once; every permutation reads it.
  const gamma = 1 / (2 * bandwidth * bandwidth);
  const k = new Float64Array(n * n);
  const rowSum = new Float64Array(n);
  let total = 0;
  let at = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = Math.exp(-gamma * (sq[at++] as number));
      k[i * n + j] = v;
      k[j * n + i] = v;
      rowSum[i] = (rowSum[i] as number) + v;
      rowSum[j] = (rowSum[j] as number) + v;
      total += v;
    }
  }
  // Read the block of the smaller group (fewer gathers); the estimator is symmetric in the two groups.
  const a = Math.min(m, n - m);
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = m <= n - m ? i : (i + m) % n;
  const mmd2 = splitMmd2(k, n, rowSum, total, idx, a);
  let atLeast = 0;
  for (let b = 0; b < permutations; b++) {
    // Partial Fisher–Yates: the first `a` slots are a uniform draw of the smaller group.
    for (let i = 0; i < a; i++) {
      const j = i + Math.floor(rng() * (n - i));
      const t = idx[i] as number;
      idx[i] = idx[j] as number;
      idx[j] = t;
    }
    if (splitMmd2(k, n, rowSum, total, idx, a) >= mmd2) atLeast++;
  }
  const pValue = (1 + atLeast) / (1 + permutations);
  return {
    mmd2,
    bandwidth,
    pValue,
    permutations,
    alpha,
    verdict: pValue < alpha ? 'drift' : 'no_drift',
    nReference: m,
    nCurrent: n - m,
  };
}

/**
 * Maximum mean discrepancy between two samples of vectors, with an RBF kernel
 * k(x, y) = exp(−‖x − y‖² / (2σ²)) whose σ is the median pairwise distance of the pooled sample.
 * MMD² is the unbiased estimator (Gretton et al. 2012, eq. 3: diagonal terms excluded); its p-value
 * comes from `permutations` seeded random splits of the pooled rows into two groups of the same sizes,
 * all read from one precomputed Gram matrix. Each side is first capped to `maxRowsPerSide` rows (seeded).
 * Under no drift the verdict fires at most at rate `alpha` (a permutation test is exact).
 */
export function mmdDrift(reference: Rows, current: Rows, options: MmdOptions = {}): MmdResult {
  return mmdDriftFlat(toFlat(reference, 'reference', 2), toFlat(current, 'current', 2), options);
}

/** KS D of two sorted arrays of finite values. */
function ksSorted(x: Float64Array, y: Float64Array): number {
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i] as number, y[j] as number);
    while (i < x.length && x[i] === v) i++;
    while (j < y.length && y[j] === v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}

/** Finite values of `a`, sorted ascending. */
function finiteSorted(a: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = a[i] as number;
    if (Number.isFinite(v)) out[m++] = v;
  }
  return out.subarray(0, m).sort();
}

/** Two-sample Kolmogorov–Smirnov statistic D = sup |F₁ − F₂| (non-finite values ignored). */
export function ksStatistic(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return ksSorted(finiteSorted(a), finiteSorted(b));
}

/** Options of {@link componentDrift}. */
export interface ComponentDriftOptions {
  /** A component drifts when its KS p-value is below this. @default 0.05 */
  alpha?: number;
  /** The embedding drifts when the share of drifted components exceeds this. @default 0.2 */
  threshold?: number;
}

/** Result of {@link componentDrift}. */
export interface ComponentDriftResult {
  /** Share of components whose KS test rejects at `alpha`. */
  share: number;
  /** Indices of the drifted components. */
  drifted: number[];
  statistics: number[];
  pValues: number[];
  threshold: number;
  verdict: MultivariateVerdict;
}

const componentDefaults = { alpha: 0.05, threshold: 0.2 };

/** {@link componentDrift} on flat samples (what the worker runs). */
export function componentDriftFlat(
  reference: FlatRows,
  current: FlatRows,
  options: ComponentDriftOptions = {},
): ComponentDriftResult {
  const d = sameCols(reference, current);
  const alpha = options.alpha ?? componentDefaults.alpha;
  const threshold = options.threshold ?? componentDefaults.threshold;
  check(alpha > 0 && alpha < 1, 'alpha', `must be in (0, 1), got ${alpha}`);
  check(threshold >= 0 && threshold < 1, 'threshold', `must be in [0, 1), got ${threshold}`);
  const statistics: number[] = [];
  const pValues: number[] = [];
  const drifted: number[] = [];
  for (let j = 0; j < d; j++) {
    const a = finiteSorted(column(reference, j));
    const b = finiteSorted(column(current, j));
    const s = a.length > 0 && b.length > 0 ? ksSorted(a, b) : 0;
    const p = a.length > 0 && b.length > 0 ? ks2sampAsympPValue(s, a.length, b.length) : 1;
    statistics.push(s);
    pValues.push(p);
    if (p < alpha) drifted.push(j);
  }
  const share = drifted.length / d;
  return { share, drifted, statistics, pValues, threshold, verdict: share > threshold ? 'drift' : 'no_drift' };
}

/**
 * Share of drifted components (Evidently's "ratio" method): a two-sample KS test per dimension, with
 * scipy's asymptotic p-value (`ks_2samp(method='asymp')`); drift when the share of dimensions with
 * p < alpha exceeds `threshold`. Under no drift each component rejects at rate `alpha`, so the share
 * exceeds the default 0.2 only in a far binomial tail (independent components).
 */
export function componentDrift(
  reference: Rows,
  current: Rows,
  options: ComponentDriftOptions = {},
): ComponentDriftResult {
  return componentDriftFlat(toFlat(reference, 'reference', 2), toFlat(current, 'current', 2), options);
}

/** Distances between the mean vectors of two samples. */
export interface MeanDistance {
  /** ‖μ_ref − μ_cur‖₂. */
  euclidean: number;
  /** 1 − μ_ref·μ_cur / (‖μ_ref‖ ‖μ_cur‖); NaN when a mean is the zero vector. */
  cosine: number;
}

function meanOfFlat(x: FlatRows): Float64Array {
  const mu = new Float64Array(x.cols);
  for (let i = 0; i < x.rows; i++) {
    const base = i * x.cols;
    for (let j = 0; j < x.cols; j++) mu[j] = (mu[j] as number) + (x.data[base + j] as number);
  }
  for (let j = 0; j < x.cols; j++) mu[j] = (mu[j] as number) / x.rows;
  return mu;
}

/** Column means of `rows`. */
export function meanVector(rows: Rows): number[] {
  return Array.from(meanOfFlat(toFlat(rows, 'rows')));
}

/** {@link meanDistance} on flat samples. */
export function meanDistanceFlat(reference: FlatRows, current: FlatRows): MeanDistance {
  sameCols(reference, current);
  const a = meanOfFlat(reference);
  const b = meanOfFlat(current);
  let dot = 0;
  let na = 0;
  let nb = 0;
  let sq = 0;
  for (let j = 0; j < a.length; j++) {
    const x = a[j] as number;
    const y = b[j] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
    sq += (x - y) ** 2;
  }
  const denom = Math.sqrt(na) * Math.sqrt(nb);
  return { euclidean: Math.sqrt(sq), cosine: denom > 0 ? 1 - dot / denom : Number.NaN };
}

/** Euclidean and cosine distance between the mean vectors of `reference` and `current`. */
export function meanDistance(reference: Rows, current: Rows): MeanDistance {
  return meanDistanceFlat(toFlat(reference, 'reference', 2), toFlat(current, 'current', 2));
}

/** Options of {@link meanDistanceDrift}. */
export interface MeanDistanceOptions {
  /** Which distance decides. @default 'euclidean' */
  metric?: 'euclidean' | 'cosine';
  /** Drift when the chosen distance exceeds this. @default 0.2 (Evidently's default for both) */
  threshold?: number;
}

/** Result of {@link meanDistanceDrift}. */
export type MeanDistanceResult = MeanDistance & {
  metric: 'euclidean' | 'cosine';
  threshold: number;
  verdict: MultivariateVerdict;
};

/** {@link meanDistanceDrift} on flat samples. */
export function meanDistanceDriftFlat(
  reference: FlatRows,
  current: FlatRows,
  options: MeanDistanceOptions = {},
): MeanDistanceResult {
  const metric = options.metric ?? 'euclidean';
  const threshold = options.threshold ?? 0.2;
  check(metric === 'euclidean' || metric === 'cosine', 'metric', `must be euclidean or cosine, got ${String(metric)}`);
  check(threshold >= 0, 'threshold', `must be ≥ 0, got ${threshold}`);
  const d = meanDistanceFlat(reference, current);
  return { ...d, metric, threshold, verdict: d[metric] > threshold ? 'drift' : 'no_drift' };
}

/**
 * {@link meanDistance} with a verdict: drift when the chosen distance exceeds the threshold. The
 * threshold is in the units of the vectors (no false-alarm rate attaches to it: pick it per model).
 */
export function meanDistanceDrift(
  reference: Rows,
  current: Rows,
  options: MeanDistanceOptions = {},
): MeanDistanceResult {
  return meanDistanceDriftFlat(toFlat(reference, 'reference', 2), toFlat(current, 'current', 2), options);
}
