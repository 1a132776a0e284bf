import { createHash } from 'node:crypto';
import type { AlertEvidence, FeatureEvidence } from './notification.js';
import { compare, ErrorMetrics, type Comparison, type Rule } from './rules.js';
import { key, type DriftPoint, type MultivariatePoint, type PerformancePoint, type Snapshot } from './signals.js';

/**
 * Turns one cycle's {@link Snapshot} into candidates: one per (rule, label set), with the rule's
 * condition evaluated on each of the last runs (newest first). The lifecycle
 * ({@link AlertBook}) decides pending/firing/resolved from them.
 */

/** One evaluated run of a candidate. */
export interface CandidatePoint {
  ts: number;
  runId: string;
  value: number;
  met: boolean;
}

/** One (rule, label set) this cycle. */
export interface Candidate {
  rule: Rule;
  fingerprint: string;
  labels: Record<string, string>;
  /** Newest first. */
  points: CandidatePoint[];
  /** The evidence of the newest run (built on demand: only firing alerts need it). */
  evidence(): AlertEvidence;
}

/** Methods whose score is a p-value (drift when below the threshold). */
const P_VALUE_METHODS = new Set(['ks', 'chi_square']);

/** Stable id of a label set (which includes `alertname`), hex. */
export function fingerprintOf(labels: Readonly<Record<string, string>>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(labels).sort()) h.update(`${k}\u0000${labels[k]}\u0001`);
  return h.digest('hex').slice(0, 16);
}

/** The mean of the first runs of a (model, source, metric) against the model's current reference. */
export interface Baseline {
  referenceId: string;
  values: number[];
  runIds: string[];
}

/** Baselines of drop-mode performance rules, keyed by (model, source, metric); updated by {@link buildCandidates}. */
export class BaselineBook {
  readonly entries = new Map<string, Baseline>();
  /** Keys changed since the last {@link takeDirty}. */
  private dirty = new Set<string>();

  constructor(readonly runs: number) {}

  /** Feeds a group's points (any order); returns the baseline value once complete. */
  observe(
    k: string,
    points: readonly PerformancePoint[],
    referenceOf: (runId: string) => string | undefined,
  ): number | undefined {
    let b = this.entries.get(k);
    for (const p of [...points].sort((x, y) => x.ts - y.ts)) {
      const ref = referenceOf(p.runId);
      if (ref === undefined) continue;
      if (b === undefined || b.referenceId !== ref) {
        // A new reference: the reference period starts again.
        b = { referenceId: ref, values: [], runIds: [] };
        this.entries.set(k, b);
        this.dirty.add(k);
      }
      if (b.values.length < this.runs && !b.runIds.includes(p.runId)) {
        b.values.push(p.value);
        b.runIds.push(p.runId);
        this.dirty.add(k);
      }
    }
    if (b === undefined || b.values.length < this.runs) return undefined;
    return b.values.reduce((a, v) => a + v, 0) / b.values.length;
  }

  /** Whether `runId` is one of the runs the baseline of `k` was made of. */
  isBaselineRun(k: string, runId: string): boolean {
    return this.entries.get(k)?.runIds.includes(runId) ?? false;
  }

  /** The keys changed since the last call. */
  takeDirty(): string[] {
    const out = [...this.dirty];
    this.dirty = new Set();
    return out;
  }
}

/** Options of {@link buildCandidates}. */
export interface BuildCandidatesOptions {
  rules: readonly Rule[];
  snapshot: Snapshot;
  baselines: BaselineBook;
  /** Most drifted features listed in a dataset alert's evidence. @default 10 */
  maxFeatures?: number;
}

function allowed(models: readonly string[] | undefined, model: string): boolean {
  return models === undefined || models.includes(model);
}

function parseParams(text: string): Record<string, string | number | boolean> {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    const out: Record<string, string | number | boolean> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') out[k] = x;
    }
    return out;
  } catch {
    return {};
  }
}

