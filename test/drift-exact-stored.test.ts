// References stored pre-sorted (migration 10, mw_reference_sorted) and the exact engine's in-memory entry points
// (src/drift/exact/index.ts). On the multi-feature fixture pair (9 numeric + 3 categorical columns with missing
// and non-finite values, NumPy/SciPy expectations in test/fixtures/drift/expected_multi.json from
// make_fixtures.py): the stored sorted values round-trip, detection of the current rows stored as traffic
// against the stored reference gives the report `modelwatch report` gives on the files and the SciPy values,
// inline and through worker threads, and references without sorted rows are sorted from their rows instead.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/index.js';
import { createReference, detectDrift, storedFeatureSpecs, trafficSample } from '../src/drift/index.js';
import { inlineParams } from '../src/drift/stats/sample.js';
import {
  SortPool,
  compareSampleToReference,
  compareToReference,
  readCurrentWindow,
  readSortedReference,
  type StoredSortedReference,
} from '../src/drift/exact/index.js';
import { runFileReport } from '../src/drift/report/run.js';
import type { DriftReport } from '../src/drift/stats/types.js';
import { Tables, type ClickHouseStore, type PredictionRow } from '../src/store/index.js';
import { countingStore } from './support/counting-store.js';
import { driftFixtureDir, expectAbs, expectRel } from './support/report-files.js';
import { fixtureNumber, fixtureTrafficRows } from './support/drift-fixtures.js';
import { openTestStore } from './support/store.js';

interface ExpectedFeature {
  name: string;
  kind: 'numeric' | 'categorical';
  quality: Record<string, number | string[]>;
  ks?: { statistic: number; p_value: number; method: 'exact' | 'asymp' };
  wasserstein?: number;
  psi: number;
  jensen_shannon: number;
  hellinger: number;
  chi_square?: { statistic: number; p_value: number };
  reference_bins: number[];
  current_bins: number[];
  method: string;
  threshold: number;
  drifted: boolean;
}

const expected = (
  JSON.parse(readFileSync(join(driftFixtureDir, 'expected_multi.json'), 'utf8')) as {
    cases: Array<{ name: string; reference_rows: number; current_rows: number; features: ExpectedFeature[] }>;
  }
).cases[0]!;
const file = (side: 'reference' | 'current'): string => join(driftFixtureDir, `${expected.name}_${side}.csv`);
const kinds = new Map(expected.features.map((f) => [f.name, f.kind]));

/** The file's cells by column (no quoting in these fixtures): '' missing, nan/inf/-inf as named. */
function columnsOf(side: 'reference' | 'current'): Map<string, string[]> {
  const lines = readFileSync(file(side), 'utf8')
    .split('\n')
    .filter((l) => l !== '');
  const header = lines.shift()!.split(',');
  const out = new Map(header.map((h) => [h, [] as string[]]));
  for (const line of lines) line.split(',').forEach((cell, j) => out.get(header[j]!)!.push(cell));
  return out;
}

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const MODEL = 'stored_sorted';

function currentRows(): PredictionRow[] {
  return fixtureTrafficRows(file('current'), kinds, { model: MODEL, start: T0, idPrefix: 'cur' });
}

function checkAgainstScipy(report: DriftReport, label: string): void {
  expect(report.reference.rows, label).toBe(expected.reference_rows);
  expect(report.current.rows, label).toBe(expected.current_rows);
  for (const c of expected.features) {
    const f = report.features.find((x) => x.name === c.name);
    const at = (what: string): string => `${label} ${c.name}: ${what}`;
    expect(f, at('present')).toBeDefined();
    expect(f!.method, at('method')).toBe(c.method);
    expect(f!.threshold, at('threshold')).toBe(c.threshold);
    expect(f!.drifted, at('drifted')).toBe(c.drifted);
    if (c.ks !== undefined) {
      expectAbs(f!.stats.ks?.statistic, c.ks.statistic, 1e-9, at('ks.statistic'));
      expectAbs(f!.stats.ks?.p_value, c.ks.p_value, 1e-3, at('ks.p_value'));
    }
    if (c.wasserstein !== undefined) expectRel(f!.stats.wasserstein, c.wasserstein, 1e-6, at('wasserstein'));
    if (c.chi_square !== undefined)
      expectRel(f!.stats.chi_square?.statistic, c.chi_square.statistic, 1e-6, at('chi_square'));
    expectRel(f!.stats.psi, c.psi, 1e-6, at('psi'));
    expectRel(f!.stats.jensen_shannon, c.jensen_shannon, 1e-6, at('jensen_shannon'));
    expectRel(f!.stats.hellinger, c.hellinger, 1e-6, at('hellinger'));
    const q = f!.quality as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(c.quality)) expect(q[k], at(`quality.${k}`)).toEqual(v);
    if (f!.distribution !== undefined) {
      expect(f!.distribution.reference, at('reference bins')).toEqual(c.reference_bins);
      expect(f!.distribution.current, at('current bins')).toEqual(c.current_bins);
    }
  }
}

