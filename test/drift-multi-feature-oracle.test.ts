// The drift oracle with many features at once: one file pair (test/fixtures/drift/multi_feature_*.csv) of
// 9 numeric and 3 categorical columns, more numeric features than the engine compares per query, so the
// grouping of features into passes is checked against NumPy/SciPy (expected_multi.json, written by
// make_fixtures.py) rather than against itself. Two ways in: `modelwatch report` on the files (the CLI,
// a child process), and the engine over the same rows stored as served traffic, at the default group size
// and at a smaller one. Tolerances as the single-feature oracle: KS D 1e-9, p-values 1e-3 absolute, other
// statistics 1e-6 relative; bin counts, quality counts, method, threshold and verdict exactly.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  computeDrift,
  storedFeatureSpecs,
  trafficSample,
  type DriftReport,
  type StoredFeature,
} from '../src/drift/index.js';
import type { ClickHouseStore, PredictionRow } from '../src/store/index.js';
import { driftFixtureDir, expectAbs, expectRel, runCli } from './support/report-files.js';
import { fixtureTrafficRows } from './support/drift-fixtures.js';
import { openTestStore } from './support/store.js';

interface ExpectedFeature {
  name: string;
  kind: 'numeric' | 'categorical';
  reference_rows: number;
  current_rows: number;
  quality: Record<string, number | string[]>;
  ks?: { statistic: number; p_value: number; method: 'exact' | 'asymp' };
  wasserstein?: number;
  wasserstein_norm?: number;
  edges?: number[];
  categories?: string[];
  reference_bins: number[];
  current_bins: number[];
  psi: number;
  jensen_shannon: number;
  hellinger: number;
  chi_square?: { statistic: number; p_value: number };
  method: string;
  threshold: number;
  score: number;
  drifted: boolean;
}

interface ExpectedCase {
  name: string;
  reference_rows: number;
  current_rows: number;
  columns: string[];
  features: ExpectedFeature[];
  dataset: { features: number; drifted_features: number; share: number };
}

const expected = (
  JSON.parse(readFileSync(join(driftFixtureDir, 'expected_multi.json'), 'utf8')) as { cases: ExpectedCase[] }
).cases[0]!;
const file = (side: 'reference' | 'current'): string => join(driftFixtureDir, `${expected.name}_${side}.csv`);

/** Report shape shared by the CLI JSON and the engine's report. */
type Report = Pick<DriftReport, 'reference' | 'current' | 'dataset'> & { features: DriftReport['features'] };

function checkFeature(
  f: DriftReport['features'][number] | undefined,
  c: ExpectedFeature,
  withDistributions: boolean,
): void {
  const at = (what: string): string => `${c.name}: ${what}`;
  expect(f, at('present')).toBeDefined();
  if (f === undefined) return;
  expect(f.kind, at('kind')).toBe(c.kind);
  expect(f.method, at('method')).toBe(c.method);
  expect(f.threshold, at('threshold')).toBe(c.threshold);
  expect(f.drifted, at('drifted')).toBe(c.drifted);
  if (c.method === 'ks' || c.method === 'chi_square') expectAbs(f.score, c.score, 1e-3, at('score (p-value)'));
  else expectRel(f.score, c.score, 1e-6, at('score'));
  if (c.ks !== undefined) {
    expect(f.stats.ks?.method, at('ks method')).toBe(c.ks.method);
    expectAbs(f.stats.ks?.statistic, c.ks.statistic, 1e-9, at('ks.statistic'));
    expectAbs(f.stats.ks?.p_value, c.ks.p_value, 1e-3, at('ks.p_value'));
  }
  if (c.chi_square !== undefined) {
    expectRel(f.stats.chi_square?.statistic, c.chi_square.statistic, 1e-6, at('chi_square.statistic'));
    expectAbs(f.stats.chi_square?.p_value, c.chi_square.p_value, 1e-3, at('chi_square.p_value'));
  }
  if (c.wasserstein !== undefined) expectRel(f.stats.wasserstein, c.wasserstein, 1e-6, at('wasserstein'));
  if (c.wasserstein_norm !== undefined)
    expectRel(f.stats.wasserstein_norm, c.wasserstein_norm, 1e-6, at('wasserstein_norm'));
  expectRel(f.stats.psi, c.psi, 1e-6, at('psi'));
  expectRel(f.stats.jensen_shannon, c.jensen_shannon, 1e-6, at('jensen_shannon'));
  expectRel(f.stats.hellinger, c.hellinger, 1e-6, at('hellinger'));
  const q = f.quality as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(c.quality)) expect(q[k], at(`quality.${k}`)).toEqual(v);
  if (withDistributions) {
    expect(f.distribution?.reference, at('reference bins')).toEqual(c.reference_bins);
    expect(f.distribution?.current, at('current bins')).toEqual(c.current_bins);
    if (c.categories !== undefined) expect(f.distribution?.categories, at('categories')).toEqual(c.categories);
    if (c.edges !== undefined) {
      expect(f.distribution?.edges, at('edges')).toHaveLength(c.edges.length);
      c.edges.forEach((e, j) => expectRel(f.distribution?.edges?.[j], e, 1e-12, at(`edge ${j}`)));
    }
  }
}

