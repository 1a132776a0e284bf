import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '../src/api/index.js';
import { configSchema, type Config } from '../src/config/index.js';
import {
  NoReferenceError,
  applyConfiguredReference,
  detectDrift,
  getReference,
  listReferences,
  mergeOverrides,
  tryDetectDrift,
  type DriftDetection,
  type FeatureReport,
} from '../src/drift/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import {
  fixtureRows,
  referenceExpectations,
  referenceFixtureDir,
  trafficRows,
  type ExpectedFeature,
} from './support/reference-fixtures.js';
import { openTestStore } from './support/store.js';

const SEC = 1_000;
const HOUR = 3_600_000;
// Real time matters only for the API (a pinned window must have ended); every detection passes its own `now`.
const T0 = Math.floor(Date.now() / HOUR) * HOUR - 10 * HOUR;
const CUR = T0 + 5 * HOUR;
const expected = referenceExpectations();

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let api: RunningApi;

function config(extra: Record<string, unknown> = {}): Pick<Config, 'detect' | 'models'> {
  return configSchema.parse({ detect: { reference: { rows: expected.default_rows } }, ...extra });
}

async function insert(model: string, name: string, start: number, stepMs: number, tag = name): Promise<void> {
  const t = trafficRows(model, fixtureRows(name), start, stepMs, tag);
  await store.insertPredictions(t.predictions);
  await store.insertRequests(t.requests);
}

function feature(d: DriftDetection, name: string): FeatureReport {
  const f = d.features.find((x) => x.name === name);
  if (f === undefined) throw new Error(`no feature ${name}`);
  return f;
}

/** The run's x (KS) and c (chi-square) equal SciPy's on the same rows. */
function expectScipy(d: DriftDetection, which: keyof typeof expected.references): void {
  const e = expected.references[which];
  expect(d.reference.rows).toBe(e.rows);
  expect(d.current.rows).toBe(expected.current_rows);
  const check = (
    f: FeatureReport,
    x: ExpectedFeature,
    stat: { statistic: number; p_value: number } | undefined,
  ): void => {
    expect(f.method).toBe(x.method);
    expect(f.threshold).toBe(x.threshold);
    expect(stat?.statistic).toBeCloseTo(x.statistic, 12);
    expect(Math.abs((stat?.p_value ?? NaN) - x.p_value)).toBeLessThanOrEqual(
      1e-9 * Math.max(x.p_value, 1e-300) + 1e-15,
    );
    expect(f.score).toBe(stat?.p_value);
    expect(f.drifted).toBe(x.drifted);
  };
  check(feature(d, 'x'), e.x, feature(d, 'x').stats.ks);
  check(feature(d, 'c'), e.c, feature(d, 'c').stats.chi_square);
}

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  api = await startApi(apiTestContext(store, { 'detect.reference.rows': expected.default_rows }));
});

afterAll(async () => {
  await api?.stop();
  await cleanup();
});

