import { Matrix } from 'ml-matrix';
import { PCA } from 'ml-pca';
import { check, widthOf, type MultivariateVerdict, type Rows } from './types.js';

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
 * `StandardScaler` does), fit PCA (`ml-pca`, SVD) and keep the components that explain
 * `varianceShare` of the variance. A row's reconstruction error is the Euclidean distance between
 * its standardised values and their projection back from the kept components; a window's error is
 * the mean over its rows. Non-finite values are replaced by the reference mean of their feature
 * (0 once standardised) before both steps.
 */
export function fitReconstruction(reference: Rows, options: ReconstructionOptions = {}): ReconstructionModel {
  const p = widthOf(reference, 'reference', 2);
  const share = options.varianceShare ?? defaults.varianceShare;
  check(share > 0 && share <= 1, 'varianceShare', `must be in (0, 1], got ${share}`);
  const bandStd = options.bandStd ?? defaults.bandStd;
  check(Number.isFinite(bandStd) && bandStd >= 0, 'bandStd', `must be ≥ 0, got ${bandStd}`);
  const chunkSize = options.chunkSize ?? Math.floor(reference.length / defaults.chunks);
  check(Number.isInteger(chunkSize) && chunkSize >= 1, 'chunkSize', `must be a positive integer, got ${chunkSize}`);
  const nChunks = Math.floor(reference.length / chunkSize);
  check(
    nChunks >= 2,
    'chunkSize',
    `the reference (${reference.length} rows) holds fewer than 2 chunks of ${chunkSize}`,
  );

  const means = new Array<number>(p).fill(0);
  const counts = new Array<number>(p).fill(0);
  for (const row of reference) {
    for (let j = 0; j < p; j++) {
      const v = row[j] ?? Number.NaN;
      if (Number.isFinite(v)) {
        means[j] = (means[j] ?? 0) + v;
        counts[j] = (counts[j] ?? 0) + 1;
      }
    }
  }
  for (let j = 0; j < p; j++) means[j] = (counts[j] ?? 0) > 0 ? (means[j] ?? 0) / (counts[j] ?? 1) : 0;
  const sq = new Array<number>(p).fill(0);
  for (const row of reference) {
    for (let j = 0; j < p; j++) {
      const v = row[j] ?? Number.NaN;
      const d = (Number.isFinite(v) ? v : (means[j] ?? 0)) - (means[j] ?? 0);
      sq[j] = (sq[j] ?? 0) + d * d;
    }
  }
  const scales = sq.map((s) => {
    const sd = Math.sqrt(s / reference.length);
    return sd > 0 ? sd : 1;
  });

  const standardise = (rows: Rows): Matrix => {
    const m = new Matrix(rows.length, p);
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] ?? [];
      for (let j = 0; j < p; j++) {
        const v = row[j] ?? Number.NaN;
        m.set(i, j, Number.isFinite(v) ? (v - (means[j] ?? 0)) / (scales[j] ?? 1) : 0);
      }
    }
    return m;
  };

  const pca = new PCA(standardise(reference), { method: 'SVD', center: true, scale: false });
  const ratios = pca.getExplainedVariance();
  const k = componentsForShare(ratios, share);
  const pcaMeans = pca.toJSON().means;
  const basis = pca.getEigenvectors().subMatrix(0, p - 1, 0, k - 1); // p × k, orthonormal columns
  const projector = basis.mmul(basis.transpose()); // p × p

  const error = (rows: Rows): number => {
    widthOf(rows, 'rows');
    check(rows[0]?.length === p, 'rows', `has ${rows[0]?.length} columns, the reference has ${p}`);
    const z = standardise(rows);
    z.subRowVector(pcaMeans);
    const residual = z.clone().sub(z.mmul(projector));
    let sum = 0;
    for (let i = 0; i < residual.rows; i++) {
      let s = 0;
      for (let j = 0; j < p; j++) {
        const r = residual.get(i, j);
        s += r * r;
      }
      sum += Math.sqrt(s);
    }
    return sum / residual.rows;
  };

  const chunkErrors: number[] = [];
  for (let c = 0; c < nChunks; c++) chunkErrors.push(error(reference.slice(c * chunkSize, (c + 1) * chunkSize)));
  const mean = chunkErrors.reduce((s, e) => s + e, 0) / nChunks;
  const std = Math.sqrt(chunkErrors.reduce((s, e) => s + (e - mean) ** 2, 0) / nChunks);
  const lower = mean - bandStd * std;
  const upper = mean + bandStd * std;

  return {
    means,
    scales,
    nComponents: k,
    explainedVarianceRatio: ratios.slice(0, k),
    referenceError: error(reference),
    chunkErrors,
    chunkSize,
    lower,
    upper,
    error,
    evaluate(rows: Rows): ReconstructionResult {
      const e = error(rows);
      return { error: e, lower, upper, verdict: e < lower || e > upper ? 'drift' : 'no_drift', n: rows.length };
    },
  };
}
