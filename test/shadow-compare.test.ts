import { describe, expect, it } from 'vitest';
import {
  classificationPerformance,
  compareClassification,
  compareScores,
  decideVerdict,
  mcnemarExact,
  pairedBootstrap,
  summarize,
  summarizeLatency,
  type VerdictEvidence,
} from '../src/shadow/index.js';
import { statsFixture } from './fixtures/shadow/load.js';

const stats = statsFixture();

function relClose(got: number, want: number, rel: number, label: string): void {
  const tol = Math.max(rel * Math.abs(want), 1e-300);
  expect(Math.abs(got - want), `${label}: got ${got}, want ${want}`).toBeLessThanOrEqual(tol);
}

describe('McNemar exact test', () => {
  it.each(stats.mcnemar.map((m) => [JSON.stringify(m.table), m] as const))(
    'matches scipy.stats.binomtest for %s',
    (_name, m) => {
      const r = mcnemarExact(m.b, m.c);
      expect(r.b).toBe(m.b);
      expect(r.c).toBe(m.c);
      relClose(r.pValue, m.pvalue, 1e-9, `p-value of ${JSON.stringify(m.table)}`);
    },
  );

  it('derives the discordant pairs from paired correctness', () => {
    // truth 0/1; production right on rows 0-5, candidate right on rows 2-9 → b = 2, c = 4.
    const truth = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1];
    const prod = truth.map((t, i) => (i < 6 ? t : 1 - t));
    const cand = truth.map((t, i) => (i >= 2 ? t : 1 - t));
    const r = classificationPerformance(truth, prod, cand);
    expect(r.table).toEqual([
      [4, 2],
      [4, 0],
    ]);
    expect(r.production.accuracy).toBeCloseTo(0.6, 12);
    expect(r.candidate.accuracy).toBeCloseTo(0.8, 12);
    expect(r.mcnemar.pValue).toBeCloseTo(mcnemarExact(2, 4).pValue, 15);
  });

  it('refuses counts that are not counts', () => {
    expect(() => mcnemarExact(-1, 3)).toThrow(/count/);
    expect(() => mcnemarExact(1.5, 3)).toThrow(/count/);
  });
});

describe('paired bootstrap', () => {
  const b = stats.bootstrap;

  it('reproduces the NumPy percentile interval computed from the same resampling indices', () => {
    const r = pairedBootstrap(b.truth, b.production, b.candidate, {
      metric: 'mae',
      resamples: b.resamples,
      seed: b.seed,
      confidence: b.confidence,
    });
    relClose(r.difference, b.estimate, 1e-12, 'estimate');
    relClose(r.low, b.low, 1e-9, 'low');
    relClose(r.high, b.high, 1e-9, 'high');
    expect(r.resamples).toBe(b.resamples);
  });

  it('does the same for RMSE (not a mean of per-row terms)', () => {
    const r = pairedBootstrap(b.truth, b.production, b.candidate, {
      metric: 'rmse',
      resamples: b.resamples,
      seed: b.seed,
    });
    relClose(r.difference, stats.bootstrap_rmse.estimate, 1e-12, 'estimate');
    relClose(r.low, stats.bootstrap_rmse.low, 1e-9, 'low');
    relClose(r.high, stats.bootstrap_rmse.high, 1e-9, 'high');
  });

  it('agrees with scipy.stats.bootstrap (paired, percentile, other resamples) within Monte Carlo error', () => {
    const r = pairedBootstrap(b.truth, b.production, b.candidate, { resamples: 4000, seed: 12345 });
    const width = b.scipy_percentile_high - b.scipy_percentile_low;
    expect(Math.abs(r.low - b.scipy_percentile_low)).toBeLessThan(0.1 * width);
    expect(Math.abs(r.high - b.scipy_percentile_high)).toBeLessThan(0.1 * width);
    // The candidate was generated with a bias: its MAE is higher and the interval excludes 0.
    expect(r.low).toBeGreaterThan(0);
  });

  it('is reproducible for a seed and differs across seeds', () => {
    const a = pairedBootstrap(b.truth, b.production, b.candidate, { seed: 5, resamples: 500 });
    const a2 = pairedBootstrap(b.truth, b.production, b.candidate, { seed: 5, resamples: 500 });
    const c = pairedBootstrap(b.truth, b.production, b.candidate, { seed: 6, resamples: 500 });
    expect(a2).toEqual(a);
    expect(c.low).not.toBe(a.low);
  });
});

describe('distributions', () => {
  it('quantiles match NumPy (linear)', () => {
    const q = stats.quantiles;
    const d = summarize(q.values);
    relClose(d.p50, q.p50, 1e-12, 'p50');
    relClose(d.p95, q.p95, 1e-12, 'p95');
    relClose(d.p99, q.p99, 1e-12, 'p99');
    expect(d.max).toBe(q.max);
  });

  it('score differences: absolute, relative (production 0 excluded), non-finite counted', () => {
    const r = compareScores([1, 2, 0, 4, Number.NaN], [1.5, 2, 1, 2, 3]);
    expect(r.absolute.count).toBe(4);
    expect(r.absolute.max).toBe(2);
    expect(r.relative.count).toBe(3);
    expect(r.relativeExcluded).toBe(1);
    expect(r.nonFinite).toBe(1);
    expect(r.relative.max).toBe(0.5);
    expect(r.absolute.p50).toBeCloseTo(0.75, 12);
  });

  it('latency percentiles and throughput over the wall time', () => {
    const batches = Array.from({ length: 100 }, (_, i) => ({ rows: 64, ms: i + 1 }));
    const l = summarizeLatency(batches, 2000);
    expect(l.p50Ms).toBeCloseTo(50.5, 12);
    expect(l.p99Ms).toBeCloseTo(99.01, 12);
    expect(l.rowsPerSecond).toBeCloseTo(3200, 9);
  });
});

