import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  componentDrift,
  meanDistance,
  meanDistanceDrift,
  medianPairwiseDistance,
  mmdDrift,
} from '../src/drift/multivariate/index.js';

// Oracle: test/fixtures/multivariate/make_fixtures.py (NumPy/SciPy): unbiased MMD² with the RBF kernel
// exp(-d²/(2σ²)), σ = median of the pooled sample's pairwise distances; mean-vector distances; scipy
// ks_2samp(method='asymp') per component.
const dir = new URL('./fixtures/multivariate/', import.meta.url);
function csv(name: string): number[][] {
  const lines = readFileSync(new URL(name, dir), 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => l.split(',').map(Number));
}
const oracle = JSON.parse(readFileSync(new URL('embedding.json', dir), 'utf8')) as {
  bandwidth: number;
  mmd2: number;
  sameHalves: { bandwidth: number; mmd2: number };
  euclidean: number;
  cosine: number;
  ksStatistic: number[];
  ksPValue: number[];
};
const ref = csv('emb_reference.csv');
const cur = csv('emb_current.csv');
const firstHalf = ref.slice(0, 160);
const secondHalf = ref.slice(160);

function relClose(got: number, want: number, label: string, rel = 1e-9): void {
  expect(Math.abs(got - want), `${label}: got ${got}, want ${want}`).toBeLessThanOrEqual(
    Math.max(rel * Math.abs(want), 1e-15),
  );
}

describe('embedding drift kernels against NumPy/SciPy', () => {
  it('median-distance bandwidth and unbiased MMD² match within 1e-9', () => {
    relClose(medianPairwiseDistance([...ref, ...cur]), oracle.bandwidth, 'bandwidth');
    const shifted = mmdDrift(ref, cur, { permutations: 0 });
    relClose(shifted.bandwidth, oracle.bandwidth, 'bandwidth (mmdDrift)');
    relClose(shifted.mmd2, oracle.mmd2, 'mmd2');
    expect([shifted.nReference, shifted.nCurrent]).toEqual([ref.length, cur.length]);
    const control = mmdDrift(firstHalf, secondHalf, { permutations: 0 });
    relClose(control.bandwidth, oracle.sameHalves.bandwidth, 'bandwidth (halves)');
    relClose(control.mmd2, oracle.sameHalves.mmd2, 'mmd2 (halves)');
  });

  it('permutation p-value: same distribution p > 0.05, shifted p < 0.01 (seeded, reproducible)', () => {
    const control = mmdDrift(firstHalf, secondHalf, { permutations: 200, seed: 7 });
    expect(control.pValue).toBeGreaterThan(0.05);
    expect(control.verdict).toBe('no_drift');
    const shifted = mmdDrift(ref, cur, { permutations: 200, seed: 7 });
    expect(shifted.pValue).toBeLessThan(0.01);
    expect(shifted.verdict).toBe('drift');
    expect(mmdDrift(ref, cur, { permutations: 200, seed: 7 }).pValue).toBe(shifted.pValue);
  });

  it('caps each side with a seeded draw', () => {
    const a = mmdDrift(ref, cur, { permutations: 20, maxRowsPerSide: 50, seed: 3 });
    const b = mmdDrift(ref, cur, { permutations: 20, maxRowsPerSide: 50, seed: 3 });
    expect([a.nReference, a.nCurrent]).toEqual([50, 50]);
    expect(b).toEqual(a);
    expect(mmdDrift(ref, cur, { permutations: 20, maxRowsPerSide: 50, seed: 4 }).mmd2).not.toBe(a.mmd2);
  });

  it('mean-vector distances match NumPy within 1e-9', () => {
    const d = meanDistance(ref, cur);
    relClose(d.euclidean, oracle.euclidean, 'euclidean');
    relClose(d.cosine, oracle.cosine, 'cosine');
    expect(meanDistanceDrift(ref, cur).verdict).toBe('drift');
    expect(meanDistanceDrift(ref, cur, { metric: 'cosine', threshold: 2 }).verdict).toBe('no_drift');
  });

  it('per-component KS matches scipy and the shifted share (4 of 16) drifts', () => {
    const r = componentDrift(ref, cur);
    oracle.ksStatistic.forEach((s, j) => relClose(r.statistics[j] ?? Number.NaN, s, `D[${j}]`));
    // The p-value is the shared asymptotic KS one (src/drift/stats/math.ts), accurate to 1e-5 absolute
    // against scipy's kstwo.sf between its exact tails (test/drift-stats-math.test.ts).
    oracle.ksPValue.forEach((p, j) => expect(Math.abs((r.pValues[j] ?? Number.NaN) - p), `p[${j}]`).toBeLessThan(1e-5));
    expect(r.drifted).toEqual(oracle.ksPValue.flatMap((p, j) => (p < 0.05 ? [j] : [])));
    expect(r.drifted.every((j) => j < 4)).toBe(true);
    expect(r.share).toBeGreaterThan(0.2);
    expect(r.verdict).toBe('drift');
    expect(componentDrift(firstHalf, secondHalf).verdict).toBe('no_drift');
  });
});