/** Features by name without the per-bin vectors, for comparing two reports field by field. */
function bare(r: DriftReport): unknown {
  const features = r.features.map(({ distribution: _d, ...f }) => f).sort((a, b) => (a.name < b.name ? -1 : 1));
  return { features, dataset: r.dataset };
}

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let refId: string;
const config = configSchema.parse({});

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  const ref = await createReference(store, { model: MODEL, file: file('reference') }, { activate: true });
  refId = ref.id;
  await store.insertPredictions(currentRows());
}, 120_000);

afterAll(async () => {
  await cleanup();
});

describe('sorted reference storage', () => {
  it('stores one row per numeric feature whose values are the finite file values sorted, with their counts', async () => {
    const stored = await store.query<{ column: string; rows: number; n: number; missing: number; non_finite: number }>(
      `SELECT column, rows, n, missing, non_finite FROM ${Tables.referenceSorted} WHERE reference_id = {id:String} ORDER BY column`,
      { params: { id: refId } },
    );
    const numeric = expected.features.filter((f) => f.kind === 'numeric').map((f) => f.name);
    expect(stored.map((r) => r.column)).toEqual([...numeric].sort());
    const cols = columnsOf('reference');
    const ref = await readSortedReference(store, refId);
    expect(ref.rows).toBe(expected.reference_rows);
    for (const name of numeric) {
      const values = Float64Array.from(cols.get(name)!.map(fixtureNumber));
      const finite = values.filter((v) => Number.isFinite(v)).sort();
      const f = ref.features.find((x) => x.column === name)!;
      expect(f.sorted, name).toBeDefined();
      expect(f.sorted!.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect([...f.sorted!], name).toEqual([...finite]);
      const row = stored.find((r) => r.column === name)!;
      expect(Number(row.n), name).toBe(finite.length);
      expect(Number(row.missing), name).toBe(values.filter((v) => Number.isNaN(v)).length);
      expect(Number(row.non_finite), name).toBe(values.filter((v) => v === Infinity || v === -Infinity).length);
      expect(Number(row.rows), name).toBe(expected.reference_rows);
      expect(f.profile.n, name).toBe(finite.length);
    }
    // Categorical features carry their counts in the profile and no sorted values.
    for (const f of ref.features.filter((x) => x.kind === 'categorical')) {
      expect(f.sorted).toBeUndefined();
      expect(Object.values(f.profile.categories ?? {}).reduce((a, b) => a + b, 0)).toBe(f.profile.n);
    }
  });

  it('the stored std and edges equal the profile the reference keeps', async () => {
    const rows = await store.query<{ column: string; std: number; edges: number[] }>(
      `SELECT column, std, edges FROM ${Tables.referenceSorted} WHERE reference_id = {id:String}`,
      { params: { id: refId } },
    );
    const ref = await readSortedReference(store, refId);
    for (const r of rows) {
      const p = ref.features.find((f) => f.column === r.column)!.profile;
      expect(Number(r.std), r.column).toBe(p.std);
      expect(r.edges.map(Number), r.column).toEqual(p.edges);
    }
  });
});

describe('detection against the stored sorted reference', () => {
  it('gives the report modelwatch report gives on the same files, and the SciPy values', async () => {
    const d = await detectDrift(store, {
      model: MODEL,
      from: T0,
      to: T0 + HOUR,
      reference: { id: refId },
      config,
      now: T0 + 2 * HOUR,
    });
    checkAgainstScipy(d, 'detection');
    const files = await runFileReport({ reference: file('reference'), current: file('current'), store });
    checkAgainstScipy(files.report, 'report');
    expect(bare(d)).toEqual(bare(files.report));
  }, 120_000);

  it('a window with a feature the reference lacks reports it too, and every other feature as without it', async () => {
    // The same rows an hour later, each with one more numeric input the reference never had.
    const later = currentRows().map((r, i) => ({
      ...r,
      ts: r.ts + HOUR,
      event_id: `later-${i}`,
      request_id: `later-${i}`,
      features_num: { ...r.features_num, zz_extra: i % 7 },
    }));
    await store.insertPredictions(later);
    const opts = { model: MODEL, reference: { id: refId }, config, now: T0 + 3 * HOUR };
    const plain = await detectDrift(store, { ...opts, from: T0, to: T0 + HOUR });
    const extra = await detectDrift(store, { ...opts, from: T0 + HOUR, to: T0 + 2 * HOUR });
    const added = extra.features.find((f) => f.name === 'zz_extra');
    expect(added?.kind).toBe('numeric');
    // Every reference row lacks it; no current row does.
    expect(added?.quality.missing_reference).toBe(expected.reference_rows);
    expect(added?.quality.missing_current).toBe(0);
    const others = (r: DriftReport): unknown =>
      r.features.filter((f) => f.name !== 'zz_extra').map(({ distribution: _d, ...f }) => f);
    expect(others(extra)).toEqual(others(plain));
  }, 120_000);

  it('compareToReference gives the same report inline and through worker threads, and leaves the reference intact', async () => {
    const ref: StoredSortedReference = await readSortedReference(store, refId);
    const specs = storedFeatureSpecs(ref.info.features);
    const sample = trafficSample({
      model: MODEL,
      fromMs: T0,
      toMs: T0 + HOUR,
      features: ref.info.features,
      paramPrefix: 'c_',
    });
    const before = ref.features.map((f) => f.sorted?.slice());
    const inline = await compareToReference({
      reference: ref,
      current: await readCurrentWindow(store, sample, specs),
      features: specs,
      pool: 'inline',
    });
    const pool = new SortPool(2);
    try {
      const viaWorkers = await compareToReference({
        reference: ref,
        current: await readCurrentWindow(store, sample, specs),
        features: specs,
        pool,
        inlineMaxValues: 0,
      });
      expect(viaWorkers).toEqual(inline);
      // Group by group as read, two features per query, jobs in the workers: the same report.
      const streamed = await compareSampleToReference(store, ref, sample, specs, {
        pool,
        inlineMaxValues: 0,
        groupSize: 2,
      });
      expect(streamed).toEqual(inline);
      // The reference still being read (a promise), one key lookup per feature (`arrayElementOrNull`, absent
      // keys read as missing) and a read budget that shrinks every group after the first to one feature.
      const pending = await compareSampleToReference(
        store,
        readSortedReference(store, refId),
        trafficSample({
          model: MODEL,
          fromMs: T0,
          toMs: T0 + HOUR,
          features: ref.info.features,
          paramPrefix: 'c_',
          lookup: 'orNull',
        }),
        specs,
        { pool, inlineMaxValues: 0, readBudgetBytes: 1 },
      );
      expect(pending).toEqual(inline);
      // A row count known before the first read sizes the first group too: with a budget of three features'
      // values, every read holds three numeric features (without the count, the first would hold all of them).
      const { store: logged, log } = countingStore(store);
      const rows = expected.current_rows;
      const sized = await compareSampleToReference(logged, ref, sample, specs, {
        pool,
        inlineMaxValues: 0,
        groupSize: 20,
        expectedRows: rows,
        readBudgetBytes: 3 * 8 * rows,
      });
      expect(sized).toEqual(inline);
      const numeric = specs.filter((s) => s.kind === 'numeric').length;
      expect(numeric).toBeGreaterThan(3);
      expect(log.entries.filter((e) => e.label === 'drift read')).toHaveLength(Math.ceil(numeric / 3));
      // Reading ahead (two groups at once) from a sample with its parameters inlined (no bound parameter, so the
      // embedded engine runs the reads at once): the same report, and the category counts are read along with
      // the first two groups, before the first is in and the third read starts (without reading ahead, they are
      // read last).
      const inlined = inlineParams(sample);
      expect(inlined.params).toEqual({});
      const { store: ahead, log: aheadLog } = countingStore(store);
      const readAhead = await compareSampleToReference(ahead, ref, inlined, specs, {
        pool,
        inlineMaxValues: 0,
        groupSize: 2,
        readAhead: 1,
      });
      expect(readAhead).toEqual(inline);
      const labels = aheadLog.entries.map((e) => e.label);
      expect(labels.filter((l) => l === 'drift read')).toHaveLength(Math.ceil(numeric / 2));
      expect(Math.ceil(numeric / 2)).toBeGreaterThan(2);
      expect(labels.indexOf('drift categories')).toBe(2);
      expect(labels.slice(0, 2)).toEqual(['drift read', 'drift read']);
      const { store: serial, log: serialLog } = countingStore(store);
      await compareSampleToReference(serial, ref, inlined, specs, { pool, inlineMaxValues: 0, groupSize: 2 });
      expect(serialLog.entries.map((e) => e.label).indexOf('drift categories')).toBe(Math.ceil(numeric / 2));
      // A reference that fails to read fails the comparison with its own error.
      await expect(
        compareSampleToReference(store, readSortedReference(store, 'no-such-reference'), sample, specs, { pool }),
      ).rejects.toMatchObject({ code: 'not_found' });
    } finally {
      await pool.close();
    }
    checkAgainstScipy(inline, 'compareToReference');
    ref.features.forEach((f, i) => {
      if (f.sorted !== undefined) expect([...f.sorted], f.name).toEqual([...before[i]!]);
    });
  }, 120_000);

  it('inlined parameters are the bound values as literals: strings with quotes and backslashes, integers; others stay bound', async () => {
    const odd = "it's a \\ back\\'slash {x:String} and a\nnewline";
    const sample = inlineParams({
      sql: 'SELECT {a:String} AS a, {b:Int64} AS b, {c:Array(String)} AS c, {d:UInt32} AS d',
      params: { a: odd, b: -5, c: ['x', "y'"], d: 7 },
    });
    expect(sample.sql).not.toMatch(/\{[abd]:/);
    expect(sample.params).toEqual({ c: ['x', "y'"] });
    const [row] = await store.query<{ a: string; b: number | string; c: string[]; d: number }>(sample.sql, {
      params: sample.params,
    });
    expect(row).toEqual({ a: odd, b: -5, c: ['x', "y'"], d: 7 });
    const nul = inlineParams({ sql: 'SELECT {a:String} AS a', params: { a: 'x\0y' } });
    expect(nul.params).toEqual({ a: 'x\0y' });
    expect(await store.query<{ a: string }>(nul.sql, { params: nul.params })).toEqual([{ a: 'x\0y' }]);
  });

  it('a reference without sorted rows (stored before migration 10) is sorted from its rows: same values, same report', async () => {
    const stored = await readSortedReference(store, refId);
    await store.command(`DELETE FROM ${Tables.referenceSorted} WHERE reference_id = {id:String}`, {
      params: { id: refId },
    });
    const left = await store.query<{ n: number }>(
      `SELECT count() AS n FROM ${Tables.referenceSorted} WHERE reference_id = {id:String}`,
      { params: { id: refId } },
    );
    expect(Number(left[0]?.n)).toBe(0);
    const fromRows = await readSortedReference(store, refId);
    fromRows.features.forEach((f, i) => {
      const s = stored.features[i]!;
      expect(f.column).toBe(s.column);
      if (s.sorted === undefined) expect(f.sorted).toBeUndefined();
      else expect([...f.sorted!], f.name).toEqual([...s.sorted]);
    });
    const d = await detectDrift(store, {
      model: MODEL,
      from: T0,
      to: T0 + HOUR,
      reference: { id: refId },
      config,
      now: T0 + 2 * HOUR,
    });
    checkAgainstScipy(d, 'legacy detection');
  }, 120_000);
});