describe('default reference', () => {
  const model = 'dflt';
  beforeAll(async () => {
    // 800 successful calls one second apart, and 20 failed ones (status 500) in between that must not count.
    await insert(model, 'traffic_base', T0, SEC);
    const failed = trafficRows(model, fixtureRows('traffic_shift').slice(0, 20), T0 + SEC / 2, 10 * SEC, 'failed');
    await store.insertPredictions(failed.predictions);
    await store.insertRequests(failed.requests.map((r) => ({ ...r, status: 500, error: 'boom' })));
    await insert(model, 'current', CUR, SEC);
  });

  it('reports no reference (not "no drift") until its row count is reached', async () => {
    const now = T0 + 300 * SEC;
    await expect(detectDrift(store, { model, from: T0, to: now, config: config(), now })).rejects.toBeInstanceOf(
      NoReferenceError,
    );
    const outcome = await tryDetectDrift(store, { model, from: T0, to: now, config: config(), now });
    expect(outcome).toMatchObject({
      status: 'no_reference',
      progress: { status: 'pending', rows: 300, rowsNeeded: 500, completesBy: T0 + HOUR },
    });
    expect(await getReference(store, { model })).toBeNull();
  });

  it('answers 409 no_reference on the API while the default reference is pending, with its progress', async () => {
    const fresh = trafficRows('fresh', fixtureRows('traffic_base').slice(0, 10), Date.now() - 60 * SEC, SEC, 'fresh');
    await store.insertPredictions(fresh.predictions);
    await store.insertRequests(fresh.requests);
    const res = await fetch(`${api.url}/api/v1/models/fresh/drift`);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('no_reference');
    const list = (await (await fetch(`${api.url}/api/v1/models/fresh/references`)).json()) as Record<string, unknown>;
    expect(list).toMatchObject({
      active: null,
      references: [],
      default_reference: { status: 'pending', rows: 10, rows_needed: 500 },
    });
  });

  it('completes at its row count, is frozen, and the window under test starts after it', async () => {
    const now = T0 + 600 * SEC;
    const d = await detectDrift(store, { model, from: T0, to: now, config: config(), now });
    const ref = await getReference(store, { id: String(d.reference.id) });
    expect(ref).toMatchObject({ kind: 'default', source: 'traffic', rows: 500 });
    expect(Date.parse(ref!.from!)).toBe(T0);
    // The 500th successful row is at T0 + 499 s; the failed calls in between are not in it.
    expect(Date.parse(ref!.to!)).toBe(T0 + 499 * SEC + 1);
    expect(Date.parse(ref!.last_row_at!)).toBe(T0 + 499 * SEC);
    expect(Date.parse(d.window.from)).toBe(T0 + 499 * SEC + 1);
    expect(d.current.rows).toBe(100);
    expect(ref!.methods.map((m) => [m.name, m.method, m.threshold])).toEqual([
      ['c', 'chi_square', 0.05],
      ['x', 'ks', 0.05],
    ]);
    // Frozen: more traffic later does not change it.
    const later = await detectDrift(store, {
      model,
      from: CUR,
      to: CUR + 500 * SEC,
      config: config(),
      now: CUR + HOUR,
    });
    expect(later.reference.id).toBe(ref!.id);
    expectScipy(later, 'default');
  });

  it('keeps the recorded method as the window grows', async () => {
    const ref = (await listReferences(store, model)).find((r) => r.active)!;
    for (const span of [20, 200, 500]) {
      const d = await detectDrift(store, { model, from: CUR, to: CUR + span * SEC, config: config(), now: CUR + HOUR });
      expect(d.reference.id).toBe(ref.id);
      expect(d.current.rows).toBe(span);
      expect(feature(d, 'x')).toMatchObject({ method: 'ks', threshold: 0.05 });
      expect(feature(d, 'c')).toMatchObject({ method: 'chi_square', threshold: 0.05 });
    }
    expect((await getReference(store, { id: ref.id }))!.methods).toEqual(ref.methods);
  });

  it('lets configured overrides win over the recorded methods', () => {
    const recorded = [
      { name: 'x', kind: 'numeric' as const, method: 'ks' as const, threshold: 0.05 },
      { name: 'c', kind: 'categorical' as const, method: 'chi_square' as const, threshold: 0.05 },
    ];
    expect(mergeOverrides(undefined, recorded)?.features).toEqual({
      x: { method: 'ks', threshold: 0.05 },
      c: { method: 'chi_square', threshold: 0.05 },
    });
    const merged = mergeOverrides({ default: { threshold: 0.01 }, features: { c: { method: 'psi' } } }, recorded);
    expect(merged?.features).toEqual({ x: { method: 'ks', threshold: 0.01 }, c: { method: 'psi' } });
  });
});

describe('pinning through the API', () => {
  const model = 'pin';
  const shiftStart = T0 + HOUR;
  beforeAll(async () => {
    await insert(model, 'traffic_base', T0, SEC);
    await insert(model, 'traffic_shift', shiftStart, SEC);
    await insert(model, 'current', CUR, SEC);
  });
  const run = (): Promise<DriftDetection> =>
    detectDrift(store, { model, from: CUR, to: CUR + HOUR, config: config(), now: CUR + 2 * HOUR });
  const post = (body: unknown): Promise<Response> =>
    fetch(`${api.url}/api/v1/models/${model}/references`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('a pinned traffic window becomes the next comparison', async () => {
    const before = await run();
    expect(before.reference).toMatchObject({ kind: 'default', rows: 500 });
    expectScipy(before, 'default');
    const res = await post({ from: new Date(shiftStart).toISOString(), to: shiftStart + 400 * SEC });
    expect(res.status).toBe(201);
    const created = (await res.json()) as {
      id: string;
      active: boolean;
      kind: string;
      rows: number;
      methods: unknown[];
    };
    expect(created).toMatchObject({ active: true, kind: 'pinned', rows: 400 });
    const after = await run();
    expect(after.reference.id).toBe(created.id);
    expectScipy(after, 'window');
  });

  it('an uploaded file becomes the next comparison; activation switches back', async () => {
    const data = readFileSync(join(referenceFixtureDir, 'upload.jsonl'), 'utf8');
    const res = await post({ upload: { format: 'jsonl', data, name: 'upload.jsonl' } });
    expect(res.status).toBe(201);
    const up = (await res.json()) as { id: string; file: string; source: string };
    expect(up).toMatchObject({ source: 'file', file: 'upload:upload.jsonl' });
    const d = await run();
    expect(d.reference.id).toBe(up.id);
    expectScipy(d, 'upload');
    // A file reference has no time span: no volume verdict.
    expect(d.quality.volume).toMatchObject({ expected_rows: null, drop: false });

    const list = (await (await fetch(`${api.url}/api/v1/models/${model}/references`)).json()) as {
      active: string;
      references: Array<{ id: string; kind: string; active: boolean; source: string }>;
    };
    expect(list.active).toBe(up.id);
    expect(list.references.map((r) => r.kind)).toEqual(['pinned', 'pinned', 'default']);
    expect(list.references.filter((r) => r.active).map((r) => r.id)).toEqual([up.id]);
    const windowRef = list.references.find((r) => r.source === 'traffic' && r.kind === 'pinned')!;

    const put = await fetch(`${api.url}/api/v1/models/${model}/references/active`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: windowRef.id }),
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ id: windowRef.id, active: true });
    expectScipy(await run(), 'window');
  });

  it('activate: false stores without switching; bad input is a precise error', async () => {
    const res = await post({ from: T0, to: T0 + 500 * SEC, activate: false });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ active: false, rows: 500 });
    expect((await run()).reference.kind).toBe('pinned');
    expectScipy(await run(), 'window');
    const bad = async (r: Promise<Response>, status: number, field?: string): Promise<void> => {
      const x = await r;
      expect(x.status).toBe(status);
      const body = (await x.json()) as { error: { field: string } };
      if (field !== undefined) expect(body.error.field).toBe(field);
    };
    await bad(post({ from: Date.now() - HOUR, to: Date.now() + HOUR }), 400, 'to');
    await bad(post({ upload: { format: 'xls', data: 'x' } }), 400);
    await bad(
      fetch(`${api.url}/api/v1/models/${model}/references/active`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'nope' }),
      }),
      404,
      'id',
    );
    expect((await fetch(`${api.url}/api/v1/models/nobody/references`)).status).toBe(404);
  });
});

