/**
 * Comparison kernels of the shadow runner: pure functions over production and candidate outputs.
 * Quantiles are the linear-interpolation kind (type 7, NumPy's default) so they match the fixtures.
 */
import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { mulberry32 } from './random.js';

/** A label as stored or as a model emits it. */
export type Label = string | number | bigint;

/** Something indexable holding labels: an array, or a typed array of class indices. */
export type Labels = ArrayLike<Label>;

/** p50/p95/p99/max of a set of values (all 0 when empty). */
export interface Distribution {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

function fail(message: string, field?: string): ModelwatchError {
  return new ModelwatchError(ErrorCodes.badRequest, message, field === undefined ? {} : { field });
}

function sameLength(a: ArrayLike<unknown>, b: ArrayLike<unknown>, what: string): void {
  if (a.length !== b.length) throw fail(`${what}: production has ${a.length} rows, candidate ${b.length}`);
}

/** Type-7 quantile (linear interpolation between order statistics) of an ascending array. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const a = sorted[lo] as number;
  const b = sorted[Math.min(n - 1, lo + 1)] as number;
  return a + (h - lo) * (b - a);
}

/** Summarizes values (copied and sorted; the input is left alone). */
export function summarize(values: ArrayLike<number>): Distribution {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i] as number;
  return {
    count: n,
    p50: quantileSorted(sorted, 0.5),
    p95: quantileSorted(sorted, 0.95),
    p99: quantileSorted(sorted, 0.99),
    max: n === 0 ? 0 : (sorted[n - 1] as number),
    mean: n === 0 ? 0 : sum / n,
  };
}

/** Agreement within one segment value. */
export interface SegmentAgreement {
  value: string;
  rows: number;
  agreements: number;
  agreement: number;
}

/** Options of {@link compareClassification}. */
export interface CompareClassificationOptions {
  /**
   * Per-row segment values by segment name (e.g. `version`, a categorical feature, a drifted-feature
   * bin), each as long as the labels; `null` rows are left out of that segment's breakdown. @default {}
   */
  segments?: Record<string, readonly (string | null)[]>;
}

/** How often production and candidate predict the same class, and how they differ. */
export interface ClassificationComparison {
  rows: number;
  agreements: number;
  /** agreements / rows (1 when there are no rows). */
  agreement: number;
  /** Every class seen on either side, numeric labels in numeric order. */
  classes: string[];
  /** `flipMatrix[i][j]`: rows production labelled `classes[i]` and the candidate `classes[j]`. */
  flipMatrix: number[][];
  /** The off-diagonal cells that are not zero, most frequent first. */
  flips: { from: string; to: string; count: number }[];
  /** Agreement per value of each segment, lowest agreement first. */
  segments: Record<string, SegmentAgreement[]>;
}

function labelKey(v: Label | undefined): string {
  return typeof v === 'string' ? v : String(v);
}

