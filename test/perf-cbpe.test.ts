import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cbpeAggregates,
  classificationAggregates,
  computePerformance,
  finishCbpe,
  finishClassification,
} from '../src/drift/performance/index.js';
import type { EstimatedMetrics } from '../src/drift/performance/index.js';
import type { ClickHouseStore, PredictionRow } from '../src/store/index.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';

/**
 * A perfectly calibrated binary classifier: p ~ U(0, 1), y ~ Bernoulli(p), predicted positive when p > 0.5.
 * Analytically: accuracy = E[max(p, 1 − p)] = 3/4; precision = E[p | p > ½] = 3/4; recall = P(p > ½ | y = 1)
 * = ∫½¹ 2p dp = 3/4; F1 = 3/4; ROC AUC = P(p₊ > p₋) with densities 2p and 2(1 − p) = 5/6.
 * The estimate is a mean of n bounded terms (sd of max(p, 1 − p) is 1/√48), so with n = 20 000 its sd is
 * about 0.001: the tolerance 0.005 is 5 sd. The realised accuracy (from the drawn labels) adds a binomial
 * sd of √(3/16 / n) ≈ 0.003: tolerance 0.015.
 */
const N = 20_000;
const TOL_ANALYTIC = 0.005;
const TOL_REALISED = 0.015;

function calibratedBinary(seed: number): { probs: number[][]; labels: string[] } {
  const u = mulberry32(seed);
  const probs: number[][] = [];
  const labels: string[] = [];
  for (let i = 0; i < N; i++) {
    const p = u();
    probs.push([p]);
    labels.push(u() < p ? '1' : '0');
  }
  return { probs, labels };
}

function calibratedMulticlass(seed: number, k: number): { probs: number[][]; labels: string[] } {
  const u = mulberry32(seed);
  const g = gaussian(u);
  const probs: number[][] = [];
  const labels: string[] = [];
  for (let i = 0; i < N; i++) {
    const z = Array.from({ length: k }, () => 1.3 * g());
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    const p = e.map((v) => v / s);
    probs.push(p);
    let r = u();
    let y = k - 1;
    for (let j = 0; j < k; j++) {
      r -= p[j] ?? 0;
      if (r < 0) {
        y = j;
        break;
      }
    }
    labels.push(String(y));
  }
  return { probs, labels };
}

describe('CBPE on a perfectly calibrated classifier', () => {
  it('binary: expected accuracy, precision, recall, F1 and ROC AUC match the analytic values', () => {
    const { probs, labels } = calibratedBinary(7);
    const est = finishCbpe(
      cbpeAggregates({ task: 'binary', classes: ['0', '1'], positive: '1', probabilities: probs }),
    );
    expect(Math.abs((est.accuracy ?? 0) - 0.75)).toBeLessThan(TOL_ANALYTIC);
    expect(Math.abs((est.precision ?? 0) - 0.75)).toBeLessThan(TOL_ANALYTIC);
    expect(Math.abs((est.recall ?? 0) - 0.75)).toBeLessThan(TOL_ANALYTIC);
    expect(Math.abs((est.f1 ?? 0) - 0.75)).toBeLessThan(TOL_ANALYTIC);
    expect(Math.abs((est.roc_auc ?? 0) - 5 / 6)).toBeLessThan(TOL_ANALYTIC);
    const cm = est.expected_confusion?.matrix ?? [];
    expect(cm.flat().reduce((a, b) => a + b, 0)).toBeCloseTo(N, 6);
    // The estimate tracks what the labels then show.
    const measured = finishClassification(
      classificationAggregates({
        task: 'binary',
        classes: ['0', '1'],
        positive: '1',
        actual: labels,
        probabilities: probs,
      }),
    );
    expect(Math.abs((est.accuracy ?? 0) - (measured.accuracy ?? 0))).toBeLessThan(TOL_REALISED);
    expect(Math.abs((est.roc_auc ?? 0) - (measured.roc_auc ?? 0))).toBeLessThan(TOL_REALISED);
    expect(Math.abs((est.f1 ?? 0) - (measured.f1 ?? 0))).toBeLessThan(TOL_REALISED);
  });

  it('binary: a miscalibrated (overconfident) model is estimated wrongly — the estimate is not read from labels', () => {
    const { probs } = calibratedBinary(8);
    // Push every probability to the extremes: CBPE now believes accuracy is near 1, while labels are unchanged.
    const sharp = probs.map(([p]) => [(p ?? 0) > 0.5 ? 0.999 : 0.001]);
    const est = finishCbpe(
      cbpeAggregates({ task: 'binary', classes: ['0', '1'], positive: '1', probabilities: sharp }),
    );
    expect(est.accuracy).toBeGreaterThan(0.99);
  });

  it('multiclass: expected accuracy and macro F1 track the realised values', () => {
    const { probs, labels } = calibratedMulticlass(11, 4);
    const classes = ['0', '1', '2', '3'];
    const est = finishCbpe(cbpeAggregates({ task: 'multiclass', classes, positive: '1', probabilities: probs }));
    const measured = finishClassification(
      classificationAggregates({ task: 'multiclass', classes, positive: '1', actual: labels, probabilities: probs }),
    );
    expect(Math.abs((est.accuracy ?? 0) - (measured.accuracy ?? 0))).toBeLessThan(TOL_REALISED);
    expect(Math.abs((est.f1 ?? 0) - (measured.f1_macro ?? 0))).toBeLessThan(TOL_REALISED);
    expect(Math.abs((est.roc_auc ?? 0) - (measured.roc_auc ?? 0))).toBeLessThan(TOL_REALISED);
  });
});

