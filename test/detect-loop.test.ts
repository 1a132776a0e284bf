import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../src/bus/index.js';
import { isModelwatchError } from '../src/common/errors.js';
import type { Logger } from '../src/common/logger.js';
import { configSchema } from '../src/config/schema.js';
import { DetectorState, runDetectionOnce, startDetector, type DriftDetectFn } from '../src/drift/detector.js';
import { computeDrift } from '../src/drift/stats/engine.js';
import { storedFeatureSpecs, trafficSample, type StoredFeature } from '../src/drift/stats/sample.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import type { ClickHouseStore, PredictionRow, RequestRow } from '../src/store/index.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';
import { selectRows } from './support/store.js';
import { callRows } from './support/call-rows.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const T0 = Date.parse('2026-11-03T00:00:00Z');

interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown> | undefined;
}

function recordingLogger(lines: LogLine[]): Logger {
  const at =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      lines.push({ level, msg, fields });
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('detect loop', () => {
  let store: ClickHouseStore;
  let cleanup: () => Promise<void>;
  const logs: LogLine[] = [];
  let ctx: RuntimeContext;
  const rnd = mulberry32(42);
  const g = gaussian(rnd);

  /** Inserts `n` calls of one row each for `model` in [start, start + spanMs). */
  async function traffic(
    model: string,
    start: number,
    spanMs: number,
    n: number,
    shift: number,
    latency: number,
  ): Promise<void> {
    const preds: PredictionRow[] = [];
    const reqs: RequestRow[] = [];
    const labels: Array<{ request_id: string; row: number; label: string }> = [];
    for (let i = 0; i < n; i++) {
      const ts = start + Math.floor((i * spanMs) / n);
      const id = `${model}-${ts}-${i}`;
      const p = rnd();
      const { prediction, request } = callRows(model, ts, id, {
        features_num: { x_0: shift + g(), x_1: g() },
        outputs_num: { prob_0: p },
        status: i % 50 === 0 ? 500 : 200,
        latency_ms: latency * (1 + 0.05 * g()),
      });
      preds.push(prediction);
      reqs.push(request);
      if (i % 2 === 0) labels.push({ request_id: id, row: 0, label: rnd() < p ? '1' : '0' });
    }
    await store.insertPredictions(preds);
    await store.insertRequests(reqs);
    await store.insertLabels(labels);
  }

  const features: StoredFeature[] = [
    { name: 'x_0', kind: 'numeric' },
    { name: 'x_1', kind: 'numeric' },
  ];
  // The statistics engine for real, with the model's first hour as the reference.
  const drift: DriftDetectFn = (s, { model, from, to }) =>
    computeDrift(s, {
      reference: trafficSample({ model, fromMs: T0, toMs: T0 + HOUR, features, paramPrefix: 'r_' }),
      current: trafficSample({ model, fromMs: from, toMs: to, features, paramPrefix: 'c_' }),
      features: storedFeatureSpecs(features),
    });

  beforeAll(async () => {
    ({ store, cleanup } = await openTestStore());
    ctx = {
      config: configSchema.parse({ models: { m1: { task: 'binary', prediction: { tensor: 'prob' } } } }),
      store,
      bus: new InProcessBus(),
      logger: recordingLogger(logs),
      metrics: new Registry(),
    };
    await traffic('m1', T0, HOUR, 600, 0, 20); // reference hour
    await traffic('m1', T0 + HOUR, HOUR, 600, 1.5, 20); // drifted hour
  });

  afterAll(async () => {
    await cleanup();
  });

  it('stores drift, performance and series with their full context', async () => {
    const run = await runDetectionOnce(ctx, { model: 'm1', now: T0 + 2 * HOUR, detectDrift: drift });
    expect(run.drift_error).toBeNull();
    expect(run.drift?.dataset.drifted_features).toBe(1);
    expect(run.status).toBe('ok');
    if (run.performance === null) throw new Error('the run computed no performance');
    expect(run.performance.rows).toBe(600);
    expect(run.performance.labelled_rows).toBe(300);
    expect(run.traffic?.requests).toBe(10); // last interval (1 minute) of 600 calls spread over an hour
    const point = (series: string, feature = ''): number | undefined =>
      run.series.find((p) => p.series === series && p.feature === feature)?.value;
    expect(point('feature_mean', 'x_0')).toBeGreaterThan(0.5);

    const q = async <T>(sql: string): Promise<T[]> =>
      selectRows(store, { query: sql, query_params: { run: run.run_id }, format: 'JSONEachRow' }).json<T>();
    const driftRows = await q<{
      feature: string;
      kind: string;
      method: string;
      n_ref: string | number;
      n_cur: string | number;
      statistic: number | null;
      p_value: number | null;
      drifted: boolean;
      parameters: string;
      window_from: string;
      window_to: string;
    }>(`SELECT * FROM mw_drift_results WHERE run_id = {run:String} ORDER BY feature`);
    expect(driftRows.map((r) => r.feature)).toEqual(['', 'x_0', 'x_1']);
    const x0 = driftRows[1];
    expect(x0).toMatchObject({ kind: 'numeric', method: 'ks', drifted: true });
    expect(Number(x0?.n_ref)).toBe(600);
    expect(Number(x0?.n_cur)).toBe(600);
    expect(x0?.window_from).toBe('2026-11-03 01:00:00.000');
    expect(x0?.window_to).toBe('2026-11-03 02:00:00.000');
    expect(x0?.p_value).toBeLessThan(1e-6);
    expect(x0?.statistic).toBeGreaterThan(0.3);
    expect(JSON.parse(x0?.parameters ?? '{}')).toMatchObject({ threshold: 0.05, fdr: false });
    expect(driftRows[0]).toMatchObject({ kind: 'dataset', method: 'share', drifted: true });

    const perf = await q<{ source: string; metric: string; value: number | null; labelled_rows: string }>(
      `SELECT source, metric, value, labelled_rows FROM mw_performance_results WHERE run_id = {run:String}`,
    );
    const get = (source: string, metric: string): number | null | undefined =>
      perf.find((r) => r.source === source && r.metric === metric)?.value;
    expect(get('labels', 'label_coverage')).toBe(0.5);
    const measured = run.performance.measured;
    expect(get('measured', 'accuracy')).toBe(measured && 'accuracy' in measured ? measured.accuracy : NaN);
    expect(get('estimated', 'accuracy')).toBeCloseTo(run.performance.estimated?.accuracy ?? NaN, 12);
    expect(perf.some((r) => r.metric === 'confusion_matrix')).toBe(true);

    const series = await q<{ series: string; feature: string; value: number }>(
      `SELECT series, feature, value FROM mw_metric_series WHERE run_id = {run:String} ORDER BY series, feature`,
    );
    const key = (p: { series: string; feature: string }): string => `${p.series}/${p.feature}`;
    expect(new Map(series.map((s) => [key(s), s.value]))).toEqual(new Map(run.series.map((p) => [key(p), p.value])));
    expect(point('traffic.error_rate')).toBeDefined();
    expect(point('drift.score', 'x_0')).toBeDefined();
  });

  it('uses the drift engine with the stored reference by default', async () => {
    const run = await runDetectionOnce(ctx, { model: 'm1', now: T0 + 2 * HOUR });
    expect(run.drift_error).toBeNull();
    expect(run.drift?.dataset.drifted).toBe(true);
    const id = run.drift?.reference.id;
    expect(typeof id === 'string' && id.length > 0).toBe(true);
    const rows = await selectRows(store, {
      query: `SELECT DISTINCT reference_id FROM mw_drift_results WHERE run_id = {run:String}`,
      query_params: { run: run.run_id },
      format: 'JSONEachRow',
    }).json<{ reference_id: string }>();
    expect(rows).toEqual([{ reference_id: id }]);
  });

  it('raises and stores a change point when latency jumps', async () => {
    const model = 'm-latency';
    const ticks = 22;
    const jumpAt = 16;
    const start = T0 + 10 * HOUR;
    await traffic(model, start, jumpAt * MIN, 20 * jumpAt, 0, 20);
    await traffic(model, start + jumpAt * MIN, (ticks - jumpAt) * MIN, 20 * (ticks - jumpAt), 0, 60);
    const state = new DetectorState({
      warmup: 10,
      page_hinkley: { min_instances: 5, delta: 0.5, threshold: 25 },
      adwin: { clock: 1, grace_period: 10 },
      cusum: { min_instances: 10, slack: 0.5, threshold: 12 },
    });
    const found: Array<{ tick: number; series: string; detector: string }> = [];
    for (let t = 1; t <= ticks; t++) {
      const run = await runDetectionOnce(ctx, {
        model,
        now: start + t * MIN,
        state,
        windowMs: HOUR,
        intervalMs: MIN,
        detectDrift: null,
      });
      for (const c of run.change_points) found.push({ tick: t, series: c.series, detector: c.detector });
    }
    const latency = found.filter((f) => f.series === 'traffic.latency_p95_ms');
    expect(latency.length).toBeGreaterThan(0);
    // The jump lands in tick jumpAt + 1 (the interval [jumpAt, jumpAt + 1) minutes); found within 3 ticks.
    const first = Math.min(...latency.map((f) => f.tick));
    expect(first).toBeGreaterThanOrEqual(jumpAt + 1);
    expect(first).toBeLessThanOrEqual(jumpAt + 3);
    const rows = await selectRows(store, {
      query: `SELECT series, detector, params, value FROM mw_change_points WHERE model = {m:String} AND series = 'traffic.latency_p95_ms'`,
      query_params: { m: model },
      format: 'JSONEachRow',
    }).json<{ series: string; detector: string; params: string; value: number }>();
    expect(rows.length).toBe(latency.length);
    expect(rows[0]?.value).toBeGreaterThan(40);
    const params = JSON.parse(rows[0]?.params ?? '{}') as Record<string, unknown>;
    expect(Object.keys(params).length).toBeGreaterThan(2);
  });

  it('a failing drift engine is recorded, performance is still stored', async () => {
    const run = await runDetectionOnce(ctx, {
      model: 'm1',
      now: T0 + 2 * HOUR,
      detectDrift: () => Promise.reject(new Error('no reference yet')),
    });
    expect(run.drift).toBeNull();
    expect(run.drift_error).toBe('no reference yet');
    expect(run.status).toBe('failed');
    expect(run.error).toBe('no reference yet');
    expect(run.performance?.rows).toBe(600);
    expect(logs.some((l) => l.level === 'warn' && l.msg === 'drift detection failed')).toBe(true);
  });

  it('startDetector: runs at once, never overlaps, times out, stops after the in-flight run', async () => {
    let active = 0;
    let maxActive = 0;
    let calls = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const slowDrift: DriftDetectFn = async (s, o) => {
      calls++;
      active++;
      maxActive = Math.max(maxActive, active);
      await gate;
      active--;
      return drift(s, o);
    };
    const registry = new Registry();
    const det = await startDetector(
      { ...ctx, metrics: registry },
      // An interval no earlier test has run (the loop rebuilds its state from the stored series and skips those).
      {
        intervalMs: 10,
        timeoutMs: 1000,
        detectDrift: slowDrift,
        clock: () => T0 + 2 * HOUR + 30 * MIN,
        models: ['m1', 'zz-after-deadline'],
      },
    );
    // The first run started at once and is stuck in the gate; later ticks are skipped, not overlapped.
    const timedOut = await det.runNow();
    expect(timedOut).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
    expect(maxActive).toBe(1);
    const metrics = await registry.getMetricsAsJSON();
    const skipped = metrics.find((m) => m.name === 'modelwatch_detect_runs_skipped_total');
    expect(skipped?.values[0]?.value).toBeGreaterThan(0);
    const runs = metrics.find((m) => m.name === 'modelwatch_detect_runs_total');
    expect(runs?.values.some((v) => v.labels.status === 'timed_out' && v.labels.model === 'm1')).toBe(true);
    expect(logs.some((l) => l.msg === 'detection run timed out')).toBe(true);

    // stop() waits for the in-flight run to finish.
    let stopped = false;
    const stopping = det.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(stopped).toBe(true);
    // 'm1' was stuck past the deadline, so the next model of that run was never started.
    expect(calls).toBe(1);
    const callsAtStop = calls;
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toBe(callsAtStop);
    // The stuck run was given up at its deadline: recorded timed_out, and its late work wrote nothing.
    const after = await registry.getMetricsAsJSON();
    expect(after.find((m) => m.name === 'modelwatch_detect_runs_total')?.values.map((v) => v.labels.status)).toEqual([
      'timed_out',
    ]);
    const recorded = await selectRows(store, {
      query: `SELECT status, error FROM mw_detect_runs WHERE model = 'm1' AND status = 'timed_out'`,
    }).json<{ status: string; error: string }>();
    expect(recorded).toEqual([{ status: 'timed_out', error: 'detection run exceeded 1000 ms' }]);
  });

  it('startDetector: stop() during a run cancels it as a shutdown (a warning, no error logged)', async () => {
    let started: () => void = () => undefined;
    const running = new Promise<void>((r) => (started = r));
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const stuck: DriftDetectFn = async (s, o) => {
      started();
      await gate;
      return drift(s, o);
    };
    const from = logs.length;
    const det = await startDetector(
      { ...ctx, metrics: new Registry() },
      {
        intervalMs: 60_000,
        timeoutMs: 60_000,
        detectDrift: stuck,
        clock: () => T0 + 2 * HOUR + 50 * MIN,
        models: ['m1'],
      },
    );
    await running;
    const stopping = det.stop();
    // stop() waits for the in-flight call to return (as above); the run itself was cancelled at once.
    await new Promise((r) => setTimeout(r, 50));
    release();
    await stopping;
    const mine = logs.slice(from);
    expect(
      mine.some((l) => l.level === 'warn' && l.msg === 'detection run cancelled' && l.fields?.model === 'm1'),
    ).toBe(true);
    expect(mine.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('startDetector: a run that throws is logged and counted, the loop goes on', async () => {
    const registry = new Registry();
    let n = 0;
    const det = await startDetector(
      { ...ctx, metrics: registry, config: { ...ctx.config, models: {} } },
      {
        intervalMs: 20,
        clock: () => {
          n++;
          return T0 + 2 * HOUR + 40 * MIN;
        },
        models: ['m1'],
        // A schema whose prediction tensor does not exist still runs; a broken store would be an error:
        detectDrift: () => {
          throw new Error('boom');
        },
      },
    );
    for (let waited = 0; n < 3 && waited < 20_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    await det.stop();
    expect(n).toBeGreaterThanOrEqual(3);
    expect(logs.some((l) => l.msg === 'drift detection failed' && l.fields?.error === 'boom')).toBe(true);
  });

  it('rejects bad options at start', async () => {
    let err: unknown;
    try {
      await startDetector(ctx, { intervalMs: 0 });
    } catch (e: unknown) {
      err = e;
    }
    expect(isModelwatchError(err, 'config_invalid')).toBe(true);
  });
});
