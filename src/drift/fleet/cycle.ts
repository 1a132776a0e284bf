import { ErrorCodes, errorMessage, isModelwatchError } from '../../common/errors.js';
import { newId } from '../../common/ids.js';
import type { Logger } from '../../common/logger.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { Tables } from '../../store/migrations.js';
import { toChTime as formatChTime, type Store } from '../../store/store.js';
import type { SegmentBy, SegmentReport } from '../detect-drift.js';
import type { DetectMetrics, RunStatus } from '../detect-metrics.js';
import { intervalSeries, isDetection, windowSeries, type SeriesPoint } from '../detect-series.js';
import type { DetectorState } from '../detect-state.js';
import { computePerformanceBatch, type PerformanceReport } from '../performance/query.js';
import type { TrafficSummary } from '../performance/traffic.js';
import type { ClassificationMetrics, EstimatedMetrics, RegressionMetrics } from '../performance/types.js';
import type { ChangeAlarm } from '../streaming/monitor.js';
import type { DriftReport, FeatureReport } from '../stats/types.js';
import { runMultivariateStage } from '../mv-detect.js';
import { abortError, type FleetDriftFn } from './drift.js';
import {
  queryFeatureMeansBatch,
  queryQuarantineCounts,
  queryRowCounts,
  queryTrafficBatch,
  type FeatureMean,
  type RowCounts,
} from './reads.js';

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
  /** Duration of the cycle that ran it (all its models run together). */
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

// A cycle writes the same few instants on every row (run time, window and interval bounds): format each once.
const chTimes = new Map<number, string>();
function toChTime(ms: number): string {
  let s = chTimes.get(ms);
  if (s === undefined) {
    if (chTimes.size >= 256) chTimes.clear();
    s = formatChTime(ms);
    chTimes.set(ms, s);
  }
  return s;
}

// The result tables' insert bodies: JSONCompactEachRow, one JSON array per row in these column orders (the
// same JSON values as the row objects would give as JSONEachRow, without the key names).
/** Column order of a cycle's `mw_drift_results` insert body. */
export const DriftColumns = [
  'run_id',
  'model',
  'ts',
  'window_from',
  'window_to',
  'reference_id',
  'segment',
  'feature',
  'kind',
  'output',
  'method',
  'parameters',
  'n_ref',
  'n_cur',
  'statistic',
  'p_value',
  'score',
  'threshold',
  'drifted',
  'stats',
  'quality',
] as const;
/** Column order of a cycle's `mw_performance_results` insert body. */
export const PerformanceColumns = [
  'run_id',
  'model',
  'ts',
  'window_from',
  'window_to',
  'task',
  'rows',
  'labelled_rows',
  'source',
  'metric',
  'value',
  'details',
] as const;
/** Column order of a cycle's `mw_metric_series` insert body. */
export const SeriesColumns = [
  'run_id',
  'model',
  'ts',
  'series',
  'feature',
  'value',
  'window_from',
  'window_to',
  'interval_ms',
] as const;
/** Column order of a cycle's `mw_change_points` insert body. */
export const ChangeColumns = [
  'run_id',
  'model',
  'ts',
  'series',
  'feature',
  'detector',
  'params',
  'value',
  'series_index',
] as const;

/** `rows` as a JSONCompactEachRow body in `columns` order (a missing value is written as null). */
export function encodeRows(rows: readonly object[], columns: readonly string[]): Buffer {
  const lines = new Array<string>(rows.length + 1);
  const line = new Array<unknown>(columns.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as Record<string, unknown>;
    for (let c = 0; c < columns.length; c++) line[c] = r[columns[c]!] ?? null;
    lines[i] = JSON.stringify(line);
  }
  lines[rows.length] = '';
  return Buffer.from(lines.join('\n'));
}