/** How far past its threshold a feature is, comparable across methods (sorts "top drifted features"). */
function severity(p: DriftPoint): number {
  if (p.score === null) return -Infinity;
  if (P_VALUE_METHODS.has(p.method)) {
    const s = Math.max(p.score, 1e-300);
    return p.threshold > 0 && p.threshold < 1 ? Math.log(s) / Math.log(p.threshold) : -s;
  }
  return p.threshold > 0 ? p.score / p.threshold : p.score;
}

function featureEvidence(p: DriftPoint): FeatureEvidence {
  return {
    feature: p.feature,
    method: p.method,
    score: p.score ?? Number.NaN,
    ...(p.pValue !== null ? { pValue: p.pValue } : {}),
    threshold: p.threshold,
    drifted: p.drifted,
  };
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * Evidence of a multivariate result: the statistic against its threshold (or band), and for the domain
 * classifier the features (or embedding elements) ranked by importance, so the alert says which carry the shift.
 */
function multivariateEvidence(p: MultivariatePoint, rule: Rule): AlertEvidence {
  const params = parseParams(p.params);
  params['group'] = p.group;
  if (p.pValue !== null) params['p_value'] = p.pValue;
  if (p.lower !== null) params['lower'] = p.lower;
  if (p.upper !== null) params['upper'] = p.upper;
  let top: FeatureEvidence[] = [];
  try {
    const details = JSON.parse(p.details) as { importance?: { feature: string; importance: number }[] };
    top = (details.importance ?? []).slice(0, 10).map((f) => ({
      feature: f.feature,
      method: 'classifier_importance',
      score: f.importance,
      threshold: 0,
      drifted: f.importance > 0,
    }));
  } catch {
    top = [];
  }
  const detector = rule.threshold === 'detector';
  // With the detector's verdict an MMD result is decided by its p-value (below alpha), the others by the statistic.
  const byPValue = detector && p.method === 'mmd' && p.pValue !== null;
  return {
    signal: `multivariate.${p.method}`,
    value: byPValue ? (p.pValue ?? Number.NaN) : p.statistic,
    comparison: detector ? (byPValue ? '<' : '>') : rule.op,
    threshold: detector ? (p.threshold ?? p.upper ?? Number.NaN) : (rule.threshold as number),
    window: { from: iso(p.windowFrom), to: iso(p.windowTo) },
    ...(p.referenceId !== '' ? { reference: { id: p.referenceId } } : {}),
    sampleSizes: { reference: p.nReference, current: p.nCurrent },
    method: p.method,
    parameters: params,
    ...(top.length > 0 ? { topFeatures: top } : {}),
  };
}

/** Builds the candidates of every rule from one snapshot. */
export function buildCandidates(o: BuildCandidatesOptions): Candidate[] {
  const { snapshot } = o;
  const maxFeatures = o.maxFeatures ?? 10;
  const out: Candidate[] = [];
  // model → its drift rows (all features, all runs read); run → reference.
  const driftByModel = new Map<string, DriftPoint[]>();
  const referenceOfRun = new Map<string, string>();
  for (const list of snapshot.drift?.values() ?? []) {
    for (const p of list) {
      const l = driftByModel.get(p.model);
      if (l) l.push(p);
      else driftByModel.set(p.model, [p]);
      if (p.feature === '') referenceOfRun.set(p.runId, p.referenceId);
    }
  }
  const add = (
    rule: Rule,
    extra: Record<string, string>,
    points: CandidatePoint[],
    evidence: () => AlertEvidence,
  ): void => {
    // Only a run that meets the rule can start or keep an alert; an active alert whose candidate is
    // absent this cycle is resolved by the lifecycle, so the rest need no candidate at all.
    if (points[0]?.met !== true) return;
    const labels: Record<string, string> = { ...rule.labels, ...extra, alertname: rule.name, severity: rule.severity };
    out.push({ rule, fingerprint: fingerprintOf(labels), labels, points, evidence });
  };
  for (const rule of o.rules) {
    const sel = rule.select;
    const threshold = rule.threshold;
    const cmp = (v: number): boolean => threshold !== 'detector' && compare(v, rule.op, threshold);
    switch (sel.source) {
      case 'drift': {
        if (!snapshot.drift) break;
        for (const list of snapshot.drift.values()) {
          const first = list[0];
          if (first === undefined || !allowed(sel.models, first.model)) continue;
          const dataset = first.feature === '';
          if (dataset !== (sel.signal === 'dataset_share')) continue;
          if (!dataset && sel.features !== undefined && !sel.features.includes(first.feature)) continue;
          if (!(threshold === 'detector' ? first.drifted : cmp(first.score ?? Number.NaN))) continue;
          const points = list.map((p) => {
            const value = p.score ?? Number.NaN;
            return { ts: p.ts, runId: p.runId, value, met: threshold === 'detector' ? p.drifted : cmp(value) };
          });
          const labels: Record<string, string> = { model: first.model };
          if (!dataset) labels['feature'] = first.feature;
          add(rule, labels, points, () => {
            const p = first;
            const comparison: Comparison =
              threshold === 'detector' ? (dataset ? '>=' : P_VALUE_METHODS.has(p.method) ? '<' : '>') : rule.op;
            const params = parseParams(p.parameters);
            if (!dataset && p.statistic !== null) params['statistic'] = p.statistic;
            if (!dataset && p.pValue !== null) params['p_value'] = p.pValue;
            const top = dataset
              ? (driftByModel.get(p.model) ?? [])
                  .filter((f) => f.runId === p.runId && f.feature !== '' && f.drifted)
                  .sort((a, b) => severity(b) - severity(a))
                  .slice(0, maxFeatures)
                  .map(featureEvidence)
              : [featureEvidence(p)];
            return {
              signal: dataset ? 'dataset_drift_share' : 'feature_drift_score',
              value: p.score ?? Number.NaN,
              comparison,
              threshold: threshold === 'detector' ? p.threshold : threshold,
              window: { from: iso(p.windowFrom), to: iso(p.windowTo) },
              ...(p.referenceId !== '' ? { reference: { id: p.referenceId } } : {}),
              sampleSizes: { reference: p.nRef, current: p.nCur },
              method: p.method,
              parameters: params,
              topFeatures: top,
            };
          });
        }
        break;
      }
      case 'performance': {
        if (!snapshot.performance) break;
        for (const [k, list] of snapshot.performance) {
          const first = list[0];
          if (first === undefined || !allowed(sel.models, first.model) || !sel.metric.includes(first.metric)) continue;
          if (sel.from !== 'any' && first.source !== sel.from) continue;
          let points: CandidatePoint[];
          let baseline: number | undefined;
          if (sel.mode === 'drop') {
            baseline = o.baselines.observe(k, list, (runId) => referenceOfRun.get(runId) ?? '');
            if (baseline === undefined) continue;
            const b = baseline;
            const lowerBetter = ErrorMetrics.has(first.metric);
            points = list
              .filter((p) => !o.baselines.isBaselineRun(k, p.runId))
              .map((p) => {
                const value = lowerBetter
                  ? b === 0
                    ? p.value > 0
                      ? Infinity
                      : 0
                    : (p.value - b) / Math.abs(b)
                  : b - p.value;
                return { ts: p.ts, runId: p.runId, value, met: cmp(value) };
              });
          } else {
            points = list.map((p) => ({ ts: p.ts, runId: p.runId, value: p.value, met: cmp(p.value) }));
          }
          add(rule, { model: first.model, source: first.source, metric: first.metric }, points, () => {
            const p = first;
            const value = points[0]?.value ?? p.value;
            const ref = referenceOfRun.get(p.runId);
            return {
              signal: sel.mode === 'drop' ? `${p.source}.${p.metric}_drop` : `${p.source}.${p.metric}`,
              value,
              comparison: rule.op,
              threshold: threshold === 'detector' ? Number.NaN : threshold,
              window: { from: iso(p.windowFrom), to: iso(p.windowTo) },
              ...(ref ? { reference: { id: ref } } : {}),
              sampleSizes: { current: p.rows },
              method: p.source === 'estimated' ? 'cbpe' : p.source,
              parameters: {
                metric: p.metric,
                current: p.value,
                labelled_rows: p.labelledRows,
                ...(baseline !== undefined ? { baseline } : {}),
              },
            };
          });
        }
        break;
      }
      case 'series': {
        for (const s of snapshot.series ?? []) {
          if (!sel.series.includes(s.series) || !allowed(sel.models, s.model)) continue;
          if (sel.features !== undefined && !sel.features.includes(s.feature)) continue;
          if (sel.hadHistory && !(s.max > 0)) continue;
          if (!cmp(s.points[0]?.value ?? Number.NaN)) continue;
          const points = s.points.map((p) => ({ ts: p.ts, runId: p.runId, value: p.value, met: cmp(p.value) }));
          const labels: Record<string, string> = { model: s.model, series: s.series };
          if (s.feature !== '') labels['feature'] = s.feature;
          add(rule, labels, points, () => ({
            signal: s.series,
            value: s.points[0]?.value ?? Number.NaN,
            comparison: rule.op,
            threshold: threshold === 'detector' ? Number.NaN : threshold,
            parameters: { series: s.series, ...(s.feature !== '' ? { feature: s.feature } : {}), lookback_max: s.max },
          }));
        }
        break;
      }
      case 'runs': {
        for (const [model, list] of snapshot.runs ?? []) {
          if (!allowed(sel.models, model)) continue;
          const points = list.map((r) => {
            const value = sel.status.includes(r.status) ? 1 : 0;
            return { ts: r.ts, runId: r.runId, value, met: cmp(value) };
          });
          add(rule, { model }, points, () => {
            const r = list[0] as (typeof list)[number];
            return {
              signal: 'detect_run_status',
              value: points[0]?.value ?? 0,
              comparison: rule.op,
              threshold: threshold === 'detector' ? Number.NaN : threshold,
              window: { from: iso(r.windowFrom), to: iso(r.windowTo) },
              ...(r.referenceId !== '' ? { reference: { id: r.referenceId } } : {}),
              parameters: { status: r.status, error: r.error.slice(0, 500), run_id: r.runId },
            };
          });
        }
        break;
      }
      case 'multivariate': {
        for (const list of snapshot.multivariate?.values() ?? []) {
          const first = list[0];
          if (first === undefined || !allowed(sel.models, first.model)) continue;
          if (sel.methods !== undefined && !sel.methods.includes(first.method)) continue;
          if (sel.groups !== undefined && !sel.groups.includes(first.group)) continue;
          const points = list.map((p) => ({
            ts: p.ts,
            runId: p.runId,
            value: p.statistic,
            met: threshold === 'detector' ? p.drift : cmp(p.statistic),
          }));
          const labels: Record<string, string> = { model: first.model, method: first.method };
          if (first.group !== '') labels['group'] = first.group;
          add(rule, labels, points, () => multivariateEvidence(first, rule));
        }
        break;
      }
      case 'change_points': {
        for (const c of snapshot.changePoints ?? []) {
          if (!allowed(sel.models, c.model) || (sel.series !== undefined && !sel.series.includes(c.series))) continue;
          const points = [{ ts: c.lastTs, runId: '', value: c.count, met: cmp(c.count) }];
          add(rule, { model: c.model, series: c.series }, points, () => ({
            signal: 'change_points',
            value: c.count,
            comparison: rule.op,
            threshold: threshold === 'detector' ? Number.NaN : threshold,
            parameters: { series: c.series, detectors: c.detectors.join(',') },
          }));
        }
        break;
      }
    }
  }
  return out;
}

/** Whether the table a rule reads was read this cycle (else its alerts keep their state). */
export function sourceRead(rule: Rule, snapshot: Snapshot): boolean {
  switch (rule.select.source) {
    case 'drift':
      return snapshot.drift !== undefined;
    case 'performance':
      return snapshot.performance !== undefined;
    case 'series':
      return snapshot.series !== undefined;
    case 'runs':
      return snapshot.runs !== undefined;
    case 'change_points':
      return snapshot.changePoints !== undefined;
    case 'multivariate':
      return snapshot.multivariate !== undefined;
  }
}

export { key };
