/**
 * The exact drift engine's in-memory entry points (a stable contract: later changes only add).
 *
 * - {@link readSortedReference}: a stored reference as a {@link SortedReference} — its profile and, per numeric
 *   feature, every finite value sorted (read as stored at creation, one `Native` query per group of features;
 *   references stored before sorted storage existed are read from their rows and sorted once).
 * - {@link compareToReference}: the DESIGN §2 {@link DriftReport} of a current window held in memory against
 *   a {@link SortedReference}: the same report (methods, thresholds, stats, quality, distributions, dataset
 *   verdict) as `computeDrift` gives on the same rows. Small windows (below 200,000 values per feature with
 *   the reference) run inline on the calling thread with no worker start-up; larger ones run their radix
 *   sorts and merge passes in the process-wide pool of two worker threads (or the `pool` given).
 * - {@link readCurrentWindow}: a {@link CurrentWindow} from any ClickHouse sample (e.g. `trafficSample`).
 * - {@link compareSampleToReference}: the report of a ClickHouse sample against a {@link SortedReference}, each
 *   group of numeric features compared while the next is read (the same report as `compareToReference` over
 *   `readCurrentWindow`).
 *
 * A `SortedReference` is read-only for the engine and may be shared by concurrent comparisons; the arrays of
 * a `CurrentWindow` are consumed (sorted in place or transferred to a worker).
 */
import type { SqlPort, StoreSettings } from '../../store/port.js';
import type { Store } from '../../store/store.js';
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import { getReference, type ReferenceInfo } from '../reference.js';
import { referenceRowsSample, storedFeatureSpecs, type StoredFeature } from '../stats/sample.js';
import type { DriftReport, FeatureSpec, Sample } from '../stats/types.js';
import { compareToReference as compareInMemory, profileSampleExact } from './compare.js';
import { NUMERIC_GROUP, groupsOf, readCategorical, readNumeric, countRows } from './read.js';
import { readStoredSorted, sharedCopy, type StoredSortedFeature } from './stored.js';
import {
  defaultSortedCacheDir,
  pruneSortedCache,
  openCachedSorted,
  sortedCacheDefaults,
  writeCachedSorted,
  type SortedCacheKey,
  type SortedCacheOptions,
} from './sorted-cache.js';
import type { CompareOptions, CurrentWindow, SortedReference, SortedReferenceFeature } from './types.js';
import { stage } from './profile.js';

export type { CompareOptions, CurrentWindow, SortedReference, SortedReferenceFeature } from './types.js';
export { SortPool, sharedPool, warmSortPool, INLINE_MAX_VALUES } from './pool.js';
export { sortFloat64 } from './radix.js';
export { compareSamples, profileSampleExact, compareSampleToReference, groupWithin } from './compare.js';
export type { CompareSamplesOptions, ProfileOptions, CompareSampleToReferenceOptions } from './compare.js';
export { defaultSortedCacheDir, type SortedCacheOptions } from './sorted-cache.js';

/** A stored reference read for comparisons: the sorted data plus the stored record (methods, window, …). */
export interface StoredSortedReference extends SortedReference {
  id: string;
  /** The stored reference record (its `methods` feed `mergeOverrides`, its window the volume check). */
  info: ReferenceInfo;
  /**
   * Present when columns read from the store are being written to the local cache: settles (never rejects)
   * with the number of columns written. Await it before the process exits for the next run to find them.
   */
  cached?: Promise<number> | undefined;
}

/** Options of {@link readSortedReference}. */
export interface ReadSortedReferenceOptions {
  /**
   * Features to hold (the stored ones by default). Features the reference does not have are left out; the
   * comparison counts them as missing on every reference row.
   */
  features?: readonly StoredFeature[] | undefined;
  /** Numeric features read per query. @default 5 */
  groupSize?: number | undefined;
  /** ClickHouse settings of the reads. @default {} */
  settings?: StoreSettings | undefined;
  /** The reference's stored record when the caller has it already (saves reading it again). @default read */
  info?: ReferenceInfo | undefined;
  /**
   * The local cache of sorted values (see `sorted-cache.ts`): columns found there valid are not read from the
   * store; columns read from the store are written there. `{dir: false}` turns it off.
   * @default {dir: defaultSortedCacheDir(), minValues: 100000}
   */
  cache?: SortedCacheOptions | undefined;
  /**
   * Called once the local cache's file headers have been checked, before any read from the store or of the
   * cached values, with the number of numeric features to read from the store (0: the reference needs no
   * engine work). A cached file whose values then fail their checksum (a damaged file) is read from the store
   * too, without a second call. @default none
   */
  onStoreReads?: ((columns: number) => void) | undefined;
}

