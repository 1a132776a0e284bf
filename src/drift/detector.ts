import type { Counter, Histogram, Registry } from 'prom-client';
import { counterOn, histogramOn, modelLabelsOn } from '../common/metrics.js';
import { ErrorCodes, ModelwatchError, errorMessage, isModelwatchError } from '../common/errors.js';
import { newId } from '../common/ids.js';
import type { Logger } from '../common/logger.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { Tables } from '../store/migrations.js';
import { toChTime, type Store } from '../store/store.js';
import { detectDrift, type DriftDetection } from './detect-drift.js';
import { computePerformance, type PerformanceReport } from './performance/query.js';
import { queryFeatureMeans, queryTraffic, type TrafficSummary } from './performance/traffic.js';
import type { ClassificationMetrics, EstimatedMetrics, RegressionMetrics } from './performance/types.js';
import { SeriesMonitor, type ChangeAlarm, type SeriesMonitorOptions } from './streaming/monitor.js';
import type { DriftReport, FeatureReport } from './stats/types.js';

/**
 * Computes drift of `model` over [from, to) against its reference; null when the model has no reference yet.
 * The detect loop calls the drift engine's `detectDrift` through this port.
 */
export type DriftDetectFn = (
  store: Store,
  options: { model: string; from: number; to: number; signal?: AbortSignal | undefined },
) => Promise<DriftReport | DriftDetection | null>;

/** Options of {@link startDetector} and {@link runDetectionOnce}. */
export interface DetectorOptions {
  /** Time between runs. @default config.detect.intervalMs (60 000) */
  intervalMs?: number;
  /** Length of the window each run examines, ending at the run time. @default config.detect.windowMs (3 600 000) */
  windowMs?: number;
  /**
   * Deadline of one run (all models). Past it the run's statements are cancelled in ClickHouse and the
   * models not yet started wait for the next tick. @default config.detect.timeoutMs (120 000)
   */
  timeoutMs?: number;
  /**
   * The drift engine. `null` disables drift (runs then store performance, series and change points only).
   * @default {@link detectDrift} with the runtime's config (reference: the model's stored one, else its first hour)
   */
  detectDrift?: DriftDetectFn | null;
  /** Detectors per metric series. @default {} (the {@link SeriesMonitor} defaults) */
  monitor?: SeriesMonitorOptions;
  /** Numeric features whose per-interval mean is watched, first by name. @default 50 */
  maxFeatureSeries?: number;
  /** Models to run besides those configured and those with traffic in the window. @default [] */
  models?: string[];
  /** Clock, epoch ms. @default Date.now */
  clock?: () => number;
}

const defaultsFixed = {
  monitor: {},
  maxFeatureSeries: 50,
  models: [],
  clock: Date.now,
} satisfies Partial<Required<DetectorOptions>>;

type ResolvedOptions = Required<Omit<DetectorOptions, 'detectDrift'>> & { detectDrift: DriftDetectFn | null };

function resolveOptions(ctx: RuntimeContext, options: DetectorOptions): ResolvedOptions {
  const o: ResolvedOptions = {
    intervalMs: ctx.config.detect.intervalMs,
    windowMs: ctx.config.detect.windowMs,
    timeoutMs: ctx.config.detect.timeoutMs,
    ...defaultsFixed,
    ...options,
    detectDrift:
      options.detectDrift === undefined
        ? (store, { model, from, to }) => detectDrift(store, { model, from, to, config: ctx.config, now: to })
        : options.detectDrift,
  };
  for (const key of ['intervalMs', 'windowMs', 'timeoutMs', 'maxFeatureSeries'] as const) {
    if (!Number.isInteger(o[key]) || o[key] <= 0) {
      throw new ModelwatchError(ErrorCodes.configInvalid, `detector ${key}: must be a positive integer`, { field: key });
    }
  }
  return o;
}

/** A change point raised by a streaming detector on one metric series. */
export interface ChangePoint extends ChangeAlarm {
  model: string;
  series: string;
  ts: string;
}

/** What one run did for one model. */
export interface DetectionRun {
  run_id: string;
  model: string;
  ts: string;
  window: { from: string; to: string };
  /** Drift against the reference; null without a drift engine or a reference; `drift_error` says why it failed. */
  drift: DriftReport | null;
  drift_error: string | null;
  performance: PerformanceReport;
  /** Traffic over the last interval (the detectors' sampling period). */
  traffic: TrafficSummary;
  /** The metric values fed to the streaming detectors in this run, by series name. */
  series: Record<string, number>;
  change_points: ChangePoint[];
}

/** Streaming-detector state kept across runs (per model, per series). Lost on restart; detectors re-warm. */
export class DetectorState {
  private readonly monitors = new Map<string, SeriesMonitor>();

