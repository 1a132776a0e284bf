import { ErrorCodes, ModelwatchError, errorMessage, isModelwatchError } from '../common/errors.js';
import { newId } from '../common/ids.js';
import type { Logger } from '../common/logger.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { Tables } from '../store/migrations.js';
import { toChTime, type Store } from '../store/store.js';
import { DetectMetrics, type RunStatus } from './detect-metrics.js';
import { intervalSeries, isDetection, windowSeries, type SeriesPoint } from './detect-series.js';
import { DetectorState } from './detect-state.js';
import { runMultivariateStage } from './mv-detect.js';
import { detectDrift, type DriftDetection, type SegmentBy, type SegmentReport } from './detect-drift.js';
import { computePerformance, type PerformanceReport } from './performance/query.js';
import { queryFeatureMeans, queryTraffic, type TrafficSummary } from './performance/traffic.js';
import type { ClassificationMetrics, EstimatedMetrics, RegressionMetrics } from './performance/types.js';
import { DEFAULT_MONITOR_DETECTORS, type ChangeAlarm, type SeriesMonitorOptions } from './streaming/monitor.js';
import type { DriftReport, FeatureReport } from './stats/types.js';

export { DetectorState } from './detect-state.js';
export type { RunStatus } from './detect-metrics.js';
export type { SeriesPoint } from './detect-series.js';

/**
 * Computes drift of `model` over [from, to) against its reference (and per segment with `segmentBy`); null when
 * the model has no reference yet. The detect loop calls the drift engine's `detectDrift` through this port.
 */
export type DriftDetectFn = (
  store: Store,
  options: {
    model: string;
    from: number;
    to: number;
    signal?: AbortSignal | undefined;
    segmentBy?: SegmentBy | undefined;
  },
) => Promise<DriftReport | DriftDetection | null>;

/** Options of {@link startDetector} and {@link runDetectionOnce}. */
export interface DetectorOptions {
  /**
   * Time between runs, and the length of the interval each run's streaming series cover. Run times are aligned
   * down to a multiple of it (epoch ms), so intervals never overlap. @default config.detect.intervalMs (60 000)
   */
  intervalMs?: number;
  /** Length of the drift and performance window, ending at the run's interval end. @default config.detect.windowMs (3 600 000) */
  windowMs?: number;
  /**
   * Deadline of one run (all models). Past it the run's statements are cancelled in ClickHouse, the model in
   * flight is recorded `timed_out` and the models not yet started wait for the next tick. @default config.detect.timeoutMs (120 000)
   */
  timeoutMs?: number;
  /**
   * The drift engine. `null` disables drift (runs then store performance, series and change points only).
   * @default {@link detectDrift} with the runtime's config
   */
  detectDrift?: DriftDetectFn | null;
  /**
   * Detectors per metric series. @default from config.detect: `warmup`, and `minInstances` for Page–Hinkley,
   * ADWIN (its grace period) and CUSUM, over {@link DEFAULT_MONITOR_DETECTORS}
   */
  monitor?: SeriesMonitorOptions;
  /** Numeric features whose per-interval mean is watched, first by name. @default 50 */
  maxFeatureSeries?: number;
  /** Models to run besides those configured and those with traffic in the window. @default [] */
  models?: string[];
  /** Newest stored values per series replayed into the detectors at start. @default config.detect.replayMaxValues */
  replayMaxValues?: number;
  /** Features per model on `modelwatch_feature_drift_score`. @default config.metrics.maxFeatures (20) */
  maxFeatureGauges?: number;
  /** Models with their own metric label value. @default config.metrics.maxModels when set, else 100 */
  maxModelLabels?: number;
  /** Clock, epoch ms. @default Date.now */
  clock?: () => number;
}

const defaultsFixed = {
  maxFeatureSeries: 50,
  models: [],
  clock: Date.now,
} satisfies Partial<Required<DetectorOptions>>;

type ResolvedOptions = Required<Omit<DetectorOptions, 'detectDrift'>> & { detectDrift: DriftDetectFn | null };

/** The model-label cap: `config.metrics.maxModels` when another part of the config defines it. */
function configuredMaxModels(config: RuntimeContext['config']): number {
  const m = (config as { metrics?: { maxModels?: unknown } }).metrics?.maxModels;
  return typeof m === 'number' && Number.isInteger(m) && m > 0 ? m : 100;
}

