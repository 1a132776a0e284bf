import { runDomainClassifier, type RunDomainClassifierOptions } from './classifier-worker.js';
import {
  domainClassifierDrift,
  resolveDomainClassifierOptions,
  type DomainClassifierOptions,
  type DomainClassifierResult,
  type FeatureImportance,
} from './domain-classifier.js';
import {
  componentDriftFlat,
  meanDistanceDriftFlat,
  mmdDriftFlat,
  type ComponentDriftOptions,
  type MeanDistanceOptions,
  type MmdOptions,
} from './embedding.js';
import { sameCols, toFlat, type FlatRows } from './flat.js';
import { checkWorkerOptions, runKernelWorker, type KernelWorkerOptions } from './kernel-worker.js';
import { fitReconstructionFlat, type ReconstructionOptions } from './reconstruction.js';
import { check, type Rows } from './types.js';

/** The multivariate and embedding drift methods. */
export const MultivariateMethods = {
  /** PCA data reconstruction error against the reference's chunk band (NannyML). */
  reconstruction: 'reconstruction',
  /** Cross-validated ROC AUC of a classifier telling reference rows from current rows. */
  domainClassifier: 'domain_classifier',
  /** Maximum mean discrepancy, RBF kernel, permutation p-value. */
  mmd: 'mmd',
  /** Share of components whose own KS test drifts. */
  componentShare: 'component_share',
  /** Distance between the mean vectors. */
  meanDistance: 'mean_distance',
} as const;

/** One of {@link MultivariateMethods}. */
export type MultivariateMethod = (typeof MultivariateMethods)[keyof typeof MultivariateMethods];

/**
 * The methods a detection window runs when a model sets none: reconstruction and the domain
 * classifier over a model's numeric features; MMD, the share of drifted components and the domain
 * classifier over each embedding feature (mean distance has no scale-free threshold, so it is opt-in).
 */
export const defaultMultivariateMethods = {
  numeric: ['reconstruction', 'domain_classifier'],
  embedding: ['mmd', 'component_share', 'domain_classifier'],
} as const satisfies Record<'numeric' | 'embedding', readonly MultivariateMethod[]>;

/** Options of each method. */
export interface MultivariateMethodOptions {
  reconstruction: ReconstructionOptions;
  domain_classifier: DomainClassifierOptions;
  mmd: MmdOptions;
  component_share: ComponentDriftOptions & { features?: readonly string[] };
  mean_distance: MeanDistanceOptions;
}

/** Method-specific part of a {@link MultivariateDriftResult}. */
export interface MultivariateDetails {
  reconstruction: {
    /** Alert band (the verdict is two-sided: below `lower` drifts too). */
    lower: number;
    upper: number;
    referenceError: number;
    componentsKept: number;
    explainedVarianceRatio: number[];
    chunkErrors: number[];
  };
  domain_classifier: {
    ciLow: number;
    ciHigh: number;
    foldAucs: number[];
    /** Every feature, most important first. */
    importance: FeatureImportance[];
    trees: number[];
    budgetExhausted: boolean;
  };
  mmd: { bandwidth: number; permutations: number };
  component_share: {
    /** Names (or indices as strings) of the drifted components. */
    drifted: string[];
    statistics: number[];
    pValues: number[];
  };
  mean_distance: { euclidean: number; cosine: number; metric: 'euclidean' | 'cosine' };
}

/** Scalar parameter values as resolved (defaults filled in), stored with each result. */
export type MultivariateParams = Record<string, number | string | boolean>;

/**
 * The result of one method on one window, in the shape the detectors store:
 * - `reconstruction`: statistic = mean reconstruction error of the window, threshold = upper band
 *   edge (`details.lower` is the lower one), p_value null.
 * - `domain_classifier`: statistic = mean cross-validated ROC AUC, threshold = the AUC threshold
 *   (drift also needs the AUC's confidence interval above 0.5), p_value null.
 * - `mmd`: statistic = unbiased MMD², p_value = permutation p-value, threshold = alpha.
 * - `component_share`: statistic = share of drifted components, threshold = the share threshold.
 * - `mean_distance`: statistic = the chosen distance between mean vectors, threshold = the distance threshold.
 */
