/**
 * The drift report's rules, shared by every way of computing the statistics: method choice, thresholds,
 * scores and verdicts, Benjamini–Hochberg, the dataset verdict, and the assembly of per-feature results
 * (counts, bins, KS/Wasserstein from the engine) into DESIGN §2 {@link FeatureReport}s.
 */
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import type { DriftMethod } from '../../config/schema.js';
import { benjaminiHochberg, chiSquareTest, hellinger, jensenShannon, psi } from './math.js';
import type {
  DatasetVerdict,
  DriftOverrides,
  FeatureProfile,
  FeatureReport,
  FeatureSpec,
  FeatureStats,
} from './types.js';

/** Decile probabilities of the numeric bin edges (DESIGN §3). */
export const BIN_QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] as const;

/** SciPy's `ks_2samp` switches from the exact to the asymptotic p-value above this many rows per side. */
export const KS_EXACT_MAX_N = 10_000;

/** Reference rows up to which the p-value methods (ks, chi_square) are chosen automatically (DESIGN §3). */
export const SMALL_REFERENCE_ROWS = 1000;

/** Numeric features with at most this many distinct reference values are treated like categorical ones. */
export const LOW_CARDINALITY_MAX = 5;

/** Default threshold of each method when an override names a method but no threshold. */
export const DefaultThresholds: Record<DriftMethod, number> = {
  ks: 0.05,
  chi_square: 0.05,
  wasserstein_norm: 0.1,
  jensen_shannon: 0.1,
  hellinger: 0.1,
  psi: 0.2,
};

const P_VALUE_METHODS: ReadonlySet<DriftMethod> = new Set(['ks', 'chi_square']);

/** The method and threshold of one feature: the override's, else the automatic choice (DESIGN §3). */
export function chooseMethod(
  spec: FeatureSpec,
  lowCardinality: boolean,
  refN: number,
  overrides: DriftOverrides | undefined,
): { method: DriftMethod; threshold: number } {
  const auto: DriftMethod =
    spec.kind === 'categorical' || lowCardinality
      ? refN <= SMALL_REFERENCE_ROWS
        ? 'chi_square'
        : 'jensen_shannon'
      : refN <= SMALL_REFERENCE_ROWS
        ? 'ks'
        : 'wasserstein_norm';
  const o = overrides?.features?.[spec.name] ?? overrides?.default;
  const method = o?.method ?? auto;
  if (spec.kind === 'categorical' && (method === 'ks' || method === 'wasserstein_norm')) {
    throw new ModelwatchError(
      ErrorCodes.configInvalid,
      `drift method ${method} does not apply to categorical feature ${spec.name}`,
      { field: `drift.features.${spec.name}.method` },
    );
  }
  const threshold = o?.threshold ?? (o?.method !== undefined ? DefaultThresholds[method] : DefaultThresholds[auto]);
  return { method, threshold };
}

function scoreOf(method: DriftMethod, stats: FeatureStats): number | null {
  switch (method) {
    case 'ks':
      return stats.ks?.p_value ?? null;
    case 'chi_square':
      return stats.chi_square?.p_value ?? null;
    case 'wasserstein_norm':
      return stats.wasserstein_norm ?? null;
    case 'psi':
      return stats.psi ?? null;
    case 'jensen_shannon':
      return stats.jensen_shannon ?? null;
    case 'hellinger':
      return stats.hellinger ?? null;
  }
}

function isDrifted(method: DriftMethod, score: number | null, threshold: number): boolean {
  if (score === null || Number.isNaN(score)) return false;
  return P_VALUE_METHODS.has(method) ? score < threshold : score >= threshold;
}

/** Union of two count maps in key order (numeric keys by value) with the counts of each side. */
export function alignCounts(
  ref: ReadonlyMap<string, number>,
  cur: ReadonlyMap<string, number>,
  numericKeys: boolean,
): { keys: string[]; r: number[]; c: number[] } {
  const keys = [...new Set([...ref.keys(), ...cur.keys()])];
  keys.sort(numericKeys ? (a, b) => Number(a) - Number(b) : undefined);
  return { keys, r: keys.map((k) => ref.get(k) ?? 0), c: keys.map((k) => cur.get(k) ?? 0) };
}

/** What the engine measured for one numeric feature when both sides have values. */
export interface NumericMeasures {
  ks: { statistic: number; p_value: number; method: 'exact' | 'asymp' };
  wasserstein: number;
  /** Counts per reference-decile bin. */
  refBins: number[];
  curBins: number[];
  outOfRange: number;
  /** Per-value counts when the reference has at most {@link LOW_CARDINALITY_MAX} distinct values. */
  lowCardinality?: { reference: ReadonlyMap<string, number>; current: ReadonlyMap<string, number> } | undefined;
}

/** One feature's inputs to {@link featureReport}. */
export interface FeatureInputs {
  spec: FeatureSpec;
  /** The reference profile (counts, edges, std, distinct; categories for categorical features). */
  ref: FeatureProfile;
  /** The current side's counts. */
  cur: { n: number; missing: number; non_finite: number };
  /** Numeric measures (absent when a side has no usable values). */
  numeric?: NumericMeasures | undefined;
  /** Category counts of both sides (categorical). */
  categories?: { reference: ReadonlyMap<string, number>; current: ReadonlyMap<string, number> } | undefined;
}

