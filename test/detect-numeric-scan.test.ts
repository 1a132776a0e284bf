// Detection can read the window's numeric features with one scan of each `Map` column
// (src/drift/exact/traffic-read.ts, `numericRead: 'scan'`) instead of one key lookup per feature. The scan must give exactly the values
// the lookups give — per row, whatever the key order, absent keys (missing), a key held twice (its first value),
// NaN and ±Inf, outputs in their own map, a filter — and detection the same report either way.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/index.js';
import { createReference, detectDrift, storedFeatureSpecs, trafficSample } from '../src/drift/index.js';
import { readNumeric } from '../src/drift/exact/read.js';
import { readTrafficNumeric } from '../src/drift/exact/traffic-read.js';
import { Tables, type ClickHouseStore, type PredictionRow, type Store } from '../src/store/index.js';
import type { StoredFeature } from '../src/drift/stats/sample.js';
import { countingStore, type StatementLog } from './support/counting-store.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';

const MODEL = 'numeric_scan';
const T0 = Date.UTC(2026, 3, 1);
const HOUR = 3_600_000;
const ROWS = 600;
const config = configSchema.parse({});

let base: ClickHouseStore;
let store: Store;
let log: StatementLog;
let cleanup: () => Promise<void>;
let refId: string;

/** Hour `h`: numeric a, b, c (c shifted after hour 0), categorical k, numeric output score; key orders vary. */
function hourRows(h: number): PredictionRow[] {
  const u = mulberry32(77 + h);
  const g = gaussian(u);
  return Array.from({ length: ROWS }, (_, i): PredictionRow => {
    const a = g();
    const b = Math.floor(u() * 7);
    const c = g() * 3 + (h > 0 ? 0.5 : 0);
    // Most rows in one key order, some reversed, some rotated, some lacking a key.
    const num: Record<string, number> =
      i % 7 === 3 ? { c, b, a } : i % 11 === 5 ? { b, c, a } : i % 13 === 0 ? { a, c } : { a, b, c };
    // A present NaN (hour 2 only: it makes detection discover the window's keys, see below).
    if (h === 2 && i % 17 === 4) num.a = Number.NaN;
    if (i % 19 === 6) num.c = i % 2 === 0 ? Infinity : -Infinity;
    return {
      model: MODEL,
      version: i % 3 === 0 ? 'v2' : 'v1',
      ts: T0 + h * HOUR + Math.floor((i * HOUR) / (ROWS + 1)),
      event_id: `h${h}-${i}`,
      request_id: `h${h}-${i}`,
      row: 0,
      features_num: num,
      features_cat: { k: `k${i % 4}` },
      outputs_num: i % 23 === 1 ? {} : { score: u() },
      outputs_cat: {},
    };
  });
}

const features: StoredFeature[] = [
  { name: 'a', kind: 'numeric' },
  { name: 'b', kind: 'numeric' },
  { name: 'c', kind: 'numeric' },
  { name: 'score', kind: 'numeric', output: true },
  { name: 'absent', kind: 'numeric' },
];

/**
 * The values' bit patterns (NaN, -0 and ±Inf compare exactly), sorted: two queries over several parts may
 * return the rows in different orders.
 */
function bits(x: Float64Array | undefined): string[] {
  if (x === undefined) return ['undefined'];
  const hex = Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex');
  return Array.from({ length: x.length }, (_, i) => hex.slice(16 * i, 16 * i + 16)).sort();
}

beforeAll(async () => {
  ({ store: base, cleanup } = await openTestStore());
  ({ store, log } = countingStore(base));
  await base.insertPredictions(hourRows(0));
  refId = (await createReference(base, { model: MODEL, from: T0, to: T0 + HOUR })).id;
  await base.insertPredictions(hourRows(1));
  // Hour 2 (read below, not detected: such rows make detection discover the window's keys and compare by
  // lookup): a row holding a key twice (its first value counts), and a row with every key in another order
  // plus one key the reference lacks.
  await base.insertPredictions(hourRows(2));
  await base.command(
    `INSERT INTO ${Tables.predictions} (model, version, ts, event_id, request_id, row, features_num, features_cat, outputs_num, outputs_cat)
     VALUES ({m:String}, 'v1', fromUnixTimestamp64Milli({ts:Int64}, 'UTC'), 'dup', 'dup', 0,
             map('a', 1.5, 'a', 2.5, 'b', 3, 'c', -0.0), map('k', 'k1'), map('score', 0.5), map()),
            ({m:String}, 'v1', fromUnixTimestamp64Milli({ts2:Int64}, 'UTC'), 'odd', 'odd', 0,
             map('zz', 9, 'c', 4.25, 'b', 2, 'a', -7), map('k', 'k2'), map('score', 0.25), map())`,
    { params: { m: MODEL, ts: T0 + 2 * HOUR + 5, ts2: T0 + 2 * HOUR + 9 } },
  );
}, 120_000);

afterAll(async () => {
  await cleanup();
});

