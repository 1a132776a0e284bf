import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, ModelwatchError } from '../src/common/errors.js';
import { DetectorState, driftOutcome, intervalEnd, runDetectionOnce, startDetector } from '../src/drift/detector.js';
import { DetectMetrics } from '../src/drift/detect-metrics.js';
import type { DriftReport } from '../src/drift/stats/types.js';
import { DEFAULT_MONITOR_DETECTORS } from '../src/drift/streaming/monitor.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import type { ClickHouseStore, PredictionRow, RequestRow } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore, selectRows } from './support/store.js';
import { callRows } from './support/call-rows.js';

// Streaming-detector state survives a restart: the loop rebuilds it by replaying the stored series, so a change
// injected after the restart is found at the same interval as without a restart; a cold state would miss it.

const MIN = 60_000;
const T0 = Date.parse('2026-12-02T00:00:00Z');
const SERIES = 'traffic.latency_p99_ms';
const TICKS = 18;
const JUMP_AT = 14; // minutes: latency jumps from here; the run at T0 + 15 min is the first to see it
const RESTART_AFTER = 12;

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let ctx: RuntimeContext;

/** The same seeded traffic for each model: 10 calls a minute, latency ~20 ms then ~60 ms from JUMP_AT. */
async function traffic(model: string): Promise<void> {
  const rnd = mulberry32(11);
  const g = gaussian(rnd);
  const preds: PredictionRow[] = [];
  const reqs: RequestRow[] = [];
  for (let i = 0; i < TICKS * 10; i++) {
    const ts = T0 + i * 6_000;
    const id = `${model}-${i}`;
    const { prediction, request } = callRows(model, ts, id, {
      features_num: { x: g() },
      latency_ms: (ts >= T0 + JUMP_AT * MIN ? 60 : 20) + g(),
    });
    preds.push(prediction);
    reqs.push(request);
  }
  await store.insertPredictions(preds);
  await store.insertRequests(reqs);
}

/** First tick (minutes after T0) with a change point on SERIES among `runs`. */
function firstAlarm(runs: Array<{ tick: number; series: string[] }>): number | null {
  return runs.find((r) => r.series.includes(SERIES))?.tick ?? null;
}

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  // Short warm-ups so the test needs few intervals (the defaults are 100 / 30 / 30 / 200 values).
  ctx = apiTestContext(store, {
    'detect.warmup': 8,
    'detect.minInstances': { pageHinkley: 3, adwin: 5, cusum: 8 },
  });
  await traffic('a');
  await traffic('b');
}, 60_000);

afterAll(async () => {
  await cleanup();
});

