import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  computeDrift,
  storedFeatureSpecs,
  trafficSample,
  type DriftReport,
  type StoredFeature,
} from '../src/drift/index.js';
import type { ClickHouseStore, PredictionRow } from '../src/store/index.js';
import { loadOracleCases, readOracleSample, type OracleCase, type RawValue } from './support/drift-fixtures.js';
import { openTestStore } from './support/store.js';

// Every oracle case is stored as served traffic of its own model (feature `x`): the reference in the
// first hour, the current sample in the second. The engine reads them back through mw_predictions.
const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const cases = loadOracleCases();

function toRows(model: string, values: RawValue[], kind: OracleCase['kind'], start: number): PredictionRow[] {
  return values.map((v, i) => {
    const row: PredictionRow = {
      model,
      version: 'v1',
      ts: start + Math.floor((i * HOUR) / (values.length + 1)),
      event_id: `${model}-${start}-${i}`,
      request_id: `${model}-${start}-${i}`,
      row: 0,
      features_num: {},
      features_cat: {},
      outputs_num: {},
      outputs_cat: {},
    };
    // An empty field is stored two ways in turn: key absent, and (categorical) empty string.
    if (kind === 'numeric') {
      if (typeof v === 'number') row.features_num.x = v;
    } else if (typeof v === 'string') row.features_cat.x = v;
    else if (i % 2 === 1) row.features_cat.x = '';
    return row;
  });
}

function relClose(got: number | undefined, want: number, label: string, rel = 1e-6): void {
  expect(got, label).toBeTypeOf('number');
  const g = got as number;
  const tol = Math.max(rel * Math.abs(want), 1e-12);
  expect(Math.abs(g - want), `${label}: got ${g}, want ${want}`).toBeLessThanOrEqual(tol);
}

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
const reports = new Map<string, DriftReport>();

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  for (const c of cases) {
    const ref = readOracleSample(c.name, 'reference', c.kind);
    const cur = readOracleSample(c.name, 'current', c.kind);
    const rows = [...toRows(c.name, ref, c.kind, T0), ...toRows(c.name, cur, c.kind, T0 + HOUR)];
    for (let i = 0; i < rows.length; i += 50_000) await store.insertPredictions(rows.slice(i, i + 50_000));
  }
});

afterAll(async () => {
  await cleanup();
});

async function reportFor(c: OracleCase): Promise<DriftReport> {
  const cached = reports.get(c.name);
  if (cached) return cached;
  const features: StoredFeature[] = [{ name: 'x', kind: c.kind }];
  const report = await computeDrift(store, {
    reference: trafficSample({ model: c.name, fromMs: T0, toMs: T0 + HOUR, features, paramPrefix: 'r_' }),
    current: trafficSample({ model: c.name, fromMs: T0 + HOUR, toMs: T0 + 2 * HOUR, features, paramPrefix: 'c_' }),
    features: storedFeatureSpecs(features),
  });
  reports.set(c.name, report);
  return report;
}

describe('drift engine on stored traffic equals NumPy/SciPy', () => {
  it('covers at least 12 oracle cases of every required shape', () => {
    expect(cases.length).toBeGreaterThanOrEqual(12);
    const names = cases.map((c) => c.name);
    for (const n of [
      'normal_shift',
      'no_drift_control',
      'scale_change',
      'cauchy_tails',
      'ties_rounded',
      'constant_same',
      'tiny_5',
      'large_100k',
      'categorical_unseen',
      'missing_numeric',
    ]) {
      expect(names).toContain(n);
    }
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const report = await reportFor(c);
    expect(report.reference.rows).toBe(c.reference_rows);
    expect(report.current.rows).toBe(c.current_rows);
    expect(report.features).toHaveLength(1);
    const f = report.features[0]!;
    expect(f.name).toBe('x');
    expect(f.kind).toBe(c.kind);
    expect(f.quality.missing_reference).toBe(c.quality.missing_reference);
    expect(f.quality.missing_current).toBe(c.quality.missing_current);

    if (c.kind === 'numeric') {
      expect(f.quality.non_finite_current).toBe(c.quality.non_finite_current);
      expect(f.quality.non_finite_reference).toBe(c.quality.non_finite_reference);
      expect(f.quality.out_of_range_current).toBe(c.quality.out_of_range_current);
      expect(f.stats.ks?.method).toBe(c.ks!.method);
      expect(Math.abs(f.stats.ks!.statistic - c.ks!.statistic), 'ks D').toBeLessThanOrEqual(1e-9);
      expect(Math.abs(f.stats.ks!.p_value - c.ks!.p_value), 'ks p').toBeLessThanOrEqual(1e-3);
      relClose(f.stats.wasserstein, c.wasserstein!, 'wasserstein');
      relClose(f.stats.wasserstein_norm, c.wasserstein_norm!, 'wasserstein_norm');
      // Edges: ClickHouse and NumPy interpolate deciles with different float formulas (NumPy's lerp switches
      // form at t = 0.5), so an edge may differ in the last bit; bin counts below must still be identical.
      expect(f.distribution?.edges).toHaveLength(c.edges!.length);
      c.edges!.forEach((e, j) => relClose(f.distribution?.edges?.[j], e, `edge ${j}`, 1e-12));
    } else {
      expect(f.quality.unseen_categories).toEqual(c.quality.unseen_categories);
      expect(f.distribution?.categories).toEqual(c.categories);
    }
    expect(f.distribution?.reference).toEqual(c.reference_bins);
    expect(f.distribution?.current).toEqual(c.current_bins);
    relClose(f.stats.psi, c.psi, 'psi');
    relClose(f.stats.jensen_shannon, c.jensen_shannon, 'jensen_shannon');
    relClose(f.stats.hellinger, c.hellinger, 'hellinger');
    if (c.chi_square) {
      relClose(f.stats.chi_square?.statistic, c.chi_square.statistic, 'chi2 statistic');
      expect(Math.abs(f.stats.chi_square!.p_value - c.chi_square.p_value), 'chi2 p').toBeLessThanOrEqual(1e-3);
    }
    expect(f.method).toBe(c.method);
    expect(f.threshold).toBe(c.threshold);
    expect(f.drifted).toBe(c.drifted);
    expect(report.dataset).toMatchObject({ features: 1, drifted_features: c.drifted ? 1 : 0, drifted: c.drifted });
  });
});