describe('pinning through the config', () => {
  const model = 'cfg';
  beforeAll(async () => {
    await insert(model, 'traffic_base', T0, SEC);
    await insert(model, 'current', CUR, SEC);
  });

  it('applies models.<m>.reference once and compares with it', async () => {
    const run = (c: Pick<Config, 'detect' | 'models'>): Promise<DriftDetection> =>
      detectDrift(store, { model, from: CUR, to: CUR + HOUR, config: c, now: CUR + 2 * HOUR });
    expectScipy(await run(config()), 'default');
    const withRef = config({
      models: { [model]: { reference: { file: join(referenceFixtureDir, 'config_ref.tsv') } } },
    });
    const d = await run(withRef);
    expect(d.reference).toMatchObject({ kind: 'pinned', source: 'file' });
    expectScipy(d, 'config');
    await run(withRef);
    // Applied again (a restart): found by its key, nothing new is created.
    const again = await applyConfiguredReference(store, model, { file: join(referenceFixtureDir, 'config_ref.tsv') });
    expect(again.status).toBe('exists');
    const refs = await listReferences(store, model);
    expect(refs.filter((r) => r.source === 'file')).toHaveLength(1);
    expect(refs.find((r) => r.active)?.id).toBe(d.reference.id);
  });

  it('a configured window that has not ended waits', async () => {
    const outcome = await applyConfiguredReference(
      store,
      model,
      { from: CUR, to: CUR + 10 * HOUR },
      { now: CUR + HOUR },
    );
    expect(outcome.status).toBe('pending');
  });
});

describe('volume against the reference rate', () => {
  const model = 'vol';
  const rows = (n: number): Array<{ x: number; c: string }> =>
    fixtureRows('traffic_base').concat(fixtureRows('current')).slice(0, n);

  beforeAll(async () => {
    // A fresh model at a steady 1 row/s: 500 rows complete the reference at T0 + 499 s, then 700 more.
    const steady = trafficRows(model, rows(1200), T0, SEC, 'steady');
    await store.insertPredictions(steady.predictions);
    await store.insertRequests(steady.requests);
    // Then a drop of 90%: one row every 10 s for 30 minutes.
    const start = T0 + 1200 * SEC;
    const low = trafficRows(model, rows(180), start, 10 * SEC, 'low');
    await store.insertPredictions(low.predictions);
    await store.insertRequests(low.requests);
  });

  it('does not flag a fresh model at a steady rate', async () => {
    // The detect loop's shape: the last hour, ending now, soon after the reference completed.
    for (const now of [T0 + 560 * SEC, T0 + 900 * SEC, T0 + 1200 * SEC]) {
      const d = await detectDrift(store, { model, from: now - HOUR, to: now, config: config(), now });
      expect(d.quality.volume.drop).toBe(false);
      expect(d.quality.volume.ratio).toBeGreaterThan(0.95);
      expect(d.quality.volume.ratio).toBeLessThan(1.05);
    }
  });

  it('flags a real drop of 90%', async () => {
    const now = T0 + 1200 * SEC + 30 * 60 * SEC;
    const d = await detectDrift(store, { model, from: now - 30 * 60 * SEC, to: now, config: config(), now });
    expect(d.current.rows).toBe(180);
    // Reference: 500 rows over 499 s.
    expect(d.quality.volume.expected_rows).toBeCloseTo((500 / 499) * 1800, 6);
    expect(d.quality.volume.ratio).toBeCloseTo(180 / ((500 / 499) * 1800), 9);
    expect(d.quality.volume.drop).toBe(true);
  });
});
