import { newId } from '../../src/common/ids.js';
import type { SqlPort } from '../../src/store/index.js';
import { toChTime } from '../../src/store/store.js';

/** One feature's stored drift result. */
export interface FeatureResult {
  score: number;
  drifted: boolean;
  method?: string;
  threshold?: number;
  pValue?: number;
}

/**
 * Stores one detection run's drift results for `model` at `ts` (the detector's row shape): one row per
 * feature and the dataset row (share of drifted features against `shareThreshold`). Returns the run id.
 */
export async function insertDriftRun(
  store: SqlPort,
  o: {
    model: string;
    ts: number;
    features: Record<string, FeatureResult>;
    windowMs?: number;
    referenceId?: string;
    shareThreshold?: number;
    runId?: string;
    nRef?: number;
    nCur?: number;
  },
): Promise<string> {
  const runId = o.runId ?? newId();
  const windowMs = o.windowMs ?? 3_600_000;
  const base = {
    run_id: runId,
    model: o.model,
    ts: toChTime(o.ts),
    window_from: toChTime(o.ts - windowMs),
    window_to: toChTime(o.ts),
    reference_id: o.referenceId ?? 'ref-1',
    segment: '',
  };
  const names = Object.keys(o.features);
  const drifted = names.filter((n) => o.features[n]?.drifted === true).length;
  const share = names.length === 0 ? 0 : drifted / names.length;
  const shareThreshold = o.shareThreshold ?? 0.5;
  const rows: object[] = names.map((name) => {
    const f = o.features[name] as FeatureResult;
    const method = f.method ?? 'psi';
    return {
      ...base,
      feature: name,
      kind: 'numeric',
      output: false,
      method,
      parameters: JSON.stringify({ threshold: f.threshold ?? 0.2, fdr: false }),
      n_ref: o.nRef ?? 5000,
      n_cur: o.nCur ?? 1200,
      statistic: method === 'ks' ? 0.3 : f.score,
      p_value: f.pValue ?? null,
      score: f.score,
      threshold: f.threshold ?? (method === 'ks' ? 0.05 : 0.2),
      drifted: f.drifted,
      stats: '{}',
      quality: '{}',
    };
  });
  rows.push({
    ...base,
    feature: '',
    kind: 'dataset',
    output: false,
    method: 'share',
    parameters: JSON.stringify({ share_threshold: shareThreshold, fdr: false }),
    n_ref: o.nRef ?? 5000,
    n_cur: o.nCur ?? 1200,
    statistic: drifted,
    p_value: null,
    score: share,
    threshold: shareThreshold,
    drifted: share >= shareThreshold,
    stats: JSON.stringify({ features: names.length, drifted_features: drifted }),
    quality: '{}',
  });
  await store.insert('mw_drift_results', rows);
  return runId;
}

/** Stores metric series values of one run (`feature` '' unless given). */
export async function insertSeries(
  store: SqlPort,
  o: { model: string; ts: number; values: { series: string; value: number; feature?: string }[]; runId?: string },
): Promise<void> {
  const runId = o.runId ?? newId();
  await store.insert(
    'mw_metric_series',
    o.values.map((v) => ({
      run_id: runId,
      model: o.model,
      ts: toChTime(o.ts),
      series: v.series,
      value: v.value,
      feature: v.feature ?? '',
    })),
  );
}

/** Stores performance results of one run. */
export async function insertPerformance(
  store: SqlPort,
  o: { model: string; ts: number; source: string; metrics: Record<string, number>; runId?: string; task?: string },
): Promise<void> {
  const runId = o.runId ?? newId();
  await store.insert(
    'mw_performance_results',
    Object.entries(o.metrics).map(([metric, value]) => ({
      run_id: runId,
      model: o.model,
      ts: toChTime(o.ts),
      window_from: toChTime(o.ts - 3_600_000),
      window_to: toChTime(o.ts),
      task: o.task ?? 'classification',
      source: o.source,
      metric,
      value,
      rows: 1000,
      labelled_rows: 800,
      details: '{}',
    })),
  );
}

/** Stores one detection run record (v5 `mw_detect_runs`). */
export async function insertDetectRun(
  store: SqlPort,
  o: { model: string; ts: number; status: string; error?: string; runId?: string },
): Promise<void> {
  await store.insert('mw_detect_runs', [
    {
      run_id: o.runId ?? newId(),
      model: o.model,
      ts: toChTime(o.ts),
      window_from: toChTime(o.ts - 3_600_000),
      window_to: toChTime(o.ts),
      interval_ms: 60_000,
      reference_id: 'ref-1',
      status: o.status,
      error: o.error ?? '',
      duration_ms: 10,
      rows: 100,
    },
  ]);
}

/** A controllable clock. */
export class TestClock {
  constructor(public ms: number) {}
  now = (): number => this.ms;
  advance(ms: number): number {
    this.ms += ms;
    return this.ms;
  }
}
