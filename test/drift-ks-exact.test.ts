// KS D is exact: 0 for identical samples and 1 for disjoint ones, with no floating-point residue (ClickHouse's
// own kolmogorovSmirnovTest returns 2.2e-308 and 1 + 7e-16 there), on both sides of the exact/asymptotic switch
// and with ties. Checked against scipy.stats.ks_2samp on the same rows (test/fixtures/drift/ks-exact, written by
// make_ks_exact.py) through the three ways a D reaches a user: the engine over stored traffic, the stored
// detection results (mw_drift_results), and `modelwatch report` on files (the function and the CLI).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../src/bus/index.js';
import { silentLogger } from '../src/common/logger.js';
import { configSchema } from '../src/config/schema.js';
import { runDetectionOnce, type DriftDetectFn } from '../src/drift/detector.js';
import {
  computeDrift,
  storedFeatureSpecs,
  trafficSample,
  type DriftReport,
  type StoredFeature,
} from '../src/drift/index.js';
import { runFileReport } from '../src/drift/report/run.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import type { ClickHouseStore, PredictionRow } from '../src/store/index.js';
import { runCli } from './support/report-files.js';
import { openTestStore } from './support/store.js';

interface KsCase {
  name: string;
  reference_rows: number;
  current_rows: number;
  statistic: number;
  p_value: number;
  method: 'exact' | 'asymp';
}

const dir = join(import.meta.dirname, 'fixtures', 'drift', 'ks-exact');
const cases = (JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { cases: KsCase[] }).cases;
const file = (c: KsCase, side: 'reference' | 'current'): string => join(dir, `${c.name}_${side}.csv`);
const values = (c: KsCase, side: 'reference' | 'current'): number[] =>
  readFileSync(file(c, side), 'utf8').trim().split('\n').slice(1).map(Number);

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const features: StoredFeature[] = [{ name: 'x', kind: 'numeric' }];

function rows(model: string, xs: number[], start: number): PredictionRow[] {
  return xs.map((x, i) => ({
    model,
    version: 'v1',
    ts: start + Math.floor((i * HOUR) / (xs.length + 1)),
    event_id: `${model}-${start}-${i}`,
    request_id: `${model}-${start}-${i}`,
    row: 0,
    features_num: { x },
    features_cat: {},
    outputs_num: {},
    outputs_cat: {},
  }));
}

/** D exactly as SciPy (which rounds D to the lattice h / lcm(n, m)); p exactly 1 at D = 0, else close. */
function checkKs(ks: { statistic: number; p_value: number } | undefined, c: KsCase, label: string): void {
  expect(ks, label).toBeDefined();
  const { statistic, p_value } = ks!;
  expect(statistic, `${label}: D`).toBe(c.statistic);
  if (c.statistic === 0) expect(p_value, `${label}: p at D = 0`).toBe(1);
  else if (c.p_value === 0) expect(p_value, `${label}: p`).toBe(0);
  else {
    // The oracle's tolerance (1e-3 absolute), and relative below it so tiny p-values are checked too.
    const tol = c.p_value > 1e-3 ? 1e-3 : 1e-3 * c.p_value;
    expect(Math.abs(p_value - c.p_value), `${label}: p ${p_value} vs ${c.p_value}`).toBeLessThanOrEqual(tol);
  }
}

const detectFor =
  (model: string): DriftDetectFn =>
  (s, { from, to }) =>
    computeDrift(s, {
      reference: trafficSample({ model, fromMs: T0, toMs: T0 + HOUR, features, paramPrefix: 'r_' }),
      current: trafficSample({ model, fromMs: from, toMs: to, features, paramPrefix: 'c_' }),
      features: storedFeatureSpecs(features),
    });

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let ctx: RuntimeContext;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  ctx = {
    config: configSchema.parse({}),
    store,
    bus: new InProcessBus(),
    logger: silentLogger,
    metrics: new Registry(),
  };
  for (const c of cases) {
    await store.insertPredictions([
      ...rows(c.name, values(c, 'reference'), T0),
      ...rows(c.name, values(c, 'current'), T0 + HOUR),
    ]);
  }
});

