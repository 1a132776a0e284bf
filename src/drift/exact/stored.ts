/**
 * Sorted references in the store (`mw_reference_sorted`, migration 10): each numeric feature's finite values,
 * sorted once when the reference is created, with its counts, std and bin edges. Reading them back gives a
 * {@link SortedReference} whose arrays live in `SharedArrayBuffer`s (workers read them without copies).
 */
import { Tables } from '../../store/migrations.js';
import type { SqlPort, StoreSettings } from '../../store/port.js';
import { quoteIdent } from '../stats/sample.js';
import type { FeatureProfile, Sample } from '../stats/types.js';
import { groupsOf, queryNative } from './read.js';
import { numberColumn, stringColumn } from './native.js';

/** Float64 text ClickHouse parses back to the same double (shortest round-trip form). */
function f64(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '0' : String(v);
}

/**
 * Stores the sorted finite values of each numeric feature of `sample` (columns named by the profiles'
 * `column`) under `referenceId`, with the profile's counts, std and edges. ClickHouse sorts each column
 * (`arraySort`) while inserting: the values never leave the store as text.
 */
export async function storeSortedReference(
  store: SqlPort,
  referenceId: string,
  sample: Sample,
  rows: number,
  profiles: readonly FeatureProfile[],
): Promise<void> {
  for (const p of profiles) {
    if (p.kind !== 'numeric') continue;
    await store.command(
      `INSERT INTO ${Tables.referenceSorted} (reference_id, column, rows, n, missing, non_finite, std, edges, values)
       SELECT {__mw_id:String}, {__mw_col:String}, {__mw_rows:UInt64}, countIf(isFinite(__mw_v)), countIf(isNaN(__mw_v)),
              countIf(isInfinite(__mw_v)), toFloat64({__mw_std:String}),
              arrayMap(s -> toFloat64(s), {__mw_edges:Array(String)}), arraySort(groupArrayIf(__mw_v, isFinite(__mw_v)))
       FROM (SELECT ifNull(CAST(${quoteIdent(p.column)} AS Nullable(Float64)), nan) AS __mw_v FROM (${sample.sql}))`,
      {
        label: 'store sorted reference',
        params: {
          ...sample.params,
          __mw_id: referenceId,
          __mw_col: p.column,
          __mw_rows: rows,
          __mw_std: f64(p.std),
          __mw_edges: (p.edges ?? []).map(f64),
        },
      },
    );
  }
}

/** One stored sorted feature. */
export interface StoredSortedFeature {
  n: number;
  missing: number;
  nonFinite: number;
  /** Finite values ascending, in a `SharedArrayBuffer`. */
  sorted: Float64Array;
}

/** Copies `src` into a new `SharedArrayBuffer`-backed array. */
export function sharedCopy(src: Float64Array): Float64Array {
  const out = new Float64Array(new SharedArrayBuffer(src.length * 8));
  out.set(src);
  return out;
}

/**
 * Reads the stored sorted values of `columns` of a reference, `groupSize` columns per query (all in one query
 * is faster, since the rows are large arrays in one granule and every query reads all of them, but holds every
 * feature's values twice at once at its peak); columns without a stored row (references created before migration 10) are absent from the result. The
 * values are decoded once, straight into a `SharedArrayBuffer` (each feature a view of it).
 */
export async function readStoredSorted(
  store: SqlPort,
  referenceId: string,
  columns: readonly string[],
  options: { groupSize?: number; settings?: StoreSettings } = {},
): Promise<Map<string, StoredSortedFeature>> {
  const out = new Map<string, StoredSortedFeature>();
  for (const group of groupsOf(columns, Math.max(1, options.groupSize ?? 5))) {
    const res = await queryNative(
      store,
      `SELECT column, toUInt64(n) AS n, toUInt64(missing) AS missing, toUInt64(non_finite) AS non_finite, values
       FROM ${Tables.referenceSorted} WHERE reference_id = {id:String} AND column IN {cols:Array(String)}
       LIMIT 1 BY column`,
      { id: referenceId, cols: group },
      options.settings ?? {},
      'read sorted reference',
      { sharedArrays: true },
    );
    const names = stringColumn(res, 'column');
    const n = numberColumn(res, 'n');
    const missing = numberColumn(res, 'missing');
    const nonFinite = numberColumn(res, 'non_finite');
    const col = res.columns.get('values');
    if (col?.type !== 'Array(Float64)') continue;
    for (let r = 0; r < res.rows; r++) {
      const start = r === 0 ? 0 : col.offsets[r - 1]!;
      const end = col.offsets[r]!;
      out.set(names[r]!, {
        n: n[r]!,
        missing: missing[r]!,
        nonFinite: nonFinite[r]!,
        sorted: col.values.subarray(start, end),
      });
    }
  }
  return out;
}