function monitorFromConfig(d: RuntimeContext['config']['detect']): SeriesMonitorOptions {
  return {
    warmup: d.warmup,
    page_hinkley: { ...DEFAULT_MONITOR_DETECTORS.page_hinkley, min_instances: d.minInstances.pageHinkley },
    adwin: { ...DEFAULT_MONITOR_DETECTORS.adwin, grace_period: d.minInstances.adwin },
    cusum: { ...DEFAULT_MONITOR_DETECTORS.cusum, min_instances: d.minInstances.cusum },
  };
}

function resolveOptions(ctx: RuntimeContext, options: DetectorOptions): ResolvedOptions {
  const o: ResolvedOptions = {
    intervalMs: ctx.config.detect.intervalMs,
    windowMs: ctx.config.detect.windowMs,
    timeoutMs: ctx.config.detect.timeoutMs,
    monitor: monitorFromConfig(ctx.config.detect),
    replayMaxValues: ctx.config.detect.replayMaxValues,
    maxFeatureGauges: ctx.config.metrics.maxFeatures,
    maxModelLabels: configuredMaxModels(ctx.config),
    ...defaultsFixed,
    ...options,
    detectDrift:
      options.detectDrift === undefined
        ? (store, { model, from, to, segmentBy }) => {
            const maxSegments = ctx.config.models[model]?.segments?.max;
            return detectDrift(store, {
              model,
              from,
              to,
              config: ctx.config,
              now: to,
              segmentBy,
              ...(maxSegments !== undefined ? { maxSegments } : {}),
            });
          }
        : options.detectDrift,
  };
  for (const key of ['intervalMs', 'windowMs', 'timeoutMs', 'maxFeatureSeries', 'maxModelLabels'] as const) {
    if (!Number.isInteger(o[key]) || o[key] <= 0) {
      throw new ModelwatchError(ErrorCodes.configInvalid, `detector ${key}: must be a positive integer`, {
        field: key,
      });
    }
  }
  for (const key of ['replayMaxValues', 'maxFeatureGauges'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 0) {
      throw new ModelwatchError(ErrorCodes.configInvalid, `detector ${key}: must be a non-negative integer`, {
        field: key,
      });
    }
  }
  return o;
}

/** End of the interval a run at `nowMs` covers: `nowMs` aligned down to a multiple of `intervalMs`. */
export function intervalEnd(nowMs: number, intervalMs: number): number {
  return Math.floor(nowMs / intervalMs) * intervalMs;
}

/** A change point raised by a streaming detector on one metric series. */
export interface ChangePoint extends ChangeAlarm {
  model: string;
  series: string;
  /** Feature of a per-feature series, '' otherwise. */
  feature: string;
  ts: string;
}

/** What one run did for one model. */
export interface DetectionRun {
  run_id: string;
  model: string;
  /** When the run ran. */
  ts: string;
  /** The drift and performance window: [interval end − windowMs, interval end). */
  window: { from: string; to: string };
  /** Length of the interval the run's streaming series cover: [window.to − interval_ms, window.to). */
  interval_ms: number;
  status: RunStatus;
  /** Why the run failed, timed out or has no reference ('' otherwise). */
  error: string;
  reference_id: string;
  /** Prediction rows in the window. */
  rows: number;
  duration_ms: number;
  /** Drift against the reference; null without a drift engine or a reference; `drift_error` says why it failed. */
  drift: DriftReport | null;
  drift_error: string | null;
  /** Stored drift segments (`version:<v>` or `feature:<name>=<value>`). */
  segments: string[];
  /** Null when the window is empty or the run failed before it. */
  performance: PerformanceReport | null;
  /** Traffic over the interval (the detectors' sampling period); null when the interval was already fed. */
  traffic: TrafficSummary | null;
  /** The series values stored by this run (empty when its interval was already fed by an earlier run). */
  series: SeriesPoint[];
  change_points: ChangePoint[];
}

/**
 * How a drift engine's answer maps to a run status: a report → `ok`; `null`, a `no_reference` error or a
 * `not_found` error (no reference, no traffic to take one from) → `no_reference`; a cancellation → rethrown;
 * anything else → `failed`. The one place to adapt when the engine signals "no reference yet" differently.
 */