/** Inserts result rows as a JSONCompactEachRow body (no-op for none). */
function insertRows(store: Store, table: string, rows: readonly object[], columns: readonly string[]): Promise<void> {
  if (rows.length === 0) return Promise.resolve();
  return store.insertEncoded(table, encodeRows(rows, columns), {
    format: 'JSONCompactEachRow',
    columns,
    label: `insert ${table}`,
  });
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
function segmentSplits(config: RuntimeContext['config'], model: string): SegmentBy[] {
  const s = config.models[model]?.segments;
  if (!s) return [];
  return [...(s.version ? (['version'] as const) : []), ...s.features.map((feature) => ({ feature }))];
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

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(errorMessage(e)));

/** Settles with `work`, or rejects as soon as `signal` fires (the work is left to settle by itself). */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
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

/** Options of one {@link startCycle}: resolved values (the detector's options, defaults applied). */
export interface CycleOptions {
  /** The models of the cycle, each run once. */
  models: readonly string[];
  /** The run time, epoch ms: the window ends at its interval end ({@link intervalEnd}). */
  now: number;
  intervalMs: number;
  windowMs: number;
  /** Numeric features whose per-interval mean is watched per model, first by name. */
  maxFeatureSeries: number;
  /** The drift step; null disables drift. */
  drift: FleetDriftFn | null;
  /** Detector state carried between cycles. */
  state: DetectorState;
  /** Cancels the cycle: its statements are killed in ClickHouse; the models in flight are recorded `timed_out`. */
  signal?: AbortSignal | undefined;
  /** Absolute deadline of the cycle's statements, epoch ms. */
  deadline?: number | undefined;
  /** Metrics to update; none when omitted. */
  metrics?: DetectMetrics | undefined;
}

/** What a cycle did. */
export interface CycleResult {
  /** The finished runs, in model order (statuses ok, no_data, no_reference, failed). */
  runs: DetectionRun[];
  /** Runs given up at the deadline or on cancellation (recorded `timed_out`); the cycle's other models wait. */
  timedOut: DetectionRun[];
  /** The cancellation, when the cycle was given up. */
  cancelled: Error | null;
}

interface Entry {
  key: RunKey;
  out: DetectionRun;
  segments: SegmentReport[];
}

/**
 * One detection cycle for a set of models at time `now`: every model's interval is [end − intervalMs, end) with
 * `end` = `now` aligned down to `intervalMs`, its window [end − windowMs, end). The reads are batched: one
 * statement per table and step for all models (window row counts; the drift step; performance — per distinct
 * prediction spec; traffic, feature means and quarantine counts of the interval), and the results of all models
 * are written with one insert per table (`mw_performance_results`, `mw_drift_results`, `mw_metric_series`,
 * `mw_change_points`, `mw_detect_runs`). Per model it stores what {@link runDetectionOnce} documents. A failed
 * statement fails the cycle's models (`failed`, with the error); a cancellation (deadline, stop) records the
 * models in flight `timed_out` and leaves the others to the next cycle. `settled` resolves once the cycle's
 * work has really stopped (work that ignores the cancellation writes nothing more).
 */
export function startCycle(
  runtime: RuntimeContext,
  o: CycleOptions,
): { result: Promise<CycleResult>; settled: Promise<void> } {
  let settle: (work: Promise<void>) => void = () => undefined;
  const settled = new Promise<void>((resolve) => {
    settle = (work) => resolve(work.catch(() => undefined));
  });
  const result = cycleBody(runtime, o, settle);
  result.catch(() => undefined).finally(() => settle(Promise.resolve()));
  return { result, settled };
}

async function cycleBody(
  runtime: RuntimeContext,
  o: CycleOptions,
  settle: (work: Promise<void>) => void,
): Promise<CycleResult> {
  const started = performance.now();
  const { signal, now, state } = o;
  const log = runtime.logger;
  const config = runtime.config;
  // Every statement of the cycle: the `detect` role's limits, the cycle's signal and deadline.
  const store: Store = runtime.store.with({
    role: 'detect',
    signal,
    ...(o.deadline !== undefined ? { deadline: o.deadline } : {}),
  });
  const models = [...new Set(o.models)];
  const end = intervalEnd(now, o.intervalMs);
  const from = end - o.windowMs;
  const slice = { fromMs: end - Math.min(o.intervalMs, o.windowMs), toMs: end };
  const entries = new Map<string, Entry>();
  for (const model of models) {
    const key: RunKey = { run_id: newId(), model, ts: now, from, to: end };
    entries.set(model, {
      key,
      segments: [],
      out: {
        run_id: key.run_id,
        model,
        ts: new Date(now).toISOString(),
        window: { from: new Date(from).toISOString(), to: new Date(end).toISOString() },
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
      },
    });
  }
  const entry = (model: string): Entry => {
    const e = entries.get(model);
    if (!e) throw new Error(`model ${model} is not part of the cycle`);
    return e;
  };
  // The models the cycle works on now: all of them in a batched step; the drift engine narrows it.
  let inFlight: readonly string[] = models;
  // Past a cancellation the body writes nothing more (it may still be settling after the cycle was given up).
  const check = (): void => {
    if (signal?.aborted === true) throw abortError(signal);
  };
  const record = (target: Store, list: readonly DetectionRun[]): Promise<void> =>
    target
      .insert(
        Tables.detectRuns,
        list.map((r) => ({
          run_id: r.run_id,
          model: r.model,
          ts: toChTime(now),
          window_from: toChTime(from),
          window_to: toChTime(end),
          interval_ms: o.intervalMs,
          reference_id: r.reference_id,
          status: r.status,
          error: r.error,
          duration_ms: r.duration_ms,
          rows: r.rows,
        })),
        { label: 'detect run record' },
      )
      .catch((e: unknown) => log.warn('detect run record failed', { models: list.length, error: errorMessage(e) }));

  const body = async (): Promise<void> => {
    if (models.length === 0) return;
    const counts: Map<string, RowCounts> = await queryRowCounts(store, models, {
      windowFrom: from,
      intervalFrom: slice.fromMs,
      end,
    });
    check();
    const withRows: string[] = [];
    for (const model of models) {
      const { out } = entry(model);
      out.rows = counts.get(model)?.window ?? 0;
      if (out.rows === 0) out.status = 'no_data';
      else withRows.push(model);
    }

    // Performance and the series reads do not depend on drift: their statements run while the drift step reads
    // and compares (awaited below, in the order the cycle uses them; a failure still fails the cycle).
    const perfWork =
      withRows.length > 0
        ? computePerformanceBatch(store, {
            models: withRows.map((model) => ({ model, schema: config.models[model] })),
            fromMs: from,
            toMs: end,
          })
        : Promise.resolve(new Map<string, PerformanceReport>());
    perfWork.catch(() => undefined);
    // Series: once per interval and model.
    const feeding = models.filter((m) => (state.lastIntervalEnd(m) ?? -Infinity) < end);
    const seriesWork = (async () => {
      if (feeding.length === 0) {
        return {
          traffic: new Map<string, TrafficSummary>(),
          means: new Map<string, FeatureMean[]>(),
          quarantined: new Map<string, number>(),
        };
      }
      const traffic = await queryTrafficBatch(
        store,
        feeding,
        slice.fromMs,
        slice.toMs,
        (m) => counts.get(m)?.interval ?? 0,
      );
      const means = await queryFeatureMeansBatch(store, feeding, slice.fromMs, slice.toMs, o.maxFeatureSeries);
      const quarantined = await queryQuarantineCounts(store, feeding, slice.fromMs, slice.toMs);
      return { traffic, means, quarantined };
    })();
    seriesWork.catch(() => undefined);

    if (o.drift && withRows.length > 0) {
      const results = await o.drift(store, {
        models: withRows.map((model) => ({ model, splits: segmentSplits(config, model), rows: entry(model).out.rows })),
        from,
        to: end,
        signal,
        inFlight: (list) => {
          inFlight = list;
        },
      });
      inFlight = models;
      check();
      for (const model of withRows) {
        const e = entry(model);
        const r = results.get(model) ?? {
          outcome: { status: 'failed' as const, report: null, error: 'the drift engine returned no result' },
          segments: [],
        };
        const { outcome } = r;
        e.out.status = outcome.status;
        e.out.error = outcome.error;
        e.out.drift = outcome.report;
        e.out.drift_error = outcome.error === '' ? null : outcome.error;
        if (outcome.report) {
          e.out.reference_id = referenceIdOf(outcome.report);
          e.segments = r.segments;
        }
        if (outcome.status === 'failed') log.warn('drift detection failed', { model, error: outcome.error });
      }
    }

    // Multivariate and embedding drift (src/drift/mv-detect.ts), per model with a drift report: each stage
    // reads capped samples, stores its own results and returns its series points.
    const mvSeries = new Map<string, SeriesPoint[]>();
    for (const model of withRows) {
      const { out, key } = entry(model);
      if (!out.drift) continue;
      inFlight = [model];
      const mv = await runMultivariateStage({
        store,
        config,
        logger: log,
        signal,
        report: out.drift,
        run: { run_id: key.run_id, model, ts: now, fromMs: from, toMs: end },
        metrics: o.metrics && { registry: runtime.metrics, label: (m) => o.metrics?.label(m) ?? m },
      });
      check();
      if (mv.series.length > 0) mvSeries.set(model, mv.series);
    }
    inFlight = models;

    const perf = await perfWork;
    check();
    for (const [model, report] of perf) entry(model).out.performance = report;
    const { traffic, means, quarantined } = await seriesWork;
    check();
    const seriesRows: object[] = [];
    const changeRows: object[] = [];
    for (const model of feeding) {
      const { out, key } = entry(model);
      out.traffic = traffic.get(model) ?? null;
      if (!out.traffic) continue;
      const own = intervalSeries(slice, out.traffic, means.get(model) ?? [], quarantined.get(model) ?? 0);
      const windowed = windowSeries({ fromMs: from, toMs: end }, out.drift, out.performance);
      out.series = [...own, ...windowed, ...(mvSeries.get(model) ?? [])];
      const fed = [...own, ...(o.windowMs <= o.intervalMs ? windowed : [])];
      for (const p of fed) {
        for (const alarm of state.feed(model, p.series, p.value, p.feature)) {
          out.change_points.push({ ...alarm, model, series: p.series, feature: p.feature, ts: out.ts });
        }
      }
      for (const p of out.series) {
        seriesRows.push({
          run_id: key.run_id,
          model,
          ts: toChTime(now),
          series: p.series,
          feature: p.feature,
          value: p.value,
          window_from: toChTime(p.fromMs),
          window_to: toChTime(p.toMs),
          interval_ms: o.intervalMs,
        });
      }
      for (const c of out.change_points) {
        changeRows.push({
          run_id: key.run_id,
          model,
          ts: toChTime(now),
          series: c.series,
          feature: c.feature,
          detector: c.detector,
          params: JSON.stringify(c.params),
          value: c.value,
          series_index: c.index,
        });
      }
    }

    const perfRows: object[] = [];
    const driftResultRows: object[] = [];
    const fdr = config.detect.fdr;
    for (const model of withRows) {
      const { out, key, segments } = entry(model);
      if (out.performance) perfRows.push(...performanceRows(key, out.performance));
      if (out.drift) {
        driftResultRows.push(...driftRows(key, out.drift, fdr, ''));
        for (const s of segments) {
          const k = segmentKey(s);
          out.segments.push(k);
          driftResultRows.push(...driftRows(key, { ...s.report, reference: out.drift.reference }, fdr, k));
        }
      }
    }
    check();
    // The result tables are independent: one insert each, in flight together.
    await Promise.all([
      insertRows(store, Tables.performanceResults, perfRows, PerformanceColumns),
      insertRows(store, Tables.driftResults, driftResultRows, DriftColumns),
      insertRows(store, Tables.metricSeries, seriesRows, SeriesColumns),
      insertRows(store, Tables.changePoints, changeRows, ChangeColumns),
    ]);
    for (const model of feeding) if (entry(model).out.traffic) state.markInterval(model, end);
    for (const model of withRows) {
      const { out, key } = entry(model);
      if (out.drift) logVerdictChange(log, state, key, out.drift);
    }
  };

  const outs = (): DetectionRun[] => models.map((m) => entry(m).out);
  try {
    const work = body();
    settle(work);
    await raceAbort(work, signal);
  } catch (err) {
    const message = errorMessage(err);
    if (
      signal?.aborted === true ||
      isModelwatchError(err, ErrorCodes.timeout) ||
      isModelwatchError(err, ErrorCodes.cancelled)
    ) {
      const duration = performance.now() - started;
      const timedOut = inFlight.map((m) => entry(m).out);
      for (const out of timedOut) {
        out.status = 'timed_out';
        out.error = message;
        out.duration_ms = duration;
        o.metrics?.run(out.model, out.status, out.duration_ms, now);
        // Stopped (e.g. SIGTERM while a run was in flight) is an orderly shutdown, not a failure to report as one.
        if (isModelwatchError(err, ErrorCodes.cancelled))
          log.warn('detection run cancelled', { model: out.model, error: message });
        else log.error('detection run timed out', { model: out.model, error: message });
      }
      // The cycle's own store is cancelled: record through the runtime's.
      if (timedOut.length > 0) await record(runtime.store.with({ role: 'detect' }), timedOut);
      return { runs: [], timedOut, cancelled: asError(err) };
    }
    for (const out of outs()) {
      out.status = 'failed';
      out.error = message;
    }
    log.error('detection run failed', { models: models.length, error: message });
  }
  const duration = performance.now() - started;
  const runs = outs();
  for (const out of runs) {
    out.duration_ms = duration;
    log.debug('detect run', {
      model: out.model,
      run_id: out.run_id,
      status: out.status,
      window: out.window,
      duration_ms: out.duration_ms,
    });
    o.metrics?.run(out.model, out.status, out.duration_ms, now);
    if (out.drift) o.metrics?.drift(out.model, out.drift);
    if (out.performance) o.metrics?.performance(out.model, out.performance);
    for (const c of out.change_points) o.metrics?.changePoint(out.model, c.detector);
  }
  if (runs.length > 0) await record(runtime.store.with({ role: 'detect' }), runs);
  return { runs, timedOut: [], cancelled: null };
}
