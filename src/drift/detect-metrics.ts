import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { counterOn, gaugeOn, histogramOn } from '../common/metrics.js';
import type { PerformanceReport } from './performance/query.js';
import { driftSeverity } from './report/html.js';
import type { DriftReport } from './stats/types.js';

/** How a detect run for one model ended. */
export const RunStatuses = ['ok', 'no_data', 'no_reference', 'failed', 'timed_out'] as const;
/** One of {@link RunStatuses}. */
export type RunStatus = (typeof RunStatuses)[number];

/** Label value of the models past the cap. */
export const OVERFLOW_MODEL = 'other';

/** Options of {@link DetectMetrics}. */
export interface DetectMetricsOptions {
  /** Features per model exported with their drift score (the most drifted first). */
  maxFeatures: number;
  /** Models with their own label value; later ones are counted under `model="other"` and get no gauges. */
  maxModels: number;
}

/**
 * The detect loop's Prometheus metrics, per model (label bounded by `maxModels`): run counts by status, the
 * last run's duration and last successful run time, dataset drift share and verdict, the drift score of the
 * `maxFeatures` most drifted features (label sets of features that left the top are removed), performance by
 * metric and source, label coverage, change points, and the whole-run duration and skipped ticks.
 */
export class DetectMetrics {
  private readonly runs: Counter<'model' | 'status'>;
  private readonly runDuration: Histogram;
  private readonly changePoints: Counter<'model' | 'detector'>;
  private readonly skippedTicks: Counter;
  private readonly duration: Gauge<'model'>;
  private readonly lastSuccess: Gauge<'model'>;
  private readonly share: Gauge<'model'>;
  private readonly detected: Gauge<'model'>;
  private readonly featureScore: Gauge<'model' | 'feature'>;
  private readonly perf: Gauge<'model' | 'metric' | 'source'>;
  private readonly coverage: Gauge<'model'>;
  private readonly models = new Set<string>();
  private readonly featureLabels = new Map<string, Set<string>>();
  private readonly perfLabels = new Map<string, Set<string>>();

  constructor(
    registry: Registry,
    private readonly options: DetectMetricsOptions,
  ) {
    this.runs = counterOn(registry, {
      name: 'modelwatch_detect_runs_total',
      help: 'Detect runs per model by status (ok, no_data, no_reference, failed, timed_out).',
      labelNames: ['model', 'status'] as const,
    });
    this.runDuration = histogramOn(registry, {
      name: 'modelwatch_detect_run_duration_seconds',
      help: 'Duration of one detection run over all models.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    });
    this.changePoints = counterOn(registry, {
      name: 'modelwatch_detect_change_points_total',
      help: 'Change points raised by streaming detectors.',
      labelNames: ['model', 'detector'] as const,
    });
    this.skippedTicks = counterOn(registry, {
      name: 'modelwatch_detect_runs_skipped_total',
      help: 'Ticks skipped because the previous run was still in flight.',
    });
    this.duration = gaugeOn(registry, {
      name: 'modelwatch_detect_duration_seconds',
      help: "Duration of the model's latest detect run.",
      labelNames: ['model'] as const,
    });
    this.lastSuccess = gaugeOn(registry, {
      name: 'modelwatch_detect_last_success_timestamp_seconds',
      help: "Unix time of the model's latest detect run that did not fail or time out.",
      labelNames: ['model'] as const,
    });
    this.share = gaugeOn(registry, {
      name: 'modelwatch_drift_share',
      help: 'Share of features drifted in the latest run.',
      labelNames: ['model'] as const,
    });
    this.detected = gaugeOn(registry, {
      name: 'modelwatch_drift_detected',
      help: 'Dataset drift verdict of the latest run (1 drifted, 0 not).',
      labelNames: ['model'] as const,
    });
    this.featureScore = gaugeOn(registry, {
      name: 'modelwatch_feature_drift_score',
      help: "A feature's drift score in the latest run (the method's value: a p-value for ks/chi_square, a distance otherwise); only the most drifted features.",
      labelNames: ['model', 'feature'] as const,
    });
    this.perf = gaugeOn(registry, {
      name: 'modelwatch_performance',
      help: 'Performance over the latest run window: measured on labelled rows, or estimated without labels (CBPE).',
      labelNames: ['model', 'metric', 'source'] as const,
    });
    this.coverage = gaugeOn(registry, {
      name: 'modelwatch_label_coverage',
      help: 'Share of rows in the latest run window with a label.',
      labelNames: ['model'] as const,
    });
  }

  /** The model's label value: itself while under the cap, {@link OVERFLOW_MODEL} after. */
  label(model: string): string {
    if (this.models.has(model)) return model;
    if (this.models.size < this.options.maxModels) {
      this.models.add(model);
      return model;
    }
    return OVERFLOW_MODEL;
  }

  /** Counts a finished run and sets its duration (and success time unless it failed). */
  run(model: string, status: RunStatus, durationMs: number, tsMs: number): void {
    const m = this.label(model);
    this.runs.inc({ model: m, status });
    if (m === OVERFLOW_MODEL) return;
    this.duration.set({ model: m }, durationMs / 1000);
    if (status !== 'failed' && status !== 'timed_out') this.lastSuccess.set({ model: m }, tsMs / 1000);
  }

  /** Sets the drift gauges from a run's (unsegmented) report. */
  drift(model: string, report: DriftReport): void {
    const m = this.label(model);
    if (m === OVERFLOW_MODEL) return;
    this.share.set({ model: m }, report.dataset.share);
    this.detected.set({ model: m }, report.dataset.drifted ? 1 : 0);
    const top = report.features
      .filter((f) => f.score !== null && Number.isFinite(f.score))
      .sort((a, b) => driftSeverity(b) - driftSeverity(a) || (a.name < b.name ? -1 : 1))
      .slice(0, this.options.maxFeatures);
    const now = new Set(top.map((f) => f.name));
    for (const old of this.featureLabels.get(m) ?? [])
      if (!now.has(old)) this.featureScore.remove({ model: m, feature: old });
    for (const f of top) this.featureScore.set({ model: m, feature: f.name }, f.score ?? 0);
    this.featureLabels.set(m, now);
  }

  /** Sets performance and label coverage from a run's report. */
  performance(model: string, report: PerformanceReport): void {
    const m = this.label(model);
    if (m === OVERFLOW_MODEL) return;
    if (report.label_coverage !== null && Number.isFinite(report.label_coverage))
      this.coverage.set({ model: m }, report.label_coverage);
    const now = new Set<string>();
    for (const source of ['measured', 'estimated'] as const) {
      const metrics = report[source];
      if (!metrics) continue;
      for (const [metric, value] of Object.entries(metrics)) {
        if (metric === 'rows' || typeof value !== 'number' || !Number.isFinite(value)) continue;
        this.perf.set({ model: m, metric, source }, value);
        now.add(JSON.stringify([metric, source]));
      }
    }
    for (const old of this.perfLabels.get(m) ?? []) {
      if (now.has(old)) continue;
      const [metric, source] = JSON.parse(old) as [string, string];
      this.perf.remove({ model: m, metric, source });
    }
    this.perfLabels.set(m, now);
  }

  /** Counts a change point. */
  changePoint(model: string, detector: string): void {
    this.changePoints.inc({ model: this.label(model), detector });
  }

  /** Counts a tick skipped while a run was in flight. */
  skipped(): void {
    this.skippedTicks.inc();
  }

  /** Starts timing a whole run (all models); call the result when it ends. */
  startRun(): () => void {
    const end = this.runDuration.startTimer();
    return () => {
      end();
    };
  }
}
