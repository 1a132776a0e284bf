import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ModelwatchError } from '../src/common/errors.js';
import {
  componentDrift,
  domainClassifierDrift,
  rocAuc,
  runDomainClassifier,
  seededRng,
  type Rng,
} from '../src/drift/multivariate/index.js';

const dir = new URL('./fixtures/multivariate/', import.meta.url);

function normal(rng: Rng): number {
  // Box–Muller on the seeded generator.
  const u = 1 - rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** n rows of 5 features: (x0, x1) correlated with `rho`, x2..x4 independent noise; `shift` adds to x3. */
function sample(n: number, rho: number, seed: number, shift = 0): number[][] {
  const rng = seededRng(seed);
  return Array.from({ length: n }, () => {
    const a = normal(rng);
    const b = rho * a + Math.sqrt(1 - rho * rho) * normal(rng);
    return [a, b, normal(rng), normal(rng) + shift, normal(rng)];
  });
}
const features = ['x0', 'x1', 'x2', 'x3', 'x4'];
const small = { features, seed: 11 };

describe('domain classifier drift', () => {
  it('ROC AUC with tied scores matches sklearn.metrics.roc_auc_score', () => {
    // Oracle: test/fixtures/multivariate/make_fixtures.py.
    const o = JSON.parse(readFileSync(new URL('auc.json', dir), 'utf8')) as {
      labels: number[];
      scores: number[];
      auc: number;
    };
    expect(Math.abs(rocAuc(o.labels, o.scores) - o.auc)).toBeLessThan(1e-12);
    expect(rocAuc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])).toBe(1);
    expect(rocAuc([1, 1], [0.1, 0.2])).toBeNaN();
  });

  it('two samples of one distribution: AUC near 0.5 (false-alarm rate: multivariate-detection.test.ts)', () => {
    const r = domainClassifierDrift(sample(200, 0.8, 1), sample(200, 0.8, 2), small);
    expect(Math.abs(r.auc - 0.5)).toBeLessThan(0.08);
    expect(r.ciLow).toBeLessThan(0.55);
    expect(r.foldAucs).toHaveLength(5);
    expect([r.nReference, r.nCurrent]).toEqual([200, 200]);
  });

  it('a correlation flip no per-feature KS test sees: AUC well above 0.55, the two features ranked top', () => {
    const ref = sample(200, 0.8, 3);
    const cur = sample(200, -0.8, 4);
    expect(componentDrift(ref, cur, { threshold: 0 }).drifted).toEqual([]);
    const r = domainClassifierDrift(ref, cur, small);
    expect(r.auc).toBeGreaterThan(0.7);
    expect(r.ciLow).toBeGreaterThan(0.5);
    expect(r.verdict).toBe('drift');
    expect(new Set(r.importance.slice(0, 2).map((f) => f.feature))).toEqual(new Set(['x0', 'x1']));
    expect(r.importance[2]?.importance ?? 1).toBeLessThan((r.importance[1]?.importance ?? 0) / 3);
  });

  it('one shifted feature is the top-ranked one', () => {
    const r = domainClassifierDrift(sample(200, 0.8, 5), sample(200, 0.8, 6, 0.7), small);
    expect(r.verdict).toBe('drift');
    expect(r.importance[0]?.feature).toBe('x3');
  });

  it('runs in worker threads (1 or 2, folds shared) with the same result as in-thread, capped and seeded', async () => {
    const ref = sample(400, 0.8, 7);
    const cur = sample(300, -0.8, 8);
    const options = { ...small, seed: 5, maxRowsPerSide: 150 };
    const inThread = domainClassifierDrift(ref, cur, options);
    for (const workers of [1, 2]) {
      const inWorker = await runDomainClassifier(ref, cur, { ...options, workers });
      expect([inWorker.nReference, inWorker.nCurrent]).toEqual([150, 150]);
      expect(inWorker.foldAucs).toEqual(inThread.foldAucs);
      expect(inWorker.importance).toEqual(inThread.importance);
      expect(inWorker.trees).toEqual([50, 50, 50, 50, 50]);
      expect(inWorker.verdict).toBe('drift');
    }
  });

  it('a spent time budget stops adding trees and says so', () => {
    const r = domainClassifierDrift(sample(2000, 0.8, 12), sample(2000, -0.8, 13), {
      ...small,
      nEstimators: 100_000,
      timeBudgetMs: 50,
    });
    expect(r.budgetExhausted).toBe(true);
    expect(r.trees.every((t) => t >= 1 && t < 100_000)).toBe(true);
    expect(r.foldAucs.every((a) => a > 0.5)).toBe(true);
  });

  it('a change in missingness alone is detected (non-finite values get their own bin)', () => {
    const ref = sample(300, 0, 14);
    const cur = sample(300, 0, 15).map((r, i) =>
      i % 3 === 0 ? [r[0] ?? 0, r[1] ?? 0, Number.NaN, r[3] ?? 0, r[4] ?? 0] : r,
    );
    const r = domainClassifierDrift(ref, cur, small);
    expect(r.verdict).toBe('drift');
    expect(r.importance[0]?.feature).toBe('x2');
  });

  it('rejects bad input in the caller and times out a worker that runs too long', async () => {
    expect(() => domainClassifierDrift(sample(50, 0, 1), [[1, 2]])).toThrow(ModelwatchError);
    expect(() => domainClassifierDrift(sample(50, 0, 1), sample(50, 0, 2), { maxBins: 300 })).toThrow(/maxBins/);
    await expect(runDomainClassifier(sample(50, 0, 1), sample(50, 0, 2), { workers: 9 })).rejects.toMatchObject({
      code: 'bad_request',
      field: 'workers',
    });
    await expect(
      runDomainClassifier(sample(3000, 0.8, 9), sample(3000, -0.8, 10), { nEstimators: 5000, timeoutMs: 50 }),
    ).rejects.toMatchObject({
      code: 'timeout',
    });
    const ac = new AbortController();
    const pending = runDomainClassifier(sample(3000, 0.8, 9), sample(3000, -0.8, 10), {
      nEstimators: 5000,
      signal: ac.signal,
    });
    ac.abort();
    await expect(pending).rejects.toMatchObject({ code: 'cancelled' });
  });
});