function classOrder(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (a.trim() !== '' && b.trim() !== '' && Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Agreement rate, class-flip matrix and agreement per segment of two label vectors. */
export function compareClassification(
  production: Labels,
  candidate: Labels,
  options: CompareClassificationOptions = {},
): ClassificationComparison {
  sameLength(production, candidate, 'compareClassification');
  const n = production.length;
  const p = new Array<string>(n);
  const c = new Array<string>(n);
  const seen = new Set<string>();
  let agreements = 0;
  for (let i = 0; i < n; i++) {
    const a = labelKey(production[i]);
    const b = labelKey(candidate[i]);
    p[i] = a;
    c[i] = b;
    seen.add(a);
    seen.add(b);
    if (a === b) agreements++;
  }
  const classes = [...seen].sort(classOrder);
  const index = new Map(classes.map((k, i) => [k, i]));
  const flipMatrix = classes.map(() => new Array<number>(classes.length).fill(0));
  for (let i = 0; i < n; i++) {
    const row = flipMatrix[index.get(p[i] as string) as number] as number[];
    const j = index.get(c[i] as string) as number;
    row[j] = (row[j] as number) + 1;
  }
  const flips: ClassificationComparison['flips'] = [];
  flipMatrix.forEach((row, i) =>
    row.forEach((count, j) => {
      if (i !== j && count > 0) flips.push({ from: classes[i] as string, to: classes[j] as string, count });
    }),
  );
  flips.sort((x, y) => y.count - x.count);
  const segments: Record<string, SegmentAgreement[]> = {};
  for (const [name, values] of Object.entries(options.segments ?? {})) {
    if (values.length !== n)
      throw fail(`segment ${name} has ${values.length} values for ${n} rows`, `segments.${name}`);
    const acc = new Map<string, { rows: number; agreements: number }>();
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === null || v === undefined) continue;
      let s = acc.get(v);
      if (!s) acc.set(v, (s = { rows: 0, agreements: 0 }));
      s.rows++;
      if (p[i] === c[i]) s.agreements++;
    }
    segments[name] = [...acc]
      .map(([value, s]) => ({ value, rows: s.rows, agreements: s.agreements, agreement: s.agreements / s.rows }))
      .sort((x, y) => x.agreement - y.agreement || y.rows - x.rows || classOrder(x.value, y.value));
  }
  return { rows: n, agreements, agreement: n === 0 ? 1 : agreements / n, classes, flipMatrix, flips, segments };
}

/** Distribution of the differences between production and candidate scores. */
export interface ScoreDifferences {
  rows: number;
  /** |candidate − production|. */
  absolute: Distribution;
  /** |candidate − production| / |production|, over rows where production is not 0. */
  relative: Distribution;
  /** Rows left out of `relative` because production was 0. */
  relativeExcluded: number;
  /** Pairs left out of both because either side was NaN or infinite. */
  nonFinite: number;
}

/**
 * Absolute and relative differences of paired scores (a regression output, a class probability, or
 * every element of a probability matrix flattened in the same order on both sides).
 */
export function compareScores(production: ArrayLike<number>, candidate: ArrayLike<number>): ScoreDifferences {
  sameLength(production, candidate, 'compareScores');
  const n = production.length;
  const abs = new Float64Array(n);
  const rel = new Float64Array(n);
  let na = 0;
  let nr = 0;
  let nonFinite = 0;
  let excluded = 0;
  for (let i = 0; i < n; i++) {
    const a = production[i] as number;
    const b = candidate[i] as number;
    if (!Number.isFinite(a) || !Number.isFinite(b)) {
      nonFinite++;
      continue;
    }
    const d = Math.abs(b - a);
    abs[na++] = d;
    if (a === 0) excluded++;
    else rel[nr++] = d / Math.abs(a);
  }
  return {
    rows: n,
    absolute: summarize(abs.subarray(0, na)),
    relative: summarize(rel.subarray(0, nr)),
    relativeExcluded: excluded,
    nonFinite,
  };
}

/** McNemar's exact test on the discordant pairs of a paired 2×2 table. */
export interface McNemarResult {
  /** Rows production got right and the candidate wrong. */
  b: number;
  /** Rows production got wrong and the candidate right. */
  c: number;
  /** min(b, c). */
  statistic: number;
  /** Two-sided p-value. */
  pValue: number;
}

/** log(C(n, k) · 2^-n). */
function logBinomHalf(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log((n - k + i) / i);
  return s + n * Math.log(0.5);
}

/**
 * McNemar's exact test: under H0 the discordant pairs split b ~ Binomial(b + c, 1/2); the two-sided
 * p-value is min(1, 2·P(X ≤ min(b, c))), as statsmodels `mcnemar(exact=True)` and
 * `scipy.stats.binomtest(b, b + c, 0.5)` compute it. 1 when there are no discordant pairs.
 */
