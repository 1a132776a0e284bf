import { aucOfSplit } from './auc.js';
import { binColumns, fitBoostedTrees, treeValue, treeValueWith, type BinnedColumns } from './boosted-trees.js';
import { seededRng, shuffleInPlace, type Rng } from './random.js';
import { check, widthOf, type MultivariateVerdict, type Rows } from './types.js';

/** Options of the domain-classifier drift method ({@link domainClassifierDrift}, {@link runDomainClassifier}). */
export interface DomainClassifierOptions {
  /** Feature names, one per column, for the importance ranking. @default `f0`, `f1`, … */
  features?: readonly string[];
  /** Stratified cross-validation folds. @default 5 */
  folds?: number;
  /** Drift needs the mean fold AUC above this. @default 0.55 */
  threshold?: number;
  /**
   * Quantile of the AUC confidence interval mean ± z · sd / √folds. @default the Student t 0.975
   * quantile with folds − 1 degrees of freedom (2.776 for 5 folds): with so few folds a normal 1.96
   * fired on about 7–10 % of unchanged small samples, the t quantile on about 2–5 %.
   */
  z?: number;
  /** Rows drawn (seeded, without replacement) from each side at most; bounds the run time. @default 5000 */
  maxRowsPerSide?: number;
  /** Seed of the row sampling, the fold split and the importance permutations. @default 42 */
  seed?: number;
  /** Boosting iterations (trees) per fold. @default 50 */
  nEstimators?: number;
  /** Maximum depth of each tree (edges from root to the deepest leaf). @default 3 */
  maxDepth?: number;
  /** Smallest node (training rows) a tree still splits. @default 2 */
  minNumSamples?: number;
  /** Smallest leaf (training rows). @default 20 */
  minSamplesLeaf?: number;
  /** Shrinkage of each tree's leaf values. @default 0.1 */
  learningRate?: number;
  /** Quantile bins per feature (≤ 255), plus one bin for non-finite values. @default 64 */
  maxBins?: number;
  /** L2 regularisation of the leaf values. @default 0 */
  l2?: number;
  /**
   * Time budget of the whole method in milliseconds: a fold stops adding trees once it has used its
   * share (budget / folds per thread); the result then says `budgetExhausted` and how many trees each
   * fold kept. A soft budget; `timeoutMs` of {@link runDomainClassifier} is the hard one. @default 30000
   */
  timeBudgetMs?: number;
}

/** One feature's share in telling the two samples apart. */
export interface FeatureImportance {
  feature: string;
  /** Mean drop of the held-out fold AUC when this feature's column is permuted (can be ≤ 0 for noise). */
  importance: number;
}

/** Result of the domain-classifier method on one window. */
export interface DomainClassifierResult {
  /** Mean held-out ROC AUC over the folds, and each fold's. */
  auc: number;
  foldAucs: number[];
  /** mean ± z · sd / √folds (sd with ddof 1 across folds; z from the options). */
  ciLow: number;
  ciHigh: number;
  threshold: number;
  /** `drift` when auc > threshold and ciLow > 0.5. */
  verdict: MultivariateVerdict;
  /** Features by importance, highest first (ties keep column order). */
  importance: FeatureImportance[];
  /** Rows used from each side (after the caps). */
  nReference: number;
  nCurrent: number;
  durationMs: number;
  /** Trees fitted in each fold (fewer than `nEstimators` when the time budget ran out). */
  trees: number[];
  /** Whether any fold stopped early on the time budget. */
  budgetExhausted: boolean;
}

/** The options with every default filled in (also what crosses to the worker). */
export type ResolvedDomainClassifierOptions = Required<Omit<DomainClassifierOptions, 'features'>> & {
  features: string[];
};

// Student t 0.975 quantiles for 1..30 degrees of freedom (scipy.stats.t.ppf(0.975, df)).
const T975 = [
  12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139, 2.200985,
  2.178813, 2.160369, 2.144787, 2.13145, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658,
  2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.04523, 2.042272,
];

/** Student t 0.975 quantile with `df` degrees of freedom (table to 30, then a Cornish–Fisher step from 1.96). */
export function t975(df: number): number {
  const z = 1.959964;
  return T975[df - 1] ?? z + (z ** 3 + z) / (4 * df);
}

const defaults = {
  folds: 5,
  threshold: 0.55,
  maxRowsPerSide: 5000,
  seed: 42,
  nEstimators: 50,
  maxDepth: 3,
  minNumSamples: 2,
  minSamplesLeaf: 20,
  learningRate: 0.1,
  maxBins: 64,
  l2: 0,
  timeBudgetMs: 30_000,
} satisfies Required<Omit<DomainClassifierOptions, 'features' | 'z'>>;

