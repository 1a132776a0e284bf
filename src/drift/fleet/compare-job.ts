/**
 * The fleet's comparison of one model's window against its sorted reference, as a self-contained function that
 * runs on the calling thread or in a fleet worker ({@link FleetComparePool}): the exact engine's
 * `compareToReference`, with each numeric feature's job computed by {@link fastNumericJob} — the engine's
 * `runNumericJob` with SciPy's exact KS p-value from {@link ksExactPValueFast} (the same doubles, faster).
 */
import { ks2sampAsympPValue } from '../stats/math.js';
import type { DriftReport, DriftOverrides, FeatureSpec } from '../stats/types.js';
import { compareToReference, SortPool, type CurrentWindow, type SortedReference } from '../exact/index.js';
import type { NumericJobInput, NumericJobOutput } from '../exact/job.js';
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
} from '../exact/numeric.js';
import { ksExactPValueFast } from './ks-exact.js';

function sideOf(s: NumericJobInput['reference']): SortedSide {
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

/**
 * The exact engine's `runNumericJob` (src/drift/exact/job.ts), step for step, with the exact KS p-value of
 * {@link ksExactPValueFast}. The fleet equivalence tests hold the two to the same stored results.
 */
export function fastNumericJob(input: NumericJobInput): NumericJobOutput {
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
  let ksMethod: 'exact' | 'asymp' = Math.max(n, m) > KS_EXACT_MAX_N ? 'asymp' : 'exact';
  const lattice = Math.min(1, h / (n * m));
  let statistic = ksMethod === 'exact' ? lattice : Math.min(1, dFloat);
  let pValue: number;
  if (h === 0) {
    statistic = 0;
    pValue = 1;
  } else {
    const exact = ksMethod === 'exact' ? ksExactPValueFast(n, m, h) : null;
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

/** A "pool" that runs each job on the calling thread with {@link fastNumericJob} (never starts a worker). */
class InlineFastPool extends SortPool {
  constructor() {
    super(1);
  }

  override run(input: NumericJobInput): Promise<NumericJobOutput> {
    try {
      return Promise.resolve(fastNumericJob(input));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  override close(): Promise<void> {
    return Promise.resolve();
  }
}

const inlineFast = new InlineFastPool();

/** One model's comparison: what {@link compareModel} needs. */
export interface ModelComparison {
  reference: SortedReference;
  current: CurrentWindow;
  features: FeatureSpec[];
  overrides: DriftOverrides | undefined;
  datasetShare: number;
  fdr: boolean;
}

/** The drift report of one model's window against its sorted reference, on the calling thread. */
export function compareModel(c: ModelComparison): Promise<DriftReport> {
  return compareToReference({
    reference: c.reference,
    current: c.current,
    features: c.features,
    overrides: c.overrides,
    datasetShare: c.datasetShare,
    fdr: c.fdr,
    pool: inlineFast,
    inlineMaxValues: 0,
  });
}
