import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '../src/api/index.js';
import { classificationAggregates, finishClassification, runDetectionOnce } from '../src/drift/index.js';
import { toChTime, type ClickHouseStore, type PredictionRow, type RequestRow } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';

const HOUR = 3_600_000;
const NOW = Date.now();
const T0 = NOW - 3 * HOUR;
// The last hour of the data, explicitly: the routes' default window ends at request time, a moment after NOW.
const WINDOW = new URLSearchParams({ from: String(NOW - HOUR), to: String(NOW + 1000) }).toString();

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let api: RunningApi;

/** NumPy's default (linear) quantile. */
function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] ?? 0) + ((sorted[hi] ?? 0) - (sorted[lo] ?? 0)) * (pos - lo);
}

const lastHour = { actual: [] as string[], probs: [] as number[][] };
const latencies: number[] = [];
let lastHourRequests = 0;
let lastHourErrors = 0;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  const u = mulberry32(3);
  const g = gaussian(u);
  const preds: PredictionRow[] = [];
  const reqs: RequestRow[] = [];
  const labels: Array<{ request_id: string; row: number; label: string }> = [];
  const n = 1800;
  for (let i = 0; i < n; i++) {
    const ts = T0 + Math.floor((i * 3 * HOUR) / n);
    const id = `pm-${i}`;
    const inLastHour = ts >= NOW - HOUR;
    const p = u();
    preds.push({
      model: 'pm',
      version: '1',
      ts,
      event_id: id,
      request_id: id,
      row: 0,
      features_num: { x_0: g() + (inLastHour ? 2 : 0) },
      features_cat: {},
      outputs_num: { prob_0: p },
      outputs_cat: {},
    });
    const latency = 5 + 100 * u();
    const status = i % 40 === 0 ? 503 : 200;
    reqs.push({
      model: 'pm',
      version: '1',
      ts,
      event_id: id,
      request_id: id,
      source: 'rest',
      route: '/v2/models/pm/infer',
      status,
      latency_ms: latency,
      request_bytes: 10,
      response_bytes: 10,
      request_truncated: false,
      response_truncated: false,
      rows: 1,
      error: '',
    });
    if (inLastHour) {
      latencies.push(latency);
      lastHourRequests++;
      if (status >= 400) lastHourErrors++;
    }
    if (i % 2 === 0) {
      const label = u() < p ? '1' : '0';
      labels.push({ request_id: id, row: 0, label });
      if (inLastHour) {
        lastHour.actual.push(label);
        lastHour.probs.push([p]);
      }
    }
  }
  await store.insertPredictions(preds);
  await store.insertRequests(reqs);
  await store.insertLabels(labels);
  latencies.sort((a, b) => a - b);
  api = await startApi(apiTestContext(store));
});

afterAll(async () => {
  await api.stop();
  await cleanup();
});

const close = (a: number | null | undefined, b: number, rel = 1e-9): void => {
  expect(a).not.toBeNull();
  expect(Math.abs((a ?? NaN) - b)).toBeLessThanOrEqual(rel * Math.abs(b));
};

