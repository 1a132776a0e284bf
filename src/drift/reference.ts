import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { newId } from '../common/ids.js';
import { parseTime } from '../common/time.js';
import type { FeatureKind } from '../config/model-schema.js';
import type { Config, DriftMethod, ReferenceConfig } from '../config/schema.js';
import type { SqlPort } from '../store/port.js';
import { Tables } from '../store/migrations.js';
import { toChTime, type Store } from '../store/store.js';
import { profileSampleExact } from './exact/compare.js';
import { storeSortedReference } from './exact/stored.js';
import { chooseMethod, isLowCardinality } from './stats/policy.js';
import { fileColumns, fileReadError, fileRowsSample, inputFile, type FileFormat } from './files.js';
import {
  quoteIdent,
  quoteString,
  referenceRowsSample,
  storedFeatureSpecs,
  type StoredFeature,
} from './stats/sample.js';
import type { SampleProfile } from './stats/types.js';

/** Default `detect.reference.spanMs`: the default reference is at most the first hour of successful traffic. */
export const DEFAULT_REFERENCE_SPAN_MS = 3_600_000;
/** Default `detect.reference.rows`: the default reference is at most the first 5,000 successful rows. */
export const DEFAULT_REFERENCE_ROWS = 5_000;

/** A reference from a time window of a model's served traffic (successful calls only). */
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
  /** What to record as the reference's `file` (e.g. `upload:ref.csv`). @default `file` */
  label?: string | undefined;
}

/** Where a reference comes from. */
export type ReferenceSource = TrafficReferenceSource | FileReferenceSource;

/**
 * How a reference came to be: `default` (frozen from a model's first successful traffic), `pinned` (chosen
 * through the API, the CLI or the config), `legacy` (stored before references had a kind).
 */
export type ReferenceKind = 'default' | 'pinned' | 'legacy';

/** The method and threshold fixed for one feature when its reference was created. */
export interface FeatureMethod {
  name: string;
  kind: FeatureKind;
  output?: boolean;
  method: DriftMethod;
  threshold: number;
}

/** A stored reference profile. */
export interface ReferenceInfo {
  id: string;
  model: string;
  source: 'traffic' | 'file';
  kind: ReferenceKind;
  /** Traffic window (ISO-8601), null for files. */
  from: string | null;
  to: string | null;
  /** Time of its first and last row (traffic references): its real span. */
  first_row_at: string | null;
  last_row_at: string | null;
  /** Source file, null for traffic. */
  file: string | null;
  created_at: string;
  rows: number;
  /** The features (and outputs) the reference holds. */
  features: StoredFeature[];
  /** Per-feature profile: edges, bin counts, deciles, category counts, mean/std, min/max. */
  profile: SampleProfile;
  /**
   * Per feature, the method and threshold the automatic choice picked at creation. Detection uses them for
   * the life of the reference (config overrides still win). Empty for references stored before they existed.
   */
  methods: FeatureMethod[];
}

/** Options of {@link createReference}. */
export interface CreateReferenceOptions {
  /** @default 'pinned' */
  kind?: ReferenceKind;
  /** Make it the model's active reference. @default false */
  activate?: boolean;
  /** Digest of the config entry it comes from ({@link configKeyOf}). */
  configKey?: string;
  /** Only rows before this time (traffic), epoch ms. @default no bound */
  now?: number;
}

function rows<T>(store: SqlPort, query: string, params: Record<string, unknown>): Promise<T[]> {
  return store.query<T>(query, { label: 'reference query', params });
}

function command(store: SqlPort, query: string, params: Record<string, unknown>): Promise<void> {
  return store.command(query, { label: 'reference write', params });
}

/**
 * SQL condition on `mw_predictions` rows: the row does not belong to a failed call (a request stored with a
 * status outside 2xx). Rows without a stored request (other intakes) count as successful.
 */