afterAll(async () => {
  await cleanup();
});

describe('KS D is exact', () => {
  it('the fixtures cover identical, disjoint and tied samples, exact and asymptotic', () => {
    const byName = new Map(cases.map((c) => [c.name, c]));
    for (const n of ['identical_ties', 'identical_ecdf', 'constant', 'asymp_identical'])
      expect(byName.get(n)?.statistic).toBe(0);
    for (const n of ['disjoint', 'disjoint_reversed', 'asymp_disjoint']) expect(byName.get(n)?.statistic).toBe(1);
    expect(byName.get('ties_shift')?.statistic).toBeGreaterThan(0);
    expect(new Set(cases.map((c) => c.method))).toEqual(new Set(['exact', 'asymp']));
  });

  it.each(cases.map((c) => [c.name, c] as const))('stored traffic, engine: %s', async (_n, c) => {
    const report = await detectFor(c.name)(store, { model: c.name, from: T0 + HOUR, to: T0 + 2 * HOUR });
    expect(report).not.toBeNull();
    expect(report!.reference.rows).toBe(c.reference_rows);
    expect(report!.current.rows).toBe(c.current_rows);
    const f = report!.features[0]!;
    expect(f.stats.ks?.method).toBe(c.method);
    checkKs(f.stats.ks, c, 'engine');
    // Identical samples are no drift for every method; disjoint ones are drift for every method.
    if (c.statistic === 0) expect(f.drifted).toBe(false);
    if (c.statistic === 1) expect(f.drifted).toBe(true);
  });

  it.each(cases.map((c) => [c.name, c] as const))('stored detection results: %s', async (_n, c) => {
    const run = await runDetectionOnce(ctx, {
      model: c.name,
      now: T0 + 2 * HOUR,
      windowMs: HOUR,
      detectDrift: detectFor(c.name),
    });
    const [row] = await store.query<{
      method: string;
      statistic: number | null;
      p_value: number | null;
      stats: string;
    }>(`SELECT method, statistic, p_value, stats FROM mw_drift_results WHERE run_id = {id:String} AND feature = 'x'`, {
      params: { id: run.run_id },
    });
    expect(row).toBeDefined();
    // The stats JSON holds the KS result whatever method decided; the typed columns hold it when KS decided.
    checkKs((JSON.parse(row!.stats) as DriftReport['features'][number]['stats']).ks, c, 'stored stats');
    if (row!.method === 'ks')
      checkKs({ statistic: Number(row!.statistic), p_value: Number(row!.p_value) }, c, 'stored columns');
    expect(row!.method).toBe(run.drift?.features[0]?.method);
    checkKs(run.drift?.features[0]?.stats.ks, c, 'run result');
  });

  it.each(cases.map((c) => [c.name, c] as const))('modelwatch report on the files: %s', async (_n, c) => {
    const { report } = await runFileReport({ reference: file(c, 'reference'), current: file(c, 'current'), store });
    checkKs(report.features[0]?.stats.ks, c, 'report');
  });

  it('the modelwatch report CLI prints D = 0 and p = 1 for identical samples, D = 1 for disjoint ones', async () => {
    for (const name of ['identical_ties', 'disjoint']) {
      const c = cases.find((k) => k.name === name)!;
      const res = await runCli(
        ['report', '--reference', file(c, 'reference'), '--current', file(c, 'current')],
        170_000,
      );
      expect(res.code, res.stderr).toBe(0);
      const out = JSON.parse(res.stdout) as DriftReport;
      checkKs(out.features[0]?.stats.ks, c, `cli ${name}`);
      // The JSON text itself carries no residue.
      expect(res.stdout).not.toMatch(/e-30\d/);
    }
  }, 360_000);
});