describe('GET /api/v1/models/{name}/performance', () => {
  it('returns measured metrics over labelled rows, coverage and the CBPE estimate', async () => {
    const res = await fetch(`${api.url}/api/v1/models/pm/performance?${WINDOW}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      rows: number;
      labelled_rows: number;
      label_coverage: number;
      measured: { accuracy: number; roc_auc: number; log_loss: number; f1: number };
      estimated: { method: string; accuracy: number };
      prediction: { task: string; columns: string[] };
    };
    expect(body.prediction).toMatchObject({ task: 'binary', columns: ['prob_0'] });
    expect(body.rows).toBe(lastHourRequests);
    expect(body.labelled_rows).toBe(lastHour.actual.length);
    close(body.label_coverage, lastHour.actual.length / lastHourRequests);
    const expected = finishClassification(
      classificationAggregates({
        task: 'binary',
        classes: ['0', '1'],
        positive: '1',
        actual: lastHour.actual,
        probabilities: lastHour.probs,
      }),
    );
    close(body.measured.accuracy, expected.accuracy ?? NaN);
    close(body.measured.roc_auc, expected.roc_auc ?? NaN);
    close(body.measured.log_loss, expected.log_loss ?? NaN);
    close(body.measured.f1, expected.f1 ?? NaN);
    expect(body.estimated.method).toBe('cbpe');
    expect(body.estimated.accuracy).toBeGreaterThan(0.6);
  });

  it('honours from/to', async () => {
    const q = new URLSearchParams({ from: new Date(T0).toISOString(), to: String(NOW + 1000) });
    const body = (await (await fetch(`${api.url}/api/v1/models/pm/performance?${q}`)).json()) as { rows: number };
    expect(body.rows).toBe(1800);
  });

  it('404 for an unknown model, 400 for a bad time', async () => {
    const res = await fetch(`${api.url}/api/v1/models/nope/performance`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
    const bad = await fetch(`${api.url}/api/v1/models/pm/performance?from=yesterday`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('bad_request');
  });
});

describe('GET /api/v1/models/{name}/health', () => {
  it('recomputes traffic, drift, data quality, performance and alerts on request', async () => {
    const res = await fetch(`${api.url}/api/v1/models/pm/health?${WINDOW}&recompute=true`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      traffic: {
        requests: number;
        rows: number;
        errors: number;
        error_rate: number;
        latency_ms: { p50: number; p95: number; p99: number };
      };
      drift: {
        source: string;
        dataset: { drifted: boolean };
        features: Array<{ name: string; drifted: boolean }>;
      } | null;
      data_quality: { quarantined: number; features: Array<{ name: string }> } | null;
      performance: {
        label_coverage: number;
        measured: { accuracy: number } | null;
        estimated: { accuracy: number } | null;
      };
      alerts: unknown[];
    };
    expect(body.traffic.requests).toBe(lastHourRequests);
    expect(body.traffic.rows).toBe(lastHourRequests);
    expect(body.traffic.errors).toBe(lastHourErrors);
    close(body.traffic.error_rate, lastHourErrors / lastHourRequests);
    close(body.traffic.latency_ms.p50, quantile(latencies, 0.5));
    close(body.traffic.latency_ms.p95, quantile(latencies, 0.95));
    close(body.traffic.latency_ms.p99, quantile(latencies, 0.99));
    expect(body.drift?.source).toBe('live');
    expect(body.drift?.features.find((f) => f.name === 'x_0')?.drifted).toBe(true);
    expect(body.data_quality?.quarantined).toBe(0);
    expect(body.data_quality?.features.some((f) => f.name === 'x_0')).toBe(true);
    expect(body.performance.measured?.accuracy).toBeGreaterThan(0.5);
    expect(body.performance.estimated?.accuracy).toBeGreaterThan(0.5);
    expect(body.alerts).toEqual([]);
  });

  it('falls back to the newest stored detect-loop result when live drift fails', async () => {
    // Every call of this model failed upstream: requests are recorded, no prediction rows, so the drift engine
    // has nothing to compare live.
    const ts = NOW - 10 * 60_000;
    // It answered once, two days ago (so it is a model), and has failed ever since.
    await store.insertRequests([
      {
        model: 'failing',
        version: '',
        ts: NOW - 2 * 86_400_000,
        event_id: 'f0',
        request_id: 'f0',
        source: 'rest',
        route: '/v2/models/failing/infer',
        status: 200,
        latency_ms: 3,
        request_bytes: 10,
        response_bytes: 10,
        request_truncated: false,
        response_truncated: false,
        rows: 0,
        error: '',
      },
    ]);
    await store.insertRequests([
      {
        model: 'failing',
        version: '',
        ts,
        event_id: 'f1',
        request_id: 'f1',
        source: 'rest',
        route: '/v2/models/failing/infer',
        status: 500,
        latency_ms: 3,
        request_bytes: 10,
        response_bytes: 10,
        request_truncated: false,
        response_truncated: false,
        rows: 0,
        error: 'model crashed',
      },
    ]);
    const live = (await (await fetch(`${api.url}/api/v1/models/failing/health?recompute=true`)).json()) as {
      drift: unknown;
      drift_error?: string;
      traffic: { errors: number; error_rate: number };
    };
    expect(live.drift).toBeNull();
    // It never stored a prediction row, so it has no reference to compare against.
    expect(live.drift_error).toMatch(/no reference yet/);
    expect(live.traffic).toMatchObject({ errors: 1, error_rate: 1 });

    // A stored dataset verdict from an earlier detect run (the model has no rows now, so a run today is no_data).
    const at = toChTime(NOW - 60_000);
    await store.insert('mw_drift_results', [
      {
        run_id: 'run-1',
        model: 'failing',
        ts: at,
        window_from: toChTime(NOW - 60_000 - HOUR),
        window_to: at,
        reference_id: 'ref-1',
        segment: '',
        feature: '',
        kind: 'dataset',
        output: false,
        method: 'share',
        parameters: '{}',
        n_ref: 10,
        n_cur: 1,
        statistic: 0,
        p_value: null,
        score: 0,
        threshold: 0.5,
        drifted: false,
        stats: '{}',
        quality: '{}',
      },
    ]);
    const body = (await (await fetch(`${api.url}/api/v1/models/failing/health?recompute=true`)).json()) as {
      drift: { source: string; reference_id: string } | null;
      drift_error: string;
    };
    expect(body.drift).toMatchObject({ source: 'stored', reference_id: 'ref-1' });
    expect(body.drift_error).toMatch(/no reference yet/);
  });

  it('answers from the newest stored detection run by default, computing nothing live', async () => {
    type Health = {
      traffic: { requests: number };
      drift: {
        source: string;
        ts: string;
        dataset: { drifted: boolean };
        features: Array<{ name: string; drifted: boolean; score: number | null }>;
      } | null;
      drift_error?: string;
      data_quality: {
        quarantined: number;
        volume: Record<string, unknown>;
        features: Array<{ name: string; missing_current?: number }>;
      } | null;
      performance: {
        source: string;
        ts: string;
        rows: number;
        labelled_rows: number;
        label_coverage: number;
        measured: Record<string, unknown> | null;
        estimated: Record<string, unknown> | null;
      } | null;
    };
    const health = async (): Promise<Health> => {
      const res = await fetch(`${api.url}/api/v1/models/pm/health?${WINDOW}`);
      expect(res.status).toBe(200);
      return (await res.json()) as Health;
    };
    // No detection run has been stored for pm: traffic is counted, the rest is null (not computed now).
    const before = await health();
    expect(before.traffic.requests).toBe(lastHourRequests);
    expect(before).toMatchObject({ drift: null, data_quality: null, performance: null });
    expect(before.drift_error).toBeUndefined();

    const runAt = NOW + 500;
    const run = await runDetectionOnce(apiTestContext(store), { model: 'pm', now: runAt });
    expect(run.drift).not.toBeNull();
    const after = await health();
    expect(after.drift).toMatchObject({
      source: 'stored',
      ts: new Date(runAt).toISOString(),
      dataset: { drifted: run.drift?.dataset.drifted },
    });
    const byName = (a: { name: string }, b: { name: string }): number => a.name.localeCompare(b.name);
    expect(after.drift?.features.map((f) => [f.name, f.drifted, f.score])).toEqual(
      [...(run.drift?.features ?? [])].sort(byName).map((f) => [f.name, f.drifted, f.score]),
    );
    expect(after.drift?.features.find((f) => f.name === 'x_0')?.drifted).toBe(true);
    expect(after.data_quality?.quarantined).toBe(0);
    expect(after.data_quality?.features.map((f) => f.name)).toEqual(run.drift?.features.map((f) => f.name).sort());
    if (run.performance === null) throw new Error('the run computed no performance');
    expect(after.performance).toMatchObject({
      source: 'stored',
      ts: new Date(runAt).toISOString(),
      rows: run.performance.rows,
      labelled_rows: run.performance.labelled_rows,
      label_coverage: run.performance.label_coverage,
    });
    const measured = run.performance.measured as unknown as Record<string, unknown>;
    for (const metric of ['accuracy', 'roc_auc', 'log_loss', 'f1'])
      expect(after.performance?.measured?.[metric]).toBe(measured[metric]);
    expect(after.performance?.measured?.confusion_matrix).toEqual(measured.confusion_matrix);
    expect(after.performance?.estimated?.accuracy).toBe(run.performance.estimated?.accuracy);
    // A window that ends before the run does not see it.
    const earlier = new URLSearchParams({ from: String(NOW - 2 * HOUR), to: String(NOW - HOUR) }).toString();
    const old = (await (await fetch(`${api.url}/api/v1/models/pm/health?${earlier}`)).json()) as Health;
    expect(old).toMatchObject({ drift: null, performance: null });
  });

  it('404 JSON error for an unknown model', async () => {
    const res = await fetch(`${api.url}/api/v1/models/nope/health`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'not_found' } });
  });
});