export interface MultivariateDriftResult<M extends MultivariateMethod = MultivariateMethod> {
  method: M;
  statistic: number;
  p_value: number | null;
  threshold: number;
  drift: boolean;
  /** Rows each side contributed (after any cap). */
  n_reference: number;
  n_current: number;
  params: MultivariateParams;
  details: MultivariateDetails[M];
  duration_ms: number;
}

function classifierResult(
  r: DomainClassifierResult,
  o: DomainClassifierOptions,
  width: number,
): MultivariateDriftResult<'domain_classifier'> {
  const { features: _features, ...params } = resolveDomainClassifierOptions(o, width);
  return {
    method: 'domain_classifier',
    statistic: r.auc,
    p_value: null,
    threshold: r.threshold,
    drift: r.verdict === 'drift',
    n_reference: r.nReference,
    n_current: r.nCurrent,
    params,
    details: {
      ciLow: r.ciLow,
      ciHigh: r.ciHigh,
      foldAucs: r.foldAucs,
      importance: r.importance,
      trees: r.trees,
      budgetExhausted: r.budgetExhausted,
    },
    duration_ms: r.durationMs,
  };
}

function flatToRows(x: FlatRows): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < x.rows; i++) out.push(Array.from(x.data.subarray(i * x.cols, (i + 1) * x.cols)));
  return out;
}

/**
 * Runs `method` on flat samples in the calling thread. Prefer {@link runMultivariateDrift} (worker
 * threads) anywhere an event loop serves requests.
 */
export function computeMultivariateDriftFlat<M extends MultivariateMethod>(
  method: M,
  reference: FlatRows,
  current: FlatRows,
  options: MultivariateMethodOptions[M],
): MultivariateDriftResult<M> {
  const started = performance.now();
  const width = sameCols(reference, current);
  check(reference.rows >= 2, 'reference', `needs at least 2 rows, got ${reference.rows}`);
  check(current.rows >= 1, 'current', `needs at least 1 row, got ${current.rows}`);
  const done = <N extends MultivariateMethod>(
    r: Omit<MultivariateDriftResult<N>, 'duration_ms'>,
  ): MultivariateDriftResult<N> => ({
    ...r,
    duration_ms: performance.now() - started,
  });
  let out: MultivariateDriftResult;
  switch (method) {
    case 'reconstruction': {
      const o = options as ReconstructionOptions;
      const model = fitReconstructionFlat(reference, o);
      const r = model.evaluateFlat(current);
      out = done<'reconstruction'>({
        method: 'reconstruction',
        statistic: r.error,
        p_value: null,
        threshold: r.upper,
        drift: r.verdict === 'drift',
        n_reference: reference.rows,
        n_current: current.rows,
        params: { varianceShare: o.varianceShare ?? 0.65, chunkSize: model.chunkSize, bandStd: o.bandStd ?? 3 },
        details: {
          lower: r.lower,
          upper: r.upper,
          referenceError: model.referenceError,
          componentsKept: model.nComponents,
          explainedVarianceRatio: [...model.explainedVarianceRatio],
          chunkErrors: [...model.chunkErrors],
        },
      });
      break;
    }
    case 'domain_classifier': {
      const o = options as DomainClassifierOptions;
      out = classifierResult(domainClassifierDrift(flatToRows(reference), flatToRows(current), o), o, width);
      break;
    }
    case 'mmd': {
      const o = options as MmdOptions;
      const r = mmdDriftFlat(reference, current, o);
      out = done<'mmd'>({
        method: 'mmd',
        statistic: r.mmd2,
        p_value: r.pValue,
        threshold: r.alpha,
        drift: r.verdict === 'drift',
        n_reference: r.nReference,
        n_current: r.nCurrent,
        params: {
          maxRowsPerSide: o.maxRowsPerSide ?? 1000,
          permutations: r.permutations,
          alpha: r.alpha,
          seed: o.seed ?? 42,
          bandwidth: o.bandwidth === undefined ? 'median' : o.bandwidth,
        },
        details: { bandwidth: r.bandwidth, permutations: r.permutations },
      });
      break;
    }
    case 'component_share': {
      const o = options as MultivariateMethodOptions['component_share'];
      check(
        !o.features || o.features.length === width,
        'features',
        `has ${o.features?.length} names for ${width} columns`,
      );
      const r = componentDriftFlat(reference, current, o);
      out = done<'component_share'>({
        method: 'component_share',
        statistic: r.share,
        p_value: null,
        threshold: r.threshold,
        drift: r.verdict === 'drift',
        n_reference: reference.rows,
        n_current: current.rows,
        params: { alpha: o.alpha ?? 0.05, threshold: r.threshold },
        details: {
          drifted: r.drifted.map((j) => o.features?.[j] ?? String(j)),
          statistics: r.statistics,
          pValues: r.pValues,
        },
      });
      break;
    }
    case 'mean_distance': {
      const r = meanDistanceDriftFlat(reference, current, options as MeanDistanceOptions);
      out = done<'mean_distance'>({
        method: 'mean_distance',
        statistic: r[r.metric],
        p_value: null,
        threshold: r.threshold,
        drift: r.verdict === 'drift',
        n_reference: reference.rows,
        n_current: current.rows,
        params: { metric: r.metric, threshold: r.threshold },
        details: { euclidean: r.euclidean, cosine: r.cosine, metric: r.metric },
      });
      break;
    }
    default:
      check(false, 'method', `unknown multivariate method ${String(method)}`);
  }
  return out as MultivariateDriftResult<M>;
}

