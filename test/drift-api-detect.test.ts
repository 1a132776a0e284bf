import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '../src/api/index.js';
import { configSchema, type Config } from '../src/config/index.js';
import {
  computeDrift,
  createReference,
  detectDrift,
  getReference,
  storedFeatureSpecs,
  trafficSample,
  type DriftDetection,
  type StoredFeature,
} from '../src/drift/index.js';
import type { ClickHouseStore, PredictionRow } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import { loadOracleCases, readOracleSample, driftFixtureDir } from './support/drift-fixtures.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';
import { join } from 'node:path';

const HOUR = 3_600_000;
// Traffic starts three hours ago so the default reference (first hour) is complete and the current
// window (the last hour) contains "now", when the quarantine rows are written.
const NOW = Date.now();
const T0 = NOW - 3 * HOUR;
const CUR_FROM = NOW - HOUR;
const CUR_TO = NOW + 60_000;

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let api: RunningApi;

function config(extra: Record<string, unknown> = {}): Pick<Config, 'detect' | 'models'> {
  return configSchema.parse(extra);
}

function rowsFor(
  model: string,
  n: number,
  start: number,
  span: number,
  seed: number,
  shiftV2: number,
  v2Share: number,
): PredictionRow[] {
  const u = mulberry32(seed);
  const g = gaussian(u);
  const countries = ['us', 'de', 'fr'];
  return Array.from({ length: n }, (_, i) => {
    const v2 = u() < v2Share;
    const age = 40 + 10 * g() + (v2 ? shiftV2 : 0);
    return {
      model,
      version: v2 ? 'v2' : 'v1',
      ts: start + Math.floor((i * span) / n),
      event_id: `${model}-${seed}-${i}`,
      request_id: `${model}-${seed}-${i}`,
      row: 0,
      features_num: { age },
      features_cat: { country: countries[Math.floor(u() * 3)] ?? 'us' },
      outputs_num: { score: 1 / (1 + Math.exp(-(age - 40) / 10)) },
      outputs_cat: {},
    };
  });
}

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  // m1: 1500 reference rows in the first hour; 300 rows in the last hour, half v2 with age shifted +15.
  await store.insertPredictions(rowsFor('m1', 1500, T0, HOUR, 1, 0, 0));
  await store.insertPredictions(rowsFor('m1', 600, CUR_FROM, HOUR, 2, 15, 0.5));
  await store.insertQuarantine(
    [1, 2, 3].map((i) => ({
      event_id: `q${i}`,
      request_id: `q${i}`,
      model: 'm1',
      source: 'rest',
      origin: `inprocess/${i}`,
      code: i === 3 ? 'decode_invalid' : 'bad_request',
      field: 'inputs',
      reason: 'shape mismatch',
      payload: '',
    })),
  );
  api = await startApi(apiTestContext(store));
});

afterAll(async () => {
  await api?.stop();
  await cleanup();
});

