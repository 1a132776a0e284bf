import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '../src/api/index.js';
import type { Logger } from '../src/common/logger.js';
import { startDetector, type DetectionRun } from '../src/drift/detector.js';
import { createReference } from '../src/drift/reference.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import type { ClickHouseStore, PredictionRow, RequestRow } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore, selectRows } from './support/store.js';

// End to end on the embedded store: baseline traffic → a pinned reference → shifted traffic → the detect loop's
// stored results, the history API, the gauges and the log all flag the shifted feature and only it.

const MIN = 60_000;
const HOUR = 3_600_000;
const T0 = Date.parse('2026-12-01T00:00:00Z');
const MODEL = 'e2e';

interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

function recordingLogger(lines: LogLine[]): Logger {
  const at =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      lines.push({ level, msg, fields: fields ?? {} });
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let api: RunningApi;
let ctx: RuntimeContext;
const logs: LogLine[] = [];
const rnd = mulberry32(7);
const g = gaussian(rnd);

/** `n` one-row calls over [start, start + spanMs); version '2' rows get `shift` added to x_1. */
async function traffic(start: number, spanMs: number, n: number, shift: number): Promise<void> {
  const preds: PredictionRow[] = [];
  const reqs: RequestRow[] = [];
  const labels: Array<{ request_id: string; row: number; label: string }> = [];
  for (let i = 0; i < n; i++) {
    const ts = start + Math.floor((i * spanMs) / n);
    const id = `${MODEL}-${ts}-${i}`;
    const version = i % 2 === 0 ? '1' : '2';
    const p = rnd();
    preds.push({
      model: MODEL,
      version,
      ts,
      event_id: id,
      request_id: id,
      row: 0,
      features_num: { x_0: g(), x_1: g() + (version === '2' ? shift : 0), x_2: g() },
      features_cat: {},
      outputs_num: { prob_0: p },
      outputs_cat: {},
    });
    reqs.push({
      model: MODEL,
      version,
      ts,
      event_id: id,
      request_id: id,
      source: 'rest',
      route: `/v2/models/${MODEL}/infer`,
      status: 200,
      latency_ms: 20 + g(),
      request_bytes: 100,
      response_bytes: 50,
      request_truncated: false,
      response_truncated: false,
      rows: 1,
      error: '',
    });
    labels.push({ request_id: id, row: 0, label: rnd() < p ? '1' : '0' });
  }
  await store.insertPredictions(preds);
  await store.insertRequests(reqs);
  await store.insertLabels(labels);
}

async function get<T>(path: string): Promise<T> {
  const res = await fetch(`${api.url}${path}`);
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

/** Value of one sample of the Prometheus text, by metric name and exact label text. */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  ctx = {
    ...apiTestContext(store, {
      'metrics.maxFeatures': 2,
      models: { [MODEL]: { task: 'binary', prediction: { tensor: 'prob' }, segments: { version: true } } },
    }),
    logger: recordingLogger(logs),
  };
  api = await startApi(ctx);
  await traffic(T0, HOUR, 800, 0);
  // Until the default reference is frozen by the engine, pin the baseline hour explicitly.
  await createReference(store, { model: MODEL, from: T0, to: T0 + HOUR });
}, 120_000);

afterAll(async () => {
  await api.stop();
  await cleanup();
});

