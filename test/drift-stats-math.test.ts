import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  benjaminiHochberg,
  chiSquareSf,
  chiSquareTest,
  gammaQ,
  hellinger,
  jensenShannon,
  kolmogorovSf,
  ks2sampAsympPValue,
  lnGamma,
  psi,
} from '../src/drift/index.js';
import { driftFixtureDir } from './support/drift-fixtures.js';

interface SfCase {
  k: number;
  x: number;
  sf: number;
}

describe('chi-square survival function (regularized upper incomplete gamma)', () => {
  const cases = JSON.parse(readFileSync(join(driftFixtureDir, 'chi2_sf.json'), 'utf8')) as SfCase[];

  it('matches scipy.stats.chi2.sf on every fixture point', () => {
    expect(cases.length).toBeGreaterThan(100);
    for (const c of cases) {
      const got = chiSquareSf(c.x, c.k);
      // absolute 1e-12 everywhere; relative 1e-9 where the value is not vanishingly small
      expect(Math.abs(got - c.sf), `k=${c.k} x=${c.x}`).toBeLessThan(1e-12);
      if (c.sf > 1e-280) expect(Math.abs(got - c.sf) / c.sf, `k=${c.k} x=${c.x}`).toBeLessThan(1e-9);
    }
  });

  it('has the closed forms of small degrees of freedom', () => {
    // k = 2: sf = exp(-x/2)
    expect(chiSquareSf(3, 2)).toBeCloseTo(Math.exp(-1.5), 14);
    expect(gammaQ(1, 0)).toBe(1);
    expect(lnGamma(5)).toBeCloseTo(Math.log(24), 13);
    expect(lnGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 13);
    expect(Number.isNaN(gammaQ(-1, 1))).toBe(true);
  });
});

describe('per-bin statistics', () => {
  it('are zero for identical distributions and positive otherwise', () => {
    expect(psi([1, 2, 3], [2, 4, 6])).toBeCloseTo(0, 15);
    expect(jensenShannon([1, 2, 3], [2, 4, 6])).toBeCloseTo(0, 7);
    expect(hellinger([1, 2, 3], [2, 4, 6])).toBeCloseTo(0, 7);
    expect(psi([1, 0], [0, 1])).toBeGreaterThan(1);
    // disjoint supports: JS distance = sqrt(ln 2), Hellinger = 1
    expect(jensenShannon([1, 0], [0, 1])).toBeCloseTo(Math.sqrt(Math.LN2), 14);
    expect(hellinger([1, 0], [0, 1])).toBe(1);
  });

  it('chi-square drops empty columns and is degenerate with one column', () => {
    expect(chiSquareTest([5, 0], [7, 0])).toEqual({ statistic: 0, p_value: 1 });
    const t = chiSquareTest([10, 20, 0], [20, 10, 0]);
    // 2x2 by hand: expected 15 each, stat = 4 * 25 / 15
    expect(t.statistic).toBeCloseTo(100 / 15, 12);
    expect(t.p_value).toBeCloseTo(chiSquareSf(100 / 15, 1), 15);
  });
});

describe('Benjamini–Hochberg', () => {
  it('matches scipy.stats.false_discovery_control on a known vector', () => {
    // scipy.stats.false_discovery_control([0.01, 0.04, 0.03, 0.2, 0.001]) =
    // [0.025, 0.05, 0.05, 0.2, 0.005]
    const q = benjaminiHochberg([0.01, 0.04, 0.03, 0.2, 0.001]);
    [0.025, 0.05, 0.05, 0.2, 0.005].forEach((v, i) => expect(q[i]).toBeCloseTo(v, 12));
    expect(benjaminiHochberg([])).toEqual([]);
  });
});

describe('two-sided Kolmogorov survival function at large n (ks_2samp asymptotic p-value)', () => {
  const cases = JSON.parse(readFileSync(join(driftFixtureDir, 'kstwo_sf.json'), 'utf8')) as Array<{
    n: number;
    x: number;
    sf: number;
  }>;

  it('matches scipy.stats.kstwo.sf within 1e-5 absolute', () => {
    expect(cases.length).toBeGreaterThan(50);
    for (const c of cases) {
      const got = kolmogorovSf(c.n, c.x);
      expect(Math.abs(got - c.sf), `n=${c.n} x=${c.x}`).toBeLessThan(1e-5);
      // upper tail (n·x² ≥ 2.2): exact Smirnov sum, relatively accurate down to tiny p-values
      if (c.n * c.x * c.x >= 2.2 && c.sf > 0)
        expect(Math.abs(got - c.sf) / c.sf, `n=${c.n} x=${c.x}`).toBeLessThan(1e-8);
    }
  });

  it('handles the edges and rounds n·m/(n+m)', () => {
    expect(kolmogorovSf(1000, 0)).toBe(1);
    expect(kolmogorovSf(1000, 1)).toBe(0);
    expect(kolmogorovSf(1000, 0.0004)).toBe(1);
    expect(kolmogorovSf(1000, 0.9995)).toBeCloseTo(2 * Math.pow(1 - 0.9995, 1000), 300);
    expect(ks2sampAsympPValue(0.02, 12000, 9000)).toBe(kolmogorovSf(5143, 0.02));
  });
});