export function successfulRowsSql(modelParam = 'model'): string {
  return `event_id NOT IN (SELECT event_id FROM ${Tables.requests} WHERE model = {${modelParam}:String} AND (status < 200 OR status >= 300))`;
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
  const [r] = await store.query<{ fn: string[]; fc: string[]; on: string[]; oc: string[] }>(
    `SELECT groupUniqArrayArray(mapKeys(features_num)) AS fn, groupUniqArrayArray(mapKeys(features_cat)) AS fc,
            groupUniqArrayArray(mapKeys(outputs_num)) AS on, groupUniqArrayArray(mapKeys(outputs_cat)) AS oc
     FROM ${Tables.predictions}
     WHERE model = {model:String}
       AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`,
    { label: 'discover features', params: { model, from: Math.floor(fromMs), to: Math.floor(toMs) } },
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

/**
 * The method and threshold the drift engine's automatic choice picks per feature for a reference profile
 * (no overrides): the same rule a comparison applies.
 */
function chooseMethods(features: StoredFeature[], profile: SampleProfile): FeatureMethod[] {
  const specs = storedFeatureSpecs(features);
  const byColumn = new Map(profile.features.map((p) => [p.column, p]));
  return specs.map((spec) => {
    const p = byColumn.get(spec.column);
    const { method, threshold } = chooseMethod(
      spec,
      p !== undefined && isLowCardinality(spec, p),
      p?.n ?? 0,
      undefined,
    );
    return {
      name: spec.name,
      kind: spec.kind,
      ...(spec.output === true ? { output: true } : {}),
      method,
      threshold,
    };
  });
}

/**
 * Computes a reference once and stores it: its rows go to `mw_reference_rows` (so KS and Wasserstein
 * stay exact against it), its profile (bin edges at the deciles, bin counts, category counts, mean/std,
 * min/max) and, per feature, the method and threshold the automatic choice picks (fixed for the life of
 * the reference) to `mw_references`. A traffic reference holds the model's successful rows of the window.
 */
export async function createReference(
  store: Store,
  source: ReferenceSource,
  options: CreateReferenceOptions = {},
): Promise<ReferenceInfo> {
  const id = newId();
  let features: StoredFeature[];
  let fromMs: number | null = null;
  let toMs: number | null = null;
  let firstRow: number | null = null;
  let lastRow: number | null = null;
  if ('file' in source) {
    const file = inputFile(source.file, 'file', source.format);
    const columns = await fileColumns(store, file, 'file', source.categorical ?? []);
    const described: StoredFeature[] = columns.map((c) => ({ name: c.name, kind: c.kind }));
    features = source.columns === undefined ? described : described.filter((f) => source.columns?.includes(f.name));
    const missing = (source.columns ?? []).filter((c) => !described.some((f) => f.name === c));
    if (missing.length > 0) {
      throw new ModelwatchError(
        ErrorCodes.inputInvalid,
        `file ${source.label ?? source.file}: no column ${missing.join(', ')}`,
        {
          field: 'columns',
        },
      );
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
    const params = {
      id,
      model: source.model,
      from: Math.floor(fromMs),
      to: Math.floor(Math.min(toMs, options.now ?? toMs)),
    };
    const where = `model = {model:String}
         AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
         AND ${successfulRowsSql()}`;
    const [span] = await rows<{ n: number; first_ms: number | null; last_ms: number | null }>(
      store,
      `SELECT count() AS n, toUnixTimestamp64Milli(min(ts)) AS first_ms, toUnixTimestamp64Milli(max(ts)) AS last_ms
       FROM ${Tables.predictions} FINAL WHERE ${where}`,
      params,
    );
    if (span === undefined || Number(span.n) === 0) {
      throw new ModelwatchError(
        ErrorCodes.badRequest,
        `reference window ${new Date(fromMs).toISOString()}..${new Date(toMs).toISOString()}: no successful traffic of model ${source.model}`,
        { field: 'from' },
      );
    }
    firstRow = Number(span.first_ms);
    lastRow = Number(span.last_ms);
    features = await discoverFeatures(store, source.model, fromMs, params.to);
    await command(
      store,
      `INSERT INTO ${Tables.referenceRows} (reference_id, row, features_num, features_cat, outputs_num, outputs_cat)
       SELECT {id:String}, rowNumberInAllBlocks(), features_num, features_cat, outputs_num, outputs_cat
       FROM ${Tables.predictions} FINAL
       WHERE ${where}`,
      params,
    );
  }
  // The exact engine profiles the stored rows (NumPy deciles, bins, std from sorted values); ClickHouse then
  // stores each numeric feature's sorted values next to them, so detection reads them without sorting again.
  const rowsSample = referenceRowsSample(id, features, 'r_');
  const { profile } = await profileSampleExact(store, rowsSample, storedFeatureSpecs(features));
  await storeSortedReference(store, id, rowsSample, profile.rows, profile.features);
  const methods = chooseMethods(features, profile);
  const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
  const info: ReferenceInfo = {
    id,
    model: source.model,
    source: 'file' in source ? 'file' : 'traffic',
    kind: options.kind ?? 'pinned',
    from: iso(fromMs),
    to: iso(toMs),
    first_row_at: iso(firstRow),
    last_row_at: iso(lastRow),
    file: 'file' in source ? (source.label ?? source.file) : null,
    created_at: new Date().toISOString(),
    rows: profile.rows,
    features,
    profile,
    methods,
  };
  const ch = (ms: number | null): string | null => (ms === null ? null : toChTime(ms));
  await store.insert(
    Tables.references,
    [
      {
        id,
        model: info.model,
        source: info.source,
        kind: info.kind,
        window_from: ch(fromMs),
        window_to: ch(toMs),
        first_row_at: ch(firstRow),
        last_row_at: ch(lastRow),
        file: info.file ?? '',
        created_at: toChTime(Date.parse(info.created_at)),
        rows: info.rows,
        profile: JSON.stringify({ features, profile }),
        methods: JSON.stringify(methods),
        config_key: options.configKey ?? '',
      },
    ],
    { label: 'store reference' },
  );
  if (options.activate === true) await activateReference(store, info.model, id);
  return info;
}

interface ReferenceDbRow {
  id: string;
  model: string;
  source: string;
  kind: string;
  from_ms: number | null;
  to_ms: number | null;
  first_ms: number | null;
  last_ms: number | null;
  file: string;
  created_ms: number;
  rows: number;
  profile: string;
  methods: string;
}

const referenceColumns = `id, model, source, kind,
  toUnixTimestamp64Milli(window_from) AS from_ms, toUnixTimestamp64Milli(window_to) AS to_ms,
  toUnixTimestamp64Milli(first_row_at) AS first_ms, toUnixTimestamp64Milli(last_row_at) AS last_ms,
  file, toUnixTimestamp64Milli(created_at) AS created_ms, rows, profile, methods`;

function toInfo(r: ReferenceDbRow): ReferenceInfo {
  const stored = JSON.parse(r.profile) as { features: StoredFeature[]; profile: SampleProfile };
  const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());
  const kind: ReferenceKind = r.kind === 'default' || r.kind === 'pinned' ? r.kind : 'legacy';
  return {
    id: r.id,
    model: r.model,
    source: r.source === 'file' ? 'file' : 'traffic',
    kind,
    from: iso(r.from_ms),
    to: iso(r.to_ms),
    first_row_at: iso(r.first_ms),
    last_row_at: iso(r.last_ms),
    file: r.file === '' ? null : r.file,
    created_at: new Date(Number(r.created_ms)).toISOString(),
    rows: Number(r.rows),
    features: stored.features,
    profile: stored.profile,
    methods: r.methods === '' ? [] : (JSON.parse(r.methods) as FeatureMethod[]),
  };
}

/** Which stored reference to read: by id, or the newest of a model. */
export type ReferenceQuery = { id: string } | { model: string };

/** Reads a stored reference (by id, or the newest for a model); null when there is none. */
export async function getReference(store: Store, query: ReferenceQuery): Promise<ReferenceInfo | null> {
  const where = 'id' in query ? 'id = {id:String}' : 'model = {model:String}';
  const [r] = await rows<ReferenceDbRow>(
    store,
    `SELECT ${referenceColumns} FROM ${Tables.references} FINAL WHERE ${where}
     ORDER BY created_at DESC, id DESC LIMIT 1`,
    'id' in query ? { id: query.id } : { model: query.model },
  );
  return r === undefined ? null : toInfo(r);
}

/** A reference in a model's list, with whether detection uses it now. */
export type ListedReference = Omit<ReferenceInfo, 'profile'> & { active: boolean };

/** Every stored reference of a model, newest first, each flagged `active` when detection uses it now. */
export async function listReferences(store: Store, model: string): Promise<ListedReference[]> {
  const list = await rows<ReferenceDbRow>(
    store,
    `SELECT ${referenceColumns} FROM ${Tables.references} FINAL WHERE model = {model:String}
     ORDER BY created_at DESC, id DESC`,
    { model },
  );
  const active = await activeReferenceId(store, model);
  return list.map((r) => {
    const { profile: _profile, ...rest } = toInfo(r);
    return { ...rest, active: rest.id === active };
  });
}

/**
 * The id of the reference detection uses for `model` when none is named: the one made active (API, CLI,
 * config), else its frozen default (or, for data stored before references had a kind, its newest). Null when
 * there is none yet.
 */
export async function activeReferenceId(store: Store, model: string): Promise<string | null> {
  const [r] = await rows<{ pinned: string; implicit: string }>(
    store,
    `SELECT
       (SELECT argMax(reference_id, activated_at) FROM ${Tables.referenceActive} WHERE model = {model:String}) AS pinned,
       (SELECT argMax(id, (created_at, id)) FROM ${Tables.references} FINAL
         WHERE model = {model:String} AND kind IN ('default', 'legacy')) AS implicit`,
    { model },
  );
  if (r === undefined) return null;
  if (r.pinned !== '') return r.pinned;
  return r.implicit !== '' ? r.implicit : null;
}

/** Makes a stored reference of `model` the one detection uses. `not_found` when it is not one of the model's. */
export async function activateReference(store: Store, model: string, id: string): Promise<ReferenceInfo> {
  const ref = await getReference(store, { id });
  if (ref?.model !== model) {
    throw new ModelwatchError(ErrorCodes.notFound, `reference not found for model ${model}: ${id}`, { field: 'id' });
  }
  // Strictly after the previous activation, so the newest row wins even within one millisecond.
  const [last] = await rows<{ ms: number | null }>(
    store,
    `SELECT toUnixTimestamp64Milli(max(activated_at)) AS ms FROM ${Tables.referenceActive} WHERE model = {model:String}`,
    { model },
  );
  const prev = last?.ms === null || last?.ms === undefined ? 0 : Number(last.ms);
  await store.insert(
    Tables.referenceActive,
    [{ model, reference_id: id, activated_at: toChTime(Math.max(Date.now(), prev + 1)) }],
    { label: 'activate reference' },
  );
  return ref;
}

/** Size of the default reference (`detect.reference`). */
export interface DefaultReferenceLimits {
  /** Rows that complete it. @default {@link DEFAULT_REFERENCE_ROWS} */
  rows: number;
  /** Time from the first successful row that completes it, ms. @default {@link DEFAULT_REFERENCE_SPAN_MS} */
  spanMs: number;
}

/** Where a model's default reference stands at a time. */
export type DefaultReferenceState =
  /** Complete: it covers `[fromMs, toMs)`, by row count (`rows` reached) or by time (`span` elapsed). */
  | { status: 'complete'; fromMs: number; toMs: number; rows: number; by: 'rows' | 'span' }
  /** Not complete: `rows` of `rowsNeeded` seen; it completes by `completesBy` at the latest (null: no traffic yet). */
  | { status: 'pending'; fromMs: number | null; rows: number; rowsNeeded: number; completesBy: number | null };

/**
 * The default reference of a model as of `now`: its first `limits.rows` successful rows or its first
 * `limits.spanMs` of successful traffic, whichever completes first. Completed by rows, it holds every row up to
 * the time of the `rows`-th one (so a window starting after it loses none).
 */
export async function defaultReferenceState(
  store: Store,
  model: string,
  limits: DefaultReferenceLimits,
  now: number,
): Promise<DefaultReferenceState> {
  const base = `FROM ${Tables.predictions} FINAL
     WHERE model = {model:String} AND ts < fromUnixTimestamp64Milli({now:Int64}, 'UTC') AND ${successfulRowsSql()}`;
  const params = { model, now: Math.floor(now) };
  const [first] = await rows<{ n: number; first_ms: number | null }>(
    store,
    `SELECT count() AS n, toUnixTimestamp64Milli(min(ts)) AS first_ms ${base}`,
    params,
  );
  if (first === undefined || Number(first.n) === 0 || first.first_ms === null) {
    return { status: 'pending', fromMs: null, rows: 0, rowsNeeded: limits.rows, completesBy: null };
  }
  const fromMs = Number(first.first_ms);
  const spanEnd = fromMs + limits.spanMs;
  const inSpan = { ...params, end: spanEnd, offset: limits.rows - 1 };
  const [nth] = await rows<{ n: number; nth_ms: number | null }>(
    store,
    `SELECT (SELECT count() ${base} AND ts < fromUnixTimestamp64Milli({end:Int64}, 'UTC')) AS n,
            (SELECT toUnixTimestamp64Milli(ts) ${base} AND ts < fromUnixTimestamp64Milli({end:Int64}, 'UTC')
             ORDER BY ts LIMIT 1 OFFSET {offset:UInt64}) AS nth_ms`,
    inSpan,
  );
  const seen = Number(nth?.n ?? 0);
  if (seen >= limits.rows && nth?.nth_ms !== null && nth?.nth_ms !== undefined) {
    const toMs = Number(nth.nth_ms) + 1;
    const [c] = await rows<{ n: number }>(
      store,
      `SELECT count() AS n ${base} AND ts < fromUnixTimestamp64Milli({end:Int64}, 'UTC')`,
      { ...params, end: toMs },
    );
    return { status: 'complete', fromMs, toMs, rows: Number(c?.n ?? seen), by: 'rows' };
  }
  if (now >= spanEnd) return { status: 'complete', fromMs, toMs: spanEnd, rows: seen, by: 'span' };
  return { status: 'pending', fromMs, rows: seen, rowsNeeded: limits.rows, completesBy: spanEnd };
}

/**
 * Drift cannot run yet: the model has no pinned reference and its default one is not complete. Carries the
 * default reference's progress; the detect loop records the run as `no_reference`, the API answers 409.
 */
export class NoReferenceError extends ModelwatchError {
  /** Progress of the default reference. */
  readonly progress: Extract<DefaultReferenceState, { status: 'pending' }>;

  constructor(model: string, progress: Extract<DefaultReferenceState, { status: 'pending' }>) {
    const by = progress.completesBy === null ? '' : ` or at ${new Date(progress.completesBy).toISOString()}`;
    super(
      ErrorCodes.noReference,
      `model ${model} has no reference yet: the default reference completes at ${progress.rowsNeeded} successful rows (${progress.rows} so far)${by}; or pin one`,
      { field: 'reference' },
    );
    this.name = 'NoReferenceError';
    this.progress = progress;
  }
}

// One default-reference freeze at a time per store and model (the API and the detect loop may race).
const freezing = new WeakMap<object, Map<string, Promise<ReferenceInfo | null>>>();

function singleFlight(
  store: Store,
  key: string,
  make: () => Promise<ReferenceInfo | null>,
): Promise<ReferenceInfo | null> {
  let byKey = freezing.get(store);
  if (byKey === undefined) {
    byKey = new Map();
    freezing.set(store, byKey);
  }
  const inFlight = byKey.get(key);
  if (inFlight !== undefined) return inFlight;
  const p = make().finally(() => byKey.delete(key));
  byKey.set(key, p);
  return p;
}

/** Options of {@link resolveModelReference}. */
export interface ResolveReferenceOptions {
  /** `detect.reference` and `models` (for `models.<m>.reference`). */
  config: { detect: { reference: DefaultReferenceLimits }; models: Config['models'] };
  /** The time of the run, epoch ms. */
  now: number;
}

/**
 * The reference detection compares `model` with when none is named: its configured reference (created and
 * made active the first time it is seen), else the active one, else its default reference, frozen here the
 * first time it is complete. Throws {@link NoReferenceError} while the default one is not complete.
 */
export async function resolveModelReference(
  store: Store,
  model: string,
  options: ResolveReferenceOptions,
): Promise<ReferenceInfo> {
  const configured = options.config.models[model]?.reference;
  if (configured !== undefined) await applyConfiguredReference(store, model, configured, { now: options.now });
  const activeId = await activeReferenceId(store, model);
  if (activeId !== null) {
    const ref = await getReference(store, { id: activeId });
    if (ref !== null) return ref;
  }
  const frozen = await singleFlight(store, model, async () => {
    const again = await activeReferenceId(store, model);
    if (again !== null) return getReference(store, { id: again });
    const state = await defaultReferenceState(store, model, options.config.detect.reference, options.now);
    if (state.status !== 'complete') throw new NoReferenceError(model, state);
    return createReference(store, { model, from: state.fromMs, to: state.toMs }, { kind: 'default', now: options.now });
  });
  if (frozen === null) throw new ModelwatchError(ErrorCodes.internal, `reference of model ${model} vanished`);
  return frozen;
}

/**
 * Digest of a `models.<m>.reference` entry: the model, the entry, and for a file its absolute path, size and
 * modification time (a changed file makes a new reference).
 */
export function configKeyOf(model: string, entry: ReferenceConfig): string {
  let identity: unknown = entry;
  if ('file' in entry) {
    const path = resolve(entry.file);
    let size = -1;
    let mtime = -1;
    try {
      const st = statSync(path);
      size = st.size;
      mtime = st.mtimeMs;
    } catch {
      // A missing file fails in createReference with a clear message.
    }
    identity = { ...entry, file: path, size, mtime };
  } else {
    identity = { from: parseTime(entry.from, 'reference.from'), to: parseTime(entry.to, 'reference.to') };
  }
  return createHash('sha256').update(JSON.stringify({ model, identity })).digest('hex');
}

// Config entries already applied, per store: the lookup runs once per process and entry.
const applied = new WeakMap<object, Set<string>>();

/** What {@link applyConfiguredReference} did. */
export type ConfiguredReferenceOutcome =
  | { status: 'created'; reference: ReferenceInfo }
  | { status: 'exists'; id: string }
  /** The configured window has not ended yet; applied on a later call. */
  | { status: 'pending' };

/**
 * Applies `models.<m>.reference`: the first time an entry is seen (by {@link configKeyOf}), creates the
 * reference and makes it active; later calls (restarts included) create nothing and leave the active choice
 * alone, so an activation through the API or the CLI stands until the entry changes. A window that has not
 * ended at `now` is left for a later call.
 */
export async function applyConfiguredReference(
  store: Store,
  model: string,
  entry: ReferenceConfig,
  options: { now?: number } = {},
): Promise<ConfiguredReferenceOutcome> {
  const key = configKeyOf(model, entry);
  let seen = applied.get(store);
  if (seen === undefined) {
    seen = new Set();
    applied.set(store, seen);
  }
  if (seen.has(key)) return { status: 'exists', id: '' };
  const [found] = await rows<{ id: string }>(
    store,
    `SELECT id FROM ${Tables.references} FINAL WHERE model = {model:String} AND config_key = {key:String} LIMIT 1`,
    { model, key },
  );
  if (found !== undefined) {
    seen.add(key);
    return { status: 'exists', id: found.id };
  }
  const now = options.now ?? Date.now();
  let source: ReferenceSource;
  if ('file' in entry) {
    source = { model, file: entry.file, format: entry.format, columns: entry.columns, categorical: entry.categorical };
  } else {
    if (parseTime(entry.to, `models.${model}.reference.to`) > now) return { status: 'pending' };
    source = { model, from: entry.from, to: entry.to };
  }
  try {
    const reference = await createReference(store, source, { kind: 'pinned', activate: true, configKey: key });
    seen.add(key);
    return { status: 'created', reference };
  } catch (err) {
    if (err instanceof ModelwatchError && err.code !== ErrorCodes.internal) {
      throw new ModelwatchError(err.code, `models.${model}.reference: ${errorMessage(err)}`, {
        field: `models.${model}.reference`,
        cause: err,
      });
    }
    throw err;
  }
}

/** Applies every `models.<m>.reference` of the config ({@link applyConfiguredReference}); returns the outcomes by model. */
export async function applyConfiguredReferences(
  store: Store,
  config: Pick<Config, 'models'>,
  options: { now?: number } = {},
): Promise<Record<string, ConfiguredReferenceOutcome>> {
  const out: Record<string, ConfiguredReferenceOutcome> = {};
  for (const [model, m] of Object.entries(config.models)) {
    if (m.reference !== undefined) out[model] = await applyConfiguredReference(store, model, m.reference, options);
  }
  return out;
}