/** {@link computeMultivariateDriftFlat} on rows, in the calling thread (tests, scripts). */
export function computeMultivariateDrift<M extends MultivariateMethod>(
  method: M,
  reference: Rows,
  current: Rows,
  options: MultivariateMethodOptions[M] = {},
): MultivariateDriftResult<M> {
  return computeMultivariateDriftFlat(
    method,
    toFlat(reference, 'reference', 2),
    toFlat(current, 'current', 1),
    options,
  );
}

/** Options of {@link runMultivariateDrift}: the method's own plus the worker's. */
export type RunMultivariateOptions<M extends MultivariateMethod> = MultivariateMethodOptions[M] &
  KernelWorkerOptions &
  (M extends 'domain_classifier' ? Pick<RunDomainClassifierOptions, 'workers'> : unknown);

/**
 * Runs one multivariate drift method on a reference sample and a detection window, in worker
 * threads, and returns the stored result shape ({@link MultivariateDriftResult}). The domain
 * classifier spreads its folds over `workers` threads (capping each side first); mean distance (one
 * pass over the rows) runs in the calling thread; the others move both samples (row-major
 * `Float64Array`s, transferred, not copied) to one worker. Bad input rejects with a `bad_request`
 * {@link ModelwatchError} naming the field; `timeoutMs` (default 60 s) and `signal` stop the worker.
 */