describe('one scan of the maps against one lookup per feature', () => {
  const specs = storedFeatureSpecs(features);

  for (const filter of [undefined, { version: 'v2' }, { feature: 'k', value: 'k1' }] as const) {
    it(`the same values (${filter === undefined ? 'whole window' : JSON.stringify(filter)})`, async () => {
      const window = { model: MODEL, fromMs: T0 + HOUR, toMs: T0 + 3 * HOUR, filter };
      const scan = await readTrafficNumeric(base, window, specs);
      for (const lookup of ['orNull', 'contains'] as const) {
        const sample = trafficSample({ ...window, features, paramPrefix: 'c_', lookup });
        const looked = await readNumeric(base, sample, specs);
        expect(scan.rows, lookup).toBe(looked.rows);
        expect(scan.rows).toBeGreaterThan(0);
        for (const s of specs) {
          expect(bits(scan.values.get(s.column)), `${lookup} ${s.column}`).toEqual(bits(looked.values.get(s.column)));
        }
      }
      if (filter === undefined) {
        // The awkward rows are in it: the duplicate's first value, the reordered row, absent keys as NaN.
        const a = scan.values.get('a')!;
        expect([...a].filter((v) => v === 1.5 || v === -7)).toEqual([1.5, -7]);
        expect(scan.values.get('absent')!.every((v) => Number.isNaN(v))).toBe(true);
        expect(scan.values.get('a')!.some((v) => Number.isNaN(v))).toBe(true);
        expect(
          [...scan.values.get('c')!].filter((v) => !Number.isFinite(v) && !Number.isNaN(v)).length,
        ).toBeGreaterThan(0);
      }
    }, 60_000);
  }

  for (const filter of [undefined, { version: 'v2' }] as const) {
    it(`key lookups by position in rows of a known key order give the same values (${filter === undefined ? 'whole window' : JSON.stringify(filter)})`, async () => {
      // The orders: the common one, another one (the reversed rows), a partial one, and one with a key the
      // features lack; the window holds rows of each order and rows of none (absent keys, a key twice, an extra key).
      const window = { model: MODEL, fromMs: T0 + HOUR, toMs: T0 + 3 * HOUR, filter };
      const looked = await readNumeric(
        base,
        trafficSample({ ...window, features, paramPrefix: 'c_', lookup: 'orNull' }),
        specs,
      );
      expect(looked.rows).toBeGreaterThan(0);
      const orders = [
        { features_num: ['a', 'b', 'c'], outputs_num: ['score'] },
        { features_num: ['c', 'b', 'a'], outputs_num: [] },
        { features_num: ['a', 'c'] },
        { features_num: ['zz', 'c', 'b', 'a'], outputs_num: ['score', 'other'] },
      ];
      for (const keyOrders of orders) {
        const sample = trafficSample({ ...window, features, paramPrefix: 'c_', lookup: 'orNull', keyOrders });
        expect(sample.sql).toContain('indexOf(mapKeys(features_num)');
        const aligned = await readNumeric(base, sample, specs);
        expect(aligned.rows).toBe(looked.rows);
        for (const s of specs) {
          expect(bits(aligned.values.get(s.column)), `${JSON.stringify(keyOrders)} ${s.column}`).toEqual(
            bits(looked.values.get(s.column)),
          );
        }
      }
    }, 60_000);
  }

  /** Detection of the hour after T0 against the stored reference. */
  const windowDetection = () => ({
    model: MODEL,
    from: T0 + HOUR,
    to: T0 + 2 * HOUR,
    reference: { id: refId },
    config,
    now: T0 + 5 * HOUR,
  });

  it('detection reads by position in the window key order (the default) and reports as with lookups', async () => {
    const opts = windowDetection();
    log.reset();
    const aligned = await detectDrift(store, opts);
    const labels = log.entries.map((e) => e.label);
    expect(labels).toContain('window key order');
    // Its parameters are SQL literals (the embedded engine runs a statement with bound ones after the count).
    expect(log.entries.find((e) => e.label === 'window key order')?.sql).not.toMatch(/\{[A-Za-z_]\w*:/);
    expect(log.entries.some((e) => e.label === 'drift read' && e.sql.includes('indexOf(mapKeys('))).toBe(true);
    log.reset();
    const lookup = await detectDrift(store, { ...opts, numericRead: 'lookup' });
    expect(log.entries.some((e) => e.sql.includes('indexOf(mapKeys('))).toBe(false);
    expect(aligned).toEqual(lookup);
    expect(aligned.current.rows).toBe(ROWS);
  }, 120_000);

  it('an empty window reads no rows', async () => {
    const scan = await readTrafficNumeric(base, { model: MODEL, fromMs: T0 + 9 * HOUR, toMs: T0 + 10 * HOUR }, specs);
    expect(scan.rows).toBe(0);
    expect(scan.values.get('a')?.length).toBe(0);
  });

  it('detection gives the same report with the scan as with lookups', async () => {
    const opts = windowDetection();
    log.reset();
    const auto = await detectDrift(store, { ...opts, numericRead: 'scan' });
    expect(log.entries.map((e) => e.label)).toContain('drift key order');
    expect(log.entries.map((e) => e.label)).not.toContain('discover features');
    log.reset();
    const lookup = await detectDrift(store, { ...opts, numericRead: 'lookup' });
    expect(log.entries.map((e) => e.label)).not.toContain('drift key order');
    expect(auto).toEqual(lookup);
    expect(auto.current.rows).toBe(ROWS);
    // The window shifted c; a and b did not change distribution.
    expect(auto.features.find((f) => f.name === 'c')!.stats.ks!.statistic).toBeGreaterThan(0.05);
    const segmented = await detectDrift(store, { ...opts, segmentBy: 'version', numericRead: 'scan' });
    const segmentedLookup = await detectDrift(store, { ...opts, segmentBy: 'version', numericRead: 'lookup' });
    expect(segmented).toEqual(segmentedLookup);
  }, 120_000);
});