describe('classification comparison', () => {
  it('counts agreement, flips and agreement per segment', () => {
    const prod = ['a', 'a', 'b', 'b', 'c', 'a', 'b', 'c'];
    const cand = ['a', 'b', 'b', 'a', 'c', 'a', 'c', 'c'];
    const version = ['v1', 'v1', 'v1', 'v2', 'v2', 'v2', 'v2', null];
    const r = compareClassification(prod, cand, { segments: { version } });
    expect(r.rows).toBe(8);
    expect(r.agreements).toBe(5);
    expect(r.agreement).toBe(5 / 8);
    expect(r.classes).toEqual(['a', 'b', 'c']);
    expect(r.flipMatrix).toEqual([
      [2, 1, 0],
      [1, 1, 1],
      [0, 0, 2],
    ]);
    expect(r.flips.map((f) => `${f.from}>${f.to}`).sort()).toEqual(['a>b', 'b>a', 'b>c']);
    expect(r.segments.version).toEqual([
      { value: 'v2', rows: 4, agreements: 2, agreement: 0.5 },
      { value: 'v1', rows: 3, agreements: 2, agreement: 2 / 3 },
    ]);
  });

  it('treats numeric and bigint labels alike and orders classes numerically', () => {
    const r = compareClassification(BigInt64Array.from([10n, 2n, 2n]), [10, 2, 9]);
    expect(r.classes).toEqual(['2', '9', '10']);
    expect(r.agreements).toBe(2);
  });

  it('refuses vectors of different lengths', () => {
    expect(() => compareClassification([1, 2], [1])).toThrow(/2 rows, candidate 1/);
  });
});

describe('verdict', () => {
  const base: VerdictEvidence = { rows: 1000, skipped: 0, agreement: 0.995 };

  it('promotes when every check passes', () => {
    const v = decideVerdict(base);
    expect(v.verdict).toBe('promote');
    expect(v.reasons.join('; ')).toMatch(/agreement 0.995 at or above 0.98/);
  });

  it('rejects agreement below the threshold', () => {
    const v = decideVerdict({ ...base, agreement: 0.947 });
    expect(v.verdict).toBe('reject');
    expect(v.reasons[0]).toMatch(/agreement 0.947 below 0.98/);
  });

  it('holds with too few rows or too many skipped', () => {
    expect(decideVerdict({ ...base, rows: 50 }).verdict).toBe('hold');
    const v = decideVerdict({ ...base, skipped: 500 });
    expect(v.verdict).toBe('hold');
    expect(v.reasons[0]).toMatch(/500 of 1500 rows skipped/);
  });

  it('rejects a significant accuracy drop, not an insignificant one', () => {
    const truth = Array.from({ length: 400 }, (_, i) => i % 2);
    const prod = truth.map((t, i) => (i % 10 === 0 ? 1 - t : t));
    const worse = truth.map((t, i) => (i % 4 === 0 ? 1 - t : t));
    const v = decideVerdict({ ...base, classification: classificationPerformance(truth, prod, worse) });
    expect(v.verdict).toBe('reject');
    expect(v.reasons[0]).toMatch(/significant accuracy drop/);
    const same = truth.map((t, i) => (i % 10 === 1 ? 1 - t : t));
    expect(decideVerdict({ ...base, classification: classificationPerformance(truth, prod, same) }).verdict).toBe(
      'promote',
    );
  });

  it('rejects a regression metric whose bootstrap interval lies above zero', () => {
    const b = stats.bootstrap;
    const reg = pairedBootstrap(b.truth, b.production, b.candidate);
    const v = decideVerdict({ ...base, agreement: undefined, regression: reg });
    expect(v.verdict).toBe('reject');
    expect(v.reasons[0]).toMatch(/significantly worse MAE/);
    // Swapping the roles makes the candidate the better one.
    expect(decideVerdict({ ...base, regression: pairedBootstrap(b.truth, b.candidate, b.production) }).verdict).toBe(
      'promote',
    );
  });

  it('checks optional score-difference and latency limits, and refuses bad thresholds', () => {
    const latency = summarizeLatency([{ rows: 10, ms: 80 }]);
    expect(decideVerdict({ ...base, latency }, { maxLatencyP99Ms: 50 }).verdict).toBe('reject');
    expect(decideVerdict({ ...base, latency }).verdict).toBe('promote');
    const differences = compareScores([0, 0], [0.2, 0.3]);
    expect(decideVerdict({ ...base, differences }, { maxAbsDiffP95: 0.1 }).verdict).toBe('reject');
    expect(() => decideVerdict(base, { minAgreement: 2 })).toThrow(/shadow.verdict.minAgreement/);
  });
});
