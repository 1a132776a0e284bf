import { EVD, Matrix } from 'ml-matrix';
import { toFlat, type FlatRows } from './flat.js';
import { check, type MultivariateVerdict, type Rows } from './types.js';

/** Options of {@link fitReconstruction}. */
export interface ReconstructionOptions {
  /**
   * Keep the fewest principal components whose cumulative explained variance ratio exceeds this share
   * (scikit-learn's `PCA(n_components=share)`); in (0, 1]. @default 0.65
   */
  varianceShare?: number;
  /**
   * Rows per reference chunk for the alert band: the reference is cut into contiguous chunks of this
   * size (a trailing partial chunk is dropped) and each chunk's error is one sample of the band. Pick
   * the typical row count of a detection window. Needs at least 2 chunks. @default ⌊reference rows / 10⌋
   */
  chunkSize?: number;
  /** Half-width of the alert band in standard deviations of the chunk errors. @default 3 */
  bandStd?: number;
}

/** The result of one window under {@link ReconstructionModel.evaluate}. */
export interface ReconstructionResult {
  /** Mean reconstruction error of the window's rows. */
  error: number;
  /** Lower and upper alert bounds (from the reference). */
  lower: number;
  upper: number;
  /** `drift` when the error leaves [lower, upper]. */
  verdict: MultivariateVerdict;
  /** Rows evaluated. */
  n: number;
}

/** A reconstruction-drift model fitted on a reference by {@link fitReconstruction}. */
export interface ReconstructionModel {
  /** Per-feature mean and standard deviation (population, ddof 0) of the reference. */
  readonly means: readonly number[];
  readonly scales: readonly number[];
  /** Components kept and the explained variance ratio of each. */
  readonly nComponents: number;
  readonly explainedVarianceRatio: readonly number[];
  /** Mean reconstruction error of the whole reference. */
  readonly referenceError: number;
  /** Mean reconstruction error of each reference chunk, and the chunk size used. */
  readonly chunkErrors: readonly number[];
  readonly chunkSize: number;
  /** Alert band: mean ± bandStd · std (ddof 0) of {@link chunkErrors}. */
  readonly lower: number;
  readonly upper: number;
  /** Mean reconstruction error of `rows` (same columns as the reference). */
  error(rows: Rows): number;
  /** Error and verdict of one window. */
  evaluate(rows: Rows): ReconstructionResult;
  /** {@link error} of a flat window. */
  errorFlat(rows: FlatRows): number;
  /** {@link evaluate} of a flat window. */
  evaluateFlat(rows: FlatRows): ReconstructionResult;
}

const defaults = { varianceShare: 0.65, bandStd: 3, chunks: 10 };

/**
 * Number of components scikit-learn keeps for a fractional `n_components`: the first index whose
 * cumulative ratio is strictly above `share`, plus one (`searchsorted(cumsum, share, side='right') + 1`).
 */
export function componentsForShare(ratios: readonly number[], share: number): number {
  let cum = 0;
  for (let i = 0; i < ratios.length; i++) {
    cum += ratios[i] ?? 0;
    if (cum > share) return i + 1;
  }
  return ratios.length;
}

/**
 * Fits NannyML's data-reconstruction drift on `reference`: standardise each feature (reference mean
 * and population standard deviation; a constant feature keeps scale 1, as scikit-learn's
 * `StandardScaler` does), fit PCA (eigen-decomposition of the standardised covariance matrix with
 * `ml-matrix`'s `EVD`, components by decreasing eigenvalue) and keep the components that explain
 * `varianceShare` of the variance. A row's reconstruction error is the Euclidean distance between its
 * standardised values and their projection back from the kept components; a window's error is the
 * mean over its rows. Non-finite values are replaced by the reference mean of their feature (0 once
 * standardised) before both steps. False-alarm rate: under no drift a window of `chunkSize` rows
 * leaves the band mean ± 3 std of c chunk errors at about the two-sided tail of
 * 3 / (√(1 + 1/c) · √(c / (c − 1))) in a Student t with c − 1 degrees of freedom if chunk errors were
 * normal (≈ 2.4 % for the default 10 chunks); measured on unchanged 5-feature data, 100-row windows:
 * 4.5 % with 10 chunks, 0.75 % with 50 chunks (400 seeds each). State it as ≤ 5 % with 10 chunks;
 * more reference chunks tighten it.
 */