describe('detectDrift over stored traffic', () => {
  let first: DriftDetection;

  it('defaults to the first hour of traffic, stores it as the reference, and reports feature and prediction drift', async () => {
    expect(await getReference(store, { model: 'm1' })).toBeNull();
    first = await detectDrift(store, { model: 'm1', from: CUR_FROM, to: CUR_TO, config: config(), now: NOW });
    const stored = await getReference(store, { model: 'm1' });
    expect(stored).not.toBeNull();
    expect(stored!.rows).toBe(1500);
    expect(stored!.source).toBe('traffic');
    expect(Date.parse(stored!.from!)).toBe(T0);
    expect(Date.parse(stored!.to!)).toBe(T0 + HOUR);
    const ageProfile = stored!.profile.features.find((f) => f.name === 'age')!;
    expect(ageProfile.edges).toHaveLength(9);
    expect(ageProfile.bins!.reduce((s, b) => s + b, 0)).toBe(1500);
    const countries = stored!.profile.features.find((f) => f.name === 'country')!.categories!;
    expect(Object.keys(countries).sort()).toEqual(['de', 'fr', 'us']);
    expect(Object.values(countries).reduce((s, n) => s + n, 0)).toBe(1500);

    expect(first.reference).toMatchObject({ rows: 1500, id: stored!.id, source: 'traffic' });
    expect(first.current.rows).toBe(600);
    const byName = new Map(first.features.map((f) => [`${f.output === true ? 'out:' : ''}${f.name}`, f]));
    expect([...byName.keys()]).toEqual(['age', 'country', 'out:score']);
    const age = byName.get('age')!;
    expect(age).toMatchObject({ kind: 'numeric', method: 'wasserstein_norm', threshold: 0.1, drifted: true });
    expect(age.stats.ks?.p_value).toBeLessThan(1e-6);
    const country = byName.get('country')!;
    expect(country).toMatchObject({ kind: 'categorical', method: 'jensen_shannon', drifted: false });
    expect(country.quality.unseen_categories).toEqual([]);
    const score = byName.get('out:score')!;
    expect(score.output).toBe(true);
    expect(score.drifted).toBe(true);
    // outputs do not vote: 1 of 2 input features drifted
    expect(first.dataset).toMatchObject({ features: 2, drifted_features: 1, share: 0.5, drifted: true });
    expect(first.quality.quarantined).toBe(3);
    expect(first.quality.quarantined_by_code).toEqual({ bad_request: 2, decode_invalid: 1 });
    // 600 rows in the elapsed hour of the window against the reference's real rate: 1500 rows from its first
    // row to its last (T0 + floor(1499 h / 1500)).
    expect(first.quality.volume.ratio).toBeCloseTo(600 / ((1500 / Math.floor((1499 * HOUR) / 1500)) * HOUR), 9);
    expect(first.quality.volume.drop).toBe(true);
  });

  it('reuses the stored reference and equals a direct comparison of the two traffic windows', async () => {
    const again = await detectDrift(store, { model: 'm1', from: CUR_FROM, to: CUR_TO, config: config(), now: NOW });
    expect(again.reference.id).toBe(first.reference.id);
    const features: StoredFeature[] = [
      { name: 'age', kind: 'numeric' },
      { name: 'country', kind: 'categorical' },
      { name: 'score', kind: 'numeric', output: true },
    ];
    const direct = await computeDrift(store, {
      reference: trafficSample({ model: 'm1', fromMs: T0, toMs: T0 + HOUR, features, paramPrefix: 'r_' }),
      current: trafficSample({ model: 'm1', fromMs: CUR_FROM, toMs: CUR_TO, features, paramPrefix: 'c_' }),
      features: storedFeatureSpecs(features),
    });
    expect(again.features).toEqual(direct.features);
    expect(again.dataset).toEqual(direct.dataset);
    // one numeric feature per comparison query gives the same numbers as one query for all
    const split = await computeDrift(store, {
      reference: trafficSample({ model: 'm1', fromMs: T0, toMs: T0 + HOUR, features, paramPrefix: 'r_' }),
      current: trafficSample({ model: 'm1', fromMs: CUR_FROM, toMs: CUR_TO, features, paramPrefix: 'c_' }),
      features: storedFeatureSpecs(features),
      numericFeaturesPerPass: 1,
    });
    expect(split).toEqual(direct);
  });

  it('reports drift per model version', async () => {
    const r = await detectDrift(store, {
      model: 'm1',
      from: CUR_FROM,
      to: CUR_TO,
      now: NOW,
      segmentBy: 'version',
      config: config({ models: { m1: { drift: { features: { age: { method: 'ks' } } } } } }),
    });
    const segs = new Map(r.segments!.map((s) => [s.value, s]));
    expect([...segs.keys()].sort()).toEqual(['v1', 'v2']);
    const ageOf = (v: string) => segs.get(v)!.report.features.find((f) => f.name === 'age')!;
    // ~300 rows per segment: the KS test (not wasserstein_norm's fixed 0.1) separates noise from the shift
    expect(ageOf('v1').method).toBe('ks');
    expect(ageOf('v1').drifted).toBe(false);
    expect(ageOf('v2').drifted).toBe(true);
    expect(segs.get('v1')!.report.current.rows + segs.get('v2')!.report.current.rows).toBe(600);
  });

  it('reports drift per value of a categorical feature', async () => {
    const r = await detectDrift(store, {
      model: 'm1',
      from: CUR_FROM,
      to: CUR_TO,
      config: config(),
      now: NOW,
      segmentBy: { feature: 'country' },
    });
    expect(r.segments!.map((s) => s.value).sort()).toEqual(['de', 'fr', 'us']);
    for (const s of r.segments!) {
      expect(s).toMatchObject({ by: 'feature', feature: 'country' });
      // inside a segment the segmenting feature has a single category
      const country = s.report.features.find((f) => f.name === 'country')!;
      expect(country.distribution?.current.filter((n) => n > 0)).toHaveLength(1);
    }
    expect(r.segments!.reduce((n, s) => n + s.report.current.rows, 0)).toBe(600);
  });

  it('applies per-feature overrides and Benjamini–Hochberg', async () => {
    const r = await detectDrift(store, {
      model: 'm1',
      from: CUR_FROM,
      to: CUR_TO,
      now: NOW,
      config: config({
        detect: { fdr: true, datasetShare: 0.9 },
        models: {
          m1: { drift: { default: { method: 'psi', threshold: 10 }, features: { country: { method: 'chi_square' } } } },
        },
      }),
    });
    const age = r.features.find((f) => f.name === 'age')!;
    expect(age.method).toBe('psi');
    expect(age.threshold).toBe(10);
    expect(age.score).toBe(age.stats.psi);
    expect(age.drifted).toBe(false);
    const country = r.features.find((f) => f.name === 'country')!;
    expect(country.method).toBe('chi_square');
    expect(country.threshold).toBe(0.05);
    // the only p-value feature: BH with m = 1 leaves it unchanged
    expect(country.p_value_adjusted).toBe(country.stats.chi_square!.p_value);
    expect(r.dataset.share_threshold).toBe(0.9);
    expect(r.dataset.drifted).toBe(false);
  });

  it('rejects a method that does not apply to a categorical feature', async () => {
    await expect(
      detectDrift(store, {
        model: 'm1',
        from: CUR_FROM,
        to: CUR_TO,
        now: NOW,
        config: config({ models: { m1: { drift: { features: { country: { method: 'ks' } } } } } }),
      }),
    ).rejects.toMatchObject({ code: 'config_invalid', field: 'drift.features.country.method' });
  });
});