/** How the last {@link readSortedReference} of this process got its columns (benchmarks, tests). */
export interface SortedReadStats {
  /** Columns read from the local cache. */
  cacheHits: number;
  /** Columns read from the store. */
  storeReads: number;
  /** Columns written to the local cache. */
  cacheWrites: number;
}

let lastRead: SortedReadStats = { cacheHits: 0, storeReads: 0, cacheWrites: 0 };

/** See {@link SortedReadStats}. */
export function lastSortedReadStats(): SortedReadStats {
  return { ...lastRead };
}

/**
 * Reads stored reference `referenceId` as a {@link SortedReference} (see the module comment). Throws
 * `not_found` when there is no such reference.
 */
export async function readSortedReference(
  store: Store,
  referenceId: string,
  options: ReadSortedReferenceOptions = {},
): Promise<StoredSortedReference> {
  const info =
    options.info !== undefined && options.info.id === referenceId
      ? options.info
      : await getReference(store, { id: referenceId });
  if (info === null) {
    throw new ModelwatchError(ErrorCodes.notFound, `reference not found: ${referenceId}`, { field: 'reference' });
  }
  const wanted = new Set(storedFeatureSpecs(options.features ?? info.features).map((s) => s.column));
  const profiles = info.profile.features.filter((p) => wanted.has(p.column));
  const numericProfiles = profiles.filter((p) => p.kind === 'numeric' && p.n > 0);
  const numericColumns = numericProfiles.map((p) => p.column);
  const cacheDir = options.cache?.dir ?? defaultSortedCacheDir();
  const minValues = options.cache?.minValues ?? sortedCacheDefaults.minValues;
  const keyOf = (p: (typeof numericProfiles)[number]): SortedCacheKey => ({
    referenceId,
    createdAt: info.created_at,
    column: p.column,
    n: p.n,
    missing: p.missing,
    nonFinite: p.non_finite,
  });
  const cacheable = cacheDir === false ? [] : numericProfiles.filter((p) => p.n >= minValues);
  const sorted = new Map<string, StoredSortedFeature>();
  if (cacheDir !== false && cacheable.length > 0) {
    // Headers first: the caller learns how many columns the store must give before the values are read (a
    // detection starts its window's reads then; the values, about 8 MB per 1M rows, are read alongside them).
    const opened = await stage('open sorted reference in local cache', () =>
      Promise.all(cacheable.map((p) => openCachedSorted(cacheDir, keyOf(p)))),
    );
    // Loads started before the callback: every opened file is read (and closed) whatever the callback does.
    const loads = opened.map((f) => (f === null ? Promise.resolve(null) : f.load()));
    options.onStoreReads?.(numericColumns.length - opened.filter((f) => f !== null).length);
    await stage('read sorted reference from local cache', async () => {
      const found = await Promise.all(loads);
      cacheable.forEach((p, i) => {
        const f = found[i];
        if (f !== null && f !== undefined) sorted.set(p.column, f);
      });
    });
  } else options.onStoreReads?.(numericColumns.length);
  const hits = sorted.size;
  const fromStore = numericColumns.filter((c) => !sorted.has(c));
  if (fromStore.length > 0) {
    const read = await stage('read sorted reference', () =>
      readStoredSorted(store, referenceId, fromStore, {
        ...(options.groupSize !== undefined ? { groupSize: options.groupSize } : {}),
        settings: options.settings,
      }),
    );
    for (const [c, f] of read) sorted.set(c, f);
  }
  let cached: Promise<number> | undefined;
  lastRead = { cacheHits: hits, storeReads: fromStore.length, cacheWrites: 0 };
  if (cacheDir !== false) {
    // Columns just read from the store (with the stored counts of the profile) go to the cache for next time,
    // in the background: the comparison does not wait for the disk (see `cached`).
    const toWrite = cacheable.filter((p) => {
      const f = sorted.get(p.column);
      return (
        fromStore.includes(p.column) &&
        f !== undefined &&
        f.n === p.n &&
        f.missing === p.missing &&
        f.nonFinite === p.non_finite &&
        f.sorted.length === p.n
      );
    });
    if (toWrite.length > 0) {
      const stats = lastRead;
      cached = stage('write sorted reference to local cache', async () => {
        await pruneSortedCache(cacheDir, options.cache?.maxIdleMs ?? sortedCacheDefaults.maxIdleMs);
        let writes = 0;
        for (const p of toWrite)
          if (await writeCachedSorted(cacheDir, keyOf(p), sorted.get(p.column)!.sorted)) writes++;
        stats.cacheWrites = writes;
        return writes;
      });
    }
  }
  // References stored before sorted storage: read their rows once and sort them here.
  const legacy = numericColumns.filter((c) => !sorted.has(c));
  if (legacy.length > 0) {
    const feats = info.features.filter((f) => legacy.includes(storedFeatureSpecs([f])[0]!.column));
    const { sorted: fromRows } = await profileSampleExact(
      store,
      referenceRowsSample(referenceId, feats, 'r_'),
      storedFeatureSpecs(feats),
      { keepSorted: true, groupSize: options.groupSize, settings: options.settings },
    );
    for (const f of fromRows.features) {
      if (f.sorted !== undefined) {
        sorted.set(f.column, {
          n: f.profile.n,
          missing: f.profile.missing,
          nonFinite: f.profile.non_finite,
          sorted: sharedCopy(f.sorted),
        });
      }
    }
  }
  const features: SortedReferenceFeature[] = profiles.map((p) => {
    const s = sorted.get(p.column);
    return {
      name: p.name,
      kind: p.kind,
      column: p.column,
      ...(p.output === true ? { output: true } : {}),
      profile: p,
      ...(s !== undefined ? { sorted: s.sorted } : {}),
    };
  });
  return { id: referenceId, rows: info.profile.rows, features, info, ...(cached !== undefined ? { cached } : {}) };
}

