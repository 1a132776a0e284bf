import type { FeatureKind } from '../../config/model-schema.js';
import { Tables } from '../../store/migrations.js';
import type { FeatureSpec, Sample } from './types.js';

/** Backtick-quotes a ClickHouse identifier. */
export function quoteIdent(name: string): string {
  return '`' + name.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
}

/** Single-quotes a ClickHouse string literal. */
export function quoteString(value: string): string {
  return "'" + value.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

/** A feature or output of stored rows (the `features_*`/`outputs_*` maps of `mw_predictions`). */
export interface StoredFeature {
  name: string;
  kind: FeatureKind;
  /** True for a model output (prediction drift). @default false */
  output?: boolean;
}

/** The sample column under which stored rows expose a feature: its name, or `output:<name>` for outputs. */
export function storedColumn(f: StoredFeature): string {
  return f.output === true ? `output:${f.name}` : f.name;
}

/** {@link FeatureSpec}s for stored features, with the columns {@link trafficSample} produces. */
export function storedFeatureSpecs(features: readonly StoredFeature[]): FeatureSpec[] {
  return features.map((f) => ({
    name: f.name,
    kind: f.kind,
    column: storedColumn(f),
    ...(f.output === true ? { output: true } : {}),
  }));
}

/** Extra row filter of a stored sample: one model version, or one value of a categorical feature. */
export type SampleFilter = { version: string } | { feature: string; value: string };

function mapColumns(
  features: readonly StoredFeature[],
  prefix: string,
  params: Record<string, unknown>,
  lookup: MapLookup = 'contains',
  keyOrders: NumericKeyOrders = {},
): string {
  if (features.length === 0) return '1 AS _none';
  return features
    .map((f, i) => {
      const p = `${prefix}k${i}`;
      params[p] = f.name;
      const map = `${f.output === true ? 'outputs' : 'features'}_${f.kind === 'numeric' ? 'num' : 'cat'}`;
      const type = f.kind === 'numeric' ? 'Float64' : 'String';
      const order = f.kind === 'numeric' ? keyOrders[map as keyof NumericKeyOrders] : undefined;
      // A row whose keys are `order` exactly holds the value at the key's position there (0, past the values:
      // absent); any other row looks the key up (its first position, 0 when absent). The keys are compared as
      // a literal array (identical in every column, so computed once per row).
      if (lookup === 'orNull' && order !== undefined && !order.some((k) => k.includes('\0'))) {
        const literal = `[${order.map(quoteString).join(', ')}]`;
        const at = order.indexOf(f.name) + 1;
        return `arrayElementOrNull(mapValues(${map}), if(mapKeys(${map}) = ${literal}, ${at}, indexOf(mapKeys(${map}), {${p}:String}))) AS ${quoteIdent(storedColumn(f))}`;
      }
      // An absent key is a missing value (NULL), not the map's default 0 / ''.
      if (lookup === 'orNull') return `arrayElementOrNull(${map}, {${p}:String}) AS ${quoteIdent(storedColumn(f))}`;
      return `if(mapContains(${map}, {${p}:String}), ${map}[{${p}:String}], CAST(NULL AS Nullable(${type}))) AS ${quoteIdent(storedColumn(f))}`;
    })
    .join(',\n  ');
}

function filterSql(filter: SampleFilter | undefined, prefix: string, params: Record<string, unknown>): string {
  if (filter === undefined) return '';
  if ('version' in filter) {
    params[`${prefix}ver`] = filter.version;
    return ` AND version = {${prefix}ver:String}`;
  }
  params[`${prefix}sf`] = filter.feature;
  params[`${prefix}sv`] = filter.value;
  return ` AND features_cat[{${prefix}sf:String}] = {${prefix}sv:String}`;
}

/**
 * How a sample reads a feature out of its `Map` column: `contains` (`if(mapContains(m, k), m[k], NULL)`, any
 * ClickHouse version) or `orNull` (`arrayElementOrNull(m, k)`, one key lookup instead of two: about half the
 * cost of a wide read; needs a ClickHouse version that has the function, as the embedded engine does).
 */
export type MapLookup = 'contains' | 'orNull';

/** Options of {@link trafficSample}. */
export interface TrafficSampleOptions {
  model: string;
  /** Window start, epoch ms, inclusive. */
  fromMs: number;
  /** Window end, epoch ms, exclusive. */
  toMs: number;
  features: readonly StoredFeature[];
  /** Prefix of this sample's query parameter names; must differ between the two sides. */
  paramPrefix: string;
  filter?: SampleFilter | undefined;
  /** How each feature is looked up in its `Map` column. @default 'contains' */
  lookup?: MapLookup | undefined;
  /**
   * With `lookup: 'orNull'`: the key order of one row of the window per numeric map (e.g. of its first row).
   * Rows whose keys are in that order exactly (nearly all, as a client sends them) read a feature by its
   * position instead of comparing it with each key; other rows look it up. The same values either way.
   * @default {} (every row looks each key up)
   */
  keyOrders?: NumericKeyOrders | undefined;
}

/** The key order of one row in each numeric `Map` column of `mw_predictions` (see `TrafficSampleOptions`). */
export type NumericKeyOrders = Partial<Record<'features_num' | 'outputs_num', readonly string[]>>;

/** Served traffic of one model in a time window, one column per feature ({@link storedColumn}). */
export function trafficSample(o: TrafficSampleOptions): Sample {
  const p = o.paramPrefix;
  const params: Record<string, unknown> = {
    [`${p}model`]: o.model,
    [`${p}from`]: Math.floor(o.fromMs),
    [`${p}to`]: Math.floor(o.toMs),
  };
  const cols = mapColumns(o.features, p, params, o.lookup, o.keyOrders);
  // FINAL collapses duplicate deliveries that ingest's event_id dedupe may have let through (at-least-once).
  const sql = `SELECT ${cols}
FROM ${Tables.predictions} FINAL
WHERE model = {${p}model:String}
  AND ts >= fromUnixTimestamp64Milli({${p}from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({${p}to:Int64}, 'UTC')${filterSql(o.filter, p, params)}`;
  return { sql, params };
}

/**
 * `sample` with its `String` and integer parameters written into the SQL as literals (others stay bound). The
 * embedded engine runs statements with bound parameters one at a time per process, so reads of one sample
 * that could run at once (two groups of features, the category counts) would otherwise wait for each other.
 */
export function inlineParams(sample: Sample): Sample {
  const params: Record<string, unknown> = { ...sample.params };
  const sql = sample.sql.replace(
    /\{([A-Za-z_][A-Za-z0-9_]*):(String|Int64|UInt64|Int32|UInt32)\}/g,
    (whole, name: string, type: string) => {
      const value = sample.params[name];
      // A NUL byte stays bound: the literal form would depend on how the engine's parser treats it.
      if (type === 'String' && typeof value === 'string' && !value.includes('\0')) return quoteString(value);
      if (type !== 'String' && typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
      return whole;
    },
  );
  for (const name of Object.keys(params)) if (!sql.includes(`{${name}:`)) delete params[name];
  return { sql, params };
}

/** The stored rows of a reference profile (`mw_reference_rows`), one column per feature. */
export function referenceRowsSample(
  referenceId: string,
  features: readonly StoredFeature[],
  paramPrefix: string,
): Sample {
  const p = paramPrefix;
  const params: Record<string, unknown> = { [`${p}rid`]: referenceId };
  const cols = mapColumns(features, p, params);
  return { sql: `SELECT ${cols}\nFROM ${Tables.referenceRows}\nWHERE reference_id = {${p}rid:String}`, params };
}