export function driftOutcome(result: { report: DriftReport | DriftDetection | null } | { error: unknown }): {
  status: 'ok' | 'no_reference' | 'failed';
  report: DriftReport | null;
  error: string;
} {
  if ('report' in result) {
    const r = result.report;
    if (r === null || (r as { status?: unknown }).status === 'no_reference')
      return { status: 'no_reference', report: null, error: '' };
    return { status: 'ok', report: r, error: '' };
  }
  const err = result.error;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'no_reference' || isModelwatchError(err, ErrorCodes.notFound)) {
    return { status: 'no_reference', report: null, error: errorMessage(err) };
  }
  return { status: 'failed', report: null, error: errorMessage(err) };
}

const finite = (v: number | null | undefined): number | null =>
  typeof v === 'number' && Number.isFinite(v) ? v : null;

/** statistic / p-value of the method that decided a feature's verdict. */
function methodStatistic(f: FeatureReport): { statistic: number | null; p_value: number | null } {
  if (f.method === 'ks') return { statistic: finite(f.stats.ks?.statistic), p_value: finite(f.stats.ks?.p_value) };
  if (f.method === 'chi_square') {
    return { statistic: finite(f.stats.chi_square?.statistic), p_value: finite(f.stats.chi_square?.p_value) };
  }
  return { statistic: finite(f.score), p_value: null };
}

interface RunKey {
  run_id: string;
  model: string;
  ts: number;
  from: number;
  to: number;
}

function referenceIdOf(report: DriftReport): string {
  return typeof report.reference.id === 'string' ? report.reference.id : '';
}

function driftRows(run: RunKey, report: DriftReport, fdr: boolean, segment: string): object[] {
  const base = {
    run_id: run.run_id,
    model: run.model,
    ts: toChTime(run.ts),
    window_from: toChTime(run.from),
    window_to: toChTime(run.to),
    reference_id: referenceIdOf(report),
    segment,
  };
  const rows: object[] = report.features.map((f) => {
    const { statistic, p_value } = methodStatistic(f);
    return {
      ...base,
      feature: f.name,
      kind: f.kind,
      output: f.output === true,
      method: f.method,
      parameters: JSON.stringify({
        threshold: f.threshold,
        fdr,
        ...(f.p_value_adjusted !== undefined ? { p_value_adjusted: f.p_value_adjusted } : {}),
      }),
      n_ref: Math.max(0, report.reference.rows - f.quality.missing_reference - (f.quality.non_finite_reference ?? 0)),
      n_cur: Math.max(0, report.current.rows - f.quality.missing_current - (f.quality.non_finite_current ?? 0)),
      statistic,
      p_value,
      score: finite(f.score),
      threshold: f.threshold,
      drifted: f.drifted,
      stats: JSON.stringify(f.stats),
      quality: JSON.stringify(f.quality),
    };
  });
  rows.push({
    ...base,
    feature: '',
    kind: 'dataset',
    output: false,
    method: 'share',
    parameters: JSON.stringify({ share_threshold: report.dataset.share_threshold, fdr }),
    n_ref: report.reference.rows,
    n_cur: report.current.rows,
    statistic: report.dataset.drifted_features,
    p_value: null,
    score: finite(report.dataset.share),
    threshold: report.dataset.share_threshold,
    drifted: report.dataset.drifted,
    stats: JSON.stringify({ features: report.dataset.features, drifted_features: report.dataset.drifted_features }),
    // The drift engine's window quality (quarantine counts, volume check), when it reports one.
    quality: JSON.stringify(isDetection(report) ? report.quality : {}),
  });
  return rows;
}