export async function runMultivariateDrift<M extends MultivariateMethod>(
  method: M,
  reference: Rows,
  current: Rows,
  options: RunMultivariateOptions<M> = {},
): Promise<MultivariateDriftResult<M>> {
  check(Object.values(MultivariateMethods).includes(method), 'method', `unknown multivariate method ${String(method)}`);
  const { timeoutMs, signal, workerUrl, ...rest } = options as KernelWorkerOptions & Record<string, unknown>;
  checkWorkerOptions({ timeoutMs });
  if (method === 'domain_classifier') {
    const o = rest as RunDomainClassifierOptions;
    const r = await runDomainClassifier(reference, current, { ...o, timeoutMs, signal, workerUrl });
    return classifierResult(r, o, reference[0]?.length ?? 0) as MultivariateDriftResult<M>;
  }
  if (method === 'mean_distance') {
    // Column means are one pass over the rows (no sort, no fit): cheaper here than a worker's start-up.
    return computeMultivariateDrift<M>(method, reference, current, rest);
  }
  const ref = toFlat(reference, 'reference', 2);
  const cur = toFlat(current, 'current', 1);
  sameCols(ref, cur);
  return runKernelWorker<MultivariateDriftResult<M>>(
    { kind: 'method', method, reference: ref, current: cur, options: rest },
    [ref.data.buffer as ArrayBuffer, cur.data.buffer as ArrayBuffer],
    { timeoutMs, signal, workerUrl },
  );
}

/**
 * Data reconstruction drift of one window (NannyML): fits standardisation + PCA on `reference`
 * (components explaining `varianceShare`, default 65 %), sets the band mean ± `bandStd` (default 3)
 * std of the reference chunks' errors, and flags `current` when its mean reconstruction error leaves
 * the band. Runs in a worker thread. False-alarm rate ≤ 5 % with the default 10 chunks (see
 * {@link fitReconstruction}).
 */
export function reconstructionDrift(
  reference: Rows,
  current: Rows,
  options: RunMultivariateOptions<'reconstruction'> = {},
): Promise<MultivariateDriftResult<'reconstruction'>> {
  return runMultivariateDrift('reconstruction', reference, current, options);
}

/**
 * Domain-classifier drift of one window: stratified k-fold ROC AUC of gradient-boosted trees telling
 * `current` rows from `reference` rows; drift when the mean AUC exceeds `threshold` (default 0.55) and
 * its confidence interval excludes 0.5; `details.importance` ranks the features. Folds run in worker
 * threads; each side is capped at `maxRowsPerSide` (default 5000) and `timeBudgetMs` bounds the fitting.
 */
export function domainClassifierMethod(
  reference: Rows,
  current: Rows,
  options: RunMultivariateOptions<'domain_classifier'> = {},
): Promise<MultivariateDriftResult<'domain_classifier'>> {
  return runMultivariateDrift('domain_classifier', reference, current, options);
}

/**
 * MMD drift of one window: unbiased MMD² with an RBF kernel (median-distance bandwidth) on at most
 * `maxRowsPerSide` (default 1000) rows per side, permutation p-value (default 100 permutations); drift
 * when p < `alpha` (default 0.05, also its false-alarm rate). Runs in a worker thread.
 */
export function mmdMethod(
  reference: Rows,
  current: Rows,
  options: RunMultivariateOptions<'mmd'> = {},
): Promise<MultivariateDriftResult<'mmd'>> {
  return runMultivariateDrift('mmd', reference, current, options);
}

/**
 * Share-of-drifted-components drift of one window: a KS test per component (p < `alpha`, default
 * 0.05); drift when the share of drifted components exceeds `threshold` (default 0.2). Runs in a
 * worker thread.
 */
export function componentShareMethod(
  reference: Rows,
  current: Rows,
  options: RunMultivariateOptions<'component_share'> = {},
): Promise<MultivariateDriftResult<'component_share'>> {
  return runMultivariateDrift('component_share', reference, current, options);
}

/**
 * Mean-vector distance drift of one window: Euclidean (default) or cosine distance between the mean
 * vectors; drift when it exceeds `threshold` (default 0.2, in the vectors' units). Runs in the calling
 * thread: one pass over the rows.
 */
export function meanDistanceMethod(
  reference: Rows,
  current: Rows,
  options: RunMultivariateOptions<'mean_distance'> = {},
): Promise<MultivariateDriftResult<'mean_distance'>> {
  return runMultivariateDrift('mean_distance', reference, current, options);
}