function checkReport(report: Report, withDistributions: boolean): void {
  expect(report.reference.rows).toBe(expected.reference_rows);
  expect(report.current.rows).toBe(expected.current_rows);
  expect(report.features.map((f) => f.name).sort()).toEqual([...expected.columns].sort());
  for (const c of expected.features) {
    checkFeature(
      report.features.find((f) => f.name === c.name),
      c,
      withDistributions,
    );
  }
  expect(report.dataset).toMatchObject({
    features: expected.dataset.features,
    drifted_features: expected.dataset.drifted_features,
  });
  expect(report.dataset.share).toBeCloseTo(expected.dataset.share, 12);
}

describe('multi-feature oracle', () => {
  it('the fixture has more numeric features than one comparison pass holds, and categorical ones', () => {
    const numeric = expected.features.filter((f) => f.kind === 'numeric').length;
    expect(numeric).toBeGreaterThan(4 * 2); // three passes at the default numericFeaturesPerPass (4)
    expect(expected.features.filter((f) => f.kind === 'categorical').length).toBeGreaterThanOrEqual(3);
    // Both verdicts occur, so a feature's result landing on another feature would show.
    expect(expected.dataset.drifted_features).toBeGreaterThan(0);
    expect(expected.dataset.drifted_features).toBeLessThan(expected.dataset.features);
  });

  it('modelwatch report on the file pair equals NumPy/SciPy per feature', async () => {
    const res = await runCli(['report', '--reference', file('reference'), '--current', file('current')], 170_000);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0); // exit 0: the dataset drifted
    checkReport(JSON.parse(res.stdout) as Report, false);
  }, 180_000);
});

// ---------------------------------------------------------------- the same rows as served traffic

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const MODEL = 'multi_feature';

/** Rows of a fixture CSV (no quoting: values hold no commas): empty = missing, nan/inf/-inf as named. */
function readRows(side: 'reference' | 'current'): PredictionRow[] {
  const kinds = new Map(expected.features.map((f) => [f.name, f.kind]));
  const start = side === 'reference' ? T0 : T0 + HOUR;
  return fixtureTrafficRows(file(side), kinds, { model: MODEL, start, idPrefix: side });
}

let store: ClickHouseStore;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  await store.insertPredictions([...readRows('reference'), ...readRows('current')]);
});

afterAll(async () => {
  await cleanup();
});

describe('multi-feature oracle on stored traffic', () => {
  const features: StoredFeature[] = expected.features.map((f) => ({ name: f.name, kind: f.kind }));

  async function report(numericFeaturesPerPass: number): Promise<DriftReport> {
    return computeDrift(store, {
      reference: trafficSample({ model: MODEL, fromMs: T0, toMs: T0 + HOUR, features, paramPrefix: 'r_' }),
      current: trafficSample({ model: MODEL, fromMs: T0 + HOUR, toMs: T0 + 2 * HOUR, features, paramPrefix: 'c_' }),
      features: storedFeatureSpecs(features),
      numericFeaturesPerPass,
    });
  }

  it.each([4, 2])('numericFeaturesPerPass %i: every feature equals NumPy/SciPy, bins included', async (perPass) => {
    checkReport(await report(perPass), true);
  });
});
