import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { newId } from '../common/ids.js';
import { parseTime } from '../common/time.js';
import type { FeatureKind } from '../config/model-schema.js';
import type { SqlPort } from '../store/port.js';
import { Tables } from '../store/migrations.js';
import { toChTime, type Store } from '../store/store.js';
import { profileSample } from './stats/engine.js';
import { fileColumns, fileReadError, fileRowsSample, inputFile, type FileFormat } from './files.js';
import {
  quoteIdent,
  quoteString,
  referenceRowsSample,
  storedFeatureSpecs,
  type StoredFeature,
} from './stats/sample.js';
import type { SampleProfile } from './stats/types.js';

/** Length of the default reference window: the first hour of a model's traffic. */
export const DEFAULT_REFERENCE_SPAN_MS = 3_600_000;

/** A reference from a time window of a model's served traffic. */
export interface TrafficReferenceSource {
  model: string;
  /** ISO-8601 or epoch ms, inclusive. */
  from: string | number;
  /** ISO-8601 or epoch ms, exclusive. */
  to: string | number;
}

/** A reference from a local file read through ClickHouse (`file()`), stored for `model`. */
export interface FileReferenceSource {
  model: string;
  file: string;
  /** ClickHouse input format. @default from the extension (`.csv`, `.tsv`, `.parquet`, `.jsonl`, `.ndjson`) */
  format?: FileFormat | undefined;
  /** Columns to keep (all when omitted). */
  columns?: string[] | undefined;
  /** Columns to treat as categorical although numeric in the file. */
  categorical?: string[] | undefined;
}

/** Where a reference comes from. */
export type ReferenceSource = TrafficReferenceSource | FileReferenceSource;

/** A stored reference profile. */
export interface ReferenceInfo {
  id: string;
  model: string;
  source: 'traffic' | 'file';
  /** Traffic window (ISO-8601), null for files. */
  from: string | null;
  to: string | null;
  /** Source file, null for traffic. */
  file: string | null;
  created_at: string;
  rows: number;
  /** The features (and outputs) the reference holds. */
  features: StoredFeature[];
  /** Per-feature profile: edges, bin counts, deciles, category counts, mean/std, min/max. */
  profile: SampleProfile;
}

function rows<T>(store: SqlPort, query: string, params: Record<string, unknown>): Promise<T[]> {
  return store.query<T>(query, { label: 'reference query', params });
}

function command(store: SqlPort, query: string, params: Record<string, unknown>): Promise<void> {
  return store.command(query, { label: 'reference write', params });
}

/**
 * The features and outputs present in a model's stored traffic in a window, sorted by name; the kind
 * follows the map a value was stored in (`features_num` → numeric, `features_cat` → categorical).
 */
export async function discoverFeatures(
  store: Store,
  model: string,
  fromMs: number,
  toMs: number,
): Promise<StoredFeature[]> {
  const [r] = await rows<{ fn: string[]; fc: string[]; on: string[]; oc: string[] }>(
    store,
    `SELECT groupUniqArrayArray(mapKeys(features_num)) AS fn, groupUniqArrayArray(mapKeys(features_cat)) AS fc,
            groupUniqArrayArray(mapKeys(outputs_num)) AS on, groupUniqArrayArray(mapKeys(outputs_cat)) AS oc
     FROM ${Tables.predictions}
     WHERE model = {model:String}
       AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`,
    { model, from: Math.floor(fromMs), to: Math.floor(toMs) },
  );
  return mergeFeatures([], r === undefined ? [] : toFeatures(r.fn, r.fc, r.on, r.oc));
}

function toFeatures(fn: string[], fc: string[], on: string[], oc: string[]): StoredFeature[] {
  const list: StoredFeature[] = [];
  const add = (names: string[], kind: FeatureKind, output: boolean): void => {
    for (const name of names) list.push({ name, kind, ...(output ? { output: true } : {}) });
  };
  add(fn, 'numeric', false);
  add(fc, 'categorical', false);
  add(on, 'numeric', true);
  add(oc, 'categorical', true);
  return list;
}

/**
 * Union of two feature lists, keyed by (name, output); the first list wins on a kind conflict. Inputs
 * come before outputs, each sorted by name.
 */
export function mergeFeatures(a: readonly StoredFeature[], b: readonly StoredFeature[]): StoredFeature[] {
  const key = (f: StoredFeature): string => `${f.output === true ? 'o' : 'f'}:${f.name}`;
  const out = new Map<string, StoredFeature>();
  for (const f of [...a, ...b]) if (!out.has(key(f))) out.set(key(f), f);
  return [...out.values()].sort((x, y) =>
    x.output === y.output ? (x.name < y.name ? -1 : x.name > y.name ? 1 : 0) : x.output === true ? 1 : -1,
  );
}

