import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../src/bus/index.js';
import type { Logger } from '../src/common/logger.js';
import { configSchema } from '../src/config/schema.js';
import { detectDrift } from '../src/drift/detect-drift.js';
import { DetectorState, runDetectionCycle, type DetectionRun } from '../src/drift/detector.js';
import { ksExactPValueReference } from './support/ks-exact-reference.js';
import { batchedDrift } from '../src/drift/fleet/batch-drift.js';
import { FleetComparePool } from '../src/drift/fleet/compare-pool.js';
import { DriftColumns, encodeRows } from '../src/drift/fleet/cycle.js';
import { perModelDrift } from '../src/drift/fleet/drift.js';
import { ksExactPValue } from '../src/drift/exact/ks-exact.js';
import { createReference } from '../src/drift/reference.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import type { ClickHouseStore, PredictionRow } from '../src/store/index.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';

// The fleet's comparisons: the interleaved exact KS p-value gives SciPy's value and the very same double as the
// exact engine's row-by-row loop; comparisons run in worker threads (tasks of a few models, slices read while
// the previous one is compared) store exactly what the inline comparisons store.

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures/fleet/ks_exact.json'), 'utf8')) as {
  cases: Array<{ n1: number; n2: number; hnm: number; p: number | null }>;
};

describe('the exact KS p-value, two rows at a time', () => {
  it('matches SciPy (test/fixtures/fleet/ks_exact.py)', () => {
    expect(fixture.cases.length).toBeGreaterThan(50);
    for (const c of fixture.cases) {
      const p = ksExactPValue(c.n1, c.n2, c.hnm);
      if (c.p === null) expect(p).toBeNull();
      else {
        expect(p).not.toBeNull();
        expect(Math.abs(p! - c.p)).toBeLessThanOrEqual(1e-12 * Math.max(1e-300, Math.abs(c.p)) + 1e-300);
      }
    }
  });

  it('is the same double as the row-by-row computation for every size and distance', () => {
    const rnd = mulberry32(5);
    let checked = 0;
    for (let k = 0; k < 2500; k++) {
      const big = k % 5 === 0;
      const n1 = 1 + Math.floor(rnd() * (big ? 1200 : 70));
      const n2 = 1 + Math.floor(rnd() * (big ? 1200 : 70));
      // Small and large distances (narrow and wide bands, early exits).
      const hnm = Math.floor(rnd() * rnd() * n1 * n2);
      expect(Object.is(ksExactPValue(n1, n2, hnm), ksExactPValueReference(n1, n2, hnm))).toBe(true);
      checked++;
    }
    for (const [n1, n2] of [
      [1, 2],
      [2, 1],
      [3, 3],
      [1000, 999],
      [7, 1000],
    ] as const) {
      for (let hnm = 0; hnm <= n1 * n2; hnm += Math.max(1, Math.floor((n1 * n2) / 97))) {
        expect(Object.is(ksExactPValue(n1, n2, hnm), ksExactPValueReference(n1, n2, hnm))).toBe(true);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(2700);
  });
});

const MIN = 60_000;
const HOUR = 3_600_000;
const T0 = Date.parse('2026-09-01T00:00:00Z');
const silent: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const MODELS = ['wa', 'wb', 'wc', 'wd', 'we', 'wf', 'wg'];

let raw: ClickHouseStore;
let cleanup: () => Promise<void>;
let ctx: RuntimeContext;

async function traffic(model: string, start: number, n: number, shift: number, seed: number): Promise<void> {
  const rnd = mulberry32(seed);
  const g = gaussian(rnd);
  const rows: PredictionRow[] = [];
  for (let i = 0; i < n; i++) {
    const ts = start + Math.floor((i * HOUR) / n);
    const id = `${model}-${ts}-${i}`;
    rows.push({
      model,
      version: '1',
      ts,
      event_id: id,
      request_id: id,
      row: 0,
      // x_2 has ties (low resolution), x_3 is missing on some rows.
      features_num: {
        x_0: shift + g(),
        x_1: g() * (1 + shift / 3),
        x_2: Math.round(g() * 4) / 4,
        ...(i % 7 === 0 ? {} : { x_3: g() }),
      },
      features_cat: { c: rnd() < 0.5 + shift / 10 ? 'a' : 'b' },
      outputs_num: { prob_0: rnd() },
      outputs_cat: {},
    });
  }
  await raw.insertPredictions(rows);
}

beforeAll(async () => {
  ({ store: raw, cleanup } = await openTestStore());
  ctx = {
    config: configSchema.parse({
      detect: { reference: { rows: 100_000, spanMs: 100 * HOUR } },
      multivariate: { enabled: false },
    }),
    store: raw,
    bus: new InProcessBus(),
    logger: silent,
    metrics: new Registry(),
  };
  for (const [i, model] of MODELS.entries()) {
    // Unequal sizes: reference and window differ, and differ between models.
    await traffic(model, T0, 400 + 37 * i, 0, 10 + i);
    await traffic(model, T0 + HOUR, 350 + 53 * i, i % 3 === 1 ? 0.8 : 0, 100 + i);
    await createReference(raw, { model, from: T0, to: T0 + HOUR }, { kind: 'default' });
  }
}, 300_000);

afterAll(async () => {
  await cleanup();
});

/** The drift results a run stored, without its run id and run time. */
async function driftRows(run: DetectionRun): Promise<unknown[]> {
  return raw.query(
    `SELECT model, window_from, window_to, reference_id, segment, feature, kind, output, method, parameters, n_ref,
       n_cur, statistic, p_value, score, threshold, drifted, stats, quality
     FROM mw_drift_results WHERE run_id = {run:String} ORDER BY segment, feature, kind`,
    { params: { run: run.run_id } },
  );
}

describe('fleet comparisons in worker threads', () => {
  it('store exactly what the inline comparisons store, over several slices', async () => {
    const fallback = perModelDrift((store, { model, from, to, segmentBy }) =>
      detectDrift(store, { model, from, to, config: ctx.config, now: to, segmentBy }),
    );
    const now = T0 + 2 * HOUR + 5_000;
    const inline = await runDetectionCycle(ctx, {
      models: MODELS,
      now,
      intervalMs: MIN,
      state: new DetectorState(),
      driftStep: batchedDrift({ config: ctx.config, fallback, workers: 'inline' }),
    });
    const pool = new FleetComparePool(2);
    try {
      const pooled = await runDetectionCycle(ctx, {
        models: MODELS,
        now,
        intervalMs: MIN,
        state: new DetectorState(),
        // Every slice to the workers, two models per task, about three models per slice.
        driftStep: batchedDrift({
          config: ctx.config,
          fallback,
          workers: pool,
          inlineMaxValues: 0,
          modelsPerTask: 2,
          maxValuesInMemory: 2 * 3 * 1_000 * 5,
        }),
      });
      expect(inline.runs.map((r) => r.status)).toEqual(MODELS.map(() => 'ok'));
      expect(pooled.runs.map((r) => r.status)).toEqual(MODELS.map(() => 'ok'));
      const drifted = pooled.runs
        .filter((r) => r.drift?.features.find((f) => f.name === 'x_0')?.drifted)
        .map((r) => r.model);
      expect(drifted).toEqual(['wb', 'we']);
      for (const [i, run] of pooled.runs.entries()) {
        const a = await driftRows(run);
        expect(a).toHaveLength(7); // x_0..x_3, c, prob_0 + dataset
        expect(a).toEqual(await driftRows(inline.runs[i]!));
        expect(run.drift).toEqual(inline.runs[i]!.drift);
      }
    } finally {
      await pool.close();
    }
  });

  it('fails only the models of a task whose worker failed', async () => {
    // A pool whose workers are gone mid-task: every task in flight fails, the cycle still finishes.
    const broken = new (class extends FleetComparePool {
      override run(): Promise<never> {
        return Promise.reject(new Error('worker exited'));
      }
    })(1);
    const fallback = perModelDrift(() => Promise.resolve(null));
    try {
      const r = await runDetectionCycle(ctx, {
        models: MODELS.slice(0, 2),
        now: T0 + 2 * HOUR + 3 * MIN,
        intervalMs: MIN,
        state: new DetectorState(),
        driftStep: batchedDrift({ config: ctx.config, fallback, workers: broken, inlineMaxValues: 0 }),
      });
      expect(r.runs.map((x) => [x.status, x.error])).toEqual([
        ['failed', 'worker exited'],
        ['failed', 'worker exited'],
      ]);
    } finally {
      await broken.close();
    }
  });
});

describe('the cycle result inserts (JSONCompactEachRow)', () => {
  it('store the same values as the row objects inserted as JSONEachRow', async () => {
    const base = {
      model: 'enc',
      ts: '2026-09-01 02:00:00.000',
      window_from: '2026-09-01 01:00:00.000',
      window_to: '2026-09-01 02:00:00.000',
      reference_id: 'ref-"1"',
      segment: 'feature:c=ünï \\ "q"',
      kind: 'numeric',
      output: false,
      method: 'ks',
      parameters: JSON.stringify({ threshold: 0.05, fdr: false }),
      n_ref: 1000,
      n_cur: 983,
      threshold: 0.05,
      stats: JSON.stringify({ ks: { statistic: 0.1, p_value: 1e-300 }, note: 'line\nbreak' }),
      quality: '{}',
    };
    const rows = (run: string): object[] => [
      { ...base, run_id: run, feature: 'a', statistic: 0.125, p_value: 5e-324, score: 0.3, drifted: true },
      { ...base, run_id: run, feature: 'b', statistic: null, p_value: null, score: Number.NaN, drifted: false },
      {
        ...base,
        run_id: run,
        feature: '',
        kind: 'dataset',
        statistic: 2,
        p_value: Infinity,
        score: -0,
        drifted: false,
      },
    ];
    await raw.insert('mw_drift_results', rows('plain'));
    await raw.insertEncoded('mw_drift_results', encodeRows(rows('compact'), DriftColumns), {
      format: 'JSONCompactEachRow',
      columns: DriftColumns,
    });
    const read = (run: string): Promise<unknown[]> =>
      raw.query(`SELECT * EXCEPT (run_id) FROM mw_drift_results WHERE run_id = {run:String} ORDER BY feature, kind`, {
        params: { run },
      });
    const plain = await read('plain');
    expect(plain).toHaveLength(3);
    expect(await read('compact')).toEqual(plain);
  });
});
