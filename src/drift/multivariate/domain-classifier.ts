import { RandomForestClassifier } from 'ml-random-forest';
import { rocAuc } from './auc.js';
import { sampleRows, seededRng, shuffleInPlace, type Rng } from './random.js';
import { check, widthOf, type MultivariateVerdict, type Rows } from './types.js';

/** Options of the domain-classifier drift method ({@link domainClassifierDrift}, {@link runDomainClassifier}). */
export interface DomainClassifierOptions {
  /** Feature names, one per column, for the importance ranking. @default `f0`, `f1`, … */
  features?: readonly string[];
  /** Stratified cross-validation folds. @default 5 */
  folds?: number;
  /** Drift needs the mean fold AUC above this. @default 0.55 */
  threshold?: number;
  /** Normal quantile of the AUC confidence interval (1.96: 95 %). @default 1.96 */
  z?: number;
  /**
   * Rows drawn (seeded, without replacement) from each side at most. `ml-random-forest`'s CART split
   * search costs O(n²) per feature and node, so this cap bounds the run time. @default 500
   */
  maxRowsPerSide?: number;
  /** Seed of the row sampling, the fold split, the forest and the permutations. @default 42 */
  seed?: number;
  /** Trees in the forest. @default 25 */
  nEstimators?: number;
  /** Maximum depth of each tree. @default 8 */
  maxDepth?: number;
  /** Smallest node a tree still splits. @default 5 */
  minNumSamples?: number;
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
  /** mean ± z · sd / √folds (sd with ddof 1 across folds). */
  ciLow: number;
  ciHigh: number;
  threshold: number;
  /** `drift` when auc > threshold and ciLow > 0.5. */
  verdict: MultivariateVerdict;
  /** Features by importance, highest first. */
  importance: FeatureImportance[];
  /** Rows used from each side (after the caps). */
  nReference: number;
  nCurrent: number;
  durationMs: number;
}

/** The options with every default filled in (also what crosses to the worker). */
export type ResolvedDomainClassifierOptions = Required<Omit<DomainClassifierOptions, 'features'>> & {
  features: string[];
};

const defaults = {
  folds: 5,
  threshold: 0.55,
  z: 1.96,
  maxRowsPerSide: 500,
  seed: 42,
  nEstimators: 25,
  maxDepth: 8,
  minNumSamples: 5,
};

/** Fills defaults and validates; `width` is the number of columns. */
export function resolveDomainClassifierOptions(
  o: DomainClassifierOptions,
  width: number,
): ResolvedDomainClassifierOptions {
  const r: ResolvedDomainClassifierOptions = {
    folds: o.folds ?? defaults.folds,
    threshold: o.threshold ?? defaults.threshold,
    z: o.z ?? defaults.z,
    maxRowsPerSide: o.maxRowsPerSide ?? defaults.maxRowsPerSide,
    seed: o.seed ?? defaults.seed,
    nEstimators: o.nEstimators ?? defaults.nEstimators,
    maxDepth: o.maxDepth ?? defaults.maxDepth,
    minNumSamples: o.minNumSamples ?? defaults.minNumSamples,
    features: o.features ? [...o.features] : Array.from({ length: width }, (_, j) => `f${j}`),
  };
  check(Number.isInteger(r.folds) && r.folds >= 2, 'folds', `must be an integer ≥ 2, got ${r.folds}`);
  check(r.threshold >= 0.5 && r.threshold < 1, 'threshold', `must be in [0.5, 1), got ${r.threshold}`);
  check(r.z > 0, 'z', `must be > 0, got ${r.z}`);
  check(
    Number.isInteger(r.maxRowsPerSide) && r.maxRowsPerSide >= r.folds,
    'maxRowsPerSide',
    `must be an integer ≥ folds, got ${r.maxRowsPerSide}`,
  );
  check(Number.isInteger(r.seed), 'seed', `must be an integer, got ${r.seed}`);
  check(
    Number.isInteger(r.nEstimators) && r.nEstimators >= 1,
    'nEstimators',
    `must be an integer ≥ 1, got ${r.nEstimators}`,
  );
  check(Number.isInteger(r.maxDepth) && r.maxDepth >= 1, 'maxDepth', `must be an integer ≥ 1, got ${r.maxDepth}`);
  check(r.features.length === width, 'features', `has ${r.features.length} names for ${width} columns`);
  return r;
}

/** Draws each side down to the cap (seeded); non-finite values become 0 (the forest cannot split on NaN). */
export function capSamples(
  reference: Rows,
  current: Rows,
  maxRowsPerSide: number,
  seed: number,
): { ref: number[][]; cur: number[][] } {
  const rng = seededRng(seed);
  const clean = (rows: Rows): number[][] => rows.map((r) => r.map((v) => (Number.isFinite(v) ? v : 0)));
  return {
    ref: clean(sampleRows(reference, maxRowsPerSide, rng)),
    cur: clean(sampleRows(current, maxRowsPerSide, rng)),
  };
}

