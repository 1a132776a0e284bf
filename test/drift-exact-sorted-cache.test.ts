// The local cache of stored references' sorted values (src/drift/exact/sorted-cache.ts): a file is used only
// when it names the same reference, column and counts and its checksum matches; anything else is read from the
// store again (and rewritten). Detection with the cache (miss, then hit, then after damage) gives the same
// report as without it, and that report matches the SciPy values of the multi-feature fixture
// (test/fixtures/drift/expected_multi.json, made by make_fixtures.py).
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/index.js';
import { createReference, detectDrift } from '../src/drift/index.js';
import { lastSortedReadStats, readSortedReference } from '../src/drift/exact/index.js';
import {
  defaultSortedCacheDir,
  pruneSortedCache,
  readCachedSorted,
  sortedCacheFile,
  sortedChecksum,
  writeCachedSorted,
  type SortedCacheKey,
} from '../src/drift/exact/sorted-cache.js';
import type { ClickHouseStore, PredictionRow } from '../src/store/index.js';
import { driftFixtureDir, expectAbs, expectRel } from './support/report-files.js';
import { fixtureTrafficRows } from './support/drift-fixtures.js';
import { countingStore } from './support/counting-store.js';
import { openTestStore } from './support/store.js';

interface ExpectedFeature {
  name: string;
  kind: 'numeric' | 'categorical';
  ks?: { statistic: number; p_value: number };
  wasserstein?: number;
  psi: number;
  quality: Record<string, number | string[]>;
}

const expected = (
  JSON.parse(readFileSync(join(driftFixtureDir, 'expected_multi.json'), 'utf8')) as {
    cases: Array<{ name: string; reference_rows: number; current_rows: number; features: ExpectedFeature[] }>;
  }
).cases[0]!;
const file = (side: 'reference' | 'current'): string => join(driftFixtureDir, `${expected.name}_${side}.csv`);
const kinds = new Map(expected.features.map((f) => [f.name, f.kind]));
const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const MODEL = 'sorted_cache';
const config = configSchema.parse({});

function currentRows(): PredictionRow[] {
  return fixtureTrafficRows(file('current'), kinds, { model: MODEL, start: T0, idPrefix: 'cur' });
}

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let refId: string;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mw-sorted-cache-'));
  ({ store, cleanup } = await openTestStore());
  refId = (await createReference(store, { model: MODEL, file: file('reference') })).id;
  await store.insertPredictions(currentRows());
}, 120_000);