/** Options of {@link compareToReference}. */
export interface CompareToReferenceOptions extends CompareOptions {
  reference: SortedReference;
  current: CurrentWindow;
  /** What to report, in order. @default the reference's features */
  features?: readonly FeatureSpec[] | undefined;
}

/** The DriftReport of `current` against `reference` (see the module comment). */
export function compareToReference(options: CompareToReferenceOptions): Promise<DriftReport> {
  const { reference, current, features, ...rest } = options;
  return compareInMemory(reference, current, features, rest);
}

/** Options of {@link readCurrentWindow}. */
export interface ReadCurrentWindowOptions {
  /** Numeric features read per query. @default 5 */
  groupSize?: number | undefined;
  settings?: StoreSettings | undefined;
}

/**
 * Reads the features of a ClickHouse sample into a {@link CurrentWindow}: numeric ones in groups (one
 * `Native` query per group), categorical ones counted in one query.
 */
export async function readCurrentWindow(
  store: SqlPort,
  sample: Sample,
  features: readonly FeatureSpec[],
  options: ReadCurrentWindowOptions = {},
): Promise<CurrentWindow> {
  const settings = options.settings ?? {};
  const numeric = new Map<string, Float64Array>();
  let rows: number | undefined;
  for (const group of groupsOf(
    features.filter((f) => f.kind === 'numeric'),
    options.groupSize ?? NUMERIC_GROUP,
  )) {
    const read = await readNumeric(store, sample, group, settings);
    rows = read.rows;
    for (const [k, v] of read.values) numeric.set(k, v);
  }
  const cats = features.filter((f) => f.kind === 'categorical');
  const categorical = await readCategorical(store, sample, cats, settings);
  if (rows === undefined && cats.length > 0) {
    rows = 0;
    for (const v of categorical.get(cats[0]!.column)?.values() ?? []) rows += v;
  }
  rows ??= await countRows(store, sample, settings);
  return { rows, numeric, categorical };
}