describe('CBPE through ClickHouse equals the JS computation', () => {
  let store: ClickHouseStore;
  let cleanup: () => Promise<void>;
  const t0 = Date.parse('2026-11-02T00:00:00Z');

  beforeAll(async () => {
    ({ store, cleanup } = await openTestStore());
  });
  afterAll(async () => {
    await cleanup();
  });

  const insert = async (model: string, probs: number[][]): Promise<void> => {
    const rows: PredictionRow[] = probs.map((p, i) => ({
      model,
      version: '',
      ts: t0 + i,
      event_id: `${model}-${i}`,
      request_id: `${model}-${i}`,
      row: 0,
      features_num: {},
      features_cat: {},
      outputs_num: Object.fromEntries(p.map((v, j) => [`prob_${j}`, v])),
      outputs_cat: {},
    }));
    await store.insertPredictions(rows);
  };

  const same = (a: EstimatedMetrics | null, b: EstimatedMetrics): void => {
    expect(a).not.toBeNull();
    for (const k of ['accuracy', 'precision', 'recall', 'f1', 'roc_auc'] as const) {
      const x = a?.[k] ?? NaN;
      const y = b[k] ?? NaN;
      expect(Math.abs(x - y), k).toBeLessThanOrEqual(1e-9 * Math.abs(y));
    }
  };

  it('binary, no labels at all: estimate present, measured absent', async () => {
    const { probs } = calibratedBinary(21);
    await insert('cbpe-bin', probs);
    const report = await computePerformance(store, { model: 'cbpe-bin', fromMs: t0, toMs: t0 + N });
    expect(report.rows).toBe(N);
    expect(report.label_coverage).toBe(0);
    expect(report.measured).toBeNull();
    same(
      report.estimated,
      finishCbpe(cbpeAggregates({ task: 'binary', classes: ['0', '1'], positive: '1', probabilities: probs })),
    );
    expect(Math.abs((report.estimated?.accuracy ?? 0) - 0.75)).toBeLessThan(TOL_ANALYTIC);
  });

  it('multiclass', async () => {
    const { probs } = calibratedMulticlass(22, 3);
    await insert('cbpe-multi', probs);
    const report = await computePerformance(store, { model: 'cbpe-multi', fromMs: t0, toMs: t0 + N });
    same(
      report.estimated,
      finishCbpe(cbpeAggregates({ task: 'multiclass', classes: ['0', '1', '2'], positive: '1', probabilities: probs })),
    );
  });
});