const isInt = (v: number, min: number): boolean => Number.isInteger(v) && v >= min;

/** Fills defaults and validates; `width` is the number of columns. */
export function resolveDomainClassifierOptions(
  o: DomainClassifierOptions,
  width: number,
): ResolvedDomainClassifierOptions {
  const folds = o.folds ?? defaults.folds;
  const r: ResolvedDomainClassifierOptions = {
    folds,
    threshold: o.threshold ?? defaults.threshold,
    z: o.z ?? t975(Math.max(1, folds - 1)),
    maxRowsPerSide: o.maxRowsPerSide ?? defaults.maxRowsPerSide,
    seed: o.seed ?? defaults.seed,
    nEstimators: o.nEstimators ?? defaults.nEstimators,
    maxDepth: o.maxDepth ?? defaults.maxDepth,
    minNumSamples: o.minNumSamples ?? defaults.minNumSamples,
    minSamplesLeaf: o.minSamplesLeaf ?? defaults.minSamplesLeaf,
    learningRate: o.learningRate ?? defaults.learningRate,
    maxBins: o.maxBins ?? defaults.maxBins,
    l2: o.l2 ?? defaults.l2,
    timeBudgetMs: o.timeBudgetMs ?? defaults.timeBudgetMs,
    features: o.features ? [...o.features] : Array.from({ length: width }, (_, j) => `f${j}`),
  };
  check(isInt(r.folds, 2), 'folds', `must be an integer ≥ 2, got ${r.folds}`);
  check(r.threshold >= 0.5 && r.threshold < 1, 'threshold', `must be in [0.5, 1), got ${r.threshold}`);
  check(r.z > 0, 'z', `must be > 0, got ${r.z}`);
  check(isInt(r.maxRowsPerSide, r.folds), 'maxRowsPerSide', `must be an integer ≥ folds, got ${r.maxRowsPerSide}`);
  check(Number.isInteger(r.seed), 'seed', `must be an integer, got ${r.seed}`);
  check(isInt(r.nEstimators, 1), 'nEstimators', `must be an integer ≥ 1, got ${r.nEstimators}`);
  check(isInt(r.maxDepth, 1), 'maxDepth', `must be an integer ≥ 1, got ${r.maxDepth}`);
  check(isInt(r.minNumSamples, 2), 'minNumSamples', `must be an integer ≥ 2, got ${r.minNumSamples}`);
  check(isInt(r.minSamplesLeaf, 1), 'minSamplesLeaf', `must be an integer ≥ 1, got ${r.minSamplesLeaf}`);
  check(r.learningRate > 0 && r.learningRate <= 1, 'learningRate', `must be in (0, 1], got ${r.learningRate}`);
  check(isInt(r.maxBins, 2) && r.maxBins <= 255, 'maxBins', `must be an integer in [2, 255], got ${r.maxBins}`);
  check(Number.isFinite(r.l2) && r.l2 >= 0, 'l2', `must be ≥ 0, got ${r.l2}`);
  check(r.timeBudgetMs > 0, 'timeBudgetMs', `must be > 0, got ${r.timeBudgetMs}`);
  check(r.features.length === width, 'features', `has ${r.features.length} names for ${width} columns`);
  return r;
}

/**
 * Draws at most `max` rows of `rows` (seeded, without replacement, original order kept) into a
 * row-major Float64Array of `width` columns.
 */
export function sampleFlat(rows: Rows, width: number, max: number, rng: Rng): Float64Array {
  let pick: Uint32Array | null = null;
  if (rows.length > max) {
    const all = new Uint32Array(rows.length);
    for (let i = 0; i < all.length; i++) all[i] = i;
    // Partial Fisher–Yates: the first `max` slots are a uniform draw without replacement.
    for (let i = 0; i < max; i++) {
      const j = i + Math.floor(rng() * (all.length - i));
      const t = all[i] as number;
      all[i] = all[j] as number;
      all[j] = t;
    }
    pick = all.subarray(0, max).sort();
  }
  const count = pick ? pick.length : rows.length;
  const out = new Float64Array(count * width);
  for (let k = 0; k < count; k++) {
    const r = rows[pick ? (pick[k] as number) : k] ?? [];
    for (let j = 0; j < width; j++) out[k * width + j] = r[j] ?? Number.NaN;
  }
  return out;
}

/** Both sides capped (seeded) and flattened row-major: what the worker receives. */
export interface CappedSamples {
  width: number;
  reference: Float64Array;
  current: Float64Array;
}

