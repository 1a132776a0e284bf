/**
 * Reads one side of a comparison out of ClickHouse for the exact engine: numeric features in groups, one
 * `Native` query per group into one `Float64Array` per feature (NULL read as NaN), and every categorical
 * feature's value counts in one query (`GROUP BY GROUPING SETS`, a set per feature).
 */
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import type { SqlPort, StoreSettings } from '../../store/port.js';
import { quoteIdent } from '../stats/sample.js';
import type { FeatureSpec, Sample } from '../stats/types.js';
import { decodeNative, decodeNativeFile, numberColumn, stringColumn, type DecodeOptions } from './native.js';

/** Numeric features read per query by default (memory: 8 bytes × rows × group per side, held at once). */
export const NUMERIC_GROUP = 5;

/** A binary query on the store, or a clear error when the port has none. */
export async function queryNative(
  store: SqlPort,
  sql: string,
  params: Record<string, unknown>,
  settings: StoreSettings,
  label: string,
  decode: DecodeOptions = {},
): Promise<ReturnType<typeof decodeNative>> {
  const options = { label, params, settings, format: 'Native' as const };
  // Numbers read straight into their arrays from the result (strings decoded) unless arrays stay in place in
  // the bytes.
  if (store.queryBinaryFile !== undefined && decode.arraysInPlace !== true)
    return store.queryBinaryFile(sql, options, (file) => decodeNativeFile(file, decode));
  if (store.queryBinaryView !== undefined && decode.arraysInPlace !== true)
    return store.queryBinaryView(sql, options, (bytes) => decodeNative(bytes, decode));
  if (store.queryBinary === undefined) {
    throw new ModelwatchError(ErrorCodes.internal, 'the exact drift engine needs a store with queryBinary');
  }
  return decodeNative(await store.queryBinary(sql, options), decode);
}

/** Numeric values of one side: per feature column, raw values (NaN = missing, ±Inf kept), and the row count. */
export interface NumericRead {
  rows: number;
  values: Map<string, Float64Array>;
}

/** Reads numeric `features` (kind `numeric`) of `sample` in one query. */
export async function readNumeric(
  store: SqlPort,
  sample: Sample,
  features: readonly FeatureSpec[],
  settings: StoreSettings = {},
): Promise<NumericRead> {
  const cols =
    features.length === 0
      ? 'toUInt8(0) AS __mw_none'
      : features
          .map((f, i) => `ifNull(CAST(${quoteIdent(f.column)} AS Nullable(Float64)), nan) AS __mw_n${i}`)
          .join(', ');
  const res = await queryNative(store, `SELECT ${cols} FROM (${sample.sql})`, sample.params, settings, 'drift read');
  const values = new Map<string, Float64Array>();
  features.forEach((f, i) => values.set(f.column, numberColumn(res, `__mw_n${i}`)));
  return { rows: res.rows, values };
}

/** Category counts of one side, per feature column: value → count, with '' (NULL or empty) counted too. */
export type CategoryCounts = Map<string, Map<string, number>>;

/** Categorical features counted per query (the grouping mask holds one bit per feature). */
const CATEGORICAL_PER_QUERY = 30;

/**
 * Counts the values of categorical `features` of `sample` in one scan: one `GROUP BY GROUPING SETS` with a
 * set per feature, so each feature is a hash aggregation over its own column. Against one `GROUP BY` over
 * `arrayJoin`ed (feature, value) pairs (a row per feature per row) it is about 3.5× faster on Parquet files and
 * 1.3× on stored traffic; a `GROUP BY` per feature under `UNION ALL` is faster still on files but scans the
 * sample once per feature, which costs 3× on traffic (each scan decodes the `Map` column again).
 */