export function fitReconstruction(reference: Rows, options: ReconstructionOptions = {}): ReconstructionModel {
  return fitReconstructionFlat(toFlat(reference, 'reference', 2), options);
}

/** {@link fitReconstruction} on a flat reference (what the worker runs). */
export function fitReconstructionFlat(reference: FlatRows, options: ReconstructionOptions = {}): ReconstructionModel {
  const { rows: nRef, cols: p, data: ref } = reference;
  check(nRef >= 2, 'reference', `needs at least 2 rows, got ${nRef}`);
  const share = options.varianceShare ?? defaults.varianceShare;
  check(share > 0 && share <= 1, 'varianceShare', `must be in (0, 1], got ${share}`);
  const bandStd = options.bandStd ?? defaults.bandStd;
  check(Number.isFinite(bandStd) && bandStd >= 0, 'bandStd', `must be ≥ 0, got ${bandStd}`);
  const chunkSize = options.chunkSize ?? Math.floor(nRef / defaults.chunks);
  check(Number.isInteger(chunkSize) && chunkSize >= 1, 'chunkSize', `must be a positive integer, got ${chunkSize}`);
  const nChunks = Math.floor(nRef / chunkSize);
  check(nChunks >= 2, 'chunkSize', `the reference (${nRef} rows) holds fewer than 2 chunks of ${chunkSize}`);

  const means = new Float64Array(p);
  const counts = new Float64Array(p);
  for (let i = 0; i < nRef; i++) {
    for (let j = 0; j < p; j++) {
      const v = ref[i * p + j] as number;
      if (Number.isFinite(v)) {
        means[j] = (means[j] as number) + v;
        counts[j] = (counts[j] as number) + 1;
      }
    }
  }
  for (let j = 0; j < p; j++) means[j] = (counts[j] as number) > 0 ? (means[j] as number) / (counts[j] as number) : 0;
  const sq = new Float64Array(p);
  for (let i = 0; i < nRef; i++) {
    for (let j = 0; j < p; j++) {
      const v = ref[i * p + j] as number;
      const d = Number.isFinite(v) ? v - (means[j] as number) : 0;
      sq[j] = (sq[j] as number) + d * d;
    }
  }
  const scales = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    const sd = Math.sqrt((sq[j] as number) / nRef);
    scales[j] = sd > 0 ? sd : 1;
  }

  /** Standardised copy of `x` (non-finite → 0). */
  const standardise = (x: FlatRows): Float64Array => {
    const z = new Float64Array(x.rows * p);
    for (let i = 0; i < x.rows; i++) {
      for (let j = 0; j < p; j++) {
        const v = x.data[i * p + j] as number;
        z[i * p + j] = Number.isFinite(v) ? (v - (means[j] as number)) / (scales[j] as number) : 0;
      }
    }
    return z;
  };

  const zRef = standardise(reference);
  // PCA centres the standardised data once more (its mean is 0 up to rounding), as scikit-learn does.
  const centre = new Float64Array(p);
  for (let i = 0; i < nRef; i++)
    for (let j = 0; j < p; j++) centre[j] = (centre[j] as number) + (zRef[i * p + j] as number);
  for (let j = 0; j < p; j++) centre[j] = (centre[j] as number) / nRef;
  const cov = new Float64Array(p * p);
  const row = new Float64Array(p);
  for (let i = 0; i < nRef; i++) {
    for (let j = 0; j < p; j++) row[j] = (zRef[i * p + j] as number) - (centre[j] as number);
    for (let a = 0; a < p; a++) {
      const ra = row[a] as number;
      const base = a * p;
      for (let b = a; b < p; b++) cov[base + b] = (cov[base + b] as number) + ra * (row[b] as number);
    }
  }
  const covM = new Matrix(p, p);
  for (let a = 0; a < p; a++) {
    for (let b = a; b < p; b++) {
      const v = (cov[a * p + b] as number) / (nRef - 1);
      covM.set(a, b, v);
      covM.set(b, a, v);
    }
  }
  const evd = new EVD(covM, { assumeSymmetric: true });
  const eig = evd.realEigenvalues.map((v) => Math.max(v, 0));
  const order = eig.map((_, i) => i).sort((a, b) => (eig[b] as number) - (eig[a] as number));
  const totalVar = eig.reduce((s, v) => s + v, 0);
  const ratios = order.map((i) => (totalVar > 0 ? (eig[i] as number) / totalVar : 0));
  const k = componentsForShare(ratios, share);
  // ‖(I − V_k V_kᵀ) z‖² = Σ over the discarded components of (v_c · z)² (orthonormal eigenvectors), or
  // ‖z‖² − Σ over the kept ones: whichever needs fewer dot products (with 384-d embeddings the kept
  // set can be most of them). The residual is a sizeable share of the variance, so the subtraction
  // loses nothing that matters.
  const useKept = k <= p - k;
  const first = useKept ? 0 : k;
  const count = useKept ? k : p - k;
  const vectors = evd.eigenvectorMatrix;
  const basis = new Float64Array(count * p); // row-major: one component per row
  for (let c = 0; c < count; c++) {
    for (let j = 0; j < p; j++) basis[c * p + j] = vectors.get(j, order[first + c] as number);
  }

  /** Reconstruction error of each row of `x`. */
  const rowErrors = (x: FlatRows): Float64Array => {
    check(x.cols === p, 'rows', `has ${x.cols} columns, the reference has ${p}`);
    check(x.rows >= 1, 'rows', 'needs at least 1 row');
    const z = standardise(x);
    const out = new Float64Array(x.rows);
    for (let i = 0; i < x.rows; i++) {
      const base = i * p;
      let norm2 = 0;
      for (let j = 0; j < p; j++) {
        const v = (z[base + j] as number) - (centre[j] as number);
        row[j] = v;
        norm2 += v * v;
      }
      let proj = 0;
      for (let c = 0; c < count; c++) {
        let s = 0;
        const cb = c * p;
        for (let j = 0; j < p; j++) s += (basis[cb + j] as number) * (row[j] as number);
        proj += s * s;
      }
      out[i] = Math.sqrt(Math.max(useKept ? norm2 - proj : proj, 0));
    }
    return out;
  };
  const meanOf = (a: Float64Array, from: number, to: number): number => {
    let s = 0;
    for (let i = from; i < to; i++) s += a[i] as number;
    return s / (to - from);
  };
  const errorFlat = (x: FlatRows): number => meanOf(rowErrors(x), 0, x.rows);

  const refErrors = rowErrors(reference);
  const chunkErrors: number[] = [];
  for (let c = 0; c < nChunks; c++) chunkErrors.push(meanOf(refErrors, c * chunkSize, (c + 1) * chunkSize));
  const mean = chunkErrors.reduce((s, e) => s + e, 0) / nChunks;
  const std = Math.sqrt(chunkErrors.reduce((s, e) => s + (e - mean) ** 2, 0) / nChunks);
  const lower = mean - bandStd * std;
  const upper = mean + bandStd * std;
  const evaluateFlat = (x: FlatRows): ReconstructionResult => {
    const e = errorFlat(x);
    return { error: e, lower, upper, verdict: e < lower || e > upper ? 'drift' : 'no_drift', n: x.rows };
  };

  return {
    means: Array.from(means),
    scales: Array.from(scales),
    nComponents: k,
    explainedVarianceRatio: ratios.slice(0, k),
    referenceError: meanOf(refErrors, 0, nRef),
    chunkErrors,
    chunkSize,
    lower,
    upper,
    error: (rows: Rows) => errorFlat(toFlat(rows, 'rows')),
    errorFlat,
    evaluate: (rows: Rows) => evaluateFlat(toFlat(rows, 'rows')),
    evaluateFlat,
  };
}