describe('detect loop end to end', () => {
  let now = T0 + HOUR;
  const clock = (): number => now;
  const verdictLines = (): LogLine[] => logs.filter((l) => l.msg === 'drift verdict changed');
  let shifted: DetectionRun | undefined;

  it('flags the shifted feature, and only it, in stored results, history, gauges and one log line', async () => {
    const det = await startDetector(ctx, { clock, models: [MODEL] });
    try {
      const [baseline] = await det.runNow();
      expect(baseline).toMatchObject({
        model: MODEL,
        status: 'ok',
        rows: 800,
        window: { to: new Date(T0 + HOUR).toISOString() },
      });
      expect(baseline?.drift?.features.filter((f) => f.drifted).map((f) => f.name)).toEqual([]);
      expect(verdictLines()).toEqual([]);

      await traffic(T0 + HOUR, HOUR, 800, 2);
      now = T0 + 2 * HOUR + 5_000; // the run's window ends at the interval boundary T0 + 2 h
      [shifted] = await det.runNow();
    } finally {
      await det.stop();
    }
    expect(shifted).toMatchObject({
      status: 'ok',
      rows: 800,
      window: { from: new Date(T0 + HOUR).toISOString(), to: new Date(T0 + 2 * HOUR).toISOString() },
    });
    const runId = shifted?.run_id ?? '';

    // Stored: x_1 drifted, the other features and the output not; per segment only version 2 drifts.
    const rows = await selectRows(store, {
      query: `SELECT segment, feature, drifted, reference_id FROM mw_drift_results WHERE run_id = {run:String} AND kind != 'dataset' ORDER BY segment, feature`,
      query_params: { run: runId },
    }).json<{ segment: string; feature: string; drifted: boolean; reference_id: string }>();
    const drifted = (segment: string): string[] =>
      rows.filter((r) => r.segment === segment && r.drifted).map((r) => r.feature);
    expect(rows.filter((r) => r.segment === '').map((r) => r.feature)).toEqual(['prob_0', 'x_0', 'x_1', 'x_2']);
    expect(drifted('')).toEqual(['x_1']);
    expect(drifted('version:2')).toEqual(['x_1']);
    expect(drifted('version:1')).toEqual([]);
    expect(new Set(rows.map((r) => r.reference_id)).size).toBe(1);

    // The run record.
    const run = await selectRows(store, {
      query: `SELECT status, rows, interval_ms, reference_id, toUnixTimestamp64Milli(window_to) AS to_ms FROM mw_detect_runs WHERE run_id = {run:String}`,
      query_params: { run: runId },
    }).json<{ status: string; rows: string; interval_ms: string; reference_id: string; to_ms: string }>();
    expect(run).toHaveLength(1);
    expect(run[0]).toMatchObject({ status: 'ok', reference_id: rows[0]?.reference_id });
    expect(Number(run[0]?.rows)).toBe(800);
    expect(Number(run[0]?.interval_ms)).toBe(MIN);
    expect(Number(run[0]?.to_ms)).toBe(T0 + 2 * HOUR);

    // Typed series: per-feature drift scores and quality rates carry the feature, with window and interval.
    const series = await selectRows(store, {
      query: `SELECT series, feature, toUnixTimestamp64Milli(window_from) AS from_ms, interval_ms FROM mw_metric_series
              WHERE run_id = {run:String} AND series IN ('drift.score', 'quality.missing_rate', 'traffic.latency_p99_ms', 'performance.measured.accuracy')
              ORDER BY series, feature`,
      query_params: { run: runId },
    }).json<{ series: string; feature: string; from_ms: string; interval_ms: string }>();
    expect(series.filter((s) => s.series === 'drift.score').map((s) => s.feature)).toEqual([
      'prob_0',
      'x_0',
      'x_1',
      'x_2',
    ]);
    expect(series.filter((s) => s.series === 'quality.missing_rate').map((s) => s.feature)).toEqual([
      'prob_0',
      'x_0',
      'x_1',
      'x_2',
    ]);
    const latency = series.find((s) => s.series === 'traffic.latency_p99_ms');
    expect(Number(latency?.from_ms)).toBe(T0 + 2 * HOUR - MIN); // the interval
    expect(Number(series.find((s) => s.series === 'drift.score')?.from_ms)).toBe(T0 + HOUR); // the window
    expect(series.some((s) => s.series === 'performance.measured.accuracy')).toBe(true);

    // History API: one point per run for x_1, not drifted then drifted.
    const q = new URLSearchParams({ from: String(T0), to: String(T0 + 3 * HOUR), feature: 'x_1' });
    const history = await get<{
      points: Array<{
        run_id: string;
        drifted: boolean;
        method: string;
        n_ref: number;
        n_cur: number;
        window_to: string;
        reference_id: string;
      }>;
    }>(`/api/v1/models/${MODEL}/drift/history?${q.toString()}`);
    expect(history.points.map((p) => p.drifted)).toEqual([false, true]);
    expect(history.points[1]).toMatchObject({
      run_id: runId,
      method: 'ks',
      n_ref: 800,
      n_cur: 800,
      window_to: new Date(T0 + 2 * HOUR).toISOString(),
    });
    const runsApi = await get<{ runs: Array<{ status: string; rows: number }> }>(
      `/api/v1/models/${MODEL}/detect-runs?from=${T0}&to=${T0 + 3 * HOUR}`,
    );
    expect(runsApi.runs.map((r) => r.status)).toEqual(['ok', 'ok']);
    const perf = await get<{ points: Array<{ source: string; metric: string; value: number | null }> }>(
      `/api/v1/models/${MODEL}/performance/history?from=${T0}&to=${T0 + 3 * HOUR}&metric=accuracy&source=measured`,
    );
    expect(perf.points).toHaveLength(2);
    expect(
      perf.points.every((p) => p.source === 'measured' && p.metric === 'accuracy' && typeof p.value === 'number'),
    ).toBe(true);

    // Gauges: the dataset is not drifted (1 of 3 input features), x_1 is among the 2 exported features.
    const text = await ctx.metrics.metrics();
    const m = `model="${MODEL}"`;
    expect(sample(text, 'modelwatch_drift_share', m)).toBe(shifted?.drift?.dataset.share);
    expect(shifted?.drift?.dataset).toMatchObject({ features: 3, drifted_features: 1, drifted: false });
    expect(sample(text, 'modelwatch_drift_detected', m)).toBe(0);
    const featureLines = text.split('\n').filter((l) => l.startsWith(`modelwatch_feature_drift_score{${m}`));
    expect(featureLines).toHaveLength(2);
    const x1 = shifted?.drift?.features.find((f) => f.name === 'x_1');
    expect(sample(text, 'modelwatch_feature_drift_score', `${m},feature="x_1"`)).toBe(x1?.score);
    expect(sample(text, 'modelwatch_detect_runs_total', `${m},status="ok"`)).toBe(2);
    expect(sample(text, 'modelwatch_detect_last_success_timestamp_seconds', m)).toBe((T0 + 2 * HOUR + 5_000) / 1000);
    expect(sample(text, 'modelwatch_detect_duration_seconds', m)).toBeGreaterThan(0);
    expect(sample(text, 'modelwatch_label_coverage', m)).toBe(1);
    expect(sample(text, 'modelwatch_performance', `${m},metric="accuracy",source="measured"`)).toBeGreaterThan(0);
    expect(sample(text, 'modelwatch_performance', `${m},metric="accuracy",source="estimated"`)).toBeGreaterThan(0);

    // One log line, naming the model, the feature with its score and the window.
    const lines = verdictLines();
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe('info');
    expect(lines[0]?.fields).toMatchObject({
      model: MODEL,
      window: { from: new Date(T0 + HOUR).toISOString(), to: new Date(T0 + 2 * HOUR).toISOString() },
      dataset: { drifted: false, was: false },
      features: [{ name: 'x_1', drifted: true, was: false, method: 'ks', score: x1?.score }],
    });

    // /health reads the newest stored run.
    const health = await get<{
      last_run: { status: string; run_id: string } | null;
      drift: { features: Array<{ name: string; drifted: boolean }> } | null;
    }>(`/api/v1/models/${MODEL}/health?from=${T0 + HOUR}&to=${T0 + 3 * HOUR}`);
    expect(health.last_run).toMatchObject({ status: 'ok', run_id: runId });
    expect(health.drift?.features.filter((f) => f.drifted).map((f) => f.name)).toEqual(['x_1']);
  });

  it('after a restart the verdicts are read back: an unchanged verdict is not logged again', async () => {
    const before = verdictLines().length;
    now = T0 + 2 * HOUR + MIN + 5_000;
    const det = await startDetector(ctx, { clock, models: [MODEL] });
    let runs: DetectionRun[];
    try {
      runs = await det.runNow();
    } finally {
      await det.stop();
    }
    expect(runs.map((r) => r.status)).toEqual(['ok']);
    expect(runs[0]?.drift?.features.find((f) => f.name === 'x_1')?.drifted).toBe(true);
    expect(verdictLines().length).toBe(before);
  });

  it('a tick in an interval already run is skipped; an empty window records no_data', async () => {
    const det = await startDetector(ctx, { clock, models: [MODEL] });
    try {
      expect(await det.runNow()).toEqual([]); // same interval as the previous test's run
      now = T0 + 10 * HOUR;
      const [empty] = await det.runNow();
      expect(empty).toMatchObject({ status: 'no_data', rows: 0, drift: null, performance: null });
      expect(empty?.series.find((p) => p.series === 'traffic.requests')?.value).toBe(0);
    } finally {
      await det.stop();
    }
    const runs = await get<{ runs: Array<{ status: string; rows: number; window_to: string }> }>(
      `/api/v1/models/${MODEL}/detect-runs?from=${T0 + 9 * HOUR}&to=${T0 + 11 * HOUR}&status=no_data`,
    );
    expect(runs.runs).toEqual([
      expect.objectContaining({ status: 'no_data', rows: 0, window_to: new Date(T0 + 10 * HOUR).toISOString() }),
    ]);
  });
});