/** Validates both sides and draws each down to the cap (seeded). */
export function capSamples(reference: Rows, current: Rows, o: ResolvedDomainClassifierOptions): CappedSamples {
  const width = widthOf(reference, 'reference', 2);
  check(
    widthOf(current, 'current', 2) === width,
    'current',
    `has ${current[0]?.length} columns, the reference has ${width}`,
  );
  const rng = seededRng(o.seed);
  const ref = sampleFlat(reference, width, o.maxRowsPerSide, rng);
  const cur = sampleFlat(current, width, o.maxRowsPerSide, rng);
  const nr = ref.length / width;
  const nc = cur.length / width;
  check(nr >= o.folds && nc >= o.folds, 'folds', `each side needs at least ${o.folds} rows`);
  return { width, reference: ref, current: cur };
}

/** Fold of each row: each class shuffled (seeded) and dealt round-robin, so every fold keeps the class ratio. */
function stratifiedFolds(y: Uint8Array, k: number, rng: Rng): Uint8Array {
  const fold = new Uint8Array(y.length);
  for (const cls of [0, 1]) {
    const idx: number[] = [];
    for (let i = 0; i < y.length; i++) if (y[i] === cls) idx.push(i);
    shuffleInPlace(idx, rng).forEach((i, n) => (fold[i] = n % k));
  }
  return fold;
}

/** The pooled, binned sample with labels and folds; the same in every thread for the same input. */
interface Prepared {
  data: BinnedColumns;
  y: Uint8Array;
  fold: Uint8Array;
  nReference: number;
  nCurrent: number;
}

function prepare(s: CappedSamples, o: ResolvedDomainClassifierOptions): Prepared {
  const nr = s.reference.length / s.width;
  const nc = s.current.length / s.width;
  const x = new Float64Array((nr + nc) * s.width);
  x.set(s.reference, 0);
  x.set(s.current, nr * s.width);
  // Binning is unsupervised (no labels), so pooling the held-out folds into the bin edges leaks nothing.
  const data = binColumns(x, nr + nc, s.width, o.maxBins);
  const y = new Uint8Array(nr + nc).fill(1, nr);
  const fold = stratifiedFolds(y, o.folds, seededRng(o.seed ^ 0x5bd1e995));
  return { data, y, fold, nReference: nr, nCurrent: nc };
}

/** What one fold yields. */
export interface FoldResult {
  fold: number;
  auc: number;
  /** Held-out AUC drop per feature when its column is permuted. */
  drops: number[];
  trees: number;
  budgetExhausted: boolean;
}

/** Fits and scores the listed folds in this thread; `budgetMs` is each fold's share of the time budget. */
function runFolds(
  pr: Prepared,
  folds: readonly number[],
  o: ResolvedDomainClassifierOptions,
  budgetMs: number,
): FoldResult[] {
  const { data, y, fold } = pr;
  const { n, p, bins } = data;
  const out: FoldResult[] = [];
  for (const f of folds) {
    const started = performance.now();
    let nTest = 0;
    for (let i = 0; i < n; i++) if (fold[i] === f) nTest++;
    const train = new Uint32Array(n - nTest);
    const test = new Uint32Array(nTest);
    let a = 0;
    let b = 0;
    for (let i = 0; i < n; i++) {
      if (fold[i] === f) test[b++] = i;
      else train[a++] = i;
    }
    const model = fitBoostedTrees(data, y, train, {
      iterations: o.nEstimators,
      learningRate: o.learningRate,
      maxDepth: o.maxDepth,
      minSamplesLeaf: o.minSamplesLeaf,
      minSamplesSplit: o.minNumSamples,
      l2: o.l2,
      deadlineMs: started + budgetMs,
    });
    const T = model.trees.length;
    // Leaf value of every tree for every held-out row: a permuted feature changes only the trees using it.
    const leaf = new Float64Array(T * nTest);
    const score = new Float64Array(nTest).fill(model.init);
    for (let t = 0; t < T; t++) {
      const tree = model.trees[t];
      if (tree === undefined) continue;
      for (let k = 0; k < nTest; k++) {
        const v = treeValue(tree, bins, n, test[k] as number);
        leaf[t * nTest + k] = v;
        score[k] = (score[k] as number) + v;
      }
    }
    const aucOf = (s: Float64Array): number => {
      let np = 0;
      for (let k = 0; k < nTest; k++) np += y[test[k] as number] as number;
      const pos = new Float64Array(np);
      const neg = new Float64Array(nTest - np);
      let ip = 0;
      let ineg = 0;
      for (let k = 0; k < nTest; k++) {
        if (y[test[k] as number] === 1) pos[ip++] = s[k] as number;
        else neg[ineg++] = s[k] as number;
      }
      return aucOfSplit(pos, neg);
    };
    const base = aucOf(score);
    const treesUsing: number[][] = Array.from({ length: p }, () => []);
    model.featuresOfTree.forEach((fs, t) => fs.forEach((j) => treesUsing[j]?.push(t)));
    const rng = seededRng((o.seed + (f + 1) * 0x9e3779b1) | 0);
    const perm = new Uint32Array(nTest);
    const permuted = new Float64Array(nTest);
    const drops = new Array<number>(p).fill(0);
    for (let j = 0; j < p; j++) {
      // Draw the permutation for every feature, used or not, so each feature's draw does not depend on the model.
      for (let k = 0; k < nTest; k++) perm[k] = k;
      for (let k = nTest - 1; k > 0; k--) {
        const r = Math.floor(rng() * (k + 1));
        const t = perm[k] as number;
        perm[k] = perm[r] as number;
        perm[r] = t;
      }
      const using = treesUsing[j] ?? [];
      if (using.length === 0) continue;
      permuted.set(score);
      const col = j * n;
      for (const t of using) {
        const tree = model.trees[t];
        if (tree === undefined) continue;
        for (let k = 0; k < nTest; k++) {
          const bin = bins[col + (test[perm[k] as number] as number)] as number;
          permuted[k] =
            (permuted[k] as number) -
            (leaf[t * nTest + k] as number) +
            treeValueWith(tree, bins, n, test[k] as number, j, bin);
        }
      }
      drops[j] = base - aucOf(permuted);
    }
    out.push({ fold: f, auc: base, drops, trees: T, budgetExhausted: T < o.nEstimators });
  }
  return out;
}