/**
 * Column names and kinds of a file, read through the drift engine's one file-input path (ClickHouse schema
 * inference, CSV/TSV number columns refined, numeric types numeric, the rest categorical).
 */
export async function describeFile(
  store: SqlPort,
  file: string,
  format?: FileFormat,
  categorical: readonly string[] = [],
): Promise<StoredFeature[]> {
  const cols = await fileColumns(store, inputFile(file, 'file', format), 'file', categorical);
  return cols.map((c) => ({ name: c.name, kind: c.kind }));
}

/** Fills `bins` (counts per numeric bin over the profile's edges) in a reference profile: one pass. */
async function addBinCounts(
  store: SqlPort,
  referenceId: string,
  features: StoredFeature[],
  profile: SampleProfile,
): Promise<void> {
  const sample = referenceRowsSample(referenceId, features, 'r_');
  const specs = storedFeatureSpecs(features);
  const aggs: string[] = [];
  const params: Record<string, unknown> = { ...sample.params };
  profile.features.forEach((p, i) => {
    if (p.kind !== 'numeric' || p.edges === undefined) return;
    params[`_e${i}`] = p.edges;
    const c = `ifNull(CAST(${quoteIdent(specs[i]?.column ?? p.column)} AS Nullable(Float64)), nan)`;
    aggs.push(
      `sumForEachIf(arrayMap(j -> toUInt64(j = arrayCount(e -> e <= ${c}, {_e${i}:Array(Float64)})), range(${p.edges.length + 1})), isFinite(${c})) AS __mw_b${i}`,
    );
  });
  if (aggs.length === 0) return;
  const [r] = await rows<Record<string, number[]>>(store, `SELECT ${aggs.join(', ')} FROM (${sample.sql})`, params);
  profile.features.forEach((p, i) => {
    const b = r?.[`__mw_b${i}`];
    if (Array.isArray(b)) p.bins = b.map(Number);
  });
}

/**
 * Computes a reference once and stores it: its rows go to `mw_reference_rows` (so KS and Wasserstein
 * stay exact against it) and its profile (bin edges at the deciles {@link BIN_QUANTILES}, bin counts,
 * category counts, mean/std, min/max) to `mw_references`. Detection then reads the stored profile and
 * makes one pass over the current window plus the stored rows.
 */
export async function createReference(store: Store, source: ReferenceSource): Promise<ReferenceInfo> {
  const id = newId();
  let features: StoredFeature[];
  let fromMs: number | null = null;
  let toMs: number | null = null;
  if ('file' in source) {
    const file = inputFile(source.file, 'file', source.format);
    const columns = await fileColumns(store, file, 'file', source.categorical ?? []);
    const described: StoredFeature[] = columns.map((c) => ({ name: c.name, kind: c.kind }));
    features = source.columns === undefined ? described : described.filter((f) => source.columns?.includes(f.name));
    const missing = (source.columns ?? []).filter((c) => !described.some((f) => f.name === c));
    if (missing.length > 0) {
      throw new ModelwatchError(ErrorCodes.inputInvalid, `file ${source.file}: no column ${missing.join(', ')}`, {
        field: 'columns',
      });
    }
    const sample = fileRowsSample(file, columns, 'f');
    const num = features.filter((f) => f.kind === 'numeric');
    const cat = features.filter((f) => f.kind === 'categorical');
    const mapOf = (list: StoredFeature[], type: 'Float64' | 'String'): string =>
      list.length === 0
        ? `CAST(map(), 'Map(String, ${type})')`
        : `CAST(mapFilter((k, v) -> isNotNull(v), map(${list
            .map((f) => `${quoteString(f.name)}, CAST(${quoteIdent(f.name)} AS Nullable(${type}))`)
            .join(', ')})), 'Map(String, ${type})')`;
    await command(
      store,
      `INSERT INTO ${Tables.referenceRows} (reference_id, row, features_num, features_cat, outputs_num, outputs_cat)
       SELECT {id:String}, rowNumberInAllBlocks(), ${mapOf(num, 'Float64')}, ${mapOf(cat, 'String')},
              CAST(map(), 'Map(String, Float64)'), CAST(map(), 'Map(String, String)')
       FROM (${sample.sql})`,
      { ...sample.params, id },
    ).catch((err: unknown) => {
      throw fileReadError(file, 'file', err);
    });
  } else {
    fromMs = parseTime(source.from, 'reference.from');
    toMs = parseTime(source.to, 'reference.to');
    if (fromMs >= toMs)
      throw new ModelwatchError(ErrorCodes.badRequest, 'reference.from: must be before reference.to', {
        field: 'reference.from',
      });
    features = await discoverFeatures(store, source.model, fromMs, toMs);
    await command(
      store,
      `INSERT INTO ${Tables.referenceRows} (reference_id, row, features_num, features_cat, outputs_num, outputs_cat)
       SELECT {id:String}, rowNumberInAllBlocks(), features_num, features_cat, outputs_num, outputs_cat
       FROM ${Tables.predictions} FINAL
       WHERE model = {model:String}
         AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`,
      { id, model: source.model, from: Math.floor(fromMs), to: Math.floor(toMs) },
    );
  }
  const profile = await profileSample(store, referenceRowsSample(id, features, 'r_'), storedFeatureSpecs(features));
  await addBinCounts(store, id, features, profile);
  const info: ReferenceInfo = {
    id,
    model: source.model,
    source: 'file' in source ? 'file' : 'traffic',
    from: fromMs === null ? null : new Date(fromMs).toISOString(),
    to: toMs === null ? null : new Date(toMs).toISOString(),
    file: 'file' in source ? source.file : null,
    created_at: new Date().toISOString(),
    rows: profile.rows,
    features,
    profile,
  };
  await store.insert(
    Tables.references,
    [
      {
        id,
        model: info.model,
        source: info.source,
        window_from: fromMs === null ? null : toChTime(fromMs),
        window_to: toMs === null ? null : toChTime(toMs),
        file: info.file ?? '',
        created_at: toChTime(Date.parse(info.created_at)),
        rows: info.rows,
        profile: JSON.stringify({ features, profile }),
      },
    ],
    { label: 'store reference' },
  );
  return info;
}

