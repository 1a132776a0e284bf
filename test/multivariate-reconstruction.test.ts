import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ModelwatchError } from '../src/common/errors.js';
import { componentDrift, componentsForShare, fitReconstruction } from '../src/drift/multivariate/index.js';

// Oracle: test/fixtures/multivariate/make_fixtures.py (StandardScaler + sklearn PCA(n_components=share,
// svd_solver='full') on reference.csv; mean Euclidean reconstruction error per sample and per chunk).
const dir = new URL('./fixtures/multivariate/', import.meta.url);
function csv(name: string): number[][] {
  const lines = readFileSync(new URL(name, dir), 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => l.split(',').map(Number));
}
interface Case {
  share: number;
  nComponents: number;
  explainedVarianceRatio: number[];
  referenceError: number;
  chunkErrors: number[];
  lower: number;
  upper: number;
  currentSame: number;
  currentFlip: number;
}
const oracle = JSON.parse(readFileSync(new URL('reconstruction.json', dir), 'utf8')) as {
  chunkSize: number;
  cases: Case[];
};
const reference = csv('reference.csv');
const same = csv('current_same.csv');
const flip = csv('current_flip.csv');

function relClose(got: number, want: number, label: string, rel = 1e-6): void {
  expect(Math.abs(got - want), `${label}: got ${got}, want ${want}`).toBeLessThanOrEqual(
    Math.max(rel * Math.abs(want), 1e-12),
  );
}

describe('data reconstruction drift against scikit-learn', () => {
  for (const c of oracle.cases) {
    it(`share ${c.share}: components, errors and band match PCA within 1e-6`, () => {
      const model = fitReconstruction(reference, { varianceShare: c.share, chunkSize: oracle.chunkSize });
      expect(model.nComponents).toBe(c.nComponents);
      c.explainedVarianceRatio.forEach((r, i) =>
        relClose(model.explainedVarianceRatio[i] ?? Number.NaN, r, `ratio ${i}`),
      );
      relClose(model.referenceError, c.referenceError, 'reference error');
      expect(model.chunkErrors).toHaveLength(c.chunkErrors.length);
      c.chunkErrors.forEach((e, i) => relClose(model.chunkErrors[i] ?? Number.NaN, e, `chunk ${i}`));
      relClose(model.lower, c.lower, 'lower');
      relClose(model.upper, c.upper, 'upper');
      relClose(model.error(same), c.currentSame, 'current (same distribution)');
      relClose(model.error(flip), c.currentFlip, 'current (flipped correlation)');
    });
  }

  it('flags the flipped correlation that no per-feature KS test sees, and not the control', () => {
    // Every marginal is unchanged: no column's KS test rejects at 0.05.
    const univariate = componentDrift(reference, flip, { alpha: 0.05, threshold: 0 });
    expect(univariate.drifted).toEqual([]);
    const model = fitReconstruction(reference, { chunkSize: oracle.chunkSize });
    const flipped = model.evaluate(flip);
    expect(flipped.verdict).toBe('drift');
    expect(flipped.error).toBeGreaterThan(flipped.upper);
    expect(model.evaluate(same).verdict).toBe('no_drift');
  });

  it('follows scikit-learn’s rule for a fractional n_components (strictly above the share)', () => {
    expect(componentsForShare([0.5, 0.3, 0.2], 0.5)).toBe(2);
    expect(componentsForShare([0.5, 0.3, 0.2], 0.49)).toBe(1);
    expect(componentsForShare([0.5, 0.3, 0.2], 1)).toBe(3);
  });

  it('imputes non-finite values with the reference mean and rejects a reference too short for two chunks', () => {
    const model = fitReconstruction(reference, { chunkSize: oracle.chunkSize });
    const withNaN = same.map((r, i) => (i === 0 ? [Number.NaN, ...r.slice(1)] : r));
    const imputed = same.map((r, i) => (i === 0 ? [model.means[0] ?? 0, ...r.slice(1)] : r));
    expect(model.error(withNaN)).toBe(model.error(imputed));
    expect(() => fitReconstruction(reference.slice(0, 150), { chunkSize: 100 })).toThrow(ModelwatchError);
    expect(() => model.error([[1, 2]])).toThrow(/columns/);
  });
});
