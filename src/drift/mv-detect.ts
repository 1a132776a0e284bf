import type { Registry } from 'prom-client';
import { ErrorCodes, ModelwatchError, errorMessage, isModelwatchError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { gaugeOn } from '../common/metrics.js';
import { embeddingFeatures, type EmbeddingFeature } from '../config/model-schema.js';
import type { Config, MultivariateMethod, MultivariateOverride } from '../config/schema.js';
import { Tables } from '../store/migrations.js';
import type { SqlPort } from '../store/port.js';
import { toChTime } from '../store/store.js';
import type { SeriesPoint } from './detect-series.js';
import { runDomainClassifier, type Rows } from './multivariate/index.js';
import { completeRows, finiteOrNull } from './mv-kernels.js';
import { runKernelsInWorker } from './mv-worker.js';
import { successfulRowsSql } from './reference.js';
import type { DriftReport } from './stats/types.js';

/** Multivariate settings with every default filled in (top-level `multivariate`, then the model's). */
export interface MultivariateSettings {
  enabled: boolean;
  methods: 'auto' | ('reconstruction' | 'classifier')[];
  embeddingMethods: 'auto' | ('mmd' | 'mean_distance' | 'component_share' | 'classifier')[];
  features: string[] | undefined;
  maxRows: number;
  reconstruction: { varianceShare: number; bandStd: number; chunks: number };
  classifier: {
    threshold: number;
    folds: number;
    maxRowsPerSide: number;
    trees: number;
    maxDepth: number;
    timeoutMs: number;
  };
  mmd: { permutations: number; alpha: number; maxRowsPerSide: number };
  componentShare: { alpha: number; threshold: number };
  meanDistance: { metric: 'euclidean' | 'cosine'; euclideanThreshold: number; cosineThreshold: number };
}

/** The defaults of every multivariate setting (docs/multivariate.md lists them). */
export const MultivariateDefaults: Readonly<MultivariateSettings> = {
  enabled: true,
  methods: 'auto',
  embeddingMethods: 'auto',
  features: undefined,
  maxRows: 2000,
  reconstruction: { varianceShare: 0.65, bandStd: 3, chunks: 10 },
  classifier: { threshold: 0.55, folds: 5, maxRowsPerSide: 2000, trees: 50, maxDepth: 3, timeoutMs: 30_000 },
  mmd: { permutations: 100, alpha: 0.05, maxRowsPerSide: 300 },
  componentShare: { alpha: 0.05, threshold: 0.2 },
  meanDistance: { metric: 'euclidean', euclideanThreshold: 0.2, cosineThreshold: 0.2 },
};

/** Methods the automatic choice runs on the numeric feature set (when it has at least 2 features). */
export const AutoMultivariateMethods = ['reconstruction', 'classifier'] as const;
/** Methods the automatic choice runs on each embedding. */
export const AutoEmbeddingMethods = ['mmd', 'mean_distance', 'component_share'] as const;

function merge<T extends object>(base: T, ...over: (Partial<T> | undefined)[]): T {
  const out = { ...base };
  for (const o of over) {
    if (o === undefined) continue;
    for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/** The settings of `model`: defaults, under the top-level `multivariate` section, under `models.<m>.multivariate`. */
export function multivariateSettings(
  config: Pick<Config, 'multivariate' | 'models'>,
  model: string,
): MultivariateSettings {
  const layers: (MultivariateOverride | undefined)[] = [config.multivariate, config.models[model]?.multivariate];
  const d = MultivariateDefaults;
  const top = merge<MultivariateSettings>(
    { ...d, features: undefined },
    ...layers.map((l) =>
      l === undefined
        ? undefined
        : {
            enabled: l.enabled,
            methods: l.methods,
            embeddingMethods: l.embeddingMethods,
            features: l.features,
            maxRows: l.maxRows,
          },
    ),
  );
  return {
    ...top,
    reconstruction: merge<MultivariateSettings['reconstruction']>(
      { ...d.reconstruction },
      ...layers.map((l) => l?.reconstruction),
    ),
    classifier: merge<MultivariateSettings['classifier']>({ ...d.classifier }, ...layers.map((l) => l?.classifier)),
    mmd: merge<MultivariateSettings['mmd']>({ ...d.mmd }, ...layers.map((l) => l?.mmd)),
    componentShare: merge<MultivariateSettings['componentShare']>(
      { ...d.componentShare },
      ...layers.map((l) => l?.componentShare),
    ),
    meanDistance: merge<MultivariateSettings['meanDistance']>(
      { ...d.meanDistance },
      ...layers.map((l) => l?.meanDistance),
    ),
  };
}

/** One method's result on one feature group of one window. */
export interface MultivariateResult {
  method: MultivariateMethod;
  /** '' for the numeric feature set, else the embedding's name. */
  feature_group: string;
  n_reference: number;
  n_current: number;
  /** Reconstruction error, AUC, MMD², share of drifted components or mean distance. */
  statistic: number;
  /** Permutation p-value (mmd); null for the other methods. */
  p_value: number | null;
  /** What the statistic is compared with (AUC threshold, alpha of the p-value, share, distance); null for a band. */
  threshold: number | null;
  /** Alert band (reconstruction) or AUC confidence interval (classifier); null otherwise. */
  lower: number | null;
  upper: number | null;
  drift: boolean;
  params: Record<string, unknown>;
  details: Record<string, unknown>;
}

/** The rows of one feature group on both sides. */
export interface GroupRows {
  /** '' for the numeric feature set, else the embedding name. */
  group: string;
  /** Column names, one per vector element. */
  columns: string[];
  reference: number[][];
  current: number[][];
}

/** Options of {@link computeMultivariate}. */
export interface ComputeMultivariateOptions {
  settings: MultivariateSettings;
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
  /**
   * Run the synchronous methods (all but the classifier) in the calling thread instead of a fresh worker:
   * for a one-shot command on small inputs, where the worker's start-up costs more than the methods. A
   * server keeps the default, so its event loop never blocks. @default false
   */
  inline?: boolean | undefined;
}

/** Fewest rows per side a group needs before any method runs on it. */
export const MIN_ROWS_PER_SIDE = 20;

function methodsFor(group: GroupRows, s: MultivariateSettings): MultivariateMethod[] {
  if (group.group === '') {
    if (group.columns.length < 2) return [];
    return s.methods === 'auto' ? [...AutoMultivariateMethods] : s.methods;
  }
  return s.embeddingMethods === 'auto' ? [...AutoEmbeddingMethods] : s.embeddingMethods;
}

async function runMethod(
  method: MultivariateMethod,
  g: GroupRows,
  s: MultivariateSettings,
  signal: AbortSignal | undefined,
  inline = false,
): Promise<MultivariateResult> {
  const base = { method, feature_group: g.group };
  const isEmbedding = g.group !== '';
  const ref: Rows = isEmbedding ? completeRows(g.reference) : g.reference;
  const cur: Rows = isEmbedding ? completeRows(g.current) : g.current;
  switch (method) {
    case 'classifier': {
      const c = s.classifier;
      const r = await runDomainClassifier(ref, cur, {
        features: g.columns,
        threshold: c.threshold,
        folds: c.folds,
        maxRowsPerSide: c.maxRowsPerSide,
        nEstimators: c.trees,
        maxDepth: c.maxDepth,
        timeoutMs: c.timeoutMs,
        // The soft budget (folds stop adding trees) ends before the hard timeout stops the worker.
        timeBudgetMs: Math.round(c.timeoutMs * 0.75),
        ...(signal ? { signal } : {}),
      });
      return {
        ...base,
        n_reference: r.nReference,
        n_current: r.nCurrent,
        statistic: r.auc,
        p_value: null,
        threshold: r.threshold,
        lower: finiteOrNull(r.ciLow),
        upper: finiteOrNull(r.ciHigh),
        drift: r.verdict === 'drift',
        params: { ...c },
        // The ranking names which features (or embedding elements) carry the shift; the top 20 are kept.
        details: { fold_aucs: r.foldAucs, importance: r.importance.slice(0, 20), duration_ms: r.durationMs },
      };
    }
    default:
      if (inline) return (await import('./mv-kernels.js')).runSyncMethod(method, g, s);
      return (await runKernelsInWorker(g, [method], s, signal))[0] as MultivariateResult;
  }
}

/**
 * Runs the configured methods on each feature group (automatic choice: reconstruction and classifier on
 * the numeric set, MMD, mean distance and share of drifted components on each embedding). A group with
 * fewer than {@link MIN_ROWS_PER_SIDE} rows on a side is skipped; a method that fails on bad data is logged
 * and skipped, a cancellation rejects. The domain classifier runs in a worker thread.
 */
export async function computeMultivariate(
  groups: readonly GroupRows[],
  options: ComputeMultivariateOptions,
): Promise<MultivariateResult[]> {
  const s = options.settings;
  if (!s.enabled) return [];
  const out: MultivariateResult[] = [];
  for (const g of groups) {
    if (g.reference.length < MIN_ROWS_PER_SIDE || g.current.length < MIN_ROWS_PER_SIDE) continue;
    for (const method of methodsFor(g, s)) {
      if (options.signal?.aborted === true) throw cancelled(options.signal);
      try {
        out.push(await runMethod(method, g, s, options.signal, options.inline === true));
      } catch (err) {
        if (isAborted(options.signal) || isModelwatchError(err, ErrorCodes.cancelled)) throw err;
        options.logger?.warn('multivariate method failed', { method, group: g.group, error: errorMessage(err) });
      }
    }
  }
  return out;
}

const isAborted = (signal: AbortSignal | undefined): boolean => signal?.aborted === true;

function cancelled(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new ModelwatchError(ErrorCodes.cancelled, 'multivariate detection cancelled');
}

/** Where the reference rows come from: a stored reference, or a window of the model's traffic. */
export type ReferenceSide = { id: string } | { fromMs: number; toMs: number };

/** The reference a drift report used ({@link ReferenceSide}), or null when it names neither. */
export function referenceSideOf(report: DriftReport): ReferenceSide | null {
  const r = report.reference;
  if (typeof r.id === 'string' && r.id !== '') return { id: r.id };
  if (typeof r.from === 'string' && typeof r.to === 'string')
    return { fromMs: Date.parse(r.from), toMs: Date.parse(r.to) };
  return null;
}

/** The feature groups of a model: its numeric set and its embeddings. */
export interface FeatureGroups {
  numeric: string[];
  embeddings: EmbeddingFeature[];
}

/**
 * The groups of `model`: the numeric set is `multivariate.features` when configured, else the numeric
 * input features of `report` that are no embedding element; embeddings come from the model schema.
 */
export function featureGroups(
  config: Pick<Config, 'models'>,
  model: string,
  settings: MultivariateSettings,
  report: DriftReport,
): FeatureGroups {
  const embeddings = embeddingFeatures(config.models[model]);
  const elements = new Set(embeddings.flatMap((e) => e.columns));
  const numeric =
    settings.features ??
    report.features.filter((f) => f.kind === 'numeric' && !f.output && !elements.has(f.name)).map((f) => f.name);
  return { numeric: [...numeric].sort(), embeddings };
}

const VECTOR = `arrayMap(k -> if(mapContains(features_num, k), features_num[k], NULL), {cols:Array(String)}) AS v`;

function toRows(rows: { v: (number | string | null)[] }[]): number[][] {
  return rows.map((r) => r.v.map((x) => (x === null ? Number.NaN : Number(x))));
}

/** Options of {@link readGroupRows}. */
export interface ReadGroupRowsOptions {
  model: string;
  reference: ReferenceSide;
  /** The window under test, epoch ms, half-open. */
  fromMs: number;
  toMs: number;
  groups: FeatureGroups;
  /** Rows per side at most, drawn by a stable hash of the row's identity. */
  maxRows: number;
}

/**
 * Reads both sides of every group through the store: at most `maxRows` rows of the reference
 * (`mw_reference_rows`, or the traffic window) and of the window (successful calls only), each drawn by a
 * hash of the row identity so the same rows are read on every run. A value absent from a row is NaN.
 */
export async function readGroupRows(store: SqlPort, o: ReadGroupRowsOptions): Promise<GroupRows[]> {
  const cols = [...o.groups.numeric, ...o.groups.embeddings.flatMap((e) => e.columns)];
  if (cols.length === 0) return [];
  const window = (fromMs: number, toMs: number) =>
    store.query<{ v: (number | string | null)[] }>(
      `SELECT ${VECTOR} FROM ${Tables.predictions} FINAL
       WHERE model = {model:String} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
         AND ${successfulRowsSql()}
       ORDER BY cityHash64(event_id, row) LIMIT {n:UInt32}`,
      {
        label: 'multivariate window rows',
        params: { cols, model: o.model, from: toChTime(fromMs), to: toChTime(toMs), n: o.maxRows },
      },
    );
  const refRows =
    'id' in o.reference
      ? await store.query<{ v: (number | string | null)[] }>(
          `SELECT ${VECTOR} FROM ${Tables.referenceRows} WHERE reference_id = {rid:String}
           ORDER BY cityHash64(row) LIMIT {n:UInt32}`,
          { label: 'multivariate reference rows', params: { cols, rid: o.reference.id, n: o.maxRows } },
        )
      : await window(o.reference.fromMs, o.reference.toMs);
  const curRows = await window(o.fromMs, o.toMs);
  const ref = toRows(refRows);
  const cur = toRows(curRows);
  const slice = (rows: number[][], from: number, to: number): number[][] => rows.map((r) => r.slice(from, to));
  const out: GroupRows[] = [];
  const n = o.groups.numeric.length;
  if (n > 0) out.push({ group: '', columns: o.groups.numeric, reference: slice(ref, 0, n), current: slice(cur, 0, n) });
  let at = n;
  for (const e of o.groups.embeddings) {
    out.push({
      group: e.name,
      columns: e.columns,
      reference: slice(ref, at, at + e.dim),
      current: slice(cur, at, at + e.dim),
    });
    at += e.dim;
  }
  return out;
}

/** The identity of the detect run the results belong to. */
export interface MultivariateRunKey {
  run_id: string;
  model: string;
  /** Run time and window, epoch ms. */
  ts: number;
  fromMs: number;
  toMs: number;
  reference_id: string;
}

/** Rows of `mw_multivariate_results` for one run. */
export function multivariateRows(run: MultivariateRunKey, results: readonly MultivariateResult[]): object[] {
  return results.map((r) => ({
    run_id: run.run_id,
    model: run.model,
    ts: toChTime(run.ts),
    window_from: toChTime(run.fromMs),
    window_to: toChTime(run.toMs),
    reference_id: run.reference_id,
    method: r.method,
    feature_group: r.feature_group,
    n_reference: r.n_reference,
    n_current: r.n_current,
    statistic: Number.isFinite(r.statistic) ? r.statistic : Number.NaN,
    p_value: r.p_value,
    threshold: r.threshold,
    lower: r.lower,
    upper: r.upper,
    drift: r.drift ? 1 : 0,
    params: JSON.stringify(r.params),
    details: JSON.stringify(r.details),
  }));
}

/** Series name of a method's statistic in `mw_metric_series` (feature = the group). */
export function multivariateSeries(method: MultivariateMethod): string {
  return `multivariate.${method}`;
}

/** One series point per result with a finite statistic, over the run's window. */
export function multivariateSeriesPoints(
  results: readonly MultivariateResult[],
  fromMs: number,
  toMs: number,
): SeriesPoint[] {
  return results
    .filter((r) => Number.isFinite(r.statistic))
    .map((r) => ({ series: multivariateSeries(r.method), feature: r.feature_group, value: r.statistic, fromMs, toMs }));
}

/** Gauges of the latest multivariate results, per model, method and group. */
class MultivariateGauges {
  readonly statistic;
  readonly drift;
  constructor(registry: Registry) {
    this.statistic = gaugeOn(registry, {
      name: 'modelwatch_multivariate_statistic',
      help: 'Statistic of a multivariate method in the latest run (reconstruction error, AUC, MMD², share, distance).',
      labelNames: ['model', 'method', 'group'] as const,
    });
    this.drift = gaugeOn(registry, {
      name: 'modelwatch_multivariate_drift',
      help: 'Verdict of a multivariate method in the latest run (1 drift, 0 not); group is the embedding or "" for the numeric set.',
      labelNames: ['model', 'method', 'group'] as const,
    });
  }
}
const gaugesByRegistry = new WeakMap<Registry, MultivariateGauges>();

/** Options of {@link runMultivariateStage}. */
export interface MultivariateStageOptions {
  store: SqlPort;
  config: Pick<Config, 'models' | 'multivariate'>;
  logger: Logger;
  run: Omit<MultivariateRunKey, 'reference_id'>;
  /** The run's (unsegmented) drift report: its reference, window and numeric features. */
  report: DriftReport;
  signal?: AbortSignal | undefined;
  /** Registry of the gauges, and the model's label value (bounded); no gauges when omitted. */
  metrics?: { registry: Registry; label: (model: string) => string } | undefined;
}

/** What the stage did: its results and their series points. */
export interface MultivariateStageResult {
  results: MultivariateResult[];
  series: SeriesPoint[];
}

/**
 * The detect loop's multivariate stage for one model and window: reads capped samples of the reference
 * and the window, runs the configured methods ({@link computeMultivariate}), stores one row per method
 * and group in `mw_multivariate_results` and sets the gauges. Never throws but for a cancellation: a
 * failure is logged and the stage returns no results, so univariate drift is stored either way.
 */
export async function runMultivariateStage(o: MultivariateStageOptions): Promise<MultivariateStageResult> {
  const none: MultivariateStageResult = { results: [], series: [] };
  const { run, report, logger } = o;
  try {
    const settings = multivariateSettings(o.config, run.model);
    if (!settings.enabled) return none;
    const reference = referenceSideOf(report);
    if (reference === null) return none;
    const groups = featureGroups(o.config, run.model, settings, report);
    // The drift engine may start the window later (after a default reference's end): use its window.
    const w = (report as { window?: { from?: unknown; to?: unknown } }).window;
    const fromMs = typeof w?.from === 'string' ? Date.parse(w.from) : run.fromMs;
    const toMs = typeof w?.to === 'string' ? Date.parse(w.to) : run.toMs;
    const rows = await readGroupRows(o.store, {
      model: run.model,
      reference,
      fromMs,
      toMs,
      groups,
      maxRows: settings.maxRows,
    });
    const results = await computeMultivariate(rows, { settings, signal: o.signal, logger });
    if (o.signal?.aborted === true) throw cancelled(o.signal);
    const key: MultivariateRunKey = { ...run, reference_id: 'id' in reference ? reference.id : '' };
    if (results.length > 0) {
      await o.store.insert(Tables.multivariateResults, multivariateRows(key, results), {
        label: 'multivariate results',
      });
    }
    if (o.metrics) {
      let g = gaugesByRegistry.get(o.metrics.registry);
      if (!g) {
        g = new MultivariateGauges(o.metrics.registry);
        gaugesByRegistry.set(o.metrics.registry, g);
      }
      const model = o.metrics.label(run.model);
      for (const r of results) {
        const labels = { model, method: r.method, group: r.feature_group };
        g.statistic.set(labels, Number.isFinite(r.statistic) ? r.statistic : Number.NaN);
        g.drift.set(labels, r.drift ? 1 : 0);
      }
    }
    for (const r of results.filter((x) => x.drift)) {
      logger.info('multivariate drift', {
        model: run.model,
        run_id: run.run_id,
        method: r.method,
        group: r.feature_group,
        statistic: r.statistic,
      });
    }
    return { results, series: multivariateSeriesPoints(results, fromMs, toMs) };
  } catch (err) {
    if (o.signal?.aborted === true) throw err;
    logger.warn('multivariate drift failed', { model: run.model, error: errorMessage(err) });
    return none;
  }
}