  constructor(private readonly options: SeriesMonitorOptions = {}) {}

  /** Feeds one value of `model`'s `series`; returns the alarms. */
  feed(model: string, series: string, value: number): ChangeAlarm[] {
    const key = JSON.stringify([model, series]);
    let m = this.monitors.get(key);
    if (!m) {
      m = new SeriesMonitor(this.options);
      this.monitors.set(key, m);
    }
    return m.update(value);
  }

  /** Number of series watched. */
  get size(): number {
    return this.monitors.size;
  }
}

interface DetectorMetrics {
  runs: Counter<'model' | 'outcome'>;
  duration: Histogram;
  changePoints: Counter<'model' | 'detector'>;
  skipped: Counter;
  /** The `model` label value of a model name: bounded by `metrics.maxModels` (beyond it `other`). */
  model: (name: string) => string;
}

function metricsOf(registry: Registry): DetectorMetrics {
  // get-or-create: several detectors (tests, `up` restarts) may share one registry.
  return {
    runs: counterOn<'model' | 'outcome'>(registry, {
      name: 'modelwatch_detect_runs_total',
      help: 'Detection runs per model by outcome (ok, error, timeout).',
      labelNames: ['model', 'outcome'] as const,
    }),
    duration: histogramOn(registry, {
      name: 'modelwatch_detect_run_duration_seconds',
      help: 'Duration of one detection run over all models.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    }),
    changePoints: counterOn<'model' | 'detector'>(registry, {
      name: 'modelwatch_detect_change_points_total',
      help: 'Change points raised by streaming detectors.',
      labelNames: ['model', 'detector'] as const,
    }),
    skipped: counterOn(registry, {
      name: 'modelwatch_detect_runs_skipped_total',
      help: 'Ticks skipped because the previous run was still in flight.',
    }),
    model: (name) => modelLabelsOn(registry).of(name, '')[0],
  };
}

function insert(store: Store, table: string, values: object[]): Promise<void> {
  return store.insert(table, values);
}

/** True for the drift engine's full detection (window quality included), false for a bare report. */
function isDetection(r: DriftReport | DriftDetection): r is DriftDetection {
  const q = (r as Partial<DriftDetection>).quality;
  return typeof q === 'object' && q !== null && 'volume' in q;
}

const finite = (v: number | null | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** statistic / p-value of the method that decided a feature's verdict. */
function methodStatistic(f: FeatureReport): { statistic: number | null; p_value: number | null } {
  if (f.method === 'ks') return { statistic: finite(f.stats.ks?.statistic), p_value: finite(f.stats.ks?.p_value) };
  if (f.method === 'chi_square') {
    return { statistic: finite(f.stats.chi_square?.statistic), p_value: finite(f.stats.chi_square?.p_value) };
  }
  return { statistic: finite(f.score), p_value: null };
}

function driftRows(run: { run_id: string; model: string; ts: number; from: number; to: number }, report: DriftReport, fdr: boolean): object[] {
  const refId = typeof report.reference.id === 'string' ? report.reference.id : '';
  const segment = typeof report.current.segment === 'string' ? report.current.segment : '';
  const base = {
    run_id: run.run_id,
    model: run.model,
    ts: toChTime(run.ts),
    window_from: toChTime(run.from),
    window_to: toChTime(run.to),
    reference_id: refId,
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

function performanceRows(
  run: { run_id: string; model: string; ts: number; from: number; to: number },
  report: PerformanceReport,
): object[] {
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
      if (typeof value === 'number' && metric !== 'rows') rows.push({ ...base, source, metric, value: finite(value), details: '{}' });
      else if (value === null) rows.push({ ...base, source, metric, value: null, details: '{}' });
    }
    if ('confusion_matrix' in m) {
      rows.push({ ...base, source, metric: 'confusion_matrix', value: null, details: JSON.stringify(m.confusion_matrix) });
    }
    if ('expected_confusion' in m && m.expected_confusion) {
      rows.push({ ...base, source, metric: 'expected_confusion', value: null, details: JSON.stringify(m.expected_confusion) });
    }
  };
  if (report.measured) scalars('measured', report.measured);
  if (report.estimated) scalars('estimated', report.estimated);
  return rows;
}

/** Models to examine: configured ones, extra ones, and those with traffic in the window. */
async function modelsToRun(ctx: RuntimeContext, o: ResolvedOptions, fromMs: number, toMs: number): Promise<string[]> {
  const names = new Set<string>([...Object.keys(ctx.config.models), ...o.models]);
  const rows = await ctx.store.query<{ model: string }>(
    `SELECT DISTINCT model FROM ${Tables.predictions}
     WHERE ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
     UNION DISTINCT
     SELECT DISTINCT model FROM ${Tables.requests}
     WHERE ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')} AND status >= 200 AND status < 300`,
    { label: 'models query', params: { from: toChTime(fromMs), to: toChTime(toMs) } },
  );
  for (const r of rows) if (r.model !== '') names.add(r.model);
  return [...names].sort();
}

/** Options of one {@link runDetectionOnce} call. */
export interface RunOnceOptions extends DetectorOptions {
  model: string;
  /** The run time, epoch ms: the window ends here. */
  now: number;
  /** Detector state carried between runs (a fresh one per call when omitted). */
  state?: DetectorState;
  /** Cancels the run: its statements are killed in ClickHouse and it rejects (`cancelled` or `timeout`). */
  signal?: AbortSignal | undefined;
}

/**
 * One detection run for one model at time `now`: drift over [now − windowMs, now) against the reference (when
 * a drift engine is given), measured and estimated performance over the same window, and the per-interval
 * series (traffic over [now − intervalMs, now), feature means, drift scores) fed to the streaming detectors.
 * Every result is stored: `mw_drift_results`, `mw_performance_results`, `mw_metric_series`, `mw_change_points`.
 */
export async function runDetectionOnce(runtime: RuntimeContext, options: RunOnceOptions): Promise<DetectionRun> {
  // Every statement of the run: the `detect` role's limits, the run's signal.
  const ctx: RuntimeContext = { ...runtime, store: runtime.store.with({ role: 'detect', signal: options.signal }) };
  const o = resolveOptions(ctx, options);
  const { model, now } = options;
  const state = options.state ?? new DetectorState(o.monitor);
  const run = { run_id: newId(), model, ts: now, from: now - o.windowMs, to: now };
  const schema = ctx.config.models[model];

  let drift: DriftReport | null = null;
  let driftError: string | null = null;
  if (o.detectDrift) {
    try {
      drift = await o.detectDrift(ctx.store, { model, from: run.from, to: run.to, signal: options.signal });
    } catch (err) {
      // A cancelled run stops here; anything else must not stop performance and series from being recorded.
      if (options.signal?.aborted === true) throw err;
      driftError = errorMessage(err);
      ctx.logger.warn('drift detection failed', { model, error: driftError });
    }
  }
  const performance = await computePerformance(ctx.store, {
    model,
    fromMs: run.from,
    toMs: run.to,
    ...(schema ? { schema } : {}),
  });
  const sliceFrom = now - Math.min(o.intervalMs, o.windowMs);
  const traffic = await queryTraffic(ctx.store, model, sliceFrom, now);
  const means = await queryFeatureMeans(ctx.store, model, sliceFrom, now, o.maxFeatureSeries);

  const series: Record<string, number> = { 'traffic.requests': traffic.requests, 'traffic.rows': traffic.rows };
  if (traffic.error_rate !== null) series['traffic.error_rate'] = traffic.error_rate;
  if (traffic.latency_ms.p95 !== null) series['traffic.latency_p95_ms'] = traffic.latency_ms.p95;
  for (const m of means) series[`feature_mean.${m.feature}`] = m.mean;
  if (drift) {
    series['drift.share'] = drift.dataset.share;
    const ratio = isDetection(drift) ? drift.quality.volume.ratio : null;
    if (ratio !== null) series['quality.volume_ratio'] = ratio;
    for (const f of drift.features) if (f.score !== null && Number.isFinite(f.score)) series[`drift.score.${f.name}`] = f.score;
  }
  const est = performance.estimated?.accuracy;
  if (est !== null && est !== undefined) series['performance.estimated_accuracy'] = est;

  const changePoints: ChangePoint[] = [];
  for (const [name, value] of Object.entries(series)) {
    for (const alarm of state.feed(model, name, value)) {
      changePoints.push({ ...alarm, model, series: name, ts: new Date(now).toISOString() });
    }
  }

  await insert(ctx.store, Tables.performanceResults, performanceRows(run, performance));
  if (drift) await insert(ctx.store, Tables.driftResults, driftRows(run, drift, ctx.config.detect.fdr));
  await insert(
    ctx.store,
    Tables.metricSeries,
    Object.entries(series).map(([name, value]) => ({ run_id: run.run_id, model, ts: toChTime(now), series: name, value })),
  );
  await insert(
    ctx.store,
    Tables.changePoints,
    changePoints.map((c) => ({
      run_id: run.run_id,
      model,
      ts: toChTime(now),
      series: c.series,
      detector: c.detector,
      params: JSON.stringify(c.params),
      value: c.value,
      series_index: c.index,
    })),
  );
  return {
    run_id: run.run_id,
    model,
    ts: new Date(now).toISOString(),
    window: { from: new Date(run.from).toISOString(), to: new Date(run.to).toISOString() },
    drift,
    drift_error: driftError,
    performance,
    traffic,
    series,
    change_points: changePoints,
  };
}

/** A started detect loop; {@link RunningRole} plus a way to trigger a run now (tests, API). */
export interface RunningDetector extends RunningRole {
  /** Runs once now unless a run is in flight (then waits for that one); resolves with the runs made. */
  runNow(): Promise<DetectionRun[]>;
  readonly state: DetectorState;
}

/**
 * Starts the detect loop: every `intervalMs` (first run at once), for each model, {@link runDetectionOnce}.
 * Runs never overlap (a tick while one is in flight is skipped and counted). Each run has a deadline
 * (`timeoutMs`): every statement of the run carries it as `max_execution_time`, and when it passes the run's
 * signal fires, so the statement in flight is killed in ClickHouse, the run settles and the loop moves on.
 * Errors are logged and counted, never thrown out of the timer; timers are unref'ed. `stop()` stops the
 * timer, cancels the in-flight run the same way and waits for it to settle.
 */
export function startDetector(ctx: RuntimeContext, options: DetectorOptions = {}): Promise<RunningDetector> {
  const o = resolveOptions(ctx, options);
  const state = new DetectorState(o.monitor);
  const metrics = metricsOf(ctx.metrics);
  const log: Logger = ctx.logger;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let inFlight: Promise<DetectionRun[]> | null = null;
  let cancelRun: AbortController | null = null;

  const runAll = async (cancel: AbortController): Promise<DetectionRun[]> => {
    const signal = cancel.signal;
    const now = o.clock();
    const endTimer = metrics.duration.startTimer();
    const runs: DetectionRun[] = [];
    const deadline = Date.now() + o.timeoutMs;
    const timer = setTimeout(() => {
      metrics.runs.inc({ model: '', outcome: 'timeout' });
      log.error('detection run timed out', { timeoutMs: o.timeoutMs });
      cancel.abort(new ModelwatchError(ErrorCodes.timeout, `detection run exceeded ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    timer.unref();
    // The deadline also bounds each statement's max_execution_time, so the engine stops it on time by itself.
    const runCtx: RuntimeContext = { ...ctx, store: ctx.store.with({ role: 'detect', signal, deadline }) };
    try {
      const models = await modelsToRun(runCtx, o, now - o.windowMs, now);
      for (const model of models) {
        // Past the deadline (or once stopped), the models not yet started wait for the next tick.
        if (stopped || signal.aborted) break;
        try {
          runs.push(await runDetectionOnce(runCtx, { ...o, detectDrift: o.detectDrift, model, now, state, signal }));
          metrics.runs.inc({ model: metrics.model(model), outcome: 'ok' });
        } catch (err) {
          const timedOut = signal.aborted || isModelwatchError(err, ErrorCodes.timeout);
          metrics.runs.inc({ model: metrics.model(model), outcome: timedOut ? 'timeout' : 'error' });
          if (timedOut) log.warn('detection run cut by its deadline or stop', { model, timeoutMs: o.timeoutMs, error: errorMessage(err) });
          else log.error('detection run failed', { model, error: errorMessage(err) });
        }
      }
      for (const r of runs) {
        for (const c of r.change_points) {
          metrics.changePoints.inc({ model: metrics.model(r.model), detector: c.detector });
          log.info('change point', { model: r.model, series: c.series, detector: c.detector, value: c.value });
        }
      }
    } catch (err) {
      log.error('detection run failed', { error: errorMessage(err) });
    } finally {
      clearTimeout(timer);
      endTimer();
    }
    return runs;
  };

  const tick = (): Promise<DetectionRun[]> => {
    if (inFlight) {
      metrics.skipped.inc();
      return inFlight;
    }
    const cancel = new AbortController();
    cancelRun = cancel;
    const current = runAll(cancel);
    inFlight = current;
    void current.finally(() => {
      if (inFlight === current) inFlight = null;
      if (cancelRun === cancel) cancelRun = null;
    });
    // Past the deadline the caller gets [] at once; the run itself stays in flight until it has settled
    // (its statements were cancelled; code that ignores the signal is waited for), so runs never overlap.
    const cut = new Promise<DetectionRun[]>((resolve) => cancel.signal.addEventListener('abort', () => resolve([]), { once: true }));
    return Promise.race([current, cut]);
  };

  const schedule = (delayMs: number): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      void tick().finally(() => schedule(o.intervalMs));
    }, delayMs);
    timer.unref();
  };
  schedule(0);

  return Promise.resolve({
    name: 'detect',
    urls: [],
    state,
    runNow: tick,
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearTimeout(timer);
      cancelRun?.abort(new ModelwatchError(ErrorCodes.cancelled, 'detector stopped'));
      if (inFlight) await inFlight.catch(() => undefined);
    },
  });
}
