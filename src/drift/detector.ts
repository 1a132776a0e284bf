import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { Tables } from '../store/migrations.js';
import { toChTime } from '../store/store.js';
import { DetectMetrics } from './detect-metrics.js';
import { DetectorState } from './detect-state.js';
import { detectDrift } from './detect-drift.js';
import { intervalEnd, raceAbort, startCycle, type CycleResult, type DetectionRun } from './fleet/cycle.js';
import { batchedDrift } from './fleet/batch-drift.js';
import { perModelDrift, type DriftDetectFn, type FleetDriftFn } from './fleet/drift.js';
import { DEFAULT_MONITOR_DETECTORS, type SeriesMonitorOptions } from './streaming/monitor.js';

export { DetectorState } from './detect-state.js';
export type { RunStatus } from './detect-metrics.js';
export type { SeriesPoint } from './detect-series.js';
export { intervalEnd, segmentKey, startCycle } from './fleet/cycle.js';
export type { ChangePoint, CycleOptions, CycleResult, DetectionRun } from './fleet/cycle.js';
export { driftOutcome, perModelDrift } from './fleet/drift.js';
export { batchedDrift } from './fleet/batch-drift.js';
export type { BatchedDriftOptions } from './fleet/batch-drift.js';
export type { DriftDetectFn, DriftOutcome, FleetDriftFn, FleetDriftRequest, FleetDriftResult } from './fleet/drift.js';

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
   * Deadline of one run (one cycle over all models). Past it the cycle's statements are cancelled in ClickHouse,
   * the models in flight (all of them in a batched step, the one being computed in a per-model drift step) are
   * recorded `timed_out` and the others wait for the next tick. @default config.detect.timeoutMs (120 000)
   */
  timeoutMs?: number;
  /**
   * A per-model drift engine, called for one model after another ({@link perModelDrift}). `null` disables drift
   * (runs then store performance, series and change points only). When set (or null) it replaces `driftStep`.
   */
  detectDrift?: DriftDetectFn | null;
  /**
   * The drift step of a cycle, for all its models at once.
   * @default {@link batchedDrift} with the runtime's config: stored references and windows of all models read
   * together and compared in memory; models it leaves (no stored reference yet, a configured reference or
   * segments) go through the per-model {@link detectDrift}, one after another
   */
  driftStep?: FleetDriftFn;
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

type ResolvedOptions = Required<Omit<DetectorOptions, 'detectDrift' | 'driftStep'>> & { drift: FleetDriftFn | null };

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

function withoutDrift(options: DetectorOptions): Omit<DetectorOptions, 'detectDrift' | 'driftStep'> {
  const { detectDrift: _d, driftStep: _s, ...rest } = options;
  return rest;
}

/** The drift step: the given per-model engine, else the given step, else the default engine. */
function resolveDrift(ctx: RuntimeContext, options: DetectorOptions): FleetDriftFn | null {
  if (options.detectDrift === null) return null;
  if (options.detectDrift !== undefined) return perModelDrift(options.detectDrift);
  if (options.driftStep !== undefined) return options.driftStep;
  const perModel = perModelDrift((store, { model, from, to, segmentBy }) => {
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
  });
  return batchedDrift({ config: ctx.config, fallback: perModel });
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
    ...withoutDrift(options),
    drift: resolveDrift(ctx, options),
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

/**
 * One detection run for one model at time `now` (a cycle of one model, see {@link startCycle}). Its interval is
 * [end − intervalMs, end) with `end` = `now` aligned down to `intervalMs`; its window is [end − windowMs, end).
 * It stores:
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
export async function runDetectionOnce(runtime: RuntimeContext, options: RunOnceOptions): Promise<DetectionRun> {
  const { model, ...rest } = options;
  const r = await runDetectionCycle(runtime, { ...rest, models: [model] });
  if (r.cancelled) throw r.cancelled;
  const run = r.runs[0];
  if (!run) throw new ModelwatchError(ErrorCodes.internal, `detection run of ${model} produced no result`);
  return run;
}

/** Options of one {@link runDetectionCycle} call. */
export interface RunCycleOptions extends Omit<RunOnceOptions, 'model' | 'models'> {
  /** The models of the cycle, each run once (whether or not its interval was already run). */
  models: string[];
}

/**
 * One detection cycle for `models` at time `now` ({@link startCycle} with the detector's options resolved):
 * every model gets what {@link runDetectionOnce} stores, with batched reads and one insert per table. Resolves
 * with the finished runs, and on a cancellation with the runs recorded `timed_out` and the cancellation.
 */
export function runDetectionCycle(runtime: RuntimeContext, options: RunCycleOptions): Promise<CycleResult> {
  const o = resolveOptions(runtime, options);
  return startCycle(runtime, {
    models: options.models,
    now: options.now,
    intervalMs: o.intervalMs,
    windowMs: o.windowMs,
    maxFeatureSeries: o.maxFeatureSeries,
    drift: o.drift,
    state: options.state ?? new DetectorState(o.monitor),
    signal: options.signal,
    deadline: options.deadline,
    metrics: options.metrics,
  }).result;
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
 * (first run at once) one cycle ({@link startCycle}) runs every model due — once per interval: a model whose
 * current interval was already run is skipped — with batched reads and one insert per table. Runs never overlap
 * (a tick while one is in flight is skipped and counted). Each run has a deadline (`timeoutMs`): every statement
 * carries it, and when it passes the run's signal fires, its statement in flight is killed in ClickHouse, the
 * models in flight are recorded `timed_out` and the run settles at once. Errors are logged and counted, never thrown out of the timer; timers are unref'ed.
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
      const due = models.filter((m) => (state.lastIntervalEnd(m) ?? -Infinity) < end);
      // Stopped or past the deadline already: the models wait for the next tick.
      if (stopped || signal.aborted || due.length === 0) return;
      const cycle = startCycle(ctx, {
        models: due,
        now,
        intervalMs: o.intervalMs,
        windowMs: o.windowMs,
        maxFeatureSeries: o.maxFeatureSeries,
        drift: o.drift,
        state,
        signal,
        deadline,
        metrics,
      });
      works.push(cycle.settled);
      const r = await cycle.result;
      runs.push(...r.runs);
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