describe('streaming detector state across a restart', () => {
  it('detects a change after a restart at the same interval as without one', async () => {
    const a: Array<{ tick: number; series: string[] }> = [];
    // Same monitor options as the loop (from config): a fresh state built through the loop's own path.
    const base = await startDetector(ctx, { clock: () => T0, models: [], detectDrift: null });
    await base.stop();
    const loopState = base.state;
    expect(loopState.size).toBe(0);
    for (let t = 1; t <= TICKS; t++) {
      const run = await runDetectionOnce(ctx, {
        model: 'a',
        now: T0 + t * MIN + 1_000,
        state: loopState,
        detectDrift: null,
      });
      a.push({ tick: t, series: run.change_points.map((c) => c.series) });
    }
    const expected = firstAlarm(a);
    expect(expected).not.toBeNull();
    expect(expected).toBeGreaterThan(JUMP_AT);
    expect(expected).toBeLessThanOrEqual(JUMP_AT + 3);

    // Model b: the same traffic, with a restart after RESTART_AFTER intervals.
    const b: Array<{ tick: number; series: string[] }> = [];
    const first = await startDetector(ctx, { clock: () => T0, models: [], detectDrift: null });
    await first.stop();
    for (let t = 1; t <= RESTART_AFTER; t++) {
      const run = await runDetectionOnce(ctx, {
        model: 'b',
        now: T0 + t * MIN + 1_000,
        state: first.state,
        detectDrift: null,
      });
      b.push({ tick: t, series: run.change_points.map((c) => c.series) });
    }
    let now = T0 + RESTART_AFTER * MIN + 1_000;
    const det = await startDetector(ctx, { clock: () => now, models: ['b'], detectDrift: null });
    try {
      // The rebuilt state has replayed b's stored values and knows its last interval.
      expect(det.state.fed('b', SERIES)).toBe(RESTART_AFTER);
      expect(det.state.lastIntervalEnd('b')).toBe(T0 + RESTART_AFTER * MIN);
      expect(await det.runNow()).toEqual([]); // that interval is not fed twice
      for (let t = RESTART_AFTER + 1; t <= TICKS; t++) {
        now = T0 + t * MIN + 1_000;
        const runs = (await det.runNow()).filter((r) => r.model === 'b');
        expect(runs).toHaveLength(1);
        b.push({ tick: t, series: runs[0]?.change_points.map((c) => c.series) ?? [] });
      }
    } finally {
      await det.stop();
    }
    expect(firstAlarm(b)).toBe(expected);
    expect(b.map((r) => r.series.includes(SERIES))).toEqual(a.map((r) => r.series.includes(SERIES)));

    // One value per interval, each stored with its interval window; nothing stored twice.
    const stored = await selectRows(store, {
      query: `SELECT toUnixTimestamp64Milli(window_from) AS f, toUnixTimestamp64Milli(window_to) AS t, interval_ms
              FROM mw_metric_series WHERE model = 'b' AND series = {s:String} ORDER BY window_to`,
      query_params: { s: SERIES },
    }).json<{ f: string; t: string; interval_ms: string }>();
    expect(stored.map((r) => Number(r.t))).toEqual(Array.from({ length: TICKS }, (_, i) => T0 + (i + 1) * MIN));
    expect(stored.every((r) => Number(r.t) - Number(r.f) === MIN && Number(r.interval_ms) === MIN)).toBe(true);

    // Without the replay, a cold state would still be warming up when the change comes: no alarm in time.
    const cold = new DetectorState(loopStateOptions());
    const values = stored.length;
    expect(values).toBe(TICKS);
    const latencies = await selectRows(store, {
      query: `SELECT value FROM mw_metric_series WHERE model = 'b' AND series = {s:String} ORDER BY window_to`,
      query_params: { s: SERIES },
    }).json<{ value: number }>();
    let coldAlarm: number | null = null;
    latencies.slice(RESTART_AFTER).forEach((v, i) => {
      if (coldAlarm === null && cold.feed('b', SERIES, v.value).length > 0) coldAlarm = RESTART_AFTER + 1 + i;
    });
    expect(coldAlarm).not.toBe(expected);
  }, 300_000);

  it('windows end on interval boundaries', () => {
    expect(intervalEnd(T0 + 59_999, MIN)).toBe(T0);
    expect(intervalEnd(T0 + 60_000, MIN)).toBe(T0 + MIN);
  });

  it('maps the drift engine answers to run statuses in one place', () => {
    expect(driftOutcome({ report: null }).status).toBe('no_reference');
    expect(
      driftOutcome({ error: new ModelwatchError(ErrorCodes.notFound, 'model has no stored traffic: m') }),
    ).toMatchObject({
      status: 'no_reference',
      error: 'model has no stored traffic: m',
    });
    expect(driftOutcome({ error: new ModelwatchError(ErrorCodes.storeError, 'bad') }).status).toBe('failed');
  });

  it('records no_reference when the engine has no reference yet', async () => {
    const run = await runDetectionOnce(ctx, {
      model: 'a',
      now: T0 + 5 * MIN,
      detectDrift: () => Promise.resolve(null),
    });
    expect(run).toMatchObject({ status: 'no_reference', drift: null, reference_id: '' });
    const rows = await selectRows(store, {
      query: `SELECT status FROM mw_detect_runs WHERE run_id = {r:String}`,
      query_params: { r: run.run_id },
    }).json<{ status: string }>();
    expect(rows).toEqual([{ status: 'no_reference' }]);
  });
});

/** The monitor options the loop derives from this test's config. */
function loopStateOptions(): ConstructorParameters<typeof DetectorState>[0] {
  return {
    warmup: 8,
    page_hinkley: { ...DEFAULT_MONITOR_DETECTORS.page_hinkley, min_instances: 3 },
    adwin: { ...DEFAULT_MONITOR_DETECTORS.adwin, grace_period: 5 },
    cusum: { ...DEFAULT_MONITOR_DETECTORS.cusum, min_instances: 8 },
  };
}

describe('detect gauges', () => {
  const report = (scores: Record<string, number>): DriftReport => ({
    reference: { rows: 100 },
    current: { rows: 100 },
    features: Object.entries(scores).map(([name, score]) => ({
      name,
      kind: 'numeric',
      method: 'ks',
      score,
      threshold: 0.05,
      drifted: score < 0.05,
      stats: {},
      quality: { missing_reference: 0, missing_current: 0, missing_rate_current: 0 },
    })),
    dataset: { features: 3, drifted_features: 0, share: 0, share_threshold: 0.5, drifted: false },
  });

  it('keeps only the most drifted features, removes those that left the top, and caps models', async () => {
    const registry = new Registry();
    const m = new DetectMetrics(registry, { maxFeatures: 2, maxModels: 1 });
    m.drift('a', report({ f1: 0.001, f2: 0.5, f3: 0.02 }));
    const names = async (): Promise<string[]> =>
      ((await registry.getSingleMetric('modelwatch_feature_drift_score')?.get())?.values ?? [])
        .map((v) => String(v.labels.feature))
        .sort();
    expect(await names()).toEqual(['f1', 'f3']); // smallest p-values: most drifted
    m.drift('a', report({ f1: 0.9, f2: 1e-9, f3: 0.01 }));
    expect(await names()).toEqual(['f2', 'f3']);
    m.run('b', 'ok', 5, T0);
    m.drift('b', report({ f1: 1e-12 }));
    const text = await registry.metrics();
    expect(text).toContain('modelwatch_detect_runs_total{model="other",status="ok"} 1');
    expect(text).not.toContain('model="b"');
  });
});