function performanceRows(run: RunKey, report: PerformanceReport): object[] {
  const base = {
    run_id: run.run_id,
    model: run.model,
    ts: toChTime(run.ts),
    window_from: toChTime(run.from),
    window_to: toChTime(run.to),
    task: report.prediction?.task ?? '',
    rows: report.rows,
    labelled_rows: report.labelled_rows,
  };
  const rows: object[] = [
    { ...base, source: 'labels', metric: 'label_coverage', value: finite(report.label_coverage), details: '{}' },
  ];
  const scalars = (source: string, m: ClassificationMetrics | RegressionMetrics | EstimatedMetrics): void => {
    for (const [metric, value] of Object.entries(m)) {
      if (typeof value === 'number' && metric !== 'rows')
        rows.push({ ...base, source, metric, value: finite(value), details: '{}' });
      else if (value === null) rows.push({ ...base, source, metric, value: null, details: '{}' });
    }
    if ('confusion_matrix' in m) {
      rows.push({
        ...base,
        source,
        metric: 'confusion_matrix',
        value: null,
        details: JSON.stringify(m.confusion_matrix),
      });
    }
    if ('expected_confusion' in m && m.expected_confusion) {
      rows.push({
        ...base,
        source,
        metric: 'expected_confusion',
        value: null,
        details: JSON.stringify(m.expected_confusion),
      });
    }
  };
  if (report.measured) scalars('measured', report.measured);
  if (report.estimated) scalars('estimated', report.estimated);
  return rows;
}

/** Segment key stored in `mw_drift_results.segment`: `version:<v>` or `feature:<name>=<value>`. */
export function segmentKey(s: Pick<SegmentReport, 'by' | 'feature' | 'value'>): string {
  return s.by === 'version' ? `version:${s.value}` : `feature:${s.feature ?? ''}=${s.value}`;
}

/** The splits configured for a model (`models.<m>.segments`). */
function segmentSplits(ctx: RuntimeContext, model: string): SegmentBy[] {
  const s = ctx.config.models[model]?.segments;
  if (!s) return [];
  return [...(s.version ? (['version'] as const) : []), ...s.features.map((feature) => ({ feature }))];
}

/** Models to examine: configured ones, extra ones, and those with traffic in the window. */
async function modelsToRun(ctx: RuntimeContext, o: ResolvedOptions, fromMs: number, toMs: number): Promise<string[]> {
  const names = new Set<string>([...Object.keys(ctx.config.models), ...o.models]);
  const rows = await ctx.store.query<{ model: string }>(
    `SELECT DISTINCT model FROM ${Tables.predictions}
     WHERE ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
     UNION DISTINCT
     SELECT DISTINCT model FROM ${Tables.requests}
     WHERE ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
       -- Calls to a name the server never answered (404s) create no model; a model that did answer keeps
       -- being examined while it only fails, so its error rate is still measured.
       AND model IN (SELECT model FROM ${Tables.answeredModels})`,
    { label: 'models query', params: { from: toChTime(fromMs), to: toChTime(toMs) } },
  );
  for (const r of rows) if (r.model !== '') names.add(r.model);
  return [...names].sort();
}

/** Options of one {@link runDetectionOnce} call. */
export interface RunOnceOptions extends DetectorOptions {
  model: string;
  /** The run time, epoch ms: the window ends at its interval end ({@link intervalEnd}). */
  now: number;
  /** Detector state carried between runs (a fresh one per call when omitted). */
  state?: DetectorState;
  /** Cancels the run: its statements are killed in ClickHouse and it rejects (`cancelled` or `timeout`). */
  signal?: AbortSignal | undefined;
  /** Absolute deadline of the run's statements, epoch ms. */
  deadline?: number | undefined;
  /** Metrics to update (the loop's); none when omitted. */
  metrics?: DetectMetrics;
}

function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new ModelwatchError(ErrorCodes.cancelled, 'detection run cancelled', { cause: r });
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(errorMessage(e)));

/** Settles with `work`, or rejects as soon as `signal` fires (the work is left to settle by itself). */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(asError(e));
      },
    );
  });
}

/** Compares a run's verdicts with the model's previous ones; logs one `info` line when any changed. */
function logVerdictChange(log: Logger, state: DetectorState, run: RunKey, report: DriftReport): void {
  const prev = state.verdict(run.model);
  const changed = report.features.filter((f) => (prev?.features.get(f.name) ?? false) !== f.drifted);
  const wasDrifted = prev?.dataset ?? false;
  if (changed.length > 0 || wasDrifted !== report.dataset.drifted) {
    log.info('drift verdict changed', {
      model: run.model,
      run_id: run.run_id,
      window: { from: new Date(run.from).toISOString(), to: new Date(run.to).toISOString() },
      reference_id: referenceIdOf(report),
      dataset: { drifted: report.dataset.drifted, was: wasDrifted, share: report.dataset.share },
      features: changed.map((f) => ({
        name: f.name,
        drifted: f.drifted,
        was: !f.drifted,
        method: f.method,
        score: f.score,
        threshold: f.threshold,
      })),
    });
  }
  state.setVerdict(run.model, {
    dataset: report.dataset.drifted,
    features: new Map(report.features.map((f) => [f.name, f.drifted])),
  });
}