/** True when the reference is numeric with at most {@link LOW_CARDINALITY_MAX} distinct values. */
export function isLowCardinality(spec: FeatureSpec, ref: FeatureProfile): boolean {
  return spec.kind === 'numeric' && (ref.distinct ?? Infinity) <= LOW_CARDINALITY_MAX;
}

/** One feature's report (DESIGN §2) from its measures; `curRows` is the current sample's row count. */
export function featureReport(
  x: FeatureInputs,
  curRows: number,
  overrides: DriftOverrides | undefined,
  distributions: boolean,
): FeatureReport {
  const { spec, ref, cur } = x;
  const comparable = ref.n > 0 && cur.n > 0;
  const { method, threshold } = chooseMethod(spec, isLowCardinality(spec, ref), ref.n, overrides);
  const stats: FeatureStats = {};
  const quality: FeatureReport['quality'] = {
    missing_reference: ref.missing,
    missing_current: cur.missing,
    ...(spec.kind === 'numeric' ? { non_finite_reference: ref.non_finite, non_finite_current: cur.non_finite } : {}),
    missing_rate_current: curRows > 0 ? (cur.missing + cur.non_finite) / curRows : 0,
  };
  let distribution: FeatureReport['distribution'];
  if (comparable && spec.kind === 'numeric' && x.numeric !== undefined) {
    const nm = x.numeric;
    stats.ks = { statistic: nm.ks.statistic, p_value: nm.ks.p_value, method: nm.ks.method };
    stats.wasserstein = nm.wasserstein;
    stats.wasserstein_norm = nm.wasserstein / (ref.std !== undefined && ref.std !== 0 ? ref.std : 1);
    const rb = nm.refBins;
    const cb = nm.curBins;
    stats.psi = psi(rb, cb);
    stats.jensen_shannon = jensenShannon(rb, cb);
    stats.hellinger = hellinger(rb, cb);
    if (isLowCardinality(spec, ref) && nm.lowCardinality !== undefined) {
      const { r, c } = alignCounts(nm.lowCardinality.reference, nm.lowCardinality.current, true);
      stats.chi_square = chiSquareTest(r, c);
    } else if (method === 'chi_square') {
      stats.chi_square = chiSquareTest(rb, cb);
    }
    quality.out_of_range_current = nm.outOfRange;
    quality.out_of_range_share = cur.n > 0 ? nm.outOfRange / cur.n : 0;
    distribution = { edges: ref.edges ?? [], reference: rb, current: cb };
  } else if (comparable && spec.kind === 'categorical' && x.categories !== undefined) {
    const { keys, r, c } = alignCounts(x.categories.reference, x.categories.current, false);
    stats.chi_square = chiSquareTest(r, c);
    stats.psi = psi(r, c);
    stats.jensen_shannon = jensenShannon(r, c);
    stats.hellinger = hellinger(r, c);
    distribution = { categories: keys, reference: r, current: c };
  }
  if (spec.kind === 'categorical') {
    const seen = new Set(Object.keys(ref.categories ?? {}));
    const curCounts: ReadonlyMap<string, number> = comparable ? (x.categories?.current ?? new Map()) : new Map();
    const unseen = [...curCounts.keys()].filter((k) => !seen.has(k)).sort();
    quality.unseen_categories = unseen;
    quality.unseen_share = cur.n > 0 ? unseen.reduce((s, k) => s + (curCounts.get(k) ?? 0), 0) / cur.n : 0;
  }
  const score = scoreOf(method, stats);
  return {
    name: spec.name,
    kind: spec.kind,
    ...(spec.output === true ? { output: true } : {}),
    method,
    score,
    threshold,
    drifted: isDrifted(method, score, threshold),
    stats,
    quality,
    ...(distributions && distribution !== undefined ? { distribution } : {}),
  };
}

/**
 * Applies Benjamini–Hochberg across the p-value-scored features (when `fdr`) and returns the dataset
 * verdict: input features that could be compared vote; outputs (prediction drift) do not.
 */
export function finishReport(features: FeatureReport[], datasetShare: number, fdr: boolean): DatasetVerdict {
  if (fdr) {
    const idx = features
      .map((f, i) => (P_VALUE_METHODS.has(f.method) && f.score !== null ? i : -1))
      .filter((i) => i >= 0);
    const adjusted = benjaminiHochberg(idx.map((i) => features[i]?.score ?? 1));
    idx.forEach((fi, j) => {
      const f = features[fi];
      const q = adjusted[j];
      if (f === undefined || q === undefined) return;
      f.p_value_adjusted = q;
      f.score = q;
      f.drifted = isDrifted(f.method, q, f.threshold);
    });
  }
  const voting = features.filter((f) => f.output !== true && f.score !== null);
  const drifted = voting.filter((f) => f.drifted).length;
  const share = voting.length > 0 ? drifted / voting.length : 0;
  return {
    features: voting.length,
    drifted_features: drifted,
    share,
    share_threshold: datasetShare,
    drifted: voting.length > 0 && share >= datasetShare,
  };
}

/** Checks `datasetShare` (0..1). */
export function checkDatasetShare(datasetShare: number): void {
  if (!(datasetShare >= 0 && datasetShare <= 1)) {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'datasetShare: must be within 0..1', {
      field: 'detect.datasetShare',
    });
  }
}