interface ReferenceDbRow {
  id: string;
  model: string;
  source: string;
  from_ms: number | null;
  to_ms: number | null;
  file: string;
  created_ms: number;
  rows: number;
  profile: string;
}

/** Which stored reference to read: by id, or the newest of a model. */
export type ReferenceQuery = { id: string } | { model: string };

/** Reads a stored reference (by id, or the newest for a model); null when there is none. */
export async function getReference(store: Store, query: ReferenceQuery): Promise<ReferenceInfo | null> {
  const where = 'id' in query ? 'id = {id:String}' : 'model = {model:String}';
  const [r] = await rows<ReferenceDbRow>(
    store,
    `SELECT id, model, source, toUnixTimestamp64Milli(window_from) AS from_ms, toUnixTimestamp64Milli(window_to) AS to_ms,
            file, toUnixTimestamp64Milli(created_at) AS created_ms, rows, profile
     FROM ${Tables.references} FINAL WHERE ${where}
     ORDER BY created_at DESC, id DESC LIMIT 1`,
    'id' in query ? { id: query.id } : { model: query.model },
  );
  if (r === undefined) return null;
  const stored = JSON.parse(r.profile) as { features: StoredFeature[]; profile: SampleProfile };
  return {
    id: r.id,
    model: r.model,
    source: r.source === 'file' ? 'file' : 'traffic',
    from: r.from_ms === null ? null : new Date(Number(r.from_ms)).toISOString(),
    to: r.to_ms === null ? null : new Date(Number(r.to_ms)).toISOString(),
    file: r.file === '' ? null : r.file,
    created_at: new Date(Number(r.created_ms)).toISOString(),
    rows: Number(r.rows),
    features: stored.features,
    profile: stored.profile,
  };
}

/**
 * The default reference window of a model: the first hour of its stored traffic, `[first, first + 1h)`.
 * The model's earliest traffic is the best guess of "how it was meant to look" when nobody named a
 * reference; users replace it with `createReference` on a window or file they trust. Null without traffic.
 */
export async function defaultReferenceWindow(
  store: Store,
  model: string,
): Promise<{ fromMs: number; toMs: number } | null> {
  const [r] = await rows<{ first_ms: number | null; n: number }>(
    store,
    `SELECT toUnixTimestamp64Milli(min(ts)) AS first_ms, count() AS n FROM ${Tables.predictions} WHERE model = {model:String}`,
    { model },
  );
  if (r === undefined || Number(r.n) === 0 || r.first_ms === null) return null;
  const fromMs = Number(r.first_ms);
  return { fromMs, toMs: fromMs + DEFAULT_REFERENCE_SPAN_MS };
}