export function mcnemarExact(b: number, c: number): McNemarResult {
  for (const [k, v] of [
    ['b', b],
    ['c', c],
  ] as const) {
    if (!(Number.isSafeInteger(v) && v >= 0)) throw fail(`McNemar ${k} must be a count, got ${v}`, k);
  }
  const n = b + c;
  const k = Math.min(b, c);
  if (n === 0 || b === c) return { b, c, statistic: k, pValue: 1 };
  // Sum the lower tail from its largest term (X = k, since k < n/2) downwards, in ratios of
  // consecutive terms, so nothing underflows until the tail itself is below double range.
  let sum = 1;
  let term = 1;
  for (let i = k; i >= 1; i--) {
    term *= i / (n - i + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  const logTail = logBinomHalf(n, k) + Math.log(sum);
  return { b, c, statistic: k, pValue: Math.min(1, 2 * Math.exp(logTail)) };
}

/** Accuracy of production and candidate on labelled rows, with McNemar's exact test. */
export interface ClassificationPerformance {
  rows: number;
  production: { accuracy: number };
  candidate: { accuracy: number };
  /** `[[both right, production only], [candidate only, both wrong]]`. */
  table: [[number, number], [number, number]];
  mcnemar: McNemarResult;
}

/** Measured accuracy of both models against the true labels, and whether they differ significantly. */
export function classificationPerformance(
  truth: Labels,
  production: Labels,
  candidate: Labels,
): ClassificationPerformance {
  sameLength(production, candidate, 'classificationPerformance');
  sameLength(truth, production, 'classificationPerformance (labels)');
  let both = 0;
  let prodOnly = 0;
  let candOnly = 0;
  let neither = 0;
  for (let i = 0; i < truth.length; i++) {
    const t = labelKey(truth[i]);
    const pr = labelKey(production[i]) === t;
    const cr = labelKey(candidate[i]) === t;
    if (pr && cr) both++;
    else if (pr) prodOnly++;
    else if (cr) candOnly++;
    else neither++;
  }
  const n = truth.length;
  return {
    rows: n,
    production: { accuracy: n === 0 ? 0 : (both + prodOnly) / n },
    candidate: { accuracy: n === 0 ? 0 : (both + candOnly) / n },
    table: [
      [both, prodOnly],
      [candOnly, neither],
    ],
    mcnemar: mcnemarExact(prodOnly, candOnly),
  };
}

/** Regression metrics the bootstrap can compare (lower is better for all). */
export const RegressionMetrics = ['mae', 'mse', 'rmse'] as const;
/** One of {@link RegressionMetrics}. */
export type RegressionMetric = (typeof RegressionMetrics)[number];

/** Options of {@link pairedBootstrap}. */
export interface PairedBootstrapOptions {
  /** The metric compared. @default 'mae' */
  metric?: RegressionMetric;
  /** Number of resamples. @default 2000 */
  resamples?: number;
  /** Two-sided confidence level of the percentile interval. @default 0.95 */
  confidence?: number;
  /** Seed of the resampling (mulberry32), so a run is reproducible. @default 1 */
  seed?: number;
}

/** A paired bootstrap percentile interval of `metric(candidate) − metric(production)`. */
export interface PairedBootstrapResult {
  metric: RegressionMetric;
  rows: number;
  production: number;
  candidate: number;
  /** candidate − production on all rows (positive: the candidate errs more). */
  difference: number;
  low: number;
  high: number;
  confidence: number;
  resamples: number;
}

const bootstrapDefaults = {
  metric: 'mae',
  resamples: 2000,
  confidence: 0.95,
  seed: 1,
} satisfies Required<PairedBootstrapOptions>;

/**
 * Paired bootstrap (rows resampled with replacement, the same rows for both models) of the
 * difference of a regression metric, with a percentile interval (type-7 quantiles). Index i of
 * resample r is `floor(u · n)` for the (r·n + i)-th draw u of mulberry32(`seed`). Costs
 * resamples × rows steps on the calling thread; cap the rows for large runs.
 */
export function pairedBootstrap(
  truth: ArrayLike<number>,
  production: ArrayLike<number>,
  candidate: ArrayLike<number>,
  options: PairedBootstrapOptions = {},
): PairedBootstrapResult {
  const o = { ...bootstrapDefaults, ...options };
  sameLength(production, candidate, 'pairedBootstrap');
  sameLength(truth, production, 'pairedBootstrap (labels)');
  if (!(RegressionMetrics as readonly string[]).includes(o.metric))
    throw fail(`unknown regression metric ${o.metric}`, 'metric');
  if (!(Number.isSafeInteger(o.resamples) && o.resamples >= 1))
    throw fail(`resamples must be a positive integer, got ${o.resamples}`, 'resamples');
  if (!(o.confidence > 0 && o.confidence < 1))
    throw fail(`confidence must be in (0, 1), got ${o.confidence}`, 'confidence');
  const n = truth.length;
  const squared = o.metric !== 'mae';
  const ep = new Float64Array(n);
  const ec = new Float64Array(n);
  let sp = 0;
  let sc = 0;
  for (let i = 0; i < n; i++) {
    const dp = (production[i] as number) - (truth[i] as number);
    const dc = (candidate[i] as number) - (truth[i] as number);
    ep[i] = squared ? dp * dp : Math.abs(dp);
    ec[i] = squared ? dc * dc : Math.abs(dc);
    sp += ep[i] as number;
    sc += ec[i] as number;
  }
  const finish = (sum: number): number => (n === 0 ? 0 : o.metric === 'rmse' ? Math.sqrt(sum / n) : sum / n);
  const prodMetric = finish(sp);
  const candMetric = finish(sc);
  if (n === 0) {
    return {
      metric: o.metric,
      rows: 0,
      production: 0,
      candidate: 0,
      difference: 0,
      low: 0,
      high: 0,
      confidence: o.confidence,
      resamples: 0,
    };
  }
  const rng = mulberry32(o.seed);
  const deltas = new Float64Array(o.resamples);
  for (let r = 0; r < o.resamples; r++) {
    let a = 0;
    let b = 0;
    for (let i = 0; i < n; i++) {
      const j = Math.floor(rng() * n);
      a += ep[j] as number;
      b += ec[j] as number;
    }
    deltas[r] = finish(b) - finish(a);
  }
  deltas.sort();
  const alpha = (1 - o.confidence) / 2;
  return {
    metric: o.metric,
    rows: n,
    production: prodMetric,
    candidate: candMetric,
    difference: candMetric - prodMetric,
    low: quantileSorted(deltas, alpha),
    high: quantileSorted(deltas, 1 - alpha),
    confidence: o.confidence,
    resamples: o.resamples,
  };
}

/** One batch the candidate ran. */
export interface BatchTiming {
  rows: number;
  /** Time the batch took, ms. */
  ms: number;
}

/** Candidate latency per batch and throughput. */
export interface LatencySummary {
  batches: number;
  rows: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** rows / wall-clock seconds (the sum of batch times when no wall time is given). */
  rowsPerSecond: number;
}

/** Latency percentiles over batches and throughput over the wall-clock time of the run. */
export function summarizeLatency(batches: readonly BatchTiming[], wallMs?: number): LatencySummary {
  const ms = batches.map((b) => b.ms);
  const d = summarize(ms);
  const rows = batches.reduce((s, b) => s + b.rows, 0);
  const elapsed = wallMs ?? ms.reduce((s, v) => s + v, 0);
  return {
    batches: batches.length,
    rows,
    p50Ms: d.p50,
    p99Ms: d.p99,
    maxMs: d.max,
    rowsPerSecond: elapsed > 0 ? rows / (elapsed / 1000) : 0,
  };
}