/**
 * One detection run for one model at time `now`. Its interval is [end − intervalMs, end) with `end` = `now`
 * aligned down to `intervalMs`; its window is [end − windowMs, end). It stores:
 * - a row in `mw_detect_runs` with its status: `no_data` when the window has no rows, `no_reference` when the
 *   drift engine has no reference yet, `failed` / `timed_out` with the error, else `ok`;
 * - drift against the reference (and per configured segment) in `mw_drift_results`, performance in
 *   `mw_performance_results`;
 * - series in `mw_metric_series`, each with its window and the interval: traffic, feature means and quarantine
 *   rate over the interval; drift share and scores, data-quality rates, volume ratio, performance and label
 *   coverage over the window. Series over the interval (and window series too when windowMs ≤ intervalMs, so
 *   they do not overlap) are fed to the streaming detectors, once per interval: a run whose interval was
 *   already fed for this model stores no series. Alarms go to `mw_change_points`.
 * A cancelled or timed-out run is recorded `timed_out` and rejects; any other failure is recorded `failed` and
 * returned.
 */
export function runDetectionOnce(runtime: RuntimeContext, options: RunOnceOptions): Promise<DetectionRun> {
  return startRun(runtime, options).result;
}

/**
 * {@link runDetectionOnce}, plus `settled`: when the run's work has really stopped. After a cancellation the
 * result rejects at once while work that ignores the signal may still be settling (it writes nothing more).
 */
function startRun(
  runtime: RuntimeContext,
  options: RunOnceOptions,
): { result: Promise<DetectionRun>; settled: Promise<void> } {
  let settle: (work: Promise<void>) => void = () => undefined;
  // Resolves once the body's work settles (resolving with a promise adopts it; failures are the result's).
  const settled = new Promise<void>((resolve) => {
    settle = (work) => resolve(work.catch(() => undefined));
  });
  const result = runBody(runtime, options, settle);
  // A run that fails before its body starts (bad options) has nothing left to settle.
  result.catch(() => undefined).finally(() => settle(Promise.resolve()));
  return { result, settled };
}