/** Folds of `threads` thread number `t` (round-robin). */
export function foldsOfThread(folds: number, threads: number, t: number): number[] {
  const out: number[] = [];
  for (let f = t; f < folds; f += threads) out.push(f);
  return out;
}

/** Runs the listed folds of the capped samples in this thread (what each worker does). */
export function classifierFolds(
  s: CappedSamples,
  o: ResolvedDomainClassifierOptions,
  folds: readonly number[],
): FoldResult[] {
  const started = performance.now();
  const pr = prepare(s, o);
  const share = (o.timeBudgetMs - (performance.now() - started)) / Math.max(1, folds.length);
  return runFolds(pr, folds, o, Math.max(share, 1));
}

/** Combines the fold results (any order) into the method's result. */
export function combineFolds(
  results: readonly FoldResult[],
  o: ResolvedDomainClassifierOptions,
  nReference: number,
  nCurrent: number,
  durationMs: number,
): DomainClassifierResult {
  const sorted = [...results].sort((a, b) => a.fold - b.fold);
  const foldAucs = sorted.map((r) => r.auc);
  const k = foldAucs.length;
  const auc = foldAucs.reduce((s, a) => s + a, 0) / k;
  const sd = Math.sqrt(foldAucs.reduce((s, a) => s + (a - auc) ** 2, 0) / (k - 1));
  const half = (o.z * sd) / Math.sqrt(k);
  const ciLow = auc - half;
  const p = o.features.length;
  const importance = Array.from({ length: p }, (_, j) => ({
    feature: o.features[j] ?? `f${j}`,
    importance: sorted.reduce((s, r) => s + (r.drops[j] ?? 0), 0) / k,
  })).sort((a, b) => b.importance - a.importance);
  return {
    auc,
    foldAucs,
    ciLow,
    ciHigh: auc + half,
    threshold: o.threshold,
    verdict: auc > o.threshold && ciLow > 0.5 ? 'drift' : 'no_drift',
    importance,
    nReference,
    nCurrent,
    durationMs,
    trees: sorted.map((r) => r.trees),
    budgetExhausted: sorted.some((r) => r.budgetExhausted),
  };
}

/**
 * Domain-classifier drift, computed in the calling thread (use {@link runDomainClassifier} to run it
 * in worker threads): label reference rows 0 and current rows 1, fit histogram gradient-boosted trees
 * (`boosted-trees.ts`, scikit-learn's `HistGradientBoostingClassifier` algorithm) on k − 1 stratified
 * folds and score the held-out fold; the ROC AUC of each held-out fold, their mean and a normal
 * confidence interval across folds give the verdict (drift when the mean AUC exceeds `threshold` and
 * the interval excludes 0.5). A feature's importance is the mean drop of the held-out AUC when its
 * column is permuted (seeded), so features that matter only jointly (a flipped correlation) rank high
 * too. Non-finite values get a bin of their own, so a change in missingness is a signal.
 */
export function domainClassifierDrift(
  reference: Rows,
  current: Rows,
  options: DomainClassifierOptions = {},
): DomainClassifierResult {
  const started = performance.now();
  const p = widthOf(reference, 'reference', 2);
  const o = resolveDomainClassifierOptions(options, p);
  const s = capSamples(reference, current, o);
  const results = classifierFolds(s, o, foldsOfThread(o.folds, 1, 0));
  return combineFolds(results, o, s.reference.length / p, s.current.length / p, performance.now() - started);
}
