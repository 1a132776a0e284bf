import { ks2sampAsympPValue } from '../stats/math.js';
import { sampleRows, seededRng, shuffleInPlace } from './random.js';
import { check, widthOf, type MultivariateVerdict, type Rows } from './types.js';

function sqDist(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) {
    const d = (a[k] ?? 0) - (b[k] ?? 0);
    s += d * d;
  }
  return s;
}

function sameWidth(reference: Rows, current: Rows): number {
  const d = widthOf(reference, 'reference', 2);
  check(
    widthOf(current, 'current', 2) === d,
    'current',
    `has ${current[0]?.length} dimensions, the reference has ${d}`,
  );
  return d;
}

/** Median of the Euclidean distances between all pairs i < j of `rows` (`numpy.median(scipy.spatial.distance.pdist(rows))`). */
export function medianPairwiseDistance(rows: Rows): number {
  const n = rows.length;
  check(n >= 2, 'rows', 'needs at least 2 rows for a pairwise distance');
  const d = new Float64Array((n * (n - 1)) / 2);
  let k = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) d[k++] = Math.sqrt(sqDist(rows[i] ?? [], rows[j] ?? []));
  d.sort();
  const mid = d.length >> 1;
  return d.length % 2 === 1 ? (d[mid] ?? 0) : ((d[mid - 1] ?? 0) + (d[mid] ?? 0)) / 2;
}

/** Options of {@link mmdDrift}. */
export interface MmdOptions {
  /** Rows drawn (seeded, without replacement) from each side at most. @default 1000 */
  maxRowsPerSide?: number;
  /** Permutations of the pooled sample for the p-value. @default 100 */
  permutations?: number;
  /** Drift when the permutation p-value is below this. @default 0.05 */
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

/** Unbiased MMD² from the pooled kernel matrix `k` (n × n, row-major) where `inX[i]` marks the reference rows. */
function mmd2FromKernel(k: Float64Array, n: number, inX: Uint8Array, m: number): number {
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let i = 0; i < n; i++) {
    const xi = inX[i] === 1;
    const base = i * n;
    for (let j = i + 1; j < n; j++) {
      const v = k[base + j] ?? 0;
      const xj = inX[j] === 1;
      if (xi && xj) xx += v;
      else if (!xi && !xj) yy += v;
      else xy += v;
    }
  }
  const c = n - m;
  return (2 * xx) / (m * (m - 1)) + (2 * yy) / (c * (c - 1)) - (2 * xy) / (m * c);
}

/**
 * Maximum mean discrepancy between two samples of vectors, with an RBF kernel
 * k(x, y) = exp(−‖x − y‖² / (2σ²)) whose σ is the median pairwise distance of the pooled sample.
 * MMD² is the unbiased estimator (Gretton et al. 2012, eq. 3: diagonal terms excluded); its p-value
 * comes from `permutations` seeded reshuffles of the pooled rows into two groups of the same sizes.
 */