export async function readCategorical(
  store: SqlPort,
  sample: Sample,
  features: readonly FeatureSpec[],
  settings: StoreSettings = {},
): Promise<CategoryCounts> {
  if (features.length > CATEGORICAL_PER_QUERY) {
    const out: CategoryCounts = new Map();
    for (const part of groupsOf(features, CATEGORICAL_PER_QUERY)) {
      for (const [c, m] of await readCategorical(store, sample, part, settings)) out.set(c, m);
    }
    return out;
  }
  const out: CategoryCounts = new Map(features.map((f) => [f.column, new Map<string, number>()]));
  if (features.length === 0) return out;
  const k = features.length;
  const vs = features.map((_, i) => `__mw_v${i}`);
  const cols = features
    .map((f, i) => `ifNull(CAST(${quoteIdent(f.column)} AS Nullable(String)), '') AS __mw_v${i}`)
    .join(', ');
  const res = await queryNative(
    store,
    `SELECT toUInt64(grouping(${vs.join(', ')})) AS __mw_g, ${vs.join(', ')}, toUInt64(count()) AS __mw_c
     FROM (SELECT ${cols} FROM (${sample.sql}))
     GROUP BY GROUPING SETS (${vs.map((v) => `(${v})`).join(', ')})`,
    sample.params,
    settings,
    'drift categories',
  );
  const g = numberColumn(res, '__mw_g');
  const cs = numberColumn(res, '__mw_c');
  const values = features.map((_, i) => stringColumn(res, `__mw_v${i}`));
  for (let r = 0; r < res.rows; r++) {
    // grouping(): one bit per argument, the first argument the most significant; 0 = in this row's set.
    const mask = g[r]!;
    let i = -1;
    let zeros = 0;
    for (let j = 0; j < k; j++) {
      if (((mask >>> (k - 1 - j)) & 1) === 0) {
        zeros++;
        i = j;
      }
    }
    if (zeros !== 1) throw new ModelwatchError(ErrorCodes.internal, `drift categories: unexpected grouping ${mask}`);
    const f = features[i]!;
    const m = out.get(f.column)!;
    const v = values[i]![r]!;
    m.set(v, (m.get(v) ?? 0) + cs[r]!);
  }
  return out;
}

/** Row count of `sample`. */
export async function countRows(store: SqlPort, sample: Sample, settings: StoreSettings = {}): Promise<number> {
  const res = await queryNative(
    store,
    `SELECT toUInt64(count()) AS __mw_rows FROM (${sample.sql})`,
    sample.params,
    settings,
    'drift count',
  );
  return numberColumn(res, '__mw_rows')[0] ?? 0;
}

/** Splits `list` into groups of at most `size`. */
export function groupsOf<T>(list: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

/** Category counts without the missing value '': usable count, missing count and the non-empty counts. */
export function splitMissing(counts: ReadonlyMap<string, number> | undefined): {
  n: number;
  missing: number;
  counts: Map<string, number>;
} {
  const out = new Map<string, number>();
  let n = 0;
  let missing = 0;
  for (const [k, v] of counts ?? []) {
    if (k === '') missing += v;
    else {
      out.set(k, v);
      n += v;
    }
  }
  return { n, missing, counts: out };
}

/** A whole small side: numeric values and category counts from one query. */
export interface SideRead extends NumericRead {
  counts: CategoryCounts;
}

/**
 * Reads every feature of a small sample in one `Native` query: numeric columns as Float64 (NULL as NaN),
 * categorical ones as strings counted here. One round trip instead of one per group: for small inputs the
 * per-query cost dominates.
 */
export async function readAll(
  store: SqlPort,
  sample: Sample,
  numeric: readonly FeatureSpec[],
  categorical: readonly FeatureSpec[],
  settings: StoreSettings = {},
): Promise<SideRead> {
  const cols = [
    ...numeric.map((f, i) => `ifNull(CAST(${quoteIdent(f.column)} AS Nullable(Float64)), nan) AS __mw_n${i}`),
    ...categorical.map((f, i) => `ifNull(CAST(${quoteIdent(f.column)} AS Nullable(String)), '') AS __mw_s${i}`),
  ];
  if (cols.length === 0) cols.push('toUInt8(0) AS __mw_none');
  const res = await queryNative(
    store,
    `SELECT ${cols.join(', ')} FROM (${sample.sql})`,
    sample.params,
    settings,
    'drift read',
  );
  const values = new Map<string, Float64Array>();
  numeric.forEach((f, i) => values.set(f.column, numberColumn(res, `__mw_n${i}`)));
  const counts: CategoryCounts = new Map();
  categorical.forEach((f, i) => {
    const m = new Map<string, number>();
    for (const v of stringColumn(res, `__mw_s${i}`)) m.set(v, (m.get(v) ?? 0) + 1);
    counts.set(f.column, m);
  });
  return { rows: res.rows, values, counts };
}
