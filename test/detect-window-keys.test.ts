// Detection against a stored reference skips the discovery of the window's features (a read of every key of
// every row) when the window's key count proves that no row has a key outside the reference's features, and
// discovers them otherwise. Each window below is detected both ways (`discovery: 'auto'` and `'always'`, the
// latter reading every key as before): the detections must be identical, and the statements sent show which
// path ran.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/index.js';
import { createReference, detectDrift } from '../src/drift/index.js';
import type { DriftDetection } from '../src/drift/detect-drift.js';
import { Tables, type ClickHouseStore, type PredictionRow, type Store } from '../src/store/index.js';
import { countingStore, type StatementLog } from './support/counting-store.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';

const MODEL = 'window_keys';
const T0 = Date.UTC(2026, 2, 1);
const HOUR = 3_600_000;
const ROWS = 400;
const config = configSchema.parse({});

let base: ClickHouseStore;
let store: Store;
let log: StatementLog;
let cleanup: () => Promise<void>;
let refId: string;

/** One hour of rows (hour `h`): numeric a, b, categorical c, numeric output score; `edit` changes a row. */
function hourRows(h: number, edit: (row: PredictionRow, i: number) => void = () => undefined): PredictionRow[] {
  const u = mulberry32(1000 + h);
  const g = gaussian(u);
  return Array.from({ length: ROWS }, (_, i) => {
    const row: PredictionRow = {
      model: MODEL,
      version: 'v1',
      ts: T0 + h * HOUR + Math.floor((i * HOUR) / (ROWS + 1)),
      event_id: `h${h}-${i}`,
      request_id: `h${h}-${i}`,
      row: 0,
      features_num: { a: g() + (h > 0 ? 0.2 : 0), b: Math.floor(u() * 20) },
      features_cat: { c: `k${Math.floor(u() * 4)}` },
      outputs_num: { score: u() },
      outputs_cat: {},
    };
    // Some rows lack b: absent keys count as missing, in the reference as in every window.
    if (i % 9 === 0) delete row.features_num.b;
    edit(row, i);
    return row;
  });
}

/** Detection of hour `h` both ways; the statements of the `auto` run are left in `log`. */
async function bothWays(h: number): Promise<{ auto: DriftDetection; always: DriftDetection; labels: string[] }> {
  const opts = {
    model: MODEL,
    from: T0 + h * HOUR,
    to: T0 + (h + 1) * HOUR,
    reference: { id: refId },
    config,
    now: T0 + 24 * HOUR,
  };
  const always = await detectDrift(store, { ...opts, discovery: 'always' });
  log.reset();
  const auto = await detectDrift(store, opts);
  return { auto, always, labels: log.entries.map((e) => e.label) };
}

beforeAll(async () => {
  ({ store: base, cleanup } = await openTestStore());
  ({ store, log } = countingStore(base));
  await base.insertPredictions(hourRows(0));
  refId = (await createReference(base, { model: MODEL, from: T0, to: T0 + HOUR })).id;
}, 120_000);

afterAll(async () => {
  await cleanup();
});

describe('window features against a stored reference', () => {
  it('a window with the reference keys only (some absent) skips discovery and reports as with it', async () => {
    await base.insertPredictions(hourRows(1));
    const { auto, always, labels } = await bothWays(1);
    expect(labels).toContain('count window keys');
    expect(labels).not.toContain('discover features');
    expect(auto.features.map((f) => f.name)).toEqual(['a', 'b', 'c', 'score']);
    expect(auto.features.find((f) => f.name === 'b')?.quality.missing_current).toBe(Math.ceil(ROWS / 9));
    expect(auto).toEqual(always);
  }, 60_000);

  it('a window missing a reference feature in every row skips discovery and counts it missing', async () => {
    await base.insertPredictions(hourRows(2, (r) => delete r.features_num.a));
    const { auto, always, labels } = await bothWays(2);
    expect(labels).not.toContain('discover features');
    const a = auto.features.find((f) => f.name === 'a');
    expect(a?.quality.missing_current).toBe(ROWS);
    expect(a?.score).toBeNull();
    expect(auto).toEqual(always);
  }, 60_000);

  it('a window with a numeric input the reference lacks discovers it and reports it', async () => {
    await base.insertPredictions(hourRows(3, (r, i) => i % 50 === 7 && (r.features_num.zz_new = i)));
    const { auto, always, labels } = await bothWays(3);
    expect(labels).toContain('discover features');
    const zz = auto.features.find((f) => f.name === 'zz_new');
    expect(zz?.kind).toBe('numeric');
    expect(zz?.quality.missing_current).toBe(ROWS - ROWS / 50);
    expect(auto).toEqual(always);
  }, 60_000);

  it('present NaN values and one extra categorical output do not hide each other', async () => {
    await base.insertPredictions(
      hourRows(4, (r, i) => {
        if (i % 10 === 0) r.features_num.a = Number.NaN;
        if (i === 5) r.outputs_cat.label = 'yes';
      }),
    );
    const { auto, always, labels } = await bothWays(4);
    expect(labels).toContain('discover features');
    const label = auto.features.find((f) => f.name === 'label' && f.output === true);
    expect(label?.kind).toBe('categorical');
    expect(auto.features.find((f) => f.name === 'a')?.quality.missing_current).toBe(ROWS / 10);
    expect(auto).toEqual(always);
  }, 60_000);

  it('a key of a reference feature stored in the other map discovers, and adds no feature', async () => {
    await base.insertPredictions(hourRows(5, (r, i) => i === 3 && (r.features_cat.b = 'text')));
    const { auto, always, labels } = await bothWays(5);
    expect(labels).toContain('discover features');
    expect(auto.features.map((f) => f.name)).toEqual(['a', 'b', 'c', 'score']);
    expect(auto).toEqual(always);
  }, 60_000);

  it('a row holding one key twice discovers (its key count exceeds the features found)', async () => {
    await base.insertPredictions(hourRows(6));
    await base.command(
      `INSERT INTO ${Tables.predictions} (model, version, ts, event_id, request_id, row, features_num, features_cat, outputs_num, outputs_cat)
       VALUES ({m:String}, 'v1', fromUnixTimestamp64Milli({ts:Int64}, 'UTC'), 'dup', 'dup', 0,
               map('a', 1.5, 'a', 2.5, 'b', 3), map('c', 'k1'), map('score', 0.5), map())`,
      { params: { m: MODEL, ts: T0 + 6 * HOUR + 1 } },
    );
    const { auto, always, labels } = await bothWays(6);
    expect(labels).toContain('discover features');
    expect(auto.current.rows).toBe(ROWS + 1);
    expect(auto).toEqual(always);
  }, 60_000);

  it('an empty window skips discovery and reports as with it', async () => {
    const { auto, always, labels } = await bothWays(20);
    expect(labels).not.toContain('discover features');
    expect(auto.current.rows).toBe(0);
    expect(auto).toEqual(always);
  }, 60_000);
});