export function mmdDrift(reference: Rows, current: Rows, options: MmdOptions = {}): MmdResult {
  sameWidth(reference, current);
  const cap = options.maxRowsPerSide ?? 1000;
  const permutations = options.permutations ?? 100;
  const alpha = options.alpha ?? 0.05;
  const seed = options.seed ?? 42;
  check(Number.isInteger(cap) && cap >= 2, 'maxRowsPerSide', `must be an integer ≥ 2, got ${cap}`);
  check(
    Number.isInteger(permutations) && permutations >= 0,
    'permutations',
    `must be an integer ≥ 0, got ${permutations}`,
  );
  check(alpha > 0 && alpha < 1, 'alpha', `must be in (0, 1), got ${alpha}`);
  const rng = seededRng(seed);
  const x = sampleRows(reference, cap, rng);
  const y = sampleRows(current, cap, rng);
  const pooled = [...x, ...y];
  const bandwidth = options.bandwidth ?? medianPairwiseDistance(pooled);
  check(bandwidth > 0 && Number.isFinite(bandwidth), 'bandwidth', `must be > 0, got ${bandwidth} (all vectors equal?)`);
  const n = pooled.length;
  const m = x.length;
  const gamma = 1 / (2 * bandwidth * bandwidth);
  const k = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = Math.exp(-gamma * sqDist(pooled[i] ?? [], pooled[j] ?? []));
      k[i * n + j] = v;
      k[j * n + i] = v;
    }
  }
  const inX = new Uint8Array(n);
  inX.fill(1, 0, m);
  const mmd2 = mmd2FromKernel(k, n, inX, m);
  let atLeast = 0;
  const order = Array.from({ length: n }, (_, i) => i);
  for (let b = 0; b < permutations; b++) {
    shuffleInPlace(order, rng);
    inX.fill(0);
    for (let i = 0; i < m; i++) inX[order[i] ?? 0] = 1;
    if (mmd2FromKernel(k, n, inX, m) >= mmd2) atLeast++;
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

/** Two-sample Kolmogorov–Smirnov statistic D = sup |F₁ − F₂| (non-finite values ignored). */
export function ksStatistic(a: readonly number[], b: readonly number[]): number {
  const x = Float64Array.from(a.filter(Number.isFinite)).sort();
  const y = Float64Array.from(b.filter(Number.isFinite)).sort();
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i] ?? 0, y[j] ?? 0);
    while (i < x.length && x[i] === v) i++;
    while (j < y.length && y[j] === v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
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

/**
 * Share of drifted components (Evidently's "ratio" method): a two-sample KS test per dimension, with
 * scipy's asymptotic p-value (`ks_2samp(method='asymp')`); drift when the share of dimensions with
 * p < alpha exceeds `threshold`.
 */
export function componentDrift(
  reference: Rows,
  current: Rows,
  options: ComponentDriftOptions = {},
): ComponentDriftResult {
  const d = sameWidth(reference, current);
  const alpha = options.alpha ?? 0.05;
  const threshold = options.threshold ?? 0.2;
  check(alpha > 0 && alpha < 1, 'alpha', `must be in (0, 1), got ${alpha}`);
  check(threshold >= 0 && threshold < 1, 'threshold', `must be in [0, 1), got ${threshold}`);
  const statistics: number[] = [];
  const pValues: number[] = [];
  const drifted: number[] = [];
  for (let j = 0; j < d; j++) {
    const a = reference.map((r) => r[j] ?? Number.NaN);
    const b = current.map((r) => r[j] ?? Number.NaN);
    const s = ksStatistic(a, b);
    const p = ks2sampAsympPValue(s, a.filter(Number.isFinite).length, b.filter(Number.isFinite).length);
    statistics.push(s);
    pValues.push(p);
    if (p < alpha) drifted.push(j);
  }
  const share = drifted.length / d;
  return { share, drifted, statistics, pValues, threshold, verdict: share > threshold ? 'drift' : 'no_drift' };
}

/** Distances between the mean vectors of two samples. */
export interface MeanDistance {
  /** ‖μ_ref − μ_cur‖₂. */
  euclidean: number;
  /** 1 − μ_ref·μ_cur / (‖μ_ref‖ ‖μ_cur‖); NaN when a mean is the zero vector. */
  cosine: number;
}

/** Column means of `rows`. */
export function meanVector(rows: Rows): number[] {
  const d = rows[0]?.length ?? 0;
  const mu = new Array<number>(d).fill(0);
  for (const r of rows) for (let j = 0; j < d; j++) mu[j] = (mu[j] ?? 0) + (r[j] ?? 0);
  return mu.map((s) => s / rows.length);
}

/** Euclidean and cosine distance between the mean vectors of `reference` and `current`. */
export function meanDistance(reference: Rows, current: Rows): MeanDistance {
  sameWidth(reference, current);
  const a = meanVector(reference);
  const b = meanVector(current);
  let dot = 0;
  let na = 0;
  let nb = 0;
  let sq = 0;
  for (let j = 0; j < a.length; j++) {
    const x = a[j] ?? 0;
    const y = b[j] ?? 0;
    dot += x * y;
    na += x * x;
    nb += y * y;
    sq += (x - y) ** 2;
  }
  const denom = Math.sqrt(na) * Math.sqrt(nb);
  return { euclidean: Math.sqrt(sq), cosine: denom > 0 ? 1 - dot / denom : Number.NaN };
}

/** Options of {@link meanDistanceDrift}. */
export interface MeanDistanceOptions {
  /** Which distance decides. @default 'euclidean' */
  metric?: 'euclidean' | 'cosine';
  /** Drift when the chosen distance exceeds this. @default 0.2 (Evidently's default for both) */
  threshold?: number;
}

/** {@link meanDistance} with a verdict: drift when the chosen distance exceeds the threshold. */
export function meanDistanceDrift(
  reference: Rows,
  current: Rows,
  options: MeanDistanceOptions = {},
): MeanDistance & { metric: 'euclidean' | 'cosine'; threshold: number; verdict: MultivariateVerdict } {
  const metric = options.metric ?? 'euclidean';
  const threshold = options.threshold ?? 0.2;
  check(threshold >= 0, 'threshold', `must be ≥ 0, got ${threshold}`);
  const d = meanDistance(reference, current);
  return { ...d, metric, threshold, verdict: d[metric] > threshold ? 'drift' : 'no_drift' };
}