afterAll(async () => {
  await cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const key = (over: Partial<SortedCacheKey> = {}): SortedCacheKey => ({
  referenceId: 'ref-1',
  createdAt: '2026-01-01T00:00:00.000Z',
  column: 'x',
  n: 5,
  missing: 2,
  nonFinite: 1,
  ...over,
});

describe('cache files', () => {
  const values = Float64Array.from([-3.5, -0, 0, 1e-300, 7]);

  it('round-trips values bit for bit into shared memory, and rejects any other key or counts', async () => {
    const d = join(dir, 'files');
    expect(await readCachedSorted(d, key())).toBeNull();
    expect(await writeCachedSorted(d, key(), values)).toBe(true);
    const back = await readCachedSorted(d, key());
    expect(back).not.toBeNull();
    expect(back!.sorted.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(Object.is(back!.sorted[1], -0)).toBe(true);
    expect([...back!.sorted]).toEqual([...values]);
    expect([back!.n, back!.missing, back!.nonFinite]).toEqual([5, 2, 1]);
    // Same file name only for the same key; a key differing in anything but the name-giving parts is refused.
    for (const other of [{ missing: 3 }, { nonFinite: 0 }]) {
      expect(sortedCacheFile(d, key(other))).toBe(sortedCacheFile(d, key()));
      expect(await readCachedSorted(d, key(other)), JSON.stringify(other)).toBeNull();
    }
    expect(await readCachedSorted(d, key({ n: 4 }))).toBeNull();
    expect(await readCachedSorted(d, key({ createdAt: '2026-01-02T00:00:00.000Z' }))).toBeNull();
    expect(await readCachedSorted(d, key({ column: 'y' }))).toBeNull();
    // Values of another length are not written.
    expect(await writeCachedSorted(d, key({ column: 'z', n: 4 }), values)).toBe(false);
  });

  it('rejects a damaged or truncated file', async () => {
    const d = join(dir, 'damaged');
    await writeCachedSorted(d, key(), values);
    const path = sortedCacheFile(d, key());
    const bytes = readFileSync(path);
    bytes[bytes.length - 3]! ^= 0x10; // one bit of the last value
    writeFileSync(path, bytes);
    expect(await readCachedSorted(d, key())).toBeNull();
    await writeCachedSorted(d, key(), values);
    expect(await readCachedSorted(d, key())).not.toBeNull();
    truncateSync(path, statSync(path).size - 8);
    expect(await readCachedSorted(d, key())).toBeNull();
    expect(sortedChecksum(values)).not.toBe(sortedChecksum(Float64Array.from([-3.5, 0, 0, 1e-300, 7])));
    // A flipped bit in any 32-bit word (each of the checksum's four lanes, and the two words past the last
    // group of four) is caught.
    for (let word = 0; word < 2 * values.length; word++) {
      const flipped = Float64Array.from(values);
      const w = new Int32Array(flipped.buffer);
      w[word]! ^= 1 << (word % 31);
      expect(sortedChecksum(flipped), `word ${word}`).not.toBe(sortedChecksum(values));
    }
  });

  it('does not use a file of the earlier layout (MWSORT01), and rewrites it', async () => {
    const d = join(dir, 'layout-01');
    await writeCachedSorted(d, key(), values);
    const path = sortedCacheFile(d, key());
    const bytes = readFileSync(path);
    // The earlier layout: magic MWSORT01 and a two-lane FNV-1a checksum of the 32-bit words, as it was written.
    const w = new Int32Array(values.buffer, values.byteOffset, values.length * 2);
    let a = 0x811c9dc5;
    let b = 0x050c5d1f;
    for (let i = 0; i < w.length; i += 2) {
      a = Math.imul(a ^ w[i]!, 0x01000193);
      b = Math.imul(b ^ w[i + 1]!, 0x01000193);
    }
    bytes.write('MWSORT01', 0, 'latin1');
    bytes.writeUInt32LE((a ^ Math.imul(b, 0x5bd1e995)) >>> 0, 12);
    writeFileSync(path, bytes);
    expect(await readCachedSorted(d, key())).toBeNull();
    expect(await writeCachedSorted(d, key(), values)).toBe(true);
    expect(readFileSync(path).toString('latin1', 0, 8)).toBe('MWSORT02');
    expect(await readCachedSorted(d, key())).not.toBeNull();
  });

  it('prunes files not used for the idle time, and a read marks a file used', async () => {
    const d = join(dir, 'prune');
    await writeCachedSorted(d, key({ column: 'old' }), values);
    await writeCachedSorted(d, key({ column: 'used' }), values);
    const old = new Date(Date.now() - 10 * HOUR);
    for (const c of ['old', 'used']) utimesSync(sortedCacheFile(d, key({ column: c })), old, old);
    expect(await readCachedSorted(d, key({ column: 'used' }))).not.toBeNull();
    await pruneSortedCache(d, HOUR);
    expect(readdirSync(d)).toEqual([sortedCacheFile(d, key({ column: 'used' })).slice(d.length + 1)]);
  });

  it('defaults: MODELWATCH_REFERENCE_CACHE, then XDG_CACHE_HOME; 0 or off turns it off', () => {
    expect(defaultSortedCacheDir({ MODELWATCH_REFERENCE_CACHE: '/x/y' })).toBe('/x/y');
    expect(defaultSortedCacheDir({ MODELWATCH_REFERENCE_CACHE: '0' })).toBe(false);
    expect(defaultSortedCacheDir({ MODELWATCH_REFERENCE_CACHE: 'off' })).toBe(false);
    expect(defaultSortedCacheDir({ XDG_CACHE_HOME: '/c' })).toBe('/c/modelwatch/sorted-references');
  });
});

describe('readSortedReference and detection with the cache', () => {
  const numeric = expected.features.filter((f) => f.kind === 'numeric').length;

  it('a miss reads the store and writes every column; a hit reads none from the store; same values', async () => {
    const d = join(dir, 'reference');
    const cache = { dir: d, minValues: 1 };
    const fromStore = await readSortedReference(store, refId, { cache: { dir: false } });
    expect(lastSortedReadStats()).toEqual({ cacheHits: 0, storeReads: numeric, cacheWrites: 0 });
    const miss = await readSortedReference(store, refId, { cache });
    expect(await miss.cached).toBe(numeric);
    expect(lastSortedReadStats()).toEqual({ cacheHits: 0, storeReads: numeric, cacheWrites: numeric });
    const hit = await readSortedReference(store, refId, { cache });
    expect(hit.cached).toBeUndefined();
    expect(lastSortedReadStats()).toEqual({ cacheHits: numeric, storeReads: 0, cacheWrites: 0 });
    for (const f of fromStore.features) {
      const h = hit.features.find((x) => x.column === f.column)!;
      if (f.sorted === undefined) expect(h.sorted).toBeUndefined();
      else
        expect(Buffer.from(h.sorted!.buffer, h.sorted!.byteOffset, h.sorted!.byteLength)).toEqual(
          Buffer.from(f.sorted.buffer, f.sorted.byteOffset, f.sorted.byteLength),
        );
    }
    // Columns below minValues are never cached.
    await readSortedReference(store, refId, { cache: { dir: join(dir, 'small'), minValues: 1e9 } });
    expect(lastSortedReadStats()).toEqual({ cacheHits: 0, storeReads: numeric, cacheWrites: 0 });
  });

  it("onStoreReads comes from the cached files' headers, before their values are read", async () => {
    const d = join(dir, 'headers-first');
    const cache = { dir: d, minValues: 1 };
    const want = await readSortedReference(store, refId, { cache: { dir: false } });
    await (
      await readSortedReference(store, refId, { cache })
    ).cached;
    const files = readdirSync(d).filter((n) => n.endsWith('.f64'));
    expect(files.length).toBe(numeric);
    // A read of a file's values marks it used (mtime): old mtimes show whether any was read yet.
    const old = new Date(Date.now() - 10 * HOUR);
    for (const f of files) utimesSync(join(d, f), old, old);
    const seen: { columns: number; unread: number }[] = [];
    // Compared within a second: the file system may store the time with another precision.
    const isOld = (f: string): boolean => Math.abs(statSync(join(d, f)).mtimeMs - old.getTime()) < 1000;
    const onStoreReads = (columns: number): void => {
      const unread = files.filter(isOld).length;
      seen.push({ columns, unread });
    };
    const hit = await readSortedReference(store, refId, { cache, onStoreReads });
    expect(seen).toEqual([{ columns: 0, unread: numeric }]);
    expect(files.filter(isOld)).toEqual([]);
    // A file whose header is right but whose values are damaged: announced as cached, then read from the store.
    const bytes = readFileSync(join(d, files[0]!));
    bytes[bytes.length - 1]! ^= 0x01;
    writeFileSync(join(d, files[0]!), bytes);
    seen.length = 0;
    const damaged = await readSortedReference(store, refId, { cache, onStoreReads });
    expect(seen.map((x) => x.columns)).toEqual([0]);
    expect(lastSortedReadStats()).toEqual({ cacheHits: numeric - 1, storeReads: 1, cacheWrites: 0 });
    await damaged.cached;
    expect(lastSortedReadStats().cacheWrites).toBe(1);
    for (const r of [hit, damaged]) {
      for (const f of want.features) {
        const got = r.features.find((x) => x.column === f.column)!;
        expect(got.sorted === undefined ? undefined : [...got.sorted], f.column).toEqual(
          f.sorted === undefined ? undefined : [...f.sorted],
        );
      }
    }
    // Without a cache every numeric column is announced.
    seen.length = 0;
    await readSortedReference(store, refId, { cache: { dir: false }, onStoreReads });
    expect(seen.map((x) => x.columns)).toEqual([numeric]);
  });

  it('detection gives the same report without the cache, on a miss, on a hit and after a damaged file', async () => {
    const d = join(dir, 'detect');
    const run = (referenceCache: { dir: string | false; minValues?: number }) =>
      detectDrift(store, {
        model: MODEL,
        from: T0,
        to: T0 + HOUR,
        reference: { id: refId },
        config,
        now: T0 + 2 * HOUR,
        referenceCache,
      });
    const off = await run({ dir: false });
    const miss = await run({ dir: d, minValues: 1 });
    expect(lastSortedReadStats().cacheWrites).toBe(numeric);
    const hit = await run({ dir: d, minValues: 1 });
    expect(lastSortedReadStats()).toEqual({ cacheHits: numeric, storeReads: 0, cacheWrites: 0 });
    // Damage one file: that column alone is read from the store again and rewritten.
    const victim = readdirSync(d).find((n) => n.endsWith('.f64'))!;
    const bytes = readFileSync(join(d, victim));
    bytes[bytes.length - 1]! ^= 0x01;
    writeFileSync(join(d, victim), bytes);
    const damaged = await run({ dir: d, minValues: 1 });
    expect(lastSortedReadStats()).toEqual({ cacheHits: numeric - 1, storeReads: 1, cacheWrites: 1 });
    await run({ dir: d, minValues: 1 });
    expect(lastSortedReadStats()).toEqual({ cacheHits: numeric, storeReads: 0, cacheWrites: 0 });
    expect(miss).toEqual(off);
    expect(hit).toEqual(off);
    expect(damaged).toEqual(off);
    // And the report is SciPy's.
    expect(hit.current.rows).toBe(expected.current_rows);
    for (const c of expected.features) {
      const f = hit.features.find((x) => x.name === c.name)!;
      if (c.ks !== undefined) {
        expect(f.stats.ks?.statistic, c.name).toBe(c.ks.statistic);
        expectAbs(f.stats.ks?.p_value, c.ks.p_value, 1e-3, `${c.name} ks.p_value`);
      }
      if (c.wasserstein !== undefined) expectRel(f.stats.wasserstein, c.wasserstein, 1e-6, `${c.name} wasserstein`);
      expectRel(f.stats.psi, c.psi, 1e-6, `${c.name} psi`);
      const q = f.quality as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(c.quality)) expect(q[k], `${c.name} quality.${k}`).toEqual(v);
    }
  }, 120_000);

  it('reads the window with literal SQL, numeric features in one query, on a miss as on a hit', async () => {
    // A miss reads the sorted reference from the store alongside the window: the window's reads still carry
    // no bound parameter (the embedded engine runs such statements one at a time) and read every numeric
    // feature in one query, as on a hit; the reference's own reads are the only other engine reads.
    const d = join(dir, 'window-reads');
    const { store: counted, log } = countingStore(store);
    const run = () =>
      detectDrift(counted, {
        model: MODEL,
        from: T0,
        to: T0 + HOUR,
        reference: { id: refId },
        config,
        now: T0 + 2 * HOUR,
        referenceCache: { dir: d, minValues: 1 },
      });
    const reads = () => log.entries.filter((e) => e.label === 'drift read' || e.label === 'drift categories');
    const miss = await run();
    expect(lastSortedReadStats()).toEqual({ cacheHits: 0, storeReads: numeric, cacheWrites: numeric });
    expect(log.entries.filter((e) => e.label === 'read sorted reference').length).toBeGreaterThan(0);
    const onMiss = reads();
    log.reset();
    const hit = await run();
    expect(lastSortedReadStats()).toEqual({ cacheHits: numeric, storeReads: 0, cacheWrites: 0 });
    const onHit = reads();
    expect(log.entries.filter((e) => e.label === 'read sorted reference')).toEqual([]);
    for (const r of [onMiss, onHit]) {
      expect(r.map((e) => e.label).sort()).toEqual(['drift categories', 'drift read']);
      for (const e of r) expect(e.sql).not.toMatch(/\{c_[A-Za-z0-9_]*:/);
    }
    expect(hit).toEqual(miss);
  }, 120_000);
});