describe('feature names that look like internal aliases', () => {
  it('reads features named c0, c1, side and rows as themselves', async () => {
    const u = mulberry32(7);
    const mk = (start: number, shift: number): PredictionRow[] =>
      Array.from({ length: 400 }, (_, i) => {
        const a = u() * 10 + shift;
        const b = u() * 3;
        const cat = ['p', 'q', 'r'][Math.floor(u() * 3)] ?? 'p';
        return {
          model: 'alias',
          version: '',
          ts: start + i,
          event_id: `alias-${start}-${i}`,
          request_id: `alias-${start}-${i}`,
          row: 0,
          features_num: { side: a, plain_a: a, c1: b, plain_b: b, rows: b + 1 },
          features_cat: { c0: cat, plain_cat: cat },
          outputs_num: {},
          outputs_cat: {},
        };
      });
    await store.insertPredictions([...mk(T0 + 10 * HOUR, 0), ...mk(T0 + 11 * HOUR, 1)]);
    const r = await detectDrift(store, {
      model: 'alias',
      from: T0 + 11 * HOUR,
      to: T0 + 12 * HOUR,
      reference: { from: T0 + 10 * HOUR, to: T0 + 11 * HOUR },
      config: config(),
      now: NOW,
    });
    const f = (name: string) => r.features.find((x) => x.name === name)!;
    expect(f('side').stats).toEqual(f('plain_a').stats);
    expect(f('side').drifted).toBe(true);
    expect(f('c1').stats).toEqual(f('plain_b').stats);
    expect(f('c0').stats).toEqual(f('plain_cat').stats);
    expect(f('c0').kind).toBe('categorical');
    expect(f('rows').stats.wasserstein).toBeCloseTo(f('c1').stats.wasserstein!, 9);
    // and through a stored reference (its bin counts are computed by a separate query)
    const ref = await createReference(store, { model: 'alias', from: T0 + 10 * HOUR, to: T0 + 11 * HOUR });
    const side = ref.profile.features.find((p) => p.name === 'side')!;
    const plain = ref.profile.features.find((p) => p.name === 'plain_a')!;
    expect(side.bins).toEqual(plain.bins);
    expect(side.bins!.reduce((s, n) => s + n, 0)).toBe(400);
  });
});