async function runBody(
  runtime: RuntimeContext,
  options: RunOnceOptions,
  settle: (work: Promise<void>) => void,
): Promise<DetectionRun> {
  const started = performance.now();
  const { signal } = options;
  // Every statement of the run: the `detect` role's limits, the run's signal and deadline.
  const ctx: RuntimeContext = {
    ...runtime,
    store: runtime.store.with({
      role: 'detect',
      signal,
      ...(options.deadline !== undefined ? { deadline: options.deadline } : {}),
    }),
  };
  const o = resolveOptions(ctx, options);
  const { model, now } = options;
  const state = options.state ?? new DetectorState(o.monitor);
  const end = intervalEnd(now, o.intervalMs);
  const run: RunKey = { run_id: newId(), model, ts: now, from: end - o.windowMs, to: end };
  const out: DetectionRun = {
    run_id: run.run_id,
    model,
    ts: new Date(now).toISOString(),
    window: { from: new Date(run.from).toISOString(), to: new Date(run.to).toISOString() },
    interval_ms: o.intervalMs,
    status: 'ok',
    error: '',
    reference_id: '',
    rows: 0,
    duration_ms: 0,
    drift: null,
    drift_error: null,
    segments: [],
    performance: null,
    traffic: null,
    series: [],
    change_points: [],
  };
  // Past a cancellation the body writes nothing more (it may still be settling after the run was given up).
  const check = (): void => {
    if (signal?.aborted === true) throw abortError(signal);
  };
  const record = (store: Store): Promise<void> =>
    store.insert(
      Tables.detectRuns,
      [
        {
          run_id: run.run_id,
          model,
          ts: toChTime(now),
          window_from: toChTime(run.from),
          window_to: toChTime(run.to),
          interval_ms: o.intervalMs,
          reference_id: out.reference_id,
          status: out.status,
          error: out.error,
          duration_ms: out.duration_ms,
          rows: out.rows,
        },
      ],
      { label: 'detect run record' },
    );

  const body = async (): Promise<void> => {
    const [count] = await ctx.store.query<{ n: string | number }>(
      `SELECT count() AS n FROM ${Tables.predictions}
       WHERE model = {model:String} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}`,
      { label: 'window rows query', params: { model, from: toChTime(run.from), to: toChTime(run.to) } },
    );
    out.rows = Number(count?.n ?? 0);
    if (out.rows === 0) out.status = 'no_data';
    const segmentReports: SegmentReport[] = [];
    if (out.rows > 0 && o.detectDrift) {
      const splits = segmentSplits(ctx, model);
      let outcome: ReturnType<typeof driftOutcome>;
      try {
        const report = await o.detectDrift(ctx.store, {
          model,
          from: run.from,
          to: run.to,
          signal,
          segmentBy: splits[0],
        });
        outcome = driftOutcome({ report });
        if (report && isDetection(report)) segmentReports.push(...(report.segments ?? []));
      } catch (err) {
        check();
        outcome = driftOutcome({ error: err });
      }
      check();
      // Further splits: the engine reports one split per call.
      if (outcome.report) {
        for (const segmentBy of splits.slice(1)) {
          const r = await o.detectDrift(ctx.store, { model, from: run.from, to: run.to, signal, segmentBy });
          check();
          if (r && isDetection(r)) segmentReports.push(...(r.segments ?? []));
        }
      }
      out.status = outcome.status;
      out.error = outcome.error;
      out.drift = outcome.report;
      out.drift_error = outcome.error === '' ? null : outcome.error;
      if (out.drift) out.reference_id = referenceIdOf(out.drift);
      if (outcome.status === 'failed') ctx.logger.warn('drift detection failed', { model, error: outcome.error });
    }
    // Multivariate and embedding drift (src/drift/mv-detect.ts): stores its own results, returns its series.
    const mv = out.drift
      ? await runMultivariateStage({
          store: ctx.store,
          config: ctx.config,
          logger: ctx.logger,
          signal,
          report: out.drift,
          run: { run_id: run.run_id, model, ts: now, fromMs: run.from, toMs: run.to },
          metrics: options.metrics && { registry: ctx.metrics, label: (m) => options.metrics?.label(m) ?? m },
        })
      : null;
    check();
    if (out.rows > 0) {
      const schema = ctx.config.models[model];
      out.performance = await computePerformance(ctx.store, {
        model,
        fromMs: run.from,
        toMs: run.to,
        ...(schema ? { schema } : {}),
      });
      check();
    }

    // Series: once per interval.
    const feedInterval = (state.lastIntervalEnd(model) ?? -Infinity) < end;
    const points: SeriesPoint[] = [];
    const fed: SeriesPoint[] = [];
    if (feedInterval) {
      const slice = { fromMs: end - Math.min(o.intervalMs, o.windowMs), toMs: end };
      out.traffic = await queryTraffic(ctx.store, model, slice.fromMs, slice.toMs);
      const means = await queryFeatureMeans(ctx.store, model, slice.fromMs, slice.toMs, o.maxFeatureSeries);
      const [q] = await ctx.store.query<{ n: string | number }>(
        `SELECT count() AS n FROM ${Tables.quarantine}
         WHERE model = {model:String} AND received_at >= {from:DateTime64(3, 'UTC')} AND received_at < {to:DateTime64(3, 'UTC')}`,
        { label: 'quarantine count query', params: { model, from: toChTime(slice.fromMs), to: toChTime(slice.toMs) } },
      );
      check();
      const own = intervalSeries(slice, out.traffic, means, Number(q?.n ?? 0));
      const windowed = windowSeries({ fromMs: run.from, toMs: run.to }, out.drift, out.performance);
      points.push(...own, ...windowed, ...(mv?.series ?? []));
      fed.push(...own, ...(o.windowMs <= o.intervalMs ? windowed : []));
    }
    for (const p of fed) {
      for (const alarm of state.feed(model, p.series, p.value, p.feature)) {
        out.change_points.push({
          ...alarm,
          model,
          series: p.series,
          feature: p.feature,
          ts: new Date(now).toISOString(),
        });
      }
    }
    out.series = points;

    check();
    if (out.performance) await ctx.store.insert(Tables.performanceResults, performanceRows(run, out.performance));
    if (out.drift) {
      const fdr = ctx.config.detect.fdr;
      const rows = driftRows(run, out.drift, fdr, '');
      for (const s of segmentReports) {
        const key = segmentKey(s);
        out.segments.push(key);
        rows.push(...driftRows(run, { ...s.report, reference: out.drift.reference }, fdr, key));
      }
      await ctx.store.insert(Tables.driftResults, rows);
    }
    if (points.length > 0) {
      await ctx.store.insert(
        Tables.metricSeries,
        points.map((p) => ({
          run_id: run.run_id,
          model,
          ts: toChTime(now),
          series: p.series,
          feature: p.feature,
          value: p.value,
          window_from: toChTime(p.fromMs),
          window_to: toChTime(p.toMs),
          interval_ms: o.intervalMs,
        })),
      );
    }
    if (out.change_points.length > 0) {
      await ctx.store.insert(
        Tables.changePoints,
        out.change_points.map((c) => ({
          run_id: run.run_id,
          model,
          ts: toChTime(now),
          series: c.series,
          feature: c.feature,
          detector: c.detector,
          params: JSON.stringify(c.params),
          value: c.value,
          series_index: c.index,
        })),
      );
    }
    if (feedInterval) state.markInterval(model, end);
    if (out.drift) logVerdictChange(ctx.logger, state, run, out.drift);
  };

  try {
    const work = body();
    settle(work);
    await raceAbort(work, signal);
  } catch (err) {
    out.error = errorMessage(err);
    if (
      signal?.aborted === true ||
      isModelwatchError(err, ErrorCodes.timeout) ||
      isModelwatchError(err, ErrorCodes.cancelled)
    ) {
      out.status = 'timed_out';
      out.duration_ms = performance.now() - started;
      options.metrics?.run(model, out.status, out.duration_ms, now);
      // The run's own store is cancelled: record through the runtime's.
      await record(runtime.store.with({ role: 'detect' })).catch((e: unknown) =>
        ctx.logger.warn('detect run record failed', { model, error: errorMessage(e) }),
      );
      throw err;
    }
    out.status = 'failed';
    ctx.logger.error('detection run failed', { model, error: out.error });
  }
  out.duration_ms = performance.now() - started;
  ctx.logger.debug('detect run', {
    model,
    run_id: run.run_id,
    status: out.status,
    window: out.window,
    duration_ms: out.duration_ms,
  });
  options.metrics?.run(model, out.status, out.duration_ms, now);
  if (out.drift) options.metrics?.drift(model, out.drift);
  if (out.performance) options.metrics?.performance(model, out.performance);
  for (const c of out.change_points) options.metrics?.changePoint(model, c.detector);
  await record(runtime.store.with({ role: 'detect' })).catch((e: unknown) =>
    ctx.logger.warn('detect run record failed', { model, error: errorMessage(e) }),
  );
  return out;
}

