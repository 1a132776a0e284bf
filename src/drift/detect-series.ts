import type { DriftDetection } from './detect-drift.js';
import type { PerformanceReport } from './performance/query.js';
import type { TrafficSummary } from './performance/traffic.js';
import type { DriftReport, FeatureReport } from './stats/types.js';

/**
 * Names of the metric series a detect run stores in `mw_metric_series` (one value per model, series, feature
 * and interval). Per-feature series carry the feature name in the `feature` column; `performance.<source>.<metric>`
 * is built by {@link performanceSeries}.
 */
export const SeriesNames = {
  requests: 'traffic.requests',
  rows: 'traffic.rows',
  errors: 'traffic.errors',
  errorRate: 'traffic.error_rate',
  latencyP95: 'traffic.latency_p95_ms',
  latencyP99: 'traffic.latency_p99_ms',
  featureMean: 'feature_mean',
  quarantineRate: 'quality.quarantine_rate',
  volumeRatio: 'quality.volume_ratio',
  missingRate: 'quality.missing_rate',
  nonFiniteRate: 'quality.non_finite_rate',
  outOfRangeRate: 'quality.out_of_range_rate',
  unseenRate: 'quality.unseen_rate',
  driftShare: 'drift.share',
  driftScore: 'drift.score',
  labelCoverage: 'label_coverage',
} as const;

/** `performance.<source>.<metric>`, e.g. `performance.estimated.accuracy`. */
export function performanceSeries(source: 'measured' | 'estimated', metric: string): string {
  return `performance.${source}.${metric}`;
}

/** One value of one series, with the window it was measured over (epoch ms, half-open). */
export interface SeriesPoint {
  series: string;
  /** Feature name for per-feature series, '' otherwise. */
  feature: string;
  value: number;
  fromMs: number;
  toMs: number;
}

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

function push(
  out: SeriesPoint[],
  series: string,
  feature: string,
  value: number | null | undefined,
  fromMs: number,
  toMs: number,
): void {
  if (finite(value)) out.push({ series, feature, value, fromMs, toMs });
}

/**
 * Series measured over the run's interval `[fromMs, toMs)` itself: traffic, per-feature means and the share of
 * calls quarantined. Consecutive runs' intervals do not overlap, so these feed the streaming detectors.
 */
export function intervalSeries(
  window: { fromMs: number; toMs: number },
  traffic: TrafficSummary,
  means: ReadonlyArray<{ feature: string; mean: number }>,
  quarantined: number,
): SeriesPoint[] {
  const { fromMs, toMs } = window;
  const out: SeriesPoint[] = [];
  push(out, SeriesNames.requests, '', traffic.requests, fromMs, toMs);
  push(out, SeriesNames.rows, '', traffic.rows, fromMs, toMs);
  push(out, SeriesNames.errors, '', traffic.errors, fromMs, toMs);
  push(out, SeriesNames.errorRate, '', traffic.error_rate, fromMs, toMs);
  push(out, SeriesNames.latencyP95, '', traffic.latency_ms.p95, fromMs, toMs);
  push(out, SeriesNames.latencyP99, '', traffic.latency_ms.p99, fromMs, toMs);
  const calls = Math.max(traffic.requests, quarantined);
  push(out, SeriesNames.quarantineRate, '', calls > 0 ? quarantined / calls : null, fromMs, toMs);
  for (const m of means) push(out, SeriesNames.featureMean, m.feature, m.mean, fromMs, toMs);
  return out;
}

/** True for the drift engine's full detection (window quality included), false for a bare report. */
export function isDetection(r: DriftReport | DriftDetection): r is DriftDetection {
  const q = (r as Partial<DriftDetection>).quality;
  return typeof q === 'object' && q !== null && 'volume' in q;
}

/** Per-feature data-quality rates of a drift report's current window. */
export function qualityRates(f: FeatureReport, currentRows: number): Record<string, number | null> {
  const q = f.quality;
  const rate = (n: number | undefined): number | null => (currentRows > 0 && n !== undefined ? n / currentRows : null);
  return {
    [SeriesNames.missingRate]: rate(q.missing_current),
    [SeriesNames.nonFiniteRate]: f.kind === 'numeric' ? rate(q.non_finite_current ?? 0) : null,
    [SeriesNames.outOfRangeRate]: q.out_of_range_share ?? null,
    [SeriesNames.unseenRate]: q.unseen_share ?? null,
  };
}

/**
 * Series measured over the run's drift window `[fromMs, toMs)`: dataset drift share, each feature's drift score,
 * its data-quality rates, the volume ratio, performance (measured and estimated) and label coverage.
 */
export function windowSeries(
  window: { fromMs: number; toMs: number },
  drift: DriftReport | null,
  performance: PerformanceReport | null,
): SeriesPoint[] {
  const { fromMs, toMs } = window;
  const out: SeriesPoint[] = [];
  if (drift) {
    push(out, SeriesNames.driftShare, '', drift.dataset.share, fromMs, toMs);
    if (isDetection(drift)) push(out, SeriesNames.volumeRatio, '', drift.quality.volume.ratio, fromMs, toMs);
    for (const f of drift.features) {
      push(out, SeriesNames.driftScore, f.name, f.score, fromMs, toMs);
      for (const [series, value] of Object.entries(qualityRates(f, drift.current.rows)))
        push(out, series, f.name, value, fromMs, toMs);
    }
  }
  if (performance) {
    push(out, SeriesNames.labelCoverage, '', performance.label_coverage, fromMs, toMs);
    for (const source of ['measured', 'estimated'] as const) {
      const m = performance[source];
      if (!m) continue;
      for (const [metric, value] of Object.entries(m)) {
        if (metric !== 'rows' && typeof value === 'number')
          push(out, performanceSeries(source, metric), '', value, fromMs, toMs);
      }
    }
  }
  return out;
}
