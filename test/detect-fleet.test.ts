import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../src/bus/index.js';
import type { Logger } from '../src/common/logger.js';
import { configSchema } from '../src/config/schema.js';
import { detectDrift } from '../src/drift/detect-drift.js';
import {
  DetectorState,
  runDetectionCycle,
  runDetectionOnce,
  type DetectionRun,
  type DriftDetectFn,
} from '../src/drift/detector.js';
import { createReference } from '../src/drift/reference.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import type { ClickHouseStore, PredictionRow, RequestRow } from '../src/store/index.js';
import { countingStore, type StatementLog } from './support/counting-store.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';
import { callRows } from './support/call-rows.js';

// A cycle over many models stores, per model, exactly what the per-model path (one runDetectionOnce per model)
// stores for the same data; and its number of store statements does not grow with the number of models.

const MIN = 60_000;
const HOUR = 3_600_000;
const T0 = Date.parse('2026-09-01T00:00:00Z');

const silent: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

let raw: ClickHouseStore;
let cleanup: () => Promise<void>;
let ctx: RuntimeContext;
let log: StatementLog;
const rnd = mulberry32(99);
const g = gaussian(rnd);

/** `n` one-row calls of `model` over [start, start + HOUR); `shift` added to x_0; labels when `labelled`. */
async function traffic(model: string, start: number, n: number, shift: number, labelled: boolean): Promise<void> {
  const preds: PredictionRow[] = [];
  const reqs: RequestRow[] = [];
  const labels: Array<{ request_id: string; row: number; label: string }> = [];
  for (let i = 0; i < n; i++) {
    const ts = start + Math.floor((i * HOUR) / n);
    const id = `${model}-${ts}-${i}`;
    const p = rnd();
    const { prediction, request } = callRows(model, ts, id, {
      features_num: { x_0: shift + g(), x_1: g() * (1 + shift / 4) },
      features_cat: { c: rnd() < 0.5 + shift / 10 ? 'a' : 'b' },
      outputs_num: { prob_0: p },
      status: i % 40 === 0 ? 500 : 200,
      latency_ms: 10 + 30 * rnd(),
    });
    preds.push(prediction);
    reqs.push(request);
    if (labelled && i % 3 !== 0) labels.push({ request_id: id, row: 0, label: rnd() < p ? '1' : '0' });
  }
  await raw.insertPredictions(preds);
  await raw.insertRequests(reqs);
  await raw.insertLabels(labels);
}

// Models: with a reference (some drifted, some labelled), one without a reference (default one incomplete),
// one with no traffic in the window.
const WITH_REF = ['fa', 'fb', 'fc', 'fd', 'fe'];
const NO_REF = 'fn';
const EMPTY = 'fz';
const ALL = [...WITH_REF, NO_REF, EMPTY];

beforeAll(async () => {
  ({ store: raw, cleanup } = await openTestStore());
  const counted = countingStore(raw);
  log = counted.log;
  ctx = {
    // The multivariate stage reads capped samples per model (docs/detect-cycle.md); this file pins the batched
    // univariate cycle, so it is off here and covered by test/mv-detect.test.ts.
    config: configSchema.parse({
      detect: { reference: { rows: 100_000, spanMs: 100 * HOUR } },
      multivariate: { enabled: false },
    }),
    store: counted.store,
    bus: new InProcessBus(),
    logger: silent,
    metrics: new Registry(),
  };
  for (const [i, model] of WITH_REF.entries()) {
    await traffic(model, T0, 300 + 40 * i, 0, i % 2 === 0);
    await traffic(model, T0 + HOUR, 300 + 40 * i, i % 2 === 1 ? 1.5 : 0, i % 2 === 0);
    await createReference(raw, { model, from: T0, to: T0 + HOUR }, { kind: 'default' });
  }
  await traffic(NO_REF, T0 + HOUR, 200, 0, false);
  await traffic(EMPTY, T0 - 5 * HOUR, 50, 0, false);
}, 300_000);

afterAll(async () => {
  await cleanup();
});

const q = <T>(sql: string, params: Record<string, unknown>): Promise<T[]> => raw.query<T>(sql, { params });

interface Stored {
  run: unknown[];
  drift: unknown[];
  performance: unknown[];
  series: unknown[];
}

/** What a run stored, without its run id and run time. */
async function stored(run: DetectionRun): Promise<Stored> {
  const p = { run: run.run_id };
  return {
    run: await q(
      `SELECT model, window_from, window_to, interval_ms, reference_id, status, error, rows FROM mw_detect_runs WHERE run_id = {run:String}`,
      p,
    ),
    drift: await q(
      `SELECT model, window_from, window_to, reference_id, segment, feature, kind, output, method, parameters, n_ref, n_cur,
         statistic, p_value, score, threshold, drifted, stats, quality
       FROM mw_drift_results WHERE run_id = {run:String} ORDER BY segment, feature, kind`,
      p,
    ),
    performance: await q(
      `SELECT model, task, source, metric, value, rows, labelled_rows, details FROM mw_performance_results
       WHERE run_id = {run:String} ORDER BY source, metric`,
      p,
    ),
    series: await q(
      `SELECT model, series, feature, value, window_from, window_to, interval_ms FROM mw_metric_series
       WHERE run_id = {run:String} ORDER BY series, feature`,
      p,
    ),
  };
}