/** A started detect loop; {@link RunningRole} plus a way to trigger a run now (tests, API). */
export interface RunningDetector extends RunningRole {
  /**
   * Runs once now unless a run is in flight (then waits for that one, at most until its deadline); resolves
   * with the runs made. Models whose current interval was already run are skipped.
   */
  runNow(): Promise<DetectionRun[]>;
  readonly state: DetectorState;
}

/**
 * Starts the detect loop. The state is first rebuilt from the stored results ({@link DetectorState.rebuild}:
 * streaming detectors replay their stored series, the last verdicts are read back). Then every `intervalMs`
 * (first run at once) for each model, {@link runDetectionOnce} — once per interval: a model whose current
 * interval was already run is skipped. Runs never overlap (a tick while one is in flight is skipped and
 * counted). Each run has a deadline (`timeoutMs`): every statement carries it, and when it passes the run's
 * signal fires, its statement in flight is killed in ClickHouse, the model is recorded `timed_out` and the run
 * settles at once. Errors are logged and counted, never thrown out of the timer; timers are unref'ed.
 * `stop()` stops the timer, cancels the in-flight run the same way and waits for its work to settle.
 */
export async function startDetector(ctx: RuntimeContext, options: DetectorOptions = {}): Promise<RunningDetector> {
  const o = resolveOptions(ctx, options);
  const log: Logger = ctx.logger;
  // Registered before the (possibly long) rebuild, so a scrape during start-up already lists them.
  const metrics = new DetectMetrics(ctx.metrics, { maxFeatures: o.maxFeatureGauges, maxModels: o.maxModelLabels });
  const state = await DetectorState.rebuild(ctx.store.with({ role: 'detect' }), {
    intervalMs: o.intervalMs,
    monitor: o.monitor,
    maxValues: o.replayMaxValues,
  }).catch((err: unknown) => {
    log.warn('detector state not rebuilt from stored series; detectors start cold', { error: errorMessage(err) });
    return new DetectorState(o.monitor);
  });
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // `busy`: the work of the current run, until it really settles; `answer`: what callers of this run get (at the
  // latest at its deadline).
  let busy: Promise<unknown> | null = null;
  let answer: Promise<DetectionRun[]> = Promise.resolve([]);
  let cancelRun: AbortController | null = null;

  const runAll = async (cancel: AbortController, runs: DetectionRun[], works: Array<Promise<void>>): Promise<void> => {
    const signal = cancel.signal;
    const now = o.clock();
    const end = intervalEnd(now, o.intervalMs);
    const deadline = Date.now() + o.timeoutMs;
    try {
      const models = await modelsToRun(
        { ...ctx, store: ctx.store.with({ role: 'detect', signal, deadline }) },
        o,
        end - o.windowMs,
        end,
      );
      for (const model of models) {
        // Past the deadline (or once stopped), the models not yet started wait for the next tick.
        if (stopped || signal.aborted) break;
        if ((state.lastIntervalEnd(model) ?? -Infinity) >= end) continue;
        const started = startRun(ctx, { ...o, model, now, state, signal, deadline, metrics });
        works.push(started.settled);
        try {
          runs.push(await started.result);
        } catch (err) {
          log.error('detection run timed out', { model, timeoutMs: o.timeoutMs, error: errorMessage(err) });
        }
      }
      for (const r of runs) {
        for (const c of r.change_points) {
          log.info('change point', {
            model: r.model,
            series: c.series,
            feature: c.feature,
            detector: c.detector,
            value: c.value,
          });
        }
      }
    } catch (err) {
      log.error('detection run failed', { error: errorMessage(err) });
    }
  };

  const tick = (): Promise<DetectionRun[]> => {
    if (busy) {
      metrics.skipped();
      return answer;
    }
    const cancel = new AbortController();
    cancelRun = cancel;
    const endTimer = metrics.startRun();
    const t = setTimeout(
      () => cancel.abort(new ModelwatchError(ErrorCodes.timeout, `detection run exceeded ${o.timeoutMs} ms`)),
      o.timeoutMs,
    );
    t.unref();
    const runs: DetectionRun[] = [];
    const works: Array<Promise<void>> = [];
    const work = runAll(cancel, runs, works);
    // Busy until every model's work has settled, even work that ignored the cancellation: runs never overlap.
    const current = work
      .then(() => Promise.all(works))
      .finally(() => {
        clearTimeout(t);
        endTimer();
        if (busy === current) busy = null;
        if (cancelRun === cancel) cancelRun = null;
      });
    busy = current;
    // Callers get the runs done so far once the work settles or the deadline passes, whichever is first.
    answer = raceAbort(current, cancel.signal).then(
      () => runs,
      () => [...runs],
    );
    return answer;
  };

  const schedule = (delayMs: number): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      void tick().finally(() => {
        // Next tick at the next interval boundary, so every interval gets its run.
        const next = intervalEnd(o.clock(), o.intervalMs) + o.intervalMs - o.clock();
        schedule(Math.min(o.intervalMs, Math.max(0, next)));
      });
    }, delayMs);
    timer.unref();
  };
  schedule(0);

  return {
    name: 'detect',
    urls: [],
    state,
    runNow: tick,
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearTimeout(timer);
      cancelRun?.abort(new ModelwatchError(ErrorCodes.cancelled, 'detector stopped'));
      if (busy) await busy.catch(() => undefined);
    },
  };
}