/** Fold of each row: each class shuffled (seeded) and dealt round-robin, so every fold keeps the class ratio. */
function stratifiedFolds(labels: readonly number[], k: number, rng: Rng): number[] {
  const fold = new Array<number>(labels.length).fill(0);
  for (const cls of [0, 1]) {
    const idx = shuffleInPlace(
      labels.flatMap((l, i) => (l === cls ? [i] : [])),
      rng,
    );
    idx.forEach((i, n) => (fold[i] = n % k));
  }
  return fold;
}

/**
 * Domain-classifier drift, computed in the calling thread (use {@link runDomainClassifier} to run it
 * in a worker): label reference rows 0 and current rows 1, train a random forest (`ml-random-forest`,
 * bagged trees over all features) on k − 1 stratified folds and score the held-out fold by the share
 * of trees that vote "current"; the ROC AUC of each held-out fold, their mean and a normal confidence
 * interval across folds give the verdict. Importance of a feature is the mean drop of the held-out
 * AUC when its column is permuted (seeded), so features that matter only jointly (a flipped
 * correlation) rank high too.
 */
export function domainClassifierDrift(
  reference: Rows,
  current: Rows,
  options: DomainClassifierOptions = {},
): DomainClassifierResult {
  const started = performance.now();
  const p = widthOf(reference, 'reference', 2);
  check(widthOf(current, 'current', 2) === p, 'current', `has ${current[0]?.length} columns, the reference has ${p}`);
  const o = resolveDomainClassifierOptions(options, p);
  const { ref, cur } = capSamples(reference, current, o.maxRowsPerSide, o.seed);
  check(ref.length >= o.folds && cur.length >= o.folds, 'folds', `each side needs at least ${o.folds} rows`);
  const x = [...ref, ...cur];
  const y = [...ref.map(() => 0), ...cur.map(() => 1)];
  const rng = seededRng(o.seed ^ 0x5bd1e995);
  const fold = stratifiedFolds(y, o.folds, rng);

  const foldAucs: number[] = [];
  const drops = new Array<number>(p).fill(0);
  for (let f = 0; f < o.folds; f++) {
    const trainX: number[][] = [];
    const trainY: number[] = [];
    const testX: number[][] = [];
    const testY: number[] = [];
    for (let i = 0; i < x.length; i++) {
      if (fold[i] === f) {
        testX.push(x[i] ?? []);
        testY.push(y[i] ?? 0);
      } else {
        trainX.push(x[i] ?? []);
        trainY.push(y[i] ?? 0);
      }
    }
    const forest = new RandomForestClassifier({
      seed: (o.seed + f * 7919) | 0,
      nEstimators: o.nEstimators,
      maxFeatures: 1.0,
      replacement: false,
      useSampleBagging: true,
      noOOB: true,
      // gainThreshold 0: a flipped correlation gives the root split almost no gain (unchanged marginals);
      // ml-cart's default 0.01 would stop every tree there.
      treeOptions: { maxDepth: o.maxDepth, minNumSamples: o.minNumSamples, gainThreshold: 0 },
    });
    forest.train(trainX, trainY);
    const base = rocAuc(testY, forest.predictProbability(testX, 1));
    foldAucs.push(base);
    for (let j = 0; j < p; j++) {
      const column = shuffleInPlace(
        testX.map((r) => r[j] ?? 0),
        rng,
      );
      const permuted = testX.map((r, i) => {
        const c = r.slice();
        c[j] = column[i] ?? 0;
        return c;
      });
      drops[j] = (drops[j] ?? 0) + base - rocAuc(testY, forest.predictProbability(permuted, 1));
    }
  }
  const auc = foldAucs.reduce((s, a) => s + a, 0) / o.folds;
  const sd = Math.sqrt(foldAucs.reduce((s, a) => s + (a - auc) ** 2, 0) / (o.folds - 1));
  const half = (o.z * sd) / Math.sqrt(o.folds);
  const ciLow = auc - half;
  const importance = drops
    .map((d, j) => ({ feature: o.features[j] ?? `f${j}`, importance: d / o.folds }))
    .sort((a, b) => b.importance - a.importance);
  return {
    auc,
    foldAucs,
    ciLow,
    ciHigh: auc + half,
    threshold: o.threshold,
    verdict: auc > o.threshold && ciLow > 0.5 ? 'drift' : 'no_drift',
    importance,
    nReference: ref.length,
    nCurrent: cur.length,
    durationMs: performance.now() - started,
  };
}