describe('a detection cycle over a fleet', () => {
  let cycleRuns: DetectionRun[] = [];

  it('stores per model what the per-model path stores for the same data', async () => {
    const now = T0 + 2 * HOUR + 5_000;
    const cycle = await runDetectionCycle(ctx, { models: ALL, now, intervalMs: MIN, state: new DetectorState() });
    expect(cycle.cancelled).toBeNull();
    cycleRuns = cycle.runs;
    expect(cycleRuns.map((r) => r.model)).toEqual(ALL);
    const status = Object.fromEntries(cycleRuns.map((r) => [r.model, r.status]));
    expect(status).toEqual({ fa: 'ok', fb: 'ok', fc: 'ok', fd: 'ok', fe: 'ok', fn: 'no_reference', fz: 'no_data' });
    // The planted drift is found where it was planted, and only there.
    const drifted = cycleRuns
      .filter((r) => r.drift?.features.find((f) => f.name === 'x_0')?.drifted)
      .map((r) => r.model);
    expect(drifted).toEqual(['fb', 'fd']);

    // The per-model path on the same data: one run per model with the per-model drift engine, its own state.
    const perModel: DriftDetectFn = (store, { model, from, to, segmentBy }) =>
      detectDrift(store, { model, from, to, config: ctx.config, now: to, segmentBy });
    for (const run of cycleRuns) {
      const single = await runDetectionOnce(ctx, {
        model: run.model,
        now,
        intervalMs: MIN,
        state: new DetectorState(),
        detectDrift: perModel,
      });
      const [a, b] = [await stored(run), await stored(single)];
      expect(a.run).toHaveLength(1);
      expect(a).toEqual(b);
      if (run.model === EMPTY) {
        expect(a.drift).toEqual([]);
        expect(a.performance).toEqual([]);
      } else {
        expect(a.series.length).toBeGreaterThan(5);
        expect(a.performance.length).toBeGreaterThan(0);
      }
      if (WITH_REF.includes(run.model)) expect(a.drift.length).toBe(5); // x_0, x_1, c, prob_0 + dataset
    }
  });

  it('counts each model from its own rows (not another model of the cycle)', async () => {
    for (const run of cycleRuns) {
      const [c] = await q<{ n: string; req: string; err: string }>(
        `SELECT (SELECT count() FROM mw_predictions WHERE model = {m:String} AND ts >= {f:DateTime64(3, 'UTC')} AND ts < {t:DateTime64(3, 'UTC')}) AS n,
                (SELECT count() FROM mw_requests WHERE model = {m:String} AND ts >= {i:DateTime64(3, 'UTC')} AND ts < {t:DateTime64(3, 'UTC')}) AS req,
                (SELECT countIf(status >= 400) FROM mw_requests WHERE model = {m:String} AND ts >= {i:DateTime64(3, 'UTC')} AND ts < {t:DateTime64(3, 'UTC')}) AS err`,
        {
          m: run.model,
          f: run.window.from.replace('T', ' ').replace('Z', ''),
          t: run.window.to.replace('T', ' ').replace('Z', ''),
          i: new Date(Date.parse(run.window.to) - MIN).toISOString().replace('T', ' ').replace('Z', ''),
        },
      );
      expect(run.rows).toBe(Number(c?.n));
      expect(run.traffic?.requests).toBe(Number(c?.req));
      expect(run.traffic?.errors).toBe(Number(c?.err));
      const labelled = run.performance?.labelled_rows ?? 0;
      const [l] = await q<{ n: string }>(
        `SELECT count() AS n FROM mw_labels WHERE request_id IN (
           SELECT request_id FROM mw_predictions WHERE model = {m:String}
             AND ts >= {f:DateTime64(3, 'UTC')} AND ts < {t:DateTime64(3, 'UTC')})`,
        {
          m: run.model,
          f: run.window.from.replace('T', ' ').replace('Z', ''),
          t: run.window.to.replace('T', ' ').replace('Z', ''),
        },
      );
      expect(labelled).toBe(Number(l?.n));
    }
  });

  it('sends as many statements for many models as for few', async () => {
    const statements = async (models: string[], k: number): Promise<string[]> => {
      log.reset();
      const r = await runDetectionCycle(ctx, {
        models,
        now: T0 + 2 * HOUR + k * MIN,
        intervalMs: MIN,
        state: new DetectorState(),
      });
      expect(r.runs.every((x) => x.status !== 'failed')).toBe(true);
      return log.entries.map((e) => `${e.kind} ${e.label}`).sort();
    };
    // Models with a stored reference (drift batched) and without traffic; a model whose default reference is
    // still being collected is checked on its own until it is frozen.
    const few = await statements(['fa', 'fb'], 1);
    const many = await statements([...WITH_REF, EMPTY], 2);
    expect(many).toEqual(few);
    expect(few.filter((s) => s.startsWith('insert ')).length).toBeGreaterThanOrEqual(4);
  });
});