describe('reference from a file', () => {
  it('stores a CSV reference and reproduces the SciPy oracle against stored traffic', async () => {
    const oracle = loadOracleCases().find((c) => c.name === 'normal_shift')!;
    const ref = await createReference(store, {
      model: 'fx',
      file: join(driftFixtureDir, 'normal_shift_reference.csv'),
      format: 'CSVWithNames',
    });
    expect(ref.rows).toBe(oracle.reference_rows);
    expect(ref.features).toEqual([{ name: 'x', kind: 'numeric' }]);
    expect((await getReference(store, { id: ref.id }))?.profile).toEqual(ref.profile);
    const cur = readOracleSample('normal_shift', 'current', 'numeric');
    await store.insertPredictions(
      cur.map((v, i): PredictionRow => ({
        model: 'fx',
        version: '',
        ts: CUR_FROM + i,
        event_id: `fx${i}`,
        request_id: `fx${i}`,
        row: 0,
        features_num: typeof v === 'number' ? { x: v } : {},
        features_cat: {},
        outputs_num: {},
        outputs_cat: {},
      })),
    );
    const r = await detectDrift(store, {
      model: 'fx',
      from: CUR_FROM,
      to: CUR_TO,
      reference: { id: ref.id },
      config: config(),
      now: NOW,
    });
    const f = r.features[0]!;
    expect(r.reference).toMatchObject({ id: ref.id, source: 'file', rows: oracle.reference_rows });
    expect(Math.abs(f.stats.ks!.statistic - oracle.ks!.statistic)).toBeLessThanOrEqual(1e-9);
    expect(Math.abs(f.stats.ks!.p_value - oracle.ks!.p_value)).toBeLessThanOrEqual(1e-3);
    expect(Math.abs(f.stats.wasserstein! - oracle.wasserstein!) / oracle.wasserstein!).toBeLessThan(1e-6);
    expect(f.distribution?.reference).toEqual(oracle.reference_bins);
    expect(f.distribution?.current).toEqual(oracle.current_bins);
    expect(r.quality.volume.expected_rows).toBeNull();
  });

  it('names a missing file and a missing column', async () => {
    await expect(
      createReference(store, { model: 'fx', file: '/nonexistent/ref.csv', format: 'CSVWithNames' }),
    ).rejects.toMatchObject({
      code: 'input_invalid',
      field: 'file',
    });
    await expect(
      createReference(store, {
        model: 'fx',
        file: join(driftFixtureDir, 'tiny_5_reference.csv'),
        format: 'CSVWithNames',
        columns: ['nope'],
      }),
    ).rejects.toMatchObject({ code: 'input_invalid', field: 'columns' });
  });
});

describe('GET /api/v1/models/{name}/drift', () => {
  it('returns the report JSON shape for a window against an explicit reference window', async () => {
    const q = new URLSearchParams({
      from: new Date(CUR_FROM).toISOString(),
      to: String(CUR_TO),
      reference_from: String(T0),
      reference_to: new Date(T0 + HOUR).toISOString(),
    });
    const res = await fetch(`${api.url}/api/v1/models/m1/drift?${q}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as DriftDetection;
    expect(body.reference).toMatchObject({ rows: 1500, source: 'traffic', from: new Date(T0).toISOString() });
    expect(body.current.rows).toBe(600);
    expect(body.features.map((f) => f.name)).toEqual(['age', 'country', 'score']);
    for (const f of body.features) {
      expect(Object.keys(f)).toEqual(
        expect.arrayContaining(['name', 'kind', 'method', 'score', 'threshold', 'drifted', 'stats', 'quality']),
      );
    }
    const st = body.features[0]!.stats;
    for (const v of [
      st.ks?.statistic,
      st.ks?.p_value,
      st.wasserstein,
      st.wasserstein_norm,
      st.psi,
      st.jensen_shannon,
      st.hellinger,
    ]) {
      expect(Number.isFinite(v)).toBe(true);
    }
    expect(body.dataset).toMatchObject({ features: 2, drifted_features: 1, share: 0.5, drifted: true });
  });

  it('segments by version on request', async () => {
    const q = new URLSearchParams({ from: String(CUR_FROM), to: String(CUR_TO), segment_by: 'version' });
    const res = await fetch(`${api.url}/api/v1/models/m1/drift?${q}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as DriftDetection;
    expect(body.segments?.map((s) => s.value).sort()).toEqual(['v1', 'v2']);
  });

  it('answers precise errors', async () => {
    const bad = async (path: string, status: number, field?: string): Promise<void> => {
      const res = await fetch(`${api.url}${path}`);
      expect(res.status, path).toBe(status);
      const body = (await res.json()) as { error: { code: string; field?: string } };
      if (field !== undefined) expect(body.error.field, path).toBe(field);
    };
    await bad(`/api/v1/models/m1/drift?reference_from=${T0}`, 400, 'reference_to');
    await bad(`/api/v1/models/m1/drift?from=yesterday`, 400, 'from');
    await bad(`/api/v1/models/m1/drift?segment_by=country`, 400, 'segment_by');
    await bad(`/api/v1/models/m1/drift?reference_id=nope`, 404, 'reference');
    await bad(`/api/v1/models/nobody/drift`, 404);
  });
});
